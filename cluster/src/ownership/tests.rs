use super::*;

fn table() -> Ownership {
    let t = Ownership::cluster(
        ShardMap::new(4).unwrap(),
        1,
        HoldOptions {
            timeout: Duration::from_millis(300),
            max_held: 2,
        },
    );
    t.set_generation(7);
    t.set_claim_until(Instant::now() + Duration::from_secs(60));
    t
}

fn mine(t: &Ownership, shard: u32, epoch: u64) {
    t.apply(
        ShardId(shard),
        Event::Record {
            owner: Some(t.me()),
            epoch: Epoch(epoch),
        },
    );
}

#[tokio::test]
async fn single_node_admits_everything_locally_at_epoch_zero() {
    let t = Ownership::single_node(ShardMap::new(8).unwrap());
    match t.admit_test(ShardId(3)).await {
        Ok(Admission::Local(g)) => assert_eq!(g.epoch(), Epoch(0)),
        other => panic!("{other:?}"),
    }
    assert!(t.may_write(ShardId(3), Epoch(0)));
}

#[tokio::test]
async fn a_held_request_is_admitted_when_the_shard_arrives() {
    let t = table();
    let t2 = t.clone();
    let waiter =
        tokio::spawn(
            async move { matches!(t2.admit_test(ShardId(2)).await, Ok(Admission::Local(_))) },
        );
    tokio::task::yield_now().await;
    mine(&t, 2, 1);
    assert!(waiter.await.unwrap());
}

#[tokio::test]
async fn a_held_request_times_out_as_retryable_and_the_hold_is_bounded() {
    let t = table();
    let (a, b, c) = tokio::join!(t.admit_test(ShardId(0)), t.admit_test(ShardId(0)), async {
        tokio::task::yield_now().await;
        t.admit_test(ShardId(0)).await
    });
    assert_eq!(a.unwrap_err(), RouteError::InMotion { shard: 0 });
    assert_eq!(b.unwrap_err(), RouteError::InMotion { shard: 0 });
    assert_eq!(c.unwrap_err(), RouteError::TooManyHeld);
    assert_eq!(t.stats().held_now.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn a_drain_waits_for_commands_in_flight_and_holds_new_ones() {
    let t = table();
    mine(&t, 1, 3);
    let guard = match t.admit_test(ShardId(1)).await {
        Ok(Admission::Local(g)) => g,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        t.apply(ShardId(1), Event::Release { to: None }),
        Some(Action::Drain)
    );
    assert!(!t.drain_all(&[ShardId(1)], Duration::from_millis(20)).await);
    // The command in flight may still write; a new one is held.
    assert!(t.may_write(ShardId(1), Epoch(3)));
    assert!(matches!(
        t.admit_test(ShardId(1)).await,
        Err(RouteError::InMotion { .. })
    ));
    drop(guard);
    assert!(t.drain_all(&[ShardId(1)], Duration::from_secs(5)).await);
}

#[tokio::test]
async fn shards_drained_together_serve_the_commands_their_commands_issue() {
    let t = table();
    mine(&t, 1, 3);
    mine(&t, 2, 3);
    // A checkout in flight on shard 1 …
    let checkout = match t.admit(ShardId(1), false).await {
        Ok(Admission::Local(g)) => g,
        other => panic!("{other:?}"),
    };
    for s in [1, 2] {
        t.apply(ShardId(s), Event::Release { to: None });
    }
    let t2 = t.clone();
    let drain = tokio::spawn(async move {
        t2.drain_all(&[ShardId(1), ShardId(2)], Duration::from_secs(5))
            .await
    });
    tokio::task::yield_now().await;
    // … reserves stock on shard 2, leaving too: served, not held behind the drain.
    match t.admit(ShardId(2), true).await {
        Ok(Admission::Local(reserve)) => drop(reserve),
        other => panic!("a nested command was not served: {other:?}"),
    }
    // A new command is held.
    assert!(t.admit(ShardId(2), false).await.is_err());
    drop(checkout);
    assert!(
        drain.await.unwrap(),
        "the drain completes once both are idle"
    );
    assert!(
        t.admit(ShardId(2), true).await.is_err(),
        "once closed, nested commands wait for the transfer too"
    );
}

#[tokio::test]
async fn a_lapsed_claim_serves_and_writes_nothing() {
    let t = table();
    mine(&t, 0, 2);
    t.set_claim_until(Instant::now());
    assert!(!t.may_write(ShardId(0), Epoch(2)));
    assert_eq!(t.stats().fenced_writes.load(Ordering::Relaxed), 1);
    assert!(matches!(
        t.admit_test(ShardId(0)).await,
        Err(RouteError::InMotion { .. })
    ));
}

#[tokio::test]
async fn a_remote_shard_is_forwarded() {
    let t = table();
    t.apply(
        ShardId(3),
        Event::Record {
            owner: Some(NodeId {
                ordinal: 2,
                generation: 1,
            }),
            epoch: Epoch(4),
        },
    );
    assert!(matches!(
        t.admit_test(ShardId(3)).await,
        Ok(Admission::Remote { owner: 2 })
    ));
}
