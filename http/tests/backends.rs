//! Against the real servers: order events on RabbitMQ (and while it is away), state in the
//! shared store rather than on the pod, Redis down, the store down. The flow itself on these
//! backends runs in `flow.rs`, `concurrency.rs` and `durability.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const EXCHANGE: &str = "orders";

/// A buyer with one line in the cart checks out; returns the order id.
async fn buy(node: &Node, token: &str, sku: &str) -> String {
    assert_eq!(add_to_cart(node, token, sku, 1).await, 204);
    let (s, order) = node.post("/api/checkout", Some(token), json!({})).await;
    assert_eq!(s, 201, "checkout: {order}");
    assert_eq!(order["status"], "Created");
    id_of(&order)
}

fn created_ids(got: &[Received]) -> BTreeSet<String> {
    got.iter()
        .filter(|m| m.routing_key == "order.created")
        .filter_map(|m| m.body["order"]["id"].as_str().map(str::to_owned))
        .collect()
}

fn assert_well_formed(m: &Received) {
    assert_eq!(m.message_id.as_deref(), m.body["eventId"].as_str(), "{m:?}");
    assert!(m.message_id.as_deref().is_some_and(|id| !id.is_empty()));
    assert_eq!(m.content_type.as_deref(), Some("application/json"), "{m:?}");
    assert_eq!(m.delivery_mode, Some(2), "persistent: {m:?}");
    assert_eq!(
        m.body["type"].as_str(),
        Some(m.routing_key.as_str()),
        "{m:?}"
    );
}

async fn shop(node: &Node, buyers: usize, stock: i64) -> Vec<String> {
    let admin = admin_token(node).await;
    create_product(node, &admin, "Event Thing", "EVT-1", 2.5, Some(stock)).await;
    let mut tokens = Vec::new();
    for i in 0..buyers {
        let email = format!("evt{i}@example.com");
        tokens.push(register(node, &format!("evt{i}"), &email, PASSWORD).await);
    }
    tokens
}

/// Acceptance 2: every checkout's `order.created` reaches a consumer bound with `order.*`, its
/// `eventId` equal to the AMQP `message_id`.
#[actix_rt::test]
async fn every_checkout_publishes_order_created() {
    let mut consumer = EventConsumer::bind(EXCHANGE, "order.*").await;
    let node = Node::start(NodeOpts::new().demo_catalog(false).real_backends());
    let buyers = shop(&node, 12, 100).await;
    let mut ids = BTreeSet::new();
    let mut first = None;
    for t in &buyers {
        let id = buy(&node, t, "EVT-1").await;
        first.get_or_insert_with(|| id.clone());
        ids.insert(id);
    }
    let got = consumer
        .collect_until(Duration::from_secs(60), |got| {
            created_ids(got).is_superset(&ids)
        })
        .await;
    let mine: Vec<&Received> = got
        .iter()
        .filter(|m| ids.contains(m.body["order"]["id"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(
        created_ids(&got).intersection(&ids).count(),
        ids.len(),
        "{mine:?}"
    );
    for m in &mine {
        assert_well_formed(m);
        assert_eq!(m.body["order"]["status"], "Created");
    }
    // A cancel publishes `order.cancelled` the same way.
    let first = first.unwrap();
    let (s, b) = node
        .post(
            &format!("/api/orders/{}/cancel", enc(&first)),
            Some(&buyers[0]),
            json!({}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let got = consumer
        .collect_until(Duration::from_secs(60), |got| {
            got.iter().any(|m| {
                m.routing_key == "order.cancelled" && m.body["order"]["id"].as_str() == Some(&first)
            })
        })
        .await;
    let cancelled = got
        .iter()
        .find(|m| {
            m.routing_key == "order.cancelled" && m.body["order"]["id"].as_str() == Some(&first)
        })
        .unwrap_or_else(|| panic!("no order.cancelled for {first}"));
    assert_well_formed(cancelled);
    assert_eq!(cancelled.body["order"]["status"], "Cancelled");
}

/// Acceptance 4: RabbitMQ unreachable during checkouts: they still answer 201, the events wait
/// in the outbox, and every one arrives once the broker is back.
#[actix_rt::test]
async fn checkouts_go_on_while_the_broker_is_away() {
    let mut consumer = EventConsumer::bind(EXCHANGE, "order.created").await;
    let proxy = Proxy::to(5672);
    let amqp = format!("amqp://guest:guest@127.0.0.1:{}/%2f", proxy.port);
    let node = Node::start(
        NodeOpts::new()
            .demo_catalog(false)
            .real_backends()
            .env("EMPORIUM_AMQP_URL", &amqp),
    );
    let buyers = shop(&node, 8, 100).await;
    let mut ids = BTreeSet::new();
    for t in &buyers[..2] {
        ids.insert(buy(&node, t, "EVT-1").await);
    }
    proxy.cut();
    for t in &buyers[2..] {
        ids.insert(buy(&node, t, "EVT-1").await);
    }
    // The node notices: the events wait, the broker shows as down.
    let start = Instant::now();
    let mut seen_down = false;
    while start.elapsed() < Duration::from_secs(30) && !seen_down {
        let m = node.metrics().await;
        seen_down = metric(&m, "emporium_event_sink_up", &[]) == Some(0.0)
            && metric(&m, "emporium_outbox_depth", &[]).unwrap_or(0.0) >= 1.0;
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        seen_down,
        "metrics never showed the broker down with events waiting"
    );
    let (s, ready) = node.get("/readyz", None).await;
    assert_eq!(
        (s, ready["broker"].as_str()),
        (200, Some("down")),
        "{ready}"
    );
    assert!(ready["outboxDepth"].as_u64() >= Some(1), "{ready}");
    proxy.restore();
    let got = consumer
        .collect_until(Duration::from_secs(90), |got| {
            created_ids(got).is_superset(&ids)
        })
        .await;
    assert!(
        created_ids(&got).is_superset(&ids),
        "missing events: {:?}",
        ids.difference(&created_ids(&got)).collect::<Vec<_>>()
    );
    for m in got
        .iter()
        .filter(|m| ids.contains(m.body["order"]["id"].as_str().unwrap_or("")))
    {
        assert_well_formed(m);
    }
}

/// Acceptance 3: a node with a fresh data dir on the same backends sees every user, cart and
/// order: the state is in the backends, not on the pod's disk.
#[actix_rt::test]
async fn a_fresh_node_on_the_same_backends_sees_everything() {
    // One fresh database, shared by the nodes started from these options.
    let opts = NodeOpts::new().demo_catalog(false).real_backends();
    let mut first = Node::start(opts.clone());
    let admin = admin_token(&first).await;
    create_product(&first, &admin, "Kept A", "KEPT-A", 4.0, Some(50)).await;
    create_product(&first, &admin, "Kept B", "KEPT-B", 6.0, None).await;
    let ann = register(&first, "ann", "ann@example.com", PASSWORD).await;
    let order = buy(&first, &ann, "KEPT-A").await;
    assert_eq!(add_to_cart(&first, &ann, "KEPT-B", 3).await, 204);
    first.kill9();

    let second = Node::start(opts);
    assert_ne!(second.data_dir(), first.data_dir());
    assert!(
        !second.data_dir().join("sled").exists(),
        "a node on the shared store keeps no store on its disk"
    );
    let ann = login(&second, "ann@example.com", PASSWORD).await;
    assert_eq!(
        cart_map(&second, &ann).await,
        BTreeMap::from([("KEPT-B".to_string(), 3)])
    );
    let (s, orders) = second.get("/api/orders", Some(&ann)).await;
    assert_eq!(s, 200, "{orders}");
    let ids: Vec<String> = orders.as_array().unwrap().iter().map(id_of).collect();
    assert_eq!(ids, vec![order.clone()]);
    assert_eq!(stock_of(&second, "KEPT-A").await, Some(49));
    let (s, _) = second
        .get(&format!("/api/orders/{}", enc(&order)), Some(&ann))
        .await;
    assert_eq!(s, 200);
}

/// Waits (bounded) until the node has passivated a cart actor since `before` passivations, so the
/// next request activates it again from Redis or the store.
async fn await_cart_passivation(node: &Node, before: f64) -> f64 {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        let m = node.metrics().await;
        let now =
            metric(&m, "emporium_actors_passivated_total", &[("kind", "cart")]).unwrap_or(0.0);
        if now > before {
            return now;
        }
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the cart actor did not passivate");
}

fn cache_hits(metrics: &str) -> f64 {
    metric(metrics, "emporium_cart_cache_hits_total", &[]).unwrap_or(0.0)
}

/// Acceptance 5: Redis stopped: cart reads and writes still answer 2xx and stay right; when it
/// is back, it is used again. Carts passivate after a second, so activations really go through
/// the cache (from Redis when it is up, from the store while it is down).
#[actix_rt::test]
async fn carts_work_while_redis_is_down_and_use_it_again() {
    let mut redis = Private::redis();
    let node = Node::start(
        NodeOpts::new()
            .demo_catalog(false)
            .real_backends()
            .env("EMPORIUM_REDIS_URL", &redis.redis_url())
            .env("EMPORIUM_IDLE_TIMEOUT_SECS", "1"),
    );
    let admin = admin_token(&node).await;
    create_product(&node, &admin, "Cached", "CACHE-1", 1.0, None).await;
    let bea = register(&node, "bea", "bea@example.com", PASSWORD).await;
    assert_eq!(add_to_cart(&node, &bea, "CACHE-1", 1).await, 204);
    assert!(
        redis_keys(&redis.redis_url()).await > 0,
        "cart not written through"
    );
    // Reactivated from Redis.
    let mut passivated = await_cart_passivation(&node, 0.0).await;
    let hits = cache_hits(&node.metrics().await);
    assert_eq!(cart_map(&node, &bea).await["CACHE-1"], 1);
    assert!(
        cache_hits(&node.metrics().await) > hits,
        "activation did not read Redis"
    );

    redis.down();
    let mut expected = 1;
    for _ in 0..3 {
        assert_eq!(add_to_cart(&node, &bea, "CACHE-1", 1).await, 204);
        expected += 1;
        assert_eq!(cart_map(&node, &bea).await["CACHE-1"], expected);
        // Passivate, and come back from the store with every acknowledged add.
        passivated = await_cart_passivation(&node, passivated).await;
        assert_eq!(cart_map(&node, &bea).await["CACHE-1"], expected);
    }
    let m = node.metrics().await;
    assert_eq!(metric(&m, "emporium_cart_cache_up", &[]), Some(0.0), "{m}");

    redis.up(); // empty: it keeps nothing on disk
    let start = Instant::now();
    let mut used = false;
    while start.elapsed() < Duration::from_secs(30) && !used {
        assert_eq!(add_to_cart(&node, &bea, "CACHE-1", 1).await, 204);
        expected += 1;
        used = redis_keys(&redis.redis_url()).await > 0;
        if !used {
            actix_rt::time::sleep(Duration::from_millis(300)).await;
        }
    }
    assert!(used, "Redis not used again after it came back");
    await_cart_passivation(&node, passivated).await;
    let hits = cache_hits(&node.metrics().await);
    assert_eq!(cart_map(&node, &bea).await["CACHE-1"], expected);
    let m = node.metrics().await;
    assert!(
        cache_hits(&m) > hits,
        "reactivation after the restart did not read Redis: {m}"
    );
    assert_eq!(metric(&m, "emporium_cart_cache_up", &[]), Some(1.0), "{m}");
}

/// Acceptance 6: the store stopped: writes answer 503 with `Retry-After` within 10 s, no order is
/// half-written, and once it is back writes succeed without restarting the node.
#[actix_rt::test]
async fn store_down_gives_retryable_503_and_recovers() {
    let mut store = Private::secantus();
    let node = Node::start(NodeOpts::new().demo_catalog(false).env(
        "EMPORIUM_STORE",
        &with_database(&store.mongo_uri(), "emporium"),
    ));
    let admin = admin_token(&node).await;
    create_product(&node, &admin, "Sturdy", "STURDY-1", 3.0, Some(10)).await;
    let cat = register(&node, "cat", "cat@example.com", PASSWORD).await;
    assert_eq!(add_to_cart(&node, &cat, "STURDY-1", 2).await, 204);

    // A hung store (it keeps the connections, answers nothing): bounded by the store timeout.
    store.freeze();
    let started = Instant::now();
    let status = add_to_cart(&node, &cat, "STURDY-1", 1).await;
    let waited = started.elapsed();
    store.thaw();
    assert_eq!(status, 503);
    assert!(waited < Duration::from_secs(10), "took {waited:?}");
    // The add may have landed before the store froze: the answer was 503 either way, and the
    // cart is reloaded from the store, whatever it holds.
    let start = Instant::now();
    let mut status = 0;
    while start.elapsed() < Duration::from_secs(30) && status != 204 {
        status = add_to_cart(&node, &cat, "STURDY-1", 1).await;
        if status != 204 {
            actix_rt::time::sleep(Duration::from_millis(300)).await;
        }
    }
    assert_eq!(status, 204, "writes did not recover after the freeze");
    let held = cart_map(&node, &cat).await["STURDY-1"];
    assert!((3..=4).contains(&held), "{held}");
    let (s, _) = node
        .put(
            "/api/cart/items/STURDY-1",
            Some(&cat),
            json!({"quantity": 2}),
        )
        .await;
    assert_eq!(s, 204);

    store.down();
    let started = Instant::now();
    let r = node
        .send(
            awc::http::Method::POST,
            "/api/cart/items",
            &auth(Some(&cat)),
            &[],
            Some((
                "application/json",
                br#"{"productSku":"STURDY-1","quantity":1}"#.to_vec(),
            )),
        )
        .await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(r.headers.contains_key("retry-after"), "{:?}", r.headers);
    assert!(r.body["message"].is_string(), "{}", r.text);
    let started = Instant::now();
    let (s, b) = node.post("/api/checkout", Some(&cat), json!({})).await;
    assert_eq!(s, 503, "{b}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    let (s, _) = node.get("/readyz", None).await;
    assert_eq!(s, 503);

    store.up();
    let start = Instant::now();
    let mut status = 0;
    while start.elapsed() < Duration::from_secs(60) && status != 204 {
        status = add_to_cart(&node, &cat, "STURDY-1", 1).await;
        if status != 204 {
            assert_eq!(status, 503);
            actix_rt::time::sleep(Duration::from_millis(500)).await;
        }
    }
    assert_eq!(status, 204, "writes did not recover");
    // What was acknowledged is there; the refused add and the refused checkout left nothing.
    assert_eq!(cart_map(&node, &cat).await["STURDY-1"], 3);
    let (s, orders) = node.get("/api/orders", Some(&cat)).await;
    assert_eq!((s, orders), (200, Value::Array(vec![])));
    assert_eq!(stock_of(&node, "STURDY-1").await, Some(10));
    let (s, order) = node.post("/api/checkout", Some(&cat), json!({})).await;
    assert_eq!(s, 201, "{order}");
    assert_eq!(stock_of(&node, "STURDY-1").await, Some(7));
}

/// Two nodes on one shared store: a product an admin creates on one is on sale on the other
/// within the catalog refresh (bounded wait).
#[actix_rt::test]
async fn nodes_sharing_a_store_see_each_others_products() {
    // One fresh database, shared by the nodes started from these options.
    let opts = NodeOpts::new().demo_catalog(false).real_backends();
    let a = Node::start(opts.clone());
    let b = Node::start(opts);
    let admin = admin_token(&a).await;
    create_product(&a, &admin, "Shared", "SHARED-1", 9.0, Some(4)).await;
    let start = Instant::now();
    let mut seen = false;
    while start.elapsed() < Duration::from_secs(30) && !seen {
        let (s, page) = b.get("/api/products?search=shared", None).await;
        assert_eq!(s, 200, "{page}");
        seen = page["products"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["sku"] == "SHARED-1"));
        if !seen {
            actix_rt::time::sleep(Duration::from_millis(250)).await;
        }
    }
    assert!(seen, "node b never listed the product node a created");
    let bob = register(&b, "bob", "bob@example.com", PASSWORD).await;
    assert_eq!(add_to_cart(&b, &bob, "SHARED-1", 1).await, 204);
    assert_eq!(stock_of(&b, "SHARED-1").await, Some(4));
}
