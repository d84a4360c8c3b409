//! Acceptance 1 against the binary started exactly as the README's first command starts it: no
//! settings at all (only the port is chosen, with `--listen`), a fresh working directory, so the
//! data dir is `./emporium-data`, the JWT secret is generated there and the demo catalog loads.
//! register → login → browse with search/brand/category/pages → add/update/remove → checkout →
//! orders → cancel, on the demo catalog; then a restart keeps the secret, the tokens and the data.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;

use common::*;
use serde_json::{json, Value};

fn products(page: &Value) -> &Vec<Value> {
    page["products"].as_array().expect("a page of products")
}

#[actix_rt::test]
async fn readme_command_runs_the_whole_storefront_flow() {
    let mut node = Node::start(NodeOpts::new().readme_defaults());

    // Register (the email is normalised), then log in; the login's token is used from here on.
    register(&node, "rita", "Rita@Example.com", PASSWORD).await;
    let token = login(&node, "rita@example.com", PASSWORD).await;

    // Browse the demo catalog: search, brand and category filters, pages.
    let (s, all) = node.get("/api/products/all", None).await;
    assert_eq!(s, 200, "{all}");
    let demo = all.as_array().unwrap().clone();
    assert!(demo.len() >= 100, "demo catalog: {} products", demo.len());
    let (_, found) = node
        .get("/api/products?search=KETTLE&limit=100", None)
        .await;
    assert!(!products(&found).is_empty(), "{found}");
    for p in products(&found) {
        assert!(
            p["name"]
                .as_str()
                .unwrap()
                .to_lowercase()
                .contains("kettle"),
            "{p}"
        );
    }
    let (brand, category) = (
        demo[0]["brand"].as_str().unwrap(),
        demo[0]["category"].as_str().unwrap(),
    );
    let path = format!(
        "/api/products?brand={}&category={}&limit=100",
        enc(brand),
        enc(category)
    );
    let (_, filtered) = node.get(&path, None).await;
    assert!(!products(&filtered).is_empty(), "{filtered}");
    for p in products(&filtered) {
        assert_eq!(
            (p["brand"].as_str(), p["category"].as_str()),
            (Some(brand), Some(category))
        );
    }
    let (_, page2) = node.get("/api/products?page=2&limit=7", None).await;
    assert_eq!(products(&page2).len(), 7);
    assert_eq!(page2["currentPage"], 2);
    assert_eq!(page2["totalProducts"], demo.len());
    assert_eq!(page2["totalPages"], demo.len().div_ceil(7));

    // Add two products, update one, remove the other.
    let mut stocked = demo
        .iter()
        .filter(|p| p["stock"].as_i64().is_some_and(|n| n >= 5));
    let (a, b) = (stocked.next().unwrap(), stocked.next().unwrap());
    let (sku_a, sku_b) = (a["sku"].as_str().unwrap(), b["sku"].as_str().unwrap());
    let stock_a = stock_of(&node, sku_a).await.unwrap();
    assert_eq!(add_to_cart(&node, &token, sku_a, 2).await, 204);
    assert_eq!(add_to_cart(&node, &token, sku_b, 1).await, 204);
    let line_a = format!("/api/cart/items/{}", enc(sku_a));
    assert_eq!(
        node.put(&line_a, Some(&token), json!({"quantity": 3}))
            .await
            .0,
        204
    );
    let line_b = format!("/api/cart/items/{}", enc(sku_b));
    assert_eq!(node.delete(&line_b, Some(&token)).await.0, 204);
    assert_eq!(
        cart_map(&node, &token).await,
        BTreeMap::from([(sku_a.to_owned(), 3)])
    );

    // Checkout: the order carries total, currency and status Created; stock went down.
    let card = json!({"payment": {"cardNumber": "4242424242424242", "expMonth": 12,
        "expYear": 2099, "cvc": "123"}});
    let (s, order) = node.post("/api/checkout", Some(&token), card).await;
    assert_eq!(s, 201, "{order}");
    assert_eq!(order["status"], "Created", "{order}");
    assert_eq!(cents(&order["total"]), 3 * cents(&a["price"]), "{order}");
    assert!(
        order["currency"].as_str().is_some_and(|c| c.len() == 3),
        "{order}"
    );
    assert_eq!(stock_of(&node, sku_a).await, Some(stock_a - 3));
    assert_eq!(cart_map(&node, &token).await, BTreeMap::new());
    let (s, orders) = node.get("/api/orders", Some(&token)).await;
    assert_eq!(s, 200);
    assert_eq!(
        orders
            .as_array()
            .unwrap()
            .iter()
            .map(id_of)
            .collect::<Vec<_>>(),
        [id_of(&order)]
    );

    // The secret was generated and kept, readable by the owner only.
    let secret_file = node.data_dir().join("jwt-secret");
    let secret = std::fs::read_to_string(&secret_file).unwrap();
    assert!(secret.trim().len() >= 32, "generated secret: {secret:?}");
    let mode = std::fs::metadata(&secret_file)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{}", secret_file.display());

    // After a restart: the same secret accepts the earlier token, the order is there, the demo
    // catalog is not loaded twice; cancelling puts the stock back.
    node.restart();
    assert_eq!(std::fs::read_to_string(&secret_file).unwrap(), secret);
    let (_, again) = node.get("/api/products/all", None).await;
    assert_eq!(again.as_array().map(Vec::len), Some(demo.len()));
    let cancel = format!("/api/orders/{}/cancel", enc(&id_of(&order)));
    let (s, cancelled) = node.post(&cancel, Some(&token), Value::Null).await;
    assert_eq!(
        (s, &cancelled["status"]),
        (200, &json!("Cancelled")),
        "{cancelled}"
    );
    assert_eq!(stock_of(&node, sku_a).await, Some(stock_a));
}
