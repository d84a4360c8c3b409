//! Checkout when the order write fails with an unknown outcome, as a remote store can (a lost
//! acknowledgement, a timeout): the write may or may not have landed. A fault-injecting wrapper
//! around the in-memory backend plays the store; the engine must never give stock back under a
//! stored order, and must answer from the order when it can read it back. A hold its checkout
//! never settled is settled against the store once it times out.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use emporium_cluster::{Ownership, ShardMap};
use emporium_engine::catalog::ProductDraft;
use emporium_engine::{CheckoutRequest, Engine, EngineOptions, Error};
use emporium_persistence::{
    Error as StoreError, MemoryStore, Snapshot, SnapshotStore, SnapshotWrite, Stores,
};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fault {
    None,
    /// Order writes land, but their callers hear `Unavailable`.
    AppliedButLost,
    /// Order writes fail and do not land (reads still work: the read-back finds nothing).
    WritesLost,
    /// The first order write fails for now but is still on its way (it lands with the next order
    /// write); the store refuses the others meanwhile.
    Delayed,
    /// The delayed write lands just before this one.
    DelayedLands,
    /// Order writes land, but their callers hear `Unavailable`, and stored orders cannot be read.
    AppliedUnreadable,
}

struct Faulty {
    inner: Arc<MemoryStore>,
    fault: Mutex<Fault>,
    delayed: Mutex<Option<SnapshotWrite>>,
}

impl Faulty {
    fn fault(&self) -> Fault {
        *self.fault.lock().unwrap()
    }
    fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
    }
}

fn down() -> StoreError {
    StoreError::Unavailable("injected: store unreachable".into())
}

#[async_trait]
impl SnapshotStore for Faulty {
    async fn load(&self, kind: &str, key: &str) -> Result<Option<Snapshot>, StoreError> {
        let loaded = self.inner.load(kind, key).await?;
        if kind == "order" && loaded.is_some() && self.fault() == Fault::AppliedUnreadable {
            return Err(down());
        }
        Ok(loaded)
    }
    async fn save(&self, write: SnapshotWrite) -> Result<u64, StoreError> {
        match (write.kind, self.fault()) {
            ("order", Fault::AppliedButLost | Fault::AppliedUnreadable) => {
                self.inner.save(write).await?;
                Err(down())
            }
            ("order", Fault::WritesLost) => Err(down()),
            // The first write is on its way; the store answers nothing else meanwhile.
            ("order", Fault::Delayed) => {
                self.delayed.lock().unwrap().get_or_insert(write);
                Err(down())
            }
            ("order", Fault::DelayedLands) => {
                let late = self.delayed.lock().unwrap().take();
                if let Some(late) = late {
                    self.inner.save(late).await?;
                }
                self.inner.save(write).await
            }
            _ => self.inner.save(write).await,
        }
    }
    async fn list_by_owner(&self, kind: &str, owner: &str) -> Result<Vec<Snapshot>, StoreError> {
        self.inner.list_by_owner(kind, owner).await
    }
}

async fn setup(stock: u64) -> (Engine, Arc<Faulty>) {
    setup_with(stock, EngineOptions::default()).await
}

async fn setup_with(stock: u64, options: EngineOptions) -> (Engine, Arc<Faulty>) {
    let memory = Arc::new(MemoryStore::new());
    let faulty = Arc::new(Faulty {
        inner: memory.clone(),
        fault: Mutex::new(Fault::None),
        delayed: Mutex::new(None),
    });
    let stores = Stores {
        snapshots: faulty.clone(),
        outbox: memory.clone(),
        catalog: memory,
        leases: None,
    };
    let engine = Engine::start(
        stores,
        Ownership::single_node(ShardMap::new(64).unwrap()),
        options,
    )
    .await
    .unwrap();
    let draft = ProductDraft {
        name: "Widget".into(),
        description: String::new(),
        price_cents: 500,
        sku: "W".into(),
        brand: "Test".into(),
        category: "Test".into(),
    };
    engine.catalog().create(draft).await.unwrap();
    engine.set_stock("W", Some(stock)).await.unwrap();
    engine.cart_add("u@x.io", "W", 2).await.unwrap();
    (engine, faulty)
}

fn keyed(key: &str) -> CheckoutRequest {
    CheckoutRequest {
        idempotency_key: Some(key.into()),
        card: None,
    }
}

#[actix_rt::test]
async fn an_order_stored_without_acknowledgement_stands() {
    let (engine, faulty) = setup(3).await;
    faulty.set(Fault::AppliedButLost);
    let (order, created) = engine.checkout("u@x.io", keyed("k1")).await.unwrap();
    faulty.set(Fault::None);
    assert!(created, "the stored order is the answer");
    assert_eq!(order.items.len(), 1);
    // Its stock stays taken and the cart was cleared: nothing sold twice.
    assert_eq!(engine.stock("W").await.unwrap(), Some(1));
    assert!(engine.cart_view("u@x.io").await.unwrap().is_empty());
    assert_eq!(engine.stores().outbox.depth().await.unwrap(), 1);
}

#[actix_rt::test]
async fn an_unknown_outcome_keeps_the_reservation_and_a_retry_settles_it() {
    let (engine, faulty) = setup(10).await;
    faulty.set(Fault::WritesLost);
    let failed = engine.checkout("u@x.io", keyed("k2")).await;
    assert!(matches!(failed, Err(Error::Unavailable(_))), "{failed:?}");
    assert!(failed.err().is_some_and(|e| e.is_retryable()));
    // The read-back finds no order, but a write in flight could still land: its stock stays
    // reserved (low, never oversold) and the cart is kept for the retry.
    assert_eq!(engine.stock("W").await.unwrap(), Some(8));
    assert_eq!(engine.cart_view("u@x.io").await.unwrap().len(), 1);
    faulty.set(Fault::None);
    let (_, created) = engine.checkout("u@x.io", keyed("k2")).await.unwrap();
    assert!(created);
    // The retry's reservation is the first attempt's hold (same key, same order id): stock holds
    // exactly the one order, nothing reserved twice.
    assert_eq!(engine.stock("W").await.unwrap(), Some(8));
    assert_eq!(
        engine.stores().outbox.depth().await.unwrap(),
        1,
        "one order, one event"
    );
}

#[actix_rt::test]
async fn a_retry_after_a_lost_acknowledgement_returns_the_order_and_takes_its_stock_once() {
    let (engine, faulty) = setup(10).await;
    faulty.set(Fault::WritesLost);
    // The first attempt's order write fails and is not found on reading back...
    assert!(engine.checkout("u@x.io", keyed("k3")).await.is_err());
    faulty.set(Fault::AppliedButLost);
    // ...the retry's lands unacknowledged: read back, it stands.
    let (first, created) = engine.checkout("u@x.io", keyed("k3")).await.unwrap();
    assert!(created);
    faulty.set(Fault::None);
    // A further retry with the same key finds the stored order and releases what it reserved.
    engine.cart_add("u@x.io", "W", 2).await.unwrap();
    let (again, created) = engine.checkout("u@x.io", keyed("k3")).await.unwrap();
    assert!(!created);
    assert_eq!(again.id, first.id);
    // Every attempt held the same reservation: exactly the one order's stock is taken.
    assert_eq!(engine.stock("W").await.unwrap(), Some(8));
}

#[actix_rt::test]
async fn a_retry_overtaken_by_the_first_attempts_late_write_answers_with_that_order() {
    let (engine, faulty) = setup(10).await;
    faulty.set(Fault::Delayed);
    // Attempt 1: its order write is still in flight when the store gives up on it.
    assert!(engine.checkout("u@x.io", keyed("k4")).await.is_err());
    assert_eq!(
        engine.stock("W").await.unwrap(),
        Some(8),
        "kept: the outcome is unknown"
    );
    // Attempt 2 (a retry): attempt 1's order lands just before its own write, which is refused.
    faulty.set(Fault::DelayedLands);
    let (order, created) = engine.checkout("u@x.io", keyed("k4")).await.unwrap();
    faulty.set(Fault::None);
    // The answer is the order that exists (attempt 1's), as a replay; attempt 2's reservation is
    // given back, so stock holds exactly the one order.
    assert!(!created);
    assert_eq!(engine.stock("W").await.unwrap(), Some(8));
    assert_eq!(
        engine.stores().outbox.depth().await.unwrap(),
        1,
        "one order, one event"
    );
    let (again, created) = engine.checkout("u@x.io", keyed("k4")).await.unwrap();
    assert_eq!((again.id, created), (order.id, false));
}

const HOLD_TIMEOUT: Duration = Duration::from_millis(300);

/// An engine whose stock holds time out after [`HOLD_TIMEOUT`].
async fn setup_short_holds(stock: u64) -> (Engine, Arc<Faulty>) {
    let options = EngineOptions {
        stock_hold_timeout: HOLD_TIMEOUT,
        ..EngineOptions::default()
    };
    setup_with(stock, options).await
}

#[actix_rt::test]
async fn an_abandoned_checkouts_stock_comes_back_once_its_hold_times_out() {
    let (engine, faulty) = setup_short_holds(10).await;
    faulty.set(Fault::WritesLost);
    assert!(engine.checkout("u@x.io", keyed("k5")).await.is_err());
    faulty.set(Fault::None);
    assert_eq!(engine.stock("W").await.unwrap(), Some(8), "held: unknown");
    // No retry comes. Once the hold has timed out, reading the stock settles it against the
    // store: no order was stored, so its stock is given back.
    let deadline = Instant::now() + Duration::from_secs(10);
    while engine.stock("W").await.unwrap() != Some(10) {
        assert!(
            Instant::now() < deadline,
            "the abandoned hold was never settled"
        );
        actix_rt::time::sleep(Duration::from_millis(25)).await;
    }
    // A retry after that reserves afresh and buys once.
    let (_, created) = engine.checkout("u@x.io", keyed("k5")).await.unwrap();
    assert!(created);
    assert_eq!(engine.stock("W").await.unwrap(), Some(8));
    actix_rt::time::sleep(HOLD_TIMEOUT * 2).await;
    assert_eq!(
        engine.stock("W").await.unwrap(),
        Some(8),
        "the stored order's stock stays sold after its hold times out"
    );
}

#[actix_rt::test]
async fn a_timed_out_hold_whose_order_did_land_keeps_its_stock() {
    let (engine, faulty) = setup_short_holds(10).await;
    // The order write lands but the checkout cannot tell (nor read it back): holds are kept.
    faulty.set(Fault::AppliedUnreadable);
    assert!(engine.checkout("u@x.io", keyed("k6")).await.is_err());
    // While orders cannot be read, a timed-out hold cannot be settled and stays.
    actix_rt::time::sleep(HOLD_TIMEOUT * 2).await;
    assert_eq!(engine.stock("W").await.unwrap(), Some(8));
    faulty.set(Fault::None);
    // Readable again: the order is found, so its stock is never given back.
    assert_eq!(engine.stock("W").await.unwrap(), Some(8));
    let orders = engine.orders_of("u@x.io").await.unwrap();
    assert_eq!(orders.len(), 1, "the order stands");
}

#[actix_rt::test]
async fn stock_short_only_because_of_timed_out_holds_is_sold() {
    let (engine, faulty) = setup_short_holds(2).await;
    faulty.set(Fault::WritesLost);
    assert!(engine.checkout("u@x.io", keyed("k7")).await.is_err());
    faulty.set(Fault::None);
    actix_rt::time::sleep(HOLD_TIMEOUT * 2).await;
    // Another shopper buys the 2 the abandoned checkout held: the reservation settles the
    // timed-out hold first instead of answering out of stock.
    engine.cart_add("v@x.io", "W", 2).await.unwrap();
    let (_, created) = engine.checkout("v@x.io", keyed("v1")).await.unwrap();
    assert!(created);
    assert_eq!(engine.stock("W").await.unwrap(), Some(0));
}

#[actix_rt::test]
async fn a_full_list_of_holds_settles_timed_out_ones_before_forgetting_any() {
    let (engine, faulty) = setup_short_holds(10_000).await;
    let holds = emporium_engine::inventory::MAX_HOLDS;
    // As many abandoned checkouts as a SKU remembers holds: each keeps its 2 reserved.
    faulty.set(Fault::WritesLost);
    for i in 0..holds {
        let user = format!("gone{i}@x.io");
        engine.cart_add(&user, "W", 2).await.unwrap();
        assert!(engine.checkout(&user, keyed("k")).await.is_err());
    }
    faulty.set(Fault::None);
    // As many buyers again, their carts filled (which reads the stock) before the holds time out.
    let buyers: Vec<String> = (0..holds).map(|i| format!("buyer{i}@x.io")).collect();
    for user in &buyers {
        engine.cart_add(user, "W", 2).await.unwrap();
    }
    actix_rt::time::sleep(HOLD_TIMEOUT * 2).await;
    // Each buyer's new hold meets a full list, whose timed-out holds are settled first instead
    // of the oldest being forgotten with its stock still taken.
    for user in &buyers {
        assert!(engine.checkout(user, keyed("k")).await.unwrap().1);
    }
    let sold = 2 * holds as u64;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = engine.stock("W").await.unwrap();
        if left == Some(10_000 - sold) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "stock {left:?}: abandoned holds were forgotten unsettled"
        );
        actix_rt::time::sleep(Duration::from_millis(25)).await;
    }
}
