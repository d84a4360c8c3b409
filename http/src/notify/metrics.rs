//! The consumer's counters, in one Prometheus registry rendered at its `/metrics`.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Messages taken from the queue (every delivery, duplicates and garbage included).
    pub consumed: IntCounter,
    /// Emails the SMTP server accepted.
    pub sent: IntCounter,
    /// Deliveries of an event already emailed: acknowledged without a second email.
    pub duplicates: IntCounter,
    /// Events that need no email (no template for their type): acknowledged.
    pub skipped: IntCounter,
    /// Sending attempts that failed and were tried again.
    pub retried: IntCounter,
    /// Messages moved to the dead-letter queue, by reason class.
    pub dead_lettered: IntCounterVec,
    /// Seconds from an event's occurrence to its email (or its skip).
    pub lag: Histogram,
    /// 1 while consuming from RabbitMQ.
    pub broker_up: IntGauge,
    /// 1 while the dedupe store answered its last command.
    pub redis_up: IntGauge,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let gauge = |name: &str, help: &str| -> Result<IntGauge, prometheus::Error> {
            let g = IntGauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let consumed = counter(
            "emporium_notify_consumed_total",
            "Messages taken from the notification queue.",
        )?;
        let sent = counter(
            "emporium_notify_sent_total",
            "Emails the SMTP server accepted.",
        )?;
        let duplicates = counter(
            "emporium_notify_duplicates_skipped_total",
            "Deliveries of an event already emailed, acknowledged without a second email.",
        )?;
        let skipped = counter(
            "emporium_notify_no_template_total",
            "Events of a type without a template, acknowledged without an email.",
        )?;
        let retried = counter(
            "emporium_notify_retried_total",
            "Failed sending attempts that were tried again.",
        )?;
        let dead_lettered = IntCounterVec::new(
            Opts::new(
                "emporium_notify_dead_lettered_total",
                "Messages moved to the dead-letter queue, by reason.",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(dead_lettered.clone()))?;
        let lag = Histogram::with_opts(
            HistogramOpts::new(
                "emporium_notify_lag_seconds",
                "Seconds from an order event to its email.",
            )
            .buckets(vec![0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 1800.0, 7200.0]),
        )?;
        registry.register(Box::new(lag.clone()))?;
        let broker_up = gauge(
            "emporium_notify_broker_up",
            "1 while consuming from RabbitMQ.",
        )?;
        let redis_up = gauge(
            "emporium_notify_redis_up",
            "1 while the dedupe store answered its last command.",
        )?;
        Ok(Self {
            registry,
            consumed,
            sent,
            duplicates,
            skipped,
            retried,
            dead_lettered,
            lag,
            broker_up,
            redis_up,
        })
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::warn!(error = %e, "metrics encoding failed");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}
