//! Placement and ownership for Emporium: which shard an entity lives in, which node owns that
//! shard now, and how ownership moves between nodes without two of them serving one shard.
//!
//! Solves: a pinned, platform-independent key hash (never std `Hash`/`RandomState`) onto a fixed
//! number of shards; rendezvous hashing of shards over the live StatefulSet ordinals (minimal
//! movement, a deterministic stand-in for an absent ordinal); the per-shard handoff state machine
//! as a pure function; and this node's shard table, which admits, forwards or holds every entity
//! command and counts the ones in flight so a handoff completes only when they are done. Finds the
//! peers: the node's ordinal from its host name ([`identity`]), the StatefulSet's other pods
//! through the headless service's DNS records ([`dns`]) or a static list, and the changes between
//! two views of them as typed [`Change`]s ([`membership`]). Talks to them: the peer link
//! ([`peer`]) carries versioned messages ([`wire`]) over authenticated, multiplexed connections,
//! with errors that say whether a retry is safe; [`node`] is a member's control loop (lease,
//! claims, handoffs).
//!
//! Deliberately does not: know actors, entity kinds or HTTP. On one node the table owns every
//! shard at epoch 0 and admits without counting.

pub mod dns;
mod forward;
mod handoff;
mod hash;
pub mod identity;
pub mod membership;
pub mod node;
mod ownership;
pub mod peer;
mod reconcile;
mod shard_map;
pub mod stats;
#[cfg(feature = "testsuite")]
pub mod testkit;
pub mod wire;

pub use dns::{Discovery, DnsOptions};
pub use forward::{Forward, ForwardError, ForwardFuture, Forwarder};
pub use handoff::{step, Action, Event, Route, ShardState};
pub use hash::fnv1a64;
pub use identity::{ordinal_from_hostname, statefulset_name};
pub use membership::{diff, parse_static, Change, Member};
pub use node::{Node, NodeOptions, ShardHost};
pub use ownership::{Admission, HoldOptions, LocalGuard, Ownership, OwnershipStats, RouteError};
pub use peer::{
    PeerClient, PeerClientOptions, PeerError, PeerHandler, PeerOrigin, PeerServer,
    PeerServerOptions, PeerServerStop, PeerStats,
};
pub use shard_map::{score, Epoch, Error, NodeId, ShardId, ShardMap};
pub use wire::{Forwarded, Notice, OwnerChange, PeerReply, PeerRequest, WIRE_FORMAT};
