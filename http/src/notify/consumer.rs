//! The consume loop: RabbitMQ in, emails out, each delivery acknowledged only once its event is
//! emailed and recorded (or dead-lettered, or needs no email).
//!
//! Per delivery, one at a time, in queue order:
//! 1. parse; garbage, an unknown version or an unknown type → dead-lettered at once;
//! 2. already recorded as sent in Redis → acknowledged, counted as a duplicate;
//! 3. no template for its type → acknowledged;
//! 4. sent, with up to `max_attempts` attempts and doubling waits; still failing →
//!    dead-lettered with the last error as the reason;
//! 5. recorded in Redis (retried until it works: acknowledging unrecorded would let a later
//!    duplicate through), then acknowledged.
//!
//! A crash between 4 and 5 leaves the delivery unacknowledged and unrecorded: RabbitMQ hands it
//! out again and that one email goes out twice. Nothing else sends twice.
//!
//! Dead-lettering publishes the message unchanged to `<queue>.dlx` (a fanout exchange whose
//! queue is `<queue>.dead`) with the headers `x-emporium-reason` and
//! `x-emporium-routing-key`, waits for the broker's confirm, then acknowledges the original.
//! The queue itself also names `<queue>.dlx` as its dead-letter exchange, so anything the broker
//! dead-letters on its own lands there too.
//!
//! RabbitMQ down or the connection lost: reconnect with backoff (0.5 s doubling to 30 s); what
//! was unacknowledged is delivered again (and found in Redis if it was sent).

use std::time::Duration;

use futures_util::StreamExt as _;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use tokio::sync::watch;

use super::dedupe::Dedupe;
use super::event::Event;
use super::mailer::{Mailer, SendError};
use super::metrics::Metrics;
use super::template::Templates;
use super::Settings;

const RECONNECT_INITIAL: Duration = Duration::from_millis(500);
const RECONNECT_MAX: Duration = Duration::from_secs(30);
/// Bound on connecting and declaring the topology, and on one confirm of a dead-letter publish.
const BROKER_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Consumer {
    pub settings: Settings,
    pub templates: Templates,
    pub mailer: Mailer,
    pub dedupe: Dedupe,
    pub metrics: Metrics,
}

#[derive(Clone, Copy)]
enum DedupeOp {
    WasSent,
    RecordSent,
}

/// The session ended because the process is stopping.
struct Stopping;

enum SessionEnd {
    Stopping,
    Failed(String),
}

impl From<Stopping> for SessionEnd {
    fn from(_: Stopping) -> Self {
        Self::Stopping
    }
}

impl From<lapin::Error> for SessionEnd {
    fn from(e: lapin::Error) -> Self {
        Self::Failed(format!("rabbitmq: {e}"))
    }
}

/// Sleeps, unless the process is asked to stop first.
async fn pause(stop: &mut watch::Receiver<bool>, delay: Duration) -> Result<(), Stopping> {
    if *stop.borrow() {
        return Err(Stopping);
    }
    tokio::select! {
        () = tokio::time::sleep(delay) => Ok(()),
        _ = stop.changed() => Err(Stopping),
    }
}

impl Consumer {
    /// Consumes until `stop` turns true; never returns an error (every failure is retried).
    #[tracing::instrument(name = "notify", skip_all, fields(queue = %self.settings.queue))]
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut delay = RECONNECT_INITIAL;
        loop {
            let (end, consumed) = self.session(&mut stop).await;
            self.metrics.broker_up.set(0);
            match end {
                SessionEnd::Stopping => return,
                SessionEnd::Failed(e) => {
                    if consumed {
                        delay = RECONNECT_INITIAL;
                    }
                    tracing::warn!(error = %e, retry_in = ?delay, "notification consumer disconnected");
                    if pause(&mut stop, delay).await.is_err() {
                        return;
                    }
                    delay = (delay * 2).min(RECONNECT_MAX);
                }
            }
        }
    }

    /// One connection: declare, consume, handle deliveries. Whether consuming had started.
    async fn session(&mut self, stop: &mut watch::Receiver<bool>) -> (SessionEnd, bool) {
        let opened = tokio::time::timeout(BROKER_TIMEOUT, self.open()).await;
        let (connection, channel, mut deliveries) = match opened {
            Ok(Ok(live)) => live,
            Ok(Err(e)) => return (e.into(), false),
            Err(_) => {
                let e = format!("rabbitmq: not consuming within {BROKER_TIMEOUT:?}");
                return (SessionEnd::Failed(e), false);
            }
        };
        self.metrics.broker_up.set(1);
        tracing::info!("consuming order events");
        let end = loop {
            let next = tokio::select! {
                next = deliveries.next() => next,
                _ = stop.changed() => break SessionEnd::Stopping,
            };
            let delivery = match next {
                Some(Ok(d)) => d,
                Some(Err(e)) => break e.into(),
                None => break SessionEnd::Failed("rabbitmq: the consumer was cancelled".into()),
            };
            if let Err(end) = self.handle(&channel, delivery, stop).await {
                break end;
            }
        };
        // Unacknowledged deliveries go back to the queue when the channel closes.
        let _ =
            tokio::time::timeout(Duration::from_secs(2), connection.close(200, "bye".into())).await;
        (end, true)
    }

    async fn open(&self) -> Result<(Connection, Channel, lapin::Consumer), lapin::Error> {
        let s = &self.settings;
        let properties =
            ConnectionProperties::default().with_connection_name("emporium-notify".into());
        let tls = emporium_persistence::tls::amqp_tls(s.tls_ca.as_deref());
        let runtime = lapin::runtime::default_runtime()?;
        let connection =
            Connection::connect_with_config(&s.amqp_url, properties, tls, runtime).await?;
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        let no_args = FieldTable::default;
        channel
            .exchange_declare(
                s.exchange.as_str().into(),
                ExchangeKind::Topic,
                durable,
                no_args(),
            )
            .await?;
        channel
            .exchange_declare(
                s.dead_exchange().into(),
                ExchangeKind::Fanout,
                durable,
                no_args(),
            )
            .await?;
        let durable_queue = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        channel
            .queue_declare(s.dead_queue().into(), durable_queue, no_args())
            .await?;
        channel
            .queue_bind(
                s.dead_queue().into(),
                s.dead_exchange().into(),
                "".into(),
                QueueBindOptions::default(),
                no_args(),
            )
            .await?;
        let mut args = FieldTable::default();
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(s.dead_exchange().as_str().into()),
        );
        channel
            .queue_declare(s.queue.as_str().into(), durable_queue, args)
            .await?;
        channel
            .queue_bind(
                s.queue.as_str().into(),
                s.exchange.as_str().into(),
                "order.*".into(),
                QueueBindOptions::default(),
                no_args(),
            )
            .await?;
        channel
            .basic_qos(s.prefetch, BasicQosOptions::default())
            .await?;
        let deliveries = channel
            .basic_consume(
                s.queue.as_str().into(),
                "emporium-notify".into(),
                BasicConsumeOptions::default(),
                no_args(),
            )
            .await?;
        Ok((connection, channel, deliveries))
    }

    #[tracing::instrument(skip_all, fields(delivery = delivery.delivery_tag))]
    async fn handle(
        &mut self,
        channel: &Channel,
        delivery: Delivery,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), SessionEnd> {
        self.metrics.consumed.inc();
        let event = match Event::parse(&delivery.data) {
            Ok(e) => e,
            Err(invalid) => {
                tracing::error!(
                    routing_key = %delivery.routing_key,
                    message_id = ?delivery.properties.message_id(),
                    error = %invalid,
                    "order event cannot be read; dead-lettered"
                );
                return self
                    .dead_letter(channel, &delivery, invalid.label(), &invalid.to_string())
                    .await;
            }
        };
        let id = event.event_id.as_str();
        if self.redis(stop, DedupeOp::WasSent, id).await? {
            self.metrics.duplicates.inc();
            tracing::info!(
                event_id = id,
                "event emailed before; acknowledged without an email"
            );
            return ack(&delivery).await;
        }
        let Some(email) = self.templates.render(&event) else {
            self.metrics.skipped.inc();
            self.metrics.lag.observe(event.age_secs());
            return ack(&delivery).await;
        };
        let mut delay = self.settings.retry_initial;
        let mut attempt = 1;
        loop {
            match self.mailer.send(&event.order.user_email, id, &email).await {
                Ok(()) => break,
                Err(e) if attempt >= self.settings.max_attempts => {
                    let label = match e {
                        SendError::Transient(_) => "smtp_transient",
                        SendError::Permanent(_) => "smtp_permanent",
                    };
                    tracing::error!(event_id = id, attempts = attempt, error = %e, "email not sent; dead-lettered");
                    let reason = format!("{e} (after {attempt} attempts)");
                    return self.dead_letter(channel, &delivery, label, &reason).await;
                }
                Err(e) => {
                    self.metrics.retried.inc();
                    tracing::warn!(event_id = id, attempt, retry_in = ?delay, error = %e, "email not sent; trying again");
                    pause(stop, delay).await?;
                    delay = (delay * 2).min(self.settings.retry_max);
                    attempt += 1;
                }
            }
        }
        self.metrics.sent.inc();
        if !self.redis(stop, DedupeOp::RecordSent, id).await? {
            tracing::warn!(
                event_id = id,
                "another delivery of this event was recorded as sent meanwhile"
            );
        }
        self.metrics.lag.observe(event.age_secs());
        ack(&delivery).await
    }

    /// Runs a dedupe command until it works (Redis down holds the queue, never skips the
    /// check), with waits doubling from the retry setting to its maximum.
    async fn redis(
        &mut self,
        stop: &mut watch::Receiver<bool>,
        op: DedupeOp,
        event_id: &str,
    ) -> Result<bool, SessionEnd> {
        let mut delay = self.settings.retry_initial;
        loop {
            let outcome = match op {
                DedupeOp::WasSent => self.dedupe.was_sent(event_id).await,
                DedupeOp::RecordSent => self.dedupe.record_sent(event_id).await,
            };
            match outcome {
                Ok(v) => {
                    self.metrics.redis_up.set(1);
                    return Ok(v);
                }
                Err(e) => {
                    self.metrics.redis_up.set(0);
                    tracing::warn!(error = %e, retry_in = ?delay, "dedupe store unavailable");
                    pause(stop, delay).await?;
                    delay = (delay * 2).min(self.settings.retry_max);
                }
            }
        }
    }

    async fn dead_letter(
        &self,
        channel: &Channel,
        delivery: &Delivery,
        label: &'static str,
        reason: &str,
    ) -> Result<(), SessionEnd> {
        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        // AMQP long strings hold any length; the reason is cut to keep headers small.
        let reason: String = reason.chars().take(1000).collect();
        headers.insert(
            "x-emporium-reason".into(),
            AMQPValue::LongString(reason.into()),
        );
        headers.insert(
            "x-emporium-routing-key".into(),
            AMQPValue::LongString(delivery.routing_key.as_str().into()),
        );
        let properties: BasicProperties = delivery.properties.clone().with_headers(headers);
        let confirm = channel
            .basic_publish(
                self.settings.dead_exchange().into(),
                ShortString::from(""),
                BasicPublishOptions::default(),
                &delivery.data,
                properties,
            )
            .await?;
        match tokio::time::timeout(BROKER_TIMEOUT, confirm).await {
            Ok(Ok(Confirmation::Ack(_))) => {}
            Ok(Ok(other)) => {
                return Err(SessionEnd::Failed(format!(
                    "rabbitmq: dead-letter publish not confirmed: {other:?}"
                )))
            }
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => {
                return Err(SessionEnd::Failed(
                    "rabbitmq: dead-letter publish not confirmed in time".into(),
                ))
            }
        }
        self.metrics.dead_lettered.with_label_values(&[label]).inc();
        ack(delivery).await
    }
}

async fn ack(delivery: &Delivery) -> Result<(), SessionEnd> {
    delivery.acker.ack(BasicAckOptions::default()).await?;
    Ok(())
}
