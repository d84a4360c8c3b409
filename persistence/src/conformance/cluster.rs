//! The part of the suite for stores several nodes share: epoch fencing of snapshot writes, node
//! registrations and shard ownership. Each check is named by the sentence it proves.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{event, write};
use crate::{
    Error, Leases, NodeRecord, NodeRef, Outbox, ShardRecord, SnapshotStore, SnapshotWrite,
};

fn at_epoch(key: &str, expected: u64, epoch: u64, data: &[u8]) -> SnapshotWrite {
    let mut w = write(key, expected, data);
    w.epoch = epoch;
    w
}

fn fenced(key: &str, epoch: u64, found_epoch: u64) -> Result<u64, Error> {
    Err(Error::Fenced {
        kind: "cart".into(),
        key: key.into(),
        epoch,
        found_epoch,
    })
}

fn node(ordinal: u32, generation: u64) -> NodeRef {
    NodeRef {
        ordinal,
        generation,
    }
}

fn shard(shard: u32, owner: Option<NodeRef>, epoch: u64) -> ShardRecord {
    ShardRecord {
        shard,
        owner,
        epoch,
    }
}

pub async fn a_stale_owners_write_is_fenced<S: SnapshotStore + Outbox>(store: &S) {
    let key = "fence-stale";
    // Created by the owner at epoch 1; the shard then moves to a node at epoch 2, which writes.
    assert_eq!(store.save(at_epoch(key, 0, 1, b"old owner")).await, Ok(1));
    assert_eq!(store.save(at_epoch(key, 1, 2, b"new owner")).await, Ok(2));
    let depth = store.depth().await.unwrap_or(0);
    // The old owner is refused even when it holds the current version, and leaves no events.
    let mut stale = at_epoch(key, 2, 1, b"stale");
    stale.outbox = vec![event("e-fenced")];
    assert_eq!(
        store.save(stale).await,
        fenced(key, 1, 2),
        "a stale owner's write is fenced"
    );
    assert_eq!(
        store.save(at_epoch(key, 1, 1, b"stale")).await,
        fenced(key, 1, 2),
        "a stale owner with a stale version is told it is fenced, not that it conflicts"
    );
    assert_eq!(
        store.save(at_epoch(key, 2, 0, b"unfenced")).await,
        fenced(key, 0, 2),
        "an unfenced write (epoch 0) is refused once a fenced owner has written"
    );
    assert!(
        matches!(
            store.save(at_epoch(key, 1, 2, b"late")).await,
            Err(Error::Conflict {
                expected: 1,
                found: 2,
                ..
            })
        ),
        "a stale version under the current epoch is still a conflict"
    );
    // Creation is fenced too: a stale owner cannot create what the new owner created.
    assert_eq!(store.save(at_epoch("fence-new", 0, 4, b"new")).await, Ok(1));
    assert_eq!(
        store.save(at_epoch("fence-new", 0, 3, b"stale")).await,
        fenced("fence-new", 3, 4),
        "a stale owner's creation is fenced"
    );
    assert_eq!(
        store.depth().await,
        Ok(depth),
        "fenced writes queue no events"
    );
    let stored = store.load("cart", key).await.ok().flatten();
    assert_eq!(
        stored.map(|s| (s.version, s.data)),
        Some((2, b"new owner".to_vec()))
    );
}

pub async fn a_write_with_the_current_epoch_after_a_takeover_succeeds_and_raises_the_stored_epoch<
    S: SnapshotStore,
>(
    store: &S,
) {
    let key = "fence-takeover";
    assert_eq!(store.save(at_epoch(key, 0, 1, b"a")).await, Ok(1));
    assert_eq!(store.save(at_epoch(key, 1, 1, b"b")).await, Ok(2));
    // Taken over at epoch 3 (epochs of one shard may jump: it moved twice meanwhile).
    assert_eq!(
        store.save(at_epoch(key, 2, 3, b"c")).await,
        Ok(3),
        "a write with the current epoch after a takeover succeeds"
    );
    assert_eq!(
        store.save(at_epoch(key, 3, 2, b"x")).await,
        fenced(key, 2, 3),
        "the takeover raised the stored epoch"
    );
    assert_eq!(store.save(at_epoch(key, 3, 3, b"d")).await, Ok(4));
    let stored = store.load("cart", key).await.ok().flatten();
    assert_eq!(
        stored.map(|s| (s.version, s.data)),
        Some((4, b"d".to_vec()))
    );
}

/// Epoch fencing of snapshot writes (design rule 4).
pub async fn epoch_fencing<S: SnapshotStore + Outbox>(store: Arc<S>) {
    a_stale_owners_write_is_fenced(store.as_ref()).await;
    a_write_with_the_current_epoch_after_a_takeover_succeeds_and_raises_the_stored_epoch(
        store.as_ref(),
    )
    .await;
}

/// Needs a store without shard records.
pub async fn ensure_shards_is_idempotent_under_concurrent_callers<S: Leases>(
    store: Arc<S>,
    count: u32,
) {
    assert_eq!(store.shards().await, Ok(vec![]), "a fresh store");
    let callers: Vec<_> = (0..3)
        .map(|_| {
            let s = store.clone();
            tokio::spawn(async move { s.ensure_shards(count).await })
        })
        .collect();
    for caller in callers {
        assert!(
            matches!(caller.await, Ok(Ok(()))),
            "ensure_shards is idempotent under concurrent callers"
        );
    }
    assert_eq!(store.ensure_shards(count).await, Ok(()));
    let unowned: Vec<ShardRecord> = (0..count).map(|s| shard(s, None, 0)).collect();
    assert_eq!(store.shards().await, Ok(unowned));
}

pub async fn a_second_registration_supersedes_the_first<S: Leases>(store: Arc<S>) {
    let first = store.register(7, "127.0.0.17:7070", 1_000).await;
    assert_eq!(
        first,
        Ok(NodeRecord {
            ordinal: 7,
            generation: 1,
            address: "127.0.0.17:7070".into(),
            lease_until_ms: 1_000,
            leaving: false,
            superseded_until_ms: 0,
        })
    );
    let first = node(7, 1);
    assert_eq!(store.renew(first, 2_000, false).await, Ok(true));
    assert_eq!(
        store.renew(first, 1_500, false).await,
        Ok(true),
        "a late renew is accepted"
    );
    let second = store.register(7, "127.0.0.27:7070", 5_000).await;
    assert_eq!(
        second
            .as_ref()
            .map(|n| (n.generation, n.superseded_until_ms)),
        Ok((2, 2_000)),
        "the second generation records the lease of the first, which a late renew did not shorten"
    );
    assert_eq!(
        store.renew(first, 9_000, false).await,
        Ok(false),
        "a second registration supersedes the first: its renew returns false"
    );
    assert_eq!(store.renew(node(7, 2), 6_000, true).await, Ok(true));
    assert_eq!(store.renew(node(9, 1), 6_000, false).await, Ok(false));
    let other = store.register(8, "127.0.0.18:7070", 100).await;
    assert_eq!(
        other.map(|n| (n.generation, n.superseded_until_ms)),
        Ok((1, 0))
    );
    // Two registrations of one ordinal at once (a pod restarted twice, quickly): each gets its
    // own generation, and the later one records the earlier one's lease.
    let registrations: Vec<_> = [10_000, 20_000]
        .into_iter()
        .map(|lease| {
            let s = store.clone();
            tokio::spawn(async move { s.register(7, "127.0.0.37:7070", lease).await })
        })
        .collect();
    let mut registered = Vec::new();
    for r in registrations {
        match r.await {
            Ok(Ok(n)) => registered.push(n),
            other => panic!("concurrent registration: {other:?}"),
        }
    }
    registered.sort_by_key(|n| n.generation);
    assert_eq!(
        registered.iter().map(|n| n.generation).collect::<Vec<_>>(),
        vec![3, 4]
    );
    assert_eq!(registered[0].superseded_until_ms, 6_000);
    assert_eq!(
        registered[1].superseded_until_ms,
        registered[0].lease_until_ms
    );
    let nodes = store.nodes().await.unwrap_or_default();
    assert_eq!(
        nodes
            .iter()
            .map(|n| (n.ordinal, n.generation))
            .collect::<Vec<_>>(),
        vec![(7, 4), (8, 1)]
    );
    assert_eq!(nodes[0], registered[1]);
}

/// Works on shards 0..4 (records created, unowned).
pub async fn transfer_moves_only_shards_still_held_by_the_expected_owner_and_bumps_each_epoch_by_one<
    S: Leases,
>(
    store: &S,
) {
    let (a, b) = (node(1, 1), node(2, 1));
    assert_eq!(
        store.transfer(&[0, 1, 2], None, Some(a)).await,
        Ok(vec![
            shard(0, Some(a), 1),
            shard(1, Some(a), 1),
            shard(2, Some(a), 1)
        ])
    );
    assert_eq!(
        store.transfer(&[3, 2, 1], Some(a), Some(b)).await,
        Ok(vec![
            shard(1, Some(b), 2),
            shard(2, Some(b), 2),
            shard(3, None, 0)
        ]),
        "transfer moves only shards still held by the expected owner and bumps each epoch by one"
    );
    // Another generation of the same ordinal is another owner; an owned shard is not unowned.
    let unchanged = Ok(vec![shard(0, Some(a), 1)]);
    assert_eq!(
        store.transfer(&[0], Some(node(1, 2)), Some(b)).await,
        unchanged
    );
    assert_eq!(store.transfer(&[0], None, Some(b)).await, unchanged);
    // Released (to no owner), that is an ownership change as well.
    assert_eq!(
        store.transfer(&[1], Some(b), None).await,
        Ok(vec![shard(1, None, 3)])
    );
    // A shard named twice moves once; unknown shards are not created.
    assert_eq!(
        store.transfer(&[2, 2, 999], Some(b), Some(a)).await,
        Ok(vec![shard(2, Some(a), 3)])
    );
    assert_eq!(store.transfer(&[], None, Some(a)).await, Ok(vec![]));
    let all = store.shards().await.unwrap_or_default();
    assert_eq!(
        all.get(..4),
        Some(
            &[
                shard(0, Some(a), 1),
                shard(1, None, 3),
                shard(2, Some(a), 3),
                shard(3, None, 0)
            ][..]
        )
    );
}

/// Works on `shards` (records created, unowned).
pub async fn two_nodes_claiming_the_same_unowned_shards_at_once_each_shard_ends_with_exactly_one_owner<
    S: Leases,
>(
    store: Arc<S>,
    shards: Vec<u32>,
) {
    let (a, b) = (node(3, 1), node(4, 1));
    let claim = |to: NodeRef| {
        let (s, shards) = (store.clone(), shards.clone());
        tokio::spawn(async move { s.transfer(&shards, None, Some(to)).await })
    };
    let (claim_a, claim_b) = (claim(a), claim(b));
    let won = |result: Result<Result<Vec<ShardRecord>, Error>, _>, by: NodeRef| match result {
        Ok(Ok(records)) => records
            .iter()
            .filter(|r| r.owner == Some(by))
            .map(|r| r.shard)
            .collect::<BTreeSet<u32>>(),
        other => panic!("claim by {by:?}: {other:?}"),
    };
    let won_a = won(claim_a.await, a);
    let won_b = won(claim_b.await, b);
    assert!(won_a.is_disjoint(&won_b), "{won_a:?} / {won_b:?}");
    let all: BTreeSet<u32> = won_a.union(&won_b).copied().collect();
    assert_eq!(
        all,
        shards.iter().copied().collect::<BTreeSet<u32>>(),
        "two nodes claiming the same unowned shards at once: each shard ends with exactly one owner"
    );
    let stored = store.shards().await.unwrap_or_default();
    for s in stored.iter().filter(|s| shards.contains(&s.shard)) {
        let winner = if won_a.contains(&s.shard) { a } else { b };
        assert_eq!(*s, shard(s.shard, Some(winner), 1), "changed exactly once");
    }
}

/// Node registrations and shard ownership. Needs a store without node or shard records.
pub async fn leases<S: Leases>(store: Arc<S>) {
    ensure_shards_is_idempotent_under_concurrent_callers(store.clone(), 16).await;
    a_second_registration_supersedes_the_first(store.clone()).await;
    transfer_moves_only_shards_still_held_by_the_expected_owner_and_bumps_each_epoch_by_one(
        store.as_ref(),
    )
    .await;
    two_nodes_claiming_the_same_unowned_shards_at_once_each_shard_ends_with_exactly_one_owner(
        store.clone(),
        (4..16).collect(),
    )
    .await;
    // Growing the shard count later adds records and leaves the existing ones as they are.
    let before = store.shards().await.unwrap_or_default();
    assert_eq!(store.ensure_shards(20).await, Ok(()));
    let after = store.shards().await.unwrap_or_default();
    assert_eq!(after.get(..16), Some(&before[..]));
    assert_eq!(
        after.get(16..),
        Some(&[16, 17, 18, 19].map(|s| shard(s, None, 0))[..])
    );
}

/// Everything a store several nodes share must pass beyond [`super::run_all`], on a fresh store.
pub async fn run_shared<S>(store: Arc<S>)
where
    S: SnapshotStore + Outbox + Leases,
{
    epoch_fencing(store.clone()).await;
    leases(store).await;
}
