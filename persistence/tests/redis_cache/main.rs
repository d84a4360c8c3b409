//! The Redis cart cache against real Redis: the shared server for the plain paths, a private
//! `redis-server` for the fault tests (killed, paused), so the shared one is never disturbed.

mod support;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use emporium_persistence::testkit::{free_port, redis_url, Private};
use emporium_persistence::{
    conformance, CacheOptions, CachedSnapshots, Error, MemoryStore, Snapshot, SnapshotStore,
};
use support::{
    cache, cleanup, options, plain, query, raw_get, unique_prefix, write, CountingStore,
};

const SNAPSHOT_FORMAT_V1: u8 = 1;

async fn load(store: &CachedSnapshots, key: &str) -> Option<Snapshot> {
    tokio::time::timeout(Duration::from_secs(10), store.load("cart", key))
        .await
        .unwrap_or_else(|_| panic!("load hung"))
        .unwrap_or_else(|e| panic!("load: {e}"))
}

async fn save(store: &CachedSnapshots, key: &str, expected: u64, data: &[u8]) -> u64 {
    tokio::time::timeout(
        Duration::from_secs(10),
        store.save(write("cart", key, expected, data)),
    )
    .await
    .unwrap_or_else(|_| panic!("save hung"))
    .unwrap_or_else(|e| panic!("save: {e}"))
}

/// What Redis holds for a cart key, decoded from the raw bytes (format marker 1, then bincode of
/// version, owner, data). `None` when absent.
async fn decoded_from_redis(url: &str, prefix: &str, key: &str) -> Option<Snapshot> {
    let raw = raw_get(&mut plain(url).await, &format!("{prefix}:cart:{key}")).await?;
    let (marker, body) = raw.split_first()?;
    assert_eq!(*marker, SNAPSHOT_FORMAT_V1, "format marker");
    let (version, owner, data): (u64, Option<String>, Vec<u8>) =
        bincode::deserialize(body).unwrap_or_else(|e| panic!("cache entry does not decode: {e}"));
    Some(Snapshot {
        version,
        owner,
        data,
    })
}

/// A value Redis kept while the store moved on (the process whose write-through failed died with
/// its dirty set, or Redis came back from an older copy) is never served: the cache checks the
/// store's version beside it, drops the entry and serves the store's state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_value_older_than_the_store_is_never_served() {
    let (url, prefix) = (redis_url(), unique_prefix());
    let inner = Arc::new(CountingStore::default());
    let first = cache(&inner, &url, &prefix);
    assert_eq!(save(&first, "old@b.c", 0, b"v1").await, 1);
    assert_eq!(
        decoded_from_redis(&url, &prefix, "old@b.c")
            .await
            .map(|s| s.version),
        Some(1)
    );
    // Another writer moves the store on without reaching Redis.
    assert_eq!(inner.save(write("cart", "old@b.c", 1, b"v2")).await, Ok(2));
    let fresh = cache(&inner, &url, &prefix);
    let got = load(&fresh, "old@b.c").await;
    assert_eq!(got.map(|s| (s.version, s.data)), Some((2, b"v2".to_vec())));
    assert_eq!(fresh.stats().hits.load(Ordering::SeqCst), 0, "not a hit");
    // The stale entry is gone or replaced by the store's state.
    let cached = decoded_from_redis(&url, &prefix, "old@b.c")
        .await
        .map(|s| s.version);
    assert!(matches!(cached, None | Some(2)), "{cached:?}");
    cleanup(&url, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn save_writes_through_and_a_fresh_cache_loads_from_redis() {
    let (url, prefix) = (redis_url(), unique_prefix());
    let inner = Arc::new(CountingStore::default());
    let first = cache(&inner, &url, &prefix);
    assert_eq!(save(&first, "a@b.c", 0, b"cart-v1").await, 1);
    assert!(first.stats().healthy.load(Ordering::SeqCst));

    let mut conn = plain(&url).await;
    let rkey = format!("{prefix}:cart:a@b.c");
    let raw = raw_get(&mut conn, &rkey).await.unwrap_or_default();
    assert_eq!(raw.first(), Some(&SNAPSHOT_FORMAT_V1), "format marker");
    let pttl: i64 = query(&mut conn, &["PTTL", &rkey]).await;
    assert!((3_500_000..=3_600_000).contains(&pttl), "pttl {pttl}");

    let second = cache(&inner, &url, &prefix);
    let loads = inner.loads();
    let got = load(&second, "a@b.c").await;
    assert_eq!(
        got,
        Some(Snapshot {
            version: 1,
            owner: Some("owner@example.com".into()),
            data: b"cart-v1".to_vec()
        })
    );
    assert_eq!(inner.loads(), loads, "served from redis, not the store");
    assert_eq!(second.stats().hits.load(Ordering::SeqCst), 1);

    // A write through one cache is what the other reads next.
    assert_eq!(save(&second, "a@b.c", 1, b"cart-v2").await, 2);
    assert_eq!(load(&first, "a@b.c").await.map(|s| s.version), Some(2));
    assert_eq!(inner.loads(), loads);

    // A miss reads the store and fills the cache.
    let _: i64 = query(&mut conn, &["DEL", &rkey]).await;
    assert_eq!(load(&first, "a@b.c").await.map(|s| s.version), Some(2));
    assert_eq!(inner.loads(), loads + 1);
    assert_eq!(
        decoded_from_redis(&url, &prefix, "a@b.c")
            .await
            .map(|s| s.version),
        Some(2)
    );

    // An entry that does not decode is never served: the store answers and the entry is replaced.
    let _: () = query(&mut conn, &["SET", &rkey, "\u{7f}garbage"]).await;
    assert_eq!(
        load(&first, "a@b.c").await.map(|s| s.data),
        Some(b"cart-v2".to_vec())
    );
    assert_eq!(inner.loads(), loads + 2);
    assert!(raw_get(&mut conn, &rkey)
        .await
        .is_none_or(|v| v.first() == Some(&SNAPSHOT_FORMAT_V1)));

    cleanup(&url, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_snapshot_conformance_suite_passes_through_the_cache() {
    let (url, prefix) = (redis_url(), unique_prefix());
    let inner = Arc::new(CountingStore::default());
    let mut opts = options(&prefix);
    opts.kinds = vec!["cart", "order"];
    let store = Arc::new(
        CachedSnapshots::new(inner.clone(), &url, opts).unwrap_or_else(|e| panic!("cache: {e}")),
    );
    conformance::round_trip(store.as_ref()).await;
    conformance::version_conflict(store.clone()).await;
    conformance::owner_listing(store.as_ref()).await;
    // The write's shard epoch reaches the store, which fences by it.
    conformance::a_write_with_the_current_epoch_after_a_takeover_succeeds_and_raises_the_stored_epoch(
        store.as_ref(),
    )
    .await;
    // After the race, the cache agrees with the store on the winner.
    let from_store = inner
        .load("cart", "vc")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(load(&store, "vc").await, from_store);
    cleanup(&url, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_from_the_store_deletes_the_cache_key() {
    let (url, prefix) = (redis_url(), unique_prefix());
    let inner = Arc::new(CountingStore::default());
    let store = cache(&inner, &url, &prefix);
    save(&store, "k", 0, b"v1").await;
    let mut conn = plain(&url).await;
    let rkey = format!("{prefix}:cart:k");
    assert!(raw_get(&mut conn, &rkey).await.is_some());

    let stale = store.save(write("cart", "k", 0, b"stale")).await;
    assert!(
        matches!(stale, Err(Error::Conflict { found: 1, .. })),
        "{stale:?}"
    );
    assert!(
        raw_get(&mut conn, &rkey).await.is_none(),
        "conflict must drop the entry"
    );
    assert_eq!(
        load(&store, "k").await.map(|s| s.data),
        Some(b"v1".to_vec())
    );
    cleanup(&url, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kinds_not_listed_pass_through_uncached() {
    let (url, prefix) = (redis_url(), unique_prefix());
    let inner = Arc::new(CountingStore::default());
    let store = cache(&inner, &url, &prefix);
    let saved = store.save(write("order", "o1", 0, b"order")).await;
    assert_eq!(saved, Ok(1));
    for _ in 0..2 {
        let got = store
            .load("order", "o1")
            .await
            .unwrap_or_else(|e| panic!("load: {e}"));
        assert_eq!(got.map(|s| s.data), Some(b"order".to_vec()));
    }
    assert_eq!(
        inner.loads(),
        2,
        "every load of an uncached kind reaches the store"
    );
    let mut conn = plain(&url).await;
    let keys: Vec<String> = query(&mut conn, &["KEYS", &format!("{prefix}*")]).await;
    assert!(keys.is_empty(), "{keys:?}");
    let stats = store.stats();
    assert_eq!(
        stats.hits.load(Ordering::SeqCst) + stats.misses.load(Ordering::SeqCst),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_url_is_refused_and_an_unreachable_one_is_not() {
    let inner: Arc<dyn SnapshotStore> = Arc::new(MemoryStore::new());
    assert!(CachedSnapshots::new(inner.clone(), "not a url", CacheOptions::default()).is_err());

    // Nothing listens on this port once the listener is dropped.
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}/");
    let store = CachedSnapshots::new(inner, &url, options(&unique_prefix()))
        .unwrap_or_else(|e| panic!("an unreachable redis must not fail new: {e}"));
    assert_eq!(save(&store, "k", 0, b"v1").await, 1);
    assert_eq!(
        load(&store, "k").await.map(|s| s.data),
        Some(b"v1".to_vec())
    );
    assert!(!store.stats().healthy.load(Ordering::SeqCst));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_redis_costs_no_correctness_and_is_used_again_after_restart() {
    let mut server = Private::redis();
    let (url, prefix) = (server.redis_url(), unique_prefix());
    let inner = Arc::new(CountingStore::default());
    let store = cache(&inner, &url, &prefix);
    let mut version = save(&store, "k", 0, b"0").await;
    assert!(raw_get(&mut plain(&url).await, &format!("{prefix}:cart:k"))
        .await
        .is_some());

    server.down();
    let started = Instant::now();
    for i in 0..50u32 {
        let data = i.to_string().into_bytes();
        version = save(&store, "k", version, &data).await;
        let got = load(&store, "k").await;
        assert_eq!(got.map(|s| (s.version, s.data)), Some((version, data)));
    }
    // A hang bound, not a speed target: 100 calls must not each wait for a dead Redis.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(!store.stats().healthy.load(Ordering::SeqCst));

    server.up();
    let rkey = format!("{prefix}:cart:k");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut back = false;
    for _ in 0..150 {
        version = save(&store, "k", version, b"after").await;
        let hits = store.stats().hits.load(Ordering::SeqCst);
        if raw_get(&mut plain(&url).await, &rkey).await.is_some() {
            let loads = inner.loads();
            assert_eq!(load(&store, "k").await.map(|s| s.version), Some(version));
            if inner.loads() == loads && store.stats().hits.load(Ordering::SeqCst) == hits + 1 {
                back = true;
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "redis not used again within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(back, "redis not used again");
    assert!(store.stats().healthy.load(Ordering::SeqCst));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_redis_missed_is_never_read_stale() {
    let server = Private::redis();
    let (url, prefix) = (server.redis_url(), unique_prefix());
    let inner = Arc::new(CountingStore::default());
    let store = cache(&inner, &url, &prefix);
    let rkey = format!("{prefix}:cart:k");
    save(&store, "k", 0, b"old").await;
    let mut admin = plain(&url).await;
    let old_raw = raw_get(&mut admin, &rkey).await;
    assert!(old_raw.is_some());

    // Writes stall (reads still work) for 3 s: Redis keeps the old value.
    let paused_at = Instant::now();
    let _: () = query(&mut admin, &["CLIENT", "PAUSE", "3000", "WRITE"]).await;
    // This write-through times out but stays queued in Redis: it lands when the pause ends.
    assert_eq!(save(&store, "k", 1, b"older").await, 2);
    // This one is skipped (back-off): Redis will hold version 2 while the store has 3.
    assert_eq!(save(&store, "k", 2, b"new").await, 3);
    assert_eq!(
        raw_get(&mut admin, &rkey).await,
        old_raw,
        "redis still holds the old value"
    );
    assert_eq!(
        load(&store, "k").await.map(|s| s.data),
        Some(b"new".to_vec())
    );
    // After the first back-off, while (normally) still paused: the probe cannot DEL, still no stale read.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(
        load(&store, "k").await.map(|s| s.data),
        Some(b"new".to_vec())
    );

    let resumed = paused_at + Duration::from_millis(3500);
    tokio::time::sleep(resumed.saturating_duration_since(Instant::now())).await;
    assert_eq!(
        load(&store, "k").await.map(|s| s.data),
        Some(b"new".to_vec())
    );
    // The write-through queued during the pause lands late; a later load or cleanup replaces or
    // drops it. Polled (bounded), and every load meanwhile serves the store's value.
    let settle_by = Instant::now() + Duration::from_secs(10);
    let mut in_redis = decoded_from_redis(&url, &prefix, "k").await;
    while in_redis.as_ref().is_some_and(|s| s.version != 3) && Instant::now() < settle_by {
        assert_eq!(
            load(&store, "k").await.map(|s| s.data),
            Some(b"new".to_vec())
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        in_redis = decoded_from_redis(&url, &prefix, "k").await;
    }
    assert!(
        in_redis.as_ref().is_none_or(|s| s.version == 3),
        "{in_redis:?}"
    );

    // And the cache serves hits again within a bounded wait.
    let deadline = Instant::now() + Duration::from_secs(30);
    let hits = store.stats().hits.load(Ordering::SeqCst);
    for _ in 0..150 {
        assert_eq!(load(&store, "k").await.map(|s| s.version), Some(3));
        if store.stats().hits.load(Ordering::SeqCst) > hits {
            return;
        }
        assert!(Instant::now() < deadline, "no cache hit within 30 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("no cache hit after the pause");
}
