//! The binary beyond the API: `catalog import`, refusing bad configuration, SIGTERM handling and
//! CORS.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

fn emporium(data_dir: &std::path::Path) -> Command {
    let mut cmd = emporium_command();
    cmd.env("EMPORIUM_DATA_DIR", data_dir)
        .env("RUST_LOG", "warn");
    cmd
}

/// Runs `emporium catalog import` on `products` against the node's (stopped) data dir.
fn import(node: &Node, products: &serde_json::Value) -> std::process::Output {
    let file = node.data_dir().join("products.json");
    std::fs::write(&file, products.to_string()).unwrap();
    emporium(&node.data_dir())
        .args(["catalog", "import"])
        .arg(&file)
        .output()
        .unwrap()
}

#[actix_rt::test]
async fn catalog_import_creates_then_upserts_by_sku() {
    let mut node = Node::start(NodeOpts::new().demo_catalog(false));
    node.kill9();
    let first = json!([
        {"name": "Imported Lamp", "sku": "IMP-1", "price": 12.5, "brand": "Lumo", "category": "Home", "stock": 7},
        {"name": "Imported Rug", "sku": "IMP-2", "price": 80, "brand": "Lumo", "category": "Home"}
    ]);
    let second = json!({"products": [
        {"name": "Imported Lamp v2", "sku": "IMP-1", "price": 14.25, "stock": 3},
        {"name": "Imported Vase", "sku": "IMP-3", "price": 9.99}
    ]});
    for (products, summary) in [
        (first, "2 created, 0 updated"),
        (second, "1 created, 1 updated"),
    ] {
        let out = import(&node, &products);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains(summary));
    }
    // A bad file is refused with the product it trips on, and changes nothing.
    let out = import(&node, &json!([{"name": "No price", "sku": "IMP-9"}]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("product #1"));

    node.restart();
    let (status, lamp) = node.get("/api/products/sku/IMP-1", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            lamp["name"].as_str(),
            lamp["price"].as_f64(),
            lamp["stock"].as_u64()
        ),
        (Some("Imported Lamp v2"), Some(14.25), Some(3))
    );
    let (_, all) = node.get("/api/products/all", None).await;
    let skus: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["sku"].as_str().unwrap())
        .collect();
    assert_eq!(skus.len(), 3, "{skus:?}");
    assert_eq!(node.get("/api/products/sku/IMP-9", None).await.0, 404);
}

#[test]
fn bad_configuration_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("EMPORIUM_LISTEN", "nowhere", "listen"),
        ("EMPORIUM_SHARDS", "0", "shards"),
        ("EMPORIUM_LISTNE", "127.0.0.1:1", "listne"),
        ("EMPORIUM_JWT_SECRET", "short", "jwt_secret"),
        (
            "EMPORIUM_ADMIN_EMAILS",
            "root@example.com,not-an-email",
            "not-an-email",
        ),
    ];
    for (key, value, mentions) in cases {
        let out = emporium(dir.path())
            .env(key, value)
            .arg("serve")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{key}={value}: {stderr}");
        assert!(stderr.contains(mentions), "{key}={value}: {stderr}");
    }
}

#[actix_rt::test]
async fn sigterm_reports_not_ready_and_refuses_new_work_then_exits() {
    let mut node = Node::start(
        NodeOpts::new()
            .demo_catalog(false)
            .env("EMPORIUM_SHUTDOWN_GRACE_SECS", "2"),
    );
    let token = register(&node, "sam", "sam@example.com", PASSWORD).await;
    assert_eq!(node.get("/readyz", None).await.0, 200);
    let pid = node.pid().unwrap().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());

    // During the grace period: not ready, and writes get a retryable 503 instead of vanishing.
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut ready = 200;
    while Instant::now() < deadline {
        ready = node.get("/readyz", None).await.0;
        if ready == 503 {
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ready, 503, "readyz during shutdown");
    let r = node
        .send(
            awc::http::Method::GET,
            "/api/cart",
            &Auth::Bearer(token),
            &[],
            None,
        )
        .await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert!(r.headers.contains_key("retry-after"));

    // Then the process ends by itself.
    let deadline = Instant::now() + Duration::from_secs(40);
    while node.is_running() && Instant::now() < deadline {
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!node.is_running(), "still running 40 s after SIGTERM");
}

/// `EMPORIUM_CORS_ORIGINS`: a storefront served from a configured origin may call the API from the
/// browser (preflight answered, `Access-Control-Allow-Origin` on responses); other origins are
/// served without CORS headers, and without the setting there are none at all.
#[actix_rt::test]
async fn cors_allows_the_configured_origins_only() {
    use awc::http::Method;
    const SHOP: &str = "http://shop.test:3000";
    let allow = |r: &Resp| {
        r.headers
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let node = Node::start(
        NodeOpts::new()
            .demo_catalog(false)
            .env("EMPORIUM_CORS_ORIGINS", SHOP),
    );
    let preflight = [
        ("Origin", SHOP),
        ("Access-Control-Request-Method", "POST"),
        (
            "Access-Control-Request-Headers",
            "authorization,content-type,idempotency-key",
        ),
    ];
    let r = node
        .send(
            Method::OPTIONS,
            "/api/checkout",
            &Auth::None,
            &preflight,
            None,
        )
        .await;
    assert_eq!(
        (r.status, allow(&r).as_deref()),
        (200, Some(SHOP)),
        "{}",
        r.text
    );
    let headers = r.headers.get("access-control-allow-headers").unwrap();
    let headers = headers.to_str().unwrap().to_lowercase();
    for wanted in ["authorization", "content-type", "idempotency-key"] {
        assert!(headers.contains(wanted), "{headers}");
    }
    let plain = Node::start(NodeOpts::new().demo_catalog(false));
    // (node, origin) → the Access-Control-Allow-Origin of a plain GET.
    for (node, origin, want) in [
        (&node, SHOP, Some(SHOP)),
        (&node, "http://evil.test", None),
        (&plain, SHOP, None),
    ] {
        let headers = [("Origin", origin)];
        let r = node
            .send(Method::GET, "/api/products", &Auth::None, &headers, None)
            .await;
        assert_eq!((r.status, allow(&r).as_deref()), (200, want), "{origin}");
    }
}
