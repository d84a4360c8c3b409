//! Acceptance 7: bad input gets the right status and a JSON `{error, message}`, never a 500,
//! and the process keeps serving.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use awc::http::Method;
use common::*;
use serde_json::{json, Value};

struct Case {
    name: &'static str,
    method: Method,
    path: String,
    auth: Auth,
    body: Option<(&'static str, Vec<u8>)>,
    want: u16,
}

fn case(
    name: &'static str,
    method: Method,
    path: &str,
    auth: &Auth,
    body: Option<Value>,
    want: u16,
) -> Case {
    let body = body.map(|v| ("application/json", serde_json::to_vec(&v).unwrap()));
    Case {
        name,
        method,
        path: path.to_string(),
        auth: auth.clone(),
        body,
        want,
    }
}

fn raw_case(
    name: &'static str,
    method: Method,
    path: &str,
    auth: &Auth,
    raw: &str,
    want: u16,
) -> Case {
    Case {
        name,
        method,
        path: path.to_string(),
        auth: auth.clone(),
        body: Some(("application/json", raw.as_bytes().to_vec())),
        want,
    }
}

#[actix_rt::test]
async fn bad_inputs_get_proper_errors() {
    let mut node = Node::start(NodeOpts::new().demo_catalog(false));
    let admin_tok = admin_token(&node).await;
    let tracked = create_product(&node, &admin_tok, "Bad Tracked", "BAD-T", 7.25, Some(5)).await;
    create_product(&node, &admin_tok, "Bad Untracked", "BAD-U", 1.25, None).await;
    let user_tok = register(&node, "henry", "henry@example.com", PASSWORD).await;
    let empty_tok = register(&node, "ivy", "ivy@example.com", PASSWORD).await;
    assert_eq!(add_to_cart(&node, &user_tok, "BAD-U", 2).await, 204);
    let cart_before = cart_map(&node, &user_tok).await;

    // Tokens: forged (other secret), expired (right secret), and a valid control.
    let mut claims = decode_claims(&user_tok);
    for f in ["sub", "email", "username", "role", "exp"] {
        assert!(
            !claims[f].is_null(),
            "server token lacks claim {f}: {claims}"
        );
    }
    claims["exp"] = json!(now_secs() + 3600);
    let control = sign_token(&claims, JWT_SECRET);
    let (s, b) = node.get("/api/cart", Some(control.as_str())).await;
    assert_eq!(
        s, 200,
        "a token re-signed with the right secret must work (test control): {b}"
    );
    let forged = sign_token(&claims, "another-secret-0123456789abcdef01234567");
    let mut forged_admin_claims = claims.clone();
    forged_admin_claims["role"] = json!("admin");
    let forged_admin = sign_token(
        &forged_admin_claims,
        "another-secret-0123456789abcdef01234567",
    );
    let mut old = claims.clone();
    old["exp"] = json!(now_secs() - 3600);
    if !old["iat"].is_null() {
        old["iat"] = json!(now_secs() - 7200);
    }
    let expired = sign_token(&old, JWT_SECRET);

    let user = Auth::Bearer(user_tok.clone());
    let admin = Auth::Bearer(admin_tok.clone());
    let empty = Auth::Bearer(empty_tok.clone());
    let none = Auth::None;
    let tid = format!("/api/products/{}", enc(&id_of(&tracked)));
    let add = "/api/cart/items";
    use Method as M;
    #[rustfmt::skip]
    let cases = vec![
        // Cart input validation.
        raw_case("malformed JSON", M::POST, add, &user, r#"{"productSku":"BAD-U","quantity":"#, 400),
        raw_case("not JSON at all", M::POST, add, &user, "hello there", 400),
        case("quantity as a string", M::POST, add, &user, Some(json!({"productSku": "BAD-U", "quantity": "two"})), 400),
        case("sku as a number", M::POST, add, &user, Some(json!({"productSku": 123, "quantity": 1})), 400),
        case("missing sku", M::POST, add, &user, Some(json!({"quantity": 1})), 400),
        case("missing quantity", M::POST, add, &user, Some(json!({"productSku": "BAD-U"})), 400),
        case("quantity 0", M::POST, add, &user, Some(json!({"productSku": "BAD-U", "quantity": 0})), 400),
        case("quantity -1", M::POST, add, &user, Some(json!({"productSku": "BAD-U", "quantity": -1})), 400),
        case("quantity 1e12", M::POST, add, &user, Some(json!({"productSku": "BAD-U", "quantity": 1_000_000_000_000i64})), 400),
        case("quantity 1.5", M::POST, add, &user, Some(json!({"productSku": "BAD-U", "quantity": 1.5})), 400),
        case("unknown sku", M::POST, add, &user, Some(json!({"productSku": "NO-SUCH-SKU", "quantity": 1})), 404),
        case("empty sku", M::POST, add, &user, Some(json!({"productSku": " ", "quantity": 1})), 400),
        case("more than tracked stock", M::POST, add, &user, Some(json!({"productSku": "BAD-T", "quantity": 6})), 409),
        case("PUT quantity as string", M::PUT, "/api/cart/items/BAD-U", &user, Some(json!({"quantity": "x"})), 400),
        case("PUT unknown sku", M::PUT, "/api/cart/items/NO-SUCH-SKU", &user, Some(json!({"quantity": 1})), 404),
        // Authentication.
        case("missing token: cart", M::GET, "/api/cart", &none, None, 401),
        case("missing token: add", M::POST, add, &none, Some(json!({"productSku": "BAD-U", "quantity": 1})), 401),
        case("missing token: checkout", M::POST, "/api/checkout", &none, None, 401),
        case("missing token: orders", M::GET, "/api/orders", &none, None, 401),
        case("forged token", M::GET, "/api/cart", &Auth::Bearer(forged), None, 401),
        case("forged admin token", M::POST, "/api/products", &Auth::Bearer(forged_admin), Some(json!({"name": "X", "sku": "FORGED-1", "price": 1.0})), 401),
        case("expired token", M::GET, "/api/cart", &Auth::Bearer(expired), None, 401),
        case("wrong scheme", M::GET, "/api/cart", &Auth::Raw("Basic xyz".into()), None, 401),
        case("garbage bearer", M::GET, "/api/cart", &Auth::Raw("Bearer not.a.jwt".into()), None, 401),
        case("empty bearer", M::GET, "/api/cart", &Auth::Raw("Bearer ".into()), None, 401),
        // Authorisation and product validation.
        case("non-admin create product", M::POST, "/api/products", &user, Some(json!({"name": "X", "sku": "USER-1", "price": 1.0})), 403),
        case("anonymous create product", M::POST, "/api/products", &none, Some(json!({"name": "X", "sku": "ANON-1", "price": 1.0})), 401),
        case("non-admin update product", M::PUT, &tid, &user, Some(json!({"name": "X", "sku": "BAD-T", "price": 1.0})), 403),
        case("non-admin delete product", M::DELETE, &tid, &user, None, 403),
        case("product without price", M::POST, "/api/products", &admin, Some(json!({"name": "X", "sku": "NOPRICE-1"})), 400),
        case("product price 0", M::POST, "/api/products", &admin, Some(json!({"name": "X", "sku": "ZERO-1", "price": 0})), 400),
        case("product price -1", M::POST, "/api/products", &admin, Some(json!({"name": "X", "sku": "NEG-1", "price": -1})), 400),
        case("product without sku", M::POST, "/api/products", &admin, Some(json!({"name": "X", "price": 1.0})), 400),
        case("duplicate sku", M::POST, "/api/products", &admin, Some(json!({"name": "Again", "sku": "BAD-T", "price": 1.0})), 409),
        case("update unknown product", M::PUT, "/api/products/does-not-exist", &admin, Some(json!({"name": "X", "sku": "X-1", "price": 1.0})), 404),
        case("delete unknown product", M::DELETE, "/api/products/does-not-exist", &admin, None, 404),
        // Users.
        case("register bad email", M::POST, "/api/users/register", &none, Some(json!({"username": "bad", "email": "not-an-email", "password": PASSWORD})), 400),
        case("register missing password", M::POST, "/api/users/register", &none, Some(json!({"username": "nopw", "email": "nopw@example.com"})), 400),
        case("register missing username", M::POST, "/api/users/register", &none, Some(json!({"email": "nouser@example.com", "password": PASSWORD})), 400),
        raw_case("register malformed JSON", M::POST, "/api/users/register", &none, "{\"username\":", 400),
        case("duplicate email (other case)", M::POST, "/api/users/register", &none, Some(json!({"username": "h2", "email": "HENRY@example.com", "password": PASSWORD})), 409),
        case("login wrong password", M::POST, "/api/users/login", &none, Some(json!({"email": "henry@example.com", "password": "wrong-password-123"})), 401),
        case("login unknown email", M::POST, "/api/users/login", &none, Some(json!({"email": "nobody@example.com", "password": "wrong-password-123"})), 401),
        case("login missing password", M::POST, "/api/users/login", &none, Some(json!({"email": "henry@example.com"})), 400),
        case("login empty strings", M::POST, "/api/users/login", &none, Some(json!({"email": "", "password": ""})), 400),
        case("login body an array", M::POST, "/api/users/login", &none, Some(json!([])), 400),
        // Checkout, orders, routes, paging, lookups.
        case("empty-cart checkout", M::POST, "/api/checkout", &empty, None, 400),
        case("unknown order", M::GET, "/api/orders/does-not-exist", &user, None, 404),
        case("cancel unknown order", M::POST, "/api/orders/does-not-exist/cancel", &user, None, 404),
        case("unknown route", M::GET, "/api/nope", &none, None, 404),
        case("page=0", M::GET, "/api/products?page=0", &none, None, 400),
        case("page=-1", M::GET, "/api/products?page=-1", &none, None, 400),
        case("page=abc", M::GET, "/api/products?page=abc", &none, None, 400),
        case("limit=0", M::GET, "/api/products?limit=0", &none, None, 400),
        case("unknown product id", M::GET, "/api/products/does-not-exist", &none, None, 404),
        case("unknown product sku", M::GET, "/api/products/sku/NO-SUCH-SKU", &none, None, 404),
        case("batch-get skus not a list", M::POST, "/api/products/batch-get", &none, Some(json!({"skus": "BAD-T"})), 400),
        case("batch-get without skus", M::POST, "/api/products/batch-get", &none, Some(json!({})), 400),
    ];

    let mut failures = Vec::new();
    let mut messages = BTreeMap::new();
    for c in cases {
        let r = node
            .send(c.method.clone(), &c.path, &c.auth, &[], c.body)
            .await;
        let ok_shape = ["error", "message"]
            .iter()
            .all(|f| r.body[*f].as_str().is_some_and(|x| !x.trim().is_empty()));
        if r.status != c.want || !ok_shape {
            failures.push(format!(
                "{}: {} {} -> want {}, got {} {}",
                c.name, c.method, c.path, c.want, r.status, r.text
            ));
        }
        messages.insert(c.name, r.body["message"].clone());
    }
    assert!(
        failures.is_empty(),
        "{} bad-input cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(
        messages["login wrong password"], messages["login unknown email"],
        "login must not reveal whether the email exists"
    );
    // Messages speak of the request, not of the server's types (a position is given only where
    // the JSON itself is broken).
    for (name, message) in &messages {
        let text = message.as_str().unwrap_or_default();
        let positioned =
            text.starts_with("The request body is not as expected") && text.contains(" column ");
        assert!(!text.contains("Body") && !positioned, "{name}: {text}");
    }

    // Oversized bodies (~1.2 MiB): 413, sent over a raw socket since the server may answer early.
    let big = "x".repeat(1_200_000);
    let oversized = [
        (
            add,
            format!("Bearer {user_tok}"),
            serde_json::to_vec(&json!({"productSku": big, "quantity": 1})).unwrap(),
        ),
        (
            "/api/users/register",
            String::new(),
            serde_json::to_vec(
                &json!({"username": big, "email": "big@example.com", "password": PASSWORD}),
            )
            .unwrap(),
        ),
    ];
    for (path, authz, body) in oversized {
        let mut headers = vec![("Content-Type", "application/json")];
        if !authz.is_empty() {
            headers.push(("Authorization", authz.as_str()));
        }
        let (s, b) = node.raw_http("POST", path, &headers, body).unwrap();
        assert_error(&format!("1.2 MiB body to {path}"), (s, &b), 413);
    }

    // None of that changed the cart or the stock.
    assert_eq!(
        cart_map(&node, &user_tok).await,
        cart_before,
        "bad input changed the cart"
    );
    assert_eq!(stock_of(&node, "BAD-T").await, Some(5));
    let (s, _) = node
        .post(
            "/api/users/login",
            None,
            json!({"email":"big@example.com","password":PASSWORD}),
        )
        .await;
    assert_eq!(
        s, 401,
        "the oversized registration must not have created a user"
    );

    // PUT quantity 0 removes the line (a success, not an error).
    assert_eq!(add_to_cart(&node, &user_tok, "BAD-T", 1).await, 204);
    let (s, b) = node
        .put(
            "/api/cart/items/BAD-T",
            Some(user_tok.as_str()),
            json!({"quantity": 0}),
        )
        .await;
    assert_eq!(s, 204, "{b}");
    assert_eq!(
        cart_map(&node, &user_tok).await,
        cart_before,
        "PUT quantity 0 did not remove the line"
    );

    // Still alive and healthy.
    let (s, b) = node.get("/healthz", None).await;
    assert_eq!((s, b), (200, json!({"status": "ok"})));
    assert!(node.is_running(), "the server process died");
}

/// `/metrics` counts requests per route pattern, and hostile input cannot grow its label set:
/// unknown methods share one label, unknown paths share the `unmatched` route.
#[actix_rt::test]
async fn metrics_label_routes_not_paths_or_invented_methods() {
    let node = Node::start(NodeOpts::new().demo_catalog(false));
    let admin_tok = admin_token(&node).await;
    create_product(&node, &admin_tok, "Metric Item", "MET-1", 2.5, None).await;
    let tok = register(&node, "mia", "mia@example.com", PASSWORD).await;
    for _ in 0..2 {
        assert_eq!(add_to_cart(&node, &tok, "MET-1", 1).await, 204);
    }
    for method in ["BREW", "FROB1", "FROB2"] {
        let (s, b) = node
            .raw_http(method, "/api/cart/items", &[], Vec::new())
            .unwrap();
        assert_error(&format!("{method} /api/cart/items"), (s, &b), 405);
    }
    for path in ["/api/nope-123", "/api/cart/nope-456"] {
        let (s, b) = node.get(path, Some(tok.as_str())).await;
        assert_error(&format!("GET {path}"), (s, &b), 404);
    }

    let text = node.metrics().await;
    let value = |series: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
    };
    let adds =
        r#"emporium_http_requests_total{method="POST",route="/api/cart/items",status="204"}"#;
    assert_eq!(value(adds), Some(2.0), "{text}");
    let timed =
        r#"emporium_http_request_duration_seconds_count{method="POST",route="/api/cart/items"}"#;
    assert_eq!(value(timed), Some(2.0), "{text}");
    let odd =
        r#"emporium_http_requests_total{method="OTHER",route="/api/cart/items",status="405"}"#;
    assert_eq!(value(odd), Some(3.0), "{text}");
    let unmatched = r#"emporium_http_requests_total{method="GET",route="unmatched",status="404"}"#;
    assert_eq!(value(unmatched), Some(2.0), "{text}");
    for invented in ["BREW", "FROB", "nope"] {
        assert!(
            !text.contains(invented),
            "a client-chosen {invented:?} became a label:\n{text}"
        );
    }
}

/// A quantity written as a float with a zero fraction (`2.0`, as some clients serialise every
/// number, and as JSON Schema's `integer` allows) is that whole number; a real fraction, a float
/// beyond any quantity, or `NaN`-like text stays a 400.
#[actix_rt::test]
async fn quantities_written_as_whole_floats_count_as_whole_numbers() {
    let node = Node::start(NodeOpts::new().demo_catalog(false));
    let admin_tok = admin_token(&node).await;
    create_product(&node, &admin_tok, "Float Item", "FLT-1", 3.0, Some(50)).await;
    let tok = register(&node, "flo", "flo@example.com", PASSWORD).await;
    let add = |raw: &'static str| {
        let node = &node;
        let tok = tok.clone();
        async move {
            node.post_raw(
                "/api/cart/items",
                Some(&tok),
                "application/json",
                raw.as_bytes().to_vec(),
            )
            .await
        }
    };
    let (s, b) = add(r#"{"productSku":"FLT-1","quantity":2.0}"#).await;
    assert_eq!(s, 204, "{b}");
    let (s, b) = node
        .put(
            "/api/cart/items/FLT-1",
            Some(&tok),
            json!({"quantity": 5.0}),
        )
        .await;
    assert_eq!(s, 204, "{b}");
    assert_eq!(cart_map(&node, &tok).await.get("FLT-1"), Some(&5));
    for raw in [
        r#"{"productSku":"FLT-1","quantity":2.5}"#,
        r#"{"productSku":"FLT-1","quantity":1e300}"#,
        r#"{"productSku":"FLT-1","quantity":-0.5}"#,
    ] {
        let (s, b) = add(raw).await;
        assert_error(raw, (s, &b), 400);
    }
    let (s, b) = node
        .put(
            "/api/cart/items/FLT-1",
            Some(&tok),
            json!({"quantity": -8.0}),
        )
        .await;
    assert_eq!(
        s, 204,
        "a whole negative float removes the line like -8: {b}"
    );
    assert_eq!(cart_map(&node, &tok).await.get("FLT-1"), None);
}

/// A method a route does not take is a JSON 405 whose `Allow` header lists the methods it does
/// take (RFC 9110 requires it).
#[actix_rt::test]
async fn a_wrong_method_gets_405_with_allow() {
    let node = Node::start(NodeOpts::new().demo_catalog(false));
    for (method, path, allow) in [
        ("TRACE", "/api/cart", "GET, DELETE"),
        ("GET", "/api/cart/items", "POST"),
        ("POST", "/api/products/some-id", "GET, PUT, DELETE"),
        ("PATCH", "/healthz", "GET"),
    ] {
        let r = node
            .send(
                Method::from_bytes(method.as_bytes()).unwrap(),
                path,
                &Auth::None,
                &[],
                None,
            )
            .await;
        assert_error(&format!("{method} {path}"), (r.status, &r.body), 405);
        let got = r
            .headers
            .get("allow")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(got.as_deref(), Some(allow), "{method} {path}");
    }
}
