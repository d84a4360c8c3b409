//! Opening the backends the configuration names: the store (sled in the data dir, or a
//! MongoDB-compatible server shared by every node), the optional Redis cart cache in front of its
//! snapshots, and the event sink (in-process, or RabbitMQ with events as JSON).
//!
//! Deliberately does not: retry at start beyond what the drivers do. A store that cannot be
//! reached stops the start with a message; Redis and RabbitMQ that cannot be reached do not
//! (the cache is bypassed and events wait in the outbox).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use emporium_engine::InProcessSink;
use emporium_persistence::{
    AmqpOptions, AmqpSink, CacheOptions, CacheStats, CachedSnapshots, CommitStats, EventSink,
    MongoStore, SledStore, Stores,
};

use crate::config::{Config, StoreKind};
use crate::events::JsonEvents;

/// What a node runs on, and the handles `/readyz` and `/metrics` read.
pub struct Backends {
    pub stores: Stores,
    /// Group-commit counters of the embedded store.
    pub commits: Option<Arc<CommitStats>>,
    /// The shared store, when there is one (pinged by `/readyz`).
    pub mongo: Option<Arc<MongoStore>>,
    pub cache: Option<Arc<CacheStats>>,
}

/// Opens the configured store and, when configured, the cart cache in front of it.
pub async fn open_stores(config: &Config) -> anyhow::Result<Backends> {
    let mut backends = match config.store_kind().map_err(anyhow::Error::msg)? {
        StoreKind::Sled => {
            std::fs::create_dir_all(&config.data_dir)
                .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
            let store = SledStore::open(&config.data_dir.join("sled")).map_err(|e| {
                anyhow::anyhow!(
                    "cannot open the store in {}: {e} (is another emporium using this data dir?)",
                    config.data_dir.display()
                )
            })?;
            let commits = store.commit_stats();
            Backends {
                stores: Stores::from_backend(Arc::new(store)),
                commits: Some(commits),
                mongo: None,
                cache: None,
            }
        }
        StoreKind::Mongo(uri) => {
            let store = Arc::new(
                MongoStore::connect(&uri)
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot open the MongoDB store: {e}"))?,
            );
            tracing::info!(
                database = store.database_name(),
                "store: MongoDB-compatible"
            );
            Backends {
                stores: Stores::from_backend(store.clone()),
                commits: None,
                mongo: Some(store),
                cache: None,
            }
        }
    };
    if let Some(url) = &config.redis_url {
        // Keys are namespaced by database, so stores sharing one Redis never read each other's.
        let prefix = match &backends.mongo {
            Some(store) => format!("emporium:{}", store.database_name()),
            None => "emporium".to_owned(),
        };
        let options = CacheOptions {
            ttl: Duration::from_secs(config.cart_cache_ttl_secs),
            kinds: vec!["cart"],
            prefix,
            ..CacheOptions::default()
        };
        let cached = CachedSnapshots::new(backends.stores.snapshots.clone(), url, options)
            .map_err(|e| anyhow::anyhow!("redis_url: {e}"))?;
        backends.cache = Some(cached.stats());
        backends.stores.snapshots = Arc::new(cached);
        tracing::info!("cart cache: Redis");
    }
    Ok(backends)
}

/// The event sink: RabbitMQ when configured (events as JSON), else in this process.
pub async fn event_sink(config: &Config) -> anyhow::Result<Arc<dyn EventSink>> {
    let Some(url) = &config.amqp_url else {
        return Ok(Arc::new(InProcessSink::default()));
    };
    let sink =
        AmqpSink::new(url, AmqpOptions::default()).map_err(|e| anyhow::anyhow!("amqp_url: {e}"))?;
    if let Err(e) = sink.connect().await {
        tracing::warn!(error = %e, "RabbitMQ is not reachable yet; order events wait in the outbox");
    }
    Ok(Arc::new(JsonEvents::new(sink)))
}
