//! A TCP proxy on 127.0.0.1 whose link a test can cut (every connection closed, new ones closed
//! at once) and restore: a service goes away and comes back without the shared server being
//! touched. Plain threads, so it works the same under any async runtime or none.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long the accept loop sleeps when nobody is connecting (it polls so that it can stop).
const ACCEPT_POLL: Duration = Duration::from_millis(20);

/// A cuttable TCP proxy from a free port on 127.0.0.1 to a loopback upstream. Stops, closing
/// every connection, when dropped.
pub struct Proxy {
    /// Where the proxy listens, on 127.0.0.1.
    pub port: u16,
    shared: Arc<Shared>,
}

struct Shared {
    up: AtomicBool,
    stop: AtomicBool,
    /// Both ends of every forwarded connection, to close them on a cut.
    conns: Mutex<Vec<TcpStream>>,
}

impl Proxy {
    /// A proxy to 127.0.0.1:`port`.
    pub fn to(port: u16) -> Proxy {
        Self::to_addr(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    /// A proxy to `upstream`, which must be a loopback address.
    pub fn to_addr(upstream: SocketAddr) -> Proxy {
        assert!(
            upstream.ip().is_loopback(),
            "tests talk to loopback only, not {upstream}"
        );
        let listener =
            TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind the proxy: {e}"));
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("proxy listener: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("proxy address: {e}"))
            .port();
        let shared = Arc::new(Shared {
            up: AtomicBool::new(true),
            stop: AtomicBool::new(false),
            conns: Mutex::default(),
        });
        let accepting = shared.clone();
        std::thread::spawn(move || accept_loop(&listener, upstream, &accepting));
        Proxy { port, shared }
    }

    /// Closes every current connection and closes new ones as soon as they are accepted.
    pub fn cut(&self) {
        self.shared.up.store(false, Ordering::SeqCst);
        for c in self.shared.lock_conns().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    /// Forwards new connections again.
    pub fn restore(&self) {
        self.shared.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.cut();
    }
}

impl Shared {
    fn lock_conns(&self) -> std::sync::MutexGuard<'_, Vec<TcpStream>> {
        // A pipe thread never panics while holding it; a poisoned list is still a list.
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a forwarded connection, unless a cut came first (then it is closed). The check
    /// and the push hold the lock a cut drains under, so no connection outlives a cut.
    fn admit(&self, client: &TcpStream, server: &TcpStream) -> bool {
        let mut conns = self.lock_conns();
        if !self.up.load(Ordering::SeqCst) {
            return false;
        }
        match (client.try_clone(), server.try_clone()) {
            (Ok(c), Ok(s)) => {
                conns.push(c);
                conns.push(s);
                true
            }
            _ => false,
        }
    }
}

fn accept_loop(listener: &TcpListener, upstream: SocketAddr, shared: &Shared) {
    while !shared.stop.load(Ordering::SeqCst) {
        let Ok((client, _)) = listener.accept() else {
            std::thread::sleep(ACCEPT_POLL);
            continue;
        };
        if !shared.up.load(Ordering::SeqCst) {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        let _ = client.set_nonblocking(false);
        let Ok(server) = TcpStream::connect(upstream) else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        if !shared.admit(&client, &server) {
            let _ = client.shutdown(Shutdown::Both);
            let _ = server.shutdown(Shutdown::Both);
            continue;
        }
        match (client.try_clone(), server.try_clone()) {
            (Ok(c), Ok(s)) => {
                pipe(c, s);
                pipe(server, client);
            }
            _ => {
                let _ = client.shutdown(Shutdown::Both);
                let _ = server.shutdown(Shutdown::Both);
            }
        }
    }
}

/// Copies `from` to `to` on a thread of its own until either side closes.
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
