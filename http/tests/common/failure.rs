//! Helpers the cluster failure tests share: metrics of a node, waiting for a cluster to settle
//! among some of its nodes, shard ownership as a node sees it, and a bounded single add.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::cluster::{node_ip, TestCluster, SERVICE, STATEFULSET};
use super::*;
use awc::http::Method;
use emporium_cluster::ShardMap;
use serde_json::json;

const SHARDS: u32 = 64;

// ------------------------------------------------------------------ helpers

/// `/metrics` of a node, or `None` if it does not answer (only for nodes that are not frozen:
/// a stopped process would hold the request until the client's timeout).
pub async fn metrics_of(node: &Node) -> Option<String> {
    let r = actix_rt::time::timeout(
        Duration::from_secs(5),
        node.try_send(Method::GET, "/metrics", &Auth::None, &[], None),
    )
    .await;
    match r {
        Ok(Ok(r)) if r.status == 200 => Some(r.text),
        _ => None,
    }
}

pub fn counter(text: &str, name: &str) -> f64 {
    metric(text, name, &[]).unwrap_or(0.0)
}

/// Waits (polling, bounded) until the nodes in `live` together serve every shard exactly once
/// and none sees a shard in motion; returns the shards each serves. The async twin of
/// `TestCluster::wait_settled` for a cluster with a dead member, usable while load runs on this
/// test's (single-threaded) runtime.
pub async fn wait_settled_among(
    cluster: &TestCluster,
    live: &[u32],
    within: Duration,
) -> BTreeMap<u32, u64> {
    let deadline = Instant::now() + within;
    loop {
        let mut seen: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
        for o in live {
            if let Some(text) = metrics_of(cluster.node(*o)).await {
                let get = |state: &str| {
                    metric(&text, "emporium_cluster_shards", &[("state", state)]).unwrap_or(0.0)
                        as u64
                };
                let moving = get("unknown") + get("unowned") + get("draining");
                seen.insert(*o, (get("serving"), moving));
            }
        }
        let serving: u64 = seen.values().map(|(s, _)| s).sum();
        if seen.len() == live.len()
            && serving == u64::from(SHARDS)
            && seen.values().all(|v| v.1 == 0)
        {
            return seen.into_iter().map(|(o, (s, _))| (o, s)).collect();
        }
        assert!(
            Instant::now() < deadline,
            "nodes {live:?} did not settle within {within:?}: (serving, in motion) {seen:?}"
        );
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The owner of `shard` as `node` sees it (`/admin/cluster`).
pub async fn owner_seen_by(node: &Node, admin: &str, shard: u32) -> Option<u32> {
    let (s, body) = node.get("/admin/cluster", Some(admin)).await;
    assert_eq!(s, 200, "/admin/cluster: {body}");
    body["shards"][shard as usize]["owner"]
        .as_u64()
        .map(|o| u32::try_from(o).unwrap())
}

pub fn shard_of(email: &str) -> u32 {
    ShardMap::new(SHARDS).unwrap().shard_of(email.as_bytes()).0
}

/// Publishes only `ordinals` in the headless service's DNS records.
pub fn publish_only(cluster: &TestCluster, ordinals: &[u32]) {
    let pods: Vec<(u32, Ipv4Addr)> = ordinals.iter().map(|o| (*o, node_ip(*o))).collect();
    cluster
        .dns
        .set_pods(SERVICE, STATEFULSET, cluster.peer_port, &pods)
        .unwrap();
}

pub fn backends_of(cluster: &TestCluster, ordinals: &[u32]) -> Vec<(String, u16)> {
    ordinals
        .iter()
        .map(|o| (cluster.node(*o).host().to_string(), cluster.node(*o).port()))
        .collect()
}

/// One add-to-cart request's answer as the client saw it.
#[derive(Debug, Clone)]
pub struct Answer {
    /// `None`: no HTTP answer at all (send error, or no answer within the bound).
    pub status: Option<u16>,
    pub retry_after: bool,
    pub took: Duration,
    pub detail: String,
}

pub async fn add_once(node: &Node, token: &str, sku: &str, bound: Duration) -> Answer {
    let started = Instant::now();
    let body = serde_json::to_vec(&json!({"productSku": sku, "quantity": 1})).unwrap();
    let sent = actix_rt::time::timeout(
        bound,
        node.try_send(
            Method::POST,
            "/api/cart/items",
            &Auth::Bearer(token.to_string()),
            &[],
            Some(("application/json", body)),
        ),
    )
    .await;
    let took = started.elapsed();
    match sent {
        Ok(Ok(r)) => Answer {
            status: Some(r.status),
            retry_after: r.headers.contains_key("retry-after"),
            took,
            detail: r.text,
        },
        Ok(Err(e)) => Answer {
            status: None,
            retry_after: false,
            took,
            detail: e,
        },
        Err(_) => Answer {
            status: None,
            retry_after: false,
            took,
            detail: format!("no answer within {bound:?}"),
        },
    }
}
