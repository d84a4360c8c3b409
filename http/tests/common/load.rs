//! Shoppers for tests that change the cluster under load: each user adds to its cart and checks
//! out, through the load balancer, on a thread of its own (so the test's thread can restart and
//! resize nodes meanwhile), until told to stop or a bound on requests is reached. Every answer is
//! recorded: what was acknowledged is what the test later finds in the store.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use awc::http::Method;
use serde_json::{json, Value};

use super::{Auth, Node};

/// What the shoppers did and saw.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Answers by status ("204", "201", "503", …, or "error: …" for no answer).
    pub statuses: BTreeMap<String, u64>,
    /// The first few failures, for the assertion message.
    pub failures: Vec<String>,
    /// Per user: the cart its acknowledged adds since its last acknowledged checkout make.
    pub carts: Vec<BTreeMap<String, i64>>,
    /// Per user: the orders its acknowledged checkouts created (id, sku → quantity).
    pub orders: Vec<Vec<(String, BTreeMap<String, i64>)>>,
    /// (milliseconds since start, latency in milliseconds) of every request.
    pub latencies: Vec<(u64, f64)>,
    /// Order ids whose `order.created` event reached RabbitMQ (each event id counted once).
    pub created_events: std::collections::BTreeSet<String>,
    /// Event ids received more than once (at-least-once delivery; consumers dedupe by them).
    pub duplicate_events: u64,
}

impl LoadReport {
    pub fn failed(&self) -> u64 {
        self.statuses
            .iter()
            .filter(|(s, _)| !s.starts_with('2'))
            .map(|(_, n)| n)
            .sum()
    }

    pub fn total(&self) -> u64 {
        self.statuses.values().sum()
    }

    /// p99 latency per second of the run: (second, requests, p99 ms).
    pub fn timeline(&self) -> Vec<(u64, usize, f64)> {
        let mut by_second: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
        for (t, l) in &self.latencies {
            by_second.entry(t / 1000).or_default().push(*l);
        }
        by_second
            .into_iter()
            .map(|(s, mut v)| {
                v.sort_by(f64::total_cmp);
                let i = ((v.len() as f64) * 0.99).ceil() as usize;
                (s, v.len(), v[i.saturating_sub(1).min(v.len() - 1)])
            })
            .collect()
    }
}

/// Runs one shopper per token against the balancer at `port` until `stop` is set or each has
/// sent `max_requests`. Checks out every `checkout_every`-th request. A queue bound to the order
/// events before the first request collects them; after the shoppers stop it waits (bounded)
/// for the `order.created` event of every acknowledged order. Returns once the queue is bound.
pub fn start_shoppers(
    port: u16,
    tokens: Vec<String>,
    skus: Vec<String>,
    stop: Arc<AtomicBool>,
    max_requests: usize,
    checkout_every: usize,
) -> std::thread::JoinHandle<LoadReport> {
    let (bound, is_bound) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let mut events = super::EventConsumer::bind("orders", "order.created").await;
            bound.send(()).unwrap();
            let lb = Node::attach("127.0.0.1", port);
            let started = Instant::now();
            let runs = tokens.iter().enumerate().map(|(i, token)| {
                shopper(
                    &lb,
                    i,
                    token,
                    &skus,
                    &stop,
                    max_requests,
                    checkout_every,
                    started,
                )
            });
            let results = futures_util::future::join_all(runs).await;
            let mut report = LoadReport::default();
            for (statuses, failures, cart, orders, latencies) in results {
                for (s, n) in statuses {
                    *report.statuses.entry(s).or_default() += n;
                }
                report.failures.extend(failures);
                report.carts.push(cart);
                report.orders.push(orders);
                report.latencies.extend(latencies);
            }
            let wanted: std::collections::BTreeSet<String> = report
                .orders
                .iter()
                .flatten()
                .map(|(id, _)| id.clone())
                .collect();
            let got = events
                .collect_until(Duration::from_secs(60), |got| {
                    let seen: std::collections::BTreeSet<&str> = got
                        .iter()
                        .filter_map(|e| e.body["order"]["id"].as_str())
                        .collect();
                    wanted.iter().all(|id| seen.contains(id.as_str()))
                })
                .await;
            let mut ids = std::collections::BTreeSet::new();
            for event in got {
                let Some(event_id) = event.message_id.clone() else {
                    continue;
                };
                if !ids.insert(event_id) {
                    report.duplicate_events += 1;
                    continue;
                }
                if let Some(order) = event.body["order"]["id"].as_str() {
                    report.created_events.insert(order.to_string());
                }
            }
            report
        })
    });
    is_bound.recv_timeout(Duration::from_secs(30)).unwrap();
    handle
}

type ShopperResult = (
    BTreeMap<String, u64>,
    Vec<String>,
    BTreeMap<String, i64>,
    Vec<(String, BTreeMap<String, i64>)>,
    Vec<(u64, f64)>,
);

#[allow(clippy::too_many_arguments)]
async fn shopper(
    lb: &Node,
    user: usize,
    token: &str,
    skus: &[String],
    stop: &AtomicBool,
    max_requests: usize,
    checkout_every: usize,
    started: Instant,
) -> ShopperResult {
    let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut cart: BTreeMap<String, i64> = BTreeMap::new();
    let mut orders = Vec::new();
    let mut latencies = Vec::new();
    let auth = Auth::Bearer(token.to_string());
    for n in 0..max_requests {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let sent = Instant::now();
        let checkout = n % checkout_every == checkout_every - 1 && !cart.is_empty();
        let (status, body) = if checkout {
            let key = format!("load-{user}-{n}");
            let r = lb
                .try_send(
                    Method::POST,
                    "/api/checkout",
                    &auth,
                    &[("Idempotency-Key", key.as_str())],
                    None,
                )
                .await;
            match r {
                Ok(r) => (r.status.to_string(), r.body),
                Err(e) => (format!("error: {e}"), Value::Null),
            }
        } else {
            let sku = &skus[(user + n) % skus.len()];
            let body = json!({"productSku": sku, "quantity": 1});
            let r = lb
                .try_send(
                    Method::POST,
                    "/api/cart/items",
                    &auth,
                    &[],
                    Some(("application/json", serde_json::to_vec(&body).unwrap())),
                )
                .await;
            match r {
                Ok(r) => {
                    if r.status == 204 {
                        *cart.entry(sku.clone()).or_default() += 1;
                    }
                    (r.status.to_string(), r.body)
                }
                Err(e) => (format!("error: {e}"), Value::Null),
            }
        };
        latencies.push((
            u64::try_from(sent.duration_since(started).as_millis()).unwrap(),
            sent.elapsed().as_secs_f64() * 1000.0,
        ));
        if checkout && status == "201" {
            let id = body["id"].as_str().unwrap_or_default().to_string();
            let items = body["items"]
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .map(|i| {
                            (
                                i["sku"].as_str().unwrap_or_default().to_string(),
                                i["quantity"].as_i64().unwrap_or(0),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            orders.push((id, items));
            cart.clear();
        }
        if !status.starts_with('2') && failures.len() < 5 {
            failures.push(format!(
                "user {user} {} -> {status}: {body}",
                if checkout { "checkout" } else { "add" }
            ));
        }
        *statuses.entry(status).or_default() += 1;
        // A shopper's think time; also keeps the Python test store's load modest.
        actix_rt::time::sleep(Duration::from_millis(5)).await;
    }
    (statuses, failures, cart, orders, latencies)
}
