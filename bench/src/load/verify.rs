//! `--verify`: after the load, every acknowledged write is looked for through the API. An add is
//! found when its units are in the shopper's cart or in one of the shopper's orders (the
//! scenarios never remove lines, so nothing else takes units away); a checkout when its order
//! is listed with the same lines; a sale when the product's stock is at most its initial stock
//! less the units of every acknowledged order (writes that got no answer may have taken more).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::scenario::{order_items, World};
use super::setup::{call, get};

#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    pub users_checked: u64,
    /// Units acknowledged by 2xx adds.
    pub acknowledged_adds: u64,
    pub acknowledged_checkouts: u64,
    /// Writes that got no answer or a 5xx (they may or may not have happened; not counted missing).
    pub uncertain_writes: u64,
    /// Acknowledged add units in neither the cart nor any order.
    pub missing_adds: u64,
    /// Acknowledged orders not listed.
    pub missing_orders: u64,
    /// Acknowledged orders listed with other lines than acknowledged.
    pub altered_orders: u64,
    /// Units of acknowledged orders that the products' stock does not show as taken.
    pub stock_not_taken: u64,
    /// Products this run created that are gone.
    pub missing_products: u64,
    /// Shoppers or products whose state could not be read (no 200 after retries).
    pub unreadable: u64,
    /// Every acknowledged write found missing: the sum of the five counts above `unreadable`.
    pub missing_total: u64,
}

struct Found {
    readable: bool,
    /// sku → units in the cart plus in every order.
    units: BTreeMap<String, u64>,
    orders: BTreeMap<String, BTreeMap<String, u64>>,
}

async fn read_user(world: &World, i: usize) -> Found {
    let token = Some(world.setup.shoppers[i].token.as_str());
    let client = &world.client;
    let cart = call(client, &get("/api/cart".into(), token), 10).await;
    let orders = call(client, &get("/api/orders".into(), token), 10).await;
    let (Ok((200, Value::Array(cart))), Ok((200, Value::Array(orders)))) = (cart, orders) else {
        return Found {
            readable: false,
            units: BTreeMap::new(),
            orders: BTreeMap::new(),
        };
    };
    let mut units: BTreeMap<String, u64> = BTreeMap::new();
    for line in &cart {
        if let (Some(sku), Some(q)) = (line["sku"].as_str(), line["quantity"].as_u64()) {
            *units.entry(sku.to_owned()).or_default() += q;
        }
    }
    let mut by_id = BTreeMap::new();
    for order in &orders {
        let items = order_items(order);
        for (sku, q) in &items {
            *units.entry(sku.clone()).or_default() += q;
        }
        if let Some(id) = order["id"].as_str() {
            by_id.insert(id.to_owned(), items);
        }
    }
    Found {
        readable: true,
        units,
        orders: by_id,
    }
}

pub async fn verify(world: &World) -> Verification {
    let mut v = Verification::default();
    let mut sold: BTreeMap<String, u64> = BTreeMap::new();
    let active: Vec<usize> = (0..world.users.len())
        .filter(|&i| {
            let u = world.users[i].borrow();
            v.uncertain_writes += u.uncertain_writes;
            !u.acked_adds.is_empty() || !u.acked_orders.is_empty()
        })
        .collect();
    for chunk in active.chunks(8) {
        let found =
            futures_util::future::join_all(chunk.iter().map(|&i| read_user(world, i))).await;
        for (&i, found) in chunk.iter().zip(found) {
            let u = world.users[i].borrow();
            v.users_checked += 1;
            v.acknowledged_adds += u.acked_adds.values().sum::<u64>();
            v.acknowledged_checkouts += u.acked_orders.len() as u64;
            for order in &u.acked_orders {
                for (sku, q) in &order.items {
                    *sold.entry(sku.clone()).or_default() += q;
                }
            }
            if !found.readable {
                v.unreadable += 1;
                continue;
            }
            for (sku, acked) in &u.acked_adds {
                let there = found.units.get(sku).copied().unwrap_or(0);
                v.missing_adds += acked.saturating_sub(there);
            }
            for order in &u.acked_orders {
                match found.orders.get(&order.id) {
                    None => v.missing_orders += 1,
                    Some(items) if *items != order.items => v.altered_orders += 1,
                    Some(_) => {}
                }
            }
        }
    }
    for p in &world.setup.buy {
        let Some(initial) = p.initial_stock else {
            continue;
        };
        let taken = sold.get(&p.sku).copied().unwrap_or(0);
        match call(
            &world.client,
            &get(format!("/api/products/sku/{}", p.sku), None),
            10,
        )
        .await
        {
            Ok((200, product)) => {
                let stock = product["stock"].as_u64().unwrap_or(initial);
                v.stock_not_taken += stock.saturating_sub(initial.saturating_sub(taken));
            }
            Ok((404, _)) => {
                v.missing_products += 1;
                v.stock_not_taken += taken;
            }
            _ => v.unreadable += 1,
        }
    }
    v.missing_total = v.missing_adds
        + v.missing_orders
        + v.altered_orders
        + v.stock_not_taken
        + v.missing_products;
    v
}
