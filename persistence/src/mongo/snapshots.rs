//! [`SnapshotStore`] on the `snapshots` collection: one document per entity, `_id` =
//! `"<kind>/<key>"`, with its pending outbox events embedded, so a snapshot and its events are one
//! single-document atomic write.
//!
//! The compare-and-set is the write's filter: `expected == 0` is an insert (the unique `_id`
//! refuses a second creator), otherwise an update matching `{_id, version: expected, shard_epoch:
//! {$not: {$gt: epoch}}}`. `shard_epoch` is the epoch of the shard ownership the entity was last
//! written under; `$not: {$gt}` also matches documents written before it existed (no field), and
//! every successful write sets it, so a node that lost the shard (an older epoch) is fenced even
//! when it holds the right version. Documents carry `format` (the envelope version) and decode
//! through a `match` on it.

use async_trait::async_trait;
use futures_util::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};

use super::errors::{
    binary, corrupt, get_bytes, get_opt_str, get_u64, id_of, int, is_duplicate, map,
};
use super::MongoStore;
use crate::{Error, OutboxEntry, Snapshot, SnapshotStore, SnapshotWrite};

/// The document layout written today. A new layout gets a new number and a decoder arm in
/// [`decode`]; old documents keep decoding.
pub(super) const FORMAT_V1: i32 = 1;

/// Kinds are fixed names without a `/`, so `"<kind>/<key>"` is unambiguous.
pub(super) fn doc_id(kind: &str, key: &str) -> String {
    format!("{kind}/{key}")
}

/// The fields a snapshot read needs (never the embedded outbox).
fn snapshot_projection() -> Document {
    doc! { "_id": 1, "version": 1, "owner": 1, "format": 1, "data": 1 }
}

/// An embedded outbox event. `n` orders events within their document (the version that wrote
/// them, then the index within that write); readers use the array order, which `$push` keeps.
pub(super) fn event_doc(e: &OutboxEntry, n: i64) -> Document {
    let mut d = doc! {
        "event_id": &e.event_id,
        "routing_key": &e.routing_key,
        "payload": binary(e.payload.clone()),
        "created_at_ms": int(e.created_at_ms),
        "n": n,
    };
    // Optional: events stored before it existed simply lack it.
    if let Some(trace) = &e.trace_parent {
        d.insert("trace_parent", trace);
    }
    d
}

fn event_n(version: u64, index: usize) -> i64 {
    int(version)
        .saturating_mul(1 << 20)
        .saturating_add(i64::try_from(index).unwrap_or(i64::MAX))
}

/// The migration chain: one arm per stored format.
fn decode(doc: &Document) -> Result<Snapshot, Error> {
    let id = id_of(doc);
    let format = match doc.get("format") {
        Some(Bson::Int32(f)) => i64::from(*f),
        Some(Bson::Int64(f)) => *f,
        other => return Err(corrupt(&id, format!("no snapshot format: {other:?}"))),
    };
    match format {
        f if f == i64::from(FORMAT_V1) => Ok(Snapshot {
            version: get_u64(doc, "version", &id)?,
            owner: get_opt_str(doc, "owner", &id)?,
            data: get_bytes(doc, "data", &id)?,
        }),
        other => Err(corrupt(&id, format!("unknown snapshot format {other}"))),
    }
}

impl MongoStore {
    /// The version and shard epoch stored now ((0, 0) when absent; epoch 0 when written before
    /// fencing existed), without the data.
    async fn stored_version(&self, kind: &str, key: &str) -> Result<(u64, u64), Error> {
        let id = doc_id(kind, key);
        let found = self
            .snapshots
            .find_one(doc! { "_id": &id })
            .projection(doc! { "_id": 0, "version": 1, "shard_epoch": 1 })
            .await
            .map_err(map)?;
        let Some(d) = found else {
            return Ok((0, 0));
        };
        let epoch = match d.get("shard_epoch") {
            None => 0,
            Some(_) => get_u64(&d, "shard_epoch", &id)?,
        };
        Ok((get_u64(&d, "version", &id)?, epoch))
    }

    /// The error for a refused write: fenced by a newer epoch, else a conflict with the version
    /// stored now, or, if that cannot be read, `Unavailable` (retryable).
    async fn refused(&self, kind: &str, key: &str, expected: u64, epoch: u64) -> Error {
        match self.stored_version(kind, key).await {
            Ok((_, found_epoch)) if found_epoch > epoch => Error::Fenced {
                kind: kind.to_owned(),
                key: key.to_owned(),
                epoch,
                found_epoch,
            },
            Ok((found, _)) => Error::Conflict {
                kind: kind.to_owned(),
                key: key.to_owned(),
                expected,
                found,
            },
            Err(e) => e,
        }
    }
}

#[async_trait]
impl SnapshotStore for MongoStore {
    async fn ping(&self) -> Result<(), Error> {
        let ping = async {
            self.db
                .run_command(doc! { "ping": 1 })
                .await
                .map(|_| ())
                .map_err(super::errors::unavailable)
        };
        self.bounded("ping", ping).await
    }

    async fn load(&self, kind: &str, key: &str) -> Result<Option<Snapshot>, Error> {
        self.bounded("load", async move {
            let found = self
                .snapshots
                .find_one(doc! { "_id": doc_id(kind, key) })
                .projection(snapshot_projection())
                .await
                .map_err(map)?;
            found.as_ref().map(decode).transpose()
        })
        .await
    }

    async fn version(&self, kind: &str, key: &str) -> Result<u64, Error> {
        let version = async { Ok(self.stored_version(kind, key).await?.0) };
        self.bounded("version", version).await
    }

    async fn save(&self, write: SnapshotWrite) -> Result<u64, Error> {
        self.bounded("save", async move {
            let SnapshotWrite {
                kind,
                key,
                expected,
                epoch,
                owner,
                data,
                outbox,
            } = write;
            let id = doc_id(kind, &key);
            let version = expected.saturating_add(1);
            let events: Vec<Document> = outbox
                .iter()
                .enumerate()
                .map(|(i, e)| event_doc(e, event_n(version, i)))
                .collect();
            let oldest = outbox.iter().map(|e| e.created_at_ms).min();
            let owner = owner.map_or(Bson::Null, Bson::String);
            if expected == 0 {
                let mut document = doc! {
                    "_id": &id,
                    "kind": kind,
                    "key": &key,
                    "owner": owner,
                    "version": 1_i64,
                    "shard_epoch": int(epoch),
                    "format": FORMAT_V1,
                    "data": binary(data),
                    "outbox": events,
                };
                if let Some(at) = oldest {
                    document.insert("outbox_at", int(at));
                }
                return match self.snapshots.insert_one(document).await {
                    Ok(_) => Ok(1),
                    Err(e) if is_duplicate(&e) => Err(self.refused(kind, &key, 0, epoch).await),
                    Err(e) => Err(map(e)),
                };
            }
            let mut update = doc! {
                "$set": {
                    "version": int(version),
                    "shard_epoch": int(epoch),
                    "owner": owner,
                    "format": FORMAT_V1,
                    "data": binary(data),
                },
            };
            if let Some(at) = oldest {
                update.insert("$push", doc! { "outbox": { "$each": events } });
                update.insert("$min", doc! { "outbox_at": int(at) });
            }
            let result = self
                .snapshots
                .update_one(
                    doc! {
                        "_id": &id,
                        "version": int(expected),
                        "shard_epoch": { "$not": { "$gt": int(epoch) } },
                    },
                    update,
                )
                .await
                .map_err(map)?;
            if result.matched_count == 1 {
                Ok(version)
            } else {
                Err(self.refused(kind, &key, expected, epoch).await)
            }
        })
        .await
    }

    async fn list_by_owner(&self, kind: &str, owner: &str) -> Result<Vec<Snapshot>, Error> {
        self.bounded("list_by_owner", async move {
            let mut cursor = self
                .snapshots
                .find(doc! { "kind": kind, "owner": owner })
                .projection(snapshot_projection())
                .await
                .map_err(map)?;
            let mut out = Vec::new();
            while let Some(d) = cursor.try_next().await.map_err(map)? {
                out.push(decode(&d)?);
            }
            Ok(out)
        })
        .await
    }
}
