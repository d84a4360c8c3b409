//! Helpers for the Redis cache tests: a store that counts loads and a plain Redis client for
//! checking what is really in Redis. The servers (shared and private) come from the `testkit`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use emporium_persistence::{
    CacheOptions, CachedSnapshots, Error, MemoryStore, Snapshot, SnapshotStore, SnapshotWrite,
};
use redis::aio::MultiplexedConnection;

/// A `MemoryStore` that counts calls to `load`, to tell a cache hit from a fall-back.
#[derive(Default)]
pub struct CountingStore {
    inner: MemoryStore,
    loads: AtomicU64,
}

impl CountingStore {
    pub fn loads(&self) -> u64 {
        self.loads.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl SnapshotStore for CountingStore {
    async fn load(&self, kind: &str, key: &str) -> Result<Option<Snapshot>, Error> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        self.inner.load(kind, key).await
    }
    async fn save(&self, write: SnapshotWrite) -> Result<u64, Error> {
        self.inner.save(write).await
    }
    async fn list_by_owner(&self, kind: &str, owner: &str) -> Result<Vec<Snapshot>, Error> {
        self.inner.list_by_owner(kind, owner).await
    }
    /// The cache's version check: a small read, not a load (a store serves it without the data).
    async fn version(&self, kind: &str, key: &str) -> Result<u64, Error> {
        let loaded = self.inner.load(kind, key).await?;
        Ok(loaded.map_or(0, |s| s.version))
    }
}

/// A prefix no other test run uses.
pub fn unique_prefix() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("emporium_test_{}_{nanos}", std::process::id())
}

pub fn options(prefix: &str) -> CacheOptions {
    CacheOptions {
        ttl: Duration::from_secs(3600),
        kinds: vec!["cart"],
        prefix: prefix.to_owned(),
        op_timeout: Duration::from_millis(250),
        tls_ca: None,
    }
}

pub fn cache(inner: &Arc<CountingStore>, url: &str, prefix: &str) -> CachedSnapshots {
    CachedSnapshots::new(inner.clone(), url, options(prefix))
        .unwrap_or_else(|e| panic!("cache: {e}"))
}

pub fn write(kind: &'static str, key: &str, expected: u64, data: &[u8]) -> SnapshotWrite {
    SnapshotWrite {
        kind,
        key: key.to_owned(),
        expected,
        epoch: 0,
        owner: Some("owner@example.com".into()),
        data: data.to_vec(),
        outbox: vec![],
    }
}

/// A plain connection for looking at Redis directly. Panics (the test fails) if unreachable.
pub async fn plain(url: &str) -> MultiplexedConnection {
    let client = redis::Client::open(url).unwrap_or_else(|e| panic!("redis url {url}: {e}"));
    tokio::time::timeout(
        Duration::from_secs(5),
        client.get_multiplexed_async_connection(),
    )
    .await
    .unwrap_or_else(|_| panic!("redis at {url} did not answer within 5 s"))
    .unwrap_or_else(|e| panic!("redis at {url} unreachable: {e}"))
}

pub async fn query<T: redis::FromRedisValue>(conn: &mut MultiplexedConnection, args: &[&str]) -> T {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    tokio::time::timeout(Duration::from_secs(10), cmd.query_async::<T>(conn))
        .await
        .unwrap_or_else(|_| panic!("{args:?} hung"))
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

pub async fn raw_get(conn: &mut MultiplexedConnection, key: &str) -> Option<Vec<u8>> {
    query(conn, &["GET", key]).await
}

/// Deletes every key under `prefix` (the tests' own keys only).
pub async fn cleanup(url: &str, prefix: &str) {
    let mut conn = plain(url).await;
    let keys: Vec<String> = query(&mut conn, &["KEYS", &format!("{prefix}:*")]).await;
    for key in keys {
        let _: i64 = query(&mut conn, &["DEL", &key]).await;
    }
}
