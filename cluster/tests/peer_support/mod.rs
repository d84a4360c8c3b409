//! The harness of the peer-link tests: runtimes, servers with probing handlers, clients and
//! requests.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use emporium_cluster::peer::PeerStats;
use emporium_cluster::{
    Forwarded, PeerClient, PeerClientOptions, PeerHandler, PeerOrigin, PeerReply, PeerRequest,
    PeerServer, PeerServerOptions, PeerServerStop,
};
use futures_util::future::FutureExt;
use tokio::runtime::Handle;
use tokio::sync::mpsc;

pub const SECRET: &[u8] = b"a-cluster-secret-of-some-length";
pub const DEADLINE: Duration = Duration::from_secs(20);

pub async fn within<F: Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(DEADLINE, future)
        .await
        .unwrap_or_else(|_| panic!("deadline passed waiting for {what}"))
}

/// Polls `check` until it holds, failing the test at the deadline.
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    within(what, async {
        while !check() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

/// A runtime on its own thread, for the client's connection tasks.
pub struct IoRuntime {
    pub handle: Handle,
    pub _stop: tokio::sync::oneshot::Sender<()>,
}

pub fn io_runtime() -> IoRuntime {
    let (handle_tx, handle_rx) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        handle_tx.send(runtime.handle().clone()).unwrap();
        runtime.block_on(async {
            let _ = stopped.await;
        });
    });
    IoRuntime {
        handle: handle_rx.recv_timeout(DEADLINE).unwrap(),
        _stop: stop,
    }
}

pub fn client_options(secret: &[u8], max_in_flight: usize) -> PeerClientOptions {
    PeerClientOptions {
        secret: secret.to_vec(),
        ordinal: 1,
        generation: 42,
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        max_in_flight_per_peer: max_in_flight,
    }
}

pub fn client(io: &IoRuntime, secret: &[u8], max_in_flight: usize) -> PeerClient {
    PeerClient::with_runtime(client_options(secret, max_in_flight), io.handle.clone())
}

/// What the handlers did, seen from the test.
#[derive(Clone)]
pub struct Probe {
    pub runs: Arc<AtomicUsize>,
    pub started: mpsc::UnboundedSender<()>,
}

pub fn new_probe() -> (Probe, mpsc::UnboundedReceiver<()>) {
    let (started, started_rx) = mpsc::unbounded_channel();
    let runs = Arc::new(AtomicUsize::new(0));
    (Probe { runs, started }, started_rx)
}

/// Answers everything; a forward's reply names the caller and the key. Yields a key-dependent
/// number of times first, so replies complete out of order.
pub fn echo(probe: Probe) -> PeerHandler {
    std::rc::Rc::new(move |origin: PeerOrigin, request: PeerRequest| {
        let probe = probe.clone();
        async move {
            probe.runs.fetch_add(1, Ordering::SeqCst);
            let _ = probe.started.send(());
            match request {
                PeerRequest::Forward(forwarded) => {
                    for _ in 0..forwarded.key.len() % 7 {
                        tokio::task::yield_now().await;
                    }
                    let text =
                        format!("{}/{}:{}", origin.ordinal, origin.generation, forwarded.key);
                    Ok(PeerReply::Reply(text.into_bytes()))
                }
                PeerRequest::Notify(_) => Ok(PeerReply::Ack),
                PeerRequest::Ping => Ok(PeerReply::Pong),
            }
        }
        .boxed_local()
    })
}

/// Never answers a forward; answers pings.
pub fn hang(probe: Probe) -> PeerHandler {
    std::rc::Rc::new(move |_origin: PeerOrigin, request: PeerRequest| {
        let probe = probe.clone();
        async move {
            probe.runs.fetch_add(1, Ordering::SeqCst);
            let _ = probe.started.send(());
            match request {
                PeerRequest::Ping => Ok(PeerReply::Pong),
                _ => futures_util::future::pending().await,
            }
        }
        .boxed_local()
    })
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub stop: PeerServerStop,
    pub stats: Arc<PeerStats>,
    pub thread: JoinHandle<()>,
}

/// Binds and runs a server on its own thread (its handler is `!Send`, so it is made there).
pub fn start_server(
    addr: SocketAddr,
    max_in_flight: usize,
    handler: impl FnOnce() -> PeerHandler + Send + 'static,
) -> TestServer {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // Inside a LocalSet, with the server spawned as a local task: how an actix arbiter runs it.
        let arbiter = tokio::task::LocalSet::new();
        arbiter.block_on(&runtime, async move {
            let options = PeerServerOptions {
                secret: SECRET.to_vec(),
                max_in_flight_per_conn: max_in_flight,
            };
            let server = PeerServer::bind(addr, options, handler()).await.unwrap();
            let ready = (
                server.local_addr().unwrap(),
                server.stop_handle(),
                server.stats().clone(),
            );
            ready_tx.send(ready).unwrap();
            tokio::task::spawn_local(server.run()).await.unwrap();
        });
    });
    let (addr, stop, stats) = ready_rx.recv_timeout(DEADLINE).unwrap();
    TestServer {
        addr,
        stop,
        stats,
        thread,
    }
}

pub fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

impl TestServer {
    /// Stops the server and waits for its thread: every connection and handler is gone after.
    pub async fn kill(self) {
        self.stop.stop();
        eventually("the server thread to end", || self.thread.is_finished()).await;
        self.thread.join().unwrap();
    }
}

pub fn forward(key: &str, command: Vec<u8>) -> PeerRequest {
    PeerRequest::Forward(Forwarded {
        kind: "cart".into(),
        key: key.into(),
        shard: 3,
        epoch: 9,
        hops: 0,
        command,
        nested: false,
    })
}
