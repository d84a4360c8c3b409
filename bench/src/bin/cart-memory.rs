//! Memory of active cart actors: activates N carts (one line each) on an engine over the
//! in-memory store, with the binary's allocator (mimalloc), and prints the process's resident
//! memory before and after, the stored bytes of the carts (the in-memory store's share of the
//! growth) and what is left per active cart actor.
//!
//! `cargo run --release -p emporium-bench --bin cart-memory -- 1000000`

use std::time::{Duration, Instant};

use emporium_bench::{bench_engine_with, memory_stores, sku};
use emporium_engine::EngineOptions;
use futures_util::stream::{self, StreamExt as _};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Adds in flight at once.
const CONCURRENCY: usize = 256;

/// Resident set size of this process, in bytes (Linux `/proc/self/status`).
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() {
    let carts: usize = std::env::args()
        .nth(1)
        .map(|n| {
            n.parse()
                .unwrap_or_else(|e| panic!("cart count {n:?}: {e}"))
        })
        .unwrap_or(1_000_000);
    actix_rt::System::new().block_on(async move {
        let options = EngineOptions {
            idle_timeout: Duration::from_secs(3600),
            max_active_actors: carts + 10_000,
            ..EngineOptions::default()
        };
        let engine = bench_engine_with(memory_stores(), options).await;
        let before = rss_bytes();
        let start = Instant::now();
        let failed = stream::iter(0..carts)
            .map(|i| {
                let engine = engine.clone();
                async move {
                    engine
                        .cart_add(&format!("shopper{i}@example.com"), &sku(i), 1)
                        .await
                        .is_err()
                }
            })
            .buffer_unordered(CONCURRENCY)
            .filter(|failed| std::future::ready(*failed))
            .count()
            .await;
        let took = start.elapsed();
        let after = rss_bytes();
        let active = engine
            .actor_stats()
            .kinds
            .iter()
            .find(|(kind, _)| *kind == "cart")
            .map_or(0, |(_, s)| s.active());
        // The in-memory store holds each cart's snapshot too: its bytes are not the actor's.
        let snapshot = engine
            .stores()
            .snapshots
            .load("cart", "shopper0@example.com")
            .await
            .ok()
            .flatten()
            .map_or(0, |s| s.data.len() + "shopper0@example.com".len());
        let stored = (snapshot * carts) as u64;
        let growth = after.saturating_sub(before);
        let per_actor = growth.saturating_sub(stored) as f64 / carts.max(1) as f64;
        println!("carts activated      {carts} ({failed} failed) in {took:.1?}");
        println!("cart actors active   {active}");
        println!("RSS before           {:.1} MiB", mib(before));
        println!("RSS after            {:.1} MiB", mib(after));
        println!("growth               {:.1} MiB", mib(growth));
        println!(
            "stored cart bytes    {:.1} MiB ({snapshot} B each, in-memory store)",
            mib(stored)
        );
        println!("per active cart      {per_actor:.0} B (growth minus stored bytes, per cart)");
    });
}
