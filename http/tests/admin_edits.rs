//! What an admin's product edits do to stock and to the carts holding the product: a deleted
//! product's cart lines are neither shown nor bought; stock lives with the SKU, so a product with
//! tracked stock changes SKU only with its stock in the same body, and a cancelled order gives
//! stock back to its product's current SKU.
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

    // Created again on the deleted product's SKU: without stock in the body it keeps the SKU's
    // stock (5, as the 201 says); with stock in the body it has that.
    let body = json!({"name": "Ephemeral again", "sku": "EDIT-GONE", "price": 3.0});
    let (s, again) = node.post("/api/products", Some(&admin), body).await;
    assert_eq!((s, &again["stock"]), (201, &json!(5)), "{again}");
    assert_eq!(stock_of(&node, "EDIT-GONE").await, Some(5));
    assert_eq!(node.delete(&path(&again), Some(&admin)).await.0, 204);
    let third = create_product(&node, &admin, "Third", "EDIT-GONE", 3.0, Some(2)).await;
    assert_eq!(third["stock"], 2);
    assert_eq!(stock_of(&node, "EDIT-GONE").await, Some(2));

    // An order placed before a SKU change; the SKU of a product with tracked stock changes only
    // with the stock in the same body, which then limits sales under the new SKU.
    assert_eq!(add_to_cart(&node, &eve, "EDIT-KEEP", 4).await, 204);
    let (s, before) = node.post("/api/checkout", Some(&eve), Value::Null).await;
    assert_eq!(s, 201, "{before}");
    assert_eq!(stock_of(&node, "EDIT-KEEP").await, Some(5));
    let body = json!({"name": "Keeper", "sku": "EDIT-KEEP2", "price": 2.0});
    let (s, b) = node.put(&path(&keep), Some(&admin), body).await;
    assert_error("a new SKU without the stock", (s, &b), 409);
    assert_eq!(b["error"], "stock_tracked");
    let body = json!({"name": "Keeper", "sku": "EDIT-KEEP2", "price": 2.0, "stock": 5});
    let (s, renamed) = node.put(&path(&keep), Some(&admin), body).await;
    assert_eq!((s, &renamed["stock"]), (200, &json!(5)), "{renamed}");
    assert_eq!(add_to_cart(&node, &eve, "EDIT-KEEP2", 6).await, 409);
    assert_eq!(node.get("/api/products/sku/EDIT-KEEP", None).await.0, 404);
    // Cancelling the earlier order gives its 4 back to the product, under its new SKU.
    let cancel = format!("/api/orders/{}/cancel", enc(&id_of(&before)));
    assert_eq!(node.post(&cancel, Some(&eve), Value::Null).await.0, 200);
    assert_eq!(stock_of(&node, "EDIT-KEEP2").await, Some(9));
    // A product whose stock is not tracked changes SKU freely.
    let free = create_product(&node, &admin, "Free", "EDIT-FREE", 1.0, None).await;
    let body = json!({"name": "Free", "sku": "EDIT-FREE2", "price": 1.0});
    let (s, moved) = node.put(&path(&free), Some(&admin), body).await;
    assert_eq!((s, &moved["stock"]), (200, &Value::Null), "{moved}");

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
