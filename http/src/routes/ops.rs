use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::error::ApiError;
use crate::AppState;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// 200 only while this node serves its shards and can reach its store. The event broker and the
/// cart cache are reported but do not make the node unready: events wait in the outbox, and carts
/// are read from the store.
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

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let mut out = state.metrics.render();
    let stats = state.engine.actor_stats();
    type Family = (
        &'static str,
        &'static str,
        &'static str,
        fn(&emporium_engine::KindStats) -> String,
    );
    let families: [Family; 3] = [
        (
            "emporium_actors_active",
            "gauge",
            "Live actors by kind.",
            |s| s.active().to_string(),
        ),
        (
            "emporium_actors_activated_total",
            "counter",
            "Actor activations by kind.",
            |s| s.activated_total().to_string(),
        ),
        (
            "emporium_actors_passivated_total",
            "counter",
            "Actor passivations by kind.",
            |s| s.passivated_total().to_string(),
        ),
    ];
    for (name, kind, help, value) in families {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (entity, s) in stats.kinds {
            let _ = writeln!(out, "{name}{{kind=\"{entity}\"}} {}", value(s));
        }
    }
    let relay = &state.relay;
    // Left out (not shown as 0) when the store cannot say.
    if let Some(depth) = outbox_depth(&state).await {
        let _ = write!(
            out,
            "# HELP emporium_outbox_depth Order events not yet relayed.\n# TYPE emporium_outbox_depth gauge\nemporium_outbox_depth {depth}\n"
        );
    }
    let _ = write!(
        out,
        "# HELP emporium_events_relayed_total Order events handed to the event sink.\n# TYPE emporium_events_relayed_total counter\nemporium_events_relayed_total {}\n\
         # HELP emporium_relay_failures_total Failed relay attempts.\n# TYPE emporium_relay_failures_total counter\nemporium_relay_failures_total {}\n\
         # HELP emporium_event_sink_up Whether the event sink was reachable at its last use.\n# TYPE emporium_event_sink_up gauge\nemporium_event_sink_up {}\n",
        relay.delivered.load(Ordering::Relaxed),
        relay.failures.load(Ordering::Relaxed),
        u8::from(state.sink.healthy()),
    );
    if let Some(c) = &state.cache {
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let _ = write!(
            out,
            "# HELP emporium_cart_cache_hits_total Cart activations served from Redis.\n# TYPE emporium_cart_cache_hits_total counter\nemporium_cart_cache_hits_total {}\n\
             # HELP emporium_cart_cache_misses_total Cart activations that went to the store.\n# TYPE emporium_cart_cache_misses_total counter\nemporium_cart_cache_misses_total {}\n\
             # HELP emporium_cart_cache_errors_total Redis commands that failed or timed out.\n# TYPE emporium_cart_cache_errors_total counter\nemporium_cart_cache_errors_total {}\n\
             # HELP emporium_cart_cache_up Whether Redis is in use (0 while it is bypassed after failures).\n# TYPE emporium_cart_cache_up gauge\nemporium_cart_cache_up {}\n",
            load(&c.hits),
            load(&c.misses),
            load(&c.errors),
            u8::from(c.healthy.load(Ordering::Relaxed)),
        );
    }
    if let Some(c) = &state.commits {
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let seconds = |a: &std::sync::atomic::AtomicU64| load(a) as f64 / 1e6;
        let _ = write!(
            out,
            "# HELP emporium_store_log_appends_total Group commits: write-ahead log appends, one fdatasync each.\n# TYPE emporium_store_log_appends_total counter\nemporium_store_log_appends_total {}\n\
             # HELP emporium_store_log_append_seconds_total Time spent appending and syncing the log.\n# TYPE emporium_store_log_append_seconds_total counter\nemporium_store_log_append_seconds_total {}\n\
             # HELP emporium_store_writes_total Writes made durable by group commits.\n# TYPE emporium_store_writes_total counter\nemporium_store_writes_total {}\n\
             # HELP emporium_store_checkpoints_total Checkpoints (sled flushed, log reset).\n# TYPE emporium_store_checkpoints_total counter\nemporium_store_checkpoints_total {}\n\
             # HELP emporium_store_checkpoint_seconds_total Time the writer spent in checkpoints.\n# TYPE emporium_store_checkpoint_seconds_total counter\nemporium_store_checkpoint_seconds_total {}\n",
            load(&c.appends),
            seconds(&c.append_micros),
            load(&c.writes),
            load(&c.checkpoints),
            seconds(&c.checkpoint_micros),
        );
    }
    super::cluster::render_metrics(&state, &mut out);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(out)
}
