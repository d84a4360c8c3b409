//! The embedded default backend, on sled. Writes are applied in a sled transaction, then wait for
//! a group commit: one flusher thread calls the blocking `Db::flush()` and releases every write
//! that was applied before the flush began. This replaces `flush_async`, which deadlocks under
//! concurrent callers in sled 0.34 (sled issue 1308).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Mutex};

use async_trait::async_trait;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;
use tokio::sync::oneshot;

use crate::record::{decode_outbox, decode_snapshot, encode_outbox, encode_snapshot};
use crate::{
    CatalogStore, Error, Outbox, OutboxEntry, OutboxRecord, Snapshot, SnapshotStore, SnapshotWrite,
};

type FlushWaiter = oneshot::Sender<Result<(), String>>;

pub struct SledStore {
    db: sled::Db,
    snapshots: sled::Tree,
    owners: sled::Tree,
    pending: sled::Tree,
    delivered: sled::Tree,
    products: sled::Tree,
    skus: sled::Tree,
    depth: AtomicU64,
    /// `None` once dropping; the flusher thread ends when the sender goes away.
    flusher: Mutex<Option<mpsc::Sender<FlushWaiter>>>,
    flusher_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl SledStore {
    pub fn open(dir: &Path) -> Result<Self, Error> {
        let db = sled::Config::new()
            .path(dir)
            .mode(sled::Mode::HighThroughput)
            .open()
            .map_err(storage)?;
        let tree = |name: &str| db.open_tree(name).map_err(storage);
        let pending = tree("outbox_pending")?;
        let depth = AtomicU64::new(pending.len() as u64);
        let (tx, rx) = mpsc::channel::<FlushWaiter>();
        let flush_db = db.clone();
        let thread = std::thread::Builder::new()
            .name("sled-group-commit".into())
            .spawn(move || group_commit_loop(&flush_db, &rx))
            .map_err(|e| Error::Unavailable(format!("cannot start flusher: {e}")))?;
        Ok(Self {
            snapshots: tree("snapshots")?,
            owners: tree("owners")?,
            delivered: tree("outbox_delivered")?,
            products: tree("products")?,
            skus: tree("product_skus")?,
            pending,
            depth,
            flusher: Mutex::new(Some(tx)),
            flusher_thread: Mutex::new(Some(thread)),
            db,
        })
    }

    /// Resolves once everything written before the call is on disk.
    async fn durable(&self) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        {
            let sender = self
                .flusher
                .lock()
                .map_err(|_| Error::Unavailable("flusher lock poisoned".into()))?;
            sender
                .as_ref()
                .ok_or_else(|| Error::Unavailable("store closing".into()))?
                .send(tx)
                .map_err(|_| Error::Unavailable("flusher stopped".into()))?;
        }
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::Unavailable(format!("flush failed: {e}"))),
            Err(_) => Err(Error::Unavailable("flusher stopped".into())),
        }
    }

    fn next_seq(&self) -> Result<u64, Error> {
        // generate_id is monotonic across restarts; +1 keeps 0 free as "none".
        self.db.generate_id().map(|id| id + 1).map_err(storage)
    }
}

impl Drop for SledStore {
    /// Stops the flusher and waits for it, so the database (and its file lock) is released when
    /// the store is dropped.
    fn drop(&mut self) {
        if let Ok(mut sender) = self.flusher.lock() {
            sender.take();
        }
        if let Some(thread) = self.flusher_thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = thread.join();
        }
    }
}

fn group_commit_loop(db: &sled::Db, rx: &mpsc::Receiver<FlushWaiter>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        // Everything queued now was written before this point, so one flush covers it all.
        batch.extend(rx.try_iter());
        let result = db.flush().map(|_| ()).map_err(|e| e.to_string());
        if let Err(e) = &result {
            tracing::error!(error = %e, "sled flush failed");
        }
        for waiter in batch {
            let _ = waiter.send(result.clone());
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

fn snapshot_key(kind: &str, key: &str) -> Vec<u8> {
    [kind.as_bytes(), &[0], key.as_bytes()].concat()
}

fn owner_prefix(kind: &str, owner: &str) -> Vec<u8> {
    [kind.as_bytes(), &[0], owner.as_bytes(), &[0]].concat()
}

#[async_trait]
impl SnapshotStore for SledStore {
    async fn load(&self, kind: &str, key: &str) -> Result<Option<Snapshot>, Error> {
        match self
            .snapshots
            .get(snapshot_key(kind, key))
            .map_err(storage)?
        {
            Some(bytes) => decode_snapshot(key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    async fn save(&self, write: SnapshotWrite) -> Result<u64, Error> {
        let key = snapshot_key(write.kind, &write.key);
        let mut seqs = Vec::with_capacity(write.outbox.len());
        for _ in &write.outbox {
            seqs.push(self.next_seq()?);
        }
        let outbox: Vec<(u64, Vec<u8>)> = seqs
            .into_iter()
            .zip(write.outbox.iter().map(encode_outbox))
            .collect();
        let record = Snapshot {
            version: write.expected + 1,
            owner: write.owner.clone(),
            data: write.data,
        };
        let encoded = encode_snapshot(&record);
        let owner_key = write
            .owner
            .as_deref()
            .map(|o| [owner_prefix(write.kind, o), write.key.as_bytes().to_vec()].concat());
        (&self.snapshots, &self.owners, &self.pending)
            .transaction(|(snapshots, owners, pending)| {
                let found = match snapshots.get(&key)? {
                    Some(bytes) => {
                        decode_snapshot(&write.key, &bytes)
                            .map_err(ConflictableTransactionError::Abort)?
                            .version
                    }
                    None => 0,
                };
                if found != write.expected {
                    return Err(ConflictableTransactionError::Abort(Error::Conflict {
                        kind: write.kind.to_owned(),
                        key: write.key.clone(),
                        expected: write.expected,
                        found,
                    }));
                }
                snapshots.insert(key.as_slice(), encoded.as_slice())?;
                if let Some(owner_key) = &owner_key {
                    owners.insert(owner_key.as_slice(), &[] as &[u8])?;
                }
                for (seq, entry) in &outbox {
                    pending.insert(&seq.to_be_bytes(), entry.as_slice())?;
                }
                Ok(())
            })
            .map_err(tx_error)?;
        self.depth.fetch_add(outbox.len() as u64, Ordering::Relaxed);
        self.durable().await?;
        Ok(record.version)
    }

    async fn list_by_owner(&self, kind: &str, owner: &str) -> Result<Vec<Snapshot>, Error> {
        let prefix = owner_prefix(kind, owner);
        let mut out = Vec::new();
        for item in self.owners.scan_prefix(&prefix) {
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
        let mut out = Vec::new();
        for item in self.pending.iter().take(limit) {
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
        let moved = (&self.pending, &self.delivered)
            .transaction(|(pending, delivered)| {
                let mut moved = 0u64;
                for seq in seqs {
                    if let Some(value) = pending.remove(&seq.to_be_bytes())? {
                        let stamped = [at_ms.to_be_bytes().as_slice(), value.as_ref()].concat();
                        delivered.insert(&seq.to_be_bytes(), stamped)?;
                        moved += 1;
                    }
                }
                Ok::<_, ConflictableTransactionError<Error>>(moved)
            })
            .map_err(tx_error)?;
        self.depth.fetch_sub(moved, Ordering::Relaxed);
        self.durable().await
    }

    async fn depth(&self) -> Result<u64, Error> {
        Ok(self.depth.load(Ordering::Relaxed))
    }

    async fn prune_delivered(&self, before_ms: u64) -> Result<u64, Error> {
        let mut pruned = 0;
        for item in self.delivered.iter() {
            let (key, value) = item.map_err(storage)?;
            let at = value
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u64::from_be_bytes);
            if at < before_ms {
                self.delivered.remove(key).map_err(storage)?;
                pruned += 1;
            }
        }
        Ok(pruned)
    }

    async fn append(&self, entry: OutboxEntry) -> Result<u64, Error> {
        let seq = self.next_seq()?;
        self.pending
            .insert(seq.to_be_bytes(), encode_outbox(&entry))
            .map_err(storage)?;
        self.depth.fetch_add(1, Ordering::Relaxed);
        self.durable().await?;
        Ok(seq)
    }
}

#[async_trait]
impl CatalogStore for SledStore {
    async fn list_products(&self) -> Result<Vec<Vec<u8>>, Error> {
        self.products
            .iter()
            .values()
            .map(|v| v.map(|v| v.to_vec()).map_err(storage))
            .collect()
    }

    async fn insert_product(&self, id: &str, sku: &str, data: Vec<u8>) -> Result<(), Error> {
        (&self.products, &self.skus)
            .transaction(|(products, skus)| {
                if skus.get(sku.as_bytes())?.is_some() {
                    return Err(ConflictableTransactionError::Abort(Error::Duplicate {
                        what: "sku",
                        value: sku.to_owned(),
                    }));
                }
                skus.insert(sku.as_bytes(), id.as_bytes())?;
                products.insert(id.as_bytes(), data.as_slice())?;
                Ok(())
            })
            .map_err(tx_error)?;
        self.durable().await
    }

    async fn update_product(&self, id: &str, sku: &str, data: Vec<u8>) -> Result<(), Error> {
        (&self.products, &self.skus)
            .transaction(|(products, skus)| {
                if products.get(id.as_bytes())?.is_none() {
                    return Err(ConflictableTransactionError::Abort(Error::NotFound {
                        what: "product",
                        value: id.to_owned(),
                    }));
                }
                if let Some(owner) = skus.get(sku.as_bytes())? {
                    if owner.as_ref() != id.as_bytes() {
                        return Err(ConflictableTransactionError::Abort(Error::Duplicate {
                            what: "sku",
                            value: sku.to_owned(),
                        }));
                    }
                }
                products.insert(id.as_bytes(), data.as_slice())?;
                skus.insert(sku.as_bytes(), id.as_bytes())?;
                Ok(())
            })
            .map_err(tx_error)?;
        // A changed SKU leaves its old mapping behind; drop mappings that point at this id but
        // are not the current SKU.
        for item in self.skus.iter() {
            let (key, owner) = item.map_err(storage)?;
            if owner.as_ref() == id.as_bytes() && key.as_ref() != sku.as_bytes() {
                self.skus.remove(key).map_err(storage)?;
            }
        }
        self.durable().await
    }

    async fn delete_product(&self, id: &str) -> Result<bool, Error> {
        let existed = self
            .products
            .remove(id.as_bytes())
            .map_err(storage)?
            .is_some();
        for item in self.skus.iter() {
            let (key, owner) = item.map_err(storage)?;
            if owner.as_ref() == id.as_bytes() {
                self.skus.remove(key).map_err(storage)?;
            }
        }
        self.durable().await?;
        Ok(existed)
    }
}
