//! The handshake that opens every peer connection: challenge-response with the cluster secret.
//!
//! ```text
//! server → client  b"EMPEER01" | u8 protocol version | 32-byte random nonce
//! client → server  b"EMPEER01" | u32 BE ordinal | u64 BE generation
//!                  | HMAC-SHA256(secret, nonce || ordinal || generation)
//! server → client  u8 verdict (1 accepted, 0 refused)
//! ```
//!
//! Why challenge-response: the secret never crosses the wire, and a recorded hello is useless
//! against a fresh nonce. The client's identity is inside the MAC, so a peer cannot claim another
//! ordinal. The server checks the magic as soon as 8 bytes arrive, so an HTTP request or a port
//! scan on the peer port is turned away at once; everything is bounded by [`HANDSHAKE_TIMEOUT`].
//!
//! What it deliberately does not do: authenticate the server to the client, or protect the frames
//! that follow (no encryption, no per-frame MAC). Both belong to a transport layer (TLS or a
//! service mesh) if the pod network is not trusted.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::PeerError;

const MAGIC: &[u8; 8] = b"EMPEER01";
/// The peer protocol version this build speaks (handshake and framing). The wire envelope's own
/// format marker versions the messages inside frames.
pub const PROTOCOL_VERSION: u8 = 1;
/// How long either side waits for the handshake to complete.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);

const NONCE_LEN: usize = 32;
const TAG_LEN: usize = 32;
const SERVER_HELLO_LEN: usize = 8 + 1 + NONCE_LEN;
/// After the magic.
const CLIENT_HELLO_REST_LEN: usize = 4 + 8 + TAG_LEN;
const ACCEPTED: u8 = 1;
const REFUSED: u8 = 0;

/// Who is calling: the authenticated identity of the node at the other end of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerOrigin {
    pub ordinal: u32,
    pub generation: u64,
}

fn nonce() -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    nonce[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    nonce[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    nonce
}

fn mac(secret: &[u8], nonce: &[u8], ordinal: u32, generation: u64) -> Option<Hmac<Sha256>> {
    // HMAC takes keys of any length; the error arm is unreachable in practice.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).ok()?;
    mac.update(nonce);
    mac.update(&ordinal.to_be_bytes());
    mac.update(&generation.to_be_bytes());
    Some(mac)
}

/// Server side: challenge the client and check its answer. The error is a reason for the log.
pub(crate) async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    secret: &[u8],
) -> Result<PeerOrigin, String> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, accept_inner(stream, secret)).await {
        Ok(result) => result,
        Err(_) => Err("handshake timed out".into()),
    }
}

async fn accept_inner<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    secret: &[u8],
) -> Result<PeerOrigin, String> {
    let nonce = nonce();
    let mut hello = [0u8; SERVER_HELLO_LEN];
    hello[..8].copy_from_slice(MAGIC);
    hello[8] = PROTOCOL_VERSION;
    hello[9..].copy_from_slice(&nonce);
    stream.write_all(&hello).await.map_err(|e| e.to_string())?;
    stream.flush().await.map_err(|e| e.to_string())?;

    let mut magic = [0u8; 8];
    stream
        .read_exact(&mut magic)
        .await
        .map_err(|e| format!("no hello: {e}"))?;
    if &magic != MAGIC {
        return Err("not a peer hello".into());
    }
    let mut rest = [0u8; CLIENT_HELLO_REST_LEN];
    stream
        .read_exact(&mut rest)
        .await
        .map_err(|e| format!("short hello: {e}"))?;
    let (ordinal, rest) = rest.split_at(4);
    let (generation, tag) = rest.split_at(8);
    let ordinal = u32::from_be_bytes(ordinal.try_into().map_err(|_| "short hello")?);
    let generation = u64::from_be_bytes(generation.try_into().map_err(|_| "short hello")?);
    // verify_slice compares in constant time.
    let valid =
        mac(secret, &nonce, ordinal, generation).is_some_and(|m| m.verify_slice(tag).is_ok());
    let verdict = if valid { ACCEPTED } else { REFUSED };
    // Best effort: the verdict lets an honest client with a wrong secret say "refused" rather
    // than "connection closed".
    let _ = stream.write_all(&[verdict]).await;
    let _ = stream.flush().await;
    if valid {
        Ok(PeerOrigin {
            ordinal,
            generation,
        })
    } else {
        Err(format!(
            "wrong cluster secret from ordinal {ordinal} generation {generation}"
        ))
    }
}

/// Client side: answer the server's challenge. The caller bounds the time taken.
pub(crate) async fn connect<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    secret: &[u8],
    ordinal: u32,
    generation: u64,
) -> Result<(), PeerError> {
    let closed = |e: std::io::Error| PeerError::Unreachable(format!("handshake: {e}"));
    let mut hello = [0u8; SERVER_HELLO_LEN];
    stream.read_exact(&mut hello).await.map_err(closed)?;
    if &hello[..8] != MAGIC {
        return Err(PeerError::Refused("not an emporium peer port".into()));
    }
    if hello[8] != PROTOCOL_VERSION {
        return Err(PeerError::Refused(format!(
            "peer speaks protocol {}, this node {PROTOCOL_VERSION}",
            hello[8]
        )));
    }
    let tag = mac(secret, &hello[9..], ordinal, generation)
        .ok_or_else(|| PeerError::Refused("unusable cluster secret".into()))?
        .finalize()
        .into_bytes();
    let mut answer = Vec::with_capacity(8 + CLIENT_HELLO_REST_LEN);
    answer.extend_from_slice(MAGIC);
    answer.extend_from_slice(&ordinal.to_be_bytes());
    answer.extend_from_slice(&generation.to_be_bytes());
    answer.extend_from_slice(&tag);
    stream.write_all(&answer).await.map_err(closed)?;
    stream.flush().await.map_err(closed)?;
    match stream.read_u8().await.map_err(closed)? {
        ACCEPTED => Ok(()),
        REFUSED => Err(PeerError::Refused("cluster secret rejected".into())),
        other => Err(PeerError::Refused(format!("unexpected verdict {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn handshake(
        server_secret: &[u8],
        client_secret: &[u8],
    ) -> (Result<PeerOrigin, String>, Result<(), PeerError>) {
        let (mut a, mut b) = tokio::io::duplex(1024);
        tokio::join!(
            accept(&mut a, server_secret),
            connect(&mut b, client_secret, 3, 7)
        )
    }

    #[tokio::test]
    async fn same_secret_is_accepted_with_the_claimed_identity() {
        let (server, client) = handshake(b"0123456789abcdef", b"0123456789abcdef").await;
        assert_eq!(
            server,
            Ok(PeerOrigin {
                ordinal: 3,
                generation: 7
            })
        );
        assert_eq!(client, Ok(()));
    }

    #[tokio::test]
    async fn wrong_secret_is_refused_on_both_sides() {
        let (server, client) = handshake(b"0123456789abcdef", b"fedcba9876543210").await;
        assert!(server.is_err());
        assert!(matches!(client, Err(PeerError::Refused(_))));
    }

    #[test]
    fn nonces_differ() {
        assert_ne!(nonce(), nonce());
    }
}
