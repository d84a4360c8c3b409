//! Test support shared by the crates' integration tests (feature `testsuite`): where the real
//! backing services are, fresh namespaces on them, private server processes a fault test may
//! kill or freeze ([`Private`]), a TCP proxy it may cut ([`Proxy`]), and a TLS front with a
//! certificate authority of the test's own ([`TlsFront`], [`TestCa`]).
//!
//! Solves: one copy of the harness every test of a real backend needs, so the persistence and
//! the HTTP tests agree on the environment variables, their defaults and how a private server
//! is started and stopped. Every address is on 127.0.0.1.
//!
//! Deliberately does not: skip a test whose server is unreachable (it fails), mock any server,
//! clean up what a test wrote on a shared server (each test owns its namespace and drops it), or
//! return errors: this is test code, and a broken environment panics with a message that says
//! what was missing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[cfg(feature = "amqp")]
mod consumer;
mod private;
mod proxy;
mod tls;

#[cfg(feature = "amqp")]
pub use consumer::bind_consumer;

use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

pub use private::Private;
pub use proxy::Proxy;
pub use tls::{TestCa, TlsFront};

/// The shared MongoDB-compatible server when `EMP_TEST_MONGO_URI` is unset.
const DEFAULT_MONGO_URI: &str = "mongodb://127.0.0.1:27017/?directConnection=true";
/// The shared Redis when `EMP_TEST_REDIS_URL` is unset.
const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379/";
/// The shared RabbitMQ when `EMP_TEST_AMQP_URL` is unset.
const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// The python with `secantus` installed when `EMP_TEST_SECANTUS` is unset: the repository's own
/// `.venv-mongo`, which `scripts/services.sh` creates.
const DEFAULT_SECANTUS_PYTHON: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv-mongo/bin/python");

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// The shared MongoDB-compatible server (`EMP_TEST_MONGO_URI`).
pub fn mongo_uri() -> String {
    env_or("EMP_TEST_MONGO_URI", DEFAULT_MONGO_URI)
}

/// The shared Redis (`EMP_TEST_REDIS_URL`).
pub fn redis_url() -> String {
    env_or("EMP_TEST_REDIS_URL", DEFAULT_REDIS_URL)
}

/// The shared RabbitMQ (`EMP_TEST_AMQP_URL`).
pub fn amqp_url() -> String {
    env_or("EMP_TEST_AMQP_URL", DEFAULT_AMQP_URL)
}

/// A python interpreter with `secantus` installed (`EMP_TEST_SECANTUS`), for private servers.
pub fn secantus_python() -> String {
    env_or("EMP_TEST_SECANTUS", DEFAULT_SECANTUS_PYTHON)
}

/// `uri` (a `mongodb://` or `mongodb+srv://` URI) with its database path replaced by `db`; the
/// query is kept.
pub fn with_database(uri: &str, db: &str) -> String {
    let (scheme, rest) = uri.split_once("://").unwrap_or(("mongodb", uri));
    let (authority, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    let hosts = authority.split('/').next().unwrap_or(authority);
    match query {
        Some(q) => format!("{scheme}://{hosts}/{db}?{q}"),
        None => format!("{scheme}://{hosts}/{db}"),
    }
}

/// A database name no other test or run uses: `emporium_test_<uuid>`.
pub fn fresh_db_name() -> String {
    format!("emporium_test_{}", uuid::Uuid::new_v4().simple())
}

/// A loopback port nothing listened on a moment ago (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("a free loopback port: {e}"))
}

/// Waits until 127.0.0.1:`port` accepts connections (`up`) or refuses them (`!up`); false if
/// that has not happened within `within`.
pub fn wait_port(port: u16, up: bool, within: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        let open = TcpStream::connect(("127.0.0.1", port)).is_ok();
        if open == up {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// An `order.created` outbox entry with `payload`, for tests of what handles events.
pub fn outbox_entry(event_id: &str, payload: Vec<u8>) -> crate::OutboxEntry {
    crate::OutboxEntry {
        trace_parent: None,
        event_id: event_id.into(),
        routing_key: "order.created".into(),
        payload,
        created_at_ms: 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_go_into_the_uri_path() {
        assert_eq!(
            with_database(DEFAULT_MONGO_URI, "x"),
            "mongodb://127.0.0.1:27017/x?directConnection=true"
        );
        assert_eq!(with_database("mongodb://h:1/old", "x"), "mongodb://h:1/x");
        assert_eq!(
            with_database("mongodb+srv://u:p@h/old?tls=true", "x"),
            "mongodb+srv://u:p@h/x?tls=true"
        );
    }
}
