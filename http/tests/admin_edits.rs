//! What an admin's product edits do to stock and to the carts holding the product: a deleted
//! product's cart lines are neither shown nor bought, a SKU change takes the stock along, and a
//! product created on a SKU that had stock starts from the stock its body gives.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use common::*;
use serde_json::{json, Value};

fn path(product: &Value) -> String {
    format!("/api/products/{}", enc(&id_of(product)))
}

#[actix_rt::test]
async fn product_edits_keep_carts_and_stock_consistent() {
    let node = Node::start(NodeOpts::new().demo_catalog(false));
    let admin = admin_token(&node).await;
    let gone = create_product(&node, &admin, "Ephemeral", "EDIT-GONE", 3.0, Some(5)).await;
    let keep = create_product(&node, &admin, "Keeper", "EDIT-KEEP", 2.0, Some(10)).await;
    let eve = register(&node, "eve", "eve@example.com", PASSWORD).await;
    assert_eq!(add_to_cart(&node, &eve, "EDIT-GONE", 2).await, 204);
    assert_eq!(add_to_cart(&node, &eve, "EDIT-KEEP", 1).await, 204);

    // Deleted: the line is no longer shown, and checkout buys what is shown.
    assert_eq!(node.delete(&path(&gone), Some(&admin)).await.0, 204);
    let keeper_only = BTreeMap::from([("EDIT-KEEP".to_owned(), 1)]);
    assert_eq!(cart_map(&node, &eve).await, keeper_only);
    let (s, order) = node.post("/api/checkout", Some(&eve), Value::Null).await;
    assert_eq!(s, 201, "{order}");
    let bought: Vec<&str> = order["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["sku"].as_str().unwrap())
        .collect();
    assert_eq!(bought, ["EDIT-KEEP"], "{order}");
    assert_eq!(cents(&order["total"]), 200);
    assert_eq!(cart_map(&node, &eve).await, BTreeMap::new());
    assert_eq!(stock_of(&node, "EDIT-KEEP").await, Some(9));

    // A cart holding only deleted products is empty to checkout as it is to the eye.
    let brief = create_product(&node, &admin, "Brief", "EDIT-BRIEF", 1.0, None).await;
    assert_eq!(add_to_cart(&node, &eve, "EDIT-BRIEF", 1).await, 204);
    assert_eq!(node.delete(&path(&brief), Some(&admin)).await.0, 204);
    let (s, b) = node.post("/api/checkout", Some(&eve), Value::Null).await;
    assert_error("checkout of deleted products only", (s, &b), 400);

    // Created again on the deleted product's SKU without stock: not tracked, as the 201 says.
    let body = json!({"name": "Ephemeral again", "sku": "EDIT-GONE", "price": 3.0});
    let (s, again) = node.post("/api/products", Some(&admin), body).await;
    assert_eq!((s, &again["stock"]), (201, &Value::Null), "{again}");
    assert_eq!(stock_of(&node, "EDIT-GONE").await, None);

    // A SKU change without stock in the body takes the stock along, and it still limits sales.
    let body = json!({"name": "Keeper", "sku": "EDIT-KEEP2", "price": 2.0});
    let (s, renamed) = node.put(&path(&keep), Some(&admin), body).await;
    assert_eq!((s, &renamed["stock"]), (200, &json!(9)), "{renamed}");
    assert_eq!(stock_of(&node, "EDIT-KEEP2").await, Some(9));
    assert_eq!(add_to_cart(&node, &eve, "EDIT-KEEP2", 10).await, 409);
    assert_eq!(node.get("/api/products/sku/EDIT-KEEP", None).await.0, 404);
    // The old SKU is free again and carries nothing over.
    let tracked = create_product(&node, &admin, "New", "EDIT-KEEP", 4.0, Some(3)).await;
    assert_eq!(tracked["stock"], 3);
    let body = json!({"name": "Untracked", "sku": "EDIT-OLD", "price": 1.0});
    let (s, _) = node.put(&path(&tracked), Some(&admin), body).await;
    assert_eq!(s, 200);
    let body = json!({"name": "Reused", "sku": "EDIT-KEEP", "price": 1.0});
    let (s, reused) = node.post("/api/products", Some(&admin), body).await;
    assert_eq!((s, &reused["stock"]), (201, &Value::Null), "{reused}");
    assert_eq!(stock_of(&node, "EDIT-OLD").await, Some(3));

    // PUT quantity 0 for a line not in the cart changes nothing and succeeds; a positive one 404s.
    let line = "/api/cart/items/EDIT-KEEP2";
    assert_eq!(
        node.put(line, Some(&eve), json!({"quantity": 0})).await.0,
        204
    );
    let (s, b) = node.put(line, Some(&eve), json!({"quantity": 2})).await;
    assert_error("PUT a line not in the cart", (s, &b), 404);
    assert_eq!(cart_map(&node, &eve).await, BTreeMap::new());
}
