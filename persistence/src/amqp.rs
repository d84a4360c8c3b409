//! The RabbitMQ event sink: publishes outbox entries to a durable topic exchange with publisher
//! confirms, for the outbox relay.
//!
//! Solves: handing a batch of events to the broker and answering `Ok` only once the broker has
//! confirmed every one of them (persistent messages, `message_id` = event id so consumers can
//! dedupe); publishing the batch pipelined (all publishes first, then all confirms); surviving a
//! broker that goes away and comes back: any connection or channel error drops the connection and
//! the next `publish` opens a new one, each attempt bounded by `connect_timeout`.
//!
//! Deliberately does not: retry or back off on its own (the relay owns the retry cadence; this
//! only refuses to reconnect more often than every [`MIN_RECONNECT_INTERVAL`]), use lapin's
//! automatic recovery (a fresh connection per failure is simpler to reason about and the relay
//! re-sends the whole batch anyway), publish `mandatory` (an event nobody is bound to is still
//! accepted), publish concurrently (batches are sequential: one relay, one channel behind a lock),
//! or deduplicate (delivery is at least once).
//!
//! Runtime: lapin 4 runs each connection's I/O on its own thread (`lapin-io-loop`) and drives the
//! socket through the tokio runtime that opened the connection. That works on a multi-thread
//! runtime and on a current-thread one (actix's `System`, `#[tokio::test]`) as long as that
//! runtime keeps running; the connection is opened from the runtime that calls `publish`/`connect`.
//! A connect attempt that times out is abandoned by the caller, but lapin's I/O thread may keep
//! waiting on the TCP connect until the kernel gives up (only when packets are dropped rather than
//! refused); the thread then ends on its own.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::uri::AMQPUri;
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ConnectionStatus,
    ExchangeKind,
};

use crate::tls::{tls_failure, Reach};
use crate::{Error, EventSink, OutboxEntry};

/// After a failed connection attempt, further attempts within this interval fail at once.
pub const MIN_RECONNECT_INTERVAL: Duration = Duration::from_millis(500);

/// AMQP delivery mode of a persistent message.
const PERSISTENT: u8 = 2;

/// Settings of an [`AmqpSink`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpOptions {
    /// Topic exchange the events go to (declared durable on connect).
    pub exchange: String,
    /// `content_type` property of every message.
    pub content_type: String,
    /// Bound on one connection attempt (TCP, handshake, channel, confirm mode, exchange).
    pub connect_timeout: Duration,
    /// Bound on publishing one batch and receiving all of its confirms.
    pub confirm_timeout: Duration,
    /// PEM certificates an `amqps://` connection trusts; `None`: the system's roots.
    pub tls_ca: Option<String>,
}

impl Default for AmqpOptions {
    fn default() -> Self {
        Self {
            exchange: "orders".to_owned(),
            content_type: "application/json".to_owned(),
            connect_timeout: Duration::from_secs(5),
            confirm_timeout: Duration::from_secs(10),
            tls_ca: None,
        }
    }
}

/// Publishes outbox entries to RabbitMQ. See the module docs.
pub struct AmqpSink {
    uri: AMQPUri,
    exchange: ShortString,
    content_type: ShortString,
    options: AmqpOptions,
    link: tokio::sync::Mutex<Link>,
    /// Outcome of the last connect or publish.
    last_ok: AtomicBool,
    /// Status of the current connection, so `healthy` notices a lost broker between batches.
    status: Mutex<Option<ConnectionStatus>>,
}

#[derive(Default)]
struct Link {
    live: Option<Live>,
    last_failed_connect: Option<Instant>,
    /// Why the last failed attempt is the configuration's fault (see [`Reach::Misconfigured`]).
    misconfigured: Option<String>,
}

/// Why a batch failed: nacks leave the channel usable, anything else drops the connection.
enum Failure {
    Nacked(usize),
    Broken(Error),
}

struct Live {
    /// Kept so the connection stays open; dropping it closes the connection.
    connection: Connection,
    channel: Channel,
}

impl Live {
    fn usable(&self) -> bool {
        self.connection.status().connected() && self.channel.status().connected()
    }
}

impl AmqpSink {
    /// Does not connect; the first publish (or `connect`) does. Err only for a malformed URL
    /// (or an exchange name or content type longer than AMQP's 255-byte short strings).
    pub fn new(url: &str, options: AmqpOptions) -> Result<Self, Error> {
        let uri: AMQPUri = url
            .parse()
            .map_err(|e| Error::Unavailable(format!("malformed amqp url: {e}")))?;
        let exchange = short(&options.exchange, "exchange name")?;
        let content_type = short(&options.content_type, "content type")?;
        Ok(Self {
            uri,
            exchange,
            content_type,
            options,
            link: tokio::sync::Mutex::new(Link::default()),
            last_ok: AtomicBool::new(false),
            status: Mutex::new(None),
        })
    }

    /// Connects now (used at start). A failure is reported but not fatal: `publish` retries.
    pub async fn connect(&self) -> Result<(), Error> {
        let mut link = self.link.lock().await;
        let result = self.ensure_live(&mut link).await.map(|_| ());
        self.record(&mut link, &result);
        result
    }

    /// Connects once (used at start) and says what that found: a TLS failure or refused
    /// credentials are [`Reach::Misconfigured`]; an outage is [`Reach::Down`], after which
    /// `publish` keeps retrying as at run time.
    pub async fn probe(&self) -> Reach {
        let mut link = self.link.lock().await;
        let result = self.ensure_live(&mut link).await.map(|_| ());
        self.record(&mut link, &result);
        match result {
            Ok(()) => Reach::Up,
            Err(e) => match link.misconfigured.take() {
                Some(why) => Reach::Misconfigured(why),
                None => Reach::Down(e.to_string()),
            },
        }
    }

    /// The open channel, connecting first if there is none (or it broke).
    async fn ensure_live<'a>(&self, link: &'a mut Link) -> Result<&'a Live, Error> {
        if link.live.as_ref().is_some_and(|l| !l.usable()) {
            link.live = None;
        }
        if link.live.is_none() {
            if let Some(at) = link.last_failed_connect {
                let since = at.elapsed();
                if since < MIN_RECONNECT_INTERVAL {
                    return Err(Error::Unavailable(format!(
                        "rabbitmq: last connection attempt failed {since:?} ago, not retrying yet"
                    )));
                }
            }
            let attempt = tokio::time::timeout(self.options.connect_timeout, self.open()).await;
            link.misconfigured = None;
            let live = match attempt {
                Ok(Ok(live)) => live,
                Ok(Err((step, e))) => {
                    link.last_failed_connect = Some(Instant::now());
                    link.misconfigured = misconfiguration(&e);
                    return Err(unavailable(step, e));
                }
                Err(_) => {
                    link.last_failed_connect = Some(Instant::now());
                    return Err(Error::Unavailable(format!(
                        "rabbitmq: no connection within {:?}",
                        self.options.connect_timeout
                    )));
                }
            };
            link.last_failed_connect = None;
            if let Ok(mut status) = self.status.lock() {
                *status = Some(live.connection.status().clone());
            }
            tracing::info!(exchange = %self.exchange, "rabbitmq connected");
            link.live = Some(live);
        }
        link.live
            .as_ref()
            .ok_or_else(|| Error::Unavailable("rabbitmq: no connection".to_owned()))
    }

    /// Opens a connection and a confirm-mode channel, and declares the exchange. A failure says
    /// which step failed.
    async fn open(&self) -> Result<Live, (&'static str, lapin::Error)> {
        // lapin binds the connection to the current tokio runtime; the caller's
        // `tokio::time::timeout` already needs one, so there always is.
        let properties =
            ConnectionProperties::default().with_connection_name("emporium-outbox-relay".into());
        let tls = crate::tls::amqp_tls(self.options.tls_ca.as_deref());
        let runtime = lapin::runtime::default_runtime().map_err(|e| ("runtime", e))?;
        let connection =
            Connection::connect_uri_with_config(self.uri.clone(), properties, tls, runtime)
                .await
                .map_err(|e| ("connect", e))?;
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| ("open channel", e))?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| ("enable publisher confirms", e))?;
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        channel
            .exchange_declare(
                self.exchange.clone(),
                ExchangeKind::Topic,
                durable,
                FieldTable::default(),
            )
            .await
            .map_err(|e| ("declare exchange", e))?;
        Ok(Live {
            connection,
            channel,
        })
    }

    /// Publishes every message, then awaits every confirm.
    async fn send_all(
        &self,
        channel: &Channel,
        messages: Vec<(ShortString, BasicProperties, &[u8])>,
    ) -> Result<(), Failure> {
        let mut confirms = Vec::with_capacity(messages.len());
        for (routing_key, properties, payload) in messages {
            let confirm = channel
                .basic_publish(
                    self.exchange.clone(),
                    routing_key,
                    BasicPublishOptions::default(),
                    payload,
                    properties,
                )
                .await
                .map_err(|e| Failure::Broken(unavailable("publish", e)))?;
            confirms.push(confirm);
        }
        let mut nacked = 0usize;
        for confirm in confirms {
            let confirmation = confirm
                .await
                .map_err(|e| Failure::Broken(unavailable("confirm", e)))?;
            match confirmation {
                Confirmation::Ack(_) => {}
                Confirmation::Nack(_) => nacked += 1,
                Confirmation::NotRequested => {
                    return Err(Failure::Broken(Error::Unavailable(
                        "rabbitmq: channel is not in confirm mode".to_owned(),
                    )))
                }
            }
        }
        if nacked > 0 {
            return Err(Failure::Nacked(nacked));
        }
        Ok(())
    }

    async fn publish_locked(&self, link: &mut Link, entries: &[OutboxEntry]) -> Result<(), Error> {
        // Checked before anything is sent, so a bad entry never leaves half a batch behind.
        let messages = entries
            .iter()
            .map(|entry| self.message(entry))
            .collect::<Result<Vec<_>, _>>()?;
        let channel = self.ensure_live(link).await?.channel.clone();
        let sent = tokio::time::timeout(
            self.options.confirm_timeout,
            self.send_all(&channel, messages),
        )
        .await;
        match sent {
            Ok(Ok(())) => Ok(()),
            // A nack leaves the channel usable; the broker could not take the messages.
            Ok(Err(Failure::Nacked(n))) => Err(Error::Unavailable(format!(
                "rabbitmq: broker refused {n} of {} message(s)",
                entries.len()
            ))),
            Ok(Err(Failure::Broken(e))) => {
                link.live = None;
                Err(e)
            }
            Err(_) => {
                // Confirms may still arrive for this batch; a fresh channel keeps them apart.
                link.live = None;
                Err(Error::Unavailable(format!(
                    "rabbitmq: confirms not received within {:?}",
                    self.options.confirm_timeout
                )))
            }
        }
    }

    fn message<'e>(
        &self,
        entry: &'e OutboxEntry,
    ) -> Result<(ShortString, BasicProperties, &'e [u8]), Error> {
        let invalid = |reason: String| Error::Corrupt {
            key: entry.event_id.clone(),
            reason,
        };
        let routing_key = ShortString::try_new(entry.routing_key.as_str())
            .map_err(|e| invalid(format!("routing key: {e}")))?;
        let message_id = ShortString::try_new(entry.event_id.as_str())
            .map_err(|e| invalid(format!("event id: {e}")))?;
        let mut properties = BasicProperties::default()
            .with_delivery_mode(PERSISTENT)
            .with_message_id(message_id)
            .with_content_type(self.content_type.clone())
            .with_timestamp(entry.created_at_ms / 1000);
        // W3C trace context, so a consumer's spans continue the trace of the request.
        if let Some(trace) = &entry.trace_parent {
            let mut headers = FieldTable::default();
            headers.insert(
                "traceparent".into(),
                lapin::types::AMQPValue::LongString(trace.as_str().into()),
            );
            properties = properties.with_headers(headers);
        }
        Ok((routing_key, properties, entry.payload.as_slice()))
    }

    /// Remembers the outcome for `healthy`, dropping the connection after a failure.
    fn record(&self, link: &mut Link, result: &Result<(), Error>) {
        self.last_ok.store(result.is_ok(), Ordering::Relaxed);
        if let Err(e) = result {
            // The relay logs the failure with its retry delay; this only adds detail.
            tracing::debug!(exchange = %self.exchange, error = %e, "rabbitmq publish failed");
            if link.live.is_none() {
                if let Ok(mut status) = self.status.lock() {
                    *status = None;
                }
            }
        }
    }
}

#[async_trait]
impl EventSink for AmqpSink {
    fn name(&self) -> &'static str {
        "rabbitmq"
    }

    async fn publish(&self, entries: &[OutboxEntry]) -> Result<(), Error> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut link = self.link.lock().await;
        let result = self.publish_locked(&mut link, entries).await;
        self.record(&mut link, &result);
        result
    }

    /// The last connect or publish worked and the connection has not failed since (false until
    /// the first connect).
    fn healthy(&self) -> bool {
        let connected = self
            .status
            .lock()
            .ok()
            .and_then(|s| s.as_ref().map(ConnectionStatus::connected))
            .unwrap_or(false);
        connected && self.last_ok.load(Ordering::Relaxed)
    }
}

fn short(value: &str, what: &str) -> Result<ShortString, Error> {
    ShortString::try_new(value).map_err(|e| Error::Unavailable(format!("invalid {what}: {e}")))
}

/// A TLS failure, or credentials or a virtual host the broker refused (AMQP 403 ACCESS_REFUSED,
/// 530 NOT_ALLOWED): the configuration's fault. `None` for an outage.
fn misconfiguration(e: &lapin::Error) -> Option<String> {
    if let Some(tls) = tls_failure(e) {
        return Some(format!("TLS: {tls}"));
    }
    match e.kind() {
        lapin::ErrorKind::ProtocolError(amqp) if matches!(amqp.get_id(), 403 | 530) => {
            Some(format!("refused: {amqp}"))
        }
        lapin::ErrorKind::AuthProviderError(why) => Some(format!("credentials: {why}")),
        _ => None,
    }
}

fn unavailable(step: &str, e: lapin::Error) -> Error {
    Error::Unavailable(format!("rabbitmq: {step}: {e}"))
}
