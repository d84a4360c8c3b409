//! The peer link's message envelope: what one node asks another, and what it answers.
//!
//! Every encoded message starts with a one-byte format marker, then bincode, as `engine`'s
//! `codec.rs` does for stored records. During a rolling deploy two builds talk to each other, so a
//! new layout gets a new marker and a decoder arm for the old one, never a silent reinterpretation.
//! The golden bytes in the tests pin the layout: if they fail, the wire format changed.
//!
//! The entity command inside [`Forwarded`] stays opaque bytes in the engine's own encoding: this
//! crate routes commands, it does not know carts from orders.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::peer::PeerError;

/// The only wire format so far.
pub const WIRE_FORMAT: u8 = 1;

/// What one node asks another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerRequest {
    /// An entity command for the owner of `shard` (the command bytes are the engine's own encoding).
    Forward(Forwarded),
    /// Ownership or membership news; the receiver re-reads what changed.
    Notify(Notice),
    Ping,
}

/// An entity command on its way to the node that owns the entity's shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forwarded {
    /// The entity kind (cart, order, sku, user), as the engine names it.
    pub kind: String,
    pub key: String,
    pub shard: u32,
    /// The shard epoch the sender saw for the owner (0: not known); informational, since the
    /// owner admits the command under its own, current epoch.
    pub epoch: u64,
    /// How many times this command has been forwarded already, so a routing loop ends.
    pub hops: u8,
    #[serde(with = "serde_bytes")]
    pub command: Vec<u8>,
    /// Issued by a command in flight on the sender (a checkout reserving stock): a draining
    /// shard still serves it, since the sender's drain may be waiting for that command.
    pub nested: bool,
}

/// News a node tells its peers. A hint only: the shared store stays the truth, so a lost notice
/// delays a change, it never makes one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Notice {
    Ownership {
        changes: Vec<OwnerChange>,
    },
    Membership {
        ordinal: u32,
        generation: u64,
        leaving: bool,
    },
    /// A product was written: re-read the catalog now rather than at the next periodic refresh,
    /// so the next request on any node sees it. (Appended: the variants before keep their tags.)
    Catalog,
}

/// One shard's new owner (`None` while it is in motion), with the owner's generation and the
/// shard's new epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerChange {
    pub shard: u32,
    pub owner: Option<u32>,
    pub generation: u64,
    pub epoch: u64,
}

/// What a node answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerReply {
    /// The engine's encoded reply to a forwarded command.
    Reply(#[serde(with = "serde_bytes")] Vec<u8>),
    Ack,
    Pong,
}

pub fn encode_request(request: &PeerRequest) -> Result<Vec<u8>, PeerError> {
    encode(request)
}

pub fn decode_request(bytes: &[u8]) -> Result<PeerRequest, PeerError> {
    decode(bytes)
}

pub fn encode_reply(reply: &PeerReply) -> Result<Vec<u8>, PeerError> {
    encode(reply)
}

pub fn decode_reply(bytes: &[u8]) -> Result<PeerReply, PeerError> {
    decode(bytes)
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, PeerError> {
    let size = bincode::serialized_size(value).map_err(|e| PeerError::Codec(e.to_string()))?;
    let mut out = Vec::with_capacity(1 + usize::try_from(size).unwrap_or(0));
    out.push(WIRE_FORMAT);
    bincode::serialize_into(&mut out, value).map_err(|e| PeerError::Codec(e.to_string()))?;
    Ok(out)
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, PeerError> {
    match bytes.split_first() {
        Some((&WIRE_FORMAT, body)) => {
            bincode::deserialize(body).map_err(|e| PeerError::Codec(e.to_string()))
        }
        Some((other, _)) => Err(PeerError::Codec(format!(
            "unknown wire format marker {other}"
        ))),
        None => Err(PeerError::Codec("empty message".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn request_hex(request: &PeerRequest) -> String {
        let bytes = encode_request(request).unwrap();
        assert_eq!(&decode_request(&bytes).unwrap(), request);
        hex(&bytes)
    }

    fn reply_hex(reply: &PeerReply) -> String {
        let bytes = encode_reply(reply).unwrap();
        assert_eq!(&decode_reply(&bytes).unwrap(), reply);
        hex(&bytes)
    }

    // Layout: marker, then bincode 1 defaults (u32 little-endian variant index, u64 little-endian
    // lengths, fixed-width little-endian integers, 0/1 tag for Option). Never change these.
    #[test]
    fn forward_bytes_are_pinned() {
        let request = PeerRequest::Forward(Forwarded {
            kind: "cart".into(),
            key: "u1".into(),
            shard: 7,
            epoch: 3,
            hops: 1,
            command: vec![0xaa, 0xbb],
            nested: true,
        });
        assert_eq!(
            request_hex(&request),
            concat!(
                "01",       // marker
                "00000000", // Forward
                "0400000000000000",
                "63617274", // "cart"
                "0200000000000000",
                "7531",             // "u1"
                "07000000",         // shard
                "0300000000000000", // epoch
                "01",               // hops
                "0200000000000000",
                "aabb", // command
                "01",   // nested
            )
        );
    }

    #[test]
    fn notify_bytes_are_pinned() {
        let ownership = PeerRequest::Notify(Notice::Ownership {
            changes: vec![
                OwnerChange {
                    shard: 2,
                    owner: Some(1),
                    generation: 5,
                    epoch: 9,
                },
                OwnerChange {
                    shard: 3,
                    owner: None,
                    generation: 0,
                    epoch: 10,
                },
            ],
        });
        assert_eq!(
            request_hex(&ownership),
            concat!(
                "01",
                "01000000",         // Notify
                "00000000",         // Ownership
                "0200000000000000", // two changes
                "02000000",
                "0101000000",
                "0500000000000000",
                "0900000000000000",
                "03000000",
                "00",
                "0000000000000000",
                "0a00000000000000",
            )
        );
        let membership = PeerRequest::Notify(Notice::Membership {
            ordinal: 4,
            generation: 258,
            leaving: true,
        });
        assert_eq!(
            request_hex(&membership),
            concat!(
                "01",
                "01000000",         // Notify
                "01000000",         // Membership
                "04000000",         // ordinal
                "0201000000000000", // generation
                "01",               // leaving
            )
        );
    }

    #[test]
    fn ping_and_replies_are_pinned() {
        assert_eq!(request_hex(&PeerRequest::Ping), "0102000000");
        assert_eq!(
            reply_hex(&PeerReply::Reply(vec![1, 2, 3])),
            "01000000000300000000000000010203"
        );
        assert_eq!(reply_hex(&PeerReply::Ack), "0101000000");
        assert_eq!(reply_hex(&PeerReply::Pong), "0102000000");
    }

    #[test]
    fn unknown_marker_and_garbage_are_errors() {
        let mut bytes = encode_request(&PeerRequest::Ping).unwrap();
        bytes[0] = 2;
        assert!(matches!(decode_request(&bytes), Err(PeerError::Codec(_))));
        assert!(matches!(decode_request(&[]), Err(PeerError::Codec(_))));
        assert!(matches!(
            decode_request(&[WIRE_FORMAT, 9, 0, 0, 0]),
            Err(PeerError::Codec(_))
        ));
        assert!(matches!(
            decode_reply(&[WIRE_FORMAT, 0, 0, 0, 0, 0xff]),
            Err(PeerError::Codec(_))
        ));
    }
}
