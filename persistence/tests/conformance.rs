//! The conformance suite against every backend that runs in-process.

use std::sync::Arc;

use emporium_persistence::{conformance, MemoryStore, SledStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_backend_conforms() {
    conformance::run_all(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_backend_conforms_as_a_store_nodes_share() {
    conformance::run_shared(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_store_nodes_can_share_offers_leases() {
    use emporium_persistence::Stores;
    let shared = Stores::from_shared_backend(Arc::new(MemoryStore::new()));
    assert!(shared.leases.is_some());
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let store = SledStore::open(dir.path()).unwrap_or_else(|e| panic!("open: {e}"));
    assert!(Stores::from_backend(Arc::new(store)).leases.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sled_backend_conforms() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let store = SledStore::open(dir.path()).unwrap_or_else(|e| panic!("open: {e}"));
    conformance::run_all(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sled_keeps_acknowledged_writes_across_reopen() {
    use emporium_persistence::{Outbox, SnapshotStore, SnapshotWrite};
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    {
        let store = SledStore::open(dir.path()).unwrap_or_else(|e| panic!("open: {e}"));
        for i in 0..50 {
            let w = SnapshotWrite {
                kind: "cart",
                key: format!("k{i}"),
                expected: 0,
                epoch: 0,
                owner: None,
                data: vec![i as u8],
                outbox: vec![],
            };
            assert_eq!(store.save(w).await, Ok(1));
        }
    }
    let store = SledStore::open(dir.path()).unwrap_or_else(|e| panic!("reopen: {e}"));
    for i in 0..50 {
        let got = store.load("cart", &format!("k{i}")).await.ok().flatten();
        assert_eq!(got.map(|s| s.data), Some(vec![i as u8]));
    }
    assert_eq!(store.depth().await, Ok(0));
}
