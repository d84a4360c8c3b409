//! TLS in front of the real servers: a certificate authority a test makes ([`TestCa`]) and a TLS
//! front on 127.0.0.1 ([`TlsFront`]) that terminates TLS with a certificate that CA signed and
//! passes the plain bytes to a loopback server, as a managed service's TLS endpoint does. The
//! front can start presenting another CA's certificate (a certificate that "goes bad") and come
//! back, closing every connection when it switches.
//!
//! The front runs on a tokio runtime of its own on a thread of its own, so it works the same
//! under any runtime a test uses, or none.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;
use tokio::sync::watch;

/// A certificate authority of the test's own, and a server certificate it signed for
/// `localhost` and `127.0.0.1`.
pub struct TestCa {
    ca_pem: String,
    server: Arc<ServerConfig>,
}

impl TestCa {
    /// A new CA named `name`, with a fresh key.
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new())
            .unwrap_or_else(|e| panic!("CA params: {e}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap_or_else(|e| panic!("CA key: {e}"));
        let ca = CertifiedIssuer::self_signed(params, key)
            .unwrap_or_else(|e| panic!("CA certificate: {e}"));

        let mut leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap_or_else(|e| panic!("server params: {e}"));
        leaf.distinguished_name
            .push(DnType::CommonName, format!("{name} server"));
        let leaf_key = KeyPair::generate().unwrap_or_else(|e| panic!("server key: {e}"));
        let cert = leaf
            .signed_by(&leaf_key, &ca)
            .unwrap_or_else(|e| panic!("server certificate: {e}"));
        let chain = vec![cert.der().clone(), ca.der().clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        TestCa {
            ca_pem: ca.pem(),
            server: Arc::new(server_config(chain, key)),
        }
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> &str {
        &self.ca_pem
    }

    /// Writes the CA certificate to `dir/<file>` and returns the path.
    pub fn write(&self, dir: &Path, file: &str) -> PathBuf {
        let path = dir.join(file);
        std::fs::write(&path, &self.ca_pem)
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }
}

fn server_config(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> ServerConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
        .unwrap_or_else(|e| panic!("TLS server config: {e}"))
}

/// A TLS front from a free port on 127.0.0.1 to a plain loopback server. Stops, closing every
/// connection, when dropped.
pub struct TlsFront {
    /// Where the front listens, on 127.0.0.1.
    pub port: u16,
    /// The certificate presented to new connections; a change also closes the current ones.
    presenting: watch::Sender<Arc<ServerConfig>>,
    stop: Arc<Mutex<Option<tokio::sync::oneshot::Sender<()>>>>,
}

impl TlsFront {
    /// A front to 127.0.0.1:`upstream_port` presenting `ca`'s server certificate.
    pub fn to(upstream_port: u16, ca: &TestCa) -> TlsFront {
        let upstream = SocketAddr::from(([127, 0, 0, 1], upstream_port));
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("front listener: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("front address: {e}"))
            .port();
        let (presenting, watching) = watch::channel(ca.server.clone());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap_or_else(|e| panic!("front runtime: {e}"));
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener)
                    .unwrap_or_else(|e| panic!("front listener: {e}"));
                tokio::select! {
                    () = serve(listener, upstream, watching) => {}
                    _ = stop_rx => {}
                }
            });
        });
        TlsFront {
            port,
            presenting,
            stop: Arc::new(Mutex::new(Some(stop_tx))),
        }
    }

    /// From now on presents `ca`'s certificate, and closes every current connection (so clients
    /// reconnect and meet it).
    pub fn present(&self, ca: &TestCa) {
        self.presenting.send_replace(ca.server.clone());
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.lock().ok().and_then(|mut s| s.take()) {
            let _ = stop.send(());
        }
    }
}

async fn serve(
    listener: tokio::net::TcpListener,
    upstream: SocketAddr,
    watching: watch::Receiver<Arc<ServerConfig>>,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let mut changed = watching.clone();
        let config = changed.borrow_and_update().clone();
        tokio::spawn(async move {
            let relay = async {
                let acceptor = tokio_rustls::TlsAcceptor::from(config);
                let Ok(mut tls) = acceptor.accept(client).await else {
                    return;
                };
                let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut server).await;
            };
            // A change of certificate ends the connection: dropping both streams closes them.
            tokio::select! {
                () = relay => {}
                _ = changed.changed() => {}
            }
        });
    }
}
