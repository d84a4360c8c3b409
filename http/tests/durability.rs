//! Acceptance 5 (payment declines are atomic), 6 (acknowledged writes survive SIGKILL),
//! 8 (idle carts are passivated and come back intact), and acknowledged adds surviving
//! `kill -9`s that cut requests off mid-flight.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use futures_util::stream::{self, StreamExt};
use serde_json::{json, Value};

fn card(number: &str, exp_month: u32, exp_year: u32) -> Value {
    json!({"payment": {"cardNumber": number, "expMonth": exp_month, "expYear": exp_year, "cvc": "123"}})
}

#[actix_rt::test]
async fn declined_and_expired_cards_change_nothing() {
    declined_cards_on(NodeOpts::new().demo_catalog(false)).await;
}

/// The same on the MongoDB-compatible store, Redis and RabbitMQ.
#[actix_rt::test]
async fn declined_and_expired_cards_change_nothing_on_real_backends() {
    declined_cards_on(NodeOpts::new().demo_catalog(false).real_backends()).await;
}

async fn declined_cards_on(opts: NodeOpts) {
    let node = Node::start(opts);
    let admin = admin_token(&node).await;
    create_product(&node, &admin, "Pay Tracked", "PAY-T", 12.34, Some(5)).await;
    create_product(&node, &admin, "Pay Untracked", "PAY-U", 1.0, None).await;
    let u = register(&node, "frank", "frank@example.com", PASSWORD).await;
    assert_eq!(add_to_cart(&node, &u, "PAY-T", 2).await, 204);
    assert_eq!(add_to_cart(&node, &u, "PAY-U", 3).await, 204);
    let before = cart_lines(&node, &u).await;
    assert_eq!(before.len(), 2);

    let cases = [
        ("declined card", card("4000000000000002", 12, 2099)),
        ("expired card", card("4242424242424242", 12, 2020)),
    ];
    for (what, body) in cases {
        let (s, b) = node.post("/api/checkout", Some(u.as_str()), body).await;
        assert_error(what, (s, &b), 402);
        assert_eq!(cart_lines(&node, &u).await, before, "{what}: cart changed");
        assert_eq!(
            stock_of(&node, "PAY-T").await,
            Some(5),
            "{what}: stock changed"
        );
        let (_, orders) = node.get("/api/orders", Some(u.as_str())).await;
        assert_eq!(
            orders.as_array().map(Vec::len),
            Some(0),
            "{what}: an order was stored: {orders}"
        );
    }

    let (s, order) = node
        .post(
            "/api/checkout",
            Some(u.as_str()),
            card("4242424242424242", 12, 2099),
        )
        .await;
    assert_eq!(s, 201, "valid card: {order}");
    assert_eq!(cents(&order["total"]), 2 * 1234 + 3 * 100);
    assert_eq!(stock_of(&node, "PAY-T").await, Some(3));
    assert_eq!(
        cart_lines(&node, &u).await,
        Vec::<Value>::new(),
        "cart not cleared"
    );
    let (_, orders) = node.get("/api/orders", Some(u.as_str())).await;
    assert_eq!(orders.as_array().map(Vec::len), Some(1));
}

#[actix_rt::test]
async fn acknowledged_adds_survive_sigkill() {
    adds_survive_sigkill(NodeOpts::new().demo_catalog(false)).await;
}

/// The same with the store on the MongoDB-compatible server and the cart cache on Redis: the
/// restarted node reads every acknowledged add back.
#[actix_rt::test]
async fn acknowledged_adds_survive_sigkill_on_real_backends() {
    adds_survive_sigkill(NodeOpts::new().demo_catalog(false).real_backends()).await;
}

async fn adds_survive_sigkill(opts: NodeOpts) {
    const USERS: usize = 10;
    const ADDS: usize = 100;
    let mut node = Node::start(opts);
    let admin = admin_token(&node).await;
    let skus = ["DUR-A", "DUR-B", "DUR-C", "DUR-D", "DUR-E"];
    for (i, sku) in skus.iter().enumerate() {
        let stock = if i % 2 == 0 { Some(100_000) } else { None };
        create_product(
            &node,
            &admin,
            &format!("Durable {sku}"),
            sku,
            1.5 + i as f64,
            stock,
        )
        .await;
    }
    let mut tokens = Vec::new();
    for u in 0..USERS {
        tokens.push(
            register(
                &node,
                &format!("dur{u}"),
                &format!("dur{u}@example.com"),
                PASSWORD,
            )
            .await,
        );
    }

    let mut expected: Vec<BTreeMap<String, i64>> = vec![BTreeMap::new(); USERS];
    let mut plan = Vec::new();
    for j in 0..ADDS {
        for (u, exp) in expected.iter_mut().enumerate() {
            let sku = skus[(u * 3 + j * j) % skus.len()];
            *exp.entry(sku.to_string()).or_default() += 1;
            plan.push((u, sku));
        }
    }
    assert_eq!(plan.len(), 1000);
    let node_ref = &node;
    let tokens_ref = &tokens;
    let statuses: Vec<(usize, &str, u16)> = stream::iter(plan)
        .map(
            |(u, sku)| async move { (u, sku, add_to_cart(node_ref, &tokens_ref[u], sku, 1).await) },
        )
        .buffer_unordered(32)
        .collect()
        .await;
    let failed: Vec<_> = statuses.iter().filter(|(_, _, s)| *s != 204).collect();
    assert!(
        failed.is_empty(),
        "{} adds not acknowledged with 204, e.g. {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    for (u, exp) in expected.iter().enumerate() {
        assert_eq!(
            &cart_map(&node, &tokens[u]).await,
            exp,
            "dur{u} before the crash"
        );
    }

    node.kill9();
    assert!(!node.is_running());
    node.restart();

    // Users, products and every acknowledged add are still there.
    let relogin = login(&node, "dur0@example.com", PASSWORD).await;
    assert_eq!(
        &cart_map(&node, &relogin).await,
        &expected[0],
        "dur0 after restart (fresh login)"
    );
    for (u, exp) in expected.iter().enumerate() {
        assert_eq!(
            &cart_map(&node, &tokens[u]).await,
            exp,
            "dur{u} after kill -9 + restart"
        );
    }
    for (i, sku) in skus.iter().enumerate() {
        let want = if i % 2 == 0 { Some(100_000) } else { None };
        assert_eq!(stock_of(&node, sku).await, want, "{sku} after restart");
    }
    // And the restarted node still takes writes.
    assert_eq!(add_to_cart(&node, &tokens[0], "DUR-A", 1).await, 204);
}

/// `kill -9` while adds are in flight, four times over on the same data: every add answered 204
/// before a kill is in the cart after the restart, and of those still unanswered at most one per
/// user (each user sends one at a time) may have landed too. Each kill comes after `KILL_AFTER`
/// acknowledgements, while every user still has adds to send, so requests are cut off mid-flight.
#[actix_rt::test]
async fn acknowledged_adds_survive_sigkill_mid_load() {
    adds_survive_sigkill_mid_load(NodeOpts::new().demo_catalog(false)).await;
}

#[actix_rt::test]
async fn acknowledged_adds_survive_sigkill_mid_load_on_real_backends() {
    adds_survive_sigkill_mid_load(NodeOpts::new().demo_catalog(false).real_backends()).await;
}

const MID_USERS: usize = 8;
const MID_MAX_ADDS: usize = 400;
const KILL_AFTER: usize = 600;

async fn adds_survive_sigkill_mid_load(opts: NodeOpts) {
    let mut node = Node::start(opts);
    let admin = admin_token(&node).await;
    create_product(&node, &admin, "Mid-load", "MID-1", 2.0, None).await;
    let mut tokens = Vec::new();
    for u in 0..MID_USERS {
        let (name, email) = (format!("mid{u}"), format!("mid{u}@example.com"));
        tokens.push(register(&node, &name, &email, PASSWORD).await);
    }
    let mut carts = [0i64; MID_USERS];
    for round in 0..4 {
        let acked = adds_until_killed(&node, &tokens).await;
        node.restart();
        for (u, (base, acked)) in carts.iter_mut().zip(acked).enumerate() {
            let got = cart_map(&node, &tokens[u]).await.get("MID-1").copied();
            let (want, got) = (*base + acked as i64, got.unwrap_or(0));
            assert!(
                (want..=want + 1).contains(&got),
                "round {round}, mid{u}: {base} in the cart before, {acked} more adds acknowledged \
                 before the kill, {got} in the cart after the restart"
            );
            *base = got;
        }
    }
    assert_eq!(add_to_cart(&node, &tokens[0], "MID-1", 1).await, 204);
}

/// Every user adds MID-1 one at a time until its connection fails or MID_MAX_ADDS; the node is
/// killed when KILL_AFTER adds are acknowledged in all. Returns each user's acknowledged adds.
async fn adds_until_killed(node: &Node, tokens: &[String]) -> Vec<usize> {
    let pid = node
        .pid()
        .and_then(|p| rustix::process::Pid::from_raw(p as i32));
    let pid = pid.expect("node running");
    let acked_total = std::cell::Cell::new(0usize);
    let body = serde_json::to_vec(&json!({"productSku": "MID-1", "quantity": 1})).unwrap();
    let (acked_ref, body_ref) = (&acked_total, &body);
    let users = tokens.iter().map(|token| async move {
        let auth = Auth::Bearer(token.clone());
        let mut acked = 0usize;
        for _ in 0..MID_MAX_ADDS {
            let body = Some(("application/json", body_ref.clone()));
            let path = "/api/cart/items";
            match node
                .try_send(awc::http::Method::POST, path, &auth, &[], body)
                .await
            {
                Ok(r) if r.status == 204 => acked += 1,
                Ok(r) => panic!("add answered {} before the kill: {}", r.status, r.text),
                Err(_) => return (acked, true),
            }
            acked_ref.set(acked_ref.get() + 1);
            if acked_ref.get() == KILL_AFTER {
                // Straight from this task, so the other users' requests are still in flight.
                rustix::process::kill_process(pid, rustix::process::Signal::KILL)
                    .unwrap_or_else(|e| panic!("kill -9 {pid:?}: {e}"));
            }
        }
        (acked, false)
    });
    let results = futures_util::future::join_all(users).await;
    assert!(
        results.iter().all(|(_, cut_off)| *cut_off),
        "every user was still adding when the node died: {results:?}"
    );
    results.into_iter().map(|(acked, _)| acked).collect()
}

fn cart_gauges(text: &str) -> (Option<f64>, Option<f64>, Option<f64>) {
    let kind = [("kind", "cart")];
    (
        metric(text, "emporium_actors_passivated_total", &kind),
        metric(text, "emporium_actors_active", &kind),
        metric(text, "emporium_actors_activated_total", &kind),
    )
}

#[actix_rt::test]
async fn idle_carts_are_passivated_and_reactivated() {
    let node = Node::start(
        NodeOpts::new()
            .demo_catalog(false)
            .env("EMPORIUM_IDLE_TIMEOUT_SECS", "1"),
    );
    let admin = admin_token(&node).await;
    create_product(&node, &admin, "Idle One", "IDLE-1", 4.0, Some(50)).await;
    create_product(&node, &admin, "Idle Two", "IDLE-2", 6.5, None).await;
    let u = register(&node, "gina", "gina@example.com", PASSWORD).await;
    assert_eq!(add_to_cart(&node, &u, "IDLE-1", 3).await, 204);
    assert_eq!(add_to_cart(&node, &u, "IDLE-2", 1).await, 204);
    let before = cart_lines(&node, &u).await;
    assert_eq!(before.len(), 2);

    let (_, _, activated_before) = cart_gauges(&node.metrics().await);
    let activated_before =
        activated_before.expect("emporium_actors_activated_total{kind=\"cart\"} missing");
    assert!(
        activated_before >= 1.0,
        "the cart was used, so a cart actor was activated"
    );

    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = String::new();
    let mut passivated = false;
    for _ in 0..200 {
        last = node.metrics().await;
        if let (Some(p), Some(a), _) = cart_gauges(&last) {
            if p >= 1.0 && a == 0.0 {
                passivated = true;
                break;
            }
        }
        if Instant::now() >= deadline {
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(250)).await;
    }
    let cart_lines_of_metrics: Vec<&str> = last
        .lines()
        .filter(|l| l.contains("kind=\"cart\""))
        .collect();
    assert!(
        passivated,
        "cart actor not passivated within 15 s; cart metrics: {cart_lines_of_metrics:#?}"
    );

    assert_eq!(
        cart_lines(&node, &u).await,
        before,
        "cart changed across passivation"
    );
    let (_, _, activated_after) = cart_gauges(&node.metrics().await);
    assert!(
        activated_after.unwrap() > activated_before,
        "reading the passivated cart did not activate it again ({activated_before} -> {activated_after:?})"
    );
}
