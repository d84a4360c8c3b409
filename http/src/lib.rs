//! The storefront REST API (`api.md`) over the Emporium engine, and the wiring of the `emporium`
//! binary.
//!
//! Solves: authentication (argon2id passwords in the engine, HS256 JWT here), JSON in and out,
//! validation of request shapes, one mapping from engine errors to status codes with JSON bodies,
//! body-size limits, request metrics, the operational endpoints and the OpenAPI document.
//!
//! Deliberately does not: hold business rules (they live in `emporium-engine`) or hold actor
//! addresses (it calls the engine handle, which routes through the shard map).

pub mod auth;
pub mod backends;
pub mod body;
pub mod cluster;
pub mod config;
pub mod dto;
pub mod error;
pub mod events;
pub mod metrics;
#[cfg(feature = "notify")]
pub mod notify;
pub mod openapi;
mod routes;
pub mod server;
pub mod telemetry;

use std::sync::Arc;

use emporium_engine::{Engine, RelayStats};

pub use routes::configure;

/// Everything a request handler can reach.
pub struct AppState {
    pub engine: Engine,
    pub auth: auth::Auth,
    pub metrics: metrics::Metrics,
    pub relay: Arc<RelayStats>,
    /// Where order events go (in-process or RabbitMQ).
    pub sink: Arc<dyn emporium_persistence::EventSink>,
    /// Group-commit counters of the embedded store.
    pub commits: Option<Arc<emporium_persistence::CommitStats>>,
    /// `sled` or `mongodb`.
    pub store_name: &'static str,
    /// Counters of the Redis cart cache, when there is one.
    pub cache: Option<Arc<emporium_persistence::CacheStats>>,
    /// How large a request body may be, and how long it may take to arrive.
    pub body: body::Limits,
    /// This node's cluster membership (`None` on one node).
    pub node: Option<emporium_cluster::Node>,
    /// Counters of the peer listener (cluster mode).
    pub peer_server: Option<Arc<emporium_cluster::PeerStats>>,
    /// Set at SIGTERM: `/readyz` answers 503 so the load balancer stops sending here.
    pub draining: std::sync::atomic::AtomicBool,
}
