//! What a member reports about itself: counters for `/metrics` and the status document of
//! `/admin/cluster` (this node's view: members, shards per node, every shard's owner and epoch,
//! shards in motion, the last handoffs).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use emporium_persistence::NodeRecord;
use serde::Serialize;

use crate::handoff::ShardState;
use crate::ownership::Ownership;
use crate::shard_map::NodeId;

/// Upper bounds (seconds) of the handoff-duration histogram.
pub const HANDOFF_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

#[derive(Debug, Default)]
pub struct NodeStats {
    /// Shards this node claimed (unowned, or from a holder whose claim expired).
    pub claims: AtomicU64,
    /// Handoffs this node completed (each moves a batch of shards to one node).
    pub handoffs: AtomicU64,
    handoff_buckets: [AtomicU64; 10],
    handoff_micros: AtomicU64,
}

impl NodeStats {
    pub fn record_handoff(&self, took: Duration) {
        self.handoffs.fetch_add(1, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        for (bound, bucket) in HANDOFF_BUCKETS.iter().zip(&self.handoff_buckets) {
            if secs <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.handoff_micros.fetch_add(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Cumulative bucket counts (as Prometheus wants them), the count and the sum in seconds.
    pub fn handoff_histogram(&self) -> (Vec<(f64, u64)>, u64, f64) {
        let buckets = HANDOFF_BUCKETS
            .iter()
            .zip(&self.handoff_buckets)
            .map(|(b, c)| (*b, c.load(Ordering::Relaxed)))
            .collect();
        let count = self.handoffs.load(Ordering::Relaxed);
        let sum = self.handoff_micros.load(Ordering::Relaxed) as f64 / 1e6;
        (buckets, count, sum)
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HandoffRecord {
    pub shards: usize,
    pub from: u32,
    /// `None`: released (no live node to take them).
    pub to: Option<u32>,
    pub at_ms: u64,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberStatus {
    pub ordinal: u32,
    pub address: String,
    pub generation: u64,
    /// `absent` (discovered, never registered), `joining` (registered, owns nothing yet),
    /// `serving`, `leaving` or `gone` (lease expired).
    pub state: &'static str,
    pub shards: usize,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardStatus {
    pub shard: u32,
    /// `None`: nobody owns it now.
    pub owner: Option<u32>,
    pub epoch: Option<u64>,
    /// `serving` (here), `draining` (leaving here), `remote`, `unowned` or `unknown`.
    pub state: &'static str,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    pub node: u32,
    pub generation: u64,
    pub leaving: bool,
    pub claim_valid: bool,
    pub shard_count: u32,
    pub members: Vec<MemberStatus>,
    /// Shards that are released, unknown to this node or being handed off by it.
    pub in_motion: usize,
    pub shards: Vec<ShardStatus>,
    pub handoffs: Vec<HandoffRecord>,
    pub started_at_ms: u64,
}

impl ClusterStatus {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn build(
        me: NodeId,
        leaving: bool,
        ownership: &Ownership,
        nodes: &[NodeRecord],
        discovered: &BTreeMap<u32, SocketAddr>,
        now_ms: u64,
        handoffs: Vec<HandoffRecord>,
        started_at_ms: u64,
    ) -> Self {
        let states = ownership.states();
        let shards: Vec<ShardStatus> = states
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let (owner, state) = match *s {
                    ShardState::Serving { .. } => (Some(me.ordinal), "serving"),
                    ShardState::Draining { .. } => (Some(me.ordinal), "draining"),
                    ShardState::Remote { owner, .. } => (Some(owner), "remote"),
                    ShardState::Unowned { .. } => (None, "unowned"),
                    ShardState::Unknown => (None, "unknown"),
                };
                ShardStatus {
                    shard: u32::try_from(i).unwrap_or(u32::MAX),
                    owner,
                    epoch: s.epoch().map(|e| e.0),
                    state,
                }
            })
            .collect();
        let mut per_node: BTreeMap<u32, usize> = BTreeMap::new();
        for s in &shards {
            if let Some(o) = s.owner {
                *per_node.entry(o).or_default() += 1;
            }
        }
        let mut ordinals: Vec<u32> = discovered.keys().copied().collect();
        ordinals.extend(nodes.iter().map(|n| n.ordinal));
        ordinals.push(me.ordinal);
        ordinals.sort_unstable();
        ordinals.dedup();
        let members = ordinals
            .into_iter()
            .map(|ordinal| {
                let record = nodes.iter().find(|n| n.ordinal == ordinal);
                let owned = per_node.get(&ordinal).copied().unwrap_or(0);
                let state = match record {
                    None => "absent",
                    Some(n) if n.lease_until_ms <= now_ms => "gone",
                    Some(n) if n.leaving => "leaving",
                    Some(_) if owned == 0 => "joining",
                    Some(_) => "serving",
                };
                MemberStatus {
                    ordinal,
                    address: discovered
                        .get(&ordinal)
                        .map(ToString::to_string)
                        .or_else(|| record.map(|n| n.address.clone()))
                        .unwrap_or_default(),
                    generation: record.map_or(0, |n| n.generation),
                    state,
                    shards: owned,
                }
            })
            .collect();
        let in_motion = shards
            .iter()
            .filter(|s| matches!(s.state, "draining" | "unowned" | "unknown"))
            .count();
        Self {
            node: me.ordinal,
            generation: me.generation,
            leaving,
            claim_valid: ownership.claim_valid(),
            shard_count: ownership.map().shard_count(),
            members,
            in_motion,
            shards,
            handoffs,
            started_at_ms,
        }
    }
}
