//! A node killed with SIGKILL under load, on a three-node cluster of real `emporium` processes
//! (127.0.0.11..13) with the shared store, DNS discovery and the readiness-checking balancer:
//! requests for its shards are answered (503 + `Retry-After`) rather than held, its shards are
//! taken over once its claim expires, and no acknowledged add is lost. Every wait is on a
//! condition with a deadline; every load loop is bounded in count and time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::cluster::{ClusterOpts, TestCluster};
use common::*;
use futures_util::future::join_all;

use common::failure::*;

/// Where the kill -9 run is.
const BEFORE_KILL: u8 = 0;
const DEAD_NOT_TAKEN_OVER: u8 = 1;
const TAKEN_OVER: u8 = 2;
const STOP: u8 = 3;

/// 8 shoppers add to their carts through the balancer while the node owning half
/// of them is SIGKILLed. Every request is answered within 10 s (the dead node's shards answer a
/// retryable 503 with `Retry-After`, never a hang); once its claim expired the survivors take
/// its shards over and the same shoppers' adds succeed again; every acknowledged add is in its
/// cart; the killed node, started again, rejoins and the cluster settles with it.
///
/// The victim is taken out of the balancer just before the kill (as the ALB's health check does
/// within one interval): the test is about the cluster, so no request is sent to a dead address
/// by the balancer itself; requests for the victim's shards still reach it through forwarding.
#[actix_rt::test]
async fn a_node_killed_with_sigkill_under_load_answers_for_its_shards_and_loses_no_acknowledged_add(
) {
    let mut cluster = TestCluster::start(3, ClusterOpts::default());
    let lb = cluster.lb();
    let admin = admin_token(&lb).await;
    create_product(&lb, &admin, "Nine Lives", "KILL-9", 1.25, None).await;

    let victim: u32 = 1;
    let survivors: Vec<u32> = vec![0, 2];
    let owners = cluster.owners(&admin).await;
    // Four shoppers whose shard the victim owns, four elsewhere.
    let (mut doomed, mut safe) = (Vec::new(), Vec::new());
    for i in 0..1000 {
        let email = format!("shopper{i}@example.com");
        let on_victim = owners[shard_of(&email) as usize] == Some(u64::from(victim));
        if on_victim && doomed.len() < 4 {
            doomed.push(email);
        } else if !on_victim && safe.len() < 4 {
            safe.push(email);
        }
        if doomed.len() == 4 && safe.len() == 4 {
            break;
        }
    }
    assert_eq!((doomed.len(), safe.len()), (4, 4), "owners: {owners:?}");
    let emails: Vec<String> = doomed.iter().chain(safe.iter()).cloned().collect();
    let mut tokens = Vec::new();
    for (i, email) in emails.iter().enumerate() {
        tokens.push(register(&lb, &format!("shopper{i}"), email, PASSWORD).await);
    }

    let phase = Rc::new(Cell::new(BEFORE_KILL));
    // (shopper, phase the request started in, answer)
    let log: Rc<RefCell<Vec<(usize, u8, Answer)>>> = Rc::default();
    const BOUND: Duration = Duration::from_secs(10);
    const MAX_ADDS_PER_SHOPPER: usize = 400;
    let run_started = Instant::now();

    let shoppers = tokens.iter().enumerate().map(|(i, token)| {
        let (phase, log, lb) = (phase.clone(), log.clone(), &lb);
        async move {
            for _ in 0..MAX_ADDS_PER_SHOPPER {
                let at = phase.get();
                if at == STOP || run_started.elapsed() > Duration::from_secs(120) {
                    break;
                }
                let answer = add_once(lb, token, "KILL-9", BOUND).await;
                let failed = answer.status != Some(204);
                log.borrow_mut().push((i, at, answer));
                if failed {
                    // A client backs off a little after a 503 (bounded, not a synchronisation).
                    actix_rt::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    });

    let acks_in = |log: &Vec<(usize, u8, Answer)>, p: u8, who: Option<usize>| {
        log.iter()
            .filter(|(i, at, a)| *at == p && a.status == Some(204) && who.is_none_or(|w| w == *i))
            .count()
    };

    let mut kill_to_takeover = Duration::ZERO;
    let controller = async {
        // Load runs on every shopper before the kill.
        let deadline = Instant::now() + Duration::from_secs(30);
        while (0..8).any(|i| acks_in(&log.borrow(), BEFORE_KILL, Some(i)) < 3) {
            assert!(Instant::now() < deadline, "the shoppers made no progress");
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
        cluster
            .balancer
            .set_backends(backends_of(&cluster, &survivors));
        let killed_at = Instant::now();
        phase.set(DEAD_NOT_TAKEN_OVER);
        cluster.nodes.get_mut(&victim).unwrap().kill9();
        publish_only(&cluster, &survivors);
        // The victim's claim expires (claim_ttl_secs = 4) and the survivors take its shards.
        let served = wait_settled_among(&cluster, &survivors, Duration::from_secs(30)).await;
        kill_to_takeover = killed_at.elapsed();
        phase.set(TAKEN_OVER);
        eprintln!(
            "kill -9 of node {victim}: survivors serve {served:?} after {kill_to_takeover:?}"
        );
        // The same shoppers' adds succeed again.
        let deadline = Instant::now() + Duration::from_secs(30);
        while (0..8).any(|i| acks_in(&log.borrow(), TAKEN_OVER, Some(i)) < 5) {
            assert!(
                Instant::now() < deadline,
                "adds did not succeed again after the takeover: {:?}",
                (0..8)
                    .map(|i| acks_in(&log.borrow(), TAKEN_OVER, Some(i)))
                    .collect::<Vec<_>>()
            );
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
        phase.set(STOP);
    };
    futures_util::future::join(join_all(shoppers), controller).await;

    let log = log.take();
    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    for (_, _, a) in &log {
        *by_status
            .entry(a.status.map_or("none".into(), |s| s.to_string()))
            .or_default() += 1;
    }
    let slowest = log.iter().map(|(_, _, a)| a.took).max().unwrap();
    let dead_phase_503 = log
        .iter()
        .filter(|(_, at, a)| *at == DEAD_NOT_TAKEN_OVER && a.status == Some(503))
        .count();
    let doomed_answered_while_dead = log
        .iter()
        .filter(|(i, at, a)| *i < 4 && *at == DEAD_NOT_TAKEN_OVER && a.status.is_some())
        .count();
    eprintln!(
        "kill -9 run: {} requests, statuses {by_status:?}, slowest {slowest:?}, 503 while dead \
         {dead_phase_503}, answered for the dead node's shoppers while dead \
         {doomed_answered_while_dead}, takeover after {kill_to_takeover:?}",
        log.len()
    );

    // Every request answered, within the bound, with a success or a retryable 503.
    for (i, at, a) in &log {
        assert!(
            a.status.is_some() && a.took < BOUND,
            "shopper{i} (phase {at}): no answer within {BOUND:?}: {a:?}"
        );
        match a.status {
            Some(204) => {}
            Some(503) => assert!(a.retry_after, "503 without Retry-After: {a:?}"),
            _ => panic!(
                "shopper{i} (phase {at}): unexpected answer {:?} after {:?}: {}",
                a.status, a.took, a.detail
            ),
        }
    }
    assert!(
        doomed_answered_while_dead > 0 && dead_phase_503 > 0,
        "the dead node's shards got no answer, or no 503, before the takeover \
         ({doomed_answered_while_dead} answered, {dead_phase_503} 503s)"
    );
    // Shoppers whose shards live on the survivors never noticed the death.
    let disturbed: Vec<&(usize, u8, Answer)> = log
        .iter()
        .filter(|(i, _, a)| *i >= 4 && a.status != Some(204))
        .collect();
    assert!(
        disturbed.is_empty(),
        "adds for the survivors' shards failed: {disturbed:?}"
    );
    assert_eq!(
        cluster
            .balancer
            .bad_gateway
            .load(std::sync::atomic::Ordering::Relaxed),
        0,
        "the balancer sent a request to the dead node"
    );
    // After the takeover, adds are not refused any more.
    let after: Vec<&(usize, u8, Answer)> =
        log.iter().filter(|(_, at, _)| *at == TAKEN_OVER).collect();
    assert!(
        after.iter().all(|(_, _, a)| a.status == Some(204)),
        "adds refused after the takeover: {:?}",
        after
            .iter()
            .filter(|(_, _, a)| a.status != Some(204))
            .collect::<Vec<_>>()
    );

    // The killed node starts again with the same ordinal and rejoins.
    cluster.publish();
    cluster.nodes.get_mut(&victim).unwrap().start_again();
    cluster
        .balancer
        .set_backends(backends_of(&cluster, &[0, 1, 2]));
    // Settled, and the returning ordinal has its shards back (the survivors hand them over once
    // they see it live: moments after it is ready, so this waits on that condition).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let served = cluster.wait_settled(Duration::from_secs(60));
        if served.get(&victim).is_some_and(|n| *n > 0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the restarted node {victim} got no shard back: {served:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Exactly the shards it had before the kill: nothing else moved.
    let again = cluster.owners(&admin).await;
    let of_victim = |owners: &[Option<u64>]| -> Vec<usize> {
        (0..owners.len())
            .filter(|s| owners[*s] == Some(u64::from(victim)))
            .collect()
    };
    assert_eq!(
        of_victim(&again),
        of_victim(&owners),
        "the restarted node's shards differ from the ones it had before the kill"
    );
    assert_eq!(again, owners, "shards moved between the survivors");

    // Every acknowledged add is in its cart; a 503 may or may not have been applied (a command
    // in flight on the node when it died answers 503 "no reply"), so it is bounded above by them.
    let mut applied_503 = 0;
    for (i, token) in tokens.iter().enumerate() {
        let acked = log
            .iter()
            .filter(|(w, _, a)| *w == i && a.status == Some(204))
            .count() as i64;
        let unsure = log
            .iter()
            .filter(|(w, _, a)| *w == i && a.status == Some(503))
            .count() as i64;
        for reader in [&lb, cluster.node(victim)] {
            let cart = cart_map(reader, token).await;
            let q = cart.get("KILL-9").copied().unwrap_or(0);
            assert!(
                q >= acked && q <= acked + unsure,
                "shopper{i}: cart has {q}, {acked} adds acknowledged, {unsure} answered 503 \
                 (read through {}:{})",
                reader.host(),
                reader.port()
            );
            if std::ptr::eq(reader, &lb) {
                applied_503 += q - acked;
            }
        }
    }
    eprintln!("kill -9 run: every acknowledged add is in its cart; {applied_503} adds answered 503 were applied");
}
