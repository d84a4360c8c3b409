//! Placement and the node-to-node link for Emporium: which shard an entity lives in, which node
//! owns that shard, and how nodes talk to each other.
//!
//! Solves: a pinned, platform-independent key hash (never std `Hash`/`RandomState`) onto a fixed
//! number of shards, and a consistent shard-to-node map (jump consistent hash over StatefulSet
//! ordinals) whose every version carries an [`Epoch`], so stale owners can be fenced. The peer
//! link ([`peer`]) carries versioned messages ([`wire`]) between nodes over authenticated,
//! multiplexed connections, with errors that say whether a retry is safe.
//!
//! Deliberately does not: resolve DNS, know about actors (the peer server takes a handler and
//! the engine's command bytes stay opaque), or depend on actix. On one node the map has a single
//! member and owns every shard; adding nodes changes where a shard lives, not how a request is
//! routed.

mod hash;
pub mod peer;
mod shard_map;
pub mod wire;

pub use hash::{fnv1a64, jump_consistent_hash};
pub use peer::{
    PeerClient, PeerClientOptions, PeerError, PeerHandler, PeerOrigin, PeerServer,
    PeerServerOptions, PeerServerStop, PeerStats,
};
pub use shard_map::{Epoch, Error, NodeId, Placement, ShardId, ShardMap};
pub use wire::{Forwarded, Notice, OwnerChange, PeerReply, PeerRequest, WIRE_FORMAT};
