use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::dev::Request;
use actix::{Actor, Addr};
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

use emporium_cluster::ShardId;

use super::entity::{EntityActor, Envelope, Passivate};
use super::Behaviour;
use crate::Engine;

/// Activation counters of one entity kind, read by `/metrics`.
#[derive(Debug, Default)]
pub struct KindStats {
    active: AtomicI64,
    activated: AtomicU64,
    passivated: AtomicU64,
}

impl KindStats {
    pub fn active(&self) -> i64 {
        self.active.load(Ordering::Relaxed)
    }
    pub fn activated_total(&self) -> u64 {
        self.activated.load(Ordering::Relaxed)
    }
    pub fn passivated_total(&self) -> u64 {
        self.passivated.load(Ordering::Relaxed)
    }
    pub(crate) fn deactivated(&self) {
        self.active.fetch_sub(1, Ordering::Relaxed);
        self.passivated.fetch_add(1, Ordering::Relaxed);
    }
}

/// Shared between an actor and its registry entry.
pub(crate) struct Slot {
    pub generation: u64,
    /// The shard the entity is placed on (an order's is its user's), so a handoff finds it.
    pub shard: ShardId,
    born: Instant,
    last_active_ms: AtomicU64,
}

impl Slot {
    pub fn touch(&self) {
        let ms = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_active_ms.store(ms, Ordering::Relaxed);
    }

    pub fn idle_for(&self) -> Duration {
        let now = self.born.elapsed();
        now.saturating_sub(Duration::from_millis(
            self.last_active_ms.load(Ordering::Relaxed),
        ))
    }
}

struct Entry_<B: Behaviour> {
    addr: Addr<EntityActor<B>>,
    slot: Arc<Slot>,
}

/// The live actors of one kind, by entity key.
pub(crate) struct Registry<B: Behaviour> {
    live: DashMap<String, Entry_<B>, foldhash::fast::RandomState>,
    generations: AtomicU64,
    stats: KindStats,
}

impl<B: Behaviour> Default for Registry<B> {
    fn default() -> Self {
        Self {
            live: DashMap::default(),
            generations: AtomicU64::new(0),
            stats: KindStats::default(),
        }
    }
}

impl<B: Behaviour> Registry<B> {
    pub fn stats(&self) -> &KindStats {
        &self.stats
    }

    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// Sends `msg` to the live actor for `key`, activating one (on the current arbiter) if there
    /// is none. The actor is sent to under the map's guard, so its address is not cloned (two
    /// allocations) per message. Returns whether the actor was activated now.
    pub fn send(
        &self,
        engine: &Engine,
        key: &str,
        msg: Envelope<B>,
    ) -> (Request<EntityActor<B>, Envelope<B>>, bool) {
        if let Some(entry) = self.live.get(key) {
            return (entry.addr.send(msg), false);
        }
        match self.live.entry(key.to_owned()) {
            Entry::Occupied(e) => (e.get().addr.send(msg), false),
            Entry::Vacant(v) => {
                let slot = Arc::new(Slot {
                    generation: self.generations.fetch_add(1, Ordering::Relaxed),
                    shard: msg.fence.shard,
                    born: Instant::now(),
                    last_active_ms: AtomicU64::new(0),
                });
                let addr =
                    EntityActor::<B>::new(key.to_owned(), engine.clone(), slot.clone()).start();
                let reply = addr.send(msg);
                v.insert(Entry_ { addr, slot });
                self.stats.active.fetch_add(1, Ordering::Relaxed);
                self.stats.activated.fetch_add(1, Ordering::Relaxed);
                (reply, true)
            }
        }
    }

    /// Forgets `key` if it is still the activation of that generation.
    pub fn remove(&self, key: &str, generation: u64) {
        self.live
            .remove_if(key, |_, e| e.slot.generation == generation);
    }

    /// Asks every actor placed on one of `shards` to passivate (a handoff: their state is durable;
    /// the next owner activates them from the store).
    pub fn passivate_shards(&self, shards: &std::collections::HashSet<ShardId>) -> usize {
        let mut n = 0;
        for entry in self.live.iter() {
            if shards.contains(&entry.slot.shard) {
                entry.addr.do_send(Passivate {
                    idle_for: Duration::ZERO,
                });
                n += 1;
            }
        }
        n
    }

    /// Asks the `n` least recently used actors to passivate.
    pub fn passivate_oldest(&self, n: usize) {
        let mut by_age: Vec<(Duration, Addr<EntityActor<B>>)> = self
            .live
            .iter()
            .map(|e| (e.slot.idle_for(), e.addr.clone()))
            .collect();
        by_age.sort_by_key(|entry| std::cmp::Reverse(entry.0));
        for (_, addr) in by_age.into_iter().take(n) {
            addr.do_send(Passivate {
                idle_for: Duration::ZERO,
            });
        }
    }

    /// Asks every actor idle at least `idle` to passivate (each checks again when it gets the
    /// message). Returns how many were asked.
    pub fn passivate_idle(&self, idle: Duration) -> usize {
        let mut n = 0;
        for entry in self.live.iter() {
            if entry.slot.idle_for() >= idle {
                entry.addr.do_send(Passivate { idle_for: idle });
                n += 1;
            }
        }
        n
    }
}
