//! The load generator (`emporium-load`) against the real binary: every scenario briefly, in closed
//! and open loop, its summary, timeline and plot written and readable; `--verify` finding no
//! acknowledged write missing on a healthy node, and finding some on a node whose data dir is
//! wiped while the load runs. Counts, not timings, are asserted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use emporium_bench::load::{self, Options, Scenario, Summary};
use emporium_persistence::testkit::free_port;
use serde_json::Value;

fn options(node: &Node, scenario: Scenario, out: &Path, max_requests: u64) -> Options {
    let mut o = Options::for_target(&node.url(""));
    o.scenario = scenario;
    o.out = out.to_path_buf();
    o.max_requests = Some(max_requests);
    o.duration = Duration::from_secs(60);
    o.connections = 4;
    o.products = 4;
    o.jwt_secret = Some(JWT_SECRET.into());
    o.verify = scenario.writes();
    o.quiet = true;
    o
}

/// The three files exist and parse: the JSON summary matches `summary`, the CSV has a header
/// and one row per second, the PNG is a PNG of the plot's size.
fn assert_files(summary: &Summary, out: &Path) {
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(json["requests"].as_u64(), Some(summary.requests));
    assert!(
        json["operations"]
            .as_object()
            .is_some_and(|o| !o.is_empty()),
        "{json}"
    );
    assert!(json["latencyMs"]["p99"].as_f64().is_some(), "{json}");
    let csv = std::fs::read_to_string(out.join("timeline.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header[..3], ["second", "requests", "ok"]);
    let rows: Vec<Vec<f64>> = lines
        .map(|l| l.split(',').map(|f| f.parse().unwrap()).collect())
        .collect();
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| r.len() == header.len()));
    let per_second: f64 = rows.iter().map(|r| r[1]).sum();
    assert_eq!(per_second as u64, summary.requests, "the timeline adds up");
    let png = std::fs::read(out.join("timeline.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    // IHDR: width and height, big-endian, after the signature, length and type.
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert!(width >= 800 && height >= 600, "{width}x{height}");
}

#[test]
fn every_scenario_runs_writes_its_files_and_verifies_nothing_missing() {
    let node = Node::start(NodeOpts::new());
    let dir = tempfile::tempdir().unwrap();
    for scenario in [
        Scenario::Browse,
        Scenario::AddToCart,
        Scenario::Checkout,
        Scenario::Mixed,
    ] {
        let out = dir.path().join(format!("{scenario:?}"));
        let summary = load::run_blocking(options(&node, scenario, &out, 200)).unwrap();
        assert_eq!(summary.requests, 200, "{scenario:?}");
        assert_eq!(
            summary.failed, 0,
            "{scenario:?}: {:?}",
            summary.first_failures
        );
        assert_files(&summary, &out);
        if scenario.writes() {
            let v = summary.verify.clone().unwrap();
            assert!(
                v.acknowledged_adds > 0,
                "{scenario:?}: nothing acknowledged: {v:?}"
            );
            assert_eq!(
                (v.missing_total, v.unreadable),
                (0, 0),
                "{scenario:?}: {v:?}"
            );
        }
        if scenario == Scenario::Checkout {
            assert!(summary.verify.unwrap().acknowledged_checkouts > 0);
        }
    }
}

/// Open loop, with shoppers that register (no JWT secret) and an admin who signs in.
#[test]
fn open_loop_with_registered_shoppers_verifies_nothing_missing() {
    let node = Node::start(NodeOpts::new());
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(&node, Scenario::Mixed, dir.path(), 150);
    o.jwt_secret = None;
    o.admin_password = Some(PASSWORD.into());
    o.rate = Some(100.0);
    o.users = Some(6);
    o.events = Some(dir.path().join("events"));
    std::fs::write(dir.path().join("events"), "0.5 a marker\n").unwrap();
    let summary = load::run_blocking(o).unwrap();
    assert_eq!(summary.mode, "open");
    assert_eq!(summary.requests, 150);
    assert_eq!(summary.failed, 0, "{:?}", summary.first_failures);
    assert_eq!(summary.events.len(), 1);
    assert_files(&summary, dir.path());
    let v = summary.verify.unwrap();
    assert_eq!((v.missing_total, v.unreadable), (0, 0), "{v:?}");
}

/// A target that refuses connections is skipped: every request reaches the live node.
#[test]
fn a_target_that_refuses_connections_is_skipped_and_counted() {
    let node = Node::start(NodeOpts::new());
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(&node, Scenario::Browse, dir.path(), 100);
    let dead = format!("http://127.0.0.1:{}", free_port());
    o.targets = vec![dead.clone(), node.url("")];
    let summary = load::run_blocking(o).unwrap();
    assert_eq!((summary.requests, summary.failed), (100, 0));
    let dead_target = summary.targets.iter().find(|t| t.url == dead).unwrap();
    assert_eq!(dead_target.answered, 0);
    assert!(
        dead_target.refused + dead_target.skipped_not_ready > 0,
        "{dead_target:?}"
    );
}

/// The node's data dir is wiped and the node restarted while shoppers add and check out: the
/// writes it had acknowledged are gone, and verification says so.
#[test]
fn verify_reports_missing_writes_when_the_data_dir_is_wiped_mid_run() {
    let port = free_port();
    let mut node = Node::start(NodeOpts::new().listen("127.0.0.1", port));
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(&node, Scenario::Checkout, dir.path(), 1_000_000);
    o.duration = Duration::from_secs(6);
    let run = std::thread::spawn(move || load::run_blocking(o));
    // Sequencing, not an assertion: let writes be acknowledged before the wipe.
    std::thread::sleep(Duration::from_secs(2));
    node.kill9();
    let data = node.data_dir();
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        if path == node.log_path() {
            continue;
        }
        if path.is_dir() {
            std::fs::remove_dir_all(&path).unwrap();
        } else {
            std::fs::remove_file(&path).unwrap();
        }
    }
    node.start_again();
    let summary = run.join().unwrap().unwrap();
    let v = summary.verify.unwrap();
    assert!(v.acknowledged_adds > 0, "{v:?}");
    assert!(
        v.missing_total > 0,
        "the wiped writes were not noticed: {v:?}"
    );
}
