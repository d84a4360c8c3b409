//! The cluster as this node sees it: `GET /admin/cluster` (admin token), readiness, and the
//! cluster's `/metrics` families.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::{web, HttpResponse};
use emporium_cluster::ShardState;

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::AppState;

/// This node's view: members, shards per node, every shard's owner and epoch, shards in motion,
/// the last handoffs, forwarding counters. 404 on a node that is not in a cluster.
pub async fn status(state: web::Data<AppState>, user: AuthUser) -> Result<HttpResponse, ApiError> {
    user.require_admin()?;
    let Some(node) = &state.node else {
        return Err(ApiError::not_found("this node is not part of a cluster"));
    };
    // Plain structs with string keys: serializing them cannot fail.
    let mut doc = serde_json::to_value(node.status()).unwrap_or_default();
    let f = state.engine.forward_stats();
    let held = state.engine.ownership().stats();
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    doc["forwarded"] = serde_json::json!({
        "sent": load(&f.sent),
        "served": load(&f.served),
        "notSent": load(&f.not_sent),
        "noReply": load(&f.unknown),
        "heldNow": held.held_now.load(Ordering::Relaxed),
        "heldTotal": load(&held.held_total),
        "holdTimeouts": load(&held.hold_timeouts),
        "fencedWrites": load(&held.fenced_writes),
    });
    Ok(HttpResponse::Ok().json(doc))
}

/// Whether this node should get traffic: not shutting down, and (in a cluster) holding a valid
/// claim with every shard's owner known.
pub fn ready(state: &AppState) -> bool {
    if state.draining.load(Ordering::Acquire) {
        return false;
    }
    match &state.node {
        None => true,
        Some(node) => {
            let ownership = node.ownership();
            !node.is_leaving()
                && ownership.claim_valid()
                && !ownership
                    .states()
                    .iter()
                    .any(|s| matches!(s, ShardState::Unknown))
        }
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn histogram(
    out: &mut String,
    name: &str,
    help: &str,
    buckets: &[(f64, u64)],
    count: u64,
    sum: f64,
) {
    family(out, name, "histogram", help);
    for (le, n) in buckets {
        let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "{name}_bucket{{le=\"+Inf\"}} {count}\n{name}_sum {sum}\n{name}_count {count}"
    );
}

/// The cluster families (nothing on a single node).
pub fn render_metrics(state: &AppState, out: &mut String) {
    let Some(node) = &state.node else {
        return;
    };
    let status = node.status();
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    family(
        out,
        "emporium_cluster_members",
        "gauge",
        "Members this node sees, by state.",
    );
    for st in ["absent", "joining", "serving", "leaving", "gone"] {
        let n = status.members.iter().filter(|m| m.state == st).count();
        let _ = writeln!(out, "emporium_cluster_members{{state=\"{st}\"}} {n}");
    }
    family(
        out,
        "emporium_cluster_shards",
        "gauge",
        "Shards by this node's view of their state.",
    );
    for st in ["serving", "draining", "remote", "unowned", "unknown"] {
        let n = status.shards.iter().filter(|s| s.state == st).count();
        let _ = writeln!(out, "emporium_cluster_shards{{state=\"{st}\"}} {n}");
    }
    let stats = node.stats();
    family(
        out,
        "emporium_cluster_claims_total",
        "counter",
        "Shards this node claimed.",
    );
    let _ = writeln!(out, "emporium_cluster_claims_total {}", load(&stats.claims));
    let (buckets, count, sum) = stats.handoff_histogram();
    histogram(
        out,
        "emporium_cluster_handoff_seconds",
        "Handoffs this node made (hold, drain, passivate, transfer), by duration.",
        &buckets,
        count,
        sum,
    );
    let f = state.engine.forward_stats();
    family(
        out,
        "emporium_cluster_forwarded_total",
        "counter",
        "Entity commands forwarded, by direction and outcome.",
    );
    for (label, value) in [
        ("sent", &f.sent),
        ("served", &f.served),
        ("not_sent", &f.not_sent),
        ("no_reply", &f.unknown),
    ] {
        let _ = writeln!(
            out,
            "emporium_cluster_forwarded_total{{outcome=\"{label}\"}} {}",
            load(value)
        );
    }
    let h = state.engine.ownership().stats();
    family(
        out,
        "emporium_cluster_held",
        "gauge",
        "Commands waiting for a shard in motion.",
    );
    let _ = writeln!(
        out,
        "emporium_cluster_held {}",
        h.held_now.load(Ordering::Relaxed)
    );
    family(
        out,
        "emporium_cluster_held_total",
        "counter",
        "Commands held for a shard in motion.",
    );
    let _ = writeln!(out, "emporium_cluster_held_total {}", load(&h.held_total));
    family(
        out,
        "emporium_cluster_hold_timeouts_total",
        "counter",
        "Held commands answered 503 at the hold bound.",
    );
    let _ = writeln!(
        out,
        "emporium_cluster_hold_timeouts_total {}",
        load(&h.hold_timeouts)
    );
    family(
        out,
        "emporium_cluster_fenced_writes_total",
        "counter",
        "Writes refused because this node no longer owned the shard.",
    );
    let _ = writeln!(
        out,
        "emporium_cluster_fenced_writes_total {}",
        load(&h.fenced_writes)
    );
    let client = node.client().stats().snapshot();
    family(
        out,
        "emporium_peer_errors_total",
        "counter",
        "Peer requests that failed, by kind.",
    );
    for (kind, n) in [
        ("unreachable", client.unreachable),
        ("overloaded", client.overloaded),
        ("timeout", client.timeout),
        ("closed", client.closed),
        ("refused", client.refused),
        ("remote", client.remote),
        ("codec", client.codec),
    ] {
        let _ = writeln!(out, "emporium_peer_errors_total{{kind=\"{kind}\"}} {n}");
    }
    let lat = &client.latency;
    histogram(
        out,
        "emporium_peer_request_seconds",
        "Round trips of peer requests that got a reply.",
        &lat.buckets,
        lat.count,
        lat.sum_seconds,
    );
    if let Some(server) = &state.peer_server {
        let s = server.snapshot();
        family(
            out,
            "emporium_peer_auth_refused_total",
            "counter",
            "Peer connections refused: no or a wrong cluster secret, or not the peer protocol.",
        );
        let _ = writeln!(out, "emporium_peer_auth_refused_total {}", s.auth_refused);
        family(
            out,
            "emporium_peer_requests_served_total",
            "counter",
            "Peer requests this node answered.",
        );
        let _ = writeln!(
            out,
            "emporium_peer_requests_served_total {}",
            s.requests_served
        );
    }
}
