//! Starting a node: open the configured store, start the engine and the outbox relay, load the
//! demo catalog on first start, serve HTTP, and shut down in order on SIGTERM.

use std::path::Path;
use std::time::Duration;

use actix_web::{middleware, web, App, HttpServer};
use anyhow::Context as _;
use emporium_engine::catalog::ProductDraft;
use emporium_engine::{Engine, EngineOptions, Relay};
use emporium_persistence::Stores;

use crate::auth::Auth;
use crate::config::Config;
use crate::dto::ProductBody;
use crate::metrics::Metrics;
use crate::AppState;

/// How often a node on a shared store re-reads the catalog (products other nodes wrote).
const CATALOG_REFRESH: Duration = Duration::from_secs(5);

/// The configured secret, or one generated once and kept in the data dir.
fn jwt_secret(config: &Config) -> anyhow::Result<String> {
    if let Some(secret) = &config.jwt_secret {
        return Ok(secret.clone());
    }
    if config.store_kind().map_err(anyhow::Error::msg)? != crate::config::StoreKind::Sled {
        anyhow::bail!(
            "EMPORIUM_JWT_SECRET must be set when the store is shared: every node has to accept \
             the tokens the others issue"
        );
    }
    let path = config.data_dir.join("jwt-secret");
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
    if let Ok(existing) = std::fs::read_to_string(&path) {
        if existing.trim().len() >= 16 {
            return Ok(existing.trim().to_owned());
        }
    }
    let secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    write_private(&path, &secret).with_context(|| format!("cannot write {}", path.display()))?;
    tracing::warn!(path = %path.display(), "EMPORIUM_JWT_SECRET is not set: generated one and kept it in the data dir; set it explicitly when running more than one node");
    Ok(secret)
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()
}

async fn start_engine(
    config: &Config,
    stores: Stores,
    settings: Option<&crate::cluster::Settings>,
) -> anyhow::Result<Engine> {
    let options = EngineOptions {
        idle_timeout: Duration::from_secs(config.idle_timeout_secs),
        max_active_actors: config.max_active_actors,
        currency: config.currency.clone(),
        admin_emails: config.admin_emails.clone(),
        stock_hold_timeout: Duration::from_secs(config.stock_hold_timeout_secs),
    };
    let ownership = crate::cluster::ownership(config, settings)?;
    Engine::start(stores, ownership, options)
        .await
        .map_err(|e| anyhow::anyhow!("cannot start the engine: {e}"))
}

/// Creates or updates products by SKU, and sets their stock when given.
pub async fn import_products(
    engine: &Engine,
    products: Vec<(ProductDraft, Option<Option<u64>>)>,
) -> anyhow::Result<(usize, usize)> {
    let (drafts, stocks): (Vec<_>, Vec<_>) = products.into_iter().unzip();
    let written = engine.catalog().upsert_many(drafts).await?;
    engine.announce_catalog().await;
    let created = written.iter().filter(|(_, created)| *created).count();
    for ((product, _), stock) in written.iter().zip(stocks) {
        if let Some(stock) = stock {
            engine.set_stock(&product.sku, stock).await?;
        }
    }
    Ok((created, written.len() - created))
}

/// `emporium catalog import FILE`: a JSON array of products (or `{"products": [...]}`), in the
/// API's product shape. Runs against the data dir while no server uses it.
pub async fn import_file(config: Config, file: &Path) -> anyhow::Result<()> {
    let text = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let value: serde_json::Value =
        serde_json::from_slice(&text).with_context(|| format!("{} is not JSON", file.display()))?;
    let items = match value {
        serde_json::Value::Array(items) => items,
        serde_json::Value::Object(mut o) => match o.remove("products") {
            Some(serde_json::Value::Array(items)) => items,
            _ => anyhow::bail!("expected an array of products or {{\"products\": [...]}}"),
        },
        _ => anyhow::bail!("expected an array of products or {{\"products\": [...]}}"),
    };
    let mut products = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let body: ProductBody =
            serde_json::from_value(item).with_context(|| format!("product #{}", i + 1))?;
        let (draft, stock) = body
            .into_draft()
            .map_err(|e| anyhow::anyhow!("product #{}: {}", i + 1, e.message))?;
        draft
            .validate()
            .map_err(|e| anyhow::anyhow!("product #{}: {e}", i + 1))?;
        products.push((draft, stock));
    }
    if crate::cluster::Settings::from_config(&config)
        .map_err(anyhow::Error::msg)?
        .is_some()
    {
        anyhow::bail!(
            "catalog import runs against one node's store: unset the cluster settings, or import              through the API of any node of the cluster"
        );
    }
    let stores = crate::backends::open_stores(&config).await?.stores;
    let engine = start_engine(&config, stores, None).await?;
    let (created, updated) = import_products(&engine, products).await?;
    println!(
        "imported {} products: {created} created, {updated} updated",
        created + updated
    );
    Ok(())
}

pub async fn serve(config: Config) -> anyhow::Result<()> {
    let addr = config.listen_addr().map_err(anyhow::Error::msg)?;
    let secret = jwt_secret(&config)?;
    let backends = crate::backends::open_stores(&config).await?;
    let settings = crate::cluster::Settings::from_config(&config).map_err(anyhow::Error::msg)?;
    let engine = start_engine(&config, backends.stores.clone(), settings.as_ref()).await?;
    let member = match (&settings, &backends.stores.leases) {
        (Some(settings), Some(leases)) => {
            Some(crate::cluster::join(settings, &engine, leases.clone()).await?)
        }
        (Some(_), None) => anyhow::bail!("a cluster needs a shared store with shard leases"),
        (None, _) => None,
    };
    if config.demo_catalog && engine.catalog().snapshot().all().is_empty() {
        let demo = emporium_engine::demo::demo_catalog()
            .into_iter()
            .map(|(draft, stock)| (draft, Some(stock)))
            .collect();
        match import_products(&engine, demo).await {
            Ok((created, _)) => tracing::info!(products = created, "loaded the demo catalog"),
            // Another node sharing the store may have loaded it at the same moment.
            Err(e) if backends.database.is_some() => {
                tracing::warn!(error = %e, "loading the demo catalog failed; another node may have loaded it")
            }
            Err(e) => return Err(e),
        }
    }
    if backends.database.is_some() {
        // Other nodes write products to the shared store too.
        let engine = engine.clone();
        actix_web::rt::spawn(async move {
            loop {
                actix_web::rt::time::sleep(CATALOG_REFRESH).await;
                if let Err(e) = engine.catalog().refresh().await {
                    tracing::warn!(error = %e, "refreshing the catalog from the store failed");
                }
            }
        });
    }
    let sink = crate::backends::event_sink(&config).await?;
    let relay = Relay::new(
        engine.clone(),
        sink.clone(),
        Duration::from_secs(config.outbox_retention_secs),
    );
    let state = web::Data::new(AppState {
        engine: engine.clone(),
        auth: Auth::new(secret.as_bytes(), config.token_ttl_secs),
        metrics: Metrics::new()?,
        node: member.as_ref().map(|m| m.node.clone()),
        peer_server: member.as_ref().map(|m| m.peer_server.clone()),
        draining: std::sync::atomic::AtomicBool::new(false),
        relay: relay.stats(),
        sink,
        store_name: backends.store_name(),
        commits: backends.commits,
        cache: backends.cache,
        body: crate::body::Limits {
            bytes: config.body_limit_bytes,
            timeout: Duration::from_secs(config.body_timeout_secs),
        },
    });
    state.metrics.register(
        crate::metrics::node::Sources {
            engine: engine.clone(),
            relay: state.relay.clone(),
            sink: state.sink.clone(),
            cache: state.cache.clone(),
            commits: state.commits.clone(),
            scrape: state.metrics.scrape.clone(),
        }
        .collector()?,
    )?;
    if let Some(node) = &state.node {
        state.metrics.register(
            crate::metrics::cluster::Sources {
                engine: engine.clone(),
                node: node.clone(),
                peer_server: state.peer_server.clone(),
            }
            .collector()?,
        )?;
    }
    actix_web::rt::spawn(relay.run());
    // One core is left to the write path (the log writer and the kernel's sync work): on 2 cores,
    // one HTTP worker measured p99 3.0-3.6 ms against 8-9 ms with two, at slightly higher
    // throughput (BENCHMARKS.md).
    let workers = if config.workers == 0 {
        std::thread::available_parallelism().map_or(1, |n| usize::from(n).saturating_sub(1).max(1))
    } else {
        config.workers
    };
    let origins = config.cors_origins.clone();
    let shutting = state.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .wrap(middleware::from_fn(crate::metrics::record))
            .wrap(middleware::Condition::new(
                !origins.is_empty(),
                cors(&origins),
            ))
            .configure(crate::configure)
    })
    .workers(workers)
    // A request's head gets as long as its body (actix's default is 5 s). The timer starts from a
    // clock actix caches, so after a pause of the process (a frozen VM or container) longer than
    // this, requests that were waiting complete in the socket are answered 408 unread.
    .client_request_timeout(Duration::from_secs(config.body_timeout_secs))
    .disable_signals()
    .shutdown_timeout(30)
    .bind(addr)
    .with_context(|| format!("cannot listen on {addr}"))?
    .run();
    tracing::info!(%addr, workers, "emporium is serving the storefront API");
    let handle = server.handle();
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    actix_web::rt::spawn(async move {
        let superseded = async {
            match &member {
                Some(m) => m.node.superseded().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = shutdown_signal() => {}
            () = superseded => tracing::error!("another process took this node's ordinal; stopping"),
        }
        shutdown(&engine, &shutting, member.as_ref(), grace).await;
        handle.stop(true).await;
        if let Some(m) = &member {
            // Commands peers forwarded here before they learnt of the handoff finish first.
            m.peers_idle(Duration::from_secs(5)).await;
            m.peer_stop.stop();
        }
    });
    server.await.context("http server failed")
}

/// The shutdown sequence. One node: unready, no new commands, then the listener closes after the
/// grace period. A cluster member: unready at once (the load balancer stops sending), still
/// serving for the grace period, then hands every shard to its stand-in (new commands for them
/// are held and forwarded to the new owners) before the listeners close.
async fn shutdown(
    engine: &Engine,
    state: &web::Data<AppState>,
    member: Option<&crate::cluster::Member>,
    grace: Duration,
) {
    state
        .draining
        .store(true, std::sync::atomic::Ordering::Release);
    let Some(member) = member else {
        tracing::info!("shutting down: no new work, draining in-flight requests");
        engine.stop_serving();
        actix_web::rt::time::sleep(grace).await;
        return;
    };
    tracing::info!(
        grace_secs = grace.as_secs(),
        "shutting down: unready, serving through the grace period"
    );
    actix_web::rt::time::sleep(grace).await;
    let started = std::time::Instant::now();
    let handed_off = member.node.leave(HANDOFF_BOUND).await;
    tracing::info!(
        handed_off,
        duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "left the cluster; answering what is still in flight"
    );
    // Requests held during the handoff go to the new owners now; let them, and commands peers
    // forwarded here, finish.
    let held = &engine.ownership().stats().held_now;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while held.load(std::sync::atomic::Ordering::Acquire) > 0
        && std::time::Instant::now() < deadline
    {
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
}

/// How long a leaving node waits for its shards to be handed off.
const HANDOFF_BOUND: Duration = Duration::from_secs(30);

/// CORS for the configured origins (validated at start): the storefront's methods and the headers
/// it sends; `Retry-After` readable by scripts. A request from another origin is still served
/// (non-browser clients send any `Origin`); it just gets no CORS headers, so browsers refuse it.
fn cors(origins: &[String]) -> actix_cors::Cors {
    use actix_web::http::header;
    let mut cors = actix_cors::Cors::default()
        .allowed_methods(["GET", "POST", "PUT", "DELETE"])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::HeaderName::from_static("idempotency-key"),
        ])
        .expose_headers([header::RETRY_AFTER])
        .max_age(3600);
    for origin in origins {
        cors = if origin == "*" {
            cors.allow_any_origin()
        } else {
            cors.allowed_origin(origin)
        };
    }
    cors
}

pub(crate) async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
        }
        _ => {
            tracing::warn!("cannot install signal handlers; stop with SIGKILL");
            std::future::pending::<()>().await;
        }
    }
}
