//! The cluster as this node sees it: `GET /admin/cluster` (admin token) and readiness (its
//! `/metrics` families are in `metrics::cluster`).

use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::{web, HttpResponse};
use emporium_cluster::ShardState;

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::AppState;

/// This node's view: members, shards per node, every shard's owner and epoch, shards in motion,
/// the last handoffs, forwarding counters. 404 on a node that is not in a cluster.
#[utoipa::path(get, path = "/admin/cluster", operation_id = "clusterStatus", tag = "operations", security(("bearer" = [])),
    responses(
        (status = 200, description = "This node's view of the cluster (the document `emporium cluster status --json` prints)", body = Object),
        (status = 403, description = "`forbidden`: not an admin", body = crate::openapi::ErrorBody),
        (status = 404, description = "`not_found`: this node is not part of a cluster", body = crate::openapi::ErrorBody),
    ))]
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
