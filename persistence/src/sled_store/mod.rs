//! The embedded default backend, on sled, with group commit through a write-ahead log.
//!
//! Every write is a job for one writer thread. The thread applies all queued jobs to sled (each
//! in its own transaction, recording the absolute key/value operations it made), appends those
//! operations to the [`Wal`] as one durable record, and only then completes the jobs. sled
//! itself is flushed at checkpoints (every [`CHECKPOINT_EVERY`] or when the log grows past
//! [`CHECKPOINT_BYTES`]), after which the log is reset; on open, the log is replayed.
//!
//! Snapshots, the hot tree, go to a memtable (an in-memory overlay that readers consult first)
//! rather than to sled; a checkpoint writes each dirty key to sled once, however often it changed.
//! Outbox entries become visible to the relay only once their batch is in the log (the durable
//! watermark), so an event is never published for a write a crash could still undo.
//!
//! Why not `Db::flush()` per batch: sled's flush rewrites every dirty page and blocks writers while
//! it runs, so its cost grows with the updates (measured here: ~50 µs per updated record, 245 ms
//! per checkpoint of 500 ms of cart updates without the memtable), capping durable writes near
//! 11k/s; a log append costs one synchronous write per batch. Writes never run on the async
//! threads, and `flush_async` (which deadlocks under concurrent callers in sled 0.34, sled issue
//! 1308) is never used.

mod memtable;
mod traits;
mod trees;
mod writer;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use sled::transaction::{ConflictableTransactionError, TransactionError};
use tokio::sync::oneshot;

use crate::wal::{Op, Wal};
use crate::{Error, SnapshotWrite};
use trees::Trees;
use writer::{once_durable, writer_loop, Job};
/// sled is flushed and the log reset at least this often while writes arrive...
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);
/// ...or when the log grows past this.
const CHECKPOINT_BYTES: u64 = 12 << 20;

const SNAPSHOTS: u8 = 0;
const OWNERS: u8 = 1;
const PENDING: u8 = 2;
const DELIVERED: u8 = 3;
const PRODUCTS: u8 = 4;
const SKUS: u8 = 5;

/// Group-commit counters: log appends (one durable write each), their time, the writes they
/// covered, and checkpoints (sled flushes) with their time.
#[derive(Debug, Default)]
pub struct CommitStats {
    pub appends: AtomicU64,
    pub append_micros: AtomicU64,
    pub writes: AtomicU64,
    pub checkpoints: AtomicU64,
    pub checkpoint_micros: AtomicU64,
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
            memtable: std::sync::RwLock::default(),
            snapshots: tree("snapshots")?,
            owners: tree("owners")?,
            pending: tree("outbox_pending")?,
            delivered: tree("outbox_delivered")?,
            products: tree("products")?,
            skus: tree("product_skus")?,
            meta: tree("meta")?,
            db,
        };
        let (mut wal, batches) = Wal::open(&dir.join("wal"))
            .map_err(|e| Error::Unavailable(format!("write-ahead log: {e}")))?;
        if !batches.is_empty() {
            tracing::info!(batches = batches.len(), "replaying the write-ahead log");
            for op in batches.iter().flatten() {
                trees.apply(op)?;
            }
        }
        trees.drop_unlogged_events(&batches)?;
        trees.db.flush().map_err(storage)?;
        wal.reset()
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

    pub fn commit_stats(&self) -> Arc<CommitStats> {
        self.commit_stats.clone()
    }

    /// Runs `op` on the writer thread; resolves with its result once the write is durable.
    async fn write<T, F>(&self, op: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&Trees, &mut Vec<Op>) -> Result<T, Error> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job = Job::Other(Box::new(move |trees, ops| {
            let result = op(trees, ops);
            Box::new(move |flushed| {
                let _ = tx.send(once_durable(result, &flushed));
            })
        }));
        self.submit(job, rx).await
    }

    /// Saves a snapshot on the writer thread; resolves with the new version once it is durable.
    async fn write_snapshot(&self, write: SnapshotWrite) -> Result<u64, Error> {
        let (tx, rx) = oneshot::channel();
        self.submit(Job::Save(write, tx), rx).await
    }

    /// Queues `job` for the writer thread and waits for its result on `reply`.
    async fn submit<T>(
        &self,
        job: Job,
        reply: oneshot::Receiver<Result<T, Error>>,
    ) -> Result<T, Error> {
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
        reply
            .await
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Outbox, OutboxEntry};

    fn entry(id: &str) -> OutboxEntry {
        OutboxEntry {
            trace_parent: None,
            event_id: id.into(),
            routing_key: "order.created".into(),
            payload: vec![],
            created_at_ms: 0,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pruning_walks_outbox_order_and_stops_at_the_first_young_entry() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        for id in ["old", "from-the-future", "young", "old-but-behind"] {
            store.append(entry(id)).await.unwrap();
        }
        let records = store.pending(10).await.unwrap();
        assert_eq!(records.len(), 4);
        for (record, at) in records.iter().zip([10, u64::MAX, 200, 20]) {
            store
                .mark_delivered(std::slice::from_ref(record), at)
                .await
                .unwrap();
        }
        // "old", and "from-the-future" (stamped before a clock was set back): "young" stops the
        // walk, and "old-but-behind" waits for it.
        assert_eq!(store.prune_delivered(100).await, Ok(2));
        assert_eq!(store.prune_delivered(100).await, Ok(0));
        assert_eq!(store.prune_delivered(201).await, Ok(2));
        assert_eq!(store.trees.delivered.len(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn outbox_entries_of_unlogged_writes_are_dropped_on_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SledStore::open(dir.path()).unwrap();
            store.append(entry("acknowledged")).await.unwrap();
        } // clean close: checkpoint, log reset
        {
            // As if sled had written out an entry for a batch whose log append never happened.
            let db = sled::Config::new()
                .path(dir.path().join("db"))
                .open()
                .unwrap();
            let pending = db.open_tree("outbox_pending").unwrap();
            pending
                .insert(
                    999u64.to_be_bytes(),
                    crate::record::encode_outbox(&entry("phantom")),
                )
                .unwrap();
            db.flush().unwrap();
        }
        // sled's flusher thread lets go of the directory lock shortly after the handle drops.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let store = loop {
            match SledStore::open(dir.path()) {
                Ok(store) => break store,
                Err(e)
                    if std::time::Instant::now() < deadline && e.to_string().contains("lock") =>
                {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(e) => panic!("{e}"),
            }
        };
        let ids: Vec<String> = store
            .pending(10)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.entry.event_id)
            .collect();
        assert_eq!(ids, vec!["acknowledged"]);
        assert_eq!(store.depth().await, Ok(1));
    }

    /// A key read while absent (remembered as absent) reads as written once a write lands, and
    /// still after a checkpoint moved the value from the memtable to sled.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_snapshot_read_as_absent_is_found_once_written_and_after_a_checkpoint() {
        use crate::{SnapshotStore, SnapshotWrite};
        let dir = tempfile::tempdir().unwrap();
        let store =
            SledStore::open_with_checkpoints(dir.path(), Duration::from_millis(20)).unwrap();
        for _ in 0..2 {
            assert_eq!(store.load("inventory", "SKU-1").await.unwrap(), None);
            assert_eq!(store.version("inventory", "SKU-1").await, Ok(0));
        }
        let write = SnapshotWrite {
            kind: "inventory",
            key: "SKU-1".into(),
            expected: 0,
            epoch: 0,
            owner: None,
            data: vec![7, 8, 9],
            outbox: Vec::new(),
        };
        assert_eq!(store.save(write).await, Ok(1));
        let data = |s: Option<crate::Snapshot>| s.map(|s| (s.version, s.data));
        assert_eq!(
            data(store.load("inventory", "SKU-1").await.unwrap()),
            Some((1, vec![7, 8, 9]))
        );
        let stats = store.commit_stats();
        let before = stats.checkpoints.load(Ordering::Relaxed);
        for _ in 0..500 {
            if stats.checkpoints.load(Ordering::Relaxed) > before {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            stats.checkpoints.load(Ordering::Relaxed) > before,
            "no checkpoint ran"
        );
        assert_eq!(
            data(store.load("inventory", "SKU-1").await.unwrap()),
            Some((1, vec![7, 8, 9]))
        );
        assert_eq!(store.version("inventory", "SKU-1").await, Ok(1));
    }
}
