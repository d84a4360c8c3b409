//! Commands for entities whose shard another node owns: encoded (the codec's format marker, then
//! bincode), handed to the cluster's [`Forwarder`](emporium_cluster::Forwarder), and answered by
//! the owner with the same `Result` a local call gives, so the client sees exactly the answers a
//! single node gives. Also the owner's side: decoding a forwarded command and running it.

use std::sync::atomic::{AtomicU64, Ordering};

use emporium_cluster::{Forward, ForwardError, ShardId};

use crate::actor::Behaviour;
use crate::entities::{CartEntity, InventoryEntity, OrderEntity, UserEntity};
use crate::{codec, Engine, Error};

/// A command forwarded at most this many times (a table one change behind sends it one node too
/// far; more means the tables disagree, and the caller gets a retryable error).
const MAX_HOPS: u8 = 3;

/// Forwarding counters, for `/metrics`.
#[derive(Debug, Default)]
pub struct ForwardStats {
    /// Commands this node sent to their owners.
    pub sent: AtomicU64,
    /// Commands other nodes sent here.
    pub served: AtomicU64,
    /// Sends that failed before reaching the owner (retried once, then a 503).
    pub not_sent: AtomicU64,
    /// Sends without a reply (the command may have run; the client gets a 503).
    pub unknown: AtomicU64,
}

/// A forwarded command without a reply.
pub(crate) enum NoReply {
    /// It never reached the owner: the caller may send it again.
    NotSent,
    /// It reached the owner and may have run.
    Unknown(String),
}

impl Engine {
    /// Sends a command to the owner of `shard` and decodes its reply.
    pub(crate) async fn forward<B: Behaviour>(
        &self,
        owner: u32,
        shard: ShardId,
        key: &str,
        cmd: &B::Command,
        hops: u8,
    ) -> Result<Result<B::Reply, Error>, NoReply> {
        if hops >= MAX_HOPS {
            return Ok(Err(Error::NotOwner {
                shard: shard.0,
                owner,
            }));
        }
        let Some(forwarder) = self.inner().forwarder.get() else {
            return Ok(Err(Error::NotOwner {
                shard: shard.0,
                owner,
            }));
        };
        let command = match codec::encode(cmd) {
            Ok(bytes) => bytes,
            Err(e) => return Ok(Err(e)),
        };
        let stats = &self.inner().forwards;
        stats.sent.fetch_add(1, Ordering::Relaxed);
        let request = Forward {
            kind: B::KIND,
            key: key.to_owned(),
            shard,
            hops: hops + 1,
            command,
            nested: crate::actor::is_nested(),
        };
        match forwarder.forward(owner, request).await {
            Ok(reply) => Ok(codec::decode::<Result<B::Reply, Error>>(&reply).and_then(|r| r)),
            Err(ForwardError::NotSent { reason, .. }) => {
                stats.not_sent.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(owner, %reason, "forward not sent");
                Err(NoReply::NotSent)
            }
            Err(e @ ForwardError::Unknown { .. }) => {
                stats.unknown.fetch_add(1, Ordering::Relaxed);
                Err(NoReply::Unknown(e.to_string()))
            }
        }
    }

    /// Tells the other nodes (if any) that the catalog changed, so their next request sees it.
    pub async fn announce_catalog(&self) {
        if let Some(forwarder) = self.inner().forwarder.get() {
            forwarder.catalog_changed().await;
        }
    }

    /// Runs a command another node forwarded here (this node owns its shard, or knows who does)
    /// and encodes the reply.
    pub async fn serve_forwarded(
        &self,
        kind: &str,
        key: &str,
        shard: ShardId,
        hops: u8,
        nested: bool,
        command: &[u8],
    ) -> Vec<u8> {
        self.inner().forwards.served.fetch_add(1, Ordering::Relaxed);
        let serve = self.serve_kind(kind, key, shard, hops, command);
        if nested {
            crate::actor::nested(serve).await
        } else {
            serve.await
        }
    }

    async fn serve_kind(
        &self,
        kind: &str,
        key: &str,
        shard: ShardId,
        hops: u8,
        command: &[u8],
    ) -> Vec<u8> {
        match kind {
            CartEntity::KIND => self.serve::<CartEntity>(key, shard, hops, command).await,
            OrderEntity::KIND => self.serve::<OrderEntity>(key, shard, hops, command).await,
            InventoryEntity::KIND => {
                self.serve::<InventoryEntity>(key, shard, hops, command)
                    .await
            }
            UserEntity::KIND => self.serve::<UserEntity>(key, shard, hops, command).await,
            other => encode_reply::<()>(Err(Error::Codec(format!("unknown entity kind {other}")))),
        }
    }

    async fn serve<B: Behaviour>(
        &self,
        key: &str,
        shard: ShardId,
        hops: u8,
        command: &[u8],
    ) -> Vec<u8> {
        let reply = match codec::decode::<B::Command>(command) {
            Ok(cmd) if shard.0 < self.ownership().map().shard_count() => {
                self.call_in::<B>(shard, key, cmd, hops).await
            }
            Ok(_) => Err(Error::Codec(format!("no shard {}", shard.0))),
            Err(e) => Err(e),
        };
        encode_reply::<B::Reply>(reply)
    }
}

fn encode_reply<R: serde::Serialize>(reply: Result<R, Error>) -> Vec<u8> {
    codec::encode(&reply).unwrap_or_else(|e| {
        // A reply that cannot be encoded is reported as such, in a form that always encodes.
        codec::encode(&Err::<R, Error>(Error::Codec(e.to_string()))).unwrap_or_default()
    })
}
