//! One suite every backend must pass. Call [`run_all`] with a fresh store from a backend's tests,
//! and [`run_shared`] as well for a store several nodes can share (epoch fencing and leases).

mod cluster;

use std::sync::Arc;

pub use cluster::{
    a_second_registration_supersedes_the_first, a_stale_owners_write_is_fenced,
    a_write_with_the_current_epoch_after_a_takeover_succeeds_and_raises_the_stored_epoch,
    ensure_shards_is_idempotent_under_concurrent_callers, epoch_fencing, leases, run_shared,
    transfer_moves_only_shards_still_held_by_the_expected_owner_and_bumps_each_epoch_by_one,
    two_nodes_claiming_the_same_unowned_shards_at_once_each_shard_ends_with_exactly_one_owner,
};

use crate::{CatalogStore, Error, Outbox, OutboxEntry, SnapshotStore, SnapshotWrite};

fn write(key: &str, expected: u64, data: &[u8]) -> SnapshotWrite {
    SnapshotWrite {
        kind: "cart",
        key: key.to_owned(),
        expected,
        epoch: 0,
        owner: None,
        data: data.to_vec(),
        outbox: Vec::new(),
    }
}

fn event(id: &str) -> OutboxEntry {
    OutboxEntry {
        trace_parent: Some(format!("00-{:0>32}-00f067aa0ba902b7-01", id.len())),
        event_id: id.to_owned(),
        routing_key: "order.created".into(),
        payload: id.as_bytes().to_vec(),
        created_at_ms: 1,
    }
}

pub async fn round_trip<S: SnapshotStore>(store: &S) {
    assert_eq!(store.load("cart", "rt").await, Ok(None));
    assert_eq!(store.save(write("rt", 0, b"one")).await, Ok(1));
    assert_eq!(store.save(write("rt", 1, b"two")).await, Ok(2));
    let got = store.load("cart", "rt").await.ok().flatten();
    assert_eq!(got.map(|s| (s.version, s.data)), Some((2, b"two".to_vec())));
    // Kinds are separate namespaces.
    assert_eq!(store.load("order", "rt").await, Ok(None));
}

pub async fn version_conflict<S: SnapshotStore>(store: Arc<S>) {
    assert_eq!(store.version("cart", "vc").await, Ok(0));
    assert_eq!(store.save(write("vc", 0, b"base")).await, Ok(1));
    assert_eq!(store.version("cart", "vc").await, Ok(1));
    // Two writers holding the same expected version race: exactly one wins.
    let a = {
        let s = store.clone();
        tokio::spawn(async move { s.save(write("vc", 1, b"a")).await })
    };
    let b = {
        let s = store.clone();
        tokio::spawn(async move { s.save(write("vc", 1, b"b")).await })
    };
    let results = [a.await, b.await];
    let wins = results.iter().filter(|r| matches!(r, Ok(Ok(2)))).count();
    let conflicts = results
        .iter()
        .filter(|r| matches!(r, Ok(Err(Error::Conflict { found: 2, .. }))))
        .count();
    assert_eq!((wins, conflicts), (1, 1), "{results:?}");
    // A write expecting "absent" on an existing key is refused too.
    assert!(matches!(
        store.save(write("vc", 0, b"stale")).await,
        Err(Error::Conflict {
            expected: 0,
            found: 2,
            ..
        })
    ));
}

pub async fn owner_listing<S: SnapshotStore>(store: &S) {
    for (key, owner) in [("o1", "ann"), ("o2", "ann"), ("o3", "bob")] {
        let mut w = write(key, 0, key.as_bytes());
        w.kind = "order";
        w.owner = Some(owner.to_owned());
        assert_eq!(store.save(w).await, Ok(1));
    }
    let mut anns: Vec<Vec<u8>> = store
        .list_by_owner("order", "ann")
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|s| s.data)
        .collect();
    anns.sort();
    assert_eq!(anns, vec![b"o1".to_vec(), b"o2".to_vec()]);
    assert_eq!(store.list_by_owner("order", "nobody").await, Ok(vec![]));
}

pub async fn outbox_with_snapshot<S: SnapshotStore + Outbox>(store: &S) {
    let base = store.depth().await.unwrap_or(0);
    let mut w = write("ob", 0, b"order");
    w.outbox = vec![event("e1"), event("e2")];
    assert_eq!(store.save(w).await, Ok(1));
    // A refused write leaves no events behind.
    let mut stale = write("ob", 0, b"stale");
    stale.outbox = vec![event("e-stale")];
    assert!(store.save(stale).await.is_err());
    assert_eq!(store.depth().await, Ok(base + 2));
    let pending = store.pending(10).await.unwrap_or_default();
    let ids: Vec<&str> = pending.iter().map(|r| r.entry.event_id.as_str()).collect();
    assert_eq!(ids, vec!["e1", "e2"], "oldest first");
    assert_eq!(pending[0].entry, event("e1"), "stored as written");
    assert_eq!(store.mark_delivered(&pending[..1], 100).await, Ok(()));
    assert_eq!(store.depth().await, Ok(base + 1));
    let rest = store.pending(10).await.unwrap_or_default();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].entry.event_id, "e2");
    // Marking twice is harmless.
    assert_eq!(store.mark_delivered(&pending[..1], 100).await, Ok(()));
    assert_eq!(store.depth().await, Ok(base + 1));
    assert_eq!(store.prune_delivered(50).await, Ok(0));
    assert_eq!(store.prune_delivered(101).await, Ok(1));
    assert!(store.append(event("e3")).await.is_ok());
    assert_eq!(store.depth().await, Ok(base + 2));
}

pub async fn idempotency_key<S: SnapshotStore + Outbox>(store: Arc<S>) {
    let base = store.depth().await.unwrap_or(0);
    // Two checkouts retried with the same idempotency key both try to create the order.
    let create = |who: &'static str| {
        let s = store.clone();
        let mut w = write("idem-order", 0, who.as_bytes());
        w.kind = "order";
        w.owner = Some("ann".into());
        w.outbox = vec![event(&format!("created-by-{who}"))];
        tokio::spawn(async move { (who, s.save(w).await) })
    };
    let (a, b) = (create("a"), create("b"));
    let results = [a.await, b.await];
    let winners: Vec<&str> = results
        .iter()
        .filter_map(|r| match r {
            Ok((who, Ok(1))) => Some(*who),
            _ => None,
        })
        .collect();
    let conflicts = results
        .iter()
        .filter(|r| {
            matches!(
                r,
                Ok((
                    _,
                    Err(Error::Conflict {
                        expected: 0,
                        found: 1,
                        ..
                    })
                ))
            )
        })
        .count();
    assert_eq!((winners.len(), conflicts), (1, 1), "{results:?}");
    let winner = winners[0];
    let stored = store.load("order", "idem-order").await.ok().flatten();
    assert_eq!(
        stored.map(|s| (s.version, s.data)),
        Some((1, winner.as_bytes().to_vec()))
    );
    // Only the winner's event is queued.
    assert_eq!(store.depth().await, Ok(base + 1));
    let pending = store.pending(1000).await.unwrap_or_default();
    let ours: Vec<&str> = pending
        .iter()
        .map(|r| r.entry.event_id.as_str())
        .filter(|id| id.starts_with("created-by-"))
        .collect();
    assert_eq!(ours, vec![format!("created-by-{winner}")]);
}

pub async fn catalog_unique_sku<S: CatalogStore>(store: &S) {
    assert_eq!(
        store.insert_product("p1", "SKU-1", b"one".to_vec()).await,
        Ok(())
    );
    assert!(matches!(
        store.insert_product("p2", "SKU-1", b"dup".to_vec()).await,
        Err(Error::Duplicate { .. })
    ));
    assert_eq!(
        store.insert_product("p2", "SKU-2", b"two".to_vec()).await,
        Ok(())
    );
    assert!(matches!(
        store.update_product("p2", "SKU-1", b"x".to_vec()).await,
        Err(Error::Duplicate { .. })
    ));
    assert!(matches!(
        store.update_product("nope", "SKU-9", b"x".to_vec()).await,
        Err(Error::NotFound { .. })
    ));
    // Renaming a SKU frees the old one.
    assert_eq!(
        store.update_product("p2", "SKU-3", b"three".to_vec()).await,
        Ok(())
    );
    assert_eq!(
        store.insert_product("p4", "SKU-2", b"four".to_vec()).await,
        Ok(())
    );
    assert_eq!(store.delete_product("p1").await, Ok(true));
    assert_eq!(store.delete_product("p1").await, Ok(false));
    assert_eq!(
        store.insert_product("p5", "SKU-1", b"five".to_vec()).await,
        Ok(())
    );
    let mut all = store.list_products().await.unwrap_or_default();
    all.sort();
    assert_eq!(
        all,
        vec![b"five".to_vec(), b"four".to_vec(), b"three".to_vec()]
    );
}

/// Runs the whole suite on one fresh store.
pub async fn run_all<S>(store: Arc<S>)
where
    S: SnapshotStore + Outbox + CatalogStore,
{
    round_trip(store.as_ref()).await;
    version_conflict(store.clone()).await;
    owner_listing(store.as_ref()).await;
    outbox_with_snapshot(store.as_ref()).await;
    idempotency_key(store.clone()).await;
    catalog_unique_sku(store.as_ref()).await;
}
