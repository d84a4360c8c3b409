//! Actor-level hard paths on the in-memory backend: single writer under concurrency, passivation
//! racing live traffic, the memory cap, and a stale owner fenced by the store's version check.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use emporium_cluster::{Ownership, ShardMap};
use emporium_engine::catalog::ProductDraft;
use emporium_engine::{Engine, EngineOptions, Error};
use emporium_persistence::{MemoryStore, Stores};
use futures_util::future::join_all;

async fn engine_on(stores: Stores, options: EngineOptions) -> Engine {
    let map = Ownership::single_node(ShardMap::new(64).unwrap());
    let engine = Engine::start(stores, map, options).await.unwrap();
    for sku in ["A", "B"] {
        let draft = ProductDraft {
            name: format!("Product {sku}"),
            description: String::new(),
            price_cents: 250,
            sku: sku.into(),
            brand: "Test".into(),
            category: "Test".into(),
        };
        match engine.catalog().create(draft).await {
            Ok(_) | Err(Error::DuplicateSku(_)) => {}
            Err(e) => panic!("{e}"),
        }
    }
    engine
}

fn memory() -> Stores {
    Stores::from_backend(Arc::new(MemoryStore::new()))
}

async fn quantity(engine: &Engine, user: &str, sku: &str) -> u32 {
    let lines = engine.cart_view(user).await.unwrap();
    lines
        .iter()
        .find(|l| l.product.sku == sku)
        .map_or(0, |l| l.quantity)
}

#[actix_rt::test]
async fn concurrent_adds_are_serialised() {
    let engine = engine_on(memory(), EngineOptions::default()).await;
    let adds = (0..500).map(|_| engine.cart_add("u@x.io", "A", 1));
    assert!(join_all(adds).await.iter().all(Result::is_ok));
    assert_eq!(quantity(&engine, "u@x.io", "A").await, 500);
}

#[actix_rt::test]
async fn passivation_racing_traffic_loses_nothing() {
    let options = EngineOptions {
        idle_timeout: Duration::from_millis(1),
        ..EngineOptions::default()
    };
    let engine = engine_on(memory(), options).await;
    let mut acknowledged = 0;
    // Bursts separated by pauses long enough for the cart to passivate in between, and short
    // enough that some bursts land on an actor that is just passivating.
    for round in 0..40u64 {
        let adds = (0..25).map(|_| engine.cart_add("churn@x.io", "A", 1));
        acknowledged += join_all(adds).await.iter().filter(|r| r.is_ok()).count();
        actix_rt::time::sleep(Duration::from_millis(round % 7 * 20)).await;
    }
    assert_eq!(acknowledged, 1000, "every add is acknowledged");
    assert_eq!(quantity(&engine, "churn@x.io", "A").await, 1000);
    let cart = engine.actor_stats().kinds[0].1;
    assert!(
        cart.passivated_total() >= 1,
        "the cart passivated at least once"
    );
    assert!(cart.activated_total() >= 2, "and came back");
}

#[actix_rt::test]
async fn memory_cap_passivates_least_recently_used() {
    let options = EngineOptions {
        max_active_actors: 20,
        ..EngineOptions::default()
    };
    let engine = engine_on(memory(), options).await;
    for i in 0..100 {
        engine
            .cart_add(&format!("u{i}@x.io"), "B", 2)
            .await
            .unwrap();
    }
    // Passivation requests are messages; give them a moment to be handled (bounded).
    let mut active = i64::MAX;
    for _ in 0..100 {
        active = engine
            .actor_stats()
            .kinds
            .iter()
            .map(|(_, s)| s.active())
            .sum();
        if active <= 30 {
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(active <= 30, "{active} actors live with a cap of 20");
    // Passivated carts come back intact.
    for i in 0..100 {
        assert_eq!(
            quantity(&engine, &format!("u{i}@x.io"), "B").await,
            2,
            "u{i}"
        );
    }
}

#[actix_rt::test]
async fn a_stale_owner_is_fenced_and_recovers() {
    // Two engines on one store stand for an old and a new owner of the same shard.
    let stores = memory();
    let old = engine_on(stores.clone(), EngineOptions::default()).await;
    let new = engine_on(stores, EngineOptions::default()).await;
    old.cart_add("f@x.io", "A", 1).await.unwrap(); // old owner holds version 1 in memory
    new.cart_add("f@x.io", "A", 5).await.unwrap(); // new owner loads v1, writes v2
                                                   // The old owner's next write expects v1: refused, retryable, and nothing is overwritten.
    let stale = old.cart_add("f@x.io", "A", 100).await;
    assert!(matches!(stale, Err(Error::Fenced(_))), "{stale:?}");
    assert!(stale.err().is_some_and(|e| e.is_retryable()));
    assert_eq!(quantity(&new, "f@x.io", "A").await, 6);
    // The fenced actor gave the entity up; a retry reloads the current state.
    old.cart_add("f@x.io", "A", 1).await.unwrap();
    assert_eq!(quantity(&old, "f@x.io", "A").await, 7);
}

#[actix_rt::test]
async fn checkout_is_atomic_from_the_users_view() {
    let engine = engine_on(memory(), EngineOptions::default()).await;
    engine.set_stock("A", Some(3)).await.unwrap();
    engine.cart_add("c@x.io", "A", 2).await.unwrap();
    engine.cart_add("c@x.io", "B", 1).await.unwrap();
    let declined = emporium_engine::payment::Card {
        number: "4000000000000002".into(),
        exp_month: 12,
        exp_year: 2099,
        cvc: "123".into(),
    };
    let req = emporium_engine::CheckoutRequest {
        idempotency_key: None,
        card: Some(declined),
    };
    assert!(matches!(
        engine.checkout("c@x.io", req).await,
        Err(Error::PaymentDeclined(_))
    ));
    assert_eq!(
        engine.stock("A").await.unwrap(),
        Some(3),
        "reservation released"
    );
    assert_eq!(quantity(&engine, "c@x.io", "A").await, 2, "cart kept");
    let (order, created) = engine.checkout("c@x.io", Default::default()).await.unwrap();
    assert!(created);
    assert_eq!(order.total_cents, 750);
    assert_eq!(engine.stock("A").await.unwrap(), Some(1));
    assert!(engine.cart_view("c@x.io").await.unwrap().is_empty());
    assert_eq!(
        engine.stores().outbox.depth().await.unwrap(),
        1,
        "order.created queued"
    );
}
