//! Cart throughput, from the pure state machine up to many carts persisting to sled.
//!
//! `cargo bench -p emporium-bench --bench cart`

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use emporium_bench::{bench_engine, memory_stores, sku};
use emporium_engine::cart::{CartCommand, CartState};
use emporium_persistence::{SledStore, Stores};
use futures_util::future::join_all;

fn state_machine(c: &mut Criterion) {
    let mut g = c.benchmark_group("cart_state_machine");
    g.throughput(Throughput::Elements(1));
    g.bench_function("apply_add", |b| {
        b.iter_batched_ref(
            CartState::default,
            |cart| {
                let cmd = CartCommand::Add {
                    sku: "SKU-1".into(),
                    product_id: "p1".into(),
                    quantity: 1,
                    available: None,
                    op: None,
                };
                if let Ok(events) = cart.apply(&cmd) {
                    for e in events {
                        cart.evolve(e);
                    }
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// Runs `ops` on a fresh actix system and returns the time they took.
fn timed<F, Fut>(setup: impl FnOnce() -> Stores, iters: u64, ops: F) -> Duration
where
    F: FnOnce(emporium_engine::Engine, u64) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    actix_rt::System::new().block_on(async move {
        let engine = bench_engine(setup()).await;
        let start = Instant::now();
        ops(engine, iters).await;
        start.elapsed()
    })
}

fn actor_round_trip(c: &mut Criterion) {
    let mut g = c.benchmark_group("cart_actor_in_memory");
    g.throughput(Throughput::Elements(1));
    // One message to one live cart actor and its reply, sequentially, through the engine handle
    // (shard routing, registry lookup, mailbox, reply); then the same plus the join with the
    // catalog that GET /api/cart does.
    for (name, with_catalog) in [("round_trip_get", false), ("cart_view", true)] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                timed(memory_stores, iters, |engine, iters| async move {
                    let _ = engine.cart_add("bench@example.com", &sku(1), 1).await;
                    for _ in 0..iters {
                        if with_catalog {
                            let _ = engine.cart_view("bench@example.com").await;
                        } else {
                            let _ = engine.cart_state("bench@example.com").await;
                        }
                    }
                })
            })
        });
    }
    // The full add path: catalog lookup, stock read, actor, state machine, store write.
    g.bench_function("round_trip_add", |b| {
        b.iter_custom(|iters| {
            timed(memory_stores, iters, |engine, iters| async move {
                for i in 0..iters {
                    // A new cart every 100k adds keeps lines below their quantity cap.
                    let user = format!("bench{}@example.com", i / 100_000);
                    let _ = engine.cart_add(&user, &sku(i as usize % 4), 1).await;
                }
            })
        })
    });
    g.finish();
}

fn many_carts_sled(c: &mut Criterion) {
    const CARTS: usize = 64;
    let mut g = c.benchmark_group("carts_on_sled");
    g.throughput(Throughput::Elements(CARTS as u64));
    g.sample_size(20);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let store = Arc::new(SledStore::open(dir.path()).unwrap_or_else(|e| panic!("sled: {e}")));
    // 64 carts each take one durable add per iteration, concurrently (group commit at work).
    g.bench_function("concurrent_durable_adds_64_carts", |b| {
        b.iter_custom(|iters| {
            let store = store.clone();
            timed(
                move || Stores::from_backend(store),
                iters,
                |engine, iters| async move {
                    for i in 0..iters {
                        let adds = (0..CARTS).map(|c| {
                            let engine = engine.clone();
                            async move {
                                let user = format!("user{c}@example.com");
                                let _ = engine.cart_add(&user, &sku(c + i as usize % 4), 1).await;
                            }
                        });
                        join_all(adds).await;
                    }
                },
            )
        })
    });
    g.finish();
}

criterion_group!(benches, state_machine, actor_round_trip, many_carts_sled);
criterion_main!(benches);
