//! The notification consumer's test harness: a capturing SMTP server (aiosmtpd) the test can
//! stop and start, the `emporium notify` process itself, and a rig of one test's own exchange,
//! queue and servers.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use emporium_persistence::testkit::{amqp_url, free_port, redis_url, wait_port};
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeleteOptions,
    QueueDeleteOptions,
};
use lapin::types::AMQPValue;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use serde::Deserialize;
use serde_json::json;
use tempfile::TempDir;

use super::{blocking_get_at, metric};

/// The python with `aiosmtpd` (`EMP_TEST_AIOSMTPD`; default: the repository's `.venv-smtp`,
/// which `scripts/services.sh` creates).
pub fn aiosmtpd_python() -> String {
    std::env::var("EMP_TEST_AIOSMTPD").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv-smtp/bin/python").to_owned()
    })
}

/// Recipients starting with this are refused with 550 by [`Smtp`].
pub const REJECTED_PREFIX: &str = "refused-";

/// One captured email, as `smtp_capture.py` writes it.
#[derive(Debug, Clone, Deserialize)]
pub struct Mail {
    pub mail_from: String,
    pub to: String,
    pub subject: String,
    pub message_id: String,
    pub text: Option<String>,
    pub html: Option<String>,
}

pub struct Smtp {
    pub port: u16,
    dir: TempDir,
    child: Option<Child>,
}

impl Smtp {
    pub fn start() -> Smtp {
        let mut smtp = Smtp {
            port: free_port(),
            dir: tempfile::Builder::new()
                .prefix("emporium-smtp-")
                .tempdir()
                .unwrap(),
            child: None,
        };
        smtp.up();
        smtp
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn up(&mut self) {
        assert!(self.child.is_none(), "smtp server already running");
        let python = aiosmtpd_python();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/common/smtp_capture.py");
        let log = std::fs::File::create(self.dir.path().join("server.log")).unwrap();
        let child = Command::new(&python)
            .arg(script)
            .arg(self.port.to_string())
            .arg(self.dir.path().join("mail"))
            .arg(REJECTED_PREFIX)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("start {python} (run scripts/services.sh to install aiosmtpd): {e}")
            });
        self.child = Some(child);
        assert!(
            wait_port(self.port, true, Duration::from_secs(30)),
            "smtp capture did not listen on {}",
            self.port
        );
    }

    /// Kills the server; the port refuses connections until [`Smtp::up`].
    pub fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        assert!(wait_port(self.port, false, Duration::from_secs(10)));
    }

    /// Every email captured so far.
    pub fn mails(&self) -> Vec<Mail> {
        let Ok(entries) = std::fs::read_dir(self.dir.path().join("mail")) else {
            return Vec::new();
        };
        let mut mails = Vec::new();
        for entry in entries.flatten() {
            let path: PathBuf = entry.path();
            if path.extension().is_some_and(|e| e == "json") {
                let text = std::fs::read_to_string(&path).unwrap();
                mails.push(serde_json::from_str(&text).unwrap());
            }
        }
        mails
    }

    /// The emails to `to`.
    pub fn mails_to(&self, to: &str) -> Vec<Mail> {
        self.mails().into_iter().filter(|m| m.to == to).collect()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// An `emporium notify` process.
pub struct Notifier {
    pub port: u16,
    env: Vec<(String, String)>,
    dir: TempDir,
    child: Option<Child>,
}

impl Notifier {
    /// Spawns `emporium notify` with these settings (on top of a free listen port) and waits
    /// until it consumes (`/readyz` 200).
    pub fn start(env: &[(&str, &str)]) -> Notifier {
        let mut n = Notifier {
            port: free_port(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            dir: tempfile::Builder::new()
                .prefix("emporium-notify-")
                .tempdir()
                .unwrap(),
            child: None,
        };
        n.spawn();
        n.wait_ready();
        n
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("notify.log")
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "notifier already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let mut cmd = super::emporium_command();
        cmd.arg("notify")
            .current_dir(self.dir.path())
            .env("EMPORIUM_NOTIFY_LISTEN", format!("127.0.0.1:{}", self.port))
            .env("RUST_LOG", "info");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        self.child = Some(cmd.spawn().expect("spawn emporium notify"));
    }

    pub fn wait_ready(&mut self) {
        let start = Instant::now();
        let mut last = String::from("no answer yet");
        while start.elapsed() < Duration::from_secs(60) {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "emporium notify exited ({status}); log:\n{}",
                    self.log_tail(60)
                );
            }
            match blocking_get_at("127.0.0.1", self.port, "/readyz") {
                Ok((200, _)) => return,
                Ok((s, body)) => last = format!("{s} {body}"),
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "emporium notify not ready ({last}); log:\n{}",
            self.log_tail(60)
        );
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    /// GET /metrics as text.
    pub fn metrics(&self) -> String {
        match blocking_get_at("127.0.0.1", self.port, "/metrics") {
            Ok((200, body)) => body,
            other => panic!("GET /metrics: {other:?}; log:\n{}", self.log_tail(40)),
        }
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub const FROM: &str = "orders@shop.example.com";

/// One test's names and servers.
pub struct Rig {
    pub exchange: String,
    pub queue: String,
    pub smtp: Smtp,
    pub conn: Connection,
    pub channel: Channel,
}

impl Rig {
    pub async fn new() -> Rig {
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let conn = Connection::connect(&amqp_url(), ConnectionProperties::default())
            .await
            .unwrap_or_else(|e| panic!("RabbitMQ at {}: {e}", amqp_url()));
        let channel = conn.create_channel().await.unwrap();
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        Rig {
            exchange: format!("emporium-test-orders-{tag}"),
            queue: format!("emporium-test-notify-{tag}"),
            smtp: Smtp::start(),
            conn,
            channel,
        }
    }

    /// The consumer's settings, plus `extra`.
    pub fn notifier(&self, extra: &[(&str, &str)]) -> Notifier {
        let amqp = amqp_url();
        let redis = redis_url();
        let smtp = self.smtp.url();
        let from = format!("Emporium Test <{FROM}>");
        let mut env = vec![
            ("EMPORIUM_AMQP_URL", amqp.as_str()),
            ("EMPORIUM_AMQP_EXCHANGE", self.exchange.as_str()),
            ("EMPORIUM_NOTIFY_QUEUE", self.queue.as_str()),
            ("EMPORIUM_NOTIFY_REDIS_URL", redis.as_str()),
            ("EMPORIUM_SMTP_URL", smtp.as_str()),
            ("EMPORIUM_MAIL_FROM", from.as_str()),
            ("EMPORIUM_NOTIFY_PREFETCH", "8"),
            ("EMPORIUM_NOTIFY_RETRY_INITIAL_MS", "250"),
            ("EMPORIUM_NOTIFY_RETRY_MAX_MS", "4000"),
        ];
        env.extend_from_slice(extra);
        Notifier::start(&env)
    }

    /// Publishes a message as the outbox relay does (persistent, `message_id`), confirmed.
    pub async fn publish(&self, routing_key: &str, message_id: &str, body: &[u8]) {
        let props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_message_id(message_id.into())
            .with_content_type("application/json".into());
        let confirm = self
            .channel
            .basic_publish(
                self.exchange.as_str().into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                body,
                props,
            )
            .await
            .unwrap();
        assert!(confirm.await.unwrap().is_ack(), "publish not confirmed");
    }

    /// Publishes an order event for `email` and returns its id.
    pub async fn publish_event(&self, kind: &str, email: &str) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        self.publish(kind, &id, &event_body(&id, kind, email)).await;
        id
    }

    /// Takes what is in the dead-letter queue now: (body, `x-emporium-reason`).
    pub async fn take_dead_letters(&self) -> Vec<(Vec<u8>, String)> {
        let mut got = Vec::new();
        let dead = format!("{}.dead", self.queue);
        let no_ack = BasicGetOptions { no_ack: true };
        while let Some(m) = self
            .channel
            .basic_get(dead.as_str().into(), no_ack)
            .await
            .unwrap()
        {
            let reason = m
                .delivery
                .properties
                .headers()
                .as_ref()
                .and_then(|h| h.inner().get("x-emporium-reason").cloned())
                .map(|v| match v {
                    AMQPValue::LongString(s) => s.to_string(),
                    other => format!("{other:?}"),
                })
                .unwrap_or_default();
            got.push((m.delivery.data.clone(), reason));
        }
        got
    }

    /// Removes this test's queues and exchanges from the shared RabbitMQ.
    pub async fn clean_up(self) {
        for q in [self.queue.clone(), format!("{}.dead", self.queue)] {
            let _ = self
                .channel
                .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
        for x in [self.exchange.clone(), format!("{}.dlx", self.queue)] {
            let _ = self
                .channel
                .exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default())
                .await;
        }
        let _ = self.conn.close(200, "done".into()).await;
    }
}

/// An order event as the engine publishes it (version 1).
pub fn event_body(event_id: &str, kind: &str, email: &str) -> Vec<u8> {
    let at = "2026-03-04T05:06:07.000Z";
    serde_json::to_vec(&json!({
        "version": 1, "eventId": event_id, "type": kind, "occurredAt": at,
        "order": {"id": format!("order-{event_id}"), "userEmail": email,
            "items": [{"productId": "p1", "name": "Blue Mug", "sku": "MUG-BLUE", "quantity": 2,
                "price": 12.5, "lineTotal": 25.0}],
            "total": 25.0, "currency": "USD", "status": "Created", "createdAt": at,
            "updatedAt": at, "history": [{"status": "Created", "at": at}]}
    }))
    .unwrap()
}

/// Polls `check` (async-friendly) until it returns `Some`, or panics with `what` at the deadline.
pub async fn wait_for<T>(what: &str, within: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The event id in a captured email's `Message-ID` (`<event id@sender domain>`).
pub fn event_of(mail: &Mail) -> String {
    mail.message_id
        .trim_matches(['<', '>'])
        .split('@')
        .next()
        .unwrap_or_default()
        .to_owned()
}

pub fn counter(n: &Notifier, name: &str) -> f64 {
    metric(&n.metrics(), name, &[]).unwrap_or(0.0)
}
