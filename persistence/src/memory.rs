//! In-memory backend: same semantics as the durable ones, nothing survives the process. Used by
//! unit tests and the in-memory benches; the binary never runs on it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use crate::{
    CatalogStore, Error, Leases, NodeRecord, NodeRef, Outbox, OutboxEntry, OutboxRecord,
    ShardRecord, Snapshot, SnapshotStore, SnapshotWrite,
};

#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Each snapshot with the shard epoch it was last written under.
    snapshots: HashMap<(String, String), (Snapshot, u64)>,
    next_seq: u64,
    pending: BTreeMap<u64, OutboxEntry>,
    delivered: BTreeMap<u64, (OutboxEntry, u64)>,
    products: HashMap<String, (String, Vec<u8>)>,
    skus: HashMap<String, String>,
    nodes: BTreeMap<u32, NodeRecord>,
    shards: BTreeMap<u32, ShardRecord>,
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
            .map(|(s, _)| s.clone()))
    }

    async fn save(&self, write: SnapshotWrite) -> Result<u64, Error> {
        let mut inner = self.lock()?;
        let id = (write.kind.to_owned(), write.key.clone());
        let (found, found_epoch) = inner
            .snapshots
            .get(&id)
            .map_or((0, 0), |(s, epoch)| (s.version, *epoch));
        if found_epoch > write.epoch {
            return Err(Error::Fenced {
                kind: write.kind.to_owned(),
                key: write.key,
                epoch: write.epoch,
                found_epoch,
            });
        }
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
            (
                Snapshot {
                    version,
                    owner: write.owner,
                    data: write.data,
                },
                write.epoch,
            ),
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
            .filter(|((k, _), (s, _))| k == kind && s.owner.as_deref() == Some(owner))
            .map(|(_, (s, _))| s.clone())
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

#[async_trait]
impl Leases for MemoryStore {
    async fn register(
        &self,
        ordinal: u32,
        address: &str,
        lease_until_ms: u64,
    ) -> Result<NodeRecord, Error> {
        let mut inner = self.lock()?;
        let previous = inner.nodes.get(&ordinal);
        let record = NodeRecord {
            ordinal,
            generation: previous.map_or(0, |n| n.generation) + 1,
            address: address.to_owned(),
            lease_until_ms,
            leaving: false,
            superseded_until_ms: previous.map_or(0, |n| n.lease_until_ms),
        };
        inner.nodes.insert(ordinal, record.clone());
        Ok(record)
    }

    async fn renew(
        &self,
        node: NodeRef,
        lease_until_ms: u64,
        leaving: bool,
    ) -> Result<bool, Error> {
        let mut inner = self.lock()?;
        match inner.nodes.get_mut(&node.ordinal) {
            Some(n) if n.generation == node.generation => {
                n.lease_until_ms = n.lease_until_ms.max(lease_until_ms);
                n.leaving = leaving;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn nodes(&self) -> Result<Vec<NodeRecord>, Error> {
        Ok(self.lock()?.nodes.values().cloned().collect())
    }

    async fn ensure_shards(&self, count: u32) -> Result<(), Error> {
        let mut inner = self.lock()?;
        for shard in 0..count {
            inner.shards.entry(shard).or_insert(ShardRecord {
                shard,
                owner: None,
                epoch: 0,
            });
        }
        Ok(())
    }

    async fn shards(&self) -> Result<Vec<ShardRecord>, Error> {
        Ok(self.lock()?.shards.values().copied().collect())
    }

    async fn transfer(
        &self,
        shards: &[u32],
        from: Option<NodeRef>,
        to: Option<NodeRef>,
    ) -> Result<Vec<ShardRecord>, Error> {
        let mut inner = self.lock()?;
        let wanted: std::collections::BTreeSet<u32> = shards.iter().copied().collect();
        let mut out = Vec::with_capacity(wanted.len());
        for shard in wanted {
            if let Some(record) = inner.shards.get_mut(&shard) {
                if record.owner == from {
                    record.owner = to;
                    record.epoch += 1;
                }
                out.push(*record);
            }
        }
        Ok(out)
    }
}
