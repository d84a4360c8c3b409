//! The cluster's families (registered only on a cluster member): members and shards as this
//! node sees them, claims, handoffs, forwarding, commands held for shards in motion, fencing,
//! and the peer protocol's client and server.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use emporium_cluster::{Node, PeerStats};
use emporium_engine::Engine;
use prometheus::proto::MetricFamily;

use super::family::{Def, ScrapeCollector};

pub const MEMBERS: Def = Def::gauge(
    "emporium_cluster_members",
    &["state"],
    "Members this node sees, by state.",
);
pub const SHARDS: Def = Def::gauge(
    "emporium_cluster_shards",
    &["state"],
    "Shards by this node's view of their state (serving: owned and served here).",
);
pub const CLAIMS: Def = Def::counter(
    "emporium_cluster_claims_total",
    &[],
    "Shards this node claimed.",
);
pub const HANDOFF_SECONDS: Def = Def::histogram(
    "emporium_cluster_handoff_seconds",
    &[],
    "Handoffs this node made (hold, drain, passivate, transfer), by duration.",
);
pub const FORWARDED: Def = Def::counter(
    "emporium_cluster_forwarded_total",
    &["outcome"],
    "Entity commands forwarded, by direction and outcome (sent, served, not_sent, no_reply).",
);
pub const HELD: Def = Def::gauge(
    "emporium_cluster_held",
    &[],
    "Commands waiting for a shard in motion.",
);
pub const HELD_TOTAL: Def = Def::counter(
    "emporium_cluster_held_total",
    &[],
    "Commands held for a shard in motion.",
);
pub const HOLD_TIMEOUTS: Def = Def::counter(
    "emporium_cluster_hold_timeouts_total",
    &[],
    "Held commands answered 503 at the hold bound.",
);
pub const FENCED_WRITES: Def = Def::counter(
    "emporium_cluster_fenced_writes_total",
    &[],
    "Writes refused because this node no longer owned the shard.",
);
pub const PEER_ERRORS: Def = Def::counter(
    "emporium_peer_errors_total",
    &["kind"],
    "Peer requests that failed, by kind.",
);
pub const PEER_REQUEST_SECONDS: Def = Def::histogram(
    "emporium_peer_request_seconds",
    &[],
    "Round trips of peer requests that got a reply.",
);
pub const PEER_AUTH_REFUSED: Def = Def::counter(
    "emporium_peer_auth_refused_total",
    &[],
    "Peer connections refused: no or a wrong cluster secret, or not the peer protocol.",
);
pub const PEER_SERVED: Def = Def::counter(
    "emporium_peer_requests_served_total",
    &[],
    "Peer requests this node answered.",
);

pub struct Sources {
    pub engine: Engine,
    pub node: Node,
    pub peer_server: Option<Arc<PeerStats>>,
}

fn load(a: &AtomicU64) -> f64 {
    a.load(Ordering::Relaxed) as f64
}

impl Sources {
    pub fn collector(self) -> Result<impl prometheus::core::Collector, prometheus::Error> {
        let defs = [
            &MEMBERS,
            &SHARDS,
            &CLAIMS,
            &HANDOFF_SECONDS,
            &FORWARDED,
            &HELD,
            &HELD_TOTAL,
            &HOLD_TIMEOUTS,
            &FENCED_WRITES,
            &PEER_ERRORS,
            &PEER_REQUEST_SECONDS,
            &PEER_AUTH_REFUSED,
            &PEER_SERVED,
        ];
        ScrapeCollector::new(&defs, move || self.read())
    }

    fn read(&self) -> Vec<MetricFamily> {
        let status = self.node.status();
        let mut members = MEMBERS.family();
        for st in ["absent", "joining", "serving", "leaving", "gone"] {
            let n = status.members.iter().filter(|m| m.state == st).count();
            members = members.value(&[st], n as f64);
        }
        let mut shards = SHARDS.family();
        for st in ["serving", "draining", "remote", "unowned", "unknown"] {
            let n = status.shards.iter().filter(|s| s.state == st).count();
            shards = shards.value(&[st], n as f64);
        }
        let stats = self.node.stats();
        let (buckets, count, sum) = stats.handoff_histogram();
        let f = self.engine.forward_stats();
        let mut forwarded = FORWARDED.family();
        for (outcome, value) in [
            ("sent", &f.sent),
            ("served", &f.served),
            ("not_sent", &f.not_sent),
            ("no_reply", &f.unknown),
        ] {
            forwarded = forwarded.value(&[outcome], load(value));
        }
        let h = self.engine.ownership().stats();
        let client = self.node.client().stats().snapshot();
        let mut errors = PEER_ERRORS.family();
        for (kind, n) in [
            ("unreachable", client.unreachable),
            ("overloaded", client.overloaded),
            ("timeout", client.timeout),
            ("closed", client.closed),
            ("refused", client.refused),
            ("remote", client.remote),
            ("codec", client.codec),
        ] {
            errors = errors.value(&[kind], n as f64);
        }
        let lat = &client.latency;
        let mut out = vec![
            members.done(),
            shards.done(),
            CLAIMS.family().value(&[], load(&stats.claims)).done(),
            HANDOFF_SECONDS
                .family()
                .histogram(&[], &buckets, count, sum)
                .done(),
            forwarded.done(),
            HELD.family()
                .value(&[], h.held_now.load(Ordering::Relaxed) as f64)
                .done(),
            HELD_TOTAL.family().value(&[], load(&h.held_total)).done(),
            HOLD_TIMEOUTS
                .family()
                .value(&[], load(&h.hold_timeouts))
                .done(),
            FENCED_WRITES
                .family()
                .value(&[], load(&h.fenced_writes))
                .done(),
            errors.done(),
            PEER_REQUEST_SECONDS
                .family()
                .histogram(&[], &lat.buckets, lat.count, lat.sum_seconds)
                .done(),
        ];
        if let Some(server) = &self.peer_server {
            let s = server.snapshot();
            out.push(
                PEER_AUTH_REFUSED
                    .family()
                    .value(&[], s.auth_refused as f64)
                    .done(),
            );
            out.push(
                PEER_SERVED
                    .family()
                    .value(&[], s.requests_served as f64)
                    .done(),
            );
        }
        out
    }
}
