//! A real DNS server for tests: serves a zone such as `cluster.local.` from memory, over UDP and
//! TCP on `127.0.0.1:<free port>`, with the records Kubernetes publishes for a StatefulSet's
//! headless service, and changes them as a test's pods come and go.
//!
//! It runs on its own thread with its own tokio runtime, so a test's runtime (paused clock,
//! current-thread scheduler) never stalls it, and a [`TestDns`] can be used from sync and async
//! tests alike.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc as std_mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use hickory_server::net::runtime::{Time, TokioRuntimeProvider};
use hickory_server::proto::op::{Header, HeaderCounts, MessageType, Metadata};
use hickory_server::proto::rr::rdata::{A, NS, SOA, SRV};
use hickory_server::proto::rr::{LowerName, Name, RData, Record, RecordSet, RecordType, RrKey};
use hickory_server::proto::ProtoError;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneHandler, ZoneType};
use hickory_server::Server;
use tokio::sync::mpsc;

/// The TTL of every record served, as short as DNS allows without meaning "do not cache".
pub const TTL: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot bind the test DNS server on 127.0.0.1: {0}")]
    Bind(#[source] io::Error),
    #[error("cannot start the test DNS server's runtime: {0}")]
    Runtime(#[source] io::Error),
    #[error("{name:?} is not a valid DNS name: {source}")]
    BadName { name: String, source: ProtoError },
    #[error("{name} is not strictly inside the zone {zone}")]
    OutsideZone { name: String, zone: String },
    #[error("the zone cannot be built: {0}")]
    Zone(String),
    #[error("the test DNS server has stopped")]
    Stopped,
}

/// A running test DNS server; dropping it stops it (and frees its port).
pub struct TestDns {
    addr: SocketAddr,
    zone: Name,
    switch: Arc<SwitchState>,
    commands: Option<mpsc::UnboundedSender<Replace>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for TestDns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDns")
            .field("addr", &self.addr)
            .field("zone", &self.zone)
            .finish_non_exhaustive()
    }
}

/// Replace every record at and below `service` with `rrsets`, then say so on `done`.
struct Replace {
    service: LowerName,
    rrsets: Vec<RecordSet>,
    done: std_mpsc::Sender<()>,
}

#[derive(Debug)]
struct SwitchState {
    answering: AtomicBool,
    queries: AtomicU64,
}

impl TestDns {
    /// Starts a server authoritative for `zone` (e.g. `"cluster.local."`) holding only its SOA
    /// and NS records.
    pub fn start(zone: &str) -> Result<Self, Error> {
        let zone = fqdn(zone)?;
        let (udp, tcp) = bind_pair()?;
        let addr = udp.local_addr().map_err(Error::Bind)?;

        let handler = Arc::new(empty_zone(&zone)?);
        let mut catalog = Catalog::new();
        let as_dyn: Arc<dyn ZoneHandler> = handler.clone();
        catalog.upsert(LowerName::from(&zone), vec![as_dyn]);
        let switch = Arc::new(SwitchState {
            answering: AtomicBool::new(true),
            queries: AtomicU64::new(0),
        });

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        let mut server = Server::new(Switch {
            catalog,
            state: switch.clone(),
        });
        {
            let _entered = runtime.enter();
            let udp = tokio::net::UdpSocket::from_std(udp).map_err(Error::Bind)?;
            let tcp = tokio::net::TcpListener::from_std(tcp).map_err(Error::Bind)?;
            server.register_socket(udp);
            server.register_listener(tcp, Duration::from_secs(5), 32);
        }

        let (commands, mut inbox) = mpsc::unbounded_channel::<Replace>();
        let thread = std::thread::Builder::new()
            .name(format!("test-dns-{}", addr.port()))
            .spawn(move || {
                runtime.block_on(async move {
                    while let Some(replace) = inbox.recv().await {
                        let mut records = handler.records_mut().await;
                        records.retain(|key, _| !replace.service.zone_of(&key.name));
                        for rrset in replace.rrsets {
                            let key =
                                RrKey::new(LowerName::from(rrset.name()), rrset.record_type());
                            records.insert(key, Arc::new(rrset));
                        }
                        drop(records);
                        // The caller may have given up waiting; the records are in place anyway.
                        let _ = replace.done.send(());
                    }
                    // Every sender is gone: dropping the server aborts its listeners.
                    drop(server);
                });
                // Dropping the runtime here cancels the connection tasks still open.
            })
            .map_err(Error::Runtime)?;

        Ok(Self {
            addr,
            zone,
            switch,
            commands: Some(commands),
            thread: Some(thread),
        })
    }

    /// Where the server listens, on UDP and TCP alike.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Publishes `pods` as the ready pods of `statefulset` behind the headless `service`
    /// (e.g. `emporium-peers.shop.svc.cluster.local`), as Kubernetes does: an A record for each
    /// `<statefulset>-N.<service>`, an A record set for `<service>` with every pod, and an SRV
    /// record `_peer._tcp.<service>` per pod with `port` — all with TTL 1. Replaces whatever
    /// was published at or below `service`; the next query sees the new records.
    pub fn set_pods(
        &self,
        service: &str,
        statefulset: &str,
        port: u16,
        pods: &[(u32, Ipv4Addr)],
    ) -> Result<(), Error> {
        self.publish(service, statefulset, Some(port), pods)
    }

    /// As [`TestDns::set_pods`] without the SRV records (a service with no named port), so
    /// discovery must find the pods by ordinal.
    pub fn set_pods_without_srv(
        &self,
        service: &str,
        statefulset: &str,
        pods: &[(u32, Ipv4Addr)],
    ) -> Result<(), Error> {
        self.publish(service, statefulset, None, pods)
    }

    /// While `false`, queries are received (and counted) but never answered, as a name server
    /// that hangs; `true` again resumes answering.
    pub fn set_answering(&self, answering: bool) {
        self.switch.answering.store(answering, Ordering::SeqCst);
    }

    /// How many queries have arrived, answered or not.
    pub fn queries(&self) -> u64 {
        self.switch.queries.load(Ordering::SeqCst)
    }

    fn publish(
        &self,
        service: &str,
        statefulset: &str,
        srv_port: Option<u16>,
        pods: &[(u32, Ipv4Addr)],
    ) -> Result<(), Error> {
        let service = fqdn(service)?;
        if !self.zone.zone_of(&service) || service == self.zone {
            return Err(Error::OutsideZone {
                name: service.to_ascii(),
                zone: self.zone.to_ascii(),
            });
        }
        let rrsets = pod_records(&service, statefulset, srv_port, pods)?;
        let (done, finished) = std_mpsc::channel();
        self.commands
            .as_ref()
            .ok_or(Error::Stopped)?
            .send(Replace {
                service: LowerName::from(&service),
                rrsets,
                done,
            })
            .map_err(|_| Error::Stopped)?;
        finished.recv().map_err(|_| Error::Stopped)
    }
}

impl Drop for TestDns {
    fn drop(&mut self) {
        self.commands.take();
        if let Some(thread) = self.thread.take() {
            // A panic on the server thread has already been reported there.
            let _ = thread.join();
        }
    }
}

/// The catalog, behind a switch that can silence it.
struct Switch {
    catalog: Catalog,
    state: Arc<SwitchState>,
}

#[async_trait::async_trait]
impl RequestHandler for Switch {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response_handle: R,
    ) -> ResponseInfo {
        self.state.queries.fetch_add(1, Ordering::SeqCst);
        if self.state.answering.load(Ordering::SeqCst) {
            return self
                .catalog
                .handle_request::<R, T>(request, response_handle)
                .await;
        }
        // Dropping the response handle sends nothing: the client times out.
        let metadata = Metadata::new(
            request.metadata.id,
            MessageType::Response,
            request.metadata.op_code,
        );
        ResponseInfo::from(Header {
            metadata,
            counts: HeaderCounts::default(),
        })
    }
}

fn fqdn(name: &str) -> Result<Name, Error> {
    let mut parsed = Name::from_ascii(name).map_err(|source| Error::BadName {
        name: name.to_owned(),
        source,
    })?;
    parsed.set_fqdn(true);
    Ok(parsed)
}

/// A UDP socket and a TCP listener on the same free port of 127.0.0.1.
fn bind_pair() -> Result<(UdpSocket, TcpListener), Error> {
    let mut last_error = None;
    for _ in 0..32 {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).map_err(Error::Bind)?;
        let port = udp.local_addr().map_err(Error::Bind)?.port();
        match TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
            Ok(tcp) => {
                udp.set_nonblocking(true).map_err(Error::Bind)?;
                tcp.set_nonblocking(true).map_err(Error::Bind)?;
                return Ok((udp, tcp));
            }
            // Someone holds that TCP port; try another.
            Err(error) => last_error = Some(error),
        }
    }
    Err(Error::Bind(last_error.unwrap_or_else(|| {
        io::Error::new(io::ErrorKind::AddrInUse, "no free port")
    })))
}

fn empty_zone(zone: &Name) -> Result<InMemoryZoneHandler<TokioRuntimeProvider>, Error> {
    let mut handler = InMemoryZoneHandler::empty(zone.clone(), ZoneType::Primary, AxfrPolicy::Deny);
    let ns = fqdn(&format!("ns.{zone}"))?;
    let hostmaster = fqdn(&format!("hostmaster.{zone}"))?;
    // Negative answers are cacheable for the SOA's minimum: one second, like everything else.
    let soa = SOA::new(ns.clone(), hostmaster, 1, 60, 60, 600, TTL);
    let records = [
        Record::from_rdata(zone.clone(), TTL, RData::SOA(soa)),
        Record::from_rdata(zone.clone(), TTL, RData::NS(NS(ns.clone()))),
        Record::from_rdata(ns, TTL, RData::A(A(Ipv4Addr::LOCALHOST))),
    ];
    for record in records {
        if !handler.upsert_mut(record.clone(), 1) {
            return Err(Error::Zone(format!("cannot insert {record}")));
        }
    }
    Ok(handler)
}

fn pod_records(
    service: &Name,
    statefulset: &str,
    srv_port: Option<u16>,
    pods: &[(u32, Ipv4Addr)],
) -> Result<Vec<RecordSet>, Error> {
    let mut rrsets = Vec::new();
    let mut service_a = RecordSet::with_ttl(service.clone(), RecordType::A, TTL);
    let srv_name = fqdn(&format!("_peer._tcp.{service}"))?;
    let mut srv = RecordSet::with_ttl(srv_name.clone(), RecordType::SRV, TTL);
    for &(ordinal, ip) in pods {
        let pod = fqdn(&format!("{statefulset}-{ordinal}.{service}"))?;
        let mut pod_a = RecordSet::with_ttl(pod.clone(), RecordType::A, TTL);
        pod_a.insert(Record::from_rdata(pod.clone(), TTL, RData::A(A(ip))), 1);
        rrsets.push(pod_a);
        service_a.insert(Record::from_rdata(service.clone(), TTL, RData::A(A(ip))), 1);
        if let Some(port) = srv_port {
            let target = SRV::new(0, 10, port, pod);
            srv.insert(
                Record::from_rdata(srv_name.clone(), TTL, RData::SRV(target)),
                1,
            );
        }
    }
    rrsets.extend(
        [service_a, srv]
            .into_iter()
            .filter(|rrset| !rrset.is_empty()),
    );
    Ok(rrsets)
}
