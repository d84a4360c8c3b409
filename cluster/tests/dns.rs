//! Peer discovery against a real DNS server (the `testsuite` TestDns on 127.0.0.1) serving the
//! records Kubernetes publishes for the StatefulSet's headless service.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use emporium_cluster::testkit::TestDns;
use emporium_cluster::{diff, dns, Change, Discovery, DnsOptions, Member};
use tokio::sync::watch;
use tokio::time::{timeout, Instant};

const ZONE: &str = "cluster.local.";
const SERVICE: &str = "emporium-peers.shop.svc.cluster.local";
const DEADLINE: Duration = Duration::from_secs(10);

fn pod(last_octet: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last_octet)
}

fn options(dns: &TestDns, refresh: Duration) -> DnsOptions {
    DnsOptions {
        service: SERVICE.to_owned(),
        statefulset: "emporium".to_owned(),
        default_port: 9999,
        nameserver: Some(dns.addr()),
        refresh,
    }
}

fn view(entries: &[(u32, Ipv4Addr, u16)]) -> BTreeMap<u32, SocketAddr> {
    entries
        .iter()
        .map(|&(ordinal, ip, port)| (ordinal, SocketAddr::from((ip, port))))
        .collect()
}

async fn until_view(
    rx: &mut watch::Receiver<BTreeMap<u32, SocketAddr>>,
    expected: &BTreeMap<u32, SocketAddr>,
) {
    let seen = timeout(DEADLINE, rx.wait_for(|current| current == expected))
        .await
        .map(|waited| waited.is_ok());
    assert_eq!(
        seen,
        Ok(true),
        "within {DEADLINE:?} expected {expected:?}, last view {:?}",
        *rx.borrow()
    );
}

#[tokio::test]
async fn srv_records_give_each_ordinal_its_address_and_port() {
    let dns = TestDns::start(ZONE).unwrap();
    dns.set_pods(
        SERVICE,
        "emporium",
        7070,
        &[(0, pod(11)), (1, pod(12)), (2, pod(13))],
    )
    .unwrap();
    let discovery = Discovery::new(options(&dns, Duration::from_secs(1))).unwrap();

    // The port is the SRV record's, not the default 9999.
    let asked_before = dns.queries();
    assert_eq!(
        discovery.resolve_once().await.unwrap(),
        view(&[(0, pod(11), 7070), (1, pod(12), 7070), (2, pod(13), 7070)])
    );
    // Addresses sent along with the SRV answer are used, not asked for again. (hickory-server
    // 0.26 sends only the first target's; CoreDNS sends them all.)
    let asked = dns.queries() - asked_before;
    assert!(asked < 4, "{asked} queries for the SRV record and 3 pods");
}

#[tokio::test]
async fn srv_targets_that_are_not_pods_of_the_statefulset_are_ignored() {
    let dns = TestDns::start(ZONE).unwrap();
    // Named like pods without a StatefulSet hostname (their IP, dashed): "10-0-0-1" must not be
    // read as ordinal 1 of StatefulSet "10-0-0".
    dns.set_pods(SERVICE, "10-0-0", 7070, &[(1, pod(11))])
        .unwrap();
    let discovery = Discovery::new(options(&dns, Duration::from_secs(1))).unwrap();
    assert_eq!(discovery.resolve_once().await.unwrap(), BTreeMap::new());
}

#[tokio::test]
async fn a_service_with_no_records_has_no_members() {
    let dns = TestDns::start(ZONE).unwrap();
    let discovery = Discovery::new(options(&dns, Duration::from_secs(1))).unwrap();
    assert_eq!(discovery.resolve_once().await.unwrap(), BTreeMap::new());

    dns.set_pods(SERVICE, "emporium", 7070, &[(0, pod(11))])
        .unwrap();
    assert_eq!(discovery.resolve_once().await.unwrap().len(), 1);
    dns.set_pods(SERVICE, "emporium", 7070, &[]).unwrap();
    assert_eq!(discovery.resolve_once().await.unwrap(), BTreeMap::new());
}

#[tokio::test]
async fn without_srv_records_pods_are_found_by_ordinal_with_the_default_port() {
    let dns = TestDns::start(ZONE).unwrap();
    // Ordinal 2 is restarting: the scan goes on past one gap.
    dns.set_pods_without_srv(
        SERVICE,
        "emporium",
        &[(0, pod(11)), (1, pod(12)), (3, pod(14))],
    )
    .unwrap();
    let discovery = Discovery::new(options(&dns, Duration::from_secs(1))).unwrap();
    assert_eq!(
        discovery.resolve_once().await.unwrap(),
        view(&[(0, pod(11), 9999), (1, pod(12), 9999), (3, pod(14), 9999)])
    );

    // Past ORDINAL_SCAN_GAP misses in a row the scan stops.
    let beyond = dns::ORDINAL_SCAN_GAP + 1;
    dns.set_pods_without_srv(SERVICE, "emporium", &[(0, pod(11)), (beyond, pod(20))])
        .unwrap();
    assert_eq!(
        discovery.resolve_once().await.unwrap(),
        view(&[(0, pod(11), 9999)])
    );
}

#[tokio::test]
async fn pods_added_moved_and_removed_are_seen_by_the_refresh_loop() {
    let dns = TestDns::start(ZONE).unwrap();
    dns.set_pods(SERVICE, "emporium", 7070, &[(0, pod(11)), (1, pod(12))])
        .unwrap();
    let mut rx = Discovery::new(options(&dns, Duration::from_millis(100)))
        .unwrap()
        .spawn_refresh();
    let two = view(&[(0, pod(11), 7070), (1, pod(12), 7070)]);
    until_view(&mut rx, &two).await;

    // Scale up to four.
    dns.set_pods(
        SERVICE,
        "emporium",
        7070,
        &[(0, pod(11)), (1, pod(12)), (2, pod(13)), (3, pod(14))],
    )
    .unwrap();
    let four = view(&[
        (0, pod(11), 7070),
        (1, pod(12), 7070),
        (2, pod(13), 7070),
        (3, pod(14), 7070),
    ]);
    let started = Instant::now();
    until_view(&mut rx, &four).await;
    let seen_after = started.elapsed();

    // Pod 1 restarts on a new address while 3 is scaled away.
    dns.set_pods(
        SERVICE,
        "emporium",
        7070,
        &[(0, pod(11)), (1, pod(22)), (2, pod(13))],
    )
    .unwrap();
    let moved = view(&[(0, pod(11), 7070), (1, pod(22), 7070), (2, pod(13), 7070)]);
    until_view(&mut rx, &moved).await;
    assert_eq!(
        diff(&four, &moved),
        vec![
            Change::Update(Member {
                ordinal: 1,
                addr: SocketAddr::from((pod(22), 7070))
            }),
            Change::Remove(3),
        ]
    );

    // Every pod gone (NXDOMAIN for the SRV name): no members.
    dns.set_pods(SERVICE, "emporium", 7070, &[]).unwrap();
    until_view(&mut rx, &BTreeMap::new()).await;
    assert!(
        seen_after < Duration::from_secs(2),
        "a scale-up took {seen_after:?} to be seen with a 100 ms refresh"
    );
}

#[tokio::test]
async fn the_first_answer_is_announced_even_when_there_are_no_peers() {
    let dns = TestDns::start(ZONE).unwrap();
    let mut rx = Discovery::new(options(&dns, Duration::from_millis(100)))
        .unwrap()
        .spawn_refresh();
    let announced = timeout(DEADLINE, rx.changed()).await;
    assert!(matches!(announced, Ok(Ok(()))), "{announced:?}");
    assert_eq!(*rx.borrow(), BTreeMap::new());
}

#[tokio::test]
async fn a_server_that_stops_answering_leaves_the_last_good_set_in_place() {
    let dns = TestDns::start(ZONE).unwrap();
    dns.set_pods(SERVICE, "emporium", 7070, &[(0, pod(11)), (1, pod(12))])
        .unwrap();
    let mut rx = Discovery::new(options(&dns, Duration::from_millis(100)))
        .unwrap()
        .spawn_refresh();
    let good = view(&[(0, pod(11), 7070), (1, pod(12), 7070)]);
    until_view(&mut rx, &good).await;
    rx.mark_unchanged();

    // The server hangs: queries arrive and time out. Wait until several have been asked.
    dns.set_answering(false);
    let asked_before = dns.queries();
    let deadline = Instant::now() + Duration::from_secs(30);
    while dns.queries() < asked_before + 4 {
        assert!(Instant::now() < deadline, "the refresh loop stopped asking");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(*rx.borrow(), good);
    assert!(
        !rx.has_changed().unwrap(),
        "a failed lookup published a view"
    );

    // It answers again, with news: the loop picks them up.
    dns.set_pods(SERVICE, "emporium", 7070, &[(0, pod(11))])
        .unwrap();
    dns.set_answering(true);
    until_view(&mut rx, &view(&[(0, pod(11), 7070)])).await;
}

#[tokio::test]
async fn a_stopped_server_is_an_error_not_an_empty_set() {
    let dns = TestDns::start(ZONE).unwrap();
    dns.set_pods(SERVICE, "emporium", 7070, &[(0, pod(11))])
        .unwrap();
    let discovery = Discovery::new(options(&dns, Duration::from_secs(1))).unwrap();
    assert_eq!(discovery.resolve_once().await.unwrap().len(), 1);

    drop(dns);
    let failed = timeout(DEADLINE, discovery.resolve_once()).await.unwrap();
    assert!(
        matches!(failed, Err(dns::Error::Lookup { .. })),
        "{failed:?}"
    );
}

#[test]
fn the_test_server_refuses_names_outside_its_zone() {
    let dns = TestDns::start(ZONE).unwrap();
    assert!(dns
        .set_pods("peers.example.org", "emporium", 7070, &[])
        .is_err());
    assert!(dns
        .set_pods("cluster.local", "emporium", 7070, &[])
        .is_err());
}
