//! Prints group-commit behaviour under N concurrent durable cart adds (diagnostics, not a bench).
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use emporium_bench::{bench_engine, sku};
use emporium_persistence::{SledStore, Stores};
use futures_util::future::join_all;

fn main() {
    let carts: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = Arc::new(SledStore::open(dir.path()).unwrap_or_else(|e| panic!("{e}")));
    let s2 = store.clone();
    actix_rt::System::new().block_on(async move {
        let engine = bench_engine(Stores::from_backend(s2)).await;
        let before = (store.commit_stats().flushes.load(Ordering::Relaxed), store.commit_stats().flush_micros.load(Ordering::Relaxed), store.commit_stats().writes.load(Ordering::Relaxed));
        let start = Instant::now();
        let rounds = 3000;
        for i in 0..rounds {
            join_all((0..carts).map(|c| {
                let engine = engine.clone();
                async move { let _ = engine.cart_add(&format!("u{c}@x.io"), &sku(c + i % 4), 1).await; }
            })).await;
        }
        let el = start.elapsed().as_secs_f64();
        let st = store.commit_stats();
        let f = st.flushes.load(Ordering::Relaxed) - before.0;
        let us = st.flush_micros.load(Ordering::Relaxed) - before.1;
        let w = st.writes.load(Ordering::Relaxed) - before.2;
        let cps = st.checkpoints.load(Ordering::Relaxed);
        let cpus = st.checkpoint_micros.load(Ordering::Relaxed);
        println!("checkpoints {cps}, avg {:.1} ms, total {:.0}% of the run", cpus as f64 / 1e3 / cps.max(1) as f64, cpus as f64 / 1e6 / el * 100.0);
        println!("{carts} carts x {rounds}: {:.0} adds/s; flushes {f}, avg flush {:.0} us, writes/flush {:.1}, flush busy {:.0}%",
            (carts * rounds) as f64 / el, us as f64 / f as f64, w as f64 / f as f64, us as f64 / 1e6 / el * 100.0);
    });
}
