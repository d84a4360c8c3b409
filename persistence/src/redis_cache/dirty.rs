//! Keys whose Redis value may be stale: a write-through (or an invalidation) did not reach Redis,
//! so Redis may still hold an older version. Such a key is never read from Redis until a `DEL` of
//! it has succeeded.
//!
//! Bounded: past [`DIRTY_BOUND`] keys we can no longer say which keys are safe, so the set stops
//! tracking and Redis reads are bypassed for every key until the process restarts.
//!
//! Also here: [`WriteCounters`], which let a load skip filling the cache with a value a
//! concurrent save may already have replaced.
//!
//! Deliberately does not: survive a restart (a process that dies with dirty keys leaves them to
//! the TTL), or know about other processes' failures.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// How many keys may await invalidation before Redis reads are given up.
pub(super) const DIRTY_BOUND: usize = 100_000;

pub(super) struct Dirty {
    inner: Mutex<Inner>,
    bound: usize,
    overflowed: AtomicBool,
}

#[derive(Default)]
struct Inner {
    /// Key -> generation of its latest failure, so a `DEL` that raced with a newer failure of the
    /// same key does not clear it.
    keys: HashMap<String, u64>,
    /// Bumped on every failure of any key.
    generation: u64,
}

impl Dirty {
    pub(super) fn new(bound: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            bound,
            overflowed: AtomicBool::new(false),
        }
    }

    /// Whether Redis reads can be trusted at all (false after an overflow, for good).
    pub(super) fn trusted(&self) -> bool {
        !self.overflowed.load(Ordering::Relaxed)
    }

    /// Records that Redis may hold a stale value for `key`.
    pub(super) fn mark(&self, key: String) {
        let Ok(mut inner) = self.inner.lock() else {
            self.overflow("dirty set lock poisoned");
            return;
        };
        inner.generation += 1;
        let generation = inner.generation;
        if inner.keys.len() >= self.bound && !inner.keys.contains_key(&key) {
            drop(inner);
            self.overflow("dirty set full");
            return;
        }
        inner.keys.insert(key, generation);
    }

    /// Whether `key` must not be read from Redis. Fails safe: true when unsure.
    pub(super) fn contains(&self, key: &str) -> bool {
        !self.trusted()
            || self
                .inner
                .lock()
                .map_or(true, |inner| inner.keys.contains_key(key))
    }

    pub(super) fn is_empty(&self) -> bool {
        self.inner
            .lock()
            .map_or(true, |inner| inner.keys.is_empty())
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.inner.lock().map_or(0, |inner| inner.keys.len())
    }

    /// Up to `max` keys to invalidate, with their generations.
    pub(super) fn batch(&self, max: usize) -> Vec<(String, u64)> {
        self.inner.lock().map_or_else(
            |_| Vec::new(),
            |inner| {
                inner
                    .keys
                    .iter()
                    .take(max)
                    .map(|(k, g)| (k.clone(), *g))
                    .collect()
            },
        )
    }

    /// Forgets keys whose `DEL` succeeded, unless they failed again since the batch was taken.
    pub(super) fn clear(&self, batch: &[(String, u64)]) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        for (key, generation) in batch {
            if inner.keys.get(key) == Some(generation) {
                inner.keys.remove(key);
            }
        }
    }

    fn overflow(&self, reason: &str) {
        if !self.overflowed.swap(true, Ordering::Relaxed) {
            tracing::error!(
                reason,
                bound = self.bound,
                "redis cache can no longer track stale keys; bypassing redis reads until restart"
            );
        }
    }
}

/// Striped counters of saves per key, so a load can tell that the key was written while it read
/// the store. Collisions only cost a skipped fill.
pub(super) struct WriteCounters([AtomicU64; STRIPES]);

const STRIPES: usize = 1024;

impl Default for WriteCounters {
    fn default() -> Self {
        Self(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

impl WriteCounters {
    pub(super) fn bump(&self, key: &str) {
        self.0[stripe(key)].fetch_add(1, Ordering::SeqCst);
    }

    pub(super) fn get(&self, key: &str) -> u64 {
        self.0[stripe(key)].load(Ordering::SeqCst)
    }
}

/// FNV-1a; in-process only, never stored or used for placement.
fn stripe(key: &str) -> usize {
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (hash % STRIPES as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newer_failure_survives_the_clear_of_an_older_batch() {
        let d = Dirty::new(10);
        d.mark("a".into());
        d.mark("b".into());
        let batch = d.batch(10);
        d.mark("a".into());
        d.clear(&batch);
        assert!(d.contains("a"));
        assert!(!d.contains("b"));
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn overflow_distrusts_every_key() {
        let d = Dirty::new(2);
        d.mark("a".into());
        d.mark("b".into());
        assert!(d.trusted());
        d.mark("c".into());
        assert!(!d.trusted());
        assert!(d.contains("zzz"));
    }
}
