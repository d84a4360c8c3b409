//! The engine handle: the one way into the domain. Routes every command through the shard map to
//! the owning actor, activating it if needed, and exposes the queries the API needs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use actix::MailboxError;
use emporium_cluster::{Admission, Forwarder, Ownership, RouteError, ShardId};
use emporium_persistence::Stores;
use tokio::sync::Notify;

use crate::actor::{Behaviour, Effect, Envelope, Fence, KindStats, Registry};
use crate::catalog::Catalog;
use crate::entities::{CartEntity, InventoryEntity, OrderEntity, UserEntity};
use crate::forward::{ForwardStats, NoReply};
use crate::gate::Gate;
use crate::Error;

/// How many times a command is re-sent when it meets a passivating or stopped actor.
const DELIVERY_ATTEMPTS: usize = 5;

/// How long a command whose forwarded attempt got no reply is sent again (when that is safe):
/// longer than a silent owner's claim lasts by default, so its successor answers.
const RESEND_BOUND: Duration = Duration::from_secs(20);

#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Actors idle this long passivate.
    pub idle_timeout: Duration,
    /// Above this many live actors (all kinds), the least recently used are passivated.
    pub max_active_actors: usize,
    /// ISO 4217 code of every price.
    pub currency: String,
    /// Emails whose accounts get the admin role.
    pub admin_emails: Vec<String>,
    /// A stock hold older than this belongs to a checkout that has ended without giving it back
    /// (its node died, or its order write had an unknown outcome and was never retried): it is
    /// settled against the store. A checkout gives up before writing its order after half of it.
    pub stock_hold_timeout: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(600),
            max_active_actors: 100_000,
            currency: "USD".into(),
            admin_emails: Vec::new(),
            stock_hold_timeout: Duration::from_secs(120),
        }
    }
}

/// A cheap-to-clone handle to the engine of this node.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub stores: Stores,
    pub ownership: Ownership,
    /// How commands reach the owners of shards this node does not own (cluster mode).
    pub forwarder: OnceLock<Arc<dyn Forwarder>>,
    pub forwards: ForwardStats,
    pub catalog: Catalog,
    pub options: EngineOptions,
    pub carts: Registry<CartEntity>,
    pub orders: Registry<OrderEntity>,
    pub inventory: Registry<InventoryEntity>,
    pub users: Registry<UserEntity>,
    pub outbox_notify: Notify,
    pub serving: AtomicBool,
    /// Password hashing and verification (register, login).
    pub passwords: Gate,
}

/// Live-actor counters per kind.
pub struct ActorStats<'a> {
    pub kinds: [(&'static str, &'a KindStats); 4],
}

impl Engine {
    /// Opens the engine on `stores`, serving the shards `ownership` gives this node.
    pub async fn start(
        stores: Stores,
        ownership: Ownership,
        options: EngineOptions,
    ) -> Result<Self, Error> {
        let catalog = Catalog::load(stores.catalog.clone()).await?;
        let engine = Self {
            inner: Arc::new(Inner {
                stores,
                ownership,
                forwarder: OnceLock::new(),
                forwards: ForwardStats::default(),
                catalog,
                options,
                carts: Registry::default(),
                orders: Registry::default(),
                inventory: Registry::default(),
                users: Registry::default(),
                outbox_notify: Notify::new(),
                serving: AtomicBool::new(true),
                passwords: Gate::per_core("password checks"),
            }),
        };
        actix::spawn(idle_sweep(Arc::downgrade(&engine.inner)));
        Ok(engine)
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    pub fn options(&self) -> &EngineOptions {
        &self.inner.options
    }

    pub fn stores(&self) -> &Stores {
        &self.inner.stores
    }

    pub fn catalog(&self) -> &Catalog {
        &self.inner.catalog
    }

    pub fn ownership(&self) -> &Ownership {
        &self.inner.ownership
    }

    /// Whether this node takes new commands (false once a single node's shutdown began; a
    /// cluster member hands its shards off instead, and forwards what still arrives).
    pub fn is_serving(&self) -> bool {
        self.inner.serving.load(Ordering::Relaxed)
    }

    /// Stops taking new commands; commands already in actors finish.
    pub fn stop_serving(&self) {
        self.inner.serving.store(false, Ordering::Relaxed);
    }

    /// Sets how commands reach other nodes (once, when the cluster starts).
    pub fn set_forwarder(&self, forwarder: Arc<dyn Forwarder>) {
        if self.inner.forwarder.set(forwarder).is_err() {
            tracing::warn!("a forwarder was already set; keeping the first");
        }
    }

    pub fn forward_stats(&self) -> &ForwardStats {
        &self.inner.forwards
    }

    /// Drops the live actors placed on `shards` (their state is durable): a handoff, or a shard
    /// this node found it no longer owns. Returns how many were asked to passivate.
    pub fn passivate_shards(&self, shards: &std::collections::HashSet<ShardId>) -> usize {
        let i = &self.inner;
        i.carts.passivate_shards(shards)
            + i.orders.passivate_shards(shards)
            + i.inventory.passivate_shards(shards)
            + i.users.passivate_shards(shards)
    }

    pub fn actor_stats(&self) -> ActorStats<'_> {
        let i = &self.inner;
        ActorStats {
            kinds: [
                ("cart", i.carts.stats()),
                ("order", i.orders.stats()),
                ("inventory", i.inventory.stats()),
                ("user", i.users.stats()),
            ],
        }
    }

    /// Resolves when an outbox write happened since the last call (the relay's wake-up).
    pub async fn outbox_changed(&self) {
        self.inner.outbox_notify.notified().await;
    }

    pub(crate) fn outbox_written(&self) {
        self.inner.outbox_notify.notify_one();
    }

    /// Sends a command to the actor owning entity `key` (placed by `shard_key`), here or on the
    /// node that owns its shard.
    pub(crate) async fn call<B: Behaviour>(
        &self,
        shard_key: &str,
        key: &str,
        cmd: B::Command,
    ) -> Result<B::Reply, Error> {
        let shard = self.inner.ownership.shard_of(shard_key.as_bytes());
        self.call_in::<B>(shard, key, cmd, 0).await
    }

    /// [`Engine::call`] for a known shard; `hops` counts the nodes that forwarded it already.
    pub(crate) async fn call_in<B: Behaviour>(
        &self,
        shard: ShardId,
        key: &str,
        cmd: B::Command,
        hops: u8,
    ) -> Result<B::Reply, Error> {
        if !self.is_serving() {
            return Err(Error::Unavailable("node is shutting down".into()));
        }
        let mut retried = false;
        let mut resend_until: Option<Instant> = None;
        loop {
            let admission = self
                .inner
                .ownership
                .admit(shard, crate::actor::is_nested())
                .await
                .map_err(|e| match e {
                    RouteError::InMotion { .. } | RouteError::TooManyHeld => {
                        Error::Unavailable(e.to_string())
                    }
                })?;
            match admission {
                Admission::Local(guard) => {
                    let fence = Fence {
                        shard,
                        epoch: guard.epoch(),
                    };
                    let reply = self.call_local::<B>(key, cmd, fence).await;
                    drop(guard);
                    return reply;
                }
                Admission::Remote { owner } => {
                    match self.forward::<B>(owner, shard, key, &cmd, hops).await {
                        Err(NoReply::NotSent) if !retried => {
                            // The owner could not be reached: give the table a moment to learn
                            // of a new owner, then try once more.
                            retried = true;
                            self.inner
                                .ownership
                                .changed_within(Duration::from_secs(1))
                                .await;
                        }
                        Err(NoReply::NotSent) => {
                            return Err(Error::Unavailable(format!(
                                "node {owner}, which owns this entity, cannot be reached"
                            )))
                        }
                        // Sent, and the owner fell silent (frozen, partitioned): a command that
                        // is safe to send again (an add with its operation id, a read, a set) is
                        // sent again — to a new owner once the silent one's claim expires — so
                        // the client gets its real outcome rather than a guess.
                        Err(NoReply::Unknown(reason)) => {
                            let deadline =
                                *resend_until.get_or_insert(Instant::now() + RESEND_BOUND);
                            if !B::resend_safe(&cmd) || Instant::now() >= deadline {
                                return Err(Error::Unavailable(reason));
                            }
                            tracing::debug!(owner, %reason, "no reply from the owner; sending again");
                            self.inner
                                .ownership
                                .changed_within(Duration::from_secs(1))
                                .await;
                        }
                        // The node it reached did not own the shard either (its table was behind
                        // a handoff): look again once the tables have caught up.
                        Ok(Err(Error::NotOwner { .. })) if !retried => {
                            retried = true;
                            self.inner
                                .ownership
                                .changed_within(Duration::from_millis(500))
                                .await;
                        }
                        Ok(reply) => return reply,
                    }
                }
            }
        }
    }

    /// Delivers a command to the local actor of `key`, activating it if needed.
    async fn call_local<B: Behaviour>(
        &self,
        key: &str,
        cmd: B::Command,
        fence: Fence,
    ) -> Result<B::Reply, Error> {
        let registry = B::registry(self);
        for _ in 0..DELIVERY_ATTEMPTS {
            let envelope = Envelope::<B> {
                cmd: cmd.clone(),
                span: tracing::Span::current(),
                fence,
            };
            let (reply, activated) = registry.send(self, key, envelope);
            if activated {
                self.enforce_actor_cap();
            }
            match reply.await {
                Err(MailboxError::Closed) | Ok(Err(Error::Passivated)) => {
                    tokio::task::yield_now().await;
                }
                Err(MailboxError::Timeout) => {
                    return Err(Error::Unavailable("actor timed out".into()))
                }
                Ok(result) => return result,
            }
        }
        Err(Error::Unavailable(format!(
            "{} {key} kept passivating",
            B::KIND
        )))
    }

    fn enforce_actor_cap(&self) {
        let i = &self.inner;
        let total = i.carts.len() + i.orders.len() + i.inventory.len() + i.users.len();
        let cap = i.options.max_active_actors.max(1);
        if total <= cap {
            return;
        }
        // Free a tenth of the cap at once so the sweep does not run on every activation.
        let excess = total - cap + cap / 10;
        let share = |n: usize| excess * n / total.max(1) + 1;
        i.carts.passivate_oldest(share(i.carts.len()));
        i.orders.passivate_oldest(share(i.orders.len()));
        i.inventory.passivate_oldest(share(i.inventory.len()));
        i.users.passivate_oldest(share(i.users.len()));
    }

    /// Runs an effect of a committed write. Effects are idempotent in intent and retried a few
    /// times; one that still fails is logged for an operator (the write it follows is durable).
    pub(crate) async fn run_effect(&self, effect: Effect) {
        match effect {
            Effect::ReleaseStock {
                sku,
                product_id,
                quantity,
                hold,
            } => {
                let current = product_id
                    .and_then(|id| self.catalog().snapshot().get(&id).map(|p| p.sku.clone()));
                let sku = current.unwrap_or(sku);
                for attempt in 1..=3 {
                    match self.release_stock(&sku, quantity, hold).await {
                        Ok(()) => return,
                        Err(e) => {
                            tracing::warn!(%sku, quantity, attempt, error = %e, "releasing stock failed");
                            tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
                        }
                    }
                }
                tracing::error!(%sku, quantity, "stock release abandoned; fix by hand");
            }
        }
    }
}

/// Passivates the actors idle for the engine's idle timeout, checking every half of it (between
/// 100 ms and 30 s), until the engine is dropped. One sweep per engine instead of a timer per
/// actor: a sweep over a million live actors costs a few milliseconds; a million timers cost
/// hundreds of megabytes.
async fn idle_sweep(inner: std::sync::Weak<Inner>) {
    let Some(idle) = inner.upgrade().map(|i| i.options.idle_timeout) else {
        return;
    };
    let every = (idle / 2).clamp(Duration::from_millis(100), Duration::from_secs(30));
    loop {
        tokio::time::sleep(every).await;
        let Some(i) = inner.upgrade() else {
            return;
        };
        i.carts.passivate_idle(idle);
        i.orders.passivate_idle(idle);
        i.inventory.passivate_idle(idle);
        i.users.passivate_idle(idle);
    }
}
