//! The node-to-node link: how one Emporium pod asks another to run a command for an entity it
//! owns, and how it is told about ownership and membership changes.
//!
//! One persistent TCP connection per pair of nodes, opened lazily and authenticated once with
//! the cluster secret (challenge-response, see `auth.rs`), then many calls multiplexed over it
//! by request id (see `frame.rs`), with the messages of [`crate::wire`] inside. Everything that
//! can fail is a [`PeerError`] that says whether a retry is safe; every bound (connect,
//! handshake, reply, in-flight per peer and per connection, frame size) answers with an error
//! instead of a hang or an unbounded queue.
//!
//! Deliberately not here: which node to call (placement), what to do with a request (the engine's
//! handler), retries (the caller knows whether its command is idempotent), and TLS.

mod auth;
mod client;
mod connection;
mod error;
mod frame;
mod server;
mod stats;

pub use auth::{PeerOrigin, HANDSHAKE_TIMEOUT, PROTOCOL_VERSION};
pub use client::{PeerClient, PeerClientOptions};
pub use error::PeerError;
pub use frame::MAX_FRAME_LEN;
pub use server::{PeerHandler, PeerServer, PeerServerOptions, PeerServerStop};
pub use stats::{
    HistogramSnapshot, LatencyHistogram, PeerStats, PeerStatsSnapshot, LATENCY_BUCKETS,
};
