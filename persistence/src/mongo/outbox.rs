//! [`Outbox`] over the events embedded in snapshot documents.
//!
//! Pending events live in their snapshot's `outbox` array (indexed on `outbox.event_id`); a
//! document-level `outbox_at` (the creation time of its oldest pending event, kept with `$min`
//! on every push and unset once the array is empty) orders documents oldest first. Delivered
//! events are copied to `outbox_delivered` (`_id` = event id) for the retention period, then
//! pulled from their documents. Events appended without a snapshot go to the document
//! `_outbox/loose`.
//!
//! Claims: every node on a shared store runs a relay. `pending` first claims the documents it is
//! about to return (`outbox_claimed_by` = this store, `outbox_claim_until` = now + lease, set
//! atomically per document on those nobody holds, whose lease ran out, or that are already ours),
//! then reads only what it holds; `mark_delivered` releases the claim with the pull. A relay that
//! dies leaves its documents to the others when the lease ends, so events are published once in
//! the normal case and at least once always (leases compare the nodes' clocks: skew must stay
//! well under the lease).
//!
//! Deliberately not a global sequence: `OutboxRecord.seq` is the position within one `pending`
//! answer, and `mark_delivered` works by event id, so marking twice (or after a re-read) is
//! harmless.

use std::collections::BTreeSet;

use async_trait::async_trait;
use futures_util::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};

use super::errors::{
    binary, corrupt, get_bytes, get_opt_str, get_str, get_u64, id_of, int, is_duplicate, map,
};
use super::snapshots::event_doc;
use super::MongoStore;
use crate::{Error, Outbox, OutboxEntry, OutboxRecord};

/// The document that holds events appended without a snapshot.
const LOOSE_ID: &str = "_outbox/loose";

/// Documents with pending events: those with an `outbox_at` (set with the first pending event,
/// unset once the outbox is empty), served by the sparse `outbox_at` index, which also gives the
/// sort order.
fn pending_filter() -> Document {
    // `outbox.0`: a document whose events were pulled but whose `outbox_at` survived (the unset
    // after the pull failed) is skipped, so it can never crowd real events out of a batch.
    doc! { "outbox_at": { "$exists": true }, "outbox.0": { "$exists": true } }
}

fn decode_event(event: &Bson, doc_id: &str) -> Result<OutboxEntry, Error> {
    let Bson::Document(e) = event else {
        return Err(corrupt(
            doc_id,
            format!("outbox event is not a document: {event:?}"),
        ));
    };
    Ok(OutboxEntry {
        event_id: get_str(e, "event_id", doc_id)?,
        routing_key: get_str(e, "routing_key", doc_id)?,
        payload: get_bytes(e, "payload", doc_id)?,
        created_at_ms: get_u64(e, "created_at_ms", doc_id)?,
        trace_parent: get_opt_str(e, "trace_parent", doc_id)?,
    })
}

fn outbox_array<'a>(d: &'a Document, doc_id: &str) -> Result<&'a Vec<Bson>, Error> {
    match d.get("outbox") {
        Some(Bson::Array(events)) => Ok(events),
        other => Err(corrupt(
            doc_id,
            format!("outbox is not an array: {other:?}"),
        )),
    }
}

#[async_trait]
impl Outbox for MongoStore {
    async fn pending(&self, limit: usize) -> Result<Vec<OutboxRecord>, Error> {
        self.bounded("pending", async move {
            if limit == 0 {
                return Ok(Vec::new());
            }
            // Claim first, so relays of several nodes on one store do not publish the same
            // events: documents nobody holds (or whose lease ran out, or ours) become ours for
            // the lease, atomically per document; then read what we hold. Every matching document
            // holds at least one event: `limit` documents are enough.
            let now = now_ms();
            let claimable = doc! { "$or": [
                { "outbox_claim_until": { "$exists": false } },
                { "outbox_claim_until": { "$lt": int(now) } },
                { "outbox_claimed_by": &self.claimer },
            ] };
            let mut candidates = self
                .snapshots
                .find(doc! { "$and": [pending_filter(), claimable.clone()] })
                .sort(doc! { "outbox_at": 1, "_id": 1 })
                .projection(doc! { "_id": 1 })
                .limit(int(limit as u64))
                .await
                .map_err(map)?;
            let mut ids: Vec<Bson> = Vec::new();
            while let Some(d) = candidates.try_next().await.map_err(map)? {
                if let Some(id) = d.get("_id") {
                    ids.push(id.clone());
                }
            }
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let until = now.saturating_add(u64::try_from(self.claim_lease.as_millis()).unwrap_or(u64::MAX));
            self.snapshots
                .update_many(
                    doc! { "$and": [{ "_id": { "$in": &ids } }, claimable] },
                    doc! { "$set": { "outbox_claimed_by": &self.claimer, "outbox_claim_until": int(until) } },
                )
                .await
                .map_err(map)?;
            let mut cursor = self
                .snapshots
                .find(doc! { "_id": { "$in": &ids }, "outbox_claimed_by": &self.claimer })
                .sort(doc! { "outbox_at": 1, "_id": 1 })
                .projection(doc! { "_id": 1, "outbox": 1 })
                .await
                .map_err(map)?;
            let mut out: Vec<OutboxRecord> = Vec::new();
            while out.len() < limit {
                let Some(d) = cursor.try_next().await.map_err(map)? else {
                    break;
                };
                let id = id_of(&d);
                for event in outbox_array(&d, &id)?.iter().take(limit - out.len()) {
                    out.push(OutboxRecord {
                        seq: out.len() as u64 + 1,
                        entry: decode_event(event, &id)?,
                    });
                }
            }
            Ok(out)
        })
        .await
    }

    async fn release(&self, records: &[OutboxRecord]) -> Result<(), Error> {
        self.bounded("release", async move {
            let ids: Vec<&str> = records.iter().map(|r| r.entry.event_id.as_str()).collect();
            if ids.is_empty() {
                return Ok(());
            }
            self.snapshots
                .update_many(
                    doc! { "outbox.event_id": { "$in": &ids }, "outbox_claimed_by": &self.claimer },
                    doc! { "$unset": { "outbox_claimed_by": "", "outbox_claim_until": "" } },
                )
                .await
                .map_err(map)?;
            Ok(())
        })
        .await
    }

    async fn mark_delivered(&self, records: &[OutboxRecord], at_ms: u64) -> Result<(), Error> {
        self.bounded("mark_delivered", async move {
            if records.is_empty() {
                return Ok(());
            }
            // First the delivered copies (a crash after this re-sends, never loses)...
            let copies = records.iter().map(|r| {
                doc! {
                    "_id": &r.entry.event_id,
                    "delivered_at_ms": int(at_ms),
                    "routing_key": &r.entry.routing_key,
                    "payload": binary(r.entry.payload.clone()),
                    "created_at_ms": int(r.entry.created_at_ms),
                }
            });
            // An insert that meets an existing copy is an upsert that found it: keep the first.
            match self.delivered.insert_many(copies).ordered(false).await {
                Ok(_) => {}
                Err(e) if is_duplicate(&e) => {}
                Err(e) => return Err(map(e)),
            }
            // ...then the pull from the documents that hold them.
            let ids: Vec<&str> = records
                .iter()
                .map(|r| r.entry.event_id.as_str())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            self.snapshots
                .update_many(
                    doc! { "outbox.event_id": { "$in": &ids } },
                    doc! {
                        "$pull": { "outbox": { "event_id": { "$in": &ids } } },
                        // Released: an event written after the claim is anyone's to relay.
                        "$unset": { "outbox_claimed_by": "", "outbox_claim_until": "" },
                    },
                )
                .await
                .map_err(map)?;
            // An emptied document loses its age, so its next event sorts by its own time (and one
            // left emptied by an earlier failed unset is mended here too). A push racing with this
            // leaves a non-empty array, which the filter does not match. Every holder's age is at
            // most the newest event delivered here (it is the oldest of its own), so the index
            // range up to it covers them without walking the whole backlog behind.
            let newest = records.iter().map(|r| r.entry.created_at_ms).max();
            self.snapshots
                .update_many(
                    doc! { "outbox_at": { "$lte": int(newest.unwrap_or(0)) }, "outbox": { "$size": 0 } },
                    doc! { "$unset": { "outbox_at": "" } },
                )
                .await
                .map_err(map)?;
            Ok(())
        })
        .await
    }

    async fn depth(&self) -> Result<u64, Error> {
        self.bounded("depth", async move {
            let mut cursor = self
                .snapshots
                .find(pending_filter())
                .projection(doc! { "_id": 1, "outbox.event_id": 1 })
                .await
                .map_err(map)?;
            let mut depth = 0u64;
            while let Some(d) = cursor.try_next().await.map_err(map)? {
                depth += outbox_array(&d, &id_of(&d))?.len() as u64;
            }
            Ok(depth)
        })
        .await
    }

    async fn prune_delivered(&self, before_ms: u64) -> Result<u64, Error> {
        self.bounded("prune_delivered", async move {
            self.delivered
                .delete_many(doc! { "delivered_at_ms": { "$lt": int(before_ms) } })
                .await
                .map(|r| r.deleted_count)
                .map_err(map)
        })
        .await
    }

    /// Returns the event's `n` in the loose document (its creation time), not a global position.
    async fn append(&self, entry: OutboxEntry) -> Result<u64, Error> {
        self.bounded("append", async move {
            let n = int(entry.created_at_ms);
            self.snapshots
                .update_one(
                    doc! { "_id": LOOSE_ID },
                    doc! {
                        "$push": { "outbox": { "$each": [event_doc(&entry, n)] } },
                        "$min": { "outbox_at": n },
                    },
                )
                .upsert(true)
                .await
                .map_err(map)?;
            Ok(entry.created_at_ms)
        })
        .await
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
