//! The embedded default backend, on sled, with group commit through a write-ahead log.
//!
//! Every write is a job for one writer thread. The thread applies all queued jobs to sled (each
//! in its own transaction, recording the absolute key/value operations it made), appends those
//! operations to the [`Wal`] as one record, `fdatasync`s, and only then completes the jobs. sled
//! itself is flushed at checkpoints (every [`CHECKPOINT_EVERY`] or when the log grows past
//! [`CHECKPOINT_BYTES`]), after which the log is truncated; on open, the log is replayed.
//!
//! Snapshots, the hot tree, go to a memtable (an in-memory overlay that readers consult first)
//! rather than to sled; a checkpoint writes each dirty key to sled once, however often it changed.
//! Outbox entries become visible to the relay only once their batch is in the log (the durable
//! watermark), so an event is never published for a write a crash could still undo.
//!
//! Why not `Db::flush()` per batch: sled's flush rewrites every dirty page and blocks writers while
//! it runs, so its cost grows with the updates (measured here: ~50 µs per updated record, 245 ms
//! per checkpoint of 500 ms of cart updates without the memtable), capping durable writes near
//! 11k/s; a log append costs one `fdatasync` per batch. Writes never run on the async threads, and
//! `flush_async` (which deadlocks under concurrent callers in sled 0.34, sled issue 1308) is never
//! used.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;
use tokio::sync::oneshot;

use crate::record::{decode_outbox, decode_snapshot, encode_outbox, encode_snapshot};
use crate::wal::{Op, Wal};
use crate::{
    CatalogStore, Error, Outbox, OutboxEntry, OutboxRecord, Snapshot, SnapshotStore, SnapshotWrite,
};

/// Runs after the batch's flush with its result; sends the job's reply.
type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;
/// Applies one write (not yet durable), records its operations, returns how to complete it.
type Job = Box<dyn FnOnce(&Trees, &mut Vec<Op>) -> Completion + Send>;

/// The most jobs one log append covers; bounds the wait of the first job in a batch.
const MAX_BATCH: usize = 4096;
/// sled is flushed and the log truncated at least this often while writes arrive...
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);
/// ...or when the log grows past this.
const CHECKPOINT_BYTES: u64 = 64 << 20;

const SNAPSHOTS: u8 = 0;
const OWNERS: u8 = 1;
const PENDING: u8 = 2;
const DELIVERED: u8 = 3;
const PRODUCTS: u8 = 4;
const SKUS: u8 = 5;

/// Group-commit counters: log appends (one `fdatasync` each), their time, the writes they
/// covered, and checkpoints (sled flushes) with their time.
#[derive(Debug, Default)]
pub struct CommitStats {
    pub appends: AtomicU64,
    pub append_micros: AtomicU64,
    pub writes: AtomicU64,
    pub checkpoints: AtomicU64,
    pub checkpoint_micros: AtomicU64,
}

struct Trees {
    db: sled::Db,
    snapshots: sled::Tree,
    owners: sled::Tree,
    pending: sled::Tree,
    delivered: sled::Tree,
    products: sled::Tree,
    skus: sled::Tree,
    depth: AtomicU64,
    /// Next outbox sequence number; only the writer thread takes them.
    next_seq: AtomicU64,
    /// Outbox entries below this sequence number are durable (in the log or in sled).
    durable_seq: AtomicU64,
    /// Snapshot values written since the last checkpoint, by sled key. Only the writer mutates it.
    memtable: std::sync::RwLock<std::collections::HashMap<Vec<u8>, Vec<u8>>>,
}

pub struct SledStore {
    trees: Arc<Trees>,
    /// `None` once dropping; the writer thread ends when the sender goes away.
    writer: Mutex<Option<mpsc::Sender<Job>>>,
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    commit_stats: Arc<CommitStats>,
}

impl SledStore {
    /// Opens (or creates) the store in `dir`: sled in `dir/db`, the log in `dir/wal`.
    pub fn open(dir: &Path) -> Result<Self, Error> {
        Self::open_with_checkpoints(dir, CHECKPOINT_EVERY)
    }

    /// As [`SledStore::open`], checkpointing every `checkpoint_every` (tests use a long one to
    /// prove recovery from the log alone).
    pub fn open_with_checkpoints(dir: &Path, checkpoint_every: Duration) -> Result<Self, Error> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Unavailable(format!("{}: {e}", dir.display())))?;
        let db = sled::Config::new()
            .path(dir.join("db"))
            .mode(sled::Mode::HighThroughput)
            .flush_every_ms(None)
            .open()
            .map_err(storage)?;
        let tree = |name: &str| db.open_tree(name).map_err(storage);
        let trees = Trees {
            depth: AtomicU64::new(0),
            next_seq: AtomicU64::new(1),
            durable_seq: AtomicU64::new(1),
            memtable: std::sync::RwLock::new(std::collections::HashMap::new()),
            snapshots: tree("snapshots")?,
            owners: tree("owners")?,
            pending: tree("outbox_pending")?,
            delivered: tree("outbox_delivered")?,
            products: tree("products")?,
            skus: tree("product_skus")?,
            db,
        };
        let (mut wal, batches) = Wal::open(&dir.join("wal"))
            .map_err(|e| Error::Unavailable(format!("write-ahead log: {e}")))?;
        if !batches.is_empty() {
            tracing::info!(batches = batches.len(), "replaying the write-ahead log");
            for op in batches.iter().flatten() {
                trees.apply(op)?;
            }
            trees.db.flush().map_err(storage)?;
        }
        wal.truncate()
            .map_err(|e| Error::Unavailable(format!("write-ahead log: {e}")))?;
        trees
            .depth
            .store(trees.pending.len() as u64, Ordering::Relaxed);
        let last_seq = |t: &sled::Tree| -> Result<u64, Error> {
            Ok(t.last()
                .map_err(storage)?
                .and_then(|(k, _)| k.as_ref().try_into().ok())
                .map_or(0, u64::from_be_bytes))
        };
        let next = last_seq(&trees.pending)?.max(last_seq(&trees.delivered)?) + 1;
        trees.next_seq.store(next, Ordering::Relaxed);
        trees.durable_seq.store(next, Ordering::Relaxed);
        let trees = Arc::new(trees);
        let (tx, rx) = mpsc::channel::<Job>();
        let commit_stats = Arc::new(CommitStats::default());
        let (writer_trees, stats) = (trees.clone(), commit_stats.clone());
        let thread = std::thread::Builder::new()
            .name("sled-group-commit".into())
            .spawn(move || writer_loop(&writer_trees, wal, &rx, &stats, checkpoint_every))
            .map_err(|e| Error::Unavailable(format!("cannot start the writer: {e}")))?;
        Ok(Self {
            trees,
            writer: Mutex::new(Some(tx)),
            writer_thread: Mutex::new(Some(thread)),
            commit_stats,
        })
    }

    pub fn commit_stats(&self) -> &CommitStats {
        &self.commit_stats
    }

    /// Runs `op` on the writer thread; resolves with its result once the write is durable.
    async fn write<T, F>(&self, op: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&Trees, &mut Vec<Op>) -> Result<T, Error> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |trees, ops| {
            let result = op(trees, ops);
            Box::new(move |flushed| {
                let _ = tx.send(match (result, flushed) {
                    (Ok(value), Ok(())) => Ok(value),
                    (Err(e), _) => Err(e),
                    (Ok(_), Err(e)) => Err(Error::Unavailable(format!("flush failed: {e}"))),
                });
            })
        });
        {
            let writer = self
                .writer
                .lock()
                .map_err(|_| Error::Unavailable("writer lock poisoned".into()))?;
            writer
                .as_ref()
                .ok_or_else(|| Error::Unavailable("store closing".into()))?
                .send(job)
                .map_err(|_| Error::Unavailable("writer stopped".into()))?;
        }
        rx.await
            .unwrap_or_else(|_| Err(Error::Unavailable("writer stopped".into())))
    }
}

impl Drop for SledStore {
    /// Stops the writer and waits for it, so the database (and its file lock) is released when
    /// the store is dropped.
    fn drop(&mut self) {
        if let Ok(mut writer) = self.writer.lock() {
            writer.take();
        }
        if let Some(thread) = self.writer_thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = thread.join();
        }
    }
}

fn writer_loop(
    trees: &Trees,
    mut wal: Wal,
    rx: &mpsc::Receiver<Job>,
    stats: &CommitStats,
    every: Duration,
) {
    let mut last_checkpoint = Instant::now();
    loop {
        let first = match rx.recv_timeout(every) {
            Ok(job) => job,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                checkpoint(trees, &mut wal, &mut last_checkpoint, stats);
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        let mut ops = Vec::new();
        let mut completions = vec![first(trees, &mut ops)];
        // Everything queued while the last append ran joins this batch.
        while completions.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => completions.push(job(trees, &mut ops)),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let batch_end = trees.next_seq.load(Ordering::Relaxed);
        let result = if ops.is_empty() {
            Ok(())
        } else {
            wal.append(&ops).map_err(|e| e.to_string())
        };
        if result.is_ok() {
            trees.durable_seq.store(batch_end, Ordering::Release);
        }
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        stats.appends.fetch_add(1, Ordering::Relaxed);
        stats.append_micros.fetch_add(micros, Ordering::Relaxed);
        stats
            .writes
            .fetch_add(completions.len() as u64, Ordering::Relaxed);
        if let Err(e) = &result {
            tracing::error!(error = %e, "write-ahead log append failed");
        }
        for complete in completions {
            complete(result.clone());
        }
        if last_checkpoint.elapsed() >= every || wal.len() >= CHECKPOINT_BYTES {
            checkpoint(trees, &mut wal, &mut last_checkpoint, stats);
        }
    }
    checkpoint(trees, &mut wal, &mut last_checkpoint, stats);
}

/// Makes sled durable up to now, then empties the log it covers.
fn checkpoint(trees: &Trees, wal: &mut Wal, last: &mut Instant, stats: &CommitStats) {
    *last = Instant::now();
    if wal.len() == 0 {
        return;
    }
    let flushed = trees
        .spill_memtable()
        .and_then(|()| trees.db.flush().map_err(storage));
    stats.checkpoints.fetch_add(1, Ordering::Relaxed);
    let micros = u64::try_from(last.elapsed().as_micros()).unwrap_or(u64::MAX);
    stats.checkpoint_micros.fetch_add(micros, Ordering::Relaxed);
    match flushed {
        Ok(_) => {
            if let Err(e) = wal.truncate() {
                tracing::error!(error = %e, "cannot truncate the write-ahead log");
            }
        }
        Err(e) => tracing::error!(error = %e, "checkpoint failed; the log keeps the writes"),
    }
}

fn storage(e: sled::Error) -> Error {
    Error::Unavailable(format!("sled: {e}"))
}

fn tx_error(e: TransactionError<Error>) -> Error {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => storage(e),
    }
}

fn abort<T>(e: Error) -> Result<T, ConflictableTransactionError<Error>> {
    Err(ConflictableTransactionError::Abort(e))
}

fn snapshot_key(kind: &str, key: &str) -> Vec<u8> {
    [kind.as_bytes(), &[0], key.as_bytes()].concat()
}

fn owner_prefix(kind: &str, owner: &str) -> Vec<u8> {
    [kind.as_bytes(), &[0], owner.as_bytes(), &[0]].concat()
}

fn put(tree: u8, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Op {
    Op {
        tree,
        key: key.into(),
        value: Some(value.into()),
    }
}

fn del(tree: u8, key: impl Into<Vec<u8>>) -> Op {
    Op {
        tree,
        key: key.into(),
        value: None,
    }
}

impl Trees {
    fn next_seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::Relaxed)
    }

    fn tree(&self, id: u8) -> Option<&sled::Tree> {
        match id {
            SNAPSHOTS => Some(&self.snapshots),
            OWNERS => Some(&self.owners),
            PENDING => Some(&self.pending),
            DELIVERED => Some(&self.delivered),
            PRODUCTS => Some(&self.products),
            SKUS => Some(&self.skus),
            _ => None,
        }
    }

    /// The current bytes of a snapshot key: the memtable first, then sled.
    fn snapshot_bytes(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        if let Some(bytes) = self.memtable_read().get(key) {
            return Ok(Some(bytes.clone()));
        }
        Ok(self
            .snapshots
            .get(key)
            .map_err(storage)?
            .map(|v| v.to_vec()))
    }

    fn memtable_read(
        &self,
    ) -> std::sync::RwLockReadGuard<'_, std::collections::HashMap<Vec<u8>, Vec<u8>>> {
        self.memtable
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writes every dirty snapshot to sled (once per key), then forgets them. sled has each value
    /// before the memtable lets go of it, so readers never miss one.
    fn spill_memtable(&self) -> Result<(), Error> {
        let dirty: Vec<(Vec<u8>, Vec<u8>)> = self
            .memtable_read()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if dirty.is_empty() {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for (key, value) in &dirty {
            batch.insert(key.as_slice(), value.as_slice());
        }
        self.snapshots.apply_batch(batch).map_err(storage)?;
        self.memtable
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
        Ok(())
    }

    /// Replays one logged operation.
    fn apply(&self, op: &Op) -> Result<(), Error> {
        let tree = self.tree(op.tree).ok_or_else(|| Error::Corrupt {
            key: "wal".into(),
            reason: format!("unknown tree {}", op.tree),
        })?;
        match &op.value {
            Some(value) => tree.insert(op.key.as_slice(), value.as_slice()).map(drop),
            None => tree.remove(op.key.as_slice()).map(drop),
        }
        .map_err(storage)
    }

    fn save(&self, write: &SnapshotWrite, ops: &mut Vec<Op>) -> Result<u64, Error> {
        let key = snapshot_key(write.kind, &write.key);
        // Only this thread writes, so the check and the write below cannot interleave with another.
        let found = match self.snapshot_bytes(&key)? {
            Some(bytes) => decode_snapshot(&write.key, &bytes)?.version,
            None => 0,
        };
        if found != write.expected {
            return Err(Error::Conflict {
                kind: write.kind.to_owned(),
                key: write.key.clone(),
                expected: write.expected,
                found,
            });
        }
        let version = write.expected + 1;
        let encoded = encode_snapshot(&Snapshot {
            version,
            owner: write.owner.clone(),
            data: write.data.clone(),
        });
        let owner_key = write
            .owner
            .as_deref()
            .map(|o| [owner_prefix(write.kind, o), write.key.as_bytes().to_vec()].concat());
        let outbox: Vec<(u64, Vec<u8>)> = write
            .outbox
            .iter()
            .map(|entry| (self.next_seq(), encode_outbox(entry)))
            .collect();
        if owner_key.is_some() || !outbox.is_empty() {
            (&self.owners, &self.pending)
                .transaction(|(owners, pending)| {
                    if let Some(owner_key) = &owner_key {
                        owners.insert(owner_key.as_slice(), &[] as &[u8])?;
                    }
                    for (seq, entry) in &outbox {
                        pending.insert(&seq.to_be_bytes(), entry.as_slice())?;
                    }
                    Ok::<_, ConflictableTransactionError<Error>>(())
                })
                .map_err(tx_error)?;
        }
        self.memtable
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key.clone(), encoded.clone());
        self.depth.fetch_add(outbox.len() as u64, Ordering::Relaxed);
        ops.push(put(SNAPSHOTS, key, encoded));
        if let Some(owner_key) = owner_key {
            ops.push(put(OWNERS, owner_key, Vec::new()));
        }
        for (seq, entry) in outbox {
            ops.push(put(PENDING, seq.to_be_bytes(), entry));
        }
        Ok(version)
    }

    /// Removes SKU mappings that point at `id` under another SKU than `keep`.
    fn drop_stale_skus(
        &self,
        id: &str,
        keep: Option<&str>,
        ops: &mut Vec<Op>,
    ) -> Result<(), Error> {
        for item in self.skus.iter() {
            let (key, owner) = item.map_err(storage)?;
            if owner.as_ref() == id.as_bytes() && keep.is_none_or(|k| key.as_ref() != k.as_bytes())
            {
                self.skus.remove(&key).map_err(storage)?;
                ops.push(del(SKUS, key.to_vec()));
            }
        }
        Ok(())
    }
}

#[async_trait]
impl SnapshotStore for SledStore {
    async fn load(&self, kind: &str, key: &str) -> Result<Option<Snapshot>, Error> {
        match self.trees.snapshot_bytes(&snapshot_key(kind, key))? {
            Some(bytes) => decode_snapshot(key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    async fn save(&self, write: SnapshotWrite) -> Result<u64, Error> {
        self.write(move |trees, ops| trees.save(&write, ops)).await
    }

    async fn list_by_owner(&self, kind: &str, owner: &str) -> Result<Vec<Snapshot>, Error> {
        let prefix = owner_prefix(kind, owner);
        let mut out = Vec::new();
        for item in self.trees.owners.scan_prefix(&prefix) {
            let (index_key, _) = item.map_err(storage)?;
            let entity = String::from_utf8_lossy(&index_key[prefix.len()..]).into_owned();
            if let Some(snapshot) = self.load(kind, &entity).await? {
                out.push(snapshot);
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl Outbox for SledStore {
    async fn pending(&self, limit: usize) -> Result<Vec<OutboxRecord>, Error> {
        let durable = self.trees.durable_seq.load(Ordering::Acquire);
        let mut out = Vec::new();
        for item in self
            .trees
            .pending
            .range(..durable.to_be_bytes())
            .take(limit)
        {
            let (key, value) = item.map_err(storage)?;
            let seq = u64::from_be_bytes(key.as_ref().try_into().unwrap_or([0; 8]));
            out.push(OutboxRecord {
                seq,
                entry: decode_outbox(&seq.to_string(), &value)?,
            });
        }
        Ok(out)
    }

    async fn mark_delivered(&self, seqs: &[u64], at_ms: u64) -> Result<(), Error> {
        let seqs = seqs.to_vec();
        self.write(move |trees, ops| {
            let moved = (&trees.pending, &trees.delivered)
                .transaction(|(pending, delivered)| {
                    let mut moved = Vec::new();
                    for seq in &seqs {
                        if let Some(value) = pending.remove(&seq.to_be_bytes())? {
                            let stamped = [at_ms.to_be_bytes().as_slice(), value.as_ref()].concat();
                            delivered.insert(&seq.to_be_bytes(), stamped.as_slice())?;
                            moved.push((*seq, stamped));
                        }
                    }
                    Ok::<_, ConflictableTransactionError<Error>>(moved)
                })
                .map_err(tx_error)?;
            trees.depth.fetch_sub(moved.len() as u64, Ordering::Relaxed);
            for (seq, stamped) in moved {
                ops.push(del(PENDING, seq.to_be_bytes()));
                ops.push(put(DELIVERED, seq.to_be_bytes(), stamped));
            }
            Ok(())
        })
        .await
    }

    async fn depth(&self) -> Result<u64, Error> {
        Ok(self.trees.depth.load(Ordering::Relaxed))
    }

    async fn prune_delivered(&self, before_ms: u64) -> Result<u64, Error> {
        self.write(move |trees, ops| {
            let mut pruned = 0;
            for item in trees.delivered.iter() {
                let (key, value) = item.map_err(storage)?;
                let at = value
                    .get(..8)
                    .and_then(|b| b.try_into().ok())
                    .map_or(0, u64::from_be_bytes);
                if at < before_ms {
                    trees.delivered.remove(&key).map_err(storage)?;
                    ops.push(del(DELIVERED, key.to_vec()));
                    pruned += 1;
                }
            }
            Ok(pruned)
        })
        .await
    }

    async fn append(&self, entry: OutboxEntry) -> Result<u64, Error> {
        self.write(move |trees, ops| {
            let seq = trees.next_seq();
            let encoded = encode_outbox(&entry);
            trees
                .pending
                .insert(seq.to_be_bytes(), encoded.as_slice())
                .map_err(storage)?;
            trees.depth.fetch_add(1, Ordering::Relaxed);
            ops.push(put(PENDING, seq.to_be_bytes(), encoded));
            Ok(seq)
        })
        .await
    }
}

#[async_trait]
impl CatalogStore for SledStore {
    async fn list_products(&self) -> Result<Vec<Vec<u8>>, Error> {
        self.trees
            .products
            .iter()
            .values()
            .map(|v| v.map(|v| v.to_vec()).map_err(storage))
            .collect()
    }

    async fn insert_product(&self, id: &str, sku: &str, data: Vec<u8>) -> Result<(), Error> {
        let (id, sku) = (id.to_owned(), sku.to_owned());
        self.write(move |trees, ops| {
            (&trees.products, &trees.skus)
                .transaction(|(products, skus)| {
                    if skus.get(sku.as_bytes())?.is_some() {
                        return abort(Error::Duplicate {
                            what: "sku",
                            value: sku.clone(),
                        });
                    }
                    skus.insert(sku.as_bytes(), id.as_bytes())?;
                    products.insert(id.as_bytes(), data.as_slice())?;
                    Ok(())
                })
                .map_err(tx_error)?;
            ops.push(put(SKUS, sku.as_bytes(), id.as_bytes()));
            ops.push(put(PRODUCTS, id.as_bytes(), data));
            Ok(())
        })
        .await
    }

    async fn update_product(&self, id: &str, sku: &str, data: Vec<u8>) -> Result<(), Error> {
        let (id, sku) = (id.to_owned(), sku.to_owned());
        self.write(move |trees, ops| {
            (&trees.products, &trees.skus)
                .transaction(|(products, skus)| {
                    if products.get(id.as_bytes())?.is_none() {
                        return abort(Error::NotFound {
                            what: "product",
                            value: id.clone(),
                        });
                    }
                    if let Some(owner) = skus.get(sku.as_bytes())? {
                        if owner.as_ref() != id.as_bytes() {
                            return abort(Error::Duplicate {
                                what: "sku",
                                value: sku.clone(),
                            });
                        }
                    }
                    products.insert(id.as_bytes(), data.as_slice())?;
                    skus.insert(sku.as_bytes(), id.as_bytes())?;
                    Ok(())
                })
                .map_err(tx_error)?;
            ops.push(put(PRODUCTS, id.as_bytes(), data));
            ops.push(put(SKUS, sku.as_bytes(), id.as_bytes()));
            // A changed SKU leaves its old mapping behind.
            trees.drop_stale_skus(&id, Some(&sku), ops)
        })
        .await
    }

    async fn delete_product(&self, id: &str) -> Result<bool, Error> {
        let id = id.to_owned();
        self.write(move |trees, ops| {
            let existed = trees
                .products
                .remove(id.as_bytes())
                .map_err(storage)?
                .is_some();
            ops.push(del(PRODUCTS, id.as_bytes()));
            trees.drop_stale_skus(&id, None, ops)?;
            Ok(existed)
        })
        .await
    }
}
