//! The trees of the sled backend, the snapshot memtable, and the writes the writer thread applies.

use std::sync::atomic::{AtomicU64, Ordering};

use sled::transaction::ConflictableTransactionError;
use sled::Transactional;

use super::{
    del, owner_prefix, put, snapshot_key, storage, tx_error, OWNERS, PENDING, SKUS, SNAPSHOTS,
};
use super::{DELIVERED, PRODUCTS};
use crate::record::{encode_outbox, encode_snapshot_parts, snapshot_version};
use crate::wal::Op;

use super::memtable::{Known, Memtable};

const CHECKPOINT_SEQ: &[u8] = b"checkpoint_seq";
use crate::{Error, SnapshotWrite};

pub(super) struct Trees {
    pub(super) db: sled::Db,
    pub(super) snapshots: sled::Tree,
    pub(super) owners: sled::Tree,
    pub(super) pending: sled::Tree,
    pub(super) delivered: sled::Tree,
    pub(super) products: sled::Tree,
    pub(super) skus: sled::Tree,
    /// `checkpoint_seq`: the next outbox sequence number at the last checkpoint.
    pub(super) meta: sled::Tree,
    pub(super) depth: AtomicU64,
    /// Next outbox sequence number; only the writer thread takes them.
    pub(super) next_seq: AtomicU64,
    /// Outbox entries below this sequence number are durable (in the log or in sled).
    pub(super) durable_seq: AtomicU64,
    /// Snapshot values written since the last checkpoint, by sled key. Only the writer mutates it.
    pub(super) memtable: std::sync::RwLock<Memtable>,
}

impl Trees {
    pub(super) fn next_seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::Relaxed)
    }

    pub(super) fn tree(&self, id: u8) -> Option<&sled::Tree> {
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
    pub(super) fn snapshot_bytes(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        self.read_snapshot(key, |bytes| Ok(bytes.to_vec()))
    }

    /// The stored version of a snapshot key (0: absent), read in place: no copy, no decode.
    pub(super) fn snapshot_version(&self, key: &[u8], entity: &str) -> Result<u64, Error> {
        Ok(self
            .read_snapshot(key, |bytes| snapshot_version(entity, bytes))?
            .unwrap_or(0))
    }

    /// Reads a snapshot key's bytes with `read`: from the memtable, else from sled. A key found in
    /// neither is remembered as absent, so the next read of it skips sled.
    fn read_snapshot<T>(
        &self,
        key: &[u8],
        read: impl FnOnce(&[u8]) -> Result<T, Error>,
    ) -> Result<Option<T>, Error> {
        let spills = match self.memtable_read().lookup(key) {
            Known::Value(bytes) => return read(bytes).map(Some),
            Known::Absent => return Ok(None),
            Known::Unknown { spills } => spills,
        };
        match self.snapshots.get(key).map_err(storage)? {
            Some(bytes) => read(&bytes).map(Some),
            None => {
                self.memtable_write().mark_absent(key, spills);
                Ok(None)
            }
        }
    }

    pub(super) fn memtable_read(&self) -> std::sync::RwLockReadGuard<'_, Memtable> {
        self.memtable
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn memtable_write(&self) -> std::sync::RwLockWriteGuard<'_, Memtable> {
        self.memtable
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writes every dirty snapshot to sled (once per key), then forgets them. sled has each value
    /// before the memtable lets go of it, so readers never miss one.
    pub(super) fn spill_memtable(&self) -> Result<(), Error> {
        // Only this (the writer) thread changes values, so they cannot change under the batch.
        let mut batch = sled::Batch::default();
        let mut dirty = false;
        for (key, value) in self.memtable_read().values() {
            batch.insert(key.as_slice(), value.as_slice());
            dirty = true;
        }
        if !dirty {
            return Ok(());
        }
        self.snapshots.apply_batch(batch).map_err(storage)?;
        self.memtable_write().spilled();
        Ok(())
    }

    /// Records, before a checkpoint's flush, the outbox sequence number it covers up to.
    pub(super) fn mark_checkpoint(&self) -> Result<(), Error> {
        let next = self.next_seq.load(Ordering::Relaxed);
        self.meta
            .insert(CHECKPOINT_SEQ, &next.to_be_bytes())
            .map(drop)
            .map_err(storage)
    }

    /// Removes outbox entries that sled wrote out for a batch whose log append never happened
    /// (the process died in between): past the last checkpoint and absent from the log, they
    /// belong to writes that were never acknowledged, and must not be published.
    pub(super) fn drop_unlogged_events(&self, replayed: &[Vec<Op>]) -> Result<(), Error> {
        let checkpoint_seq = self
            .meta
            .get(CHECKPOINT_SEQ)
            .map_err(storage)?
            .and_then(|v| v.as_ref().try_into().ok())
            .map_or(0, u64::from_be_bytes);
        let logged: std::collections::HashSet<&[u8]> = replayed
            .iter()
            .flatten()
            .filter(|op| op.tree == PENDING)
            .map(|op| op.key.as_slice())
            .collect();
        for item in self.pending.range(checkpoint_seq.to_be_bytes()..) {
            let (key, _) = item.map_err(storage)?;
            if !logged.contains(key.as_ref()) {
                tracing::warn!(seq = ?key.as_ref(), "dropping an outbox entry of an unacknowledged write");
                self.pending.remove(&key).map_err(storage)?;
            }
        }
        Ok(())
    }

    /// Replays one logged operation.
    pub(super) fn apply(&self, op: &Op) -> Result<(), Error> {
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

    pub(super) fn save(&self, write: &SnapshotWrite, ops: &mut Vec<Op>) -> Result<u64, Error> {
        let key = snapshot_key(write.kind, &write.key);
        // `write.epoch` is ignored: sled serves one node (a cluster needs a shared store), so no
        // other owner can exist to fence, and the version check alone keeps a single writer.
        // Only this thread writes, so the check and the write below cannot interleave with another.
        let found = self.snapshot_version(&key, &write.key)?;
        if found != write.expected {
            return Err(Error::Conflict {
                kind: write.kind.to_owned(),
                key: write.key.clone(),
                expected: write.expected,
                found,
            });
        }
        let version = write.expected + 1;
        let encoded = encode_snapshot_parts(version, write.owner.as_deref(), &write.data);
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
        self.memtable_write().insert(key.clone(), encoded.clone());
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
    pub(super) fn drop_stale_skus(
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
