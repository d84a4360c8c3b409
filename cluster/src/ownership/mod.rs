//! This node's shard table: the [`ShardState`] of every shard, the commands in flight on each
//! (so a handoff completes only when they reach zero), the requests held while a shard is in
//! motion, and the deadline of this node's claim (its lease, on the monotonic clock).
//!
//! The engine asks [`Ownership::admit`] before every entity command: `Local` comes with a guard
//! that counts the command in flight until it is dropped; `Remote` names the owner to forward to;
//! a shard in motion holds the caller until the table changes (bounded in time and count), then
//! answers [`RouteError::InMotion`] (a retryable 503).

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};

use crate::handoff::{self, Action, Event, Route, ShardState};
use crate::shard_map::{Epoch, NodeId, ShardId, ShardMap};

/// Bounds on held requests.
#[derive(Debug, Clone, Copy)]
pub struct HoldOptions {
    /// A request for a shard in motion waits at most this long for its new owner.
    pub timeout: Duration,
    /// At most this many requests wait at once; beyond, they are refused at once (retryable).
    pub max_held: usize,
}

impl Default for HoldOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            max_held: 10_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("shard {shard} is moving between nodes; retry")]
    InMotion { shard: u32 },
    #[error("too many requests are waiting for shards in motion; retry")]
    TooManyHeld,
}

/// Where an admitted command runs.
#[derive(Debug)]
pub enum Admission<'a> {
    Local(LocalGuard<'a>),
    Remote { owner: u32 },
}

/// A command admitted on this node; counted in flight until dropped.
#[derive(Debug)]
pub struct LocalGuard<'a> {
    table: Option<&'a Inner>,
    shard: ShardId,
    epoch: Epoch,
}

impl LocalGuard<'_> {
    pub fn shard(&self) -> ShardId {
        self.shard
    }
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }
}

impl Drop for LocalGuard<'_> {
    fn drop(&mut self) {
        if let Some(inner) = self.table {
            if let Some(slot) = inner.slots.get(self.shard.0 as usize) {
                if slot.inflight.fetch_sub(1, Ordering::AcqRel) == 1 {
                    inner.drained.notify_waiters();
                }
            }
        }
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct OwnershipStats {
    pub held_now: AtomicUsize,
    pub held_total: AtomicU64,
    pub hold_timeouts: AtomicU64,
    pub fenced_writes: AtomicU64,
}

#[derive(Debug)]
struct Slot {
    state: Mutex<ShardState>,
    inflight: AtomicU32,
}

#[derive(Debug)]
struct Inner {
    map: ShardMap,
    /// One node owning everything at epoch 0: no table, no counting, nothing to fence.
    single: bool,
    ordinal: u32,
    generation: AtomicU64,
    slots: Vec<Slot>,
    base: Instant,
    /// Milliseconds since `base` until which this node's claim holds.
    claim_until_ms: AtomicU64,
    changes: watch::Sender<u64>,
    drained: Notify,
    hold: HoldOptions,
    stats: OwnershipStats,
}

/// A cheap-to-clone handle to the shard table.
#[derive(Debug, Clone)]
pub struct Ownership(Arc<Inner>);

impl Ownership {
    /// The embedded default: this node owns every shard, forever, at epoch 0.
    pub fn single_node(map: ShardMap) -> Self {
        Self::build(map, true, 0, HoldOptions::default())
    }

    /// A cluster member's table: every shard unknown until the control loop reads the store.
    pub fn cluster(map: ShardMap, ordinal: u32, hold: HoldOptions) -> Self {
        Self::build(map, false, ordinal, hold)
    }

    fn build(map: ShardMap, single: bool, ordinal: u32, hold: HoldOptions) -> Self {
        let initial = if single {
            ShardState::Serving { epoch: Epoch(0) }
        } else {
            ShardState::Unknown
        };
        Self(Arc::new(Inner {
            map,
            single,
            ordinal,
            generation: AtomicU64::new(0),
            slots: (0..map.shard_count())
                .map(|_| Slot {
                    state: Mutex::new(initial),
                    inflight: AtomicU32::new(0),
                })
                .collect(),
            base: Instant::now(),
            claim_until_ms: AtomicU64::new(if single { u64::MAX } else { 0 }),
            changes: watch::channel(0).0,
            drained: Notify::new(),
            hold,
            stats: OwnershipStats::default(),
        }))
    }

    pub fn map(&self) -> ShardMap {
        self.0.map
    }

    pub fn is_single_node(&self) -> bool {
        self.0.single
    }

    pub fn stats(&self) -> &OwnershipStats {
        &self.0.stats
    }

    pub fn me(&self) -> NodeId {
        NodeId {
            ordinal: self.0.ordinal,
            generation: self.0.generation.load(Ordering::Acquire),
        }
    }

    /// Set once the store registered this node's generation.
    pub fn set_generation(&self, generation: u64) {
        self.0.generation.store(generation, Ordering::Release);
    }

    pub fn shard_of(&self, key: &[u8]) -> ShardId {
        self.0.map.shard_of(key)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.0.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether this node's claim holds now.
    pub fn claim_valid(&self) -> bool {
        self.now_ms() < self.0.claim_until_ms.load(Ordering::Acquire)
    }

    /// Extends this node's claim to `until` (the time its last successful renewal was sent, plus
    /// the lease minus a safety margin).
    pub fn set_claim_until(&self, until: Instant) {
        let ms = u64::try_from(until.saturating_duration_since(self.0.base).as_millis())
            .unwrap_or(u64::MAX);
        self.0.claim_until_ms.store(ms, Ordering::Release);
        self.notify();
    }

    /// The state of one shard.
    pub fn state(&self, shard: ShardId) -> ShardState {
        self.0
            .slots
            .get(shard.0 as usize)
            .map_or(ShardState::Unknown, |slot| lock(&slot.state))
    }

    pub fn states(&self) -> Vec<ShardState> {
        self.0.slots.iter().map(|s| lock(&s.state)).collect()
    }

    pub fn inflight(&self, shard: ShardId) -> u32 {
        self.0
            .slots
            .get(shard.0 as usize)
            .map_or(0, |s| s.inflight.load(Ordering::Acquire))
    }

    /// Feeds an event to a shard's state machine; returns what the control loop must do.
    pub fn apply(&self, shard: ShardId, event: Event) -> Option<Action> {
        let slot = self.0.slots.get(shard.0 as usize)?;
        let mut state = slot
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (next, action) = handoff::step(self.me(), *state, event);
        let changed = next != *state;
        *state = next;
        drop(state);
        if changed {
            self.notify();
        }
        action
    }

    /// Wakes every held request to look again.
    pub fn notify(&self) {
        self.0.changes.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Whether a command admitted at `epoch` may write now (design rule 4: only the current
    /// owner, while its claim holds). Counts the refusals.
    pub fn may_write(&self, shard: ShardId, epoch: Epoch) -> bool {
        if self.0.single {
            return true;
        }
        let ok = self.state(shard).may_write(epoch, self.claim_valid());
        if !ok {
            self.0.stats.fenced_writes.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// Counts a write the store refused as stale.
    pub fn record_fenced_write(&self) {
        self.0.stats.fenced_writes.fetch_add(1, Ordering::Relaxed);
    }

    /// Admits a command for `shard`: here, at the owner, or after holding it while the shard is
    /// in motion.
    pub async fn admit(&self, shard: ShardId, nested: bool) -> Result<Admission<'_>, RouteError> {
        let inner = &*self.0;
        if inner.single {
            return Ok(Admission::Local(LocalGuard {
                table: None,
                shard,
                epoch: Epoch(0),
            }));
        }
        let Some(slot) = inner.slots.get(shard.0 as usize) else {
            return Err(RouteError::InMotion { shard: shard.0 });
        };
        let mut changes = inner.changes.subscribe();
        let mut held: Option<Held<'_>> = None;
        let deadline = tokio::time::Instant::now() + inner.hold.timeout;
        loop {
            {
                let state = slot
                    .state
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                match state.route(self.claim_valid(), nested) {
                    Route::Local(epoch) => {
                        // Counted under the state's lock, so a drain that starts after this sees it.
                        slot.inflight.fetch_add(1, Ordering::AcqRel);
                        return Ok(Admission::Local(LocalGuard {
                            table: Some(inner),
                            shard,
                            epoch,
                        }));
                    }
                    // Owned by an earlier life of this ordinal: nothing to forward to; it
                    // becomes claimable when that life's lease has run out.
                    Route::Forward(owner) if owner == inner.ordinal => {}
                    Route::Forward(owner) => return Ok(Admission::Remote { owner }),
                    Route::Wait => {}
                }
            }
            if held.is_none() {
                held = Some(Held::enter(&inner.stats, inner.hold.max_held)?);
            }
            changes.borrow_and_update();
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                // The claim may lapse without a table change: look again at the deadline.
                Ok(Err(_)) | Err(_) => {
                    if tokio::time::Instant::now() >= deadline {
                        inner.stats.hold_timeouts.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(shard = shard.0, state = ?self.state(shard), nested,
                            claim_valid = self.claim_valid(), "a held command timed out");
                        return Err(RouteError::InMotion { shard: shard.0 });
                    }
                }
            }
        }
    }

    /// Resolves at the next change of the table, or after `bound`.
    pub async fn changed_within(&self, bound: Duration) {
        let mut changes = self.0.changes.subscribe();
        changes.borrow_and_update();
        let _ = tokio::time::timeout(bound, changes.changed()).await;
    }

    /// Waits until no command is in flight on any of the draining `shards` at the same moment
    /// (at most `bound`), then closes them all (`Event::Drained`) while holding every one of
    /// their locks — the locks admissions count under — so no command slips in between. Commands
    /// nested in the ones in flight are still admitted until then, so cross-shard work (a
    /// checkout reserving stock on another leaving shard) completes instead of waiting for a
    /// shard that waits for it. Returns whether they drained within the bound.
    pub async fn drain_all(&self, shards: &[ShardId], bound: Duration) -> bool {
        let mut shards: Vec<ShardId> = shards.to_vec();
        shards.sort_unstable();
        shards.dedup();
        let slots: Vec<&Slot> = shards
            .iter()
            .filter_map(|s| self.0.slots.get(s.0 as usize))
            .collect();
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            let notified = self.0.drained.notified();
            {
                // In shard order, each lock once: admissions take one lock at a time, so this
                // cannot deadlock with them.
                let mut guards: Vec<_> = slots
                    .iter()
                    .map(|slot| {
                        slot.state
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                    })
                    .collect();
                let idle = slots
                    .iter()
                    .all(|slot| slot.inflight.load(Ordering::Acquire) == 0);
                if idle || tokio::time::Instant::now() >= deadline {
                    let me = self.me();
                    for state in &mut guards {
                        let (next, _) = handoff::step(me, **state, Event::Drained);
                        **state = next;
                    }
                    drop(guards);
                    self.notify();
                    return idle;
                }
            }
            let _ = tokio::time::timeout_at(deadline, notified).await;
        }
    }

    /// Shards this node serves or is draining.
    pub fn owned(&self) -> Vec<ShardId> {
        (0..self.0.map.shard_count())
            .map(ShardId)
            .filter(|s| {
                matches!(
                    self.state(*s),
                    ShardState::Serving { .. } | ShardState::Draining { .. }
                )
            })
            .collect()
    }
}

#[cfg(test)]
impl Ownership {
    async fn admit_test(&self, shard: ShardId) -> Result<Admission<'_>, RouteError> {
        self.admit(shard, false).await
    }
}

fn lock(state: &Mutex<ShardState>) -> ShardState {
    *state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One held request, counted while it waits.
struct Held<'a>(&'a OwnershipStats);

impl<'a> Held<'a> {
    fn enter(stats: &'a OwnershipStats, max: usize) -> Result<Self, RouteError> {
        if stats.held_now.fetch_add(1, Ordering::AcqRel) >= max {
            stats.held_now.fetch_sub(1, Ordering::AcqRel);
            return Err(RouteError::TooManyHeld);
        }
        stats.held_total.fetch_add(1, Ordering::Relaxed);
        Ok(Self(stats))
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.held_now.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests;
