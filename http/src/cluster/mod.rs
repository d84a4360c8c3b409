//! Cluster mode: the settings that turn it on (checked at start, with messages naming the
//! setting), and the glue between the engine and `emporium_cluster`: the shard table the engine
//! routes through, the member's control loop, the peer listener (forwarded commands and
//! ownership news) and the forwarder the engine sends through.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use emporium_cluster::{
    Discovery, DnsOptions, Forward, ForwardError, ForwardFuture, Forwarded, Forwarder, HoldOptions,
    Node, NodeOptions, Notice, Ownership, PeerHandler, PeerReply, PeerRequest, PeerServer,
    PeerServerOptions, PeerServerStop, PeerStats, ShardHost, ShardId, ShardMap,
};
use emporium_engine::Engine;
use emporium_persistence::Leases;
use tokio::sync::watch;

use crate::config::{Config, StoreKind};

/// How peers are found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peers {
    /// `EMPORIUM_PEERS`: every ordinal and its peer address.
    Static(BTreeMap<u32, SocketAddr>),
    /// `EMPORIUM_PEER_DNS`: the headless service, re-resolved every couple of seconds.
    Dns {
        service: String,
        statefulset: String,
        port: u16,
        nameserver: Option<SocketAddr>,
    },
}

/// Cluster settings, resolved and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub ordinal: u32,
    pub peers: Peers,
    pub peer_listen: SocketAddr,
    /// Where other nodes reach this one (recorded in the store, shown by `/admin/cluster`).
    pub advertise: String,
    pub secret: String,
    pub claim_ttl: Duration,
}

const DEFAULT_PEER_LISTEN: &str = "0.0.0.0:7070";

impl Settings {
    /// `None` when no cluster setting is given: one node, exactly as without a cluster.
    pub fn from_config(c: &Config) -> Result<Option<Self>, String> {
        let hostname = std::env::var("HOSTNAME").ok();
        Self::resolve(c, hostname.as_deref())
    }

    fn resolve(c: &Config, hostname: Option<&str>) -> Result<Option<Self>, String> {
        let (peers, dns) = (c.peers.as_deref(), c.peer_dns.as_deref());
        if peers.is_none() && dns.is_none() {
            if c.cluster_secret.is_some()
                || c.peer_listen.is_some()
                || c.peer_dns_server.is_some()
                || c.peer_advertise.is_some()
            {
                return Err(
                    "cluster_secret, peer_listen and peer_dns_server need a way to find \
                            the peers: set EMPORIUM_PEER_DNS (the headless service) or \
                            EMPORIUM_PEERS (a static list)"
                        .into(),
                );
            }
            return Ok(None);
        }
        if peers.is_some() && dns.is_some() {
            return Err("set one of EMPORIUM_PEERS and EMPORIUM_PEER_DNS, not both".into());
        }
        if c.store_kind()? == StoreKind::Sled {
            return Err(
                "a cluster needs a shared store: with EMPORIUM_STORE=sled every node \
                        would keep its own data; set EMPORIUM_STORE to a mongodb:// URI"
                    .into(),
            );
        }
        let secret = c.cluster_secret.clone().unwrap_or_default();
        if secret.len() < 16 {
            return Err(
                "EMPORIUM_CLUSTER_SECRET must be set to at least 16 bytes in cluster mode: \
                 every peer connection is authenticated with it"
                    .into(),
            );
        }
        let ordinal = match (c.node_ordinal, hostname) {
            (Some(o), _) => o,
            (None, Some(h)) => emporium_cluster::ordinal_from_hostname(h).ok_or_else(|| {
                format!(
                    "cannot tell this node's ordinal from HOSTNAME {h:?} (expected a StatefulSet \
                     pod name such as emporium-3); set EMPORIUM_NODE_ORDINAL"
                )
            })?,
            (None, None) => {
                return Err(
                    "cannot tell this node's ordinal: set EMPORIUM_NODE_ORDINAL or \
                            HOSTNAME (a StatefulSet pod name such as emporium-3)"
                        .into(),
                )
            }
        };
        if !(2..=300).contains(&c.claim_ttl_secs) {
            return Err("claim_ttl_secs must be between 2 and 300".into());
        }
        let listen = c.peer_listen.as_deref().unwrap_or(DEFAULT_PEER_LISTEN);
        let peer_listen: SocketAddr = listen
            .parse()
            .map_err(|_| format!("peer_listen {listen:?} is not an address like 0.0.0.0:7070"))?;
        if peer_listen == c.listen_addr()? {
            return Err(
                "peer_listen must differ from listen: the API port never takes peer \
                        messages"
                    .into(),
            );
        }
        let nameserver = match &c.peer_dns_server {
            None => None,
            Some(s) => Some(s.parse::<SocketAddr>().map_err(|_| {
                format!("peer_dns_server {s:?} is not an address like 10.0.0.10:53")
            })?),
        };
        let (peers, advertise) = match (peers, dns) {
            (Some(list), _) => {
                let map =
                    emporium_cluster::parse_static(list).map_err(|e| format!("peers: {e}"))?;
                let own = map.get(&ordinal).ok_or_else(|| {
                    format!("EMPORIUM_PEERS has no entry for this node's ordinal {ordinal}")
                })?;
                (Peers::Static(map.clone()), own.to_string())
            }
            (None, Some(service)) => {
                let service = service.trim().trim_end_matches('.').to_owned();
                if service.is_empty() {
                    return Err("peer_dns is empty".into());
                }
                let statefulset = hostname
                    .and_then(emporium_cluster::statefulset_name)
                    .unwrap_or("emporium")
                    .to_owned();
                // A specific listen address is the one peers reach; on 0.0.0.0 the pod's DNS
                // name (peers find its address through discovery).
                let advertise = if peer_listen.ip().is_unspecified() {
                    format!("{statefulset}-{ordinal}.{service}:{}", peer_listen.port())
                } else {
                    peer_listen.to_string()
                };
                let peers = Peers::Dns {
                    service,
                    statefulset,
                    port: peer_listen.port(),
                    nameserver,
                };
                (peers, advertise)
            }
            (None, None) => return Ok(None),
        };
        let advertise = match &c.peer_advertise {
            None => advertise,
            Some(a) => a
                .parse::<SocketAddr>()
                .map_err(|_| format!("peer_advertise {a:?} is not an address like 10.1.2.3:7070"))?
                .to_string(),
        };
        Ok(Some(Self {
            ordinal,
            peers,
            peer_listen,
            advertise,
            secret,
            claim_ttl: Duration::from_secs(c.claim_ttl_secs),
        }))
    }
}

/// The shard table this node starts with: every shard its own on one node; unknown until the
/// store is read in a cluster.
pub fn ownership(config: &Config, settings: Option<&Settings>) -> anyhow::Result<Ownership> {
    let map = ShardMap::new(config.shards).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(match settings {
        None => Ownership::single_node(map),
        Some(s) => Ownership::cluster(map, s.ordinal, HoldOptions::default()),
    })
}

/// How often the headless service is re-resolved.
const DNS_REFRESH: Duration = Duration::from_secs(2);

/// A running member: its control loop, and its peer listener's stop and counters.
pub struct Member {
    pub node: Node,
    pub peer_stop: PeerServerStop,
    pub peer_server: Arc<PeerStats>,
    /// Peer requests being served now.
    peer_in_flight: Arc<AtomicUsize>,
    /// Keeps a static peer list's channel open (its receivers end when it is dropped).
    _peers: Option<watch::Sender<BTreeMap<u32, SocketAddr>>>,
}

/// Joins the cluster: starts discovery, registers this node's generation, serves the peer port
/// and gives the engine its forwarder. Runs on the actix main arbiter (peer handlers activate
/// actors, which are not `Send`).
pub async fn join(
    settings: &Settings,
    engine: &Engine,
    leases: Arc<dyn Leases>,
) -> anyhow::Result<Member> {
    let (discovery, keep) = match &settings.peers {
        Peers::Static(map) => {
            let (tx, rx) = watch::channel(map.clone());
            (rx, Some(tx))
        }
        Peers::Dns {
            service,
            statefulset,
            port,
            nameserver,
        } => {
            let discovery = Discovery::new(DnsOptions {
                service: service.clone(),
                statefulset: statefulset.clone(),
                default_port: *port,
                nameserver: *nameserver,
                refresh: DNS_REFRESH,
            })
            .map_err(|e| anyhow::anyhow!("peer_dns: {e}"))?;
            (discovery.spawn_refresh(), None)
        }
    };
    let options = NodeOptions {
        ordinal: settings.ordinal,
        advertise: settings.advertise.clone(),
        secret: settings.secret.as_bytes().to_vec(),
        claim_ttl: settings.claim_ttl,
        reconcile_every: Duration::from_millis(250),
        drain_bound: Duration::from_secs(5),
        request_timeout: Duration::from_secs(5),
    };
    // The peer port listens before this node registers: once it has, other nodes may hand it
    // shards and forward commands here at once.
    let joined: Rc<std::cell::OnceCell<Node>> = Rc::default();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let handler: PeerHandler = {
        let (engine, joined, in_flight) = (engine.clone(), joined.clone(), in_flight.clone());
        Rc::new(move |_origin, request| {
            let (engine, joined) = (engine.clone(), joined.clone());
            let counted = InFlight::enter(&in_flight);
            Box::pin(async move {
                let reply = serve(&engine, joined.get(), request).await;
                drop(counted);
                Ok(reply)
            })
        })
    };
    let server = PeerServer::bind(
        settings.peer_listen,
        PeerServerOptions {
            secret: settings.secret.as_bytes().to_vec(),
            max_in_flight_per_conn: 4096,
        },
        handler,
    )
    .await
    .with_context(|| format!("cannot listen for peers on {}", settings.peer_listen))?;
    let peer_stop = server.stop_handle();
    let peer_server = server.stats().clone();
    actix_web::rt::spawn(server.run());
    let host = Arc::new(EngineHost(engine.clone()));
    let node = Node::start(options, engine.ownership().clone(), leases, host, discovery)
        .await
        .map_err(|e| anyhow::anyhow!("cannot join the cluster: {e}"))?;
    let _ = joined.set(node.clone());
    engine.set_forwarder(Arc::new(PeerForwarder(node.clone())));
    tracing::info!(ordinal = settings.ordinal, peer_listen = %settings.peer_listen,
        advertise = %settings.advertise, "joined the cluster");
    Ok(Member {
        node,
        peer_stop,
        peer_server,
        peer_in_flight: in_flight,
        _peers: keep,
    })
}

/// Counts a peer request while it is served.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn enter(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Self(count.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Member {
    /// Waits (at most `bound`) until no peer request is being served here.
    pub async fn peers_idle(&self, bound: Duration) {
        let deadline = std::time::Instant::now() + bound;
        while self.peer_in_flight.load(Ordering::Acquire) > 0
            && std::time::Instant::now() < deadline
        {
            actix_web::rt::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// One request from a peer (`node` is `None` in the moment between binding the peer port and
/// registering: ownership news then waits for the first read of the store).
async fn serve(engine: &Engine, node: Option<&Node>, request: PeerRequest) -> PeerReply {
    match request {
        PeerRequest::Forward(f) => PeerReply::Reply(
            engine
                .serve_forwarded(
                    &f.kind,
                    &f.key,
                    ShardId(f.shard),
                    f.hops,
                    f.nested,
                    &f.command,
                )
                .await,
        ),
        PeerRequest::Notify(Notice::Catalog) => {
            if let Err(e) = engine.catalog().refresh().await {
                tracing::warn!(error = %e, "re-reading the catalog a peer changed failed");
            }
            PeerReply::Ack
        }
        PeerRequest::Notify(notice) => {
            if let Some(node) = node {
                node.on_notice(notice);
            }
            PeerReply::Ack
        }
        PeerRequest::Ping => PeerReply::Pong,
    }
}

/// The engine, as the cluster sees it: a place whose actors a handoff drops.
struct EngineHost(Engine);

impl ShardHost for EngineHost {
    fn passivate(&self, shards: &HashSet<ShardId>) {
        let n = self.0.passivate_shards(shards);
        tracing::debug!(
            shards = shards.len(),
            actors = n,
            "passivated the actors of departing shards"
        );
    }
}

/// Sends the engine's forwarded commands, and its catalog news, over the peer link.
struct PeerForwarder(Node);

impl Forwarder for PeerForwarder {
    fn catalog_changed(&self) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let node = self.0.clone();
        Box::pin(async move { node.broadcast(PeerRequest::Notify(Notice::Catalog)).await })
    }

    fn forward(&self, owner: u32, request: Forward) -> ForwardFuture {
        let client = self.0.client().clone();
        Box::pin(async move {
            let request = PeerRequest::Forward(Forwarded {
                kind: request.kind.to_owned(),
                key: request.key,
                shard: request.shard.0,
                epoch: 0,
                hops: request.hops,
                command: request.command,
                nested: request.nested,
            });
            match client.call(owner, &request).await {
                Ok(PeerReply::Reply(bytes)) => Ok(bytes),
                Ok(other) => Err(ForwardError::Unknown {
                    owner,
                    reason: format!("unexpected reply {other:?}"),
                }),
                Err(e) if e.is_safe_to_retry() => Err(ForwardError::NotSent {
                    owner,
                    reason: e.to_string(),
                }),
                Err(e) => Err(ForwardError::Unknown {
                    owner,
                    reason: e.to_string(),
                }),
            }
        })
    }
}

#[cfg(test)]
mod tests;
