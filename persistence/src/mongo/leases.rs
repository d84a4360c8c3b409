//! [`Leases`] on two collections: `nodes` (one document per ordinal, `_id` = ordinal, holding its
//! latest generation) and `shards` (one document per shard, `_id` = shard, with its owner as
//! `owner_ordinal`/`owner_generation`, both null when unowned, and `epoch`).
//!
//! Every step is a single-document atomic write, or an unordered `update` command of such writes
//! (one statement per shard): no transactions. The commands (findAndModify with upsert, update
//! with `$inc`/`$max`, unordered insertMany) are ones MongoDB, DocumentDB and FerretDB all serve.

use async_trait::async_trait;
use futures_util::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};
use mongodb::options::ReturnDocument;

use super::errors::{corrupt, get_str, get_u64, id_of, int, is_duplicate, map};
use super::MongoStore;
use crate::{Error, Leases, NodeRecord, NodeRef, ShardRecord};

/// How often `register` re-reads and tries again when the document changed under it (a renew
/// of the previous generation, or another registration, landed in between).
const REGISTER_ATTEMPTS: usize = 8;

fn get_u32(d: &Document, field: &str, key: &str) -> Result<u32, Error> {
    u32::try_from(get_u64(d, field, key)?)
        .map_err(|_| corrupt(key, format!("field {field}: out of range")))
}

fn decode_node(d: &Document) -> Result<NodeRecord, Error> {
    let id = id_of(d);
    let leaving = match d.get("leaving") {
        Some(Bson::Boolean(b)) => *b,
        other => return Err(corrupt(&id, format!("field leaving: {other:?}"))),
    };
    Ok(NodeRecord {
        ordinal: get_u32(d, "_id", &id)?,
        generation: get_u64(d, "generation", &id)?,
        address: get_str(d, "address", &id)?,
        lease_until_ms: get_u64(d, "lease_until_ms", &id)?,
        leaving,
        superseded_until_ms: get_u64(d, "superseded_until_ms", &id)?,
    })
}

fn decode_shard(d: &Document) -> Result<ShardRecord, Error> {
    let id = id_of(d);
    let unset = |field: &str| matches!(d.get(field), None | Some(Bson::Null));
    let owner = match (unset("owner_ordinal"), unset("owner_generation")) {
        (true, true) => None,
        (false, false) => Some(NodeRef {
            ordinal: get_u32(d, "owner_ordinal", &id)?,
            generation: get_u64(d, "owner_generation", &id)?,
        }),
        _ => return Err(corrupt(&id, "owner half set")),
    };
    Ok(ShardRecord {
        shard: get_u32(d, "_id", &id)?,
        owner,
        epoch: get_u64(d, "epoch", &id)?,
    })
}

/// The owner fields as stored: plain values, so a filter on them is plain equality.
fn owner_fields(owner: Option<NodeRef>) -> (Bson, Bson) {
    match owner {
        Some(n) => (
            Bson::Int64(i64::from(n.ordinal)),
            Bson::Int64(int(n.generation)),
        ),
        None => (Bson::Null, Bson::Null),
    }
}

impl MongoStore {
    async fn read_all<T>(
        &self,
        collection: &mongodb::Collection<Document>,
        filter: Document,
        decode: fn(&Document) -> Result<T, Error>,
    ) -> Result<Vec<T>, Error> {
        let mut cursor = collection
            .find(filter)
            .sort(doc! { "_id": 1 })
            .await
            .map_err(map)?;
        let mut out = Vec::new();
        while let Some(d) = cursor.try_next().await.map_err(map)? {
            out.push(decode(&d)?);
        }
        Ok(out)
    }
}

#[async_trait]
impl Leases for MongoStore {
    async fn register(
        &self,
        ordinal: u32,
        address: &str,
        lease_until_ms: u64,
    ) -> Result<NodeRecord, Error> {
        self.bounded("register", async move {
            let id = i64::from(ordinal);
            // Compare-and-set on what was read: `$inc` alone cannot copy the previous lease into
            // `superseded_until_ms` (that needs an aggregation-pipeline update, not portable),
            // and the copy must be exact: until then the previous generation may still serve.
            for _ in 0..REGISTER_ATTEMPTS {
                let current = self.nodes.find_one(doc! { "_id": id }).await.map_err(map)?;
                let (filter, superseded) = match &current {
                    None => (doc! { "_id": id, "generation": { "$exists": false } }, 0),
                    Some(d) => {
                        let previous = decode_node(d)?;
                        let filter = doc! {
                            "_id": id,
                            "generation": int(previous.generation),
                            "lease_until_ms": int(previous.lease_until_ms),
                        };
                        (filter, previous.lease_until_ms)
                    }
                };
                let update = doc! {
                    "$inc": { "generation": 1_i64 },
                    "$set": {
                        "address": address,
                        "lease_until_ms": int(lease_until_ms),
                        "leaving": false,
                        "superseded_until_ms": int(superseded),
                    },
                };
                let updated = self
                    .nodes
                    .find_one_and_update(filter, update)
                    .upsert(current.is_none())
                    .return_document(ReturnDocument::After)
                    .await;
                match updated {
                    Ok(Some(d)) => return decode_node(&d),
                    // Changed since the read, or another node inserted the first generation.
                    Ok(None) => continue,
                    Err(e) if is_duplicate(&e) => continue,
                    Err(e) => return Err(map(e)),
                }
            }
            Err(Error::Unavailable(format!(
                "registration of node {ordinal} kept racing other writes to its record"
            )))
        })
        .await
    }

    async fn renew(
        &self,
        node: NodeRef,
        lease_until_ms: u64,
        leaving: bool,
    ) -> Result<bool, Error> {
        self.bounded("renew", async move {
            let result = self
                .nodes
                .update_one(
                    doc! { "_id": i64::from(node.ordinal), "generation": int(node.generation) },
                    doc! {
                        "$max": { "lease_until_ms": int(lease_until_ms) },
                        "$set": { "leaving": leaving },
                    },
                )
                .await
                .map_err(map)?;
            Ok(result.matched_count == 1)
        })
        .await
    }

    async fn nodes(&self) -> Result<Vec<NodeRecord>, Error> {
        self.bounded("nodes", self.read_all(&self.nodes, doc! {}, decode_node))
            .await
    }

    async fn ensure_shards(&self, count: u32) -> Result<(), Error> {
        self.bounded("ensure_shards", async move {
            // Read first, so the usual call (every record there) writes nothing.
            let mut existing = self
                .shards
                .find(doc! { "_id": { "$lt": i64::from(count) } })
                .projection(doc! { "_id": 1 })
                .await
                .map_err(map)?;
            let mut present = std::collections::HashSet::new();
            while let Some(d) = existing.try_next().await.map_err(map)? {
                present.insert(get_u32(&d, "_id", &id_of(&d))?);
            }
            let missing: Vec<Document> = (0..count)
                .filter(|shard| !present.contains(shard))
                .map(|shard| {
                    doc! {
                        "_id": i64::from(shard),
                        "owner_ordinal": Bson::Null,
                        "owner_generation": Bson::Null,
                        "epoch": 0_i64,
                    }
                })
                .collect();
            if missing.is_empty() {
                return Ok(());
            }
            // Unordered: a record another node created meanwhile fails alone, the rest go in.
            match self.shards.insert_many(missing).ordered(false).await {
                Ok(_) => Ok(()),
                Err(e) if is_duplicate(&e) => Ok(()),
                Err(e) => Err(map(e)),
            }
        })
        .await
    }

    async fn shards(&self) -> Result<Vec<ShardRecord>, Error> {
        self.bounded("shards", self.read_all(&self.shards, doc! {}, decode_shard))
            .await
    }

    async fn transfer(
        &self,
        shards: &[u32],
        from: Option<NodeRef>,
        to: Option<NodeRef>,
    ) -> Result<Vec<ShardRecord>, Error> {
        if shards.is_empty() {
            return Ok(Vec::new());
        }
        self.bounded("transfer", async move {
            let (from_ordinal, from_generation) = owner_fields(from);
            let (to_ordinal, to_generation) = owner_fields(to);
            // One `update` command for the set, one statement per shard: each document is
            // matched and changed atomically on its own, so of two nodes moving the same shard
            // from the same owner only one does. (One statement per `_id` rather than one
            // `update_many` with `_id: {$in: …}`: servers that match `$in` by a scan, as the
            // test server does, take hundreds of ms for a few hundred shards that way.)
            let updates: Vec<Document> = shards
                .iter()
                .map(|&shard| {
                    doc! {
                        "q": {
                            "_id": i64::from(shard),
                            "owner_ordinal": from_ordinal.clone(),
                            "owner_generation": from_generation.clone(),
                        },
                        "u": {
                            "$set": {
                                "owner_ordinal": to_ordinal.clone(),
                                "owner_generation": to_generation.clone(),
                            },
                            "$inc": { "epoch": 1_i64 },
                        },
                    }
                })
                .collect();
            let reply = self
                .db
                .run_command(doc! {
                    "update": self.shards.name(),
                    "updates": updates,
                    "ordered": false,
                    // As the client's own writes: acknowledged means durable on a majority.
                    "writeConcern": { "w": "majority", "j": true },
                })
                .await
                .map_err(map)?;
            if let Some(errors) = reply.get("writeErrors").or(reply.get("writeConcernError")) {
                return Err(Error::Unavailable(format!(
                    "mongodb: shard transfer refused: {errors}"
                )));
            }
            // Read back the whole table (a thousand small documents, one scan) and keep the
            // moved shards: what each one's owner and epoch are now, whoever wrote them.
            let moved: std::collections::HashSet<u32> = shards.iter().copied().collect();
            let all = self.read_all(&self.shards, doc! {}, decode_shard).await?;
            Ok(all
                .into_iter()
                .filter(|r| moved.contains(&r.shard))
                .collect())
        })
        .await
    }
}
