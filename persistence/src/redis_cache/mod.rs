//! Redis as a read-through / write-through cache in front of a [`SnapshotStore`], so that an
//! entity (a cart) activates from memory instead of from the durable store.
//!
//! Solves: faster activation while the store stays the truth. `save` goes to the store first and
//! is durable when the store says so; the cache is then updated (awaited) or, if that fails,
//! invalidated. Redis being slow or down degrades speed, never correctness or availability: every
//! command is bounded by `op_timeout`, a failure starts a back-off during which Redis is skipped,
//! and a key whose cache update did not land is never read from Redis again until its `DEL` has
//! (see `dirty`).
//!
//! Deliberately does not: cache `list_by_owner`, negative results, or kinds outside
//! [`CacheOptions::kinds`]; coordinate with other processes (a key one process failed to update is
//! tracked only by that process; fencing in the store still rejects a write based on a stale read);
//! or remember stale keys across a restart (the TTL bounds that).

mod dirty;
mod link;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::record::{decode_snapshot, encode_snapshot};
use crate::tls::Reach;
use crate::{CacheStats, Error, Snapshot, SnapshotStore, SnapshotWrite};
use dirty::{Dirty, WriteCounters, DIRTY_BOUND};
use link::Link;

/// Stale keys invalidated per call, so one request never carries a huge `DEL`.
const FLUSH_BATCH: usize = 512;

/// How the cache behaves. `Default` is the production setting for carts.
#[derive(Debug, Clone)]
pub struct CacheOptions {
    /// Expiry of every cached entry (refreshed by each write and each fill).
    pub ttl: Duration,
    /// Snapshot kinds that are cached; others pass straight through.
    pub kinds: Vec<&'static str>,
    /// Key prefix: keys are `<prefix>:<kind>:<key>`.
    pub prefix: String,
    /// Upper bound on each Redis command, including connecting.
    pub op_timeout: Duration,
    /// PEM certificates a `rediss://` connection trusts; `None`: the system's roots.
    pub tls_ca: Option<String>,
}

impl Default for CacheOptions {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(30 * 24 * 3600),
            kinds: vec!["cart"],
            prefix: "emporium".to_owned(),
            op_timeout: Duration::from_millis(250),
            tls_ca: None,
        }
    }
}

/// A [`SnapshotStore`] that caches selected kinds in Redis in front of `inner`.
pub struct CachedSnapshots {
    inner: Arc<dyn SnapshotStore>,
    link: Link,
    dirty: Dirty,
    writes: WriteCounters,
    options: CacheOptions,
    stats: Arc<CacheStats>,
}

impl CachedSnapshots {
    /// Never fails because Redis is down: connects lazily and keeps retrying in the background of
    /// calls. Fails only for a malformed URL.
    pub fn new(
        inner: Arc<dyn SnapshotStore>,
        redis_url: &str,
        options: CacheOptions,
    ) -> Result<Self, Error> {
        let stats = Arc::new(CacheStats::default());
        let link = Link::new(
            redis_url,
            options.tls_ca.as_deref(),
            options.op_timeout,
            stats.clone(),
        )?;
        Ok(Self {
            inner,
            link,
            dirty: Dirty::new(DIRTY_BOUND),
            writes: WriteCounters::default(),
            options,
            stats,
        })
    }

    /// Connects once (used at start) and says what that found: a TLS or credentials failure is
    /// [`Reach::Misconfigured`]; an outage is [`Reach::Down`] and handled as at run time.
    pub async fn probe(&self, within: Duration) -> Reach {
        self.link.probe(within).await
    }

    pub fn stats(&self) -> Arc<CacheStats> {
        self.stats.clone()
    }

    fn cached(&self, kind: &str) -> bool {
        self.options.kinds.contains(&kind)
    }

    fn redis_key(&self, kind: &str, key: &str) -> String {
        format!("{}:{kind}:{key}", self.options.prefix)
    }

    fn ttl_ms(&self) -> u64 {
        u64::try_from(self.options.ttl.as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// Invalidates a batch of stale keys if Redis is usable. Runs before every cache use so a
    /// recovered Redis is cleaned before it is trusted again.
    async fn flush_dirty(&self) {
        if self.dirty.is_empty() {
            return;
        }
        let batch = self.dirty.batch(FLUSH_BATCH);
        let mut cmd = redis::cmd("DEL");
        for (key, _) in &batch {
            cmd.arg(key);
        }
        if self.link.run::<redis::Value>(&cmd).await.is_some() {
            self.dirty.clear(&batch);
        }
    }

    /// Deletes `rkey`; if that does not land, Redis may keep a stale value: mark it dirty.
    async fn invalidate(&self, rkey: String) {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(&rkey);
        if self.link.run::<redis::Value>(&cmd).await.is_none() {
            self.dirty.mark(rkey);
        }
    }

    /// Caches what the store just acknowledged; if that does not land, mark it dirty.
    async fn write_through(&self, rkey: String, snapshot: &Snapshot) {
        let mut cmd = redis::cmd("SET");
        cmd.arg(&rkey)
            .arg(encode_snapshot(snapshot))
            .arg("PX")
            .arg(self.ttl_ms());
        if self.link.run::<redis::Value>(&cmd).await.is_none() {
            self.dirty.mark(rkey);
        }
    }

    /// The cached snapshot, if Redis is usable, the key is trusted and the value decodes.
    async fn read_cached(&self, rkey: &str) -> Option<Snapshot> {
        if self.dirty.contains(rkey) {
            return None;
        }
        let mut cmd = redis::cmd("GET");
        cmd.arg(rkey);
        let bytes = self.link.run::<Option<Vec<u8>>>(&cmd).await??;
        match decode_snapshot(rkey, &bytes) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(key = rkey, error = %e, "undecodable cache entry, dropping it");
                self.invalidate(rkey.to_owned()).await;
                None
            }
        }
    }

    /// Fills the cache after a store read, unless this process wrote or invalidated the key
    /// meanwhile (the value read could then be older than the one Redis has, or had and lost).
    /// `NX`: a concurrent write-through wins.
    async fn fill(&self, rkey: &str, snapshot: &Snapshot, writes_before: u64) {
        if self.dirty.contains(rkey) || self.writes.get(rkey) != writes_before {
            return;
        }
        let mut cmd = redis::cmd("SET");
        cmd.arg(rkey)
            .arg(encode_snapshot(snapshot))
            .arg("PX")
            .arg(self.ttl_ms())
            .arg("NX");
        let _ = self.link.run::<redis::Value>(&cmd).await;
    }
}

#[async_trait]
impl SnapshotStore for CachedSnapshots {
    async fn ping(&self) -> Result<(), Error> {
        self.inner.ping().await
    }

    async fn load(&self, kind: &str, key: &str) -> Result<Option<Snapshot>, Error> {
        if !self.cached(kind) {
            return self.inner.load(kind, key).await;
        }
        let rkey = self.redis_key(kind, key);
        self.flush_dirty().await;
        // The store's version is read beside the cached value (a small read, in parallel): Redis
        // serves only what the store still has. The process that failed a write-through may have
        // died with its dirty set, or Redis may have restarted from an older copy. If the store
        // cannot answer, neither does the load.
        let (cached, stored) = tokio::join!(self.read_cached(&rkey), self.inner.version(kind, key));
        let stored = match (cached, stored) {
            (Some(s), Ok(version)) if s.version == version => {
                self.stats.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(Some(s));
            }
            // Unchecked, it could be a value the store has moved past; an actor activated on it
            // would act on it until its next write is refused. The store is down: so is the load.
            (Some(_), Err(e)) => return Err(e),
            (Some(s), Ok(version)) => {
                tracing::warn!(
                    key = rkey,
                    cached = s.version,
                    stored = version,
                    "stale cache entry dropped"
                );
                self.invalidate(rkey.clone()).await;
                Some(version)
            }
            (None, stored) => stored.ok(),
        };
        self.stats.misses.fetch_add(1, Ordering::Relaxed);
        if stored == Some(0) {
            // The store has nothing under this key (a new cart): no second read for it.
            return Ok(None);
        }
        let writes = self.writes.get(&rkey);
        let loaded = self.inner.load(kind, key).await?;
        if let Some(s) = &loaded {
            self.fill(&rkey, s, writes).await;
        }
        Ok(loaded)
    }

    async fn save(&self, write: SnapshotWrite) -> Result<u64, Error> {
        if !self.cached(write.kind) {
            return self.inner.save(write).await;
        }
        let rkey = self.redis_key(write.kind, &write.key);
        let (owner, data) = (write.owner.clone(), write.data.clone());
        // Before and after the store write, so a concurrent load's fill sees either bump.
        self.writes.bump(&rkey);
        let result = self.inner.save(write).await;
        self.writes.bump(&rkey);
        self.flush_dirty().await;
        match &result {
            Ok(version) => {
                let snapshot = Snapshot {
                    version: *version,
                    owner,
                    data,
                };
                self.write_through(rkey, &snapshot).await;
            }
            // A conflict (or a fenced write: the epoch passes through to the store, which alone
            // can check it) means the cached value is stale. Any other error leaves the store's state
            // unknown (the write may have applied): invalidate as well.
            Err(_) => self.invalidate(rkey).await,
        }
        result
    }

    async fn list_by_owner(&self, kind: &str, owner: &str) -> Result<Vec<Snapshot>, Error> {
        self.inner.list_by_owner(kind, owner).await
    }

    async fn version(&self, kind: &str, key: &str) -> Result<u64, Error> {
        self.inner.version(kind, key).await
    }
}
