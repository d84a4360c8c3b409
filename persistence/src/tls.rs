//! TLS to the backends that speak it (`rediss://`, `amqps://`): which certificate authorities a
//! connection trusts, and telling a failure that is the configuration's (a certificate that does
//! not verify, a server that does not speak TLS, credentials refused) from an outage.
//!
//! Solves: one CA bundle for Redis and RabbitMQ (the MongoDB driver reads its own from the URI's
//! `tlsCAFile`), checked once at start with a message naming the file; and the start-up probe's
//! verdict, so that a node whose TLS settings are wrong stops with a message naming the backend
//! instead of running with a cache or an event broker it can never reach.
//!
//! Deliberately does not: build TLS configurations (each driver builds its own on rustls, the one
//! TLS stack in the binary), or classify failures after start: then every failure is an outage,
//! handled as one (the cache is bypassed, events wait in the outbox).

use std::error::Error as StdError;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;

/// What connecting to a backend once at start found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// It answered.
    Up,
    /// An outage (refused, timed out, closed): handled as at run time.
    Down(String),
    /// It answered, but not as configured: its certificate did not verify against the trusted
    /// CAs, it does not speak TLS, or it refused the credentials. Retrying cannot help.
    Misconfigured(String),
}

/// A Redis client for `url`; a `rediss://` URL trusts `tls_ca` (PEM) when given, else the system's
/// roots. Parses only: nothing connects.
#[cfg(feature = "redis")]
pub fn redis_client(url: &str, tls_ca: Option<&str>) -> redis::RedisResult<redis::Client> {
    match tls_ca {
        Some(pem) if url.starts_with("rediss://") => redis::Client::build_with_tls(
            url,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.as_bytes().to_vec()),
            },
        ),
        _ => redis::Client::open(url),
    }
}

/// The TLS settings of an AMQP connection: an `amqps://` URL trusts `tls_ca` (PEM) when given,
/// else the system's roots (a plain `amqp://` URL ignores them).
#[cfg(feature = "amqp")]
pub fn amqp_tls(tls_ca: Option<&str>) -> lapin::tcp::OwnedTLSConfig {
    lapin::tcp::OwnedTLSConfig {
        identity: None,
        cert_chain: tls_ca.map(str::to_owned),
    }
}

/// The PEM certificates in the file at `path`, checked to hold at least one certificate.
pub fn read_ca_bundle(path: &Path) -> Result<String, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("CA bundle {}: {e}", path.display()))?;
    let mut count = 0usize;
    for cert in CertificateDer::pem_slice_iter(text.as_bytes()) {
        cert.map_err(|e| format!("CA bundle {}: bad PEM: {e}", path.display()))?;
        count += 1;
    }
    if count == 0 {
        return Err(format!(
            "CA bundle {}: no PEM certificate in it",
            path.display()
        ));
    }
    Ok(text)
}

/// The TLS failure somewhere in `err`'s chain (also inside `std::io::Error`s, which hide their
/// payload from `source()`), as text; `None` when the failure was not TLS's.
pub fn tls_failure(err: &(dyn StdError + 'static)) -> Option<String> {
    let mut next = Some(err);
    // Bounded: a cyclic or absurdly deep chain is not TLS's.
    for _ in 0..16 {
        let e = next?;
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
        // Payloads that `source()` skips: an io::Error's, and an error behind a shared pointer
        // (whose own `source()` is its payload's source, not the payload).
        let hidden = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .or_else(|| {
                e.downcast_ref::<Arc<dyn StdError + Send + Sync>>()
                    .map(|a| &**a)
            });
        next = match hidden {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => e.source(),
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tls_error_is_found_inside_io_errors() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, tls);
        let outer = std::io::Error::other(io);
        let found = tls_failure(&outer).unwrap_or_default();
        assert!(found.contains("UnknownIssuer"), "{found}");
        let shared: Arc<dyn StdError + Send + Sync> = Arc::new(outer);
        let found = tls_failure(&shared).unwrap_or_default();
        assert!(found.contains("UnknownIssuer"), "{found}");
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(tls_failure(&refused), None);
    }

    #[test]
    fn a_ca_bundle_must_hold_a_certificate() {
        let dir = std::env::temp_dir().join(format!("emporium-ca-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let empty = dir.join("empty.pem");
        let _ = std::fs::write(&empty, "not a certificate\n");
        let e = read_ca_bundle(&empty).err();
        assert!(e.is_some_and(|e| e.contains("no PEM certificate")));
        let missing = read_ca_bundle(&dir.join("missing.pem")).err();
        assert!(missing.is_some_and(|e| e.contains("missing.pem")));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
