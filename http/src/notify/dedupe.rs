//! The record of events already emailed: one Redis key per event id (`SET NX` with an expiry),
//! so a redelivered or re-published event is acknowledged without a second email.
//!
//! Deliberately does not: claim an event before sending it (a claim whose holder dies would lose
//! the email; the consumer records only after the SMTP server accepted it, see `consumer`).

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client};

/// Bound on one Redis command (and on connecting).
const OP_TIMEOUT: Duration = Duration::from_secs(3);

pub struct Dedupe {
    client: Client,
    config: AsyncConnectionConfig,
    conn: Option<MultiplexedConnection>,
    prefix: String,
    ttl_secs: u64,
}

impl Dedupe {
    /// Parses the URL; connects on first use. Keys are `<prefix>:sent:<event id>`. A
    /// `rediss://` URL trusts `tls_ca` (PEM) when given, else the system's roots.
    pub fn new(
        url: &str,
        prefix: &str,
        ttl_secs: u64,
        tls_ca: Option<&str>,
    ) -> Result<Self, String> {
        let client = emporium_persistence::tls::redis_client(url, tls_ca)
            .map_err(|e| format!("notify_redis_url: {e}"))?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(OP_TIMEOUT))
            .set_response_timeout(Some(OP_TIMEOUT));
        Ok(Self {
            client,
            config,
            conn: None,
            prefix: prefix.to_owned(),
            ttl_secs,
        })
    }

    fn key(&self, event_id: &str) -> String {
        format!("{}:sent:{event_id}", self.prefix)
    }

    /// Whether this event was emailed already.
    pub async fn was_sent(&mut self, event_id: &str) -> Result<bool, String> {
        let mut cmd = redis::cmd("EXISTS");
        cmd.arg(self.key(event_id));
        self.run::<i64>(&cmd).await.map(|n| n > 0)
    }

    /// Records the event as emailed; `Ok(false)` if it was recorded already (another delivery
    /// of it was sent in the meantime).
    pub async fn record_sent(&mut self, event_id: &str) -> Result<bool, String> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(event_id))
            .arg(unix_secs())
            .arg("NX")
            .arg("EX")
            .arg(self.ttl_secs);
        self.run::<Option<String>>(&cmd)
            .await
            .map(|ok| ok.is_some())
    }

    async fn run<T: redis::FromRedisValue>(&mut self, cmd: &redis::Cmd) -> Result<T, String> {
        let conn = match &self.conn {
            Some(c) => c.clone(),
            None => {
                let connect = self
                    .client
                    .get_multiplexed_async_connection_with_config(&self.config);
                let c = tokio::time::timeout(OP_TIMEOUT, connect)
                    .await
                    .map_err(|_| format!("redis: no connection within {OP_TIMEOUT:?}"))?
                    .map_err(|e| format!("redis: {e}"))?;
                self.conn = Some(c.clone());
                c
            }
        };
        let mut conn = conn;
        match tokio::time::timeout(OP_TIMEOUT, cmd.query_async::<T>(&mut conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                self.conn = None;
                Err(format!("redis: {e}"))
            }
            Err(_) => {
                self.conn = None;
                Err(format!("redis: no answer within {OP_TIMEOUT:?}"))
            }
        }
    }
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
