//! Property-based fuzzing of the whole API against the real binary: schemathesis reads the
//! served OpenAPI document and sends generated requests — boundary values and invalid inputs,
//! then random ones — to every operation, once as a customer and once as an admin. Any 5xx, any
//! status the document does not list, any response body, header or content type that violates
//! the document, a schema-invalid request answered 2xx, a secured route that ignores a missing
//! token, or a 405 without `Allow` fails the test, as does a panic in the server's log.
//! Bounded: a fixed number of cases per operation and a fixed seed, so a run is reproducible
//! and takes about a minute.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::tools::tool;
use common::*;

/// Left out: `positive_data_acceptance` and the stateful checks, which expect a schema-valid
/// request to succeed whatever the state (a checkout of an empty cart is a 400 by contract).
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_headers_conformance,response_schema_conformance,negative_data_rejection,\
                      unsupported_method,allow_header_conformance,missing_required_header,\
                      ignored_auth";
/// Generated cases per operation and phase.
const MAX_EXAMPLES: &str = "60";
const SEED: &str = "20260101";

/// A deeper or different run for a developer: `EMP_FUZZ_EXAMPLES=500 EMP_FUZZ_SEED=7
/// EMP_FUZZ_CHECKS=all cargo nextest run -p emporium-http --test api_fuzz`.
fn setting(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// A run that takes longer than this is stopped and fails (alone on 2 cores a run takes 20-30 s;
/// the margin is for a suite running beside it).
const BOUND: Duration = Duration::from_secs(480);

/// Real values the generator mixes into half of the generated ones: without them nearly every
/// SKU, product id and order id is unknown and the operations answer 404 before their logic.
fn config(node: &Node, skus: &[String], ids: &[String]) -> std::path::PathBuf {
    let list = |values: &[String]| {
        values
            .iter()
            .map(|v| format!("{v:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let text = format!(
        "[dictionaries.skus]\nvalues = [{}]\n\n[dictionaries.ids]\nvalues = [{}]\n\n\
         [parameters]\n\
         \"path.sku\" = {{ dictionary = \"skus\", probability = 0.5 }}\n\
         \"body.productSku\" = {{ dictionary = \"skus\", probability = 0.5 }}\n\
         \"path.id\" = {{ dictionary = \"ids\", probability = 0.5 }}\n",
        list(skus),
        list(ids)
    );
    let path = node.data_dir().join("schemathesis.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn schemathesis(node: &Node, config: &std::path::Path, token: &str, who: &str) {
    let started = Instant::now();
    let report = node.data_dir().join(format!("schemathesis-{who}"));
    // `timeout` is the bound: a stuck run is killed rather than left to hang the suite.
    let child = Command::new("timeout")
        .args(["--kill-after=10", &BOUND.as_secs().to_string()])
        .arg(tool("schemathesis"))
        .arg("--config-file")
        .arg(config)
        .arg("run")
        .arg(node.url("/api/openapi.json"))
        .args(["--checks", &setting("EMP_FUZZ_CHECKS", CHECKS)])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args([
            "--max-examples",
            &setting("EMP_FUZZ_EXAMPLES", MAX_EXAMPLES),
        ])
        .args(["--seed", &setting("EMP_FUZZ_SEED", SEED)])
        .args(["--workers", "2"])
        .args(["--request-timeout", "20"])
        .args([
            "--suppress-health-check",
            "too_slow,filter_too_much,data_too_large",
        ])
        .args(["--generation-database", "none"])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .arg("--no-color")
        .arg("--report-dir")
        .arg(&report)
        // Its cache of past failures stays in the node's temporary directory.
        .current_dir(node.data_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let killed = out.status.code() == Some(124) || out.status.code().is_none();
    eprintln!(
        "schemathesis as {who}: {:?} in {:.0?}\n{stdout}\n{stderr}",
        out.status,
        started.elapsed()
    );
    assert!(!killed, "schemathesis as {who} ran past {BOUND:?}");
    assert!(
        out.status.success(),
        "schemathesis as {who} found problems (above; cases replayable with the seed)"
    );
    assert!(
        !node.log_tail(400).contains("panicked"),
        "the server panicked: {}",
        node.log_tail(60)
    );
}

#[actix_rt::test]
async fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let node = Node::start(NodeOpts::new());
    let customer = register(&node, "fuzzer", "fuzzer@example.com", PASSWORD).await;
    let admin = admin_token(&node).await;
    // A product with little stock (so quantities run into it), an order of each user, and a
    // cart line, so the generated requests reach stock checks, order transitions and checkout.
    let scarce = create_product(&node, &admin, "Scarce", "FUZZ-SCARCE-1", 9.99, Some(3)).await;
    let mut skus = vec!["KIT-ACM-031".to_owned(), "FUZZ-SCARCE-1".to_owned()];
    let mut ids = vec![id_of(&scarce)];
    for token in [&customer, &admin] {
        assert_eq!(add_to_cart(&node, token, "KIT-ACM-031", 1).await, 204);
        let (status, order) = node
            .post("/api/checkout", Some(token), serde_json::json!({}))
            .await;
        assert_eq!(status, 201, "{order}");
        ids.push(id_of(&order));
    }
    let (_, page) = node.get("/api/products?limit=5", None).await;
    for p in page["products"].as_array().unwrap() {
        skus.push(p["sku"].as_str().unwrap().to_owned());
        ids.push(id_of(p));
    }
    assert_eq!(add_to_cart(&node, &customer, "FUZZ-SCARCE-1", 2).await, 204);
    let config = config(&node, &skus, &ids);
    schemathesis(&node, &config, &customer, "customer");
    schemathesis(&node, &config, &admin, "admin");
    // Still serving after all of it.
    let (status, body) = node.get("/readyz", None).await;
    assert_eq!(status, 200, "{body}");
}
