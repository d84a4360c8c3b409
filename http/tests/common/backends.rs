//! The real backing services for the issue-3 tests. Where they are, fresh namespaces on them,
//! private instances (SecantusDB, Redis) and the cuttable TCP proxy come from the persistence
//! crate's `testkit`; this file adds what only the HTTP tests need: a node wired to the real
//! backends, and a consumer of the order events it publishes. Every address is on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::time::{Duration, Instant};

// Each test binary uses some of these.
#[allow(unused_imports)]
pub use emporium_persistence::testkit::{
    amqp_url, fresh_db_name, mongo_uri, redis_url, with_database, Private, Proxy,
};

use super::NodeOpts;

impl NodeOpts {
    /// The node on the MongoDB-compatible store (database `db` at `mongo`), Redis and RabbitMQ.
    pub fn real_backends_at(self, mongo: &str, db: &str) -> Self {
        self.env("EMPORIUM_STORE", &with_database(mongo, db))
            .env("EMPORIUM_REDIS_URL", &redis_url())
            .env("EMPORIUM_AMQP_URL", &amqp_url())
    }
    /// The node on every real backend, with a database of its own.
    pub fn real_backends(self) -> Self {
        self.real_backends_at(&mongo_uri(), &fresh_db_name())
    }
}

/// A consumer of the order events: an exclusive queue bound to `exchange` with `pattern`.
pub struct EventConsumer {
    _conn: lapin::Connection,
    consumer: lapin::Consumer,
}

/// One received message, with the AMQP properties the tests check.
#[derive(Debug, Clone)]
pub struct Received {
    pub routing_key: String,
    pub message_id: Option<String>,
    pub content_type: Option<String>,
    pub delivery_mode: Option<u8>,
    pub body: serde_json::Value,
}

impl EventConsumer {
    pub async fn bind(exchange: &str, pattern: &str) -> EventConsumer {
        let (conn, consumer) =
            emporium_persistence::testkit::bind_consumer(exchange, pattern).await;
        EventConsumer {
            _conn: conn,
            consumer,
        }
    }

    /// Receives until `done` says the collected messages are enough, or `within` passes.
    pub async fn collect_until(
        &mut self,
        within: Duration,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        use futures_util::StreamExt as _;
        let mut got = Vec::new();
        let deadline = Instant::now() + within;
        while !done(&got) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match actix_rt::time::timeout(left, self.consumer.next()).await {
                Ok(Some(Ok(d))) => got.push(Received {
                    routing_key: d.routing_key.to_string(),
                    message_id: d.properties.message_id().as_ref().map(|s| s.to_string()),
                    content_type: d.properties.content_type().as_ref().map(|s| s.to_string()),
                    delivery_mode: *d.properties.delivery_mode(),
                    body: serde_json::from_slice(&d.data).unwrap_or(serde_json::Value::Null),
                }),
                Ok(Some(Err(e))) => panic!("consumer failed: {e}"),
                Ok(None) | Err(_) => break,
            }
        }
        got
    }
}

/// Keys in a Redis (bounded: a hung Redis fails the test instead of hanging it).
pub async fn redis_keys(url: &str) -> i64 {
    let count = async {
        let client = redis::Client::open(url).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap()
    };
    actix_rt::time::timeout(Duration::from_secs(5), count)
        .await
        .expect("DBSIZE answered within 5 s")
}
