//! The calling side of the peer link: a cheap-to-clone handle holding one persistent,
//! multiplexed connection ([`super::connection`]) per peer, opened lazily and again after it dies.
//!
//! Connections run on the runtime captured when the client was made, because callers live on
//! other threads' runtimes (actix's per-thread ones) and a socket must be driven by the reactor
//! that registered it. Concurrent callers of a peer that has no connection wait for one attempt
//! and share its outcome rather than each dialling. In-flight calls per peer are bounded by a
//! semaphore: past the bound a call fails at once with [`PeerError::Overloaded`].

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tokio::sync::Semaphore;

use super::connection::{self, lock, Conn};
use super::frame;
use super::{auth, PeerError, PeerStats};
use crate::wire::{decode_reply, encode_request, PeerReply, PeerRequest};

#[derive(Clone)]
pub struct PeerClientOptions {
    /// The cluster secret; every peer must hold the same.
    pub secret: Vec<u8>,
    /// This node's identity, proven to the peers in the handshake.
    pub ordinal: u32,
    pub generation: u64,
    /// Bound on connecting and the handshake.
    pub connect_timeout: Duration,
    /// Bound on waiting for a reply, for [`PeerClient::call`].
    pub request_timeout: Duration,
    /// Calls in flight to one peer beyond which a call fails at once with `Overloaded`.
    pub max_in_flight_per_peer: usize,
}

impl fmt::Debug for PeerClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerClientOptions")
            .field("secret", &"<redacted>")
            .field("ordinal", &self.ordinal)
            .field("generation", &self.generation)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("max_in_flight_per_peer", &self.max_in_flight_per_peer)
            .finish()
    }
}

/// A handle for calling peers; cheap to clone, usable from any runtime.
#[derive(Clone)]
pub struct PeerClient {
    inner: Arc<Inner>,
}

struct Inner {
    options: PeerClientOptions,
    secret: Arc<[u8]>,
    runtime: Handle,
    peers: Mutex<HashMap<u32, Arc<Peer>>>,
    stats: Arc<PeerStats>,
}

struct Peer {
    addr: SocketAddr,
    permits: Arc<Semaphore>,
    live: Mutex<Option<Conn>>,
    /// Held while connecting, so concurrent callers wait for one connection instead of each
    /// opening their own; the value is the last attempt's failure.
    connecting: tokio::sync::Mutex<Option<PeerError>>,
    attempts: AtomicU64,
}

impl PeerClient {
    /// A client whose connections run on the current tokio runtime.
    ///
    /// # Panics
    /// Outside a tokio runtime, as `tokio::spawn` does; use [`PeerClient::with_runtime`] there.
    pub fn new(options: PeerClientOptions) -> Self {
        Self::with_runtime(options, Handle::current())
    }

    /// A client whose connections run on `runtime`.
    pub fn with_runtime(options: PeerClientOptions, runtime: Handle) -> Self {
        Self::with_stats(options, runtime, Arc::new(PeerStats::default()))
    }

    /// As [`PeerClient::with_runtime`], counting into `stats` (e.g. shared with the server).
    pub fn with_stats(options: PeerClientOptions, runtime: Handle, stats: Arc<PeerStats>) -> Self {
        let secret = Arc::from(options.secret.as_slice());
        Self {
            inner: Arc::new(Inner {
                options,
                secret,
                runtime,
                peers: Mutex::new(HashMap::new()),
                stats,
            }),
        }
    }

    pub fn stats(&self) -> &Arc<PeerStats> {
        &self.inner.stats
    }

    /// Adds a peer or moves it to a new address. Moving drops the old connection once its calls
    /// in flight finish; the same address again changes nothing.
    pub fn set_peer(&self, ordinal: u32, addr: SocketAddr) {
        let mut peers = lock(&self.inner.peers);
        if peers.get(&ordinal).is_some_and(|peer| peer.addr == addr) {
            return;
        }
        let max = self.inner.options.max_in_flight_per_peer;
        if let Some(old) = peers.insert(ordinal, Arc::new(Peer::new(addr, max))) {
            old.retire();
        }
    }

    /// Forgets a peer. Its calls in flight finish; its connection closes after them.
    pub fn remove_peer(&self, ordinal: u32) {
        if let Some(old) = lock(&self.inner.peers).remove(&ordinal) {
            old.retire();
        }
    }

    /// Calls peer `to`, waiting at most the configured request timeout for the reply.
    pub async fn call(&self, to: u32, request: &PeerRequest) -> Result<PeerReply, PeerError> {
        self.call_with_timeout(to, request, self.inner.options.request_timeout)
            .await
    }

    /// Calls peer `to`, waiting at most `timeout` for the reply once the request is sent
    /// (connecting first, if needed, is bounded by the connect timeout).
    pub async fn call_with_timeout(
        &self,
        to: u32,
        request: &PeerRequest,
        timeout: Duration,
    ) -> Result<PeerReply, PeerError> {
        let started = Instant::now();
        let result = self.call_inner(to, request, timeout).await;
        match &result {
            Ok(_) => self.inner.stats.record_success(started.elapsed()),
            Err(error) => self.inner.stats.record_error(error),
        }
        result
    }

    async fn call_inner(
        &self,
        to: u32,
        request: &PeerRequest,
        timeout: Duration,
    ) -> Result<PeerReply, PeerError> {
        let peer = lock(&self.inner.peers)
            .get(&to)
            .cloned()
            .ok_or_else(|| PeerError::Unreachable(format!("unknown peer {to}")))?;
        let _permit = peer
            .permits
            .clone()
            .try_acquire_owned()
            .map_err(|_| PeerError::Overloaded)?;
        let mut payload = encode_request(request)?;
        if !frame::fits(payload.len()) {
            return Err(PeerError::Codec(format!(
                "request of {} bytes exceeds the frame limit",
                payload.len()
            )));
        }
        // A connection torn down between our picking it and queueing the request never saw the
        // request: one more try, on a fresh connection, is safe.
        for _ in 0..2 {
            let conn = self.connection(&peer).await?;
            match conn.exchange(to, payload, timeout, &self.inner.stats).await {
                Ok(answer) => return answer.and_then(|bytes| decode_reply(&bytes)),
                Err(unsent) => payload = unsent,
            }
        }
        Err(PeerError::Unreachable(
            "connection closed before the request was sent".into(),
        ))
    }

    /// The peer's live connection, or a new one. Callers arriving while a connection is being
    /// made wait for it and share its outcome.
    async fn connection(&self, peer: &Peer) -> Result<Conn, PeerError> {
        if let Some(conn) = peer.live() {
            return Ok(conn);
        }
        let seen = peer.attempts.load(Ordering::Acquire);
        let mut last_failure = peer.connecting.lock().await;
        if let Some(conn) = peer.live() {
            return Ok(conn);
        }
        if peer.attempts.load(Ordering::Acquire) != seen {
            if let Some(error) = &*last_failure {
                return Err(error.clone());
            }
        }
        let result = self.connect(peer.addr).await;
        peer.attempts.fetch_add(1, Ordering::Release);
        match result {
            Ok(conn) => {
                *lock(&peer.live) = Some(conn.clone());
                *last_failure = None;
                Ok(conn)
            }
            Err(error) => {
                *last_failure = Some(error.clone());
                Err(error)
            }
        }
    }

    async fn connect(&self, addr: SocketAddr) -> Result<Conn, PeerError> {
        let secret = self.inner.secret.clone();
        let options = &self.inner.options;
        let (ordinal, generation, bound) =
            (options.ordinal, options.generation, options.connect_timeout);
        let stats = self.inner.stats.clone();
        let task = self.inner.runtime.spawn(async move {
            let stream = tokio::time::timeout(bound, async {
                let mut stream = TcpStream::connect(addr)
                    .await
                    .map_err(|e| PeerError::Unreachable(format!("connect to {addr}: {e}")))?;
                // Small request/reply frames: do not wait to coalesce them.
                let _ = stream.set_nodelay(true);
                auth::connect(&mut stream, &secret, ordinal, generation).await?;
                Ok::<_, PeerError>(stream)
            })
            .await
            .map_err(|_| PeerError::Unreachable(format!("connect to {addr} timed out")))??;
            stats.connection_opened();
            Ok(connection::start(stream))
        });
        task.await
            .map_err(|e| PeerError::Unreachable(format!("connect task: {e}")))?
    }
}

impl Peer {
    fn new(addr: SocketAddr, max_in_flight: usize) -> Self {
        Self {
            addr,
            permits: Arc::new(Semaphore::new(max_in_flight.min(Semaphore::MAX_PERMITS))),
            live: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(None),
            attempts: AtomicU64::new(0),
        }
    }

    fn live(&self) -> Option<Conn> {
        let mut live = lock(&self.live);
        match &*live {
            Some(conn) if !conn.is_closing() => Some(conn.clone()),
            Some(_) => {
                *live = None;
                None
            }
            None => None,
        }
    }

    /// Drops this handle's sender: the writer ends once the calls in flight (holding their own
    /// senders) are done.
    fn retire(&self) {
        lock(&self.live).take();
    }
}
