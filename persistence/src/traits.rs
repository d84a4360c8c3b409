use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;

use async_trait::async_trait;

use crate::{
    Error, NodeRecord, NodeRef, OutboxEntry, OutboxRecord, ShardRecord, Snapshot, SnapshotWrite,
};

/// Versioned entity snapshots. The compare-and-set in `save` is the fencing primitive.
#[async_trait]
pub trait SnapshotStore: Send + Sync + 'static {
    async fn load(&self, kind: &str, key: &str) -> Result<Option<Snapshot>, Error>;
    /// Applies the write iff the stored version equals `write.expected` (0 = absent), together
    /// with its outbox entries, atomically. Returns the new version. Durable when it returns `Ok`.
    /// A store nodes share also refuses ([`Error::Fenced`], checked first) a write whose
    /// `epoch` is older than the one the entity was last written under, and stores the write's.
    async fn save(&self, write: SnapshotWrite) -> Result<u64, Error>;
    /// Every snapshot of `kind` whose owner is `owner`.
    async fn list_by_owner(&self, kind: &str, owner: &str) -> Result<Vec<Snapshot>, Error>;
    /// The stored version of an entity (0 = absent), without its data. Caches check what they
    /// hold against it.
    async fn version(&self, kind: &str, key: &str) -> Result<u64, Error> {
        Ok(self.load(kind, key).await?.map_or(0, |s| s.version))
    }
    /// Whether the store answers (for `/readyz`); embedded stores always do.
    async fn ping(&self) -> Result<(), Error> {
        Ok(())
    }
}

/// Events waiting for the relay. Entries are appended only through [`SnapshotStore::save`].
#[async_trait]
pub trait Outbox: Send + Sync + 'static {
    /// The oldest undelivered entries, at most `limit`. A store shared by several processes
    /// claims them for this one for a lease (so one relay publishes them), until they are marked
    /// delivered or the lease ends; reading again renews it.
    async fn pending(&self, limit: usize) -> Result<Vec<OutboxRecord>, Error>;
    /// Marks entries (as returned by `pending`) delivered: kept for the retention period, then
    /// pruned. Marking an entry twice is harmless. Durable on `Ok`.
    async fn mark_delivered(&self, records: &[OutboxRecord], at_ms: u64) -> Result<(), Error>;
    /// Gives up the claim on entries this process read but could not deliver, so another
    /// process's relay can take them now rather than when the lease ends. Nothing to do for a
    /// store only one process uses.
    async fn release(&self, _records: &[OutboxRecord]) -> Result<(), Error> {
        Ok(())
    }
    /// Number of undelivered entries.
    async fn depth(&self) -> Result<u64, Error>;
    /// Drops entries delivered before `before_ms`; returns how many. A store may leave some for
    /// a later call (to bound the work of one), never drops one delivered later.
    async fn prune_delivered(&self, before_ms: u64) -> Result<u64, Error>;
    /// Appends without a snapshot (used by conformance tests and re-queues).
    async fn append(&self, entry: OutboxEntry) -> Result<u64, Error>;
}

/// Where the outbox relay hands events (RabbitMQ in production, in-process on the embedded
/// default). Delivery is at least once: consumers dedupe by `event_id`.
#[async_trait]
pub trait EventSink: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// Hands over every entry, in order. Resolves `Ok` only once all of them are safely accepted
    /// (for a broker: persisted and confirmed); on `Err` the relay re-sends the whole batch.
    async fn publish(&self, entries: &[OutboxEntry]) -> Result<(), Error>;
    /// Whether the last attempt to reach the sink worked (for `/readyz` and `/metrics`).
    fn healthy(&self) -> bool {
        true
    }
}

/// Counters of a snapshot cache, for `/metrics`.
#[derive(Debug, Default)]
pub struct CacheStats {
    /// Loads served from Redis.
    pub hits: AtomicU64,
    /// Loads of a cached kind served from the store (absent, stale, skipped or failed in Redis).
    pub misses: AtomicU64,
    /// Redis commands that failed or timed out.
    pub errors: AtomicU64,
    /// Whether the last Redis command worked (false until the first one has).
    pub healthy: AtomicBool,
}

/// Products, keyed by id, with a unique SKU.
#[async_trait]
pub trait CatalogStore: Send + Sync + 'static {
    async fn list_products(&self) -> Result<Vec<Vec<u8>>, Error>;
    /// Fails with `Duplicate` if the SKU is taken.
    async fn insert_product(&self, id: &str, sku: &str, data: Vec<u8>) -> Result<(), Error>;
    /// Fails with `NotFound` for an unknown id and `Duplicate` if the new SKU belongs to another.
    async fn update_product(&self, id: &str, sku: &str, data: Vec<u8>) -> Result<(), Error>;
    /// Returns whether it existed.
    async fn delete_product(&self, id: &str) -> Result<bool, Error>;
}

/// Node generations and shard ownership, in a store every node of a cluster shares. Each call is
/// one atomic step of the store (per document); none is a read-modify-write from the caller.
#[async_trait]
pub trait Leases: Send + Sync + 'static {
    /// Registers a new generation of `ordinal` (the previous one + 1; 1 for the first) with its
    /// address and lease. `superseded_until_ms` is the lease the previous generation held at
    /// that moment (0 if none): a renew racing the registration either lands before it (and is
    /// counted) or is refused.
    async fn register(
        &self,
        ordinal: u32,
        address: &str,
        lease_until_ms: u64,
    ) -> Result<NodeRecord, Error>;
    /// Extends the lease of this generation (never shortens it: a delayed renew cannot undo a
    /// later one) and sets `leaving`. `Ok(false)` when a newer generation has registered: this
    /// one is superseded and must stop serving.
    async fn renew(&self, node: NodeRef, lease_until_ms: u64, leaving: bool)
        -> Result<bool, Error>;
    /// Every ordinal's latest generation, by ordinal.
    async fn nodes(&self) -> Result<Vec<NodeRecord>, Error>;
    /// Creates the missing shard records `0..count` (no owner, epoch 0); existing ones are left
    /// as they are. Idempotent, and safe when several nodes call it at once.
    async fn ensure_shards(&self, count: u32) -> Result<(), Error>;
    /// Every shard record, by shard.
    async fn shards(&self) -> Result<Vec<ShardRecord>, Error>;
    /// For every shard in `shards` whose owner is exactly `from` (`None` = unowned), atomically
    /// per shard: owner = `to`, epoch + 1 (also when `from == to`: a re-claim is a new epoch).
    /// Returns the records of `shards` (those that exist) as they are after the update, by
    /// shard: the caller keeps those whose owner is `to`.
    async fn transfer(
        &self,
        shards: &[u32],
        from: Option<NodeRef>,
        to: Option<NodeRef>,
    ) -> Result<Vec<ShardRecord>, Error>;
}

/// The set of stores a node runs on, chosen by configuration.
#[derive(Clone)]
pub struct Stores {
    pub snapshots: Arc<dyn SnapshotStore>,
    pub outbox: Arc<dyn Outbox>,
    pub catalog: Arc<dyn CatalogStore>,
    /// Shard ownership, for a store several nodes can share (`None` for sled: one node only).
    pub leases: Option<Arc<dyn Leases>>,
}

impl Stores {
    /// All three roles served by one backend value, for one node (no leases).
    pub fn from_backend<B>(backend: Arc<B>) -> Self
    where
        B: SnapshotStore + Outbox + CatalogStore,
    {
        Self {
            snapshots: backend.clone(),
            outbox: backend.clone(),
            catalog: backend,
            leases: None,
        }
    }

    /// All four roles served by one backend value that several nodes can share.
    pub fn from_shared_backend<B>(backend: Arc<B>) -> Self
    where
        B: SnapshotStore + Outbox + CatalogStore + Leases,
    {
        Self {
            leases: Some(backend.clone()),
            ..Self::from_backend(backend)
        }
    }
}
