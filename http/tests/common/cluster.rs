//! A cluster on this machine, as Kubernetes would run it: each node its own `emporium` process
//! on its own loopback address (127.0.0.11, .12, …), all on one fresh database of the real
//! MongoDB-compatible server with the machine's Redis and RabbitMQ, finding each other through a
//! real DNS server that serves the headless service's records (changed as pods come and go), and
//! a load balancer in front that, like the ALB, sends each request to a node whose `/readyz` is
//! 200 (checked every 200 ms).
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use emporium_cluster::testkit::TestDns;

use super::{blocking_get_at, fresh_db_name, mongo_uri, Node, NodeOpts, ADMIN_EMAIL};

pub const SERVICE: &str = "emporium-peers.shop.svc.cluster.local";
pub const STATEFULSET: &str = "emporium";
pub const CLUSTER_SECRET: &str = "cluster-secret-for-tests-0123456789";

/// How a test cluster runs.
#[derive(Debug, Clone)]
pub struct ClusterOpts {
    pub shards: u32,
    pub grace_secs: u64,
    pub claim_ttl_secs: u64,
    /// Extra environment for every node.
    pub env: Vec<(String, String)>,
}

impl Default for ClusterOpts {
    fn default() -> Self {
        Self {
            // Few shards keep the Python test store's work small; the protocol is the same.
            shards: 64,
            // Longer than two health-check intervals of the balancer.
            grace_secs: 1,
            claim_ttl_secs: 4,
            env: Vec::new(),
        }
    }
}

pub fn node_ip(ordinal: u32) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 11 + u8::try_from(ordinal).unwrap())
}

/// A port free on every address a test cluster may use.
fn port_free_everywhere() -> u16 {
    for _ in 0..200 {
        let port = super::free_port();
        let free = (0..8).all(|o| TcpListener::bind((node_ip(o), port)).is_ok());
        if free {
            return port;
        }
    }
    panic!("no port free on 127.0.0.11-18");
}

pub struct TestCluster {
    pub opts: ClusterOpts,
    pub dns: TestDns,
    pub db: String,
    pub api_port: u16,
    pub peer_port: u16,
    pub nodes: BTreeMap<u32, Node>,
    pub balancer: Balancer,
}

impl Drop for TestCluster {
    /// Keeps every node's log under target/cluster-logs/<database>/ for a failed run's reader.
    fn drop(&mut self) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../target/cluster-logs")
            .join(&self.db);
        if std::fs::create_dir_all(&dir).is_ok() {
            for (ordinal, node) in &self.nodes {
                let _ = std::fs::copy(node.log_path(), dir.join(format!("node-{ordinal}.log")));
            }
        }
    }
}

impl TestCluster {
    /// Starts nodes `0..n` together and waits until every one is ready and every shard has an
    /// owner.
    pub fn start(n: u32, opts: ClusterOpts) -> TestCluster {
        let dns = TestDns::start("cluster.local.").unwrap();
        let mut cluster = TestCluster {
            opts,
            dns,
            db: fresh_db_name(),
            api_port: port_free_everywhere(),
            peer_port: port_free_everywhere(),
            nodes: BTreeMap::new(),
            balancer: Balancer::start(),
        };
        for ordinal in 0..n {
            cluster.spawn(ordinal);
        }
        cluster.publish();
        for node in cluster.nodes.values_mut() {
            node.wait_ready();
        }
        cluster.balancer.set_backends(cluster.backends());
        cluster.wait_settled(Duration::from_secs(60));
        cluster
    }

    fn node_opts(&self, ordinal: u32) -> NodeOpts {
        let ip = node_ip(ordinal).to_string();
        let mut opts = NodeOpts::new()
            .demo_catalog(false)
            .listen(&ip, self.api_port)
            .real_backends_at(&mongo_uri(), &self.db)
            // The ordinal comes from the pod's host name, as in a StatefulSet.
            .env("HOSTNAME", &format!("{STATEFULSET}-{ordinal}"))
            .env("EMPORIUM_PEER_DNS", SERVICE)
            .env("EMPORIUM_PEER_DNS_SERVER", &self.dns.addr().to_string())
            .env("EMPORIUM_PEER_LISTEN", &format!("{ip}:{}", self.peer_port))
            .env("EMPORIUM_CLUSTER_SECRET", CLUSTER_SECRET)
            .env("EMPORIUM_SHARDS", &self.opts.shards.to_string())
            .env(
                "EMPORIUM_SHUTDOWN_GRACE_SECS",
                &self.opts.grace_secs.to_string(),
            )
            .env(
                "EMPORIUM_CLAIM_TTL_SECS",
                &self.opts.claim_ttl_secs.to_string(),
            )
            .env(
                "RUST_LOG",
                "warn,emporium_cluster=info,emporium_http::server=info",
            );
        for (k, v) in &self.opts.env {
            opts = opts.env(k, v);
        }
        opts
    }

    fn spawn(&mut self, ordinal: u32) {
        let node = Node::spawn(self.node_opts(ordinal));
        self.nodes.insert(ordinal, node);
    }

    /// Publishes the running nodes in DNS (as the headless service does for existing pods).
    pub fn publish(&self) {
        let pods: Vec<(u32, Ipv4Addr)> = self.nodes.keys().map(|o| (*o, node_ip(*o))).collect();
        self.dns
            .set_pods(SERVICE, STATEFULSET, self.peer_port, &pods)
            .unwrap();
    }

    fn backends(&self) -> Vec<(String, u16)> {
        self.nodes
            .values()
            .map(|n| (n.host().to_string(), n.port()))
            .collect()
    }

    /// A request handle on the load balancer.
    pub fn lb(&self) -> Node {
        Node::attach("127.0.0.1", self.balancer.port())
    }

    pub fn node(&self, ordinal: u32) -> &Node {
        &self.nodes[&ordinal]
    }

    /// A rolling restart of one pod: SIGTERM, exit (within the handoff bound), gone from DNS,
    /// started again with the same ordinal, back in DNS, ready. Returns how long it was away.
    pub fn restart(&mut self, ordinal: u32) -> Duration {
        let started = Instant::now();
        let node = self.nodes.get_mut(&ordinal).unwrap();
        assert!(
            node.terminate(Duration::from_secs(60)),
            "node {ordinal} did not exit after SIGTERM; log:\n{}",
            node.log_tail(40)
        );
        let pods: Vec<(u32, Ipv4Addr)> = self
            .nodes
            .keys()
            .filter(|o| **o != ordinal)
            .map(|o| (*o, node_ip(*o)))
            .collect();
        self.dns
            .set_pods(SERVICE, STATEFULSET, self.peer_port, &pods)
            .unwrap();
        let node = self.nodes.get_mut(&ordinal).unwrap();
        node.start_again();
        self.publish();
        started.elapsed()
    }

    /// Scales up: starts `ordinal`, publishes it, waits until it is ready and the cluster settled.
    pub fn add(&mut self, ordinal: u32) {
        self.spawn(ordinal);
        self.publish();
        self.nodes.get_mut(&ordinal).unwrap().wait_ready();
        self.balancer.set_backends(self.backends());
    }

    /// Scales down: SIGTERM to `ordinal`, which hands its shards off and exits; then gone from DNS.
    pub fn remove(&mut self, ordinal: u32) {
        let mut node = self.nodes.remove(&ordinal).unwrap();
        assert!(
            node.terminate(Duration::from_secs(60)),
            "node {ordinal} did not exit after SIGTERM; log:\n{}",
            node.log_tail(40)
        );
        self.publish();
        self.balancer.set_backends(self.backends());
    }

    /// Shard owners as each running node sees them, from `/metrics`: (serving, unsettled) where
    /// unsettled counts shards unknown, unowned or draining.
    pub fn shard_counts(&self) -> BTreeMap<u32, (u64, u64)> {
        let mut out = BTreeMap::new();
        for (ordinal, node) in &self.nodes {
            let Ok((200, text)) = blocking_get_at(node.host(), node.port(), "/metrics") else {
                continue;
            };
            let get = |state: &str| {
                let needle = format!("emporium_cluster_shards{{state=\"{state}\"}} ");
                text.lines()
                    .find_map(|l| l.strip_prefix(&needle))
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(0)
            };
            let unsettled = get("unknown") + get("unowned") + get("draining");
            out.insert(*ordinal, (get("serving"), unsettled));
        }
        out
    }

    /// How many shards each running node should serve (rendezvous placement over them).
    pub fn expected_counts(&self) -> BTreeMap<u32, u64> {
        let mut out: BTreeMap<u32, u64> = self.nodes.keys().map(|o| (*o, 0)).collect();
        for s in 0..self.opts.shards {
            let owner = emporium_cluster::ShardMap::desired_owner(
                emporium_cluster::ShardId(s),
                self.nodes.keys().copied(),
            )
            .unwrap();
            *out.entry(owner).or_default() += 1;
        }
        out
    }

    /// Waits until every running node serves exactly the shards placement gives it and no node
    /// sees a shard in motion; returns the shards each node serves.
    pub fn wait_settled(&self, within: Duration) -> BTreeMap<u32, u64> {
        let start = Instant::now();
        let mut last = BTreeMap::new();
        let expected = self.expected_counts();
        while start.elapsed() < within {
            last = self.shard_counts();
            let serving: BTreeMap<u32, u64> = last.iter().map(|(o, (s, _))| (*o, *s)).collect();
            if serving == expected && last.values().all(|(_, u)| *u == 0) {
                return last.into_iter().map(|(o, (s, _))| (o, s)).collect();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "cluster not settled within {within:?}: (serving, in motion) per node {last:?}, \
             expected serving {expected:?}"
        );
    }

    /// Which node serves each shard, from the first node's `/admin/cluster`.
    pub async fn owners(&self, admin: &str) -> Vec<Option<u64>> {
        let node = self.nodes.values().next().unwrap();
        let (s, body) = node.get("/admin/cluster", Some(admin)).await;
        assert_eq!(s, 200, "{body}");
        body["shards"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["owner"].as_u64())
            .collect()
    }
}

/// The admin's email (every node has it in `EMPORIUM_ADMIN_EMAILS`).
pub fn admin_email() -> &'static str {
    ADMIN_EMAIL
}

/// An HTTP load balancer in this process: each request goes to a random backend whose `/readyz`
/// answered 200 at the last check (every 200 ms); a backend that cannot be reached answers 502,
/// as the ALB does.
pub struct Balancer {
    port: u16,
    backends: Arc<RwLock<Vec<(String, u16)>>>,
    ready: Arc<RwLock<Vec<(String, u16)>>>,
    stop: Arc<AtomicBool>,
    pub bad_gateway: Arc<AtomicU64>,
}

impl Balancer {
    pub fn start() -> Balancer {
        let port = super::free_port();
        let backends: Arc<RwLock<Vec<(String, u16)>>> = Arc::default();
        let ready: Arc<RwLock<Vec<(String, u16)>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let bad_gateway = Arc::new(AtomicU64::new(0));
        {
            let (backends, ready, stop) = (backends.clone(), ready.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let all = backends.read().unwrap().clone();
                    let up: Vec<(String, u16)> = all
                        .into_iter()
                        .filter(|(h, p)| matches!(blocking_get_at(h, *p, "/readyz"), Ok((200, _))))
                        .collect();
                    *ready.write().unwrap() = up;
                    std::thread::sleep(Duration::from_millis(200));
                }
            });
        }
        {
            let (ready, bad) = (ready.clone(), bad_gateway.clone());
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let sys = actix_rt::System::new();
                sys.block_on(async move {
                    let server = actix_web::HttpServer::new(move || {
                        let client = awc::Client::builder()
                            .timeout(Duration::from_secs(60))
                            .finish();
                        actix_web::App::new()
                            .app_data(actix_web::web::Data::new((
                                client,
                                ready.clone(),
                                bad.clone(),
                            )))
                            .default_service(actix_web::web::to(proxy))
                    })
                    .workers(2)
                    .disable_signals()
                    .bind(("127.0.0.1", port))
                    .unwrap()
                    .run();
                    tx.send(()).unwrap();
                    let _ = server.await;
                });
            });
            rx.recv_timeout(Duration::from_secs(10)).unwrap();
        }
        Balancer {
            port,
            backends,
            ready,
            stop,
            bad_gateway,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Sets the targets; waits until the health check has looked at them once.
    pub fn set_backends(&self, backends: Vec<(String, u16)>) {
        *self.backends.write().unwrap() = backends;
        std::thread::sleep(Duration::from_millis(450));
    }

    pub fn ready_backends(&self) -> Vec<(String, u16)> {
        self.ready.read().unwrap().clone()
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

type ProxyState = (awc::Client, Arc<RwLock<Vec<(String, u16)>>>, Arc<AtomicU64>);

async fn proxy(
    req: actix_web::HttpRequest,
    body: actix_web::web::Bytes,
    state: actix_web::web::Data<ProxyState>,
) -> actix_web::HttpResponse {
    let (client, ready, bad) = &**state;
    let target = {
        let ready = ready.read().unwrap();
        if ready.is_empty() {
            None
        } else {
            let i = usize::try_from(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .subsec_nanos(),
            )
            .unwrap()
                % ready.len();
            Some(ready[i].clone())
        }
    };
    let Some((host, port)) = target else {
        bad.fetch_add(1, Ordering::Relaxed);
        return actix_web::HttpResponse::ServiceUnavailable().body("no healthy target");
    };
    let uri = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let mut out = client.request(req.method().clone(), format!("http://{host}:{port}{uri}"));
    for (name, value) in req.headers() {
        if name != "host" && name != "connection" && name != "content-length" {
            out = out.insert_header((name.clone(), value.clone()));
        }
    }
    match out.send_body(body).await {
        Ok(mut res) => {
            let mut back = actix_web::HttpResponse::build(res.status());
            for (name, value) in res.headers() {
                if name != "content-length" && name != "transfer-encoding" && name != "connection" {
                    back.insert_header((name.clone(), value.clone()));
                }
            }
            match res.body().limit(64 << 20).await {
                Ok(bytes) => back.body(bytes),
                Err(_) => {
                    bad.fetch_add(1, Ordering::Relaxed);
                    actix_web::HttpResponse::BadGateway().body("target closed the response")
                }
            }
        }
        Err(e) => {
            bad.fetch_add(1, Ordering::Relaxed);
            actix_web::HttpResponse::BadGateway().body(format!("target unreachable: {e}"))
        }
    }
}
