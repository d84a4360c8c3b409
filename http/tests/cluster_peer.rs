//! The peer port: a request without the cluster secret, or with a wrong one, is refused, counted
//! and changes nothing; the API port never speaks the peer protocol.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::cluster::{node_ip, ClusterOpts, TestCluster, CLUSTER_SECRET};
use common::*;
use emporium_cluster::{
    Forwarded, PeerClient, PeerClientOptions, PeerError, PeerReply, PeerRequest,
};

use common::failure::*;

/// The engine's encoding of a cart add (`CartMsg::Change(CartCommand::Add { .. })`): the codec's
/// format marker 1, then bincode 1 (u32 LE variant indexes, u64 LE string lengths). The same
/// bytes sent with the right secret are a real add (checked below), so a refusal is meaningful.
fn cart_add_command(sku: &str, product_id: &str, quantity: i64) -> Vec<u8> {
    let mut out = vec![1u8];
    out.extend_from_slice(&1u32.to_le_bytes()); // CartMsg::Change
    out.extend_from_slice(&0u32.to_le_bytes()); // CartCommand::Add
    for s in [sku, product_id] {
        out.extend_from_slice(&(s.len() as u64).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    out.extend_from_slice(&quantity.to_le_bytes());
    out.push(0); // available: None (stock not tracked)
    out.push(0); // op: None
    out
}

/// `Ok(CartReply::Changed)` in the engine's encoding.
const CART_CHANGED: [u8; 9] = [1, 0, 0, 0, 0, 1, 0, 0, 0];

fn peer_client(secret: &[u8]) -> PeerClient {
    PeerClient::new(PeerClientOptions {
        secret: secret.to_vec(),
        ordinal: 7,
        generation: 1,
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        max_in_flight_per_peer: 16,
    })
}

/// A frame as the peer link sends it: u32 BE length | u8 type (1 = request) | u64 BE id | payload.
fn request_frame(id: u64, request: &PeerRequest) -> Vec<u8> {
    let payload = emporium_cluster::wire::encode_request(request).unwrap();
    let mut out = Vec::new();
    out.extend_from_slice(&(u32::try_from(payload.len()).unwrap() + 9).to_be_bytes());
    out.push(1);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&payload);
    out
}

/// Writes `bytes` to `addr` and reads what comes back until the other side closes (bounded by a
/// 10 s read timeout and 64 KiB).
fn exchange(addr: SocketAddr, read_first: usize, bytes: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut first = vec![0u8; read_first];
    if read_first > 0 {
        s.read_exact(&mut first).unwrap();
    }
    let _ = s.write_all(bytes);
    let mut rest = Vec::new();
    let mut buf = [0u8; 4096];
    while rest.len() < 64 << 10 {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => rest.extend_from_slice(&buf[..n]),
        }
    }
    (first, rest)
}

/// a peer request with a wrong cluster secret, with none, or not speaking the
/// handshake is refused, counted in `emporium_peer_auth_refused_total`, and changes nothing (a
/// forwarded cart add does not reach the cart); the API port does not take peer messages (the
/// handshake and a framed forwarded add get an HTTP error or a closed connection, and the cart is
/// unchanged). The same forwarded add with the right secret does reach the cart (a control).
#[actix_rt::test]
async fn peer_requests_without_the_cluster_secret_are_refused_counted_and_change_nothing() {
    let cluster = TestCluster::start(3, ClusterOpts::default());
    let lb = cluster.lb();
    let admin = admin_token(&lb).await;
    let product = create_product(&lb, &admin, "Peer Guard", "PEER-1", 4.0, None).await;
    let product_id = id_of(&product);
    let email = "peer-target@example.com";
    let token = register(&lb, "peertarget", email, PASSWORD).await;
    assert_eq!(add_to_cart(&lb, &token, "PEER-1", 1).await, 204);
    let shard = shard_of(email);
    let owner = owner_seen_by(cluster.node(0), &admin, shard).await.unwrap();
    let peer_addr = SocketAddr::from((node_ip(owner), cluster.peer_port));
    let api_addr = SocketAddr::from((node_ip(owner), cluster.api_port));
    let forward = PeerRequest::Forward(Forwarded {
        kind: "cart".into(),
        key: email.into(),
        shard,
        epoch: 0,
        hops: 1,
        command: cart_add_command("PEER-1", &product_id, 5),
        nested: false,
    });
    let unchanged = || async {
        for reader in [&lb, cluster.node(owner)] {
            assert_eq!(
                cart_map(reader, &token).await,
                BTreeMap::from([("PEER-1".to_string(), 1)]),
                "a refused peer request changed the cart"
            );
        }
    };
    let refused_now = || async {
        counter(
            &metrics_of(cluster.node(owner)).await.unwrap(),
            "emporium_peer_auth_refused_total",
        )
    };
    let refused_before = refused_now().await;

    // 1. A wrong secret, and an empty one: the handshake is refused, the forward never runs.
    for secret in [&b"not-the-cluster-secret-0123456789"[..], &b""[..]] {
        let client = peer_client(secret);
        client.set_peer(owner, peer_addr);
        let r = client.call(owner, &forward).await;
        assert!(
            matches!(r, Err(PeerError::Refused(_))),
            "a forward with secret {:?} was not refused: {r:?}",
            String::from_utf8_lossy(secret)
        );
    }
    // 2. The right magic with no proof of the secret (a zero MAC), then a framed forward.
    let mut hello = b"EMPEER01".to_vec();
    hello.extend_from_slice(&7u32.to_be_bytes());
    hello.extend_from_slice(&1u64.to_be_bytes());
    hello.extend_from_slice(&[0u8; 32]);
    let mut forged = hello.clone();
    forged.extend_from_slice(&request_frame(1, &forward));
    let (server_hello, answer) = exchange(peer_addr, 41, &forged);
    assert_eq!(&server_hello[..8], b"EMPEER01", "the peer port's hello");
    assert_eq!(
        answer,
        vec![0u8],
        "verdict 0 (refused), then closed; got {answer:?}"
    );
    // 3. No handshake at all: a framed forward straight away, and an HTTP request.
    let (_, answer) = exchange(peer_addr, 41, &request_frame(2, &forward));
    assert!(
        answer.is_empty(),
        "answered a frame without a handshake: {answer:?}"
    );
    let (_, answer) = exchange(
        peer_addr,
        41,
        b"POST /api/cart/items HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    );
    assert!(
        answer.is_empty(),
        "answered HTTP on the peer port: {answer:?}"
    );

    // Counted: two clients, the forged hello, the bare frame, the HTTP request.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let refused = refused_now().await;
        if refused >= refused_before + 5.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "emporium_peer_auth_refused_total rose from {refused_before} to {refused}, not by 5"
        );
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    unchanged().await;

    // 4. The API port takes no peer messages: the hello and a framed forward get an HTTP error
    //    or a closed connection, never the peer protocol; a peer client cannot connect there.
    let (_, answer) = exchange(api_addr, 0, &forged);
    let text = String::from_utf8_lossy(&answer);
    assert!(
        !answer.starts_with(b"EMPEER01"),
        "the API port speaks the peer protocol"
    );
    if !answer.is_empty() {
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok());
        assert!(
            text.starts_with("HTTP/1.1 ") && status.is_some_and(|s| (400..600).contains(&s)),
            "the API port answered peer bytes with something other than an HTTP error: {text:?}"
        );
    }
    let client = peer_client(CLUSTER_SECRET.as_bytes());
    client.set_peer(owner, api_addr);
    let r = client.call(owner, &forward).await;
    assert!(
        r.is_err(),
        "a peer call to the API port got an answer: {r:?}"
    );
    unchanged().await;

    // Control: the same bytes with the cluster secret, on the peer port, are a real add.
    let client = peer_client(CLUSTER_SECRET.as_bytes());
    client.set_peer(owner, peer_addr);
    match client.call(owner, &forward).await {
        Ok(PeerReply::Reply(bytes)) => assert_eq!(bytes, CART_CHANGED.to_vec(), "reply"),
        other => panic!("the authenticated forward failed: {other:?}"),
    }
    assert_eq!(
        cart_map(&lb, &token).await,
        BTreeMap::from([("PEER-1".to_string(), 6)]),
        "the authenticated forward of +5"
    );
}
