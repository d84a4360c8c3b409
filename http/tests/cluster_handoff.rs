//! Rolling restarts and resizes under load, through a load balancer that sends only to ready
//! nodes: no request fails, every acknowledged add is in its cart, stock is exact, every order
//! is stored and its `order.created` event reached RabbitMQ, and resizes move about the ideal
//! share of shards.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cluster::{ClusterOpts, TestCluster};
use common::load::{start_shoppers, LoadReport};
use common::*;

const STOCK: i64 = 100_000;

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    actix_rt::System::new().block_on(f)
}

/// Products with tracked stock and registered shoppers; returns (skus, tokens).
fn set_up(cluster: &TestCluster, users: usize, tag: &str) -> (Vec<String>, Vec<String>) {
    let port = cluster.balancer.port();
    block_on(async move {
        let lb = Node::attach("127.0.0.1", port);
        let admin = admin_token(&lb).await;
        let mut skus = Vec::new();
        for i in 0..4 {
            let sku = format!("{tag}-{i}");
            create_product(
                &lb,
                &admin,
                &format!("{tag} item {i}"),
                &sku,
                2.5,
                Some(STOCK),
            )
            .await;
            skus.push(sku);
        }
        let mut tokens = Vec::new();
        for i in 0..users {
            let email = format!("{}{i}@example.com", tag.to_lowercase());
            tokens.push(register(&lb, "shopper", &email, PASSWORD).await);
        }
        (skus, tokens)
    })
}

/// Everything the shoppers were told happened is in the store, and nothing else.
fn verify(cluster: &TestCluster, skus: &[String], tokens: &[String], report: &LoadReport) {
    assert_eq!(
        report.failed(),
        0,
        "failed requests: {:?}; first: {:#?}",
        report.statuses,
        report.failures
    );
    let port = cluster.balancer.port();
    block_on(async move {
        let lb = Node::attach("127.0.0.1", port);
        let mut sold: BTreeMap<String, i64> = BTreeMap::new();
        for (i, token) in tokens.iter().enumerate() {
            let cart = cart_map(&lb, token).await;
            assert_eq!(
                cart, report.carts[i],
                "user {i}: acknowledged adds missing from the cart"
            );
            let (s, orders) = lb.get("/api/orders", Some(token)).await;
            assert_eq!(s, 200, "{orders}");
            let stored: BTreeMap<String, &serde_json::Value> = orders
                .as_array()
                .unwrap()
                .iter()
                .map(|o| (o["id"].as_str().unwrap().to_string(), o))
                .collect();
            let acked: Vec<&String> = report.orders[i].iter().map(|(id, _)| id).collect();
            assert_eq!(
                stored.keys().collect::<Vec<_>>(),
                {
                    let mut a = acked.clone();
                    a.sort();
                    a
                },
                "user {i}: stored orders differ from the acknowledged ones"
            );
            for (_, items) in &report.orders[i] {
                for (sku, q) in items {
                    *sold.entry(sku.clone()).or_default() += q;
                }
            }
        }
        for sku in skus {
            let left = stock_of(&lb, sku).await;
            let sold = sold.get(sku).copied().unwrap_or(0);
            assert_eq!(left, Some(STOCK - sold), "{sku}: stock is not exact");
        }
    });
    let acked: std::collections::BTreeSet<String> = report
        .orders
        .iter()
        .flatten()
        .map(|(id, _)| id.clone())
        .collect();
    let missing: Vec<&String> = acked.difference(&report.created_events).collect();
    assert!(
        missing.is_empty(),
        "orders whose order.created event never reached RabbitMQ: {missing:?}"
    );
}

fn print_timeline(what: &str, report: &LoadReport, marks: &[(u64, String)]) {
    println!("{what}: {} requests, {:?}", report.total(), report.statuses);
    for (second, n, p99) in report.timeline() {
        let mark: Vec<&str> = marks
            .iter()
            .filter(|(t, _)| t / 1000 == second)
            .map(|(_, m)| m.as_str())
            .collect();
        println!(
            "  t={second:>3}s requests={n:>4} p99={p99:>7.1} ms {}",
            mark.join(", ")
        );
    }
}

#[test]
fn a_rolling_restart_under_load_fails_no_request_and_loses_no_write() {
    let mut cluster = TestCluster::start(3, ClusterOpts::default());
    let (skus, tokens) = set_up(&cluster, 6, "ROLL");
    let stop = Arc::new(AtomicBool::new(false));
    let load = start_shoppers(
        cluster.balancer.port(),
        tokens.clone(),
        skus.clone(),
        stop.clone(),
        20_000,
        7,
    );
    let started = Instant::now();
    let mut marks = Vec::new();
    std::thread::sleep(Duration::from_secs(2));
    for ordinal in 0..3 {
        let at = u64::try_from(started.elapsed().as_millis()).unwrap();
        let away = cluster.restart(ordinal);
        marks.push((
            at,
            format!("restart node {ordinal} ({} ms away)", away.as_millis()),
        ));
        cluster.wait_settled(Duration::from_secs(60));
    }
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let report = load.join().unwrap();
    print_timeline("rolling restart", &report, &marks);
    assert!(
        report.total() > 200,
        "too little load to mean anything: {:?}",
        report.statuses
    );
    assert!(
        !report
            .orders
            .iter()
            .flatten()
            .collect::<Vec<_>>()
            .is_empty(),
        "no checkout happened"
    );
    verify(&cluster, &skus, &tokens, &report);
    assert_eq!(cluster.balancer.bad_gateway.load(Ordering::Relaxed), 0);
}

/// Shards moved between two owner maps, and the ideal count for going from `n` to `m` nodes.
fn moved(before: &[Option<u64>], after: &[Option<u64>], n: usize, m: usize) -> (usize, f64) {
    let moved = before.iter().zip(after).filter(|(a, b)| a != b).count();
    let ideal = before.len() as f64 * (n.abs_diff(m)) as f64 / n.max(m) as f64;
    (moved, ideal)
}

#[test]
fn resizing_three_to_five_to_two_under_load_moves_the_ideal_share_and_loses_nothing() {
    let opts = ClusterOpts {
        // Enough shards for the moved share to be close to its expectation.
        shards: 128,
        ..ClusterOpts::default()
    };
    let mut cluster = TestCluster::start(3, opts);
    let (skus, tokens) = set_up(&cluster, 6, "SIZE");
    let port = cluster.balancer.port();
    let admin = block_on(async move { admin_token(&Node::attach("127.0.0.1", port)).await });
    let owners = |cluster: &TestCluster| {
        let admin = admin.clone();
        block_on(async move { cluster.owners(&admin).await })
    };
    let stop = Arc::new(AtomicBool::new(false));
    let load = start_shoppers(port, tokens.clone(), skus.clone(), stop.clone(), 20_000, 7);
    std::thread::sleep(Duration::from_secs(1));

    let three = owners(&cluster);
    cluster.add(3);
    cluster.add(4);
    cluster.wait_settled(Duration::from_secs(60));
    let five = owners(&cluster);
    let (n, ideal) = moved(&three, &five, 3, 5);
    println!("3 -> 5 nodes: {n} shards moved, ideal {ideal:.1}");
    assert!(
        (n as f64 - ideal).abs() <= ideal * 0.1,
        "3 -> 5 moved {n}, ideal {ideal}"
    );
    assert!(
        three
            .iter()
            .zip(&five)
            .all(|(a, b)| a == b || matches!(b, Some(3 | 4))),
        "growing moved shards between old nodes"
    );

    cluster.remove(4);
    cluster.remove(3);
    cluster.remove(2);
    cluster.wait_settled(Duration::from_secs(60));
    let two = owners(&cluster);
    let (n, ideal) = moved(&five, &two, 5, 2);
    println!("5 -> 2 nodes: {n} shards moved, ideal {ideal:.1}");
    assert!(
        (n as f64 - ideal).abs() <= ideal * 0.1,
        "5 -> 2 moved {n}, ideal {ideal}"
    );
    assert!(
        five.iter()
            .zip(&two)
            .all(|(a, b)| a == b || matches!(a, Some(2..=4))),
        "shrinking moved shards of nodes that stayed"
    );

    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let report = load.join().unwrap();
    print_timeline("resize", &report, &[]);
    verify(&cluster, &skus, &tokens, &report);
}
