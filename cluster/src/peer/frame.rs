//! Frames on a peer connection, after the handshake.
//!
//! ```text
//! u32 BE length | u8 type | u64 BE request id | payload (length - 9 bytes)
//! ```
//!
//! The length counts the type, the id and the payload, and is bounded by [`MAX_FRAME_LEN`]: a
//! larger (or shorter than a header) length is a protocol violation and closes the connection
//! before anything is allocated. The request id is chosen by the client and echoed in the reply,
//! which is what lets one connection carry many calls and answer them in completion order.
//! An error frame's payload is a one-byte [`ErrorCode`] and a short UTF-8 reason: the code tells
//! the client whether the handler ran (so whether a retry is safe), the reason is for people.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest frame (type + id + payload) either side accepts: 16 MiB.
pub const MAX_FRAME_LEN: u32 = 16 * 1024 * 1024;

/// Type and id.
const HEADER_LEN: u32 = 1 + 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameKind {
    Request = 1,
    Reply = 2,
    Error = 3,
}

impl FrameKind {
    fn from_u8(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(Self::Request),
            2 => Some(Self::Reply),
            3 => Some(Self::Error),
            _ => None,
        }
    }
}

/// Why an error frame was sent instead of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorCode {
    /// The handler ran and failed.
    Handler = 0,
    /// The handler did not run: the connection had too many requests in flight.
    Overloaded = 1,
    /// The handler did not run: the request could not be decoded.
    BadRequest = 2,
}

#[derive(Debug)]
pub(crate) struct Frame {
    pub kind: FrameKind,
    pub id: u64,
    pub payload: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("frame length {0} is outside 9..={MAX_FRAME_LEN}")]
    BadLength(u32),
    #[error("unknown frame type {0}")]
    UnknownKind(u8),
}

impl FrameError {
    /// Whether the peer broke the protocol (as opposed to the connection failing).
    pub fn is_violation(&self) -> bool {
        !matches!(self, FrameError::Io(_))
    }
}

/// Whether a payload of `len` bytes fits in one frame.
pub(crate) fn fits(len: usize) -> bool {
    u32::try_from(len)
        .ok()
        .and_then(|len| len.checked_add(HEADER_LEN))
        .is_some_and(|total| total <= MAX_FRAME_LEN)
}

/// Reads one frame; `None` on a clean end of stream between frames.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
) -> Result<Option<Frame>, FrameError> {
    let mut len = [0u8; 4];
    if reader.read(&mut len[..1]).await? == 0 {
        return Ok(None);
    }
    reader.read_exact(&mut len[1..]).await?;
    let len = u32::from_be_bytes(len);
    if !(HEADER_LEN..=MAX_FRAME_LEN).contains(&len) {
        return Err(FrameError::BadLength(len));
    }
    let kind = reader.read_u8().await?;
    let kind = FrameKind::from_u8(kind).ok_or(FrameError::UnknownKind(kind))?;
    let id = reader.read_u64().await?;
    // In range by the check above.
    let mut payload = vec![0u8; usize::try_from(len - HEADER_LEN).unwrap_or(0)];
    reader.read_exact(&mut payload).await?;
    Ok(Some(Frame { kind, id, payload }))
}

/// Writes one frame (unflushed). The caller has checked [`fits`]; an oversized payload is an
/// `InvalidInput` error rather than a frame the peer would reject.
pub(crate) async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    kind: FrameKind,
    id: u64,
    payload: &[u8],
) -> io::Result<()> {
    let len = u32::try_from(payload.len())
        .ok()
        .and_then(|len| len.checked_add(HEADER_LEN))
        .filter(|total| *total <= MAX_FRAME_LEN)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    let mut header = [0u8; 13];
    header[..4].copy_from_slice(&len.to_be_bytes());
    header[4] = kind as u8;
    header[5..].copy_from_slice(&id.to_be_bytes());
    writer.write_all(&header).await?;
    writer.write_all(payload).await
}

pub(crate) fn error_payload(code: ErrorCode, reason: &str) -> Vec<u8> {
    // Reasons are for logs; a long one is cut (on a character boundary) to keep error frames small.
    let mut end = reason.len().min(1024);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = Vec::with_capacity(1 + end);
    out.push(code as u8);
    out.extend_from_slice(&reason.as_bytes()[..end]);
    out
}

pub(crate) fn parse_error(payload: &[u8]) -> (ErrorCode, String) {
    let (code, reason) = payload.split_first().unwrap_or((&0, &[]));
    let code = match code {
        1 => ErrorCode::Overloaded,
        2 => ErrorCode::BadRequest,
        _ => ErrorCode::Handler,
    };
    (code, String::from_utf8_lossy(reason).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frame_layout_is_pinned() {
        let mut out = Vec::new();
        write_frame(&mut out, FrameKind::Reply, 0x0102, &[0xaa, 0xbb])
            .await
            .unwrap();
        // Never change: length 11, type 2, id 0x0102, payload.
        assert_eq!(
            out,
            [0, 0, 0, 11, 2, 0, 0, 0, 0, 0, 0, 1, 2, 0xaa, 0xbb].to_vec()
        );
        let frame = read_frame(&mut out.as_slice()).await.unwrap().unwrap();
        assert_eq!(
            (frame.kind, frame.id, frame.payload),
            (FrameKind::Reply, 0x0102, vec![0xaa, 0xbb])
        );
        assert!(read_frame(&mut &[][..]).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn bad_lengths_and_types_are_violations() {
        let too_long = (MAX_FRAME_LEN + 1).to_be_bytes();
        let err = read_frame(&mut &too_long[..]).await.unwrap_err();
        assert!(err.is_violation(), "{err}");
        let too_short = [0, 0, 0, 8, 1, 0, 0, 0, 0, 0, 0, 0];
        assert!(read_frame(&mut &too_short[..])
            .await
            .unwrap_err()
            .is_violation());
        let unknown = [0, 0, 0, 9, 7, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(matches!(
            read_frame(&mut &unknown[..]).await,
            Err(FrameError::UnknownKind(7))
        ));
        let truncated = [0, 0, 0, 12, 1, 0, 0];
        assert!(!read_frame(&mut &truncated[..])
            .await
            .unwrap_err()
            .is_violation());
        assert!(fits(usize::try_from(MAX_FRAME_LEN - HEADER_LEN).unwrap()));
        assert!(!fits(
            usize::try_from(MAX_FRAME_LEN - HEADER_LEN + 1).unwrap()
        ));
    }

    #[test]
    fn error_payloads_round_trip_and_are_bounded() {
        let payload = error_payload(ErrorCode::Overloaded, "overloaded");
        assert_eq!(payload[0], 1);
        assert_eq!(
            parse_error(&payload),
            (ErrorCode::Overloaded, "overloaded".to_string())
        );
        let long = "é".repeat(1000);
        let (code, reason) = parse_error(&error_payload(ErrorCode::Handler, &long));
        assert_eq!(code, ErrorCode::Handler);
        assert!(reason.len() <= 1024 && long.starts_with(&reason));
        assert_eq!(parse_error(&[]), (ErrorCode::Handler, String::new()));
    }
}
