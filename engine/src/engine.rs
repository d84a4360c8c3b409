//! The engine handle: the one way into the domain. Routes every command through the shard map to
//! the owning actor, activating it if needed, and exposes the queries the API needs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use actix::MailboxError;
use emporium_cluster::{Placement, ShardMap};
use emporium_persistence::Stores;
use tokio::sync::Notify;

use crate::actor::{Behaviour, Effect, Envelope, KindStats, Registry};
use crate::catalog::Catalog;
use crate::entities::{CartEntity, InventoryEntity, OrderEntity, UserEntity};
use crate::gate::Gate;
use crate::Error;

/// How many times a command is re-sent when it meets a passivating or stopped actor.
const DELIVERY_ATTEMPTS: usize = 5;

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
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(600),
            max_active_actors: 100_000,
            currency: "USD".into(),
            admin_emails: Vec::new(),
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
    pub placement: RwLock<ShardMap>,
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
    /// Opens the engine on `stores`, serving the shards `placement` gives this node.
    pub async fn start(
        stores: Stores,
        placement: ShardMap,
        options: EngineOptions,
    ) -> Result<Self, Error> {
        let catalog = Catalog::load(stores.catalog.clone()).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                stores,
                placement: RwLock::new(placement),
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
        })
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

    /// Whether this node serves its shards (false once shutdown began).
    pub fn is_serving(&self) -> bool {
        self.inner.serving.load(Ordering::Relaxed)
    }

    /// Stops taking new commands; commands already in actors finish.
    pub fn stop_serving(&self) {
        self.inner.serving.store(false, Ordering::Relaxed);
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

    /// Checks that this node owns the shard of `shard_key` now.
    fn route(&self, shard_key: &str) -> Result<(), Error> {
        if !self.is_serving() {
            return Err(Error::Unavailable("node is shutting down".into()));
        }
        let placement = match self.inner.placement.read() {
            Ok(map) => map.place(shard_key.as_bytes()),
            Err(poisoned) => poisoned.into_inner().place(shard_key.as_bytes()),
        };
        match placement {
            Placement::Local { .. } => Ok(()),
            Placement::Remote { shard, owner, .. } => Err(Error::NotOwner {
                shard: shard.0,
                owner,
            }),
        }
    }

    /// Sends a command to the actor owning entity `key` (placed by `shard_key`).
    pub(crate) async fn call<B: Behaviour>(
        &self,
        shard_key: &str,
        key: &str,
        cmd: B::Command,
    ) -> Result<B::Reply, Error> {
        self.route(shard_key)?;
        let registry = B::registry(self);
        for _ in 0..DELIVERY_ATTEMPTS {
            let (reply, activated) = registry.send(
                self,
                key,
                Envelope::<B>(cmd.clone(), tracing::Span::current()),
            );
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
            } => {
                let current = product_id
                    .and_then(|id| self.catalog().snapshot().get(&id).map(|p| p.sku.clone()));
                let sku = current.unwrap_or(sku);
                for attempt in 1..=3 {
                    match self.release_stock(&sku, quantity).await {
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
