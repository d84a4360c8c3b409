//! The storage traits on [`SledStore`]: reads go straight to the trees (and the memtable),
//! writes go through the writer thread.

use std::sync::atomic::Ordering;

use async_trait::async_trait;
use sled::transaction::ConflictableTransactionError;
use sled::Transactional;

use super::{abort, del, owner_prefix, put, snapshot_key, storage, tx_error, SledStore};
use super::{DELIVERED, PENDING, PRODUCTS, SKUS};
use crate::record::{decode_outbox, decode_snapshot, encode_outbox};
use crate::{
    CatalogStore, Error, Outbox, OutboxEntry, OutboxRecord, Snapshot, SnapshotStore, SnapshotWrite,
};

/// At most this many delivered entries are pruned per call (tens of milliseconds of the writer).
pub(super) const PRUNE_BATCH: u64 = 10_000;

#[async_trait]
impl SnapshotStore for SledStore {
    async fn load(&self, kind: &str, key: &str) -> Result<Option<Snapshot>, Error> {
        match self.trees.snapshot_bytes(&snapshot_key(kind, key))? {
            Some(bytes) => decode_snapshot(key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    async fn save(&self, write: SnapshotWrite) -> Result<u64, Error> {
        self.write_snapshot(write).await
    }

    /// Read in place: no copy of the data, no decode.
    async fn version(&self, kind: &str, key: &str) -> Result<u64, Error> {
        self.trees.snapshot_version(&snapshot_key(kind, key), key)
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

    async fn mark_delivered(&self, records: &[OutboxRecord], at_ms: u64) -> Result<(), Error> {
        let seqs: Vec<u64> = records.iter().map(|r| r.seq).collect();
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

    /// Runs on the writer thread, so it is bounded: it walks the delivered entries in outbox order
    /// (which is delivery order, but for a batch held back and delivered late), stops at the first
    /// one delivered at or after `before_ms` (and not in the future), and removes at most
    /// [`PRUNE_BATCH`] per call. An
    /// older entry behind a younger one waits for a later call; the relay calls every minute.
    /// (Before, every call read the whole delivered tree: a week of events at retention.)
    async fn prune_delivered(&self, before_ms: u64) -> Result<u64, Error> {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(u64::MAX, |d| {
                u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
            });
        self.write(move |trees, ops| {
            let mut pruned = 0;
            for item in trees.delivered.iter() {
                let (key, value) = item.map_err(storage)?;
                let at = value
                    .get(..8)
                    .and_then(|b| b.try_into().ok())
                    .map_or(0, u64::from_be_bytes);
                // A time in the future (the clock was set back since) does not stop the walk.
                if (at >= before_ms && at <= now_ms) || pruned == PRUNE_BATCH {
                    break;
                }
                trees.delivered.remove(&key).map_err(storage)?;
                ops.push(del(DELIVERED, key.to_vec()));
                pruned += 1;
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
