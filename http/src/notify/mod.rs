//! `emporium notify`: the reference consumer of the order events. It emails the customer about
//! their order (received, shipped, delivered, cancelled), effectively once per event.
//!
//! Solves: reading the at-least-once event stream from its own durable RabbitMQ queue (manual
//! acknowledgements, bounded prefetch, a dead-letter queue), rendering each event with
//! replaceable templates, sending over SMTP, deduplicating by event id in Redis, retrying and
//! dead-lettering failures, reconnecting, and its own `/healthz`, `/readyz` and `/metrics`.
//! The customer's address is the order's `userEmail` in the event itself (the account's email,
//! which is the account's key), so no store is read.
//!
//! Deliberately does not: send exactly once (an SMTP server's acceptance and the Redis record
//! cannot be one atomic step; a crash between them re-sends that one email), send in parallel
//! (one delivery at a time, in queue order; more throughput is more replicas), or touch the
//! engine's state.

mod consumer;
mod dedupe;
pub mod event;
mod mailer;
mod metrics;
pub mod template;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::Context as _;
use serde_json::json;

use crate::config::Config;

/// The consumer's settings, checked (see `Config` for each one's meaning).
#[derive(Debug, Clone)]
pub struct Settings {
    pub amqp_url: String,
    pub exchange: String,
    pub queue: String,
    pub prefetch: u16,
    pub smtp_url: String,
    pub mail_from: String,
    pub templates: Option<PathBuf>,
    pub redis_url: String,
    pub dedupe_ttl_secs: u64,
    pub listen: SocketAddr,
    pub max_attempts: u32,
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// PEM certificates `amqps://` and `rediss://` trust (`tls_ca_file`); `None`: system roots.
    pub tls_ca: Option<String>,
}

/// Bound on one SMTP conversation (connect, TLS, AUTH, the message).
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

impl Settings {
    pub fn from_config(c: &Config) -> Result<Self, String> {
        let required = |v: &Option<String>, key: &str| {
            v.clone().filter(|s| !s.trim().is_empty()).ok_or_else(|| {
                format!(
                    "emporium notify needs {key} (EMPORIUM_{})",
                    key.to_uppercase()
                )
            })
        };
        let s = Settings {
            amqp_url: required(&c.amqp_url, "amqp_url")?,
            exchange: c.amqp_exchange.clone(),
            queue: c.notify_queue.clone(),
            prefetch: c.notify_prefetch,
            smtp_url: required(&c.smtp_url, "smtp_url")?,
            mail_from: required(&c.mail_from, "mail_from")?,
            templates: c.notify_templates.clone(),
            redis_url: required(&c.notify_redis_url, "notify_redis_url")?,
            dedupe_ttl_secs: c.notify_dedupe_ttl_secs,
            listen: c.notify_listen.parse().map_err(|_| {
                format!(
                    "notify_listen {:?} is not an address like 0.0.0.0:8090",
                    c.notify_listen
                )
            })?,
            max_attempts: c.notify_max_attempts,
            retry_initial: Duration::from_millis(c.notify_retry_initial_ms),
            retry_max: Duration::from_millis(c.notify_retry_max_ms),
            tls_ca: c
                .tls_ca_file
                .as_deref()
                .map(emporium_persistence::tls::read_ca_bundle)
                .transpose()
                .map_err(|e| format!("tls_ca_file: {e}"))?,
        };
        // `<queue>.dlx` must still fit AMQP's 255-byte names.
        if s.queue.is_empty() || s.queue.len() > 200 {
            return Err("notify_queue must be 1 to 200 bytes".into());
        }
        if s.prefetch == 0 || s.max_attempts == 0 || s.dedupe_ttl_secs == 0 {
            return Err(
                "notify_prefetch, notify_max_attempts and notify_dedupe_ttl_secs must be positive"
                    .into(),
            );
        }
        if s.retry_initial.is_zero() || s.retry_max < s.retry_initial {
            return Err(
                "notify_retry_initial_ms must be positive and at most notify_retry_max_ms".into(),
            );
        }
        if !["smtp://", "smtps://"]
            .iter()
            .any(|p| s.smtp_url.starts_with(p))
        {
            return Err("smtp_url must start with smtp:// or smtps://".into());
        }
        Ok(s)
    }

    fn dead_exchange(&self) -> String {
        format!("{}.dlx", self.queue)
    }

    fn dead_queue(&self) -> String {
        format!("{}.dead", self.queue)
    }
}

/// Runs the consumer and its operational endpoints until SIGTERM or SIGINT.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let settings = Settings::from_config(&config).map_err(anyhow::Error::msg)?;
    let templates =
        template::Templates::load(settings.templates.as_deref()).map_err(anyhow::Error::msg)?;
    let mailer = mailer::Mailer::new(&settings.smtp_url, &settings.mail_from, SMTP_TIMEOUT)
        .map_err(anyhow::Error::msg)?;
    let dedupe = dedupe::Dedupe::new(
        &settings.redis_url,
        &settings.queue,
        settings.dedupe_ttl_secs,
        settings.tls_ca.as_deref(),
    )
    .map_err(anyhow::Error::msg)?;
    let metrics = metrics::Metrics::new().context("metrics registry")?;
    let listen = settings.listen;
    let ops = web::Data::new(metrics.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(ops.clone())
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz))
            .route("/metrics", web::get().to(render_metrics))
    })
    .workers(1)
    .disable_signals()
    .bind(listen)
    .with_context(|| format!("cannot listen on {listen}"))?
    .run();
    let handle = server.handle();
    let server = actix_web::rt::spawn(server);
    tracing::info!(%listen, queue = %settings.queue, "emporium notify is starting");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let consumer = consumer::Consumer {
        settings,
        templates,
        mailer,
        dedupe,
        metrics,
    };
    let consuming = actix_web::rt::spawn(consumer.run(stopped));
    crate::server::shutdown_signal().await;
    tracing::info!("stopping: unacknowledged events go back to the queue");
    let _ = stop.send(true);
    if tokio::time::timeout(Duration::from_secs(20), consuming)
        .await
        .is_err()
    {
        tracing::warn!("the consumer did not stop within 20 s");
    }
    handle.stop(true).await;
    let _ = server.await;
    Ok(())
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// 200 while consuming from RabbitMQ.
async fn readyz(metrics: web::Data<metrics::Metrics>) -> HttpResponse {
    let redis = if metrics.redis_up.get() == 1 {
        "up"
    } else {
        "unknown or down"
    };
    if metrics.broker_up.get() == 1 {
        HttpResponse::Ok().json(json!({"status": "ready", "broker": "up", "redis": redis}))
    } else {
        HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "5"))
            .json(json!({"error": "not_ready", "message": "not consuming from RabbitMQ", "broker": "down", "redis": redis}))
    }
}

async fn render_metrics(metrics: web::Data<metrics::Metrics>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(metrics.render())
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closure signature, not ours
mod tests {
    use super::*;
    use crate::config::Overrides;

    #[test]
    fn the_consumer_needs_its_servers_and_sane_retries() {
        figment::Jail::expect_with(|jail| {
            let settings = || {
                Config::load(None, &Overrides::default()).and_then(|c| Settings::from_config(&c))
            };
            assert!(settings().err().unwrap_or_default().contains("amqp_url"));
            jail.set_env("EMPORIUM_AMQP_URL", "amqp://127.0.0.1:5672/%2f");
            jail.set_env("EMPORIUM_NOTIFY_REDIS_URL", "redis://127.0.0.1:6379/");
            jail.set_env("EMPORIUM_MAIL_FROM", "Shop <orders@shop.example.com>");
            let err = settings().err().unwrap_or_default();
            assert!(err.contains("EMPORIUM_SMTP_URL"), "{err}");
            jail.set_env("EMPORIUM_SMTP_URL", "smtps://u:p@smtp.example.com:465");
            let s = settings().map_err(figment::Error::from)?;
            assert_eq!(
                (s.exchange.as_str(), s.queue.as_str()),
                ("orders", "emporium-notify")
            );
            assert_eq!(
                (s.dead_exchange(), s.dead_queue()),
                ("emporium-notify.dlx".into(), "emporium-notify.dead".into())
            );
            assert_eq!((s.prefetch, s.max_attempts), (16, 10));
            for (key, bad, says) in [
                ("EMPORIUM_SMTP_URL", "http://smtp.example.com", "smtp_url"),
                ("EMPORIUM_NOTIFY_PREFETCH", "0", "notify_prefetch"),
                (
                    "EMPORIUM_NOTIFY_RETRY_MAX_MS",
                    "10",
                    "notify_retry_initial_ms",
                ),
                ("EMPORIUM_NOTIFY_LISTEN", "nowhere", "notify_listen"),
                (
                    "EMPORIUM_NOTIFY_REDIS_URL",
                    "127.0.0.1:6379",
                    "notify_redis_url",
                ),
            ] {
                jail.set_env(key, bad);
                let err = settings().err().unwrap_or_default();
                assert!(err.contains(says), "{key}={bad}: {err}");
                jail.clear_env();
                jail.set_env("EMPORIUM_AMQP_URL", "amqp://127.0.0.1:5672/%2f");
                jail.set_env("EMPORIUM_NOTIFY_REDIS_URL", "redis://127.0.0.1:6379/");
                jail.set_env("EMPORIUM_MAIL_FROM", "Shop <orders@shop.example.com>");
                jail.set_env("EMPORIUM_SMTP_URL", "smtp://127.0.0.1:25");
            }
            // The sender and the SMTP URL are checked when the mailer is built, before consuming.
            assert!(
                mailer::Mailer::new("smtp://127.0.0.1:25", "not an address", SMTP_TIMEOUT).is_err()
            );
            assert!(mailer::Mailer::new(
                "smtp://127.0.0.1:25?tls=sometimes",
                "a@b.example",
                SMTP_TIMEOUT
            )
            .is_err());
            Ok(())
        });
    }
}
