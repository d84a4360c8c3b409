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

#[actix_rt::test]
async fn a_login_flood_gets_401_or_503_within_bounded_memory() {
    // More than the 128 per core the server lets wait (2 cores here), so some are refused.
    const FLOOD: usize = 400;
    let node = Node::start(NodeOpts::new().demo_catalog(false));
    let pid = node.pid().unwrap();
    register(&node, "flo", "flo@example.com", PASSWORD).await;
    let before = peak_kib(pid);

    let wrong = json!({"email": "flo@example.com", "password": "not-the-password"});
    let body = serde_json::to_vec(&wrong).unwrap();
    let logins = (0..FLOOD).map(|_| {
        let body = Some(("application/json", body.clone()));
        node.send(
            awc::http::Method::POST,
            "/api/users/login",
            &Auth::None,
            &[],
            body,
        )
    });
    let answers = futures_util::future::join_all(logins).await;
    let mut refused = 0;
    for r in &answers {
        match r.status {
            401 => {}
            503 => {
                refused += 1;
                assert!(
                    r.headers.contains_key("retry-after"),
                    "503 without Retry-After"
                );
                assert_eq!(r.body["error"], "unavailable", "{}", r.text);
            }
            other => panic!("login during the flood answered {other}: {}", r.text),
        }
    }
    let grown_mib = peak_kib(pid).saturating_sub(before) / 1024;
    // One hash per core at a time: tens of MiB. Unbounded, this flood took ~1.5 GB.
    assert!(
        grown_mib < 300,
        "peak memory grew {grown_mib} MiB during {FLOOD} logins"
    );
    eprintln!("{FLOOD} logins: {refused} refused with 503, peak memory +{grown_mib} MiB");

    login(&node, "flo@example.com", PASSWORD).await;
    assert_eq!(node.get("/healthz", None).await.0, 200);
}
