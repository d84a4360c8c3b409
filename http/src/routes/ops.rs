use std::sync::atomic::Ordering;

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::error::ApiError;
use crate::AppState;

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "operations",
    responses((status = 200, description = "`{\"status\":\"ok\"}`", body = crate::openapi::Health)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// 200 only while this node serves its shards and can reach its store. The event broker and the
/// cart cache are reported but do not make the node unready: events wait in the outbox, and carts
/// are read from the store.
#[utoipa::path(get, path = "/readyz", operation_id = "readyz", tag = "operations",
    responses(
        (status = 200, description = "Serving", body = crate::openapi::Ready),
        (status = 503, description = "`store_unavailable` or `not_ready` (starting, handing off, shutting down)", body = crate::openapi::ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ))]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let ping = state.engine.stores().snapshots.ping();
    let store_up = matches!(
        tokio::time::timeout(std::time::Duration::from_secs(2), ping).await,
        Ok(Ok(()))
    );
    let broker = match (state.sink.name(), state.sink.healthy()) {
        ("in-process", _) => "in-process",
        (_, true) => "up",
        (_, false) => "down",
    };
    let cache = match &state.cache {
        Some(c) if c.healthy.load(Ordering::Relaxed) => "up",
        Some(_) => "down",
        None => "off",
    };
    if !store_up {
        return ApiError::new(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the store cannot be reached",
        )
        .to_response();
    }
    if state.engine.is_serving() && super::cluster::ready(&state) {
        HttpResponse::Ok().json(json!({
            "status": "ready",
            "store": state.store_name,
            "broker": broker,
            "outboxDepth": outbox_depth(&state).await,
            "cartCache": cache,
        }))
    } else {
        // A 503 ApiError carries Retry-After.
        ApiError::new(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "this node is starting or handing off its shards",
        )
        .to_response()
    }
}

/// Undelivered order events, if the store answers within 2 s.
async fn outbox_depth(state: &AppState) -> Option<u64> {
    let depth = state.engine.stores().outbox.depth();
    tokio::time::timeout(std::time::Duration::from_secs(2), depth)
        .await
        .ok()?
        .ok()
}

/// Prometheus text format (0.0.4); the families are listed in the README.
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "operations",
    responses((status = 200, description = "Every metric family", body = String, content_type = "text/plain")))]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let ping = async {
        let ping = state.engine.stores().snapshots.ping();
        matches!(
            tokio::time::timeout(std::time::Duration::from_secs(2), ping).await,
            Ok(Ok(()))
        )
    };
    let (depth, store_up) = futures_util::join!(outbox_depth(&state), ping);
    state.metrics.scrape.set(depth, store_up);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}
