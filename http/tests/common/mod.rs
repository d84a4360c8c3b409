//! Black-box acceptance-test harness: spawns the real `emporium` binary on a
//! loopback port with its own data directory and talks to it over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use awc::http::Method;
use serde_json::Value;
use tempfile::TempDir;

mod api;
mod backends;
pub mod cluster;
pub mod failure;
pub mod load;
pub mod notify;
mod raw;
pub mod tools;
pub use api::*;
#[allow(unused_imports)]
pub use backends::*;
use emporium_persistence::testkit::free_port;
pub use raw::*;

/// The `emporium` binary under test, without the developer's own `EMPORIUM_*` settings.
pub fn emporium_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_emporium"));
    for (k, _) in std::env::vars() {
        if k.starts_with("EMPORIUM_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

pub const JWT_SECRET: &str = "test-secret-0123456789abcdef0123456789";
pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const PASSWORD: &str = "correct-horse-battery-staple";
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Extra environment for a node, on top of the harness defaults.
#[derive(Clone, Debug, Default)]
pub struct NodeOpts {
    pub env: Vec<(String, String)>,
    /// Started as the README's first command starts it: no subcommand, no `EMPORIUM_*` settings,
    /// the data dir left to its default `./emporium-data` (the working directory is the temp dir).
    /// Only the port is chosen, with `--listen`, so tests can run side by side.
    pub readme_defaults: bool,
    /// The loopback address the API listens on (default 127.0.0.1; cluster nodes use
    /// 127.0.0.11, .12, …) and a fixed port (default: a free one).
    pub host: Option<String>,
    pub port: Option<u16>,
}

impl NodeOpts {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }
    pub fn demo_catalog(self, on: bool) -> Self {
        self.env("EMPORIUM_DEMO_CATALOG", if on { "true" } else { "false" })
    }
    pub fn readme_defaults(mut self) -> Self {
        self.readme_defaults = true;
        self
    }
    pub fn listen(mut self, host: &str, port: u16) -> Self {
        self.host = Some(host.to_string());
        self.port = Some(port);
        self
    }
}

/// A full response: status, parsed JSON (Null if empty / not JSON), raw text, headers.
pub struct Resp {
    pub status: u16,
    pub body: Value,
    pub text: String,
    pub headers: awc::http::header::HeaderMap,
}

/// How a request authenticates.
#[derive(Clone, Debug)]
pub enum Auth {
    None,
    Bearer(String),
    /// The whole `Authorization` header value, e.g. `Basic xyz`.
    Raw(String),
}

pub struct Node {
    dir: TempDir,
    child: Option<Child>,
    host: String,
    port: u16,
    opts: NodeOpts,
    client: awc::Client,
}

impl Node {
    /// Spawns `emporium serve` on a fresh temp data dir and waits for `/readyz` == 200.
    pub fn start(opts: NodeOpts) -> Node {
        let mut node = Node::spawn(opts);
        node.wait_ready();
        node
    }

    pub fn data_dir(&self) -> PathBuf {
        if self.opts.readme_defaults {
            self.dir.path().join("emporium-data")
        } else {
            self.dir.path().to_path_buf()
        }
    }
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("emporium-test.log")
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    pub fn url(&self, path: &str) -> String {
        format!("http://{}:{}{}", self.host, self.port, path)
    }
    pub fn host(&self) -> &str {
        &self.host
    }

    /// A handle on a server this harness did not start (a load balancer in front of nodes):
    /// the same request helpers, no process of its own.
    pub fn attach(host: &str, port: u16) -> Node {
        let dir = tempfile::Builder::new()
            .prefix("emporium-attach-")
            .tempdir()
            .unwrap();
        Node {
            dir,
            child: None,
            host: host.to_string(),
            port,
            opts: NodeOpts::new(),
            client: http_client(),
        }
    }

    /// Starts the process and returns at once (a cluster's nodes are started together and wait
    /// for each other).
    pub fn spawn(opts: NodeOpts) -> Node {
        let dir = tempfile::Builder::new()
            .prefix("emporium-test-")
            .tempdir()
            .unwrap();
        let mut node = Node {
            dir,
            child: None,
            host: opts.host.clone().unwrap_or_else(|| "127.0.0.1".into()),
            port: 0,
            opts,
            client: http_client(),
        };
        node.spawn_only();
        node
    }

    fn spawn_and_wait(&mut self) {
        self.spawn_only();
        self.wait_ready();
    }

    fn spawn_only(&mut self) {
        assert!(self.child.is_none(), "node already running");
        self.port = self.opts.port.unwrap_or_else(free_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let mut cmd = emporium_command();
        let listen = format!("{}:{}", self.host, self.port);
        if self.opts.readme_defaults {
            cmd.current_dir(self.dir.path()).args(["--listen", &listen]);
        } else {
            cmd.arg("serve")
                .env("EMPORIUM_LISTEN", listen)
                .env("EMPORIUM_DATA_DIR", self.dir.path())
                .env("EMPORIUM_JWT_SECRET", JWT_SECRET)
                .env("EMPORIUM_ADMIN_EMAILS", ADMIN_EMAIL);
        }
        cmd.env("RUST_LOG", "warn");
        for (k, v) in &self.opts.env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        self.child = Some(cmd.spawn().expect("spawn emporium binary"));
    }

    /// Waits until `/readyz` answers 200 (panics with the log tail after a minute).
    pub fn wait_ready(&mut self) {
        let start = Instant::now();
        let mut last = String::from("no response yet");
        while start.elapsed() < READY_TIMEOUT {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "emporium exited during startup ({status}); log tail:\n{}",
                    self.log_tail(80)
                );
            }
            match blocking_get_at(&self.host, self.port, "/readyz") {
                Ok((200, _)) => return,
                Ok((s, body)) => last = format!("{s} {body}"),
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "emporium not ready within {READY_TIMEOUT:?} (last /readyz: {last}); log tail:\n{}",
            self.log_tail(80)
        );
    }

    /// The server's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL (std's `Child::kill` on unix) and reap.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the binary again on the same data dir (killing it first if running).
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn_and_wait();
    }

    /// Sends a signal to the running process.
    pub fn signal(&self, signal: rustix::process::Signal) {
        if let Some(pid) = self
            .pid()
            .and_then(|p| rustix::process::Pid::from_raw(p as i32))
        {
            let _ = rustix::process::kill_process(pid, signal);
        }
    }

    /// SIGTERM, then waits (bounded) for the process to exit by itself; returns whether it did.
    pub fn terminate(&mut self, within: Duration) -> bool {
        self.signal(rustix::process::Signal::TERM);
        let start = Instant::now();
        while start.elapsed() < within {
            if let Some(child) = self.child.as_mut() {
                if child.try_wait().unwrap().is_some() {
                    self.child = None;
                    return true;
                }
            } else {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Starts the process again (after [`Node::terminate`] or [`Node::kill9`]) and waits until
    /// it is ready.
    pub fn start_again(&mut self) {
        self.spawn_and_wait();
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().unwrap().is_none(),
            None => false,
        }
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// General request. `body` None sends no body at all.
    pub async fn try_send(
        &self,
        method: Method,
        path: &str,
        auth: &Auth,
        headers: &[(&str, &str)],
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<Resp, String> {
        let mut req = self.client.request(method.clone(), self.url(path));
        match auth {
            Auth::None => {}
            Auth::Bearer(t) => req = req.insert_header(("Authorization", format!("Bearer {t}"))),
            Auth::Raw(v) => req = req.insert_header(("Authorization", v.clone())),
        }
        for (k, v) in headers {
            req = req.insert_header((*k, *v));
        }
        let sent = match body {
            Some((ct, bytes)) => req.content_type(ct).send_body(bytes).await,
            None => req.send().await,
        };
        let mut res = sent.map_err(|e| format!("{method} {path}: send failed: {e}"))?;
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let bytes = res
            .body()
            .limit(64 << 20)
            .await
            .map_err(|e| format!("{method} {path}: body read failed: {e}"))?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Resp {
            status,
            body,
            text,
            headers,
        })
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        auth: &Auth,
        headers: &[(&str, &str)],
        body: Option<(&str, Vec<u8>)>,
    ) -> Resp {
        match self.try_send(method, path, auth, headers, body).await {
            Ok(r) => r,
            Err(e) => panic!("{e}; server log tail:\n{}", self.log_tail(40)),
        }
    }

    async fn json_call(
        &self,
        m: Method,
        path: &str,
        token: Option<&str>,
        json: Option<&Value>,
    ) -> (u16, Value) {
        let body = json.map(|v| ("application/json", serde_json::to_vec(v).unwrap()));
        let r = self.send(m, path, &auth(token), &[], body).await;
        (r.status, r.body)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        self.json_call(Method::GET, path, token, None).await
    }
    /// `Value::Null` sends no body at all.
    pub async fn post(&self, path: &str, token: Option<&str>, json: Value) -> (u16, Value) {
        let body = (!json.is_null()).then_some(&json);
        self.json_call(Method::POST, path, token, body).await
    }
    pub async fn put(&self, path: &str, token: Option<&str>, json: Value) -> (u16, Value) {
        let body = (!json.is_null()).then_some(&json);
        self.json_call(Method::PUT, path, token, body).await
    }
    pub async fn delete(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        self.json_call(Method::DELETE, path, token, None).await
    }
    pub async fn post_raw(
        &self,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> (u16, Value) {
        let r = self
            .send(
                Method::POST,
                path,
                &auth(token),
                &[],
                Some((content_type, bytes)),
            )
            .await;
        (r.status, r.body)
    }

    /// GET /metrics as text.
    pub async fn metrics(&self) -> String {
        let r = self
            .send(Method::GET, "/metrics", &Auth::None, &[], None)
            .await;
        assert_eq!(r.status, 200, "GET /metrics: {}", r.text);
        r.text
    }

    /// A hand-written HTTP/1.1 request over a raw socket (for oversized bodies, where the
    /// server may answer before reading everything). Returns (status, parsed JSON body).
    pub fn raw_http(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<(u16, Value), String> {
        let raw = raw_exchange(self.port, method, path, headers, body)?;
        let (status, text) = parse_http_response(&raw)?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- emporium log tail ({}) ----\n{}\n---- end log ----",
                self.log_path().display(),
                self.log_tail(60)
            );
        }
        self.kill9();
    }
}

fn http_client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .connector(
            awc::Connector::new()
                .limit(512)
                .timeout(Duration::from_secs(10)),
        )
        .finish()
}

pub fn auth(token: Option<&str>) -> Auth {
    match token {
        Some(t) => Auth::Bearer(t.to_string()),
        None => Auth::None,
    }
}
