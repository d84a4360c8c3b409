//! `emporium cluster status` as an operator runs it: the tables of a running cluster, and one
//! clear line with a non-zero exit for everything else (a single node, no token, a customer's
//! token, nothing listening).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Output};

use common::cluster::{ClusterOpts, TestCluster};
use common::*;

/// `emporium cluster status --url <url> [args]`, with none of the caller's `EMPORIUM_*`.
fn status(url: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_emporium"));
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("EMPORIUM_")) {
        cmd.env_remove(key);
    }
    cmd.args(["cluster", "status", "--url", url])
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

/// Exit code 1, nothing on stdout, and exactly one line on stderr that contains `wanted`.
fn assert_fails_with(out: &Output, wanted: &str) {
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(stdout.is_empty(), "stdout: {stdout}");
    assert_eq!(stderr.lines().count(), 1, "one line wanted: {stderr}");
    assert!(stderr.starts_with("emporium: "), "{stderr}");
    assert!(stderr.contains(wanted), "{wanted:?} not in: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[actix_rt::test]
async fn a_single_node_is_not_part_of_a_cluster_and_says_so() {
    let node = Node::start(NodeOpts::new().demo_catalog(false));
    let url = node.url("");
    let admin = admin_token(&node).await;
    for args in [
        vec!["--token", admin.as_str()],
        vec!["--token", admin.as_str(), "--json"],
    ] {
        assert_fails_with(&status(&url, &args), "is not part of a cluster");
    }
    // The token also comes from EMPORIUM_ADMIN_TOKEN.
    let out = Command::new(env!("CARGO_BIN_EXE_emporium"))
        .args(["cluster", "status", "--url", &url])
        .env("EMPORIUM_ADMIN_TOKEN", &admin)
        .output()
        .unwrap();
    assert_fails_with(&out, "is not part of a cluster");

    assert_fails_with(&status(&url, &[]), "wants an admin token");
    let customer = register(&node, "cy", "cy@example.com", PASSWORD).await;
    assert_fails_with(
        &status(&url, &["--token", &customer]),
        "refused the token (403): it is not an admin's",
    );
    assert_fails_with(
        &status(&url, &["--token", "not-a-token"]),
        "refused the token (401",
    );
}

#[test]
fn nothing_listening_is_one_line_not_a_panic() {
    let port = emporium_persistence::testkit::free_port();
    let url = format!("http://127.0.0.1:{port}");
    assert_fails_with(
        &status(&url, &["--token", "t"]),
        &format!("cannot reach http://127.0.0.1:{port}: connection refused"),
    );
    assert_fails_with(&status("https://shop.example.com", &[]), "plain HTTP only");
}

#[actix_rt::test]
async fn a_running_cluster_is_shown_as_tables_or_as_its_document() {
    let cluster = TestCluster::start(2, ClusterOpts::default());
    let node = cluster.node(1);
    let admin = admin_token(node).await;
    let url = node.url("");

    let out = status(&url, &["--token", &admin]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("Cluster as node 1 sees it"), "{stdout}");
    for wanted in [
        "MEMBERS",
        "SHARDS PER NODE",
        "SHARDS IN MOTION: 0",
        "LAST HANDOFFS",
        "FORWARDED",
        "serving",
    ] {
        assert!(stdout.contains(wanted), "{wanted:?} not in:\n{stdout}");
    }
    // Both members, each with its share of the 64 shards.
    let members: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("MEMBERS"))
        .skip(2)
        .take_while(|l| !l.trim_start().starts_with("(*"))
        .collect();
    assert_eq!(members.len(), 2, "{stdout}");
    let shards: u64 = members
        .iter()
        .map(|l| l.split_whitespace().last().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(shards, u64::from(cluster.opts.shards), "{stdout}");

    let out = status(&url, &["--token", &admin, "--json"]);
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["node"], 1);
    assert_eq!(doc["members"].as_array().unwrap().len(), 2);
    assert_eq!(
        doc["shards"].as_array().unwrap().len(),
        cluster.opts.shards as usize
    );
}
