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
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    pub created_at_ms: u64,
    /// W3C `traceparent` of the span that wrote the event, so its publication joins that trace
    /// (and consumers can continue it). `None` when tracing is off.
    pub trace_parent: Option<String>,
}

/// An outbox entry as format 1 stored it (before `trace_parent`).
#[derive(Debug, Deserialize)]
struct OutboxEntryV1 {
    event_id: String,
    routing_key: String,
    #[serde(with = "serde_bytes")]
    payload: Vec<u8>,
    created_at_ms: u64,
}

/// An outbox entry as read back, with its position in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRecord {
    /// Position in the outbox, oldest first. Backend-defined: only that backend reads it back.
    pub seq: u64,
    pub entry: OutboxEntry,
}

/// A conditional write: applied only if the stored version equals `expected` (0 = absent) and the
/// entity was not last written under a newer shard epoch than `epoch`.
#[derive(Debug, Clone)]
pub struct SnapshotWrite {
    pub kind: &'static str,
    pub key: String,
    pub expected: u64,
    /// The epoch of the writer's ownership of the entity's shard. A store shared by several
    /// nodes refuses the write ([`crate::Error::Fenced`]) if the entity carries a higher one, and
    /// stores this one with it. 0 = unfenced: the single-node default (it is still refused once
    /// a fenced writer has stored a higher epoch).
    pub epoch: u64,
    pub owner: Option<String>,
    pub data: Vec<u8>,
    pub outbox: Vec<OutboxEntry>,
}

/// A node generation as the shared store knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRecord {
    /// The StatefulSet ordinal: the node's stable identity.
    pub ordinal: u32,
    /// 1 for the first registration of this ordinal, one more for each later one.
    pub generation: u64,
    /// Where peers reach this generation.
    pub address: String,
    /// Until when (unix ms) this generation's claims hold unless renewed.
    pub lease_until_ms: u64,
    /// The node is handing its shards off (SIGTERM).
    pub leaving: bool,
    /// The lease the previous generation of this ordinal held when this one registered: its
    /// shards stay its until then.
    pub superseded_until_ms: u64,
}

impl NodeRecord {
    pub fn node_ref(&self) -> NodeRef {
        NodeRef {
            ordinal: self.ordinal,
            generation: self.generation,
        }
    }
}

/// One generation of one node: what a shard's owner is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeRef {
    pub ordinal: u32,
    pub generation: u64,
}

/// A shard's owner and the epoch of that ownership, which grows by one at every change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardRecord {
    pub shard: u32,
    pub owner: Option<NodeRef>,
    pub epoch: u64,
}

/// Storage-level envelope of a snapshot. `format` is bumped (and a decoder added) whenever the
/// layout changes; old records keep decoding.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct StoredSnapshotV1 {
    pub version: u64,
    pub owner: Option<String>,
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

pub(crate) const SNAPSHOT_FORMAT_V1: u8 = 1;
pub(crate) const OUTBOX_FORMAT_V1: u8 = 1;
pub(crate) const OUTBOX_FORMAT_V2: u8 = 2;

/// [`StoredSnapshotV1`] borrowed, for encoding without copying the data.
#[derive(Serialize)]
struct StoredSnapshotV1Ref<'a> {
    version: u64,
    owner: Option<&'a str>,
    #[serde(with = "serde_bytes")]
    data: &'a [u8],
}

#[cfg(any(test, feature = "redis"))]
pub(crate) fn encode_snapshot(s: &Snapshot) -> Vec<u8> {
    encode_snapshot_parts(s.version, s.owner.as_deref(), &s.data)
}

pub(crate) fn encode_snapshot_parts(version: u64, owner: Option<&str>, data: &[u8]) -> Vec<u8> {
    let body = StoredSnapshotV1Ref {
        version,
        owner,
        data,
    };
    with_marker(SNAPSHOT_FORMAT_V1, &body)
}

/// The version of a stored snapshot, read without decoding the rest (the writer checks it on
/// every conditional write). Format 1 starts with the version as bincode's fixed-width u64.
pub(crate) fn snapshot_version(key: &str, bytes: &[u8]) -> Result<u64, crate::Error> {
    snapshot_v1_body(key, bytes)?
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or_else(|| corrupt(key, "truncated snapshot"))
}

pub(crate) fn decode_snapshot(key: &str, bytes: &[u8]) -> Result<Snapshot, crate::Error> {
    let v1: StoredSnapshotV1 =
        bincode::deserialize(snapshot_v1_body(key, bytes)?).map_err(|e| corrupt(key, e))?;
    Ok(Snapshot {
        version: v1.version,
        owner: v1.owner,
        data: v1.data,
    })
}

/// The body of a stored snapshot after its format marker; format 1 is the only one so far.
fn snapshot_v1_body<'a>(key: &str, bytes: &'a [u8]) -> Result<&'a [u8], crate::Error> {
    match bytes.split_first() {
        Some((&SNAPSHOT_FORMAT_V1, body)) => Ok(body),
        Some((other, _)) => Err(corrupt(key, format!("unknown snapshot format {other}"))),
        None => Err(corrupt(key, "empty record")),
    }
}

pub(crate) fn encode_outbox(e: &OutboxEntry) -> Vec<u8> {
    with_marker(OUTBOX_FORMAT_V2, e)
}

pub(crate) fn decode_outbox(key: &str, bytes: &[u8]) -> Result<OutboxEntry, crate::Error> {
    match bytes.split_first() {
        Some((&OUTBOX_FORMAT_V2, body)) => bincode::deserialize(body).map_err(|e| corrupt(key, e)),
        Some((&OUTBOX_FORMAT_V1, body)) => {
            let v1: OutboxEntryV1 = bincode::deserialize(body).map_err(|e| corrupt(key, e))?;
            Ok(OutboxEntry {
                event_id: v1.event_id,
                routing_key: v1.routing_key,
                payload: v1.payload,
                created_at_ms: v1.created_at_ms,
                trace_parent: None,
            })
        }
        Some((other, _)) => Err(corrupt(key, format!("unknown outbox format {other}"))),
        None => Err(corrupt(key, "empty record")),
    }
}

fn with_marker<T: Serialize>(marker: u8, value: &T) -> Vec<u8> {
    // Sized first: one allocation instead of a reallocation at every doubling.
    let size = bincode::serialized_size(value).map_or(0, |n| usize::try_from(n).unwrap_or(0));
    let mut out = Vec::with_capacity(1 + size);
    out.push(marker);
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
    fn outbox_entries_of_format_1_still_decode() {
        #[derive(Serialize)]
        struct V1<'a>(&'a str, &'a str, Vec<u8>, u64);
        let old = with_marker(OUTBOX_FORMAT_V1, &V1("e1", "order.created", vec![7], 5));
        let entry = decode_outbox("k", &old);
        assert_eq!(
            entry,
            Ok(OutboxEntry {
                event_id: "e1".into(),
                routing_key: "order.created".into(),
                payload: vec![7],
                created_at_ms: 5,
                trace_parent: None,
            })
        );
        let mut new = entry.unwrap_or_else(|e| panic!("{e}"));
        new.trace_parent = Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into());
        assert_eq!(decode_outbox("k", &encode_outbox(&new)), Ok(new));
        assert!(decode_outbox("k", &[9, 1, 2]).is_err());
    }

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
        assert_eq!(snapshot_version("k", &bytes), Ok(7));
        assert!(snapshot_version("k", &future).is_err());
        assert!(snapshot_version("k", &bytes[..5]).is_err());
    }

    /// Byte vectors are encoded as one slice (`serde_bytes`) for speed; the stored layout must
    /// stay what earlier builds wrote and read, element by element.
    #[test]
    fn byte_fields_keep_the_layout_earlier_builds_wrote() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct OldSnapshot(u64, Option<String>, Vec<u8>);
        #[derive(Serialize)]
        struct OldOutbox(String, String, Vec<u8>, u64, Option<String>);
        let old = with_marker(
            SNAPSHOT_FORMAT_V1,
            &OldSnapshot(3, Some("o".into()), vec![0, 1, 255]),
        );
        let s = Snapshot {
            version: 3,
            owner: Some("o".into()),
            data: vec![0, 1, 255],
        };
        assert_eq!(encode_snapshot(&s), old);
        assert_eq!(decode_snapshot("k", &old), Ok(s));
        let e = OutboxEntry {
            event_id: "e".into(),
            routing_key: "order.created".into(),
            payload: vec![9, 8, 7],
            created_at_ms: 11,
            trace_parent: Some("tp".into()),
        };
        let old = with_marker(
            OUTBOX_FORMAT_V2,
            &OldOutbox(
                "e".into(),
                "order.created".into(),
                vec![9, 8, 7],
                11,
                Some("tp".into()),
            ),
        );
        assert_eq!(encode_outbox(&e), old);
        assert_eq!(decode_outbox("k", &old), Ok(e));
    }
}
