//! Acceptance 1 (browsing half): the demo catalog through paging, filters, search and lookups.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use common::*;
use serde_json::{json, Value};

fn names(ps: &[Value]) -> Vec<String> {
    ps.iter()
        .map(|p| {
            p["name"]
                .as_str()
                .unwrap_or_else(|| panic!("no name: {p}"))
                .to_string()
        })
        .collect()
}

/// Sorted by name: non-decreasing either byte-wise or case-insensitively.
fn assert_sorted_by_name(ps: &[Value], what: &str) {
    let n = names(ps);
    let bytewise = n.windows(2).all(|w| w[0] <= w[1]);
    let folded = n
        .windows(2)
        .all(|w| w[0].to_lowercase() <= w[1].to_lowercase());
    assert!(
        bytewise || folded,
        "{what}: products not sorted by name: {n:?}"
    );
}

fn assert_product_shape(p: &Value) {
    for f in ["id", "name", "price", "sku"] {
        assert!(!p[f].is_null(), "product lacks {f}: {p}");
    }
    assert!(
        p["name"].is_string() && p["sku"].is_string(),
        "product name/sku not strings: {p}"
    );
    assert!(cents(&p["price"]) > 0, "price must be > 0: {p}");
    assert!(
        p["stock"].is_null() || p["stock"].as_i64().is_some_and(|s| s >= 0),
        "bad stock: {p}"
    );
}

/// Walks every page of `/api/products?<query>&limit=<limit>`, checking paging fields.
async fn all_pages(node: &Node, query: &str, limit: usize) -> Vec<Value> {
    let mut out = Vec::new();
    let mut total_pages = 1usize;
    let mut page = 1usize;
    while page <= total_pages && page <= 200 {
        let path = format!("/api/products?page={page}&limit={limit}{query}");
        let (s, b) = node.get(&path, None).await;
        assert_eq!(s, 200, "{path}: {b}");
        let total = b["totalProducts"]
            .as_u64()
            .unwrap_or_else(|| panic!("{path}: no totalProducts: {b}"))
            as usize;
        total_pages = b["totalPages"]
            .as_u64()
            .unwrap_or_else(|| panic!("{path}: no totalPages: {b}")) as usize;
        assert_eq!(
            b["currentPage"].as_u64(),
            Some(page as u64),
            "{path}: currentPage: {b}"
        );
        if total == 0 {
            assert!(
                total_pages <= 1,
                "{path}: totalPages for an empty result: {b}"
            );
        } else {
            assert_eq!(
                total_pages,
                total.div_ceil(limit),
                "{path}: totalPages vs totalProducts {total}"
            );
        }
        let ps = b["products"]
            .as_array()
            .unwrap_or_else(|| panic!("{path}: no products array: {b}"));
        let expected_len = total.saturating_sub((page - 1) * limit).min(limit);
        assert_eq!(
            ps.len(),
            expected_len,
            "{path}: page length (total {total}, limit {limit})"
        );
        out.extend(ps.iter().cloned());
        page += 1;
    }
    out
}

fn skus(ps: &[Value]) -> BTreeSet<String> {
    ps.iter()
        .map(|p| p["sku"].as_str().unwrap().to_string())
        .collect()
}

fn distinct_sorted_strings(v: &Value, what: &str) -> Vec<String> {
    let list: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("{what} is not an array: {v}"))
        .iter()
        .map(|x| {
            x.as_str()
                .unwrap_or_else(|| panic!("{what}: not a string: {x}"))
                .to_string()
        })
        .collect();
    let bytewise = list.windows(2).all(|w| w[0] < w[1]);
    let folded = list
        .windows(2)
        .all(|w| w[0].to_lowercase() < w[1].to_lowercase());
    assert!(bytewise || folded, "{what} not distinct+sorted: {list:?}");
    list
}

#[actix_rt::test]
async fn browse_demo_catalog() {
    let node = Node::start(NodeOpts::new().demo_catalog(true));

    let (s, all) = node.get("/api/products/all", None).await;
    assert_eq!(s, 200, "{all}");
    let all = all.as_array().unwrap().clone();
    assert!(
        all.len() >= 100,
        "demo catalog has only {} products",
        all.len()
    );
    all.iter().for_each(assert_product_shape);
    let all_skus = skus(&all);
    assert_eq!(all_skus.len(), all.len(), "duplicate skus in /all");

    // First page with default-ish paging.
    let (s, b) = node.get("/api/products?page=1&limit=20", None).await;
    assert_eq!(s, 200, "{b}");
    let total = b["totalProducts"].as_u64().unwrap();
    assert!(total >= 100, "totalProducts {total}");
    assert_eq!(total as usize, all.len(), "totalProducts vs /all");
    assert_eq!(b["totalPages"].as_u64(), Some(total.div_ceil(20)));
    assert_eq!(b["currentPage"].as_u64(), Some(1));
    assert_eq!(b["products"].as_array().unwrap().len(), 20);

    // Every page, limit 30: the union is exactly the catalog, in name order.
    let paged = all_pages(&node, "", 30).await;
    assert_eq!(paged.len(), all.len());
    assert_eq!(
        skus(&paged),
        all_skus,
        "pages do not cover the catalog exactly once"
    );
    assert_sorted_by_name(&paged, "all pages");

    // Brands and categories: distinct, sorted, the ones the products use.
    let (s, bv) = node.get("/api/products/brands", None).await;
    assert_eq!(s, 200, "{bv}");
    let brands = distinct_sorted_strings(&bv, "brands");
    let (s, cv) = node.get("/api/products/categories", None).await;
    assert_eq!(s, 200, "{cv}");
    let cats = distinct_sorted_strings(&cv, "categories");
    let used = |f: &str| -> BTreeSet<String> {
        all.iter()
            .filter_map(|p| p[f].as_str().map(String::from))
            .collect()
    };
    assert_eq!(
        brands.iter().cloned().collect::<BTreeSet<_>>(),
        used("brand")
    );
    assert_eq!(
        cats.iter().cloned().collect::<BTreeSet<_>>(),
        used("category")
    );
    assert!(brands.len() >= 3, "want several brands, got {brands:?}");
    assert!(cats.len() >= 3, "want several categories, got {cats:?}");

    // brand=a,b
    let (a, bb) = (&brands[0], &brands[brands.len() - 1]);
    let got = all_pages(&node, &format!("&brand={},{}", enc(a), enc(bb)), 25).await;
    let want: BTreeSet<String> = all
        .iter()
        .filter(|p| p["brand"] == **a || p["brand"] == **bb)
        .map(|p| p["sku"].as_str().unwrap().to_string())
        .collect();
    assert!(!want.is_empty());
    assert!(
        got.iter().all(|p| p["brand"] == **a || p["brand"] == **bb),
        "brand filter leaked"
    );
    assert_eq!(skus(&got), want, "brand={a},{bb}");
    assert_sorted_by_name(&got, "brand filter");
    // The same two brands repeated (brand=a&brand=b) or bracketed (brand[]=a&brand[]=b).
    for form in [
        format!("&brand={}&brand={}", enc(a), enc(bb)),
        format!("&brand%5B%5D={}&brand%5B%5D={}", enc(a), enc(bb)),
    ] {
        let got = all_pages(&node, &form, 25).await;
        assert_eq!(skus(&got), want, "{form}");
    }

    // category=x and category=x,y, and combined with a brand.
    let x = &cats[0];
    let y = &cats[1];
    let got = all_pages(&node, &format!("&category={}", enc(x)), 25).await;
    assert!(got.iter().all(|p| p["category"] == **x));
    assert_eq!(
        got.len(),
        all.iter().filter(|p| p["category"] == **x).count(),
        "category={x}"
    );
    let got = all_pages(&node, &format!("&category={},{}", enc(x), enc(y)), 25).await;
    assert!(got
        .iter()
        .all(|p| p["category"] == **x || p["category"] == **y));
    assert_eq!(
        got.len(),
        all.iter()
            .filter(|p| p["category"] == **x || p["category"] == **y)
            .count()
    );
    let got = all_pages(&node, &format!("&brand={}&category={}", enc(a), enc(x)), 25).await;
    assert_eq!(
        got.len(),
        all.iter()
            .filter(|p| p["brand"] == **a && p["category"] == **x)
            .count(),
        "brand+category"
    );

    // search: case-insensitive substring of name.
    let sample = all
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .find(|n| n.is_ascii() && n.len() >= 5)
        .expect("an ASCII product name");
    let needle = &sample[1..4];
    let flipped: String = needle
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    let got = all_pages(&node, &format!("&search={}", enc(&flipped)), 20).await;
    let want: BTreeSet<String> = all
        .iter()
        .filter(|p| {
            p["name"]
                .as_str()
                .unwrap()
                .to_lowercase()
                .contains(&needle.to_lowercase())
        })
        .map(|p| p["sku"].as_str().unwrap().to_string())
        .collect();
    assert!(!want.is_empty());
    assert_eq!(skus(&got), want, "search={flipped}");
    assert_sorted_by_name(&got, "search");
    let (s, b) = node
        .get("/api/products?search=zzqq-no-such-product-qqzz", None)
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["totalProducts"].as_u64(), Some(0));
    assert_eq!(b["products"].as_array().map(Vec::len), Some(0));

    // By id, by sku, batch-get.
    let p = &all[all.len() / 2];
    let (s, by_id) = node
        .get(&format!("/api/products/{}", enc(&id_of(p))), None)
        .await;
    assert_eq!(s, 200, "{by_id}");
    assert_eq!(&by_id, p, "GET by id differs from /all");
    let by_sku = product_by_sku(&node, p["sku"].as_str().unwrap()).await;
    assert_eq!(&by_sku, p, "GET by sku differs from /all");
    let s1 = all[0]["sku"].as_str().unwrap();
    let s2 = all[all.len() - 1]["sku"].as_str().unwrap();
    let (s, b) = node
        .post(
            "/api/products/batch-get",
            None,
            json!({"skus": [s1, s2, "NO-SUCH-SKU-XYZ"]}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let got = skus(b.as_array().unwrap());
    assert_eq!(
        got,
        [s1.to_string(), s2.to_string()]
            .into_iter()
            .collect::<BTreeSet<_>>(),
        "batch-get"
    );
}
