//! The MongoDB-compatible backend against a real server (SecantusDB here; the same commands run on
//! MongoDB, DocumentDB and FerretDB): the conformance suite, the format migration chain, the
//! version check under 20 concurrent writers, and a store that goes down and comes back.
//!
//! Each test works in its own database (`emporium_test_<uuid>`, dropped at the end, also when the
//! test fails). A server that cannot be reached fails the test; nothing is skipped.
//! Env: `EMP_TEST_MONGO_URI` (the shared server), `EMP_TEST_SECANTUS` (a python with
//! secantus, for the private server of the outage test).

use std::sync::Arc;
use std::time::Duration;

use emporium_persistence::testkit::{free_port, fresh_db_name, mongo_uri, with_database, Private};
use emporium_persistence::{conformance, Error, MongoStore, SnapshotStore, SnapshotWrite};
use mongodb::bson::spec::BinarySubtype;
use mongodb::bson::{doc, Binary};

/// A store in a fresh database of its own, dropped with the guard (also on panic).
struct TestDb {
    uri: String,
    name: String,
    store: Arc<MongoStore>,
}

impl TestDb {
    async fn new() -> TestDb {
        let name = fresh_db_name();
        let uri = with_database(&mongo_uri(), &name);
        let store = MongoStore::connect(&uri)
            .await
            .unwrap_or_else(|e| panic!("connect to {uri}: {e}"));
        assert_eq!(store.database_name(), name);
        TestDb {
            uri,
            name,
            store: Arc::new(store),
        }
    }

    async fn raw(&self) -> mongodb::Database {
        mongodb::Client::with_uri_str(&self.uri)
            .await
            .unwrap_or_else(|e| panic!("raw client: {e}"))
            .database(&self.name)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Its own thread and runtime: Drop cannot await, and the test's runtime may be gone.
        let (uri, name) = (self.uri.clone(), self.name.clone());
        let dropper = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap_or_else(|e| panic!("runtime: {e}"));
            rt.block_on(async {
                let client = mongodb::Client::with_uri_str(&uri).await?;
                client.database(&name).drop().await
            })
        });
        if let Ok(Err(e)) = dropper.join() {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}

fn write(key: &str, expected: u64, data: &[u8]) -> SnapshotWrite {
    SnapshotWrite {
        kind: "cart",
        key: key.to_owned(),
        expected,
        epoch: 0,
        owner: Some("ann".into()),
        data: data.to_vec(),
        outbox: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_backend_conforms() {
    let db = TestDb::new().await;
    assert_eq!(db.store.ping().await, Ok(()));
    conformance::run_all(db.store.clone()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_backend_conforms_as_a_store_nodes_share() {
    let db = TestDb::new().await;
    conformance::run_shared(db.store.clone()).await;
}

/// Documents written before fencing existed have no `shard_epoch`: any epoch may write them, and
/// the first fenced write gives them one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_stored_before_fencing_take_the_epoch_of_their_next_write() {
    let db = TestDb::new().await;
    let snapshots = db
        .raw()
        .await
        .collection::<mongodb::bson::Document>("snapshots");
    snapshots
        .insert_one(doc! {
            "_id": "cart/legacy", "kind": "cart", "key": "legacy", "owner": "ann",
            "version": 2_i64, "format": 1_i32,
            "data": Binary { subtype: BinarySubtype::Generic, bytes: b"old".to_vec() },
            "outbox": [],
        })
        .await
        .unwrap_or_else(|e| panic!("raw insert: {e}"));
    let at = |expected: u64, epoch: u64| SnapshotWrite {
        epoch,
        ..write("legacy", expected, b"new")
    };
    assert_eq!(db.store.save(at(2, 7)).await, Ok(3));
    let stored = snapshots
        .find_one(doc! { "_id": "cart/legacy" })
        .await
        .unwrap_or_else(|e| panic!("raw read: {e}"))
        .and_then(|d| d.get_i64("shard_epoch").ok());
    assert_eq!(stored, Some(7));
    assert!(matches!(
        db.store.save(at(3, 6)).await,
        Err(Error::Fenced {
            epoch: 6,
            found_epoch: 7,
            ..
        })
    ));
    assert_eq!(db.store.save(at(3, 7)).await, Ok(4));
}

/// Two relays on one store (two nodes): what one claimed the other does not see, until it is
/// delivered (gone) or the claim's lease runs out (the first relay died).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_on_one_store_claim_events_so_each_is_published_once() {
    use emporium_persistence::{Outbox, OutboxEntry};
    let db = TestDb::new().await;
    let other = MongoStore::connect(&db.uri)
        .await
        .unwrap_or_else(|e| panic!("second store: {e}"))
        .with_claim_lease(Duration::from_secs(2));
    let event = |id: &str| OutboxEntry {
        event_id: id.into(),
        routing_key: "order.created".into(),
        payload: vec![1],
        created_at_ms: 1,
        trace_parent: None,
    };
    for (i, key) in ["o1", "o2"].iter().enumerate() {
        let mut w = write(key, 0, b"order");
        w.kind = "order";
        w.outbox = vec![event(&format!("e{i}"))];
        assert_eq!(db.store.save(w).await, Ok(1));
    }
    let mine = db.store.pending(10).await.unwrap_or_default();
    assert_eq!(mine.len(), 2);
    assert_eq!(
        other.pending(10).await,
        Ok(vec![]),
        "claimed by the first relay"
    );
    // Our own claim does not hide the documents from us on a second read.
    assert_eq!(db.store.pending(10).await.map(|p| p.len()), Ok(2));
    assert_eq!(db.store.mark_delivered(&mine, 5).await, Ok(()));
    assert_eq!(other.pending(10).await, Ok(vec![]));
    // The other relay claims a new event, then "dies": once its lease ends, the first takes over.
    let mut w = write("o3", 0, b"order");
    w.kind = "order";
    w.outbox = vec![event("e3")];
    assert_eq!(db.store.save(w).await, Ok(1));
    assert_eq!(other.pending(10).await.map(|p| p.len()), Ok(1));
    assert_eq!(db.store.pending(10).await, Ok(vec![]));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let taken = db.store.pending(10).await.unwrap_or_default();
    let ids: Vec<&str> = taken.iter().map(|r| r.entry.event_id.as_str()).collect();
    assert_eq!(ids, vec!["e3"]);
    assert_eq!(db.store.depth().await, Ok(1));
    // A relay that cannot deliver gives its claim up at once: the other takes the event now.
    assert_eq!(db.store.release(&taken).await, Ok(()));
    assert_eq!(other.pending(10).await.map(|p| p.len()), Ok(1));
}

/// A document whose events were pulled but whose `outbox_at` survived (the unset after the pull
/// failed, say at a failover) must never crowd real events out of the relay's batches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_left_with_an_outbox_age_but_no_events_do_not_block_the_relay() {
    use emporium_persistence::{Outbox, OutboxEntry};
    let db = TestDb::new().await;
    let snapshots = db
        .raw()
        .await
        .collection::<mongodb::bson::Document>("snapshots");
    // Ten orphans, older than any real event.
    for i in 0..10 {
        snapshots
            .insert_one(doc! {
                "_id": format!("order/orphan{i}"), "kind": "order", "key": format!("orphan{i}"),
                "version": 1_i64, "format": 1_i32, "owner": "ann",
                "data": Binary { subtype: BinarySubtype::Generic, bytes: vec![1] },
                "outbox": [], "outbox_at": i as i64,
            })
            .await
            .unwrap_or_else(|e| panic!("insert orphan: {e}"));
    }
    let mut w = write("real", 0, b"order");
    w.kind = "order";
    w.outbox = vec![OutboxEntry {
        event_id: "e-real".into(),
        routing_key: "order.created".into(),
        payload: vec![1, 2, 3],
        created_at_ms: 1_000,
        trace_parent: None,
    }];
    assert_eq!(db.store.save(w).await, Ok(1));
    // A batch of one, which the orphans would fill if they were matched.
    let pending = db.store.pending(1).await.unwrap_or_default();
    let ids: Vec<&str> = pending.iter().map(|r| r.entry.event_id.as_str()).collect();
    assert_eq!(ids, vec!["e-real"]);
    assert_eq!(db.store.depth().await, Ok(1));
    assert_eq!(db.store.mark_delivered(&pending, 5).await, Ok(()));
    assert_eq!(db.store.pending(10).await, Ok(vec![]));
    // Delivery took the age off the emptied document and mended the orphans before it.
    let aged = snapshots
        .count_documents(doc! { "outbox_at": { "$exists": true } })
        .await
        .unwrap_or_else(|e| panic!("count: {e}"));
    assert_eq!(aged, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_snapshot_formats_are_corrupt_and_known_ones_decode() {
    let db = TestDb::new().await;
    let snapshots = db
        .raw()
        .await
        .collection::<mongodb::bson::Document>("snapshots");
    let stored = |key: &str, format: i32| {
        doc! {
            "_id": format!("cart/{key}"),
            "kind": "cart",
            "key": key,
            "owner": "ann",
            "version": 3_i64,
            "format": format,
            "data": Binary { subtype: BinarySubtype::Generic, bytes: b"state".to_vec() },
            "outbox": [],
        }
    };
    for (key, format) in [("future", 99), ("current", 1)] {
        snapshots
            .insert_one(stored(key, format))
            .await
            .unwrap_or_else(|e| panic!("raw insert: {e}"));
    }
    let future = db.store.load("cart", "future").await;
    assert!(matches!(future, Err(Error::Corrupt { .. })), "{future:?}");
    let current = db.store.load("cart", "current").await;
    assert_eq!(
        current.map(|s| s.map(|s| (s.version, s.owner, s.data))),
        Ok(Some((3, Some("ann".into()), b"state".to_vec())))
    );
    // The stored layout carries on from there.
    assert_eq!(db.store.save(write("current", 3, b"next")).await, Ok(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_one_of_twenty_concurrent_writers_wins() {
    let db = TestDb::new().await;
    assert_eq!(db.store.save(write("hot", 0, b"base")).await, Ok(1));
    let writers: Vec<_> = (0..20u8)
        .map(|i| {
            let store = db.store.clone();
            tokio::spawn(async move { (i, store.save(write("hot", 1, &[i])).await) })
        })
        .collect();
    let mut winners = Vec::new();
    let mut conflicts = 0;
    for writer in writers {
        match writer.await.unwrap_or_else(|e| panic!("join: {e}")) {
            (i, Ok(2)) => winners.push(i),
            (
                _,
                Err(Error::Conflict {
                    expected: 1,
                    found: 2,
                    ..
                }),
            ) => conflicts += 1,
            (i, other) => panic!("writer {i}: unexpected {other:?}"),
        }
    }
    assert_eq!((winners.len(), conflicts), (1, 19));
    let stored = db.store.load("cart", "hot").await;
    assert_eq!(
        stored.map(|s| s.map(|s| (s.version, s.data))),
        Ok(Some((2, vec![winners[0]])))
    );
}

/// A fresh database on `server`, a private SecantusDB.
fn private_uri(server: &Private) -> String {
    with_database(&server.mongo_uri(), &fresh_db_name())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_goes_down_is_unavailable_and_serves_again_when_back() {
    let mut server = Private::secantus();
    let store = MongoStore::connect(&private_uri(&server))
        .await
        .unwrap_or_else(|e| panic!("connect to the private secantus: {e}"));
    assert_eq!(store.save(write("survivor", 0, b"before")).await, Ok(1));

    server.down();
    let bound = Duration::from_secs(10);
    let save = tokio::time::timeout(bound, store.save(write("survivor", 1, b"down"))).await;
    assert!(
        matches!(save, Ok(Err(Error::Unavailable(_)))),
        "save while down: {save:?}"
    );
    let load = tokio::time::timeout(bound, store.load("cart", "survivor")).await;
    assert!(
        matches!(load, Ok(Err(Error::Unavailable(_)))),
        "load while down: {load:?}"
    );

    server.up();
    // Same store value, no reconnect: the driver finds the server again by itself.
    // A server just started may not answer the first selection in time: retry what it refused
    // as unavailable (never applied: it could not be reached), for a bounded while.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let save = loop {
        let save = tokio::time::timeout(bound, store.save(write("survivor", 1, b"after"))).await;
        if matches!(save, Ok(Err(Error::Unavailable(_)))) && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        break save;
    };
    assert_eq!(
        save,
        Ok(Ok(2)),
        "save after restart (1 = the write from before the outage)"
    );
    let got = store.load("cart", "survivor").await;
    assert_eq!(
        got.map(|s| s.map(|s| (s.version, s.data))),
        Ok(Some((2, b"after".to_vec())))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_store_is_unavailable_within_the_operation_timeout() {
    let server = Private::secantus();
    let store = MongoStore::connect(&private_uri(&server))
        .await
        .unwrap_or_else(|e| panic!("connect to the private secantus: {e}"))
        .with_operation_timeout(Duration::from_secs(2));
    assert_eq!(store.save(write("frozen", 0, b"before")).await, Ok(1));

    // Stopped, not dead: connections stay open and nothing answers (as behind a black hole).
    server.freeze();
    let bound = Duration::from_secs(10);
    let save = tokio::time::timeout(bound, store.save(write("frozen", 1, b"frozen"))).await;
    let load = tokio::time::timeout(bound, store.load("cart", "frozen")).await;
    server.thaw();
    assert!(
        matches!(save, Ok(Err(Error::Unavailable(_)))),
        "save while frozen: {save:?}"
    );
    assert!(
        matches!(load, Ok(Err(Error::Unavailable(_)))),
        "load while frozen: {load:?}"
    );

    // The given-up write may still have been applied once the server woke (a lost
    // acknowledgement): either way the store serves again and holds one of the two states.
    let got = tokio::time::timeout(bound, store.load("cart", "frozen")).await;
    let state = got.map(|r| r.map(|s| s.map(|s| (s.version, s.data))));
    assert!(
        matches!(
            &state,
            Ok(Ok(Some((1, data)))) if data == b"before"
        ) || matches!(&state, Ok(Ok(Some((2, data)))) if data == b"frozen"),
        "after thawing: {state:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_store_fails_connect_within_seconds() {
    // A port nothing listens on: bound, then released.
    let port = free_port();
    let uri = format!("mongodb://127.0.0.1:{port}/?directConnection=true");
    let connect = tokio::time::timeout(Duration::from_secs(10), MongoStore::connect(&uri)).await;
    assert!(
        matches!(connect, Ok(Err(Error::Unavailable(_)))),
        "connect to nothing: {:?}",
        connect.map(|r| r.map(|s| s.database_name().to_owned()))
    );
}
