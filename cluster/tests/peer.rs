//! The peer link over real TCP on 127.0.0.1: each server runs on its own thread and runtime, as
//! an actix arbiter would host it, and the client's connections run on a third runtime while the
//! test calls from its own. Every wait has a deadline; nothing sleeps to synchronise.

// Helpers outside #[test] fns: a failed setup step should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod peer_support;

use peer_support::*;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use emporium_cluster::peer::MAX_FRAME_LEN;
use emporium_cluster::{Notice, OwnerChange, PeerError, PeerReply, PeerRequest};
use futures_util::future::join_all;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn a_call_round_trips_with_the_callers_identity() {
    let io = io_runtime();
    let (probe, _started) = new_probe();
    let server = start_server(any_port(), 16, move || echo(probe));
    let client = client(&io, SECRET, 16);
    client.set_peer(0, server.addr);

    within("the calls", async {
        assert_eq!(
            client.call(0, &PeerRequest::Ping).await,
            Ok(PeerReply::Pong)
        );
        let notice = PeerRequest::Notify(Notice::Ownership {
            changes: vec![OwnerChange {
                shard: 3,
                owner: Some(0),
                generation: 7,
                epoch: 10,
            }],
        });
        assert_eq!(client.call(0, &notice).await, Ok(PeerReply::Ack));
        assert_eq!(
            client.call(0, &forward("alice", vec![1, 2, 3])).await,
            Ok(PeerReply::Reply(b"1/42:alice".to_vec()))
        );
    })
    .await;

    let sent = client.stats().snapshot();
    assert_eq!((sent.requests_sent, sent.connections_opened), (3, 1));
    assert_eq!(sent.latency.count, 3);
    assert!(sent.latency.sum_seconds > 0.0);
    eventually("3 requests served", || {
        server.stats.snapshot().requests_served == 3
    })
    .await;
    server.kill().await;
}

#[tokio::test]
async fn a_thousand_concurrent_calls_share_one_connection() {
    let io = io_runtime();
    let (probe, _started) = new_probe();
    let server = start_server(any_port(), 2_000, move || echo(probe));
    let client = client(&io, SECRET, 2_000);
    client.set_peer(0, server.addr);

    let calls = (0..1_000).map(|i| {
        let client = client.clone();
        async move {
            let key = format!("user-{i}");
            let reply = client.call(0, &forward(&key, vec![0; i % 50])).await;
            (key, reply)
        }
    });
    let results = within("1,000 calls", join_all(calls)).await;
    for (key, reply) in results {
        // Each caller got its own answer, whatever order the replies came back in.
        assert_eq!(
            reply,
            Ok(PeerReply::Reply(format!("1/42:{key}").into_bytes()))
        );
    }
    let sent = client.stats().snapshot();
    assert_eq!(sent.connections_opened, 1);
    assert_eq!(sent.requests_sent, 1_000);
    assert_eq!(sent.latency.count, 1_000);
    let served = server.stats.snapshot();
    assert_eq!(
        (served.connections_accepted, served.requests_served),
        (1, 1_000)
    );
    server.kill().await;
}

#[tokio::test]
async fn a_wrong_secret_is_refused_counted_and_never_dispatched() {
    let io = io_runtime();
    let (probe, _started) = new_probe();
    let runs = probe.runs.clone();
    let server = start_server(any_port(), 16, move || echo(probe));
    let intruder = client(&io, b"not-the-cluster-secret", 16);
    intruder.set_peer(0, server.addr);

    let refused = within("the call", intruder.call(0, &forward("alice", vec![1]))).await;
    assert!(matches!(refused, Err(PeerError::Refused(_))), "{refused:?}");
    assert!(refused.unwrap_err().is_safe_to_retry());
    eventually("the refusal to be counted", || {
        server.stats.snapshot().auth_refused == 1
    })
    .await;
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    assert_eq!(server.stats.snapshot().requests_served, 0);
    let seen = intruder.stats().snapshot();
    assert_eq!(
        (seen.refused, seen.connections_opened, seen.requests_sent),
        (1, 0, 0)
    );
    server.kill().await;
}

/// Writes `bytes` on a raw connection and reads until the server closes it.
async fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut seen = Vec::new();
    // End of stream or a reset: either way, closed.
    let _ = within("the server to close", stream.read_to_end(&mut seen)).await;
    seen
}

#[tokio::test]
async fn garbage_http_and_a_cut_hello_are_closed_counted_and_never_dispatched() {
    let (probe, _started) = new_probe();
    let runs = probe.runs.clone();
    let server = start_server(any_port(), 16, move || echo(probe));

    let answer = raw_exchange(server.addr, b"GET / HTTP/1.1\r\nHost: peer\r\n\r\n").await;
    // Whatever was read is the server's challenge, never an HTTP answer.
    assert!(!answer.starts_with(b"HTTP"));
    eventually("the HTTP request to be refused", || {
        server.stats.snapshot().auth_refused == 1
    })
    .await;

    raw_exchange(server.addr, &[0xa5; 64]).await;
    eventually("the garbage to be refused", || {
        server.stats.snapshot().auth_refused == 2
    })
    .await;

    // The right magic and then nothing: the handshake's own timeout closes it.
    let started = Instant::now();
    raw_exchange(server.addr, b"EMPEER01\0\0").await;
    assert!(started.elapsed() < emporium_cluster::peer::HANDSHAKE_TIMEOUT * 2);
    eventually("the cut hello to be refused", || {
        server.stats.snapshot().auth_refused == 3
    })
    .await;

    assert_eq!(runs.load(Ordering::SeqCst), 0);
    assert_eq!(server.stats.snapshot().connections_accepted, 3);
    server.kill().await;
}

#[tokio::test]
async fn a_killed_server_fails_the_pending_call_as_closed_and_a_restart_reconnects() {
    let io = io_runtime();
    let (probe, mut started) = new_probe();
    let server = start_server(any_port(), 16, move || hang(probe));
    let addr = server.addr;
    let client = client(&io, SECRET, 16);
    client.set_peer(0, addr);

    let pending = tokio::spawn({
        let client = client.clone();
        async move { client.call(0, &forward("alice", vec![1])).await }
    });
    within("the handler to start", started.recv()).await;
    server.kill().await;
    let outcome = within("the pending call", pending).await.unwrap();
    assert_eq!(outcome, Err(PeerError::Closed));
    assert!(!PeerError::Closed.is_safe_to_retry());

    let (probe, _started) = new_probe();
    let restarted = start_server(addr, 16, move || echo(probe));
    let reply = within(
        "a call after the restart",
        client.call(0, &forward("bob", vec![])),
    )
    .await;
    assert_eq!(reply, Ok(PeerReply::Reply(b"1/42:bob".to_vec())));
    let seen = client.stats().snapshot();
    assert_eq!((seen.connections_opened, seen.closed), (2, 1));
    restarted.kill().await;
}

#[tokio::test]
async fn a_handler_that_never_answers_times_out_within_the_bound() {
    let io = io_runtime();
    let (probe, _started) = new_probe();
    let server = start_server(any_port(), 16, move || hang(probe));
    let client = client(&io, SECRET, 16);
    client.set_peer(0, server.addr);

    let bound = Duration::from_millis(300);
    let started = Instant::now();
    let outcome = within(
        "the timeout",
        client.call_with_timeout(0, &forward("alice", vec![1]), bound),
    )
    .await;
    let waited = started.elapsed();
    assert_eq!(outcome, Err(PeerError::Timeout));
    // Upper margin for a shared, busy machine; the point is "bounded", not "fast".
    assert!(
        waited >= bound && waited < bound + Duration::from_secs(2),
        "waited {waited:?}"
    );
    assert_eq!(client.stats().snapshot().timeout, 1);
    // The link still works afterwards (over the same connection or a fresh one).
    let pong = within("a ping", client.call(0, &PeerRequest::Ping)).await;
    assert_eq!(pong, Ok(PeerReply::Pong));
    server.kill().await;
}

#[tokio::test]
async fn calls_beyond_the_clients_bound_are_overloaded_at_once() {
    let io = io_runtime();
    let (probe, mut started) = new_probe();
    let server = start_server(any_port(), 16, move || hang(probe));
    let client = client(&io, SECRET, 2);
    client.set_peer(0, server.addr);

    let mut held = Vec::new();
    for key in ["a", "b"] {
        let client = client.clone();
        held.push(tokio::spawn(async move {
            client.call(0, &forward(key, vec![])).await
        }));
        within("a handler to start", started.recv()).await;
    }
    let begun = Instant::now();
    let third = within("the third call", client.call(0, &PeerRequest::Ping)).await;
    assert_eq!(third, Err(PeerError::Overloaded));
    assert!(third.unwrap_err().is_safe_to_retry());
    // At once, not after the 5 s request timeout (margin for a busy machine).
    assert!(begun.elapsed() < Duration::from_secs(1));
    assert_eq!(client.stats().snapshot().overloaded, 1);
    assert_eq!(client.stats().snapshot().requests_sent, 2);
    for call in held {
        call.abort();
    }
    server.kill().await;
}

#[tokio::test]
async fn requests_beyond_the_servers_bound_are_answered_overloaded_without_running() {
    let io = io_runtime();
    let (probe, mut started) = new_probe();
    let runs = probe.runs.clone();
    let server = start_server(any_port(), 2, move || hang(probe));
    let client = client(&io, SECRET, 100);
    client.set_peer(0, server.addr);

    let mut held = Vec::new();
    for key in ["a", "b"] {
        let client = client.clone();
        held.push(tokio::spawn(async move {
            client.call(0, &forward(key, vec![])).await
        }));
        within("a handler to start", started.recv()).await;
    }
    let third = within("the third call", client.call(0, &PeerRequest::Ping)).await;
    assert_eq!(third, Err(PeerError::Overloaded));
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(server.stats.snapshot().requests_shed, 1);
    for call in held {
        call.abort();
    }
    server.kill().await;
}

#[tokio::test]
async fn oversize_frames_are_rejected_on_both_sides() {
    let io = io_runtime();
    let (probe, _started) = new_probe();
    let runs = probe.runs.clone();
    let server = start_server(any_port(), 16, move || echo(probe));
    let client = client(&io, SECRET, 16);
    client.set_peer(0, server.addr);

    // The client refuses to send it: nothing goes out, not even a connection.
    let huge = vec![0u8; usize::try_from(MAX_FRAME_LEN).unwrap()];
    let outcome = within("the oversize call", client.call(0, &forward("alice", huge))).await;
    assert!(matches!(outcome, Err(PeerError::Codec(_))), "{outcome:?}");
    let seen = client.stats().snapshot();
    assert_eq!((seen.connections_opened, seen.requests_sent), (0, 0));

    // A peer that announces one anyway (handshake done by hand, from the documented layout) is
    // cut off before the server reads or allocates it.
    let mut stream = within("connecting", TcpStream::connect(server.addr))
        .await
        .unwrap();
    let mut challenge = [0u8; 41];
    within("the challenge", stream.read_exact(&mut challenge))
        .await
        .unwrap();
    assert_eq!(&challenge[..9], b"EMPEER01\x01");
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(SECRET).unwrap();
    mac.update(&challenge[9..]);
    mac.update(&7u32.to_be_bytes());
    mac.update(&1u64.to_be_bytes());
    let mut hello = b"EMPEER01".to_vec();
    hello.extend_from_slice(&7u32.to_be_bytes());
    hello.extend_from_slice(&1u64.to_be_bytes());
    hello.extend_from_slice(&mac.finalize().into_bytes());
    stream.write_all(&hello).await.unwrap();
    assert_eq!(within("the verdict", stream.read_u8()).await.unwrap(), 1);

    let mut header = (MAX_FRAME_LEN + 1).to_be_bytes().to_vec();
    header.push(1);
    header.extend_from_slice(&1u64.to_be_bytes());
    stream.write_all(&header).await.unwrap();
    let mut rest = Vec::new();
    let _ = within("the server to close", stream.read_to_end(&mut rest)).await;
    assert!(rest.is_empty());
    eventually("the bad frame to be counted", || {
        server.stats.snapshot().bad_frames == 1
    })
    .await;
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    server.kill().await;
}

#[tokio::test]
async fn unknown_removed_and_down_peers_are_unreachable_and_safe_to_retry() {
    let io = io_runtime();
    let client = client(&io, SECRET, 16);
    let unknown = within("the call", client.call(5, &PeerRequest::Ping)).await;
    assert!(
        matches!(unknown, Err(PeerError::Unreachable(_))),
        "{unknown:?}"
    );

    // A port nothing listens on.
    let down = std::net::TcpListener::bind(any_port()).unwrap();
    let down_addr = down.local_addr().unwrap();
    drop(down);
    client.set_peer(5, down_addr);
    let refused = within("the call", client.call(5, &PeerRequest::Ping)).await;
    assert!(
        matches!(refused, Err(PeerError::Unreachable(_))),
        "{refused:?}"
    );
    assert!(refused.unwrap_err().is_safe_to_retry());

    client.remove_peer(5);
    let removed = within("the call", client.call(5, &PeerRequest::Ping)).await;
    assert!(
        matches!(removed, Err(PeerError::Unreachable(_))),
        "{removed:?}"
    );
    assert_eq!(client.stats().snapshot().unreachable, 3);
}
