//! Acceptance 2 (single-writer cart), 3 (no overselling), 4 (idempotent checkout).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use awc::http::Method;
use common::cluster::{ClusterOpts, TestCluster};
use common::*;
use futures_util::future::join_all;
use futures_util::stream::{self, StreamExt};
use serde_json::Value;

/// The same three properties on a three-node cluster, every request sent through a load
/// balancer to a random node: commands reach each entity's owner wherever it is.
#[actix_rt::test]
async fn a_three_node_cluster_counts_every_add_never_oversells_and_keeps_checkout_idempotent() {
    let cluster = TestCluster::start(3, ClusterOpts::default());
    let lb = cluster.lb();
    concurrent_adds_to_one_cart_are_all_counted_against(&lb).await;
    fifty_buyers_ten_in_stock_no_overselling_against(&lb).await;
    idempotency_key_returns_the_same_order_against(&lb).await;
    let forwarded: f64 = cluster
        .nodes
        .values()
        .map(|n| {
            let (_, text) = blocking_get_at(n.host(), n.port(), "/metrics").unwrap();
            metric(
                &text,
                "emporium_cluster_forwarded_total",
                &[("outcome", "served")],
            )
            .unwrap_or(0.0)
        })
        .sum();
    assert!(
        forwarded > 100.0,
        "commands were not spread over the nodes: {forwarded} forwarded"
    );
}

fn node(real: bool) -> Node {
    let opts = NodeOpts::new().demo_catalog(false);
    Node::start(if real { opts.real_backends() } else { opts })
}

/// Registers `n` users with bounded concurrency; returns their tokens in order.
async fn register_many(node: &Node, n: usize) -> Vec<String> {
    let futs = (0..n).map(|i| async move {
        register(
            node,
            &format!("buyer{i}"),
            &format!("buyer{i}@example.com"),
            PASSWORD,
        )
        .await
    });
    stream::iter(futs).buffered(8).collect().await
}

#[actix_rt::test]
async fn concurrent_adds_to_one_cart_are_all_counted() {
    concurrent_adds_to_one_cart_are_all_counted_on(false).await;
}

/// The same on the MongoDB-compatible store, Redis and RabbitMQ.
#[actix_rt::test]
async fn concurrent_adds_to_one_cart_are_all_counted_on_real_backends() {
    concurrent_adds_to_one_cart_are_all_counted_on(true).await;
}

async fn concurrent_adds_to_one_cart_are_all_counted_on(real: bool) {
    concurrent_adds_to_one_cart_are_all_counted_against(&node(real)).await;
}

async fn concurrent_adds_to_one_cart_are_all_counted_against(node: &Node) {
    let admin = admin_token(node).await;
    let p = create_product(node, &admin, "Hot Item", "HOT-1", 2.25, Some(1000)).await;
    let user = register(node, "carol", "carol@example.com", PASSWORD).await;

    let adds = (0..200).map(|_| add_to_cart(node, &user, "HOT-1", 1));
    let statuses = join_all(adds).await;
    let mut counts: BTreeMap<u16, usize> = BTreeMap::new();
    for s in &statuses {
        *counts.entry(*s).or_default() += 1;
    }
    assert_eq!(
        counts,
        BTreeMap::from([(204, 200)]),
        "statuses of 200 concurrent adds"
    );

    let lines = cart_lines(node, &user).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["sku"], "HOT-1");
    assert_eq!(
        lines[0]["quantity"].as_i64(),
        Some(200),
        "lost updates: {lines:?}"
    );
    assert_eq!(cents(&lines[0]["lineTotal"]), 200 * cents(&p["price"]));
    // Adding to a cart reserves nothing.
    assert_eq!(stock_of(node, "HOT-1").await, Some(1000));
}

#[actix_rt::test]
async fn fifty_buyers_ten_in_stock_no_overselling() {
    fifty_buyers_ten_in_stock_no_overselling_on(false).await;
}

/// The same on the MongoDB-compatible store, Redis and RabbitMQ.
#[actix_rt::test]
async fn fifty_buyers_ten_in_stock_no_overselling_on_real_backends() {
    fifty_buyers_ten_in_stock_no_overselling_on(true).await;
}

async fn fifty_buyers_ten_in_stock_no_overselling_on(real: bool) {
    fifty_buyers_ten_in_stock_no_overselling_against(&node(real)).await;
}

async fn fifty_buyers_ten_in_stock_no_overselling_against(node: &Node) {
    let admin = admin_token(node).await;
    create_product(node, &admin, "Scarce Widget", "SCARCE-10", 9.99, Some(10)).await;
    let buyers = register_many(node, 50).await;
    for (i, t) in buyers.iter().enumerate() {
        assert_eq!(
            add_to_cart(node, t, "SCARCE-10", 1).await,
            204,
            "buyer{i} add"
        );
    }

    let checkouts = buyers
        .iter()
        .map(|t| node.post("/api/checkout", Some(t.as_str()), Value::Null));
    let results = join_all(checkouts).await;

    let mut won = Vec::new();
    let mut lost = Vec::new();
    for (i, (s, b)) in results.iter().enumerate() {
        match s {
            201 => won.push(i),
            409 => {
                assert_error(&format!("buyer{i} checkout"), (*s, b), 409);
                let msg = b["message"].as_str().unwrap();
                assert!(
                    msg.contains("SCARCE-10"),
                    "409 message does not name the sku: {b}"
                );
                lost.push(i);
            }
            other => panic!("buyer{i} checkout: unexpected {other}: {b}"),
        }
    }
    assert_eq!((won.len(), lost.len()), (10, 40), "winners/losers");
    assert_eq!(stock_of(node, "SCARCE-10").await, Some(0), "final stock");

    for &i in &won {
        let (s, orders) = node.get("/api/orders", Some(buyers[i].as_str())).await;
        assert_eq!(s, 200);
        let orders = orders.as_array().unwrap();
        assert_eq!(orders.len(), 1, "buyer{i} orders");
        assert_eq!(orders[0]["items"][0]["sku"], "SCARCE-10");
        assert_eq!(orders[0]["items"][0]["quantity"].as_i64(), Some(1));
        assert_eq!(
            cart_map(node, &buyers[i]).await,
            BTreeMap::new(),
            "winner's cart not cleared"
        );
    }
    for &i in &lost {
        let (s, orders) = node.get("/api/orders", Some(buyers[i].as_str())).await;
        assert_eq!(s, 200);
        assert_eq!(
            orders.as_array().map(Vec::len),
            Some(0),
            "buyer{i} lost but has an order"
        );
        // Atomic: a failed checkout leaves the cart as it was.
        assert_eq!(
            cart_map(node, &buyers[i]).await,
            BTreeMap::from([("SCARCE-10".to_string(), 1)]),
            "loser's cart"
        );
    }
    // A loser retrying still gets 409, and nothing changes.
    let (s, b) = node
        .post("/api/checkout", Some(buyers[lost[0]].as_str()), Value::Null)
        .await;
    assert_error("retry after sell-out", (s, &b), 409);
    assert_eq!(stock_of(node, "SCARCE-10").await, Some(0));
}

async fn checkout_with_key(node: &Node, token: &str, key: &str) -> (u16, Value) {
    let r = node
        .send(
            Method::POST,
            "/api/checkout",
            &Auth::Bearer(token.to_string()),
            &[("Idempotency-Key", key)],
            None,
        )
        .await;
    (r.status, r.body)
}

#[actix_rt::test]
async fn idempotency_key_returns_the_same_order() {
    idempotency_key_returns_the_same_order_on(false).await;
}

/// The same on the MongoDB-compatible store, Redis and RabbitMQ.
#[actix_rt::test]
async fn idempotency_key_returns_the_same_order_on_real_backends() {
    idempotency_key_returns_the_same_order_on(true).await;
}

async fn idempotency_key_returns_the_same_order_on(real: bool) {
    idempotency_key_returns_the_same_order_against(&node(real)).await;
}

async fn idempotency_key_returns_the_same_order_against(node: &Node) {
    let admin = admin_token(node).await;
    create_product(node, &admin, "Idem Thing", "IDEM-1", 5.0, Some(100)).await;
    let dave = register(node, "dave", "dave@example.com", PASSWORD).await;

    assert_eq!(add_to_cart(node, &dave, "IDEM-1", 3).await, 204);
    let (s1, o1) = checkout_with_key(node, &dave, "key-0001").await;
    assert_eq!(s1, 201, "{o1}");
    let (s2, o2) = checkout_with_key(node, &dave, "key-0001").await;
    assert_eq!(s2, 201, "replay: {o2}");
    assert_eq!(id_of(&o1), id_of(&o2), "replay created a different order");
    assert_eq!(o2["items"], o1["items"]);
    assert_eq!(cents(&o2["total"]), cents(&o1["total"]));
    let (_, orders) = node.get("/api/orders", Some(dave.as_str())).await;
    assert_eq!(orders.as_array().map(Vec::len), Some(1), "orders: {orders}");
    assert_eq!(
        stock_of(node, "IDEM-1").await,
        Some(97),
        "stock decremented more than once"
    );

    // A replay does not swallow a new cart, and a new key makes a new order.
    assert_eq!(add_to_cart(node, &dave, "IDEM-1", 1).await, 204);
    let (s3, o3) = checkout_with_key(node, &dave, "key-0001").await;
    assert_eq!(s3, 201, "{o3}");
    assert_eq!(id_of(&o3), id_of(&o1));
    assert_eq!(
        cart_map(node, &dave).await,
        BTreeMap::from([("IDEM-1".to_string(), 1)]),
        "replay touched the new cart"
    );
    let (s4, o4) = checkout_with_key(node, &dave, "key-0002").await;
    assert_eq!(s4, 201, "{o4}");
    assert_ne!(id_of(&o4), id_of(&o1));
    assert_eq!(stock_of(node, "IDEM-1").await, Some(96));

    // The same key from another user is a different order.
    let erin = register(node, "erin", "erin@example.com", PASSWORD).await;
    assert_eq!(add_to_cart(node, &erin, "IDEM-1", 2).await, 204);
    let (s5, o5) = checkout_with_key(node, &erin, "key-0001").await;
    assert_eq!(s5, 201, "{o5}");
    assert_ne!(
        id_of(&o5),
        id_of(&o1),
        "idempotency keys leaked across users"
    );
    assert_eq!(o5["userEmail"], "erin@example.com");
    assert_eq!(stock_of(node, "IDEM-1").await, Some(94));

    // Concurrent duplicates: at most one order, every success is that order.
    assert_eq!(add_to_cart(node, &dave, "IDEM-1", 1).await, 204);
    let burst = join_all((0..8).map(|_| checkout_with_key(node, &dave, "key-burst"))).await;
    let ok: Vec<String> = burst
        .iter()
        .filter(|(s, _)| *s == 201)
        .map(|(_, b)| id_of(b))
        .collect();
    for (s, b) in &burst {
        assert!(
            *s == 201 || *s == 409,
            "concurrent duplicate checkout: {s} {b}"
        );
    }
    assert!(
        !ok.is_empty(),
        "no concurrent duplicate succeeded: {burst:?}"
    );
    assert!(
        ok.iter().all(|id| *id == ok[0]),
        "concurrent duplicates made different orders: {ok:?}"
    );
    let (_, orders) = node.get("/api/orders", Some(dave.as_str())).await;
    assert_eq!(
        orders.as_array().map(Vec::len),
        Some(3),
        "dave's orders: {orders}"
    );
    assert_eq!(stock_of(node, "IDEM-1").await, Some(93));
}
