//! Storage for Emporium: narrow traits the engine writes through, and their backends.
//!
//! Solves: durable, version-checked snapshot writes (the fencing primitive: a writer that does not
//! hold the version it expects, or that writes under an older shard epoch than the entity's last
//! write, is refused), an order-event outbox written in the same atomic write as the snapshot it
//! describes, the product catalog with a unique SKU, and, in a store a cluster shares
//! ([`Leases`]), node generations with their leases and each shard's owner and epoch. Every `save`
//! returns only after the write is durable; the sled backend makes that cheap with group commit.
//!
//! Deliberately does not: know domain types (values are opaque bytes carrying their own format
//! marker, encoded by the engine), speak JSON, or retry. Backends: `sled` (embedded default; one
//! node only, so no [`Leases`], and it ignores write epochs: no other writer exists), `mongo`
//! (MongoDB-compatible servers: MongoDB, DocumentDB, FerretDB) and `memory` (tests and in-memory
//! benches; not durable, never used by the binary). Event sinks: `amqp` ([`AmqpSink`],
//! RabbitMQ with publisher confirms). `CachedSnapshots` puts Redis in front of any snapshot store as
//! a cache that only makes activation faster: the wrapped store stays the truth.
//!
//! With the `testsuite` feature: `conformance`, the suite every store must pass, and `testkit`,
//! the harness the crates' tests share to reach the real servers (never used by the binary).

#[cfg(feature = "amqp")]
mod amqp;
mod error;
mod memory;
#[cfg(feature = "mongodb")]
mod mongo;
// Envelopes are encoded only by the backends that store bytes (sled, and Redis for the cache).
#[cfg_attr(not(any(feature = "sled", feature = "redis")), allow(dead_code))]
mod record;
#[cfg(feature = "redis")]
mod redis_cache;
#[cfg(feature = "sled")]
mod sled_store;
#[cfg(any(feature = "redis", feature = "amqp"))]
pub mod tls;
mod traits;
#[cfg(feature = "sled")]
mod wal;

#[cfg(feature = "testsuite")]
pub mod conformance;
#[cfg(feature = "testsuite")]
pub mod testkit;

#[cfg(feature = "amqp")]
pub use amqp::{AmqpOptions, AmqpSink, MIN_RECONNECT_INTERVAL};
pub use error::Error;
pub use memory::MemoryStore;
#[cfg(feature = "mongodb")]
pub use mongo::MongoStore;
pub use record::{
    NodeRecord, NodeRef, OutboxEntry, OutboxRecord, ShardRecord, Snapshot, SnapshotWrite,
};
#[cfg(feature = "redis")]
pub use redis_cache::{CacheOptions, CachedSnapshots};
#[cfg(feature = "sled")]
pub use sled_store::{CommitStats, SledStore};
pub use traits::{CacheStats, CatalogStore, EventSink, Leases, Outbox, SnapshotStore, Stores};
