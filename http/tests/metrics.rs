//! `/metrics` as Prometheus reads it: both a single node's (embedded store, group commits) and a
//! cluster member's (MongoDB-compatible store, Redis, cluster families) exposition parse with
//! the reference parser (prometheus-client's), the README's metrics table lists exactly the
//! families they export, with their types and labels, and every expression of the Grafana
//! dashboard names only metrics and labels the binary exports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::cluster::{ClusterOpts, TestCluster};
use common::tools::{python, workspace_root};
use common::*;
use serde_json::Value;

/// Parses the exposition with prometheus-client; one entry per family: its name as exported
/// (counters with `_total`), type, label names (without `le`) and sample names.
const PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for f in text_string_to_metric_families(sys.stdin.read()):
    samples = sorted({s.name for s in f.samples})
    name = f.name + "_total" if f.type == "counter" else f.name
    labels = sorted({k for s in f.samples for k in s.labels if k != "le"})
    out.append({"name": name, "type": f.type, "labels": labels, "samples": samples})
print(json.dumps(out))
"#;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct FamilyRow {
    name: String,
    kind: String,
    labels: BTreeSet<String>,
}

struct Exported {
    families: BTreeMap<String, FamilyRow>,
    /// Every series name a query can use (`_bucket`, `_count`, `_sum` of histograms included).
    samples: BTreeSet<String>,
}

fn parse(exposition: &str, into: &mut Exported) {
    let parsed: Value = serde_json::from_str(&python(PARSE, exposition)).unwrap();
    for f in parsed.as_array().unwrap() {
        let strings = |v: &Value| -> BTreeSet<String> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_owned())
                .collect()
        };
        let row = FamilyRow {
            name: f["name"].as_str().unwrap().to_owned(),
            kind: f["type"].as_str().unwrap().to_owned(),
            labels: strings(&f["labels"]),
        };
        if let Some(seen) = into.families.get(&row.name) {
            assert_eq!(seen, &row, "one family exported two ways");
        }
        into.samples.extend(strings(&f["samples"]));
        into.families.insert(row.name.clone(), row);
    }
}

/// The rows of the README's metrics table: `| `name` | type | `label`, … | meaning |`.
fn readme_table() -> BTreeMap<String, FamilyRow> {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with("Metrics"))
        .expect("README has a Metrics section");
    let mut rows = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with("| `emporium_")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        assert!(cells.len() >= 5, "a row of four cells: {line}");
        let labels = cells[3]
            .split(',')
            .map(|l| l.trim().trim_matches('`').to_owned())
            .filter(|l| !l.is_empty() && l != "–")
            .collect();
        assert!(!cells[4].is_empty(), "a row without meaning: {line}");
        let row = FamilyRow {
            name: cells[1].trim_matches('`').to_owned(),
            kind: cells[2].to_owned(),
            labels,
        };
        assert!(
            rows.insert(row.name.clone(), row).is_none(),
            "listed twice: {line}"
        );
    }
    rows
}

/// Each metric an expression names, with the label names of its matchers.
fn selectors(expr: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("emporium_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(tail.len());
        let name = tail[..end].to_owned();
        let mut labels = Vec::new();
        if let Some(matchers) = tail[end..].strip_prefix('{') {
            let body = &matchers[..matchers.find('}').unwrap()];
            for m in body.split(',') {
                let key = m.split(['=', '!']).next().unwrap().trim();
                labels.push(key.to_owned());
            }
        }
        out.push((name, labels));
        rest = &tail[end..];
    }
    out
}

#[actix_rt::test]
async fn metrics_parse_match_the_readme_table_and_feed_the_dashboard() {
    let mut exported = Exported {
        families: BTreeMap::new(),
        samples: BTreeSet::new(),
    };

    // One node on the embedded defaults: HTTP, actors, outbox, group commits.
    let single = Node::start(NodeOpts::new());
    let token = register(&single, "ann", "ann@example.com", PASSWORD).await;
    assert_eq!(add_to_cart(&single, &token, "KIT-ACM-031", 1).await, 204);
    parse(&single.metrics().await, &mut exported);

    // A cluster member on the real backends: cart cache, peers, shards, forwarding.
    let cluster = TestCluster::start(1, ClusterOpts::default());
    let member = cluster.node(0);
    let (status, _) = member.get("/api/products/brands", None).await;
    assert_eq!(status, 200);
    parse(&member.metrics().await, &mut exported);

    let table = readme_table();
    let missing: Vec<_> = exported
        .families
        .values()
        .filter(|f| table.get(&f.name) != Some(f))
        .collect();
    let stale: Vec<_> = table
        .values()
        .filter(|r| exported.families.get(&r.name) != Some(r))
        .collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "the README's metrics table and /metrics differ:\n exported but not (so) listed: \
         {missing:#?}\n listed but not (so) exported: {stale:#?}"
    );

    let path = workspace_root().join("charts/emporium/dashboards/emporium.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(!panels.is_empty());
    let mut ids = BTreeSet::new();
    let mut used = BTreeSet::new();
    for panel in panels {
        let title = panel["title"].as_str().unwrap();
        assert!(
            ids.insert(panel["id"].as_u64().unwrap()),
            "duplicate panel id: {title}"
        );
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "panel {title} has no query");
        for target in targets {
            let expr = target["expr"].as_str().unwrap();
            let names = selectors(expr);
            assert!(!names.is_empty(), "{title}: {expr} names no metric");
            for (name, labels) in names {
                assert!(
                    exported.samples.contains(&name),
                    "{title}: {name} is not exported by the binary"
                );
                let family = exported
                    .families
                    .values()
                    .find(|f| {
                        name == f.name
                            || name
                                .strip_prefix(f.name.as_str())
                                .is_some_and(|s| ["_bucket", "_count", "_sum"].contains(&s))
                    })
                    .unwrap();
                for label in labels {
                    assert!(
                        family.labels.contains(&label),
                        "{title}: {name} has no label {label}"
                    );
                }
                used.insert(family.name.clone());
            }
        }
    }
    // The dashboard covers what operators watch.
    for wanted in [
        "emporium_http_requests_total",
        "emporium_http_request_duration_seconds",
        "emporium_actors_active",
        "emporium_actors_passivated_total",
        "emporium_store_writes_total",
        "emporium_store_log_append_seconds_total",
        "emporium_outbox_depth",
        "emporium_store_up",
        "emporium_event_sink_up",
        "emporium_cart_cache_up",
        "emporium_cluster_shards",
        "emporium_cluster_handoff_seconds",
        "emporium_cluster_forwarded_total",
    ] {
        assert!(
            used.contains(wanted),
            "the dashboard does not show {wanted}"
        );
    }
}
