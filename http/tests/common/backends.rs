//! The real backing services for the issue-3 tests: where they are, fresh namespaces on them, and
//! private instances (SecantusDB, Redis) and a cuttable TCP proxy for fault tests. Every address
//! is on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::NodeOpts;

pub fn mongo_uri() -> String {
    std::env::var("EMP_TEST_MONGO_URI")
        .unwrap_or_else(|_| "mongodb://127.0.0.1:27017/?directConnection=true".into())
}
pub fn redis_url() -> String {
    std::env::var("EMP_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into())
}
pub fn amqp_url() -> String {
    std::env::var("EMP_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}
fn secantus_python() -> String {
    std::env::var("EMP_TEST_SECANTUS")
        .unwrap_or_else(|_| format!("{}/../.venv-mongo/bin/python", env!("CARGO_MANIFEST_DIR")))
}

/// `base` (a mongodb:// URI) with its database replaced by a fresh one.
pub fn with_database(base: &str, db: &str) -> String {
    let (scheme_host, query) = match base.split_once('?') {
        Some((a, q)) => (a, format!("?{q}")),
        None => (base, String::new()),
    };
    let rest = scheme_host.trim_start_matches("mongodb://");
    let hosts = rest.split('/').next().unwrap_or(rest);
    format!("mongodb://{hosts}/{db}{query}")
}

pub fn fresh_db_name() -> String {
    format!("emporium_test_{}", uuid::Uuid::new_v4().simple())
}

impl NodeOpts {
    /// The node on the MongoDB-compatible store (database `db` at `mongo`), Redis and RabbitMQ.
    pub fn real_backends_at(self, mongo: &str, db: &str) -> Self {
        self.env("EMPORIUM_STORE", &with_database(mongo, db))
            .env("EMPORIUM_REDIS_URL", &redis_url())
            .env("EMPORIUM_AMQP_URL", &amqp_url())
    }
    /// The node on every real backend, with a database of its own.
    pub fn real_backends(self) -> Self {
        self.real_backends_at(&mongo_uri(), &fresh_db_name())
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_port(port: u16, up: bool, within: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        let open = TcpStream::connect(("127.0.0.1", port)).is_ok();
        if open == up {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// A server process of the test's own on a spare port, killed when dropped.
pub struct Private {
    pub port: u16,
    child: Option<Child>,
    start: Box<dyn Fn(u16) -> Command + Send>,
    _dir: tempfile::TempDir,
}

impl Private {
    /// A SecantusDB with its data in a temp dir that outlives restarts.
    pub fn secantus() -> Private {
        let dir = tempfile::tempdir().unwrap();
        let data: PathBuf = dir.path().join("data");
        let python = secantus_python();
        Self::launch(
            dir,
            Box::new(move |port| {
                let mut c = Command::new(&python);
                c.args([
                    "-m",
                    "secantus",
                    "--host",
                    "127.0.0.1",
                    "--log-level",
                    "WARNING",
                ])
                .arg("--port")
                .arg(port.to_string())
                .arg("--storage-path")
                .arg(&data);
                c
            }),
        )
    }

    /// A Redis that keeps nothing on disk.
    pub fn redis() -> Private {
        let dir = tempfile::tempdir().unwrap();
        Self::launch(
            dir,
            Box::new(|port| {
                let mut c = Command::new("redis-server");
                c.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                    .arg("--port")
                    .arg(port.to_string());
                c
            }),
        )
    }

    fn launch(dir: tempfile::TempDir, start: Box<dyn Fn(u16) -> Command + Send>) -> Private {
        let mut p = Private {
            port: free_port(),
            child: None,
            start,
            _dir: dir,
        };
        p.up();
        p
    }

    /// Starts it (again) on the same port and data.
    pub fn up(&mut self) {
        let mut cmd = (self.start)(self.port);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.child = Some(cmd.spawn().expect("start a private server"));
        assert!(
            wait_port(self.port, true, Duration::from_secs(30)),
            "private server on {} did not come up",
            self.port
        );
    }

    /// SIGKILL: the server is gone at once, as in a crash.
    pub fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        assert!(wait_port(self.port, false, Duration::from_secs(10)));
    }

    /// SIGSTOP: the server keeps its connections but answers nothing (a hung store).
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT: it answers again.
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let ok = Command::new("kill")
            .args([sig, &pid])
            .status()
            .expect("kill");
        assert!(ok.success(), "kill {sig} {pid}");
    }

    pub fn mongo_uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}/?directConnection=true", self.port)
    }
    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for Private {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A TCP proxy on 127.0.0.1 whose link can be cut (every connection closed, new ones dropped)
/// and restored, to take a service away from a node without stopping the shared server.
pub struct Proxy {
    pub port: u16,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    pub fn to(target_port: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (up2, stop2, conns2) = (up.clone(), stop.clone(), conns.clone());
        std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                if !up2.load(Ordering::Relaxed) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let _ = client.set_nonblocking(false);
                let Ok(server) = TcpStream::connect(("127.0.0.1", target_port)) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let mut list = conns2.lock().unwrap();
                list.push(client.try_clone().unwrap());
                list.push(server.try_clone().unwrap());
                drop(list);
                pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                pipe(server, client);
            }
        });
        Proxy {
            port,
            up,
            conns,
            stop,
        }
    }

    pub fn cut(&self) {
        self.up.store(false, Ordering::Relaxed);
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::Relaxed);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.cut();
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
    });
}

/// A consumer of the order events: an exclusive queue bound to `exchange` with `pattern`.
pub struct EventConsumer {
    _conn: lapin::Connection,
    consumer: lapin::Consumer,
}

/// One received message, with the AMQP properties the tests check.
#[derive(Debug, Clone)]
pub struct Received {
    pub routing_key: String,
    pub message_id: Option<String>,
    pub content_type: Option<String>,
    pub delivery_mode: Option<u8>,
    pub body: serde_json::Value,
}

impl EventConsumer {
    pub async fn bind(exchange: &str, pattern: &str) -> EventConsumer {
        use lapin::options::{
            BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
        };
        use lapin::types::FieldTable;
        let conn = lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
            .await
            .expect("connect to RabbitMQ");
        let ch = conn.create_channel().await.unwrap();
        ch.exchange_declare(
            exchange.into(),
            lapin::ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
        let queue = ch
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        ch.queue_bind(
            queue.name().clone(),
            exchange.into(),
            pattern.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        let consumer = ch
            .basic_consume(
                queue.name().clone(),
                "emporium-test".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        EventConsumer {
            _conn: conn,
            consumer,
        }
    }

    /// Receives until `done` says the collected messages are enough, or `within` passes.
    pub async fn collect_until(
        &mut self,
        within: Duration,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        use futures_util::StreamExt as _;
        let mut got = Vec::new();
        let deadline = Instant::now() + within;
        while !done(&got) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match actix_rt::time::timeout(left, self.consumer.next()).await {
                Ok(Some(Ok(d))) => got.push(Received {
                    routing_key: d.routing_key.to_string(),
                    message_id: d.properties.message_id().as_ref().map(|s| s.to_string()),
                    content_type: d.properties.content_type().as_ref().map(|s| s.to_string()),
                    delivery_mode: *d.properties.delivery_mode(),
                    body: serde_json::from_slice(&d.data).unwrap_or(serde_json::Value::Null),
                }),
                Ok(Some(Err(e))) => panic!("consumer failed: {e}"),
                Ok(None) | Err(_) => break,
            }
        }
        got
    }
}
