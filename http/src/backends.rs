//! Opening the backends the configuration names: the store (sled in the data dir, or a
//! MongoDB-compatible server shared by every node), the optional Redis cart cache in front of its
//! snapshots, and the event sink (in-process, or RabbitMQ with events as JSON).
//!
//! TLS: `rediss://`, `amqps://` and a store URI with `tls=true` connect over rustls, trusting
//! `tls_ca_file` when set (else the system's roots). Each backend is tried once at start.
//!
//! Deliberately does not: retry at start beyond what the drivers do. A store that cannot be
//! reached stops the start with a message; Redis and RabbitMQ that cannot be reached do not
//! (the cache is bypassed and events wait in the outbox), but one that answers in a way no retry
//! can fix — a certificate that does not verify, a server that does not speak TLS, credentials
//! refused — stops the start with a message naming it. After start every failure is an outage.
//! A backend left out of the build (cargo features `mongodb`, `redis`, `amqp`) is refused with a
//! message naming the feature.

use std::sync::Arc;

use anyhow::Context as _;
use emporium_engine::InProcessSink;
use emporium_persistence::{CacheStats, CommitStats, EventSink, SledStore, Stores};

use crate::config::{Config, StoreKind};
use crate::events::Traced;

/// What a node runs on, and the handles `/readyz` and `/metrics` read.
pub struct Backends {
    pub stores: Stores,
    /// Database the shared store uses (namespaces the cache keys); `None` on the embedded store.
    pub database: Option<String>,
    /// Group-commit counters of the embedded store.
    pub commits: Option<Arc<CommitStats>>,
    pub cache: Option<Arc<CacheStats>>,
}

impl Backends {
    /// `sled` or `mongodb`, for `/readyz`.
    pub fn store_name(&self) -> &'static str {
        if self.database.is_some() {
            "mongodb"
        } else {
            "sled"
        }
    }
}

/// How long the start waits for Redis or RabbitMQ to answer its one probe.
const PROBE_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// The PEM text of `tls_ca_file`, read and checked once (`None` when unset).
fn tls_ca(config: &Config) -> anyhow::Result<Option<String>> {
    config
        .tls_ca_file
        .as_deref()
        .map(|path| read_ca_bundle(path).map_err(|e| anyhow::anyhow!("tls_ca_file: {e}")))
        .transpose()
}

#[cfg(any(feature = "redis", feature = "amqp"))]
use emporium_persistence::tls::read_ca_bundle;

#[cfg(not(any(feature = "redis", feature = "amqp")))]
fn read_ca_bundle(path: &std::path::Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
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
                database: None,
                commits: Some(commits),
                cache: None,
            }
        }
        StoreKind::Mongo(uri) => open_mongo(&uri, config.tls_ca_file.as_deref()).await?,
    };
    if let Some(url) = &config.redis_url {
        add_cart_cache(
            &mut backends,
            url,
            config.cart_cache_ttl_secs,
            tls_ca(config)?,
        )
        .await?;
    }
    Ok(backends)
}

#[cfg(feature = "mongodb")]
async fn open_mongo(uri: &str, ca_file: Option<&std::path::Path>) -> anyhow::Result<Backends> {
    let store = emporium_persistence::MongoStore::connect_trusting(uri, ca_file)
        .await
        .map_err(|e| {
            // Said outright, so a failure that is TLS's is read as such.
            let tls = if uri.contains("tls=true") || uri.contains("ssl=true") {
                " over TLS (a certificate the trusted CAs did not sign, or a server that does \
                 not speak TLS, fails here)"
            } else {
                ""
            };
            anyhow::anyhow!("cannot open the MongoDB store{tls}: {e}")
        })?;
    let database = store.database_name().to_owned();
    tracing::info!(%database, "store: MongoDB-compatible");
    Ok(Backends {
        stores: Stores::from_shared_backend(Arc::new(store)),
        database: Some(database),
        commits: None,
        cache: None,
    })
}

#[cfg(not(feature = "mongodb"))]
async fn open_mongo(_uri: &str, _ca_file: Option<&std::path::Path>) -> anyhow::Result<Backends> {
    anyhow::bail!("store: this build has no MongoDB support (cargo feature `mongodb`)")
}

#[cfg(feature = "redis")]
async fn add_cart_cache(
    backends: &mut Backends,
    url: &str,
    ttl_secs: u64,
    tls_ca: Option<String>,
) -> anyhow::Result<()> {
    use emporium_persistence::tls::Reach;
    use emporium_persistence::{CacheOptions, CachedSnapshots};
    // Keys are namespaced by database, so stores sharing one Redis never read each other's.
    let prefix = match &backends.database {
        Some(db) => format!("emporium:{db}"),
        None => "emporium".to_owned(),
    };
    let options = CacheOptions {
        ttl: std::time::Duration::from_secs(ttl_secs),
        kinds: vec!["cart"],
        prefix,
        tls_ca,
        ..CacheOptions::default()
    };
    let cached = CachedSnapshots::new(backends.stores.snapshots.clone(), url, options)
        .map_err(|e| anyhow::anyhow!("redis_url: {e}"))?;
    match cached.probe(PROBE_WITHIN).await {
        Reach::Up => {}
        Reach::Down(why) => tracing::warn!(
            error = %why,
            "Redis is not reachable yet; carts are read from the store until it is"
        ),
        Reach::Misconfigured(why) => {
            anyhow::bail!("redis_url: Redis is reachable but unusable with these settings: {why}")
        }
    }
    backends.cache = Some(cached.stats());
    backends.stores.snapshots = Arc::new(cached);
    tracing::info!("cart cache: Redis");
    Ok(())
}

#[cfg(not(feature = "redis"))]
async fn add_cart_cache(
    _: &mut Backends,
    _url: &str,
    _ttl_secs: u64,
    _tls_ca: Option<String>,
) -> anyhow::Result<()> {
    anyhow::bail!("redis_url: this build has no Redis support (cargo feature `redis`)")
}

/// The event sink: RabbitMQ when configured (events as JSON), else in this process.
pub async fn event_sink(config: &Config) -> anyhow::Result<Arc<dyn EventSink>> {
    match &config.amqp_url {
        None => Ok(Arc::new(Traced::new(InProcessSink::default()))),
        Some(url) => amqp_sink(url, &config.amqp_exchange, tls_ca(config)?).await,
    }
}

#[cfg(feature = "amqp")]
async fn amqp_sink(
    url: &str,
    exchange: &str,
    tls_ca: Option<String>,
) -> anyhow::Result<Arc<dyn EventSink>> {
    use emporium_persistence::tls::Reach;
    use emporium_persistence::{AmqpOptions, AmqpSink};
    let options = AmqpOptions {
        exchange: exchange.to_owned(),
        tls_ca,
        ..AmqpOptions::default()
    };
    let sink = AmqpSink::new(url, options).map_err(|e| anyhow::anyhow!("amqp_url: {e}"))?;
    match sink.probe().await {
        Reach::Up => {}
        Reach::Down(why) => tracing::warn!(
            error = %why,
            "RabbitMQ is not reachable yet; order events wait in the outbox"
        ),
        Reach::Misconfigured(why) => {
            anyhow::bail!("amqp_url: RabbitMQ is reachable but unusable with these settings: {why}")
        }
    }
    Ok(Arc::new(Traced::new(crate::events::JsonEvents::new(sink))))
}

#[cfg(not(feature = "amqp"))]
async fn amqp_sink(
    _url: &str,
    _exchange: &str,
    _tls_ca: Option<String>,
) -> anyhow::Result<Arc<dyn EventSink>> {
    anyhow::bail!("amqp_url: this build has no RabbitMQ support (cargo feature `amqp`)")
}
