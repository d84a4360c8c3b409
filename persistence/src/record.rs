//! The records every backend stores. Values are opaque bytes: the engine encodes domain state with
//! its own format marker; these structs carry the storage-level metadata around them.

use serde::{Deserialize, Serialize};

/// A stored entity state and the version it was written at (1 for the first write).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub version: u64,
    /// Secondary key the store can list by (the user who owns an order).
    pub owner: Option<String>,
    pub data: Vec<u8>,
}

/// An event to relay, stored in the same write as the snapshot that produced it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// Unique id; also the AMQP `message_id`, so consumers can dedupe.
    pub event_id: String,
    /// e.g. `order.created`.
    pub routing_key: String,
    pub payload: Vec<u8>,
    pub created_at_ms: u64,
}

/// An outbox entry as read back, with its position in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRecord {
    /// Position in the outbox, oldest first. Backend-defined: only that backend reads it back.
    pub seq: u64,
    pub entry: OutboxEntry,
}

/// A conditional write: applied only if the stored version equals `expected` (0 = absent).
#[derive(Debug, Clone)]
pub struct SnapshotWrite {
    pub kind: &'static str,
    pub key: String,
    pub expected: u64,
    pub owner: Option<String>,
    pub data: Vec<u8>,
    pub outbox: Vec<OutboxEntry>,
}

/// Storage-level envelope of a snapshot. `format` is bumped (and a decoder added) whenever the
/// layout changes; old records keep decoding.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct StoredSnapshotV1 {
    pub version: u64,
    pub owner: Option<String>,
    pub data: Vec<u8>,
}

pub(crate) const SNAPSHOT_FORMAT_V1: u8 = 1;
pub(crate) const OUTBOX_FORMAT_V1: u8 = 1;

pub(crate) fn encode_snapshot(s: &Snapshot) -> Vec<u8> {
    let body = StoredSnapshotV1 {
        version: s.version,
        owner: s.owner.clone(),
        data: s.data.clone(),
    };
    with_marker(SNAPSHOT_FORMAT_V1, &body)
}

pub(crate) fn decode_snapshot(key: &str, bytes: &[u8]) -> Result<Snapshot, crate::Error> {
    match bytes.split_first() {
        Some((&SNAPSHOT_FORMAT_V1, body)) => {
            let v1: StoredSnapshotV1 = bincode::deserialize(body).map_err(|e| corrupt(key, e))?;
            Ok(Snapshot {
                version: v1.version,
                owner: v1.owner,
                data: v1.data,
            })
        }
        Some((other, _)) => Err(corrupt(key, format!("unknown snapshot format {other}"))),
        None => Err(corrupt(key, "empty record")),
    }
}

pub(crate) fn encode_outbox(e: &OutboxEntry) -> Vec<u8> {
    with_marker(OUTBOX_FORMAT_V1, e)
}

pub(crate) fn decode_outbox(key: &str, bytes: &[u8]) -> Result<OutboxEntry, crate::Error> {
    match bytes.split_first() {
        Some((&OUTBOX_FORMAT_V1, body)) => bincode::deserialize(body).map_err(|e| corrupt(key, e)),
        Some((other, _)) => Err(corrupt(key, format!("unknown outbox format {other}"))),
        None => Err(corrupt(key, "empty record")),
    }
}

fn with_marker<T: Serialize>(marker: u8, value: &T) -> Vec<u8> {
    let mut out = vec![marker];
    // Serialising plain structs of integers, strings and byte vectors into a Vec cannot fail.
    if let Err(e) = bincode::serialize_into(&mut out, value) {
        tracing::error!(error = %e, "bincode encoding failed");
    }
    out
}

fn corrupt(key: &str, reason: impl ToString) -> crate::Error {
    crate::Error::Corrupt {
        key: key.to_owned(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_round_trips_and_rejects_unknown_formats() {
        let s = Snapshot {
            version: 7,
            owner: Some("a@b.c".into()),
            data: vec![1, 2, 3],
        };
        let bytes = encode_snapshot(&s);
        assert_eq!(decode_snapshot("k", &bytes), Ok(s));
        let mut future = bytes.clone();
        future[0] = 99;
        assert!(matches!(
            decode_snapshot("k", &future),
            Err(crate::Error::Corrupt { .. })
        ));
        assert!(decode_snapshot("k", &[]).is_err());
    }
}
