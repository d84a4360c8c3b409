//! Benchmarks for Emporium: criterion benches of cart throughput (`benches/cart.rs`) and the
//! actix-web hello-world floor (`hello-floor`) that the HTTP load test (`scripts/bench-http.sh`)
//! compares the store with, in the same run; and `load`, the `emporium-load` generator that
//! drives the storefront API like shoppers do, with live progress, plots and `--verify`.
//!
//! This crate holds no product code; it only measures it.

pub mod load;

use std::sync::Arc;

use emporium_cluster::{Ownership, ShardMap};
use emporium_engine::catalog::ProductDraft;
use emporium_engine::{Engine, EngineOptions};
use emporium_persistence::Stores;

/// The number of products a bench engine carries (untracked stock, so adds never hit a limit).
pub const BENCH_SKUS: usize = 64;

pub fn sku(i: usize) -> String {
    format!("BENCH-{:03}", i % BENCH_SKUS)
}

/// An engine over `stores` with `BENCH_SKUS` products. Call inside an actix `System`.
pub async fn bench_engine(stores: Stores) -> Engine {
    bench_engine_with(stores, EngineOptions::default()).await
}

/// [`bench_engine`] with `options` (e.g. room for more live actors).
pub async fn bench_engine_with(stores: Stores, options: EngineOptions) -> Engine {
    let map = ShardMap::new(1024)
        .map(Ownership::single_node)
        .unwrap_or_else(|e| panic!("shard map: {e}"));
    let engine = Engine::start(stores, map, options)
        .await
        .unwrap_or_else(|e| panic!("engine: {e}"));
    for i in 0..BENCH_SKUS {
        let draft = ProductDraft {
            name: format!("Bench product {i}"),
            description: String::new(),
            price_cents: 100 + i as u64,
            sku: sku(i),
            brand: "Bench".into(),
            category: "Bench".into(),
        };
        // A store reused across runs already has them.
        match engine.catalog().create(draft).await {
            Ok(_) | Err(emporium_engine::Error::DuplicateSku(_)) => {}
            Err(e) => panic!("product: {e}"),
        }
    }
    engine
}

pub fn memory_stores() -> Stores {
    Stores::from_backend(Arc::new(emporium_persistence::MemoryStore::new()))
}
