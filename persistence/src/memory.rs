//! In-memory backend: same semantics as the durable ones, nothing survives the process. Used by
//! unit tests and the in-memory benches; the binary never runs on it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use crate::{
    CatalogStore, Error, Outbox, OutboxEntry, OutboxRecord, Snapshot, SnapshotStore, SnapshotWrite,
};

#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    snapshots: HashMap<(String, String), Snapshot>,
    next_seq: u64,
    pending: BTreeMap<u64, OutboxEntry>,
    delivered: BTreeMap<u64, (OutboxEntry, u64)>,
    products: HashMap<String, (String, Vec<u8>)>,
    skus: HashMap<String, String>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>, Error> {
        self.inner
            .lock()
            .map_err(|_| Error::Unavailable("memory store lock poisoned".into()))
    }
}

impl Inner {
    fn append(&mut self, entry: OutboxEntry) -> u64 {
        self.next_seq += 1;
        self.pending.insert(self.next_seq, entry);
        self.next_seq
    }
}

#[async_trait]
impl SnapshotStore for MemoryStore {
    async fn load(&self, kind: &str, key: &str) -> Result<Option<Snapshot>, Error> {
        Ok(self
            .lock()?
            .snapshots
            .get(&(kind.to_owned(), key.to_owned()))
            .cloned())
    }

    async fn save(&self, write: SnapshotWrite) -> Result<u64, Error> {
        let mut inner = self.lock()?;
        let id = (write.kind.to_owned(), write.key.clone());
        let found = inner.snapshots.get(&id).map_or(0, |s| s.version);
        if found != write.expected {
            return Err(Error::Conflict {
                kind: write.kind.to_owned(),
                key: write.key,
                expected: write.expected,
                found,
            });
        }
        let version = found + 1;
        inner.snapshots.insert(
            id,
            Snapshot {
                version,
                owner: write.owner,
                data: write.data,
            },
        );
        for entry in write.outbox {
            inner.append(entry);
        }
        Ok(version)
    }

    async fn list_by_owner(&self, kind: &str, owner: &str) -> Result<Vec<Snapshot>, Error> {
        let inner = self.lock()?;
        Ok(inner
            .snapshots
            .iter()
            .filter(|((k, _), s)| k == kind && s.owner.as_deref() == Some(owner))
            .map(|(_, s)| s.clone())
            .collect())
    }
}

#[async_trait]
impl Outbox for MemoryStore {
    async fn pending(&self, limit: usize) -> Result<Vec<OutboxRecord>, Error> {
        Ok(self
            .lock()?
            .pending
            .iter()
            .take(limit)
            .map(|(seq, entry)| OutboxRecord {
                seq: *seq,
                entry: entry.clone(),
            })
            .collect())
    }

    async fn mark_delivered(&self, records: &[OutboxRecord], at_ms: u64) -> Result<(), Error> {
        let mut inner = self.lock()?;
        for seq in records.iter().map(|r| r.seq) {
            if let Some(entry) = inner.pending.remove(&seq) {
                inner.delivered.insert(seq, (entry, at_ms));
            }
        }
        Ok(())
    }

    async fn depth(&self) -> Result<u64, Error> {
        Ok(self.lock()?.pending.len() as u64)
    }

    async fn prune_delivered(&self, before_ms: u64) -> Result<u64, Error> {
        let mut inner = self.lock()?;
        let before = inner.delivered.len();
        inner.delivered.retain(|_, (_, at)| *at >= before_ms);
        Ok((before - inner.delivered.len()) as u64)
    }

    async fn append(&self, entry: OutboxEntry) -> Result<u64, Error> {
        Ok(self.lock()?.append(entry))
    }
}

#[async_trait]
impl CatalogStore for MemoryStore {
    async fn list_products(&self) -> Result<Vec<Vec<u8>>, Error> {
        Ok(self
            .lock()?
            .products
            .values()
            .map(|(_, d)| d.clone())
            .collect())
    }

    async fn insert_product(&self, id: &str, sku: &str, data: Vec<u8>) -> Result<(), Error> {
        let mut inner = self.lock()?;
        if inner.skus.contains_key(sku) {
            return Err(Error::Duplicate {
                what: "sku",
                value: sku.to_owned(),
            });
        }
        inner.skus.insert(sku.to_owned(), id.to_owned());
        inner.products.insert(id.to_owned(), (sku.to_owned(), data));
        Ok(())
    }

    async fn update_product(&self, id: &str, sku: &str, data: Vec<u8>) -> Result<(), Error> {
        let mut inner = self.lock()?;
        let Some((old_sku, _)) = inner.products.get(id).cloned() else {
            return Err(Error::NotFound {
                what: "product",
                value: id.to_owned(),
            });
        };
        if inner.skus.get(sku).is_some_and(|owner| owner != id) {
            return Err(Error::Duplicate {
                what: "sku",
                value: sku.to_owned(),
            });
        }
        inner.skus.remove(&old_sku);
        inner.skus.insert(sku.to_owned(), id.to_owned());
        inner.products.insert(id.to_owned(), (sku.to_owned(), data));
        Ok(())
    }

    async fn delete_product(&self, id: &str) -> Result<bool, Error> {
        let mut inner = self.lock()?;
        match inner.products.remove(id) {
            Some((sku, _)) => {
                inner.skus.remove(&sku);
                Ok(true)
            }
            None => Ok(false),
        }
    }
}
