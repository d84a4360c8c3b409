//! One multiplexed peer connection, client side: a writer task fed by an mpsc channel and a
//! reader task that completes the callers' oneshots from a map keyed by request id, so any number
//! of calls share one TCP connection and one handshake.
//!
//! The writer alone tears a connection down: whoever notices it is dead (the reader at end of
//! stream, a caller whose call met silence, the client dropping it) asks it to stop. It then fails
//! the requests still queued with [`PeerError::Unreachable`] (never sent) and those already sent
//! with [`PeerError::Closed`] (outcome unknown).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::AbortHandle;
use tracing::{debug, warn};

use super::frame::{self, ErrorCode, FrameKind};
use super::{PeerError, PeerStats};

/// Frames written before a flush when callers queue faster than the socket drains.
const WRITE_BATCH: usize = 64;

/// One multiplexed connection, as held by a caller; cloning it keeps the connection open.
#[derive(Clone)]
pub(super) struct Conn {
    tx: mpsc::UnboundedSender<Outgoing>,
    shared: Arc<ConnShared>,
}

struct Outgoing {
    id: u64,
    payload: Vec<u8>,
}

type Answer = Result<Vec<u8>, PeerError>;

struct ConnShared {
    pending: Mutex<HashMap<u64, oneshot::Sender<Answer>>>,
    next_id: AtomicU64,
    /// Set by whoever asks the writer to stop, so no new call picks this connection meanwhile.
    closing: AtomicBool,
    stop: Notify,
    opened: Instant,
    /// Milliseconds after `opened` when the last frame arrived.
    last_heard_ms: AtomicU64,
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves plain data behind; keep serving.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Conn {
    /// Whether the connection is (being) torn down, so a new call should not pick it.
    pub(super) fn is_closing(&self) -> bool {
        self.tx.is_closed() || self.shared.closing.load(Ordering::Acquire)
    }

    /// Sends one encoded request and waits at most `timeout` for its encoded answer. `Err` gives
    /// the payload back when the connection was already closing, so nothing was sent.
    pub(super) async fn exchange(
        &self,
        peer: u32,
        payload: Vec<u8>,
        timeout: Duration,
        stats: &PeerStats,
    ) -> Result<Answer, Vec<u8>> {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let (answer_tx, answer_rx) = oneshot::channel();
        lock(&self.shared.pending).insert(id, answer_tx);
        // Whatever happens next (answer, timeout, the caller giving up), the entry goes.
        let _pending = PendingGuard {
            shared: &self.shared,
            id,
        };
        if let Err(unsent) = self.tx.send(Outgoing { id, payload }) {
            return Err(unsent.0.payload);
        }
        stats.request_sent();
        Ok(match tokio::time::timeout(timeout, answer_rx).await {
            Ok(Ok(answer)) => answer,
            // The writer dropped the sender without an answer: torn down mid-call.
            Ok(Err(_)) => Err(PeerError::Closed),
            Err(_) => {
                if self.shared.silent_for() >= timeout {
                    // Nothing at all arrived while we waited: likely a dead peer or a half-open
                    // connection, which TCP alone would not notice for hours. Start afresh.
                    debug!(peer, "closing a silent peer connection");
                    self.shared.close();
                }
                Err(PeerError::Timeout)
            }
        })
    }
}

impl ConnShared {
    /// Asks the writer to tear the connection down.
    fn close(&self) {
        self.closing.store(true, Ordering::Release);
        self.stop.notify_one();
    }

    fn complete(&self, id: u64, answer: Answer) {
        if let Some(waiter) = lock(&self.pending).remove(&id) {
            // The caller may have given up; its answer has nowhere to go.
            let _ = waiter.send(answer);
        }
    }

    fn heard(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_heard_ms.store(ms, Ordering::Relaxed);
    }

    fn silent_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_heard_ms.load(Ordering::Relaxed));
        self.opened.elapsed().saturating_sub(last)
    }
}

struct PendingGuard<'a> {
    shared: &'a ConnShared,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        lock(&self.shared.pending).remove(&self.id);
    }
}

/// Spawns the connection's tasks on the current runtime.
pub(super) fn start(stream: TcpStream) -> Conn {
    let (reader, writer) = stream.into_split();
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(ConnShared {
        pending: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(1),
        closing: AtomicBool::new(false),
        stop: Notify::new(),
        opened: Instant::now(),
        last_heard_ms: AtomicU64::new(0),
    });
    let read_task = tokio::spawn(read_loop(reader, shared.clone()));
    tokio::spawn(write_loop(
        writer,
        rx,
        shared.clone(),
        read_task.abort_handle(),
    ));
    Conn { tx, shared }
}

async fn read_loop(reader: OwnedReadHalf, shared: Arc<ConnShared>) {
    let mut reader = BufReader::new(reader);
    loop {
        match frame::read_frame(&mut reader).await {
            Ok(Some(frame)) => {
                shared.heard();
                let answer = match frame.kind {
                    FrameKind::Reply => Ok(frame.payload),
                    FrameKind::Error => Err(match frame::parse_error(&frame.payload) {
                        (ErrorCode::Overloaded, _) => PeerError::Overloaded,
                        (ErrorCode::BadRequest, reason) => PeerError::Codec(reason),
                        (ErrorCode::Handler, reason) => PeerError::Remote(reason),
                    }),
                    FrameKind::Request => {
                        warn!("peer sent a request on a client connection; closing it");
                        break;
                    }
                };
                shared.complete(frame.id, answer);
            }
            Ok(None) => break,
            Err(error) => {
                if error.is_violation() {
                    warn!(%error, "peer broke the frame protocol; closing the connection");
                } else {
                    debug!(%error, "peer connection read failed");
                }
                break;
            }
        }
    }
    shared.close();
}

async fn write_loop(
    writer: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    shared: Arc<ConnShared>,
    read_task: AbortHandle,
) {
    let mut writer = BufWriter::new(writer);
    loop {
        tokio::select! {
            biased;
            () = shared.stop.notified() => break,
            more = write_batch(&mut writer, &mut rx) => match more {
                Ok(true) => {}
                Ok(false) => break,
                Err(error) => {
                    debug!(%error, "peer connection write failed");
                    break;
                }
            },
        }
    }
    read_task.abort();
    rx.close();
    while let Ok(unsent) = rx.try_recv() {
        shared.complete(
            unsent.id,
            Err(PeerError::Unreachable(
                "connection closed before the request was sent".into(),
            )),
        );
    }
    let sent: Vec<_> = lock(&shared.pending).drain().collect();
    for (_, waiter) in sent {
        let _ = waiter.send(Err(PeerError::Closed));
    }
    // Dropping the halves closes the socket; no flush, a stuck peer must not hold us here.
}

/// Writes what is queued (at least one frame) and flushes; `false` once every sender is gone.
async fn write_batch(
    writer: &mut BufWriter<OwnedWriteHalf>,
    rx: &mut mpsc::UnboundedReceiver<Outgoing>,
) -> std::io::Result<bool> {
    let Some(first) = rx.recv().await else {
        return Ok(false);
    };
    frame::write_frame(writer, FrameKind::Request, first.id, &first.payload).await?;
    for _ in 1..WRITE_BATCH {
        let Ok(next) = rx.try_recv() else { break };
        frame::write_frame(writer, FrameKind::Request, next.id, &next.payload).await?;
    }
    writer.flush().await?;
    Ok(true)
}
