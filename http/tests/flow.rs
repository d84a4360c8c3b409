//! Acceptance 1: register → login → browse → cart → checkout → orders → cancel → admin transitions.
//! (Catalog paging/filter/search details are in `catalog.rs`; the same flow on the README's defaults,
//! without admin steps, in `readme.rs`.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use common::cluster::{ClusterOpts, TestCluster};
use common::*;
use serde_json::{json, Value};

async fn order_ids(node: &Node, token: &str) -> Vec<String> {
    let (s, b) = node.get("/api/orders", Some(token)).await;
    assert_eq!(s, 200, "{b}");
    b.as_array().unwrap().iter().map(id_of).collect()
}

async fn set_status(node: &Node, token: &str, id: &str, status: &str) -> (u16, Value) {
    node.post(
        &format!("/api/admin/orders/{}/status", enc(id)),
        Some(token),
        json!({"status": status}),
    )
    .await
}

#[actix_rt::test]
async fn shop_checkout_cancel_and_admin_transitions() {
    shop_flow(NodeOpts::new().demo_catalog(true)).await;
}

/// The same flow with the store on the MongoDB-compatible server, the cart
/// cache on Redis and order events on RabbitMQ.
#[actix_rt::test]
async fn shop_flow_on_real_backends() {
    shop_flow(NodeOpts::new().demo_catalog(true).real_backends()).await;
}

/// The same flow on a three-node cluster, every request through a load balancer to a random
/// node: products written on one node are on sale on the next, and every command reaches its
/// entity's owner (cancel gives the stock back through the SKU's owner).
#[actix_rt::test]
async fn shop_flow_on_a_three_node_cluster() {
    let opts = ClusterOpts {
        env: vec![("EMPORIUM_DEMO_CATALOG".into(), "true".into())],
        ..ClusterOpts::default()
    };
    let cluster = TestCluster::start(3, opts);
    shop_flow_against(&cluster.lb()).await;
}

async fn shop_flow(opts: NodeOpts) {
    shop_flow_against(&Node::start(opts)).await;
}

async fn shop_flow_against(node: &Node) {
    let admin = admin_token(node).await;
    assert_eq!(decode_claims(&admin)["role"], "admin");

    // Register (mixed-case email is normalised) and log in.
    let reg = register(node, "alice", "Alice@Example.com", PASSWORD).await;
    let claims = decode_claims(&reg);
    assert_eq!(claims["email"], "alice@example.com", "{claims}");
    assert_eq!(claims["username"], "alice", "{claims}");
    assert_eq!(claims["role"], "customer", "{claims}");
    assert!(!claims["sub"].is_null(), "{claims}");
    assert!(claims["exp"].as_u64().unwrap() > now_secs(), "{claims}");
    let alice = login(node, "alice@example.com", PASSWORD).await;
    assert_eq!(decode_claims(&alice)["email"], "alice@example.com");

    // Products: created out of sku order to check cart sorting.
    let pc = create_product(node, &admin, "Flow Charlie", "FLOW-C", 3.5, Some(20)).await;
    let pa = create_product(node, &admin, "Flow Alpha", "FLOW-A", 19.99, Some(10)).await;
    let pb = create_product(node, &admin, "Flow Bravo", "FLOW-B", 0.1, None).await;
    // Browse: a case-insensitive search finds them.
    let (s, found) = node.get("/api/products?search=fLoW&limit=100", None).await;
    assert_eq!(s, 200, "{found}");
    let found = found["products"].as_array().unwrap();
    assert!(
        found
            .iter()
            .all(|p| p["name"].as_str().unwrap().to_lowercase().contains("flow")),
        "{found:?}"
    );
    let found_skus: Vec<&str> = found
        .iter()
        .map(|p| p["sku"].as_str().unwrap())
        .filter(|s| s.starts_with("FLOW-"))
        .collect();
    assert_eq!(
        found_skus,
        vec!["FLOW-A", "FLOW-B", "FLOW-C"],
        "search results (sorted by name)"
    );
    let by_sku: BTreeMap<&str, &Value> = [("FLOW-A", &pa), ("FLOW-B", &pb), ("FLOW-C", &pc)]
        .into_iter()
        .collect();

    assert_eq!(
        cart_lines(node, &alice).await,
        Vec::<Value>::new(),
        "new cart not []"
    );
    assert_eq!(add_to_cart(node, &alice, "FLOW-C", 2).await, 204);
    assert_eq!(add_to_cart(node, &alice, "FLOW-A", 1).await, 204);
    assert_eq!(add_to_cart(node, &alice, "FLOW-A", 2).await, 204);
    assert_eq!(add_to_cart(node, &alice, "FLOW-B", 7).await, 204);
    let (s, b) = node
        .put(
            "/api/cart/items/FLOW-B",
            Some(&alice),
            json!({"quantity": 4}),
        )
        .await;
    assert_eq!(s, 204, "{b}");
    let (s, b) = node.delete("/api/cart/items/FLOW-C", Some(&alice)).await;
    assert_eq!(s, 204, "{b}");
    let (s, b) = node.delete("/api/cart/items/FLOW-C", Some(&alice)).await;
    assert_eq!(s, 204, "delete of an absent line: {b}");
    assert_eq!(add_to_cart(node, &alice, "FLOW-C", 5).await, 204);

    let lines = cart_lines(node, &alice).await;
    let got: Vec<(String, i64)> = lines
        .iter()
        .map(|l| {
            (
                l["sku"].as_str().unwrap().to_string(),
                l["quantity"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("FLOW-A".into(), 3),
            ("FLOW-B".into(), 4),
            ("FLOW-C".into(), 5)
        ],
        "cart: {lines:?}"
    );
    for l in &lines {
        let p = by_sku[l["sku"].as_str().unwrap()];
        assert_eq!(l["productId"], p["id"], "{l}");
        assert_eq!(l["name"], p["name"], "{l}");
        assert_eq!(cents(&l["price"]), cents(&p["price"]), "{l}");
        assert_eq!(
            cents(&l["lineTotal"]),
            cents(&p["price"]) * l["quantity"].as_i64().unwrap(),
            "{l}"
        );
    }

    // Checkout (no body: default test card).
    let (s, order1) = node.post("/api/checkout", Some(&alice), Value::Null).await;
    assert_eq!(s, 201, "{order1}");
    let id1 = id_of(&order1);
    assert_eq!(order1["userEmail"], "alice@example.com");
    assert_eq!(order1["status"], "Created");
    let cur = order1["currency"]
        .as_str()
        .unwrap_or_else(|| panic!("currency: {order1}"));
    assert!(
        cur.len() == 3 && cur.chars().all(|c| c.is_ascii_uppercase()),
        "currency {cur}"
    );
    assert!(
        order1["createdAt"].as_str().is_some_and(|t| !t.is_empty())
            || order1["createdAt"].is_number(),
        "createdAt: {order1}"
    );
    let items = order1["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{order1}");
    for (item, line) in items.iter().zip(&lines) {
        assert_eq!(item["sku"], line["sku"]);
        assert_eq!(item["quantity"], line["quantity"]);
        assert_eq!(item["productId"], line["productId"]);
        assert_eq!(item["name"], line["name"]);
        assert_eq!(cents(&item["lineTotal"]), cents(&line["lineTotal"]));
    }
    let sum: i64 = items.iter().map(|i| cents(&i["lineTotal"])).sum();
    assert_eq!(cents(&order1["total"]), sum, "total vs sum of lineTotal");
    assert_eq!(sum, 3 * 1999 + 4 * 10 + 5 * 350);
    assert_eq!(
        cart_lines(node, &alice).await,
        Vec::<Value>::new(),
        "cart not empty after checkout"
    );
    assert_eq!(stock_of(node, "FLOW-A").await, Some(7), "after checkout 1");
    assert_eq!(stock_of(node, "FLOW-C").await, Some(15), "after checkout 1");
    assert_eq!(
        stock_of(node, "FLOW-B").await,
        None,
        "untracked stock became tracked"
    );

    // Second order (with an explicit valid card), plus a demo product.
    let demo = {
        let (_, all) = node.get("/api/products/all", None).await;
        all.as_array()
            .unwrap()
            .iter()
            .find(|p| {
                !p["sku"].as_str().unwrap().starts_with("FLOW-")
                    && (p["stock"].is_null() || p["stock"].as_i64().unwrap() >= 2)
            })
            .cloned()
            .expect("a demo product")
    };
    let demo_sku = demo["sku"].as_str().unwrap();
    let demo_stock = stock_of(node, demo_sku).await;
    assert_eq!(add_to_cart(node, &alice, "FLOW-A", 2).await, 204);
    assert_eq!(add_to_cart(node, &alice, demo_sku, 1).await, 204);
    let card = json!({"payment": {"cardNumber": "4242424242424242", "expMonth": 12, "expYear": 2099, "cvc": "123"}});
    let (s, order2) = node.post("/api/checkout", Some(&alice), card).await;
    assert_eq!(s, 201, "{order2}");
    let id2 = id_of(&order2);
    assert_ne!(id1, id2);
    assert_eq!(stock_of(node, "FLOW-A").await, Some(5), "after checkout 2");
    assert_eq!(
        stock_of(node, demo_sku).await,
        demo_stock.map(|n| n - 1),
        "demo product stock"
    );

    assert_eq!(
        order_ids(node, &alice).await,
        vec![id2.clone(), id1.clone()],
        "orders newest first"
    );
    let (s, b) = node
        .get(&format!("/api/orders/{}", enc(&id1)), Some(&alice))
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b, order1, "GET order differs from checkout response");

    // Another user cannot see or cancel it; an admin can see it.
    let bob = register(node, "bob", "bob@example.com", PASSWORD).await;
    let (s, b) = node
        .get(&format!("/api/orders/{}", enc(&id1)), Some(&bob))
        .await;
    assert_error("bob reads alice's order", (s, &b), 404);
    let (s, b) = node
        .post(
            &format!("/api/orders/{}/cancel", enc(&id1)),
            Some(&bob),
            Value::Null,
        )
        .await;
    assert_error("bob cancels alice's order", (s, &b), 404);
    assert_eq!(order_ids(node, &bob).await, Vec::<String>::new());
    let (s, b) = node
        .get(&format!("/api/orders/{}", enc(&id1)), Some(&admin))
        .await;
    assert_eq!(s, 200, "admin reads any order: {b}");

    // Cancel order 1: stock comes back; a second cancel is 409.
    let (s, c) = node
        .post(
            &format!("/api/orders/{}/cancel", enc(&id1)),
            Some(&alice),
            Value::Null,
        )
        .await;
    assert_eq!(s, 200, "{c}");
    assert_eq!(c["status"], "Cancelled");
    assert_eq!(id_of(&c), id1);
    assert_eq!(
        stock_of(node, "FLOW-A").await,
        Some(8),
        "cancel did not restore stock"
    );
    assert_eq!(
        stock_of(node, "FLOW-C").await,
        Some(20),
        "cancel did not restore stock"
    );
    let (s, b) = node
        .post(
            &format!("/api/orders/{}/cancel", enc(&id1)),
            Some(&alice),
            Value::Null,
        )
        .await;
    assert_error("cancel twice", (s, &b), 409);
    assert_eq!(
        stock_of(node, "FLOW-A").await,
        Some(8),
        "double cancel restored stock twice"
    );

    // Admin transitions on order 2.
    let (s, b) = set_status(node, &alice, &id2, "Paid").await;
    assert_error("non-admin status change", (s, &b), 403);
    let (s, b) = set_status(node, &admin, &id2, "Shipped").await;
    assert_error("Created -> Shipped", (s, &b), 409);
    let (s, b) = set_status(node, &admin, &id2, "Bogus").await;
    assert_error("unknown status", (s, &b), 400);
    for st in ["Paid", "Shipped", "Delivered"] {
        let (s, b) = set_status(node, &admin, &id2, st).await;
        assert_eq!(s, 200, "-> {st}: {b}");
        assert_eq!(b["status"], st);
        let (_, seen) = node
            .get(&format!("/api/orders/{}", enc(&id2)), Some(&alice))
            .await;
        assert_eq!(seen["status"], st, "owner sees the new status");
    }
    let (s, b) = set_status(node, &admin, &id2, "Paid").await;
    assert_error("Delivered -> Paid", (s, &b), 409);
    let (s, b) = set_status(node, &admin, &id2, "Cancelled").await;
    assert_error("Delivered -> Cancelled", (s, &b), 409);
    let (s, b) = node
        .post(
            &format!("/api/orders/{}/cancel", enc(&id2)),
            Some(&alice),
            Value::Null,
        )
        .await;
    assert_error("cancel a delivered order", (s, &b), 409);
    assert_eq!(
        stock_of(node, "FLOW-A").await,
        Some(8),
        "delivered order's stock must not come back"
    );
    let (s, b) = set_status(node, &admin, "no-such-order", "Paid").await;
    assert_error("status of unknown order", (s, &b), 404);

    // Paid orders can still be cancelled by the owner.
    assert_eq!(add_to_cart(node, &alice, "FLOW-C", 4).await, 204);
    let (s, order3) = node.post("/api/checkout", Some(&alice), Value::Null).await;
    assert_eq!(s, 201, "{order3}");
    let id3 = id_of(&order3);
    assert_eq!(stock_of(node, "FLOW-C").await, Some(16), "after checkout 3");
    assert_eq!(set_status(node, &admin, &id3, "Paid").await.0, 200);
    let (s, c) = node
        .post(
            &format!("/api/orders/{}/cancel", enc(&id3)),
            Some(&alice),
            Value::Null,
        )
        .await;
    assert_eq!(s, 200, "{c}");
    assert_eq!(c["status"], "Cancelled");
    assert_eq!(
        stock_of(node, "FLOW-C").await,
        Some(20),
        "cancelling a Paid order did not restore stock"
    );
    assert_eq!(order_ids(node, &alice).await, vec![id3, id2, id1]);
}
