//! The OpenAPI document: the committed `docs/openapi.json` is exactly what the binary serves at
//! `GET /api/openapi.json` and what `emporium openapi` prints, and it describes the routes,
//! bounds and answers the code has.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use awc::http::Method;
use common::tools::workspace_root;
use common::*;
use serde_json::Value;

fn committed() -> String {
    let path = workspace_root().join("docs/openapi.json");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const REGENERATE: &str =
    "regenerate it: cargo run -p emporium-http --bin emporium -- openapi --out docs/openapi.json";

#[actix_rt::test]
async fn the_committed_document_is_the_one_served_and_printed() {
    let node = Node::start(NodeOpts::new().demo_catalog(false));
    let r = node
        .send(Method::GET, "/api/openapi.json", &Auth::None, &[], None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let content_type = r.headers.get("content-type").unwrap().to_str().unwrap();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let committed = committed();
    assert!(
        r.text == committed,
        "docs/openapi.json differs from what the binary serves; {REGENERATE}"
    );
    let printed = std::process::Command::new(env!("CARGO_BIN_EXE_emporium"))
        .arg("openapi")
        .output()
        .unwrap();
    assert!(printed.status.success());
    assert!(
        String::from_utf8_lossy(&printed.stdout) == committed,
        "`emporium openapi` prints another document than docs/openapi.json; {REGENERATE}"
    );
}

fn operation<'a>(doc: &'a Value, path: &str, method: &str) -> &'a Value {
    let op = &doc["paths"][path][method];
    assert!(op.is_object(), "{method} {path} is not in the document");
    op
}

fn param<'a>(op: &'a Value, name: &str) -> &'a Value {
    op["parameters"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == name))
        .unwrap_or_else(|| panic!("no parameter {name} in {op}"))
}

fn statuses(op: &Value) -> Vec<&str> {
    op["responses"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect()
}

#[test]
fn the_document_states_the_bounds_the_code_enforces() {
    let doc: Value = serde_json::from_str(&committed()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let schemas = &doc["components"]["schemas"];
    let error = &schemas["Error"];
    assert_eq!(error["required"], serde_json::json!(["error", "message"]));

    let password = &schemas["RegisterBody"]["properties"]["password"];
    assert_eq!(
        (
            password["minLength"].as_u64(),
            password["maxLength"].as_u64()
        ),
        (Some(8), Some(256))
    );
    let add = &schemas["AddItemBody"]["properties"]["quantity"];
    assert_eq!(
        (add["minimum"].as_f64(), add["maximum"].as_f64()),
        (Some(1.0), Some(10000.0))
    );
    assert_eq!(
        schemas["QuantityBody"]["properties"]["quantity"]["maximum"].as_f64(),
        Some(10000.0)
    );

    let list = operation(&doc, "/api/products", "get");
    // A number in bounds, or empty for the default.
    let limit = &param(list, "limit")["schema"]["anyOf"];
    assert_eq!(
        (limit[0]["minimum"].as_f64(), limit[0]["maximum"].as_f64()),
        (Some(1.0), Some(100.0))
    );
    assert_eq!(limit[1]["maxLength"].as_u64(), Some(0));
    let page = &param(list, "page")["schema"]["anyOf"][0];
    assert_eq!(page["minimum"].as_f64(), Some(1.0));

    let set = operation(&doc, "/api/cart/items/{sku}", "put");
    assert!(statuses(set).contains(&"409"), "{set}");
    assert!(set["responses"]["409"]["description"]
        .as_str()
        .unwrap()
        .contains("insufficient_stock"));

    let checkout = operation(&doc, "/api/checkout", "post");
    let key = param(checkout, "Idempotency-Key");
    assert_eq!(key["in"], "header");
    assert_eq!(key["schema"]["maxLength"].as_u64(), Some(255));
    for status in ["201", "400", "401", "402", "409", "503"] {
        assert!(
            statuses(checkout).contains(&status),
            "checkout lacks {status}"
        );
    }
    let retry = &checkout["responses"]["503"]["headers"]["Retry-After"];
    assert!(retry.is_object(), "503 without Retry-After: {checkout}");
    // Every answer that is not a success or a 204 carries the error shape.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for (status, response) in op["responses"].as_object().unwrap() {
                if status.starts_with('4') || (status.starts_with('5')) {
                    let schema = &response["content"]["application/json"]["schema"]["$ref"];
                    assert_eq!(
                        schema, "#/components/schemas/Error",
                        "{method} {path} {status} is not the error shape"
                    );
                }
            }
        }
    }
}

/// Limits above the cap are refused with the error shape, as the document says, and the
/// message names the real bound.
#[actix_rt::test]
async fn limit_is_capped_at_100_with_a_clear_error() {
    let node = Node::start(NodeOpts::new());
    for bad in ["0", "101", "4294967295", "4294967296", "-1", "ten"] {
        let (status, body) = node.get(&format!("/api/products?limit={bad}"), None).await;
        assert_eq!(status, 400, "limit={bad}: {body}");
        assert_eq!(body["error"], "invalid_paging", "limit={bad}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains("1 to 100"),
            "{body}"
        );
    }
    let (status, body) = node.get("/api/products?limit=100", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["products"].as_array().unwrap().len(), 100);
    let (status, body) = node.get("/api/products?page=0", None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_paging"))
    );
    // Empty means the default; a single-valued parameter given twice is refused.
    let (status, body) = node.get("/api/products?page=&limit=", None).await;
    let found = body["products"].as_array().map(Vec::len);
    assert_eq!((status, found), (200, Some(20)), "{body}");
    for twice in [
        "page=1&page=2",
        "limit=5&limit=5",
        "search=a&search=b",
        "page=&page=",
    ] {
        let (status, body) = node.get(&format!("/api/products?{twice}"), None).await;
        let code = body["error"].as_str();
        assert_eq!(
            (status, code),
            (400, Some("invalid_query")),
            "{twice}: {body}"
        );
    }
}

/// The methods the document gives each path are the methods the server takes there: any other
/// is a 405 whose `Allow` names exactly the documented ones.
#[actix_rt::test]
async fn each_path_takes_exactly_the_documented_methods() {
    let doc: Value = serde_json::from_str(&committed()).unwrap();
    let node = Node::start(NodeOpts::new().demo_catalog(false));
    for (path, item) in doc["paths"].as_object().unwrap() {
        let documented: std::collections::BTreeSet<String> = item
            .as_object()
            .unwrap()
            .keys()
            .map(|m| m.to_uppercase())
            .collect();
        let concrete = path.replace(['{', '}'], "");
        let r = node
            .send(Method::TRACE, &concrete, &Auth::None, &[], None)
            .await;
        assert_eq!(r.status, 405, "TRACE {concrete}: {}", r.text);
        let allow: std::collections::BTreeSet<String> = r
            .headers
            .get("allow")
            .unwrap_or_else(|| panic!("405 without Allow on {concrete}"))
            .to_str()
            .unwrap()
            .split(',')
            .map(|m| m.trim().to_owned())
            .collect();
        assert_eq!(allow, documented, "{path}");
    }
}
