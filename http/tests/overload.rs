//! Hostile load that costs the server more than it costs the client: a flood of logins (each an
//! argon2id check, ~19 MiB and tens of milliseconds) is answered 401 or a retryable 503 while the
//! server's memory stays bounded, and the store serves normally right after.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::json;

/// Peak resident memory of a process so far, in KiB (`VmHWM`).
fn peak_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM in {status}"))
}

/// One login over a connection of its own; the whole answer, headers included.
fn login_over_fresh_connection(port: u16, body: &str) -> String {
    let json = [("Content-Type", "application/json")];
    let path = "/api/users/login";
    let raw = raw_exchange(port, "POST", path, &json, body.as_bytes().to_vec()).unwrap();
    String::from_utf8_lossy(&raw).into_owned()
}

fn wrong_login(port: u16) -> String {
    login_over_fresh_connection(
        port,
        r#"{"email":"flo@example.com","password":"not-the-password"}"#,
    )
}

#[actix_rt::test]
async fn a_login_flood_gets_401_or_503_within_bounded_memory() {
    // The server hashes on cores − 1 (at least 1) and lets 128 per core wait; the flood is more.
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let admitted = cores.saturating_sub(1).max(1) + 128 * cores;
    let flood = admitted + 150;
    let node = Node::start(NodeOpts::new().demo_catalog(false));
    let pid = node.pid().unwrap();
    register(&node, "flo", "flo@example.com", PASSWORD).await;
    let before = peak_kib(pid);

    // Each login on a connection of its own, from a thread of its own: all in flight at once.
    let port = node.port();
    let answers: Vec<String> = std::thread::scope(|scope| {
        let floods: Vec<_> = (0..flood)
            .map(|_| scope.spawn(move || wrong_login(port)))
            .collect();
        floods.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let mut refused = 0;
    for answer in &answers {
        let status = answer.get(9..12).unwrap_or_default();
        match status {
            "401" => {}
            "503" => {
                refused += 1;
                let lower = answer.to_ascii_lowercase();
                assert!(
                    lower.contains("retry-after:"),
                    "503 without Retry-After: {answer}"
                );
                assert!(answer.contains("\"unavailable\""), "{answer}");
            }
            _ => panic!("login during the flood answered: {answer}"),
        }
    }
    let grown_mib = peak_kib(pid).saturating_sub(before) / 1024;
    // At most a hash (~19 MiB) per core at a time. Unbounded, 150 logins took ~1.5 GB.
    let bound = 100 + 25 * cores as u64;
    assert!(
        grown_mib < bound,
        "peak memory grew {grown_mib} MiB (bound {bound}) during {flood} logins"
    );
    assert!(
        refused > 0,
        "{flood} logins at once, {admitted} admitted, none refused"
    );
    eprintln!("{flood} logins: {refused} refused with 503, peak memory +{grown_mib} MiB");

    // Right after, a good login succeeds, over a fresh connection like the flood's: the test's
    // pooled awc client, after the flood, failed its next connect inside the client
    // ("connector has been disconnected") while the server answered fresh connections normally.
    let good = format!(r#"{{"email":"flo@example.com","password":"{PASSWORD}"}}"#);
    let answer = login_over_fresh_connection(node.port(), &good);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(blocking_get(node.port(), "/healthz").map(|r| r.0), Ok(200));
}

/// A valid token padded with spaces is the same token (one cache entry, not one per padding), and
/// tokens longer than any the server issues are refused unread.
#[actix_rt::test]
async fn padded_tokens_are_one_token_and_huge_ones_are_refused() {
    let node = Node::start(NodeOpts::new().demo_catalog(false));
    let pid = node.pid().unwrap();
    let token = register(&node, "pad", "pad@example.com", PASSWORD).await;
    let get = |authz: String| {
        let node = &node;
        async move {
            let auth = Auth::Raw(authz);
            node.send(awc::http::Method::GET, "/api/cart", &auth, &[], None)
                .await
        }
    };
    assert_eq!(get(format!("Bearer {token}")).await.status, 200);
    let before = peak_kib(pid);
    for n in 0..1_500 {
        let padded = format!("Bearer {}{token}", " ".repeat(60_000 + n));
        assert_eq!(get(padded).await.status, 200);
    }
    let grown_mib = peak_kib(pid).saturating_sub(before) / 1024;
    // Keyed by the padded text, these took ~130 KB each (~190 MB here).
    assert!(
        grown_mib < 40,
        "peak memory grew {grown_mib} MiB over 1,500 padded tokens"
    );
    let huge = format!("Bearer {token}.{}", "a".repeat(4_000));
    let r = get(huge).await;
    assert_error("a 4 KB token", (r.status, &r.body), 401);
}

/// Paths longer than any route takes are refused before routing (414), order ids that cannot be
/// orders, or are nobody's, are 404 without activating an actor, and logins with unknown emails
/// activate none either.
#[actix_rt::test]
async fn long_paths_and_unknown_order_ids_cost_nothing_lasting() {
    let node = Node::start(NodeOpts::new().demo_catalog(false));
    let token = register(&node, "olly", "olly@example.com", PASSWORD).await;
    let long = format!("/api/products/sku/{}", "a".repeat(3_000));
    let (s, b) = node.get(&long, None).await;
    assert_error("a 3 KB path", (s, &b), 414);
    assert_eq!(b["error"], "uri_too_long");

    for i in 0..100 {
        let ids = [
            format!("{:032x}", 0xfeed_0000u128 + i),
            "x".repeat(1_000 + i as usize),
        ];
        for id in ids {
            let (s, b) = node
                .post(
                    &format!("/api/orders/{id}/cancel"),
                    Some(&token),
                    json!(null),
                )
                .await;
            assert_error("cancel of an unknown order", (s, &b), 404);
            assert_eq!(
                node.get(&format!("/api/orders/{id}"), Some(&token)).await.0,
                404
            );
        }
    }
    // Logins with emails nobody registered read the store; no user actor is started for them.
    for i in 0..20 {
        let body = json!({"email": format!("nobody{i}@example.com"), "password": "whatever-123"});
        assert_eq!(node.post("/api/users/login", None, body).await.0, 401);
    }
    let text = node.metrics().await;
    let active = |kind| metric(&text, "emporium_actors_active", &[("kind", kind)]);
    assert_eq!(
        active("order").unwrap_or(0.0),
        0.0,
        "order actors for unknown ids"
    );
    assert_eq!(
        active("user"),
        Some(1.0),
        "user actors beyond the one registered"
    );
}

/// A node whose requests get 1 s to arrive, sent `partial` (a request that never finishes): the
/// node, its answer read to the end of the stream (the server closes the connection after its
/// 408), and how long that answer took.
fn unfinished_request(partial: &str) -> (Node, String, std::time::Duration) {
    use std::io::{Read, Write};
    let node = Node::start(
        NodeOpts::new()
            .demo_catalog(false)
            .env("EMPORIUM_BODY_TIMEOUT_SECS", "1"),
    );
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", node.port())).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    conn.write_all(partial.as_bytes()).unwrap();
    let started = std::time::Instant::now();
    let mut answer = String::new();
    let read = conn.read_to_string(&mut answer);
    assert!(read.is_ok(), "connection not closed: {read:?}, {answer}");
    (node, answer, started.elapsed())
}

/// A body that never finishes arriving is answered 408 once `body_timeout_secs` has passed, and
/// its connection is not kept.
#[actix_rt::test]
async fn an_unfinished_body_times_out() {
    let (node, answer, took) = unfinished_request(
        "POST /api/users/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n{\"email\":",
    );
    assert!(took < std::time::Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    assert_eq!(node.get("/healthz", None).await.0, 200);
}

/// Filters take at most 50 distinct values; repeats of the same value are fine.
#[actix_rt::test]
async fn filters_take_a_bounded_number_of_values() {
    let node = Node::start(NodeOpts::new().demo_catalog(true));
    let many: Vec<String> = (0..51).map(|i| format!("b{i}")).collect();
    let (s, b) = node
        .get(&format!("/api/products?brand={}", many.join(",")), None)
        .await;
    assert_error("51 brands", (s, &b), 400);
    let repeated = vec!["Acme"; 500].join(",");
    let (s, page) = node
        .get(&format!("/api/products?brand={repeated}"), None)
        .await;
    assert_eq!(s, 200, "{page}");
    assert!(page["totalProducts"].as_u64().unwrap() > 0);
    let (s, b) = node
        .get(
            &format!("/api/products?brand={}", vec!["Acme"; 1_001].join(",")),
            None,
        )
        .await;
    assert_error("1,001 brand values", (s, &b), 400);
}

/// A request head that never finishes arriving is answered 408 after `body_timeout_secs` too
/// (not actix's own 5 s), and its connection is closed.
#[actix_rt::test]
async fn an_unfinished_head_times_out_after_the_configured_time() {
    let (_node, answer, took) = unfinished_request("POST /api/users/login HTTP/1.1\r\nHost: x\r\n");
    assert!(
        took < std::time::Duration::from_secs(4),
        "the head timeout is not the configured 1 s: {took:?}"
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}
