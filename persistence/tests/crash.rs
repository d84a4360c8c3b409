//! A process that aborts right after its writes were acknowledged — before any checkpoint — loses
//! none of them: they come back from the write-ahead log. The test runs itself as the child.
//!
//! A process crash alone cannot show this (sled's unsynced writes survive in the OS page cache),
//! so after the crash the test also deletes sled's files, as a power loss would lose everything
//! not yet fsynced: with no checkpoint run, only the log can bring the writes back.

use std::process::Command;
use std::time::Duration;

use emporium_persistence::{Outbox, OutboxEntry, SledStore, SnapshotStore, SnapshotWrite};

const CHILD_ENV: &str = "EMPORIUM_CRASH_CHILD_DIR";
const WRITES: u64 = 300;

fn write(i: u64, expected: u64) -> SnapshotWrite {
    SnapshotWrite {
        kind: "cart",
        key: format!("k{}", i % 100),
        expected,
        epoch: 0,
        owner: Some(format!("user{}", i % 7)),
        data: i.to_be_bytes().to_vec(),
        outbox: vec![OutboxEntry {
            trace_parent: None,
            event_id: format!("e{i}"),
            routing_key: "order.created".into(),
            payload: vec![1],
            created_at_ms: i,
        }],
    }
}

fn child(dir: &str) -> ! {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    rt.block_on(async {
        // No checkpoint can happen during the run: only the log makes these durable.
        let store = SledStore::open_with_checkpoints(dir.as_ref(), Duration::from_secs(3600))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut versions = [0u64; 100];
        for i in 0..WRITES {
            let v = &mut versions[(i % 100) as usize];
            *v = store
                .save(write(i, *v))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        println!("acknowledged {WRITES}");
        // Die with the store still open: no drop, no final checkpoint.
        std::process::abort();
    })
}

#[test]
fn acknowledged_writes_survive_an_abort_before_any_checkpoint() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(&dir);
    }
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(exe)
        .args([
            "--exact",
            "acknowledged_writes_survive_an_abort_before_any_checkpoint",
            "--nocapture",
        ])
        .env(CHILD_ENV, dir.path())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "the child must die by abort");
    assert!(
        stdout.contains("acknowledged 300"),
        "child output: {stdout}"
    );
    let wal_len = std::fs::metadata(dir.path().join("wal"))
        .map(|m| m.len())
        .unwrap_or(0);
    assert!(wal_len > 0, "the log holds the acknowledged writes");
    std::fs::remove_dir_all(dir.path().join("db")).unwrap_or_else(|e| panic!("{e}"));

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    rt.block_on(async {
        let store = SledStore::open(dir.path()).unwrap_or_else(|e| panic!("reopen: {e}"));
        for k in 0..100u64 {
            let snap = store
                .load("cart", &format!("k{k}"))
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .unwrap_or_else(|| panic!("k{k} lost"));
            // Three writes per key: i = k, k + 100, k + 200.
            assert_eq!(snap.version, 3, "k{k}");
            assert_eq!(snap.data, (k + 200).to_be_bytes().to_vec(), "k{k}");
        }
        assert_eq!(
            store.depth().await,
            Ok(WRITES),
            "every event is in the outbox"
        );
        let owned = store
            .list_by_owner("cart", "user0")
            .await
            .unwrap_or_default();
        assert!(!owned.is_empty());
        // New events get fresh sequence numbers after recovery.
        let seq = store
            .append(OutboxEntry {
                trace_parent: None,
                event_id: "after".into(),
                routing_key: "order.created".into(),
                payload: vec![],
                created_at_ms: 0,
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let pending = store.pending(1000).await.unwrap_or_default();
        assert_eq!(pending.len() as u64, WRITES + 1);
        assert_eq!(pending.last().map(|r| r.seq), Some(seq));
    });
}
