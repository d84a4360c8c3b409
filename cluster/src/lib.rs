//! Placement for Emporium: which shard an entity lives in, and which node owns that shard.
//!
//! Solves: a pinned, platform-independent key hash (never std `Hash`/`RandomState`) onto a fixed
//! number of shards, and a consistent shard-to-node map (jump consistent hash over StatefulSet
//! ordinals) whose every version carries an [`Epoch`], so stale owners can be fenced. Finds the
//! peers: the node's ordinal from its host name ([`identity`]), the StatefulSet's other pods
//! through the headless service's DNS records ([`dns`]) or a static list, and the changes between
//! two views of them as typed [`Change`]s ([`membership`]).
//!
//! Deliberately does not: talk to peers, or know about actors. On one node the map has
//! a single member and owns every shard; adding nodes changes where a shard lives, not how a request
//! is routed.

pub mod dns;
mod hash;
pub mod identity;
pub mod membership;
mod shard_map;
#[cfg(feature = "testsuite")]
pub mod testkit;

pub use dns::{Discovery, DnsOptions};
pub use hash::{fnv1a64, jump_consistent_hash};
pub use identity::{ordinal_from_hostname, statefulset_name};
pub use membership::{diff, parse_static, Change, Member};
pub use shard_map::{Epoch, Error, NodeId, Placement, ShardId, ShardMap};
