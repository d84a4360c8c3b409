//! Diagnostics for the sled backend's group commit: N carts each make durable adds concurrently;
//! prints throughput, log appends (with the writes each covered) and checkpoint cost.
//!
//! `cargo run --release -p emporium-bench --example group_commit -- [CARTS] [ROUNDS]`

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use emporium_bench::{bench_engine, sku};
use emporium_persistence::{SledStore, Stores};
use futures_util::future::join_all;

fn arg(n: usize, default: usize) -> usize {
    std::env::args()
        .nth(n)
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let (carts, rounds) = (arg(1, 64), arg(2, 1000));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let store = Arc::new(SledStore::open(dir.path()).unwrap_or_else(|e| panic!("open: {e}")));
    let stores = Stores::from_backend(store.clone());
    let elapsed = actix_rt::System::new().block_on(async move {
        let engine = bench_engine(stores).await;
        let start = Instant::now();
        for round in 0..rounds {
            join_all((0..carts).map(|c| {
                let engine = engine.clone();
                async move {
                    let _ = engine
                        .cart_add(&format!("u{c}@example.com"), &sku(c + round % 4), 1)
                        .await;
                }
            }))
            .await;
        }
        start.elapsed().as_secs_f64()
    });
    let s = store.commit_stats();
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64;
    let (appends, writes) = (load(&s.appends).max(1.0), load(&s.writes));
    let checkpoints = load(&s.checkpoints);
    println!(
        "{carts} carts x {rounds} rounds: {:.0} durable adds/s; {appends} log appends, {:.1} writes each, {:.0} us each; \
         {checkpoints} checkpoints, {:.1} ms each",
        (carts * rounds) as f64 / elapsed,
        writes / appends,
        load(&s.append_micros) / appends,
        load(&s.checkpoint_micros) / 1e3 / checkpoints.max(1.0),
    );
}
