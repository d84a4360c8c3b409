//! The seam between the engine and the peer link: the engine hands a command for a shard owned
//! elsewhere to a [`Forwarder`] and gets the owner's encoded reply back. The cluster node
//! implements it over the peer connections; tests can implement it in memory.

use std::future::Future;
use std::pin::Pin;

use crate::shard_map::ShardId;

/// An entity command on its way to the owner of `shard`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    pub kind: &'static str,
    pub key: String,
    pub shard: ShardId,
    /// How many nodes forwarded it already (a stale table can send it one node too far).
    pub hops: u8,
    /// The command, in the engine's own encoding.
    pub command: Vec<u8>,
    /// Issued by a command in flight here (see [`crate::ShardState::route`]).
    pub nested: bool,
}

/// Why a forwarded command has no reply, classified by whether a retry is safe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForwardError {
    /// It never reached the owner (no connection, refused, overloaded): safe to send again.
    #[error("not sent to node {owner}: {reason}")]
    NotSent { owner: u32, reason: String },
    /// It was sent but no reply came (timeout, connection lost): it may have run.
    #[error("no reply from node {owner}: {reason}")]
    Unknown { owner: u32, reason: String },
}

pub type ForwardFuture = Pin<Box<dyn Future<Output = Result<Vec<u8>, ForwardError>> + Send>>;

pub trait Forwarder: Send + Sync + 'static {
    /// Sends `request` to node `owner` and resolves to its encoded reply.
    fn forward(&self, owner: u32, request: Forward) -> ForwardFuture;

    /// Tells the other nodes that the catalog changed; resolves once they took the news (or a
    /// short bound passed: they also re-read it periodically).
    fn catalog_changed(&self) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async {})
    }
}
