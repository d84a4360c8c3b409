//! API-level helpers and small utilities shared by the acceptance tests.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::{Node, ADMIN_EMAIL, JWT_SECRET, PASSWORD};

// ---------------------------------------------------------------- API helpers

/// Registers a user; asserts 201 and returns the token.
pub async fn register(node: &Node, username: &str, email: &str, password: &str) -> String {
    let (s, b) = node
        .post(
            "/api/users/register",
            None,
            json!({"username": username, "email": email, "password": password}),
        )
        .await;
    assert_eq!(s, 201, "register {email}: {b}");
    b["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token in {b}"))
        .to_string()
}

pub async fn login(node: &Node, email: &str, password: &str) -> String {
    let (s, b) = node
        .post(
            "/api/users/login",
            None,
            json!({"email": email, "password": password}),
        )
        .await;
    assert_eq!(s, 200, "login {email}: {b}");
    b["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token in {b}"))
        .to_string()
}

/// Token for admin@example.com (registers it, or logs in if it already exists).
pub async fn admin_token(node: &Node) -> String {
    let (s, b) = node
        .post(
            "/api/users/register",
            None,
            json!({"username": "admin", "email": ADMIN_EMAIL, "password": PASSWORD}),
        )
        .await;
    match s {
        201 => b["token"].as_str().unwrap().to_string(),
        409 => login(node, ADMIN_EMAIL, PASSWORD).await,
        _ => panic!("register admin: {s} {b}"),
    }
}

/// Creates a product as admin; asserts 201 and returns it. `stock: None` = untracked.
pub async fn create_product(
    node: &Node,
    admin: &str,
    name: &str,
    sku: &str,
    price: f64,
    stock: Option<i64>,
) -> Value {
    let mut body = json!({
        "name": name, "sku": sku, "price": price,
        "description": format!("{name} (test product)"),
        "brand": "TestBrand", "category": "TestCategory",
    });
    if let Some(n) = stock {
        body["stock"] = json!(n);
    }
    let (s, b) = node.post("/api/products", Some(admin), body).await;
    assert_eq!(s, 201, "create product {sku}: {b}");
    assert_eq!(b["sku"], sku, "created product: {b}");
    assert!(!b["id"].is_null(), "created product has no id: {b}");
    b
}

/// POST /api/cart/items; returns the status.
pub async fn add_to_cart(node: &Node, token: &str, sku: &str, quantity: i64) -> u16 {
    let (s, _) = node
        .post(
            "/api/cart/items",
            Some(token),
            json!({"productSku": sku, "quantity": quantity}),
        )
        .await;
    s
}

/// GET /api/cart, asserting 200 and an array; returns the lines.
pub async fn cart_lines(node: &Node, token: &str) -> Vec<Value> {
    let (s, b) = node.get("/api/cart", Some(token)).await;
    assert_eq!(s, 200, "GET /api/cart: {b}");
    b.as_array()
        .unwrap_or_else(|| panic!("cart is not an array: {b}"))
        .clone()
}

/// The cart as sku -> quantity.
pub async fn cart_map(node: &Node, token: &str) -> BTreeMap<String, i64> {
    let mut m = BTreeMap::new();
    for l in cart_lines(node, token).await {
        let sku = l["sku"]
            .as_str()
            .unwrap_or_else(|| panic!("line without sku: {l}"))
            .to_string();
        let q = l["quantity"]
            .as_i64()
            .unwrap_or_else(|| panic!("line without quantity: {l}"));
        assert!(m.insert(sku, q).is_none(), "duplicate sku line: {l}");
    }
    m
}

/// Current product by sku (asserts 200).
pub async fn product_by_sku(node: &Node, sku: &str) -> Value {
    let (s, b) = node
        .get(&format!("/api/products/sku/{}", enc(sku)), None)
        .await;
    assert_eq!(s, 200, "GET product sku {sku}: {b}");
    b
}

/// Tracked stock of a product (None when untracked).
pub async fn stock_of(node: &Node, sku: &str) -> Option<i64> {
    let p = product_by_sku(node, sku).await;
    match &p["stock"] {
        Value::Null => None,
        v => Some(
            v.as_i64()
                .unwrap_or_else(|| panic!("stock not an integer: {p}")),
        ),
    }
}

// ---------------------------------------------------------------- small utilities

/// Money as integer cents; asserts a JSON number with at most 2 decimals.
pub fn cents(v: &Value) -> i64 {
    let f = v
        .as_f64()
        .unwrap_or_else(|| panic!("money is not a number: {v}"));
    let c = (f * 100.0).round();
    assert!(
        (f * 100.0 - c).abs() < 1e-6,
        "money {v} has more than 2 decimals"
    );
    c as i64
}

/// An `id` field (string or number) as a path segment.
pub fn id_of(v: &Value) -> String {
    match &v["id"] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => panic!("no usable id ({other}) in {v}"),
    }
}

/// Percent-encodes a query/path component.
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Asserts an error response: given status, JSON with non-empty string `error` and `message`.
pub fn assert_error(what: &str, got: (u16, &Value), want: u16) {
    let (s, b) = got;
    assert_eq!(s, want, "{what}: expected {want}, got {s} with body {b}");
    for f in ["error", "message"] {
        let ok = b[f].as_str().is_some_and(|x| !x.trim().is_empty());
        assert!(ok, "{what}: error body lacks a non-empty string `{f}`: {b}");
    }
}

/// Sum of all series of `name` whose labels include `labels` (None if there is none).
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || !line.starts_with(name) {
            continue;
        }
        let rest = &line[name.len()..];
        let (label_str, value_str) = if let Some(r) = rest.strip_prefix('{') {
            let Some((l, v)) = r.split_once('}') else {
                continue;
            };
            (l, v)
        } else if rest.starts_with(' ') {
            ("", rest)
        } else {
            continue;
        };
        let have: Vec<(&str, &str)> = label_str
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.trim(), v.trim().trim_matches('"')))
            .collect();
        if !labels.iter().all(|want| have.contains(want)) {
            continue;
        }
        if let Some(v) = value_str
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        {
            found = Some(found.unwrap_or(0.0) + v);
        }
    }
    found
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims of a token issued by the server (verified with the test secret).
pub fn decode_claims(token: &str) -> Value {
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.validate_aud = false;
    let key = jsonwebtoken::DecodingKey::from_secret(JWT_SECRET.as_bytes());
    jsonwebtoken::decode::<Value>(token, &key, &v)
        .unwrap_or_else(|e| panic!("server token does not verify with the test secret: {e}"))
        .claims
}

/// Signs `claims` HS256 with `secret`.
pub fn sign_token(claims: &Value, secret: &str) -> String {
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), claims, &key).unwrap()
}
