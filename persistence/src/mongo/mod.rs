//! The MongoDB-compatible backend (MongoDB, Amazon DocumentDB, FerretDB; SecantusDB in tests), on
//! the official async `mongodb` driver.
//!
//! Solves: the three storage traits with the same semantics as the sled backend, and
//! [`Leases`](crate::Leases) (node generations and shard ownership for a cluster sharing the
//! store), using only commands every target supports (insert, update, findAndModify, find,
//! delete, count, createIndexes). A snapshot and the outbox events it produced are ONE document
//! (`snapshots`, events in its `outbox` array), so the conditional save (version and shard epoch)
//! is a single-document atomic write: no multi-document transactions, and a refused write leaves
//! no events. Writes use write concern `majority` with `j: true`, so
//! `Ok` means durable. A store that is down answers [`Error::Unavailable`] within the server
//! selection timeout (3 s unless the URI says otherwise); one that stops answering, within the
//! operation timeout ([`OPERATION_TIMEOUT`]): never a hang.
//!
//! Deliberately does not: use transactions, `$lookup`, change streams or aggregation-pipeline
//! updates (not portable to DocumentDB/FerretDB); retry (the caller decides); hide the one
//! ambiguity every remote store has — a write whose acknowledgement was lost to a network error
//! reports `Unavailable` though it may have been applied (the next load shows it).

mod catalog;
mod errors;
mod leases;
mod outbox;
mod snapshots;

use std::future::Future;
use std::time::Duration;

use mongodb::bson::{doc, Document};
use mongodb::options::{
    Acknowledgment, ClientOptions, IndexOptions, ReadConcern, Tls, WriteConcern,
};
use mongodb::{Client, Collection, Database, IndexModel};

use crate::Error;

/// Used when the URI names no database.
const DEFAULT_DATABASE: &str = "emporium";
/// Server selection and connect timeout unless the URI sets its own.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);
/// The longest one store operation may take before it is given up as `Unavailable`. The driver
/// has no socket timeout, so without this a server that stops answering (a black-holed network,
/// a frozen process) would hang the caller. Shorter than a replica-set election (~10 s) on
/// purpose: a request waiting out a failover answers a retryable 503 within the bound instead.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(5);
/// See [`MongoStore::with_claim_lease`].
const CLAIM_LEASE: Duration = Duration::from_secs(30);

const SNAPSHOTS: &str = "snapshots";
const DELIVERED: &str = "outbox_delivered";
const PRODUCTS: &str = "products";
const NODES: &str = "nodes";
const SHARDS: &str = "shards";

/// Snapshots, outbox, catalog and leases in one MongoDB-compatible database. Cheap to clone (the driver's
/// client is a handle to a shared connection pool).
#[derive(Clone)]
pub struct MongoStore {
    db: Database,
    db_name: String,
    snapshots: Collection<Document>,
    delivered: Collection<Document>,
    products: Collection<Document>,
    nodes: Collection<Document>,
    shards: Collection<Document>,
    operation_timeout: Duration,
    /// Who this store is when it claims outbox documents (unique per process).
    claimer: String,
    /// How long a claim keeps other nodes' relays off the claimed documents.
    claim_lease: Duration,
}

impl MongoStore {
    /// Connects to `uri` (`mongodb://host:port/db?options`; database `emporium` when the path is
    /// empty) and creates the indexes (idempotent). An unreachable server gives
    /// [`Error::Unavailable`] after the server selection timeout.
    pub async fn connect(uri: &str) -> Result<MongoStore, Error> {
        Self::connect_trusting(uri, None).await
    }

    /// [`MongoStore::connect`], with `ca_file` (PEM) as the CAs a TLS connection trusts when the
    /// URI turns TLS on (`tls=true`) without naming its own `tlsCAFile`.
    pub async fn connect_trusting(
        uri: &str,
        ca_file: Option<&std::path::Path>,
    ) -> Result<MongoStore, Error> {
        let mut options = ClientOptions::parse(uri)
            .await
            .map_err(|e| Error::Unavailable(format!("invalid mongodb uri: {e}")))?;
        if let (Some(Tls::Enabled(tls)), Some(ca)) = (options.tls.as_mut(), ca_file) {
            if tls.ca_file_path.is_none() {
                tls.ca_file_path = Some(ca.to_owned());
            }
        }
        options.server_selection_timeout =
            options.server_selection_timeout.or(Some(DEFAULT_TIMEOUT));
        options.connect_timeout = options.connect_timeout.or(Some(DEFAULT_TIMEOUT));
        // DocumentDB refuses retryable writes; a write that fails is answered 503 and retried by
        // the client instead. Reads see only what a majority has, so neither a snapshot nor an
        // outbox event that a failover could roll back is ever read (or published).
        options.retry_writes = options.retry_writes.or(Some(false));
        // Forced, unlike retryable writes: a URI asking for less would break that guarantee.
        options.read_concern = Some(ReadConcern::majority());
        // Acknowledged means durable: a majority has it in its journal.
        options.write_concern = Some(
            WriteConcern::builder()
                .w(Acknowledgment::Majority)
                .journal(true)
                .build(),
        );
        if options.app_name.is_none() {
            options.app_name = Some("emporium".to_owned());
        }
        let hosts: Vec<String> = options.hosts.iter().map(ToString::to_string).collect();
        let db_name = options
            .default_database
            .clone()
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| DEFAULT_DATABASE.to_owned());
        let client = Client::with_options(options)
            .map_err(|e| Error::Unavailable(format!("mongodb client: {e}")))?;
        let db = client.database(&db_name);
        let store = MongoStore {
            snapshots: db.collection(SNAPSHOTS),
            delivered: db.collection(DELIVERED),
            products: db.collection(PRODUCTS),
            nodes: db.collection(NODES),
            shards: db.collection(SHARDS),
            db,
            db_name,
            operation_timeout: OPERATION_TIMEOUT,
            claimer: uuid::Uuid::new_v4().to_string(),
            claim_lease: CLAIM_LEASE,
        };
        store
            .bounded("index creation", store.create_indexes())
            .await
            .map_err(|e| match e {
                Error::Unavailable(reason) => Error::Unavailable(format!(
                    "mongodb at {} unreachable: {reason}",
                    hosts.join(",")
                )),
                other => other,
            })?;
        Ok(store)
    }

    /// Replaces the default bound on every later operation (5 s).
    pub fn with_operation_timeout(mut self, bound: Duration) -> MongoStore {
        self.operation_timeout = bound;
        self
    }

    /// Replaces the default outbox claim lease (30 s): how long the documents a relay read stay
    /// its own if it neither marks them delivered nor reads again (it died).
    pub fn with_claim_lease(mut self, lease: Duration) -> MongoStore {
        self.claim_lease = lease;
        self
    }

    /// Runs one operation, giving it up as `Unavailable` past the operation timeout. A write
    /// given up this way may still be applied, as with any lost acknowledgement.
    async fn bounded<T>(
        &self,
        what: &str,
        operation: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        tokio::time::timeout(self.operation_timeout, operation)
            .await
            .unwrap_or_else(|_| {
                Err(Error::Unavailable(format!(
                    "mongodb {what} gave no answer within {:?}",
                    self.operation_timeout
                )))
            })
    }

    /// The database this store works in.
    pub fn database_name(&self) -> &str {
        &self.db_name
    }

    async fn create_indexes(&self) -> Result<(), Error> {
        let index = |keys: Document, name: &str, unique: bool, sparse: bool| {
            let options = IndexOptions::builder()
                .name(name.to_owned())
                .unique(unique)
                .sparse(sparse)
                .build();
            IndexModel::builder().keys(keys).options(options).build()
        };
        let snapshot_indexes = vec![
            index(doc! { "kind": 1, "key": 1 }, "kind_key", true, false),
            index(doc! { "kind": 1, "owner": 1 }, "kind_owner", false, false),
            index(
                doc! { "outbox.event_id": 1 },
                "outbox_event_id",
                false,
                false,
            ),
            // Only documents with pending events have `outbox_at`: the relay's scan stays small.
            // Single-key: a sparse compound index would hold every document (all have `_id`).
            index(doc! { "outbox_at": 1 }, "outbox_at_pending", false, true),
        ];
        let map = errors::map;
        self.snapshots
            .create_indexes(snapshot_indexes)
            .await
            .map_err(map)?;
        let sku = index(doc! { "sku": 1 }, "sku", true, false);
        self.products.create_index(sku).await.map_err(map)?;
        let delivered_at = index(
            doc! { "delivered_at_ms": 1 },
            "delivered_at_ms",
            false,
            false,
        );
        self.delivered
            .create_index(delivered_at)
            .await
            .map_err(map)?;
        Ok(())
    }
}
