//! Placement for Emporium: which shard an entity lives in, and which node owns that shard.
//!
//! Solves: a pinned, platform-independent key hash (never std `Hash`/`RandomState`) onto a fixed
//! number of shards, and a consistent shard-to-node map (jump consistent hash over StatefulSet
//! ordinals) whose every version carries an [`Epoch`], so stale owners can be fenced.
//!
//! Deliberately does not: talk to peers, resolve DNS, or know about actors. On one node the map has
//! a single member and owns every shard; adding nodes changes where a shard lives, not how a request
//! is routed.

mod hash;
mod shard_map;

pub use hash::{fnv1a64, jump_consistent_hash};
pub use shard_map::{Epoch, Error, NodeId, Placement, ShardId, ShardMap};
