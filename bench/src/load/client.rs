//! The targets and how a request reaches one: round robin over the targets, keep-alive
//! connections pooled per target, a target that refuses connections (or, with several targets,
//! whose `/readyz` is not 200) skipped and counted, a time limit on every exchange.

use std::cell::{Cell, RefCell};
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::time::{Duration, Instant};

use actix_rt::time::{sleep, timeout};

use super::conn::{self, Conn, ExchangeError, Response};

/// How long a connection attempt may take before the target counts as refusing.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A pooled connection idle longer than this is dropped rather than reused: the server may be
/// closing it (actix-web's keep-alive is 5 s), and a write it never reads cannot be told apart
/// from a lost one.
const MAX_IDLE: Duration = Duration::from_secs(2);
const HEALTH_EVERY: Duration = Duration::from_millis(500);

/// Why a request got no response.
#[derive(Clone, Debug)]
pub enum Failure {
    /// Every target refused the connection (or timed out connecting).
    Refused,
    /// No complete response within `--timeout`.
    Timeout,
    /// The connection broke (reset, closed mid-response, unreadable response).
    Io(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Refused => f.write_str("every target refused the connection"),
            Failure::Timeout => f.write_str("no answer within --timeout"),
            Failure::Io(e) => write!(f, "connection failed: {e}"),
        }
    }
}

impl Failure {
    pub fn class(&self) -> &'static str {
        match self {
            Failure::Refused => "refused",
            Failure::Timeout => "timeout",
            Failure::Io(_) => "io",
        }
    }
}

/// One request as the scenarios describe it.
pub struct Request<'a> {
    pub method: &'static str,
    pub path: String,
    pub token: Option<&'a str>,
    pub headers: Vec<(&'static str, String)>,
    pub json: Option<Vec<u8>>,
    /// Sending it twice is the same as once (a read, a checkout with its Idempotency-Key): it is
    /// sent again on a fresh connection when a reused one was closed before any response.
    pub retry_safe: bool,
}

pub struct Target {
    pub url: String,
    addr: SocketAddr,
    host: String,
    ready: Cell<bool>,
    pool: RefCell<Vec<(Conn, Instant)>>,
    /// Responses received from it.
    pub answered: Cell<u64>,
    /// Connection attempts it refused (or did not accept within 2 s).
    pub refused: Cell<u64>,
    /// Requests sent elsewhere because its /readyz was not 200.
    pub skipped_not_ready: Cell<u64>,
}

pub struct Client {
    pub targets: Vec<Target>,
    next: Cell<usize>,
    timeout: Duration,
}

/// `http://host:port[/]` → the address and the Host header.
fn parse_url(url: &str) -> Result<(SocketAddr, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs"))?;
    let hostport = rest.trim_end_matches('/');
    if hostport.contains('/') {
        return Err(format!("{url}: a base URL without a path"));
    }
    let with_port = if hostport
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        hostport.to_owned()
    } else {
        format!("{hostport}:80")
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| format!("{url}: {e}"))?
        .next()
        .ok_or_else(|| format!("{url}: no address"))?;
    Ok((addr, hostport.to_owned()))
}

impl Client {
    pub fn new(urls: &[String], timeout: Duration) -> Result<Self, String> {
        let targets = urls
            .iter()
            .map(|url| {
                let (addr, host) = parse_url(url.trim())?;
                Ok(Target {
                    url: url.trim().trim_end_matches('/').to_owned(),
                    addr,
                    host,
                    ready: Cell::new(true),
                    pool: RefCell::default(),
                    answered: Cell::new(0),
                    refused: Cell::new(0),
                    skipped_not_ready: Cell::new(0),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        if targets.is_empty() {
            return Err("no target".into());
        }
        Ok(Self {
            targets,
            next: Cell::new(0),
            timeout,
        })
    }

    /// With several targets: polls each one's /readyz every 500 ms until `stop`, so requests go
    /// only to targets that say they serve (as a load balancer's health check does).
    pub fn spawn_health_checks(self: &Rc<Self>, stop: Rc<Cell<bool>>) {
        if self.targets.len() < 2 {
            return;
        }
        for i in 0..self.targets.len() {
            let (client, stop) = (self.clone(), stop.clone());
            actix_rt::spawn(async move {
                let t = &client.targets[i];
                let probe = conn::request("GET", "/readyz", &t.host, None, &[], None);
                while !stop.get() {
                    let ok = async {
                        let mut c = timeout(CONNECT_TIMEOUT, Conn::connect(t.addr))
                            .await
                            .ok()?
                            .ok()?;
                        let r = timeout(Duration::from_secs(1), c.exchange(&probe))
                            .await
                            .ok()?
                            .ok()?;
                        Some(r.status == 200)
                    }
                    .await
                    .unwrap_or(false);
                    t.ready.set(ok);
                    sleep(HEALTH_EVERY).await;
                }
            });
        }
    }

    /// A pooled connection to target `i` that is neither idle too long nor closed, else a new one.
    async fn connection(&self, i: usize) -> Option<Conn> {
        let t = &self.targets[i];
        loop {
            let pooled = t.pool.borrow_mut().pop();
            match pooled {
                Some((c, since)) if since.elapsed() < MAX_IDLE => return Some(c),
                Some(_) => continue,
                None => break,
            }
        }
        match timeout(CONNECT_TIMEOUT, Conn::connect(t.addr)).await {
            Ok(Ok(c)) => Some(c),
            _ => {
                t.refused.set(t.refused.get() + 1);
                None
            }
        }
    }

    /// Sends `req` to the next target in turn, skipping targets that refuse or are not ready.
    pub async fn send(&self, req: &Request<'_>) -> Result<Response, Failure> {
        let n = self.targets.len();
        let start = self.next.get();
        self.next.set(start.wrapping_add(1));
        let any_ready = self.targets.iter().any(|t| t.ready.get());
        let headers: Vec<(&str, &str)> =
            req.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        for k in 0..n {
            let i = (start + k) % n;
            let t = &self.targets[i];
            if any_ready && !t.ready.get() {
                t.skipped_not_ready.set(t.skipped_not_ready.get() + 1);
                continue;
            }
            let Some(mut c) = self.connection(i).await else {
                continue;
            };
            let bytes = conn::request(
                req.method,
                &req.path,
                &t.host,
                req.token,
                &headers,
                req.json.as_deref(),
            );
            let mut resent = false;
            loop {
                match timeout(self.timeout, c.exchange(&bytes)).await {
                    Err(_) => return Err(Failure::Timeout),
                    Ok(Ok(resp)) => {
                        t.answered.set(t.answered.get() + 1);
                        if resp.keep_alive {
                            t.pool.borrow_mut().push((c, Instant::now()));
                        }
                        return Ok(resp);
                    }
                    Ok(Err(ExchangeError::ClosedBeforeResponse))
                        if c.used > 0 && req.retry_safe && !resent =>
                    {
                        resent = true;
                        match timeout(CONNECT_TIMEOUT, Conn::connect(t.addr)).await {
                            Ok(Ok(fresh)) => c = fresh,
                            _ => {
                                t.refused.set(t.refused.get() + 1);
                                break;
                            }
                        }
                    }
                    Ok(Err(e)) => return Err(Failure::Io(e.to_string())),
                }
            }
        }
        Err(Failure::Refused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_parse_to_an_address_and_a_host() {
        let (addr, host) = parse_url("http://127.0.0.11:8080/").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(addr.to_string(), "127.0.0.11:8080");
        assert_eq!(host, "127.0.0.11:8080");
        assert!(parse_url("https://127.0.0.1").is_err());
        assert!(parse_url("http://127.0.0.1:8080/api").is_err());
    }
}
