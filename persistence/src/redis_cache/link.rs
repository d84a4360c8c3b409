//! The cache's one connection to Redis: created lazily, every command bounded by a timeout, and a
//! back-off so that a dead Redis costs one probe per back-off period instead of a timeout per request.
//!
//! Ordering matters for staleness: all commands go over one multiplexed connection, which Redis
//! executes in order. A command that timed out is therefore *kept* on the connection (it may still
//! run later, e.g. after `CLIENT PAUSE`), and any later `DEL` of the same key runs after it. The
//! connection is replaced only when it reports itself broken (I/O or protocol error), when nothing
//! sent on it can run any more.
//!
//! Deliberately does not: retry a command (the caller falls back to the store), or replace a
//! connection that merely times out (a half-open TCP connection is found by the OS keepalive).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, Cmd, ConnectionAddr, FromRedisValue, RedisError};

use super::CacheStats;
use crate::tls::{tls_failure, Reach};

/// First pause after a failure; doubled after each failed probe up to [`MAX_BACKOFF`].
pub(super) const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(10);

pub(super) struct Link {
    client: Client,
    config: AsyncConnectionConfig,
    op_timeout: Duration,
    /// The current connection and an id, so a failing caller only drops the one it used.
    slot: tokio::sync::Mutex<Option<(u64, MultiplexedConnection)>>,
    next_id: AtomicU64,
    health: Mutex<Health>,
    stats: Arc<CacheStats>,
}

struct Health {
    /// While set and in the future, Redis is skipped. Once past, one call probes it.
    skip_until: Option<Instant>,
    delay: Duration,
    /// When the probe in flight started; a probe whose caller was cancelled expires.
    probe_started: Option<Instant>,
}

impl Link {
    /// Parses the URL only; nothing connects until the first command. A `rediss://` URL trusts
    /// `tls_ca` (PEM) when given, else the system's roots.
    pub(super) fn new(
        redis_url: &str,
        tls_ca: Option<&str>,
        op_timeout: Duration,
        stats: Arc<CacheStats>,
    ) -> Result<Self, crate::Error> {
        let client = crate::tls::redis_client(redis_url, tls_ca)
            .map_err(|e| crate::Error::Unavailable(format!("bad redis url: {e}")))?;
        // Our own timeout bounds each command; the driver's response timeout stays off so that
        // a late reply never turns into an error that would make us drop the connection.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(op_timeout))
            .set_response_timeout(None);
        Ok(Self {
            client,
            config,
            op_timeout,
            slot: tokio::sync::Mutex::new(None),
            next_id: AtomicU64::new(0),
            health: Mutex::new(Health {
                skip_until: None,
                delay: INITIAL_BACKOFF,
                probe_started: None,
            }),
            stats,
        })
    }

    /// Runs one command within `op_timeout`. `None` when Redis is being skipped (back-off) or the
    /// command failed or timed out; the caller then treats Redis as unavailable for this key.
    pub(super) async fn run<T: FromRedisValue>(&self, cmd: &Cmd) -> Option<T> {
        if !self.usable() {
            return None;
        }
        let attempt = async {
            let (id, mut conn) = match self.connection().await {
                Ok(c) => c,
                Err(e) => return Err(e),
            };
            match cmd.query_async::<T>(&mut conn).await {
                Ok(v) => Ok(v),
                Err(e) => {
                    if !matches!(e.kind(), redis::ErrorKind::Server(_)) {
                        self.forget(id).await;
                    }
                    Err(e)
                }
            }
        };
        match tokio::time::timeout(self.op_timeout, attempt).await {
            Ok(Ok(v)) => {
                self.record_success();
                Some(v)
            }
            Ok(Err(e)) => {
                self.record_failure(&e.to_string());
                None
            }
            Err(_) => {
                self.record_failure("timed out");
                None
            }
        }
    }

    /// Connects and sends `PING` once on a connection of its own, allowing `within` for the
    /// whole (a TLS handshake included), and says what that found (see [`Reach`]).
    pub(super) async fn probe(&self, within: Duration) -> Reach {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(within))
            .set_response_timeout(Some(within));
        let attempt = async {
            let mut conn = self
                .client
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            redis::cmd("PING").query_async::<String>(&mut conn).await
        };
        let failure = match tokio::time::timeout(within, attempt).await {
            Ok(Ok(_)) => {
                self.record_success();
                return Reach::Up;
            }
            Ok(Err(e)) => {
                self.record_failure(&e.to_string());
                match classify(&e) {
                    Reach::Down(why) if e.is_timeout() => why,
                    verdict => return verdict,
                }
            }
            Err(_) => {
                self.record_failure("timed out");
                format!("no answer within {within:?}")
            }
        };
        self.silent_tls(failure).await
    }

    /// A `rediss://` server that accepts connections but never completes the handshake is a
    /// server that does not speak TLS (a plain Redis waits for a command line that never ends);
    /// one that does not even accept connections is an outage.
    async fn silent_tls(&self, why: String) -> Reach {
        if let ConnectionAddr::TcpTls { host, port, .. } = self.client.get_connection_info().addr()
        {
            let tcp = tokio::net::TcpStream::connect((host.as_str(), *port));
            if matches!(
                tokio::time::timeout(Duration::from_secs(1), tcp).await,
                Ok(Ok(_))
            ) {
                return Reach::Misconfigured(format!(
                    "TLS: {host}:{port} accepts connections but completed no TLS handshake \
                     ({why}); does it speak TLS?"
                ));
            }
        }
        Reach::Down(why)
    }

    async fn connection(&self) -> Result<(u64, MultiplexedConnection), redis::RedisError> {
        let mut slot = self.slot.lock().await;
        if let Some((id, conn)) = slot.as_ref() {
            return Ok((*id, conn.clone()));
        }
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        *slot = Some((id, conn.clone()));
        Ok((id, conn))
    }

    async fn forget(&self, id: u64) {
        let mut slot = self.slot.lock().await;
        if slot.as_ref().is_some_and(|(current, _)| *current == id) {
            *slot = None;
        }
    }

    /// Whether this call may use Redis: always when healthy, never during back-off, and for exactly
    /// one caller (the probe) once the back-off has passed.
    fn usable(&self) -> bool {
        let Ok(mut h) = self.health.lock() else {
            return false;
        };
        let now = Instant::now();
        match h.skip_until {
            None => true,
            Some(until) if now < until => false,
            Some(_) => match h.probe_started {
                Some(started) if now.duration_since(started) < self.op_timeout * 4 => false,
                _ => {
                    h.probe_started = Some(now);
                    true
                }
            },
        }
    }

    fn record_success(&self) {
        let Ok(mut h) = self.health.lock() else {
            return;
        };
        if h.skip_until.is_some() {
            tracing::info!("redis cache reachable again");
        }
        h.skip_until = None;
        h.delay = INITIAL_BACKOFF;
        h.probe_started = None;
        self.stats.healthy.store(true, Ordering::Relaxed);
    }

    fn record_failure(&self, reason: &str) {
        self.stats.errors.fetch_add(1, Ordering::Relaxed);
        self.stats.healthy.store(false, Ordering::Relaxed);
        let Ok(mut h) = self.health.lock() else {
            return;
        };
        let now = Instant::now();
        match (h.skip_until, h.probe_started) {
            (None, _) => {
                tracing::warn!(reason, backoff = ?INITIAL_BACKOFF, "redis cache unavailable, bypassing it");
                h.delay = INITIAL_BACKOFF;
            }
            (Some(_), Some(_)) => {
                h.delay = (h.delay * 2).min(MAX_BACKOFF);
                tracing::debug!(reason, backoff = ?h.delay, "redis cache probe failed");
            }
            // A command already in flight when the back-off began: the back-off stands.
            (Some(until), None) if until > now => return,
            (Some(_), None) => {}
        }
        h.skip_until = Some(now + h.delay);
        h.probe_started = None;
    }
}

/// A TLS failure or refused credentials are the configuration's; anything else is an outage.
fn classify(e: &RedisError) -> Reach {
    if let Some(tls) = tls_failure(e) {
        return Reach::Misconfigured(format!("TLS: {tls}"));
    }
    let refused_credentials = matches!(e.kind(), redis::ErrorKind::AuthenticationFailed)
        || matches!(e.code(), Some("NOAUTH" | "WRONGPASS" | "NOPERM"));
    if refused_credentials {
        Reach::Misconfigured(format!("credentials refused: {e}"))
    } else {
        Reach::Down(e.to_string())
    }
}
