//! What a shopper does next, the request it sends, and what each acknowledged write leaves in the
//! shopper's model (what `--verify` later looks for).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use actix_rt::time::sleep;
use serde_json::{json, Value};

use super::client::{Client, Failure, Request};
use super::opts::{Options, Scenario};
use super::setup::{get, post, Setup};
use super::stats::{Outcome, Stats};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Browse,
    ViewCart,
    Add,
    Checkout,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Browse => "browse",
            Op::ViewCart => "view-cart",
            Op::Add => "add",
            Op::Checkout => "checkout",
        }
    }
}

/// An order a checkout acknowledged (201): its id and what it holds (sku → quantity).
#[derive(Clone, Debug)]
pub struct AckedOrder {
    pub id: String,
    pub items: BTreeMap<String, u64>,
}

/// One shopper as the load generator knows it from the answers it got.
#[derive(Default)]
pub struct UserModel {
    busy: bool,
    /// Units acknowledged into the cart since its last acknowledged checkout.
    pub cart_units: u64,
    /// Checkout scenario: units to add before the next checkout.
    target_units: u64,
    /// Every acknowledged add over the run: sku → units.
    pub acked_adds: BTreeMap<String, u64>,
    pub acked_orders: Vec<AckedOrder>,
    /// Writes that got no answer or a 5xx: they may or may not have happened.
    pub uncertain_writes: u64,
    /// The Idempotency-Key of a checkout whose outcome is unknown: the next checkout sends it
    /// again, so it returns that order if it was made.
    pending_key: Option<String>,
    checkouts_started: u64,
}

/// Everything the shoppers share during a run (one thread: `Rc` and `RefCell`).
pub struct World {
    pub opts: Options,
    pub client: Rc<Client>,
    pub setup: Setup,
    pub users: Vec<RefCell<UserModel>>,
    pub stats: RefCell<Stats>,
    pub stop: Rc<Cell<bool>>,
    pub started: Instant,
    issued: Cell<u64>,
    rng: Cell<u64>,
    next_user: Cell<usize>,
}

impl World {
    pub fn new(opts: Options, client: Rc<Client>, setup: Setup, stop: Rc<Cell<bool>>) -> Self {
        let users = (0..setup.shoppers.len())
            .map(|_| RefCell::new(UserModel::default()))
            .collect();
        let seed = opts.seed;
        Self {
            opts,
            client,
            setup,
            users,
            stats: RefCell::default(),
            stop,
            started: Instant::now(),
            issued: Cell::new(0),
            rng: Cell::new(seed ^ 0x9e37_79b9_7f4a_7c15),
            next_user: Cell::new(0),
        }
    }

    /// SplitMix64: the shoppers' choices, reproducible with `--seed`.
    pub fn random(&self) -> u64 {
        let mut z = self.rng.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        self.rng.set(z);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn pick(&self, n: usize) -> usize {
        (self.random() % n.max(1) as u64) as usize
    }

    /// Claims the right to send one more request: false once stopped or at `--max-requests`.
    pub fn claim_request(&self) -> bool {
        if self.stop.get() {
            return false;
        }
        let n = self.issued.get();
        if self.opts.max_requests.is_some_and(|max| n >= max) {
            self.stop.set(true);
            return false;
        }
        self.issued.set(n + 1);
        true
    }

    /// A shopper no other request is using (waits while all are busy).
    async fn claim_user(&self) -> Option<usize> {
        let n = self.users.len();
        if n == 0 {
            return None;
        }
        loop {
            let start = self.next_user.get();
            for k in 0..n {
                let i = (start + k) % n;
                let mut u = self.users[i].borrow_mut();
                if !u.busy {
                    u.busy = true;
                    self.next_user.set(i + 1);
                    return Some(i);
                }
            }
            sleep(Duration::from_millis(1)).await;
        }
    }

    fn next_op(&self, u: &mut UserModel) -> Op {
        match self.opts.scenario {
            Scenario::Browse => Op::Browse,
            Scenario::AddToCart => Op::Add,
            Scenario::Checkout => {
                if u.target_units == 0 {
                    u.target_units = 1 + self.random() % 3;
                }
                if u.pending_key.is_some() || u.cart_units >= u.target_units {
                    Op::Checkout
                } else {
                    Op::Add
                }
            }
            // The other 6 of 16 (browsing is drawn in `step`): view cart 3, add 2, checkout 1.
            Scenario::Mixed => match self.random() % 6 {
                0..=2 => Op::ViewCart,
                3..=4 => Op::Add,
                _ if u.cart_units == 0 && u.pending_key.is_none() => Op::Add,
                _ => Op::Checkout,
            },
        }
    }

    fn browse_request(&self) -> Request<'static> {
        let s = &self.setup;
        let path = match self.random() % 3 {
            0 => {
                let pages = s.catalog_ids.len().div_ceil(20).max(1);
                format!("/api/products?page={}&limit=20", 1 + self.pick(pages))
            }
            1 => format!(
                "/api/products/{}",
                s.catalog_ids
                    .get(self.pick(s.catalog_ids.len()))
                    .map_or("none", |id| id)
            ),
            _ => format!(
                "/api/products?search={}&limit=20",
                s.search_words[self.pick(s.search_words.len())]
            ),
        };
        get(path, None)
    }

    /// One request of the scenario whose latency counts from `intended` (the time it was due:
    /// the arrival time in open loop, the previous answer in closed loop).
    pub async fn step(&self, intended: Instant) {
        // Browsing needs no shopper, so it never waits for one (in `mixed` too).
        let browse = match self.opts.scenario {
            Scenario::Browse => true,
            Scenario::Mixed => self.random() % 16 < 10,
            _ => false,
        };
        if browse {
            let req = self.browse_request();
            let result = self.client.send(&req).await;
            self.record(Op::Browse, &result, intended);
            return;
        }
        let Some(i) = self.claim_user().await else {
            return;
        };
        let op = {
            let mut u = self.users[i].borrow_mut();
            self.next_op(&mut u)
        };
        let shopper = &self.setup.shoppers[i];
        let token = Some(shopper.token.as_str());
        match op {
            Op::Browse => {
                let req = self.browse_request();
                let result = self.client.send(&req).await;
                self.record(op, &result, intended);
            }
            Op::ViewCart => {
                let result = self.client.send(&get("/api/cart".into(), token)).await;
                self.record(op, &result, intended);
            }
            Op::Add => {
                let sku = self.setup.buy[self.pick(self.setup.buy.len())].sku.clone();
                let body = json!({"productSku": sku, "quantity": 1});
                let result = self
                    .client
                    .send(&post("/api/cart/items", token, &body))
                    .await;
                self.record(op, &result, intended);
                let mut u = self.users[i].borrow_mut();
                match &result {
                    Ok(r) if (200..300).contains(&r.status) => {
                        u.cart_units += 1;
                        *u.acked_adds.entry(sku).or_default() += 1;
                    }
                    Ok(r) if r.status < 500 => {}
                    _ => u.uncertain_writes += 1,
                }
            }
            Op::Checkout => {
                let key = {
                    let mut u = self.users[i].borrow_mut();
                    u.checkouts_started += 1;
                    let fresh = format!("load-{}-{i}-{}", self.setup.run_id, u.checkouts_started);
                    u.pending_key.clone().unwrap_or(fresh)
                };
                let mut req = post("/api/checkout", token, &Value::Null);
                req.json = None;
                req.headers.push(("Idempotency-Key", key.clone()));
                req.retry_safe = true;
                let result = self.client.send(&req).await;
                self.record(op, &result, intended);
                let mut u = self.users[i].borrow_mut();
                match &result {
                    Ok(r) if r.status == 201 => {
                        let order: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
                        u.acked_orders.push(acked_order(&order));
                        u.cart_units = 0;
                        u.target_units = 0;
                        u.pending_key = None;
                    }
                    Ok(r) if r.status < 500 => {
                        // 400 empty cart, 409 out of stock: nothing was bought.
                        u.cart_units = 0;
                        u.target_units = 0;
                        u.pending_key = None;
                    }
                    _ => {
                        u.uncertain_writes += 1;
                        u.pending_key = Some(key);
                    }
                }
            }
        }
        self.users[i].borrow_mut().busy = false;
    }

    fn record(&self, op: Op, result: &Result<super::conn::Response, Failure>, intended: Instant) {
        let latency = intended.elapsed();
        let mut stats = self.stats.borrow_mut();
        match result {
            Ok(r) => {
                stats.record(op.name(), &Outcome::Status(r.status), latency);
                if !(200..300).contains(&r.status) {
                    let body =
                        String::from_utf8_lossy(&r.body[..r.body.len().min(160)]).into_owned();
                    stats.note_failure(format!("{} -> {} {body}", op.name(), r.status));
                }
            }
            Err(f) => {
                stats.record(op.name(), &Outcome::Failed(f.class()), latency);
                stats.note_failure(format!("{} -> {f}", op.name()));
            }
        }
    }
}

/// The id and lines (sku → quantity) of an order as the API returned it.
pub fn acked_order(order: &Value) -> AckedOrder {
    AckedOrder {
        id: order["id"].as_str().unwrap_or_default().to_owned(),
        items: order_items(order),
    }
}

pub fn order_items(order: &Value) -> BTreeMap<String, u64> {
    let mut items = BTreeMap::new();
    for line in order["items"].as_array().into_iter().flatten() {
        if let (Some(sku), Some(q)) = (line["sku"].as_str(), line["quantity"].as_u64()) {
            *items.entry(sku.to_owned()).or_default() += q;
        }
    }
    items
}
