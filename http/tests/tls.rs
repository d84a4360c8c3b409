//! TLS to every backend, against the real servers behind a TLS front whose certificate authority
//! the test makes: the MongoDB-compatible store (`tls=true`, the CA from `tlsCAFile` or from
//! `EMPORIUM_TLS_CA_FILE`), Redis (`rediss://` with an AUTH token) and RabbitMQ (`amqps://`).
//! The node works through all three; a certificate from another CA, or a server that does not
//! speak TLS, stops the start with a message naming the backend; a certificate that goes bad while
//! the node runs is an outage like any other, and the node recovers once it is good again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use emporium_persistence::testkit::{free_port, TestCa, TlsFront};
use serde_json::json;

/// ElastiCache-style AUTH token the private Redis asks for.
const TOKEN: &str = "an-auth-token-of-sixteen-bytes-or-more";

/// The port in a `scheme://[user@]host:port/…` URL.
fn port_of(url: &str) -> u16 {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    host_port
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {url}"))
}

/// The backends behind TLS fronts presenting certificates `ca` signed; `other` is a second CA the
/// node does not trust.
struct Backends {
    ca: TestCa,
    other: TestCa,
    ca_file: PathBuf,
    _dir: tempfile::TempDir,
    redis: Private,
    mongo: TlsFront,
    cache: TlsFront,
    broker: TlsFront,
}

impl Backends {
    fn new() -> Backends {
        let ca = TestCa::new("emporium test CA");
        let other = TestCa::new("an untrusted CA");
        let dir = tempfile::tempdir().unwrap();
        let ca_file = ca.write(dir.path(), "ca.pem");
        let redis = Private::redis_with_password(TOKEN);
        let mongo = TlsFront::to(port_of(&mongo_uri()), &ca);
        let cache = TlsFront::to(redis.port, &ca);
        let broker = TlsFront::to(port_of(&amqp_url()), &ca);
        Backends {
            ca,
            other,
            ca_file,
            _dir: dir,
            redis,
            mongo,
            cache,
            broker,
        }
    }

    fn present(&self, ca: &TestCa) {
        for front in [&self.mongo, &self.cache, &self.broker] {
            front.present(ca);
        }
    }

    /// The store through its front; the CA named in the URI (as DocumentDB's bundle is) or not.
    fn store_url(&self, db: &str, ca_in_uri: bool) -> String {
        let ca = if ca_in_uri {
            format!("&tlsCAFile={}", self.ca_file.display())
        } else {
            String::new()
        };
        format!(
            "mongodb://127.0.0.1:{}/{db}?tls=true&directConnection=true{ca}",
            self.mongo.port
        )
    }

    fn redis_url(&self) -> String {
        format!("rediss://:{TOKEN}@127.0.0.1:{}/", self.cache.port)
    }

    fn amqp_url(&self) -> String {
        format!("amqps://guest:guest@127.0.0.1:{}/%2f", self.broker.port)
    }

    /// A node on all three, through TLS.
    fn node(&self, db: &str, ca_in_uri: bool) -> NodeOpts {
        NodeOpts::new()
            .demo_catalog(false)
            .env("EMPORIUM_STORE", &self.store_url(db, ca_in_uri))
            .env("EMPORIUM_REDIS_URL", &self.redis_url())
            .env("EMPORIUM_AMQP_URL", &self.amqp_url())
            .env("EMPORIUM_TLS_CA_FILE", &self.ca_file.display().to_string())
    }

    /// Keys in the private Redis, read over a plain connection.
    async fn cached_keys(&self) -> i64 {
        redis_keys(&format!("redis://:{TOKEN}@127.0.0.1:{}/", self.redis.port)).await
    }
}

#[actix_rt::test]
async fn a_node_works_through_tls_to_all_three_backends() {
    let tls = Backends::new();
    let mut consumer = EventConsumer::bind("orders", "order.created").await;
    let node = Node::start(tls.node(&fresh_db_name(), true));
    let (s, ready) = node.get("/readyz", None).await;
    assert_eq!(s, 200, "{ready}");
    assert_eq!(
        (ready["store"].as_str(), ready["broker"].as_str()),
        (Some("mongodb"), Some("up")),
        "{ready}"
    );

    let admin = admin_token(&node).await;
    create_product(&node, &admin, "Sealed", "TLS-1", 4.0, Some(5)).await;
    let buyer = register(&node, "tess", "tess@example.com", PASSWORD).await;
    assert_eq!(add_to_cart(&node, &buyer, "TLS-1", 2).await, 204);
    assert!(tls.cached_keys().await >= 1, "the cart reached Redis");
    let (s, order) = node.post("/api/checkout", Some(&buyer), json!({})).await;
    assert_eq!(s, 201, "{order}");
    let id = id_of(&order);
    assert!(
        published(&mut consumer, &id, 60).await,
        "order.created for {id} was published over amqps"
    );
    assert_eq!(stock_of(&node, "TLS-1").await, Some(3));
    let (_, ready) = node.get("/readyz", None).await;
    assert_eq!(ready["cartCache"].as_str(), Some("up"), "{ready}");
}

/// Whether `order.created` of order `id` reaches `consumer` within `secs` seconds.
async fn published(consumer: &mut EventConsumer, id: &str, secs: u64) -> bool {
    let got = consumer
        .collect_until(Duration::from_secs(secs), |got| {
            got.iter().any(|m| m.body["order"]["id"] == id)
        })
        .await;
    got.iter().any(|m| m.body["order"]["id"] == id)
}

/// Starts the binary with `env` over a plain store and expects it to stop within a minute;
/// returns what it printed.
fn start_fails(opts: &[(&str, String)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let out = std::fs::File::create(&log).unwrap();
    let mut cmd = emporium_command();
    cmd.arg("serve")
        .env("EMPORIUM_LISTEN", format!("127.0.0.1:{}", free_port()))
        .env("EMPORIUM_DATA_DIR", dir.path())
        .env("EMPORIUM_JWT_SECRET", JWT_SECRET)
        .env(
            "EMPORIUM_STORE",
            with_database(&mongo_uri(), &fresh_db_name()),
        )
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    for (k, v) in opts {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let printed = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        status.is_some_and(|s| !s.success()),
        "{opts:?} should stop the start ({status:?}):\n{printed}"
    );
    printed
}

#[test]
fn a_certificate_from_another_ca_or_a_plain_server_stops_the_start_naming_the_backend() {
    let tls = Backends::new();
    let ca_file = ("EMPORIUM_TLS_CA_FILE", tls.ca_file.display().to_string());
    // Every front presents a certificate the node's CA did not sign.
    tls.present(&tls.other);
    let db = fresh_db_name();
    let cases = [
        (
            vec![("EMPORIUM_STORE", tls.store_url(&db, true))],
            "MongoDB",
        ),
        (
            vec![("EMPORIUM_REDIS_URL", tls.redis_url()), ca_file.clone()],
            "redis_url",
        ),
        (
            vec![("EMPORIUM_AMQP_URL", tls.amqp_url()), ca_file.clone()],
            "amqp_url",
        ),
        // The servers themselves, which do not speak TLS.
        (
            vec![(
                "EMPORIUM_STORE",
                format!(
                    "mongodb://127.0.0.1:{}/{db}?tls=true&directConnection=true&tlsCAFile={}",
                    port_of(&mongo_uri()),
                    tls.ca_file.display()
                ),
            )],
            "MongoDB",
        ),
        (
            vec![
                (
                    "EMPORIUM_REDIS_URL",
                    format!("rediss://:{TOKEN}@127.0.0.1:{}/", tls.redis.port),
                ),
                ca_file.clone(),
            ],
            "redis_url",
        ),
        (
            vec![
                (
                    "EMPORIUM_AMQP_URL",
                    format!("amqps://guest:guest@127.0.0.1:{}/%2f", port_of(&amqp_url())),
                ),
                ca_file.clone(),
            ],
            "amqp_url",
        ),
    ];
    for (env, names) in cases {
        let printed = start_fails(&env);
        assert!(printed.contains(names), "{env:?} named {names}:\n{printed}");
        assert!(
            printed.to_lowercase().contains("tls") || printed.contains("certificate"),
            "{env:?} says it is TLS:\n{printed}"
        );
    }
    // A Redis that refuses the token is a configuration error too.
    tls.present(&tls.ca);
    let wrong_token = format!("rediss://:not-the-token@127.0.0.1:{}/", tls.cache.port);
    let printed = start_fails(&[("EMPORIUM_REDIS_URL", wrong_token), ca_file.clone()]);
    assert!(printed.contains("redis_url"), "{printed}");
}

#[actix_rt::test]
async fn a_certificate_that_goes_bad_later_is_an_outage_and_the_node_recovers() {
    let tls = Backends::new();
    let mut consumer = EventConsumer::bind("orders", "order.created").await;
    // The store's CA comes from EMPORIUM_TLS_CA_FILE here, not from the URI.
    let node = Node::start(tls.node(&fresh_db_name(), false));
    let admin = admin_token(&node).await;
    create_product(&node, &admin, "Sealed", "TLS-2", 4.0, Some(50)).await;
    let buyer = register(&node, "bea", "bea@example.com", PASSWORD).await;
    assert_eq!(add_to_cart(&node, &buyer, "TLS-2", 1).await, 204);

    // Every front now presents a certificate the node does not trust, and drops its connections.
    tls.present(&tls.other);
    // The store is down: a write answers a retryable 503 within the store timeout.
    let started = Instant::now();
    let (s, body) = node
        .post(
            "/api/cart/items",
            Some(&buyer),
            json!({"productSku": "TLS-2", "quantity": 1}),
        )
        .await;
    assert_eq!(s, 503, "{body}");
    assert!(started.elapsed() < Duration::from_secs(15));
    let (s, _) = node.get("/readyz", None).await;
    assert_eq!(s, 503, "not ready while the store's certificate is bad");

    // Good again: writes succeed without a restart, the cache and the broker are used again.
    tls.present(&tls.ca);
    let start = Instant::now();
    let mut status = 0;
    while start.elapsed() < Duration::from_secs(60) && status != 204 {
        status = add_to_cart(&node, &buyer, "TLS-2", 1).await;
        if status != 204 {
            assert_eq!(status, 503);
            actix_rt::time::sleep(Duration::from_millis(500)).await;
        }
    }
    assert_eq!(status, 204, "writes did not recover");
    let (s, order) = node.post("/api/checkout", Some(&buyer), json!({})).await;
    assert_eq!(s, 201, "{order}");
    let id = id_of(&order);
    assert!(
        published(&mut consumer, &id, 60).await,
        "order.created for {id} arrived once the certificates were good"
    );

    // Only the broker's and the cache's certificates go bad: checkouts still answer 201, their
    // events wait in the outbox and arrive once the certificates are good again.
    tls.cache.present(&tls.other);
    tls.broker.present(&tls.other);
    let second = register(&node, "bo", "bo@example.com", PASSWORD).await;
    assert_eq!(add_to_cart(&node, &second, "TLS-2", 2).await, 204);
    let (s, order) = node.post("/api/checkout", Some(&second), json!({})).await;
    assert_eq!(s, 201, "{order}");
    let waiting = id_of(&order);
    let start = Instant::now();
    let mut broker = String::new();
    while start.elapsed() < Duration::from_secs(30) && broker != "down" {
        let (_, ready) = node.get("/readyz", None).await;
        broker = ready["broker"].as_str().unwrap_or_default().to_owned();
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(broker, "down", "the broker shows as down");
    tls.cache.present(&tls.ca);
    tls.broker.present(&tls.ca);
    assert!(
        published(&mut consumer, &waiting, 90).await,
        "the waiting event arrived"
    );
    assert_eq!(stock_of(&node, "TLS-2").await, Some(46));
}
