//! The answering side of the peer link: accept, authenticate, and run each request's handler.
//!
//! The handler is the engine's (actix actors behind it), so its futures are `!Send`: the server
//! runs its connections and handlers in its own tokio `LocalSet` on the thread that polls
//! [`PeerServer::run`]. Requests on one connection run concurrently and are answered in
//! completion order, each reply carrying its request's id. Beyond the per-connection bound a
//! request is answered "overloaded" at once without running, so a busy node sheds load instead
//! of queueing it without limit.
//!
//! Stopping drops every connection and every handler still running (their callers see the
//! connection close). Draining work before that is the handoff protocol's job, above this layer.

use std::cell::Cell;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::LocalBoxFuture;
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::LocalSet;
use tracing::{debug, warn};

use super::frame::{self, ErrorCode, Frame, FrameKind};
use super::{auth, PeerOrigin, PeerStats};
use crate::wire::{decode_request, encode_reply, PeerReply, PeerRequest};

/// Answers one authenticated peer request. An `Err` reaches the caller as
/// [`PeerError::Remote`](super::PeerError::Remote).
pub type PeerHandler =
    Rc<dyn Fn(PeerOrigin, PeerRequest) -> LocalBoxFuture<'static, Result<PeerReply, String>>>;

/// Frames written before a flush when replies complete faster than the socket drains.
const WRITE_BATCH: usize = 64;

#[derive(Clone)]
pub struct PeerServerOptions {
    /// The cluster secret; every peer must hold the same.
    pub secret: Vec<u8>,
    /// Requests in flight on one connection beyond which a request is answered "overloaded".
    pub max_in_flight_per_conn: usize,
}

impl fmt::Debug for PeerServerOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerServerOptions")
            .field("secret", &"<redacted>")
            .field("max_in_flight_per_conn", &self.max_in_flight_per_conn)
            .finish()
    }
}

/// The peer listener. Bind it, keep a [`PeerServerStop`], then poll [`PeerServer::run`] on a
/// thread that may run `!Send` futures (an actix arbiter, or `LocalSet`/`block_on`).
pub struct PeerServer {
    listener: TcpListener,
    context: Rc<Context>,
    stop_tx: Arc<watch::Sender<bool>>,
    stop_rx: watch::Receiver<bool>,
}

struct Context {
    secret: Vec<u8>,
    max_in_flight: usize,
    handler: PeerHandler,
    stats: Arc<PeerStats>,
}

/// Stops a [`PeerServer`]: `run` returns and every connection closes. `Send`, cheap to clone.
#[derive(Clone, Debug)]
pub struct PeerServerStop {
    tx: Arc<watch::Sender<bool>>,
}

impl PeerServerStop {
    pub fn stop(&self) {
        self.tx.send_replace(true);
    }
}

impl PeerServer {
    pub async fn bind(
        addr: SocketAddr,
        options: PeerServerOptions,
        handler: PeerHandler,
    ) -> io::Result<Self> {
        Self::bind_with_stats(addr, options, handler, Arc::new(PeerStats::default())).await
    }

    /// As [`PeerServer::bind`], counting into `stats` (e.g. shared with the client).
    pub async fn bind_with_stats(
        addr: SocketAddr,
        options: PeerServerOptions,
        handler: PeerHandler,
        stats: Arc<PeerStats>,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let (stop_tx, stop_rx) = watch::channel(false);
        Ok(Self {
            listener,
            context: Rc::new(Context {
                secret: options.secret,
                max_in_flight: options.max_in_flight_per_conn,
                handler,
                stats,
            }),
            stop_tx: Arc::new(stop_tx),
            stop_rx,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn stats(&self) -> &Arc<PeerStats> {
        &self.context.stats
    }

    pub fn stop_handle(&self) -> PeerServerStop {
        PeerServerStop {
            tx: self.stop_tx.clone(),
        }
    }

    /// Accepts and serves peers until stopped. Everything it spawned ends with it.
    pub async fn run(self) {
        let connections = LocalSet::new();
        connections.run_until(self.accept_loop()).await;
        // Dropping `connections` drops every connection and handler task.
    }

    async fn accept_loop(self) {
        let mut stop = self.stop_rx.clone();
        loop {
            tokio::select! {
                biased;
                _ = stop.wait_for(|stopped| *stopped) => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, remote)) => {
                        self.context.stats.connection_accepted();
                        tokio::task::spawn_local(serve(stream, remote, self.context.clone()));
                    }
                    Err(error) => {
                        // Typically out of file descriptors: back off instead of spinning.
                        warn!(%error, "peer accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
    }
}

async fn serve(mut stream: TcpStream, remote: SocketAddr, context: Rc<Context>) {
    let _ = stream.set_nodelay(true);
    let origin = match auth::accept(&mut stream, &context.secret).await {
        Ok(origin) => origin,
        Err(reason) => {
            context.stats.auth_refused();
            warn!(%remote, %reason, "peer connection refused");
            return;
        }
    };
    debug!(%remote, ordinal = origin.ordinal, generation = origin.generation, "peer connected");
    let (reader, writer) = stream.into_split();
    let (replies, reply_rx) = mpsc::channel(context.max_in_flight.saturating_add(WRITE_BATCH));
    let write_task = tokio::task::spawn_local(write_replies(writer, reply_rx));
    let in_flight = Rc::new(Cell::new(0usize));
    let mut reader = BufReader::new(reader);
    loop {
        let frame = match frame::read_frame(&mut reader).await {
            Ok(Some(frame)) if frame.kind == FrameKind::Request => frame,
            Ok(Some(frame)) => {
                context.stats.bad_frame();
                warn!(%remote, kind = ?frame.kind, "peer sent a non-request frame; closing");
                break;
            }
            Ok(None) => break,
            Err(error) => {
                if error.is_violation() {
                    context.stats.bad_frame();
                    warn!(%remote, %error, "peer broke the frame protocol; closing");
                }
                break;
            }
        };
        let id = frame.id;
        let request = match decode_request(&frame.payload) {
            Ok(request) => request,
            Err(error) => {
                let reason = format!("bad request: {error}");
                if send_error(&replies, id, ErrorCode::BadRequest, &reason).await {
                    continue;
                }
                break;
            }
        };
        if in_flight.get() >= context.max_in_flight {
            context.stats.request_shed();
            if send_error(&replies, id, ErrorCode::Overloaded, "overloaded").await {
                continue;
            }
            break;
        }
        let slot = InFlight::take(&in_flight);
        let handling = (context.handler)(origin, request);
        let replies = replies.clone();
        let stats = context.stats.clone();
        tokio::task::spawn_local(async move {
            let outcome = handling.await;
            drop(slot);
            stats.request_served();
            let frame = match outcome.map(|reply| encode_reply(&reply)) {
                Ok(Ok(bytes)) if frame::fits(bytes.len()) => Frame {
                    kind: FrameKind::Reply,
                    id,
                    payload: bytes,
                },
                Ok(Ok(bytes)) => error_frame(
                    id,
                    ErrorCode::Handler,
                    &format!("reply of {} bytes exceeds the frame limit", bytes.len()),
                ),
                Ok(Err(error)) => error_frame(id, ErrorCode::Handler, &error.to_string()),
                Err(reason) => error_frame(id, ErrorCode::Handler, &reason),
            };
            // The connection may be gone; then so is whoever wanted the answer.
            let _ = replies.send(frame).await;
        });
    }
    // The peer left or broke the protocol: close now, whatever is still being answered.
    write_task.abort();
}

fn error_frame(id: u64, code: ErrorCode, reason: &str) -> Frame {
    Frame {
        kind: FrameKind::Error,
        id,
        payload: frame::error_payload(code, reason),
    }
}

/// Queues an error answer; `false` if the connection's writer is gone.
async fn send_error(replies: &mpsc::Sender<Frame>, id: u64, code: ErrorCode, reason: &str) -> bool {
    replies.send(error_frame(id, code, reason)).await.is_ok()
}

async fn write_replies(writer: OwnedWriteHalf, mut replies: mpsc::Receiver<Frame>) {
    let mut writer = BufWriter::new(writer);
    while let Some(first) = replies.recv().await {
        if let Err(error) = write_batch(&mut writer, first, &mut replies).await {
            debug!(%error, "peer reply write failed");
            return;
        }
    }
}

async fn write_batch(
    writer: &mut BufWriter<OwnedWriteHalf>,
    first: Frame,
    replies: &mut mpsc::Receiver<Frame>,
) -> io::Result<()> {
    frame::write_frame(writer, first.kind, first.id, &first.payload).await?;
    for _ in 1..WRITE_BATCH {
        let Ok(next) = replies.try_recv() else { break };
        frame::write_frame(writer, next.kind, next.id, &next.payload).await?;
    }
    writer.flush().await
}

/// One request's place in its connection's in-flight count, given back on drop (also when the
/// handler panics or the task is dropped).
struct InFlight(Rc<Cell<usize>>);

impl InFlight {
    fn take(count: &Rc<Cell<usize>>) -> Self {
        count.set(count.get() + 1);
        Self(count.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}
