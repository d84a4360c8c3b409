//! The node's own families: actors, the outbox and its relay, the event sink, the cart cache,
//! the store and its group commits. Read from the counters the engine and the stores keep, at
//! each scrape.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use emporium_engine::{Engine, RelayStats};
use emporium_persistence::{CacheStats, CommitStats, EventSink};
use prometheus::proto::MetricFamily;

use super::family::{Def, ScrapeCollector};

pub const ACTORS_ACTIVE: Def =
    Def::gauge("emporium_actors_active", &["kind"], "Live actors by kind.");
pub const ACTORS_ACTIVATED: Def = Def::counter(
    "emporium_actors_activated_total",
    &["kind"],
    "Actor activations by kind.",
);
pub const ACTORS_PASSIVATED: Def = Def::counter(
    "emporium_actors_passivated_total",
    &["kind"],
    "Actor passivations by kind.",
);
pub const OUTBOX_DEPTH: Def = Def::gauge(
    "emporium_outbox_depth",
    &[],
    "Order events not yet relayed (absent when the store did not answer within 2 s).",
);
pub const STORE_UP: Def = Def::gauge(
    "emporium_store_up",
    &[],
    "Whether the store answered a ping within 2 s at this scrape.",
);
pub const EVENTS_RELAYED: Def = Def::counter(
    "emporium_events_relayed_total",
    &[],
    "Order events handed to the event sink.",
);
pub const RELAY_FAILURES: Def = Def::counter(
    "emporium_relay_failures_total",
    &[],
    "Failed relay attempts.",
);
pub const SINK_UP: Def = Def::gauge(
    "emporium_event_sink_up",
    &[],
    "Whether the event sink was reachable at its last use.",
);
pub const CACHE_HITS: Def = Def::counter(
    "emporium_cart_cache_hits_total",
    &[],
    "Cart activations served from Redis.",
);
pub const CACHE_MISSES: Def = Def::counter(
    "emporium_cart_cache_misses_total",
    &[],
    "Cart activations that went to the store.",
);
pub const CACHE_ERRORS: Def = Def::counter(
    "emporium_cart_cache_errors_total",
    &[],
    "Redis commands that failed or timed out.",
);
pub const CACHE_UP: Def = Def::gauge(
    "emporium_cart_cache_up",
    &[],
    "Whether Redis is in use (0 while it is bypassed after failures).",
);
pub const LOG_APPENDS: Def = Def::counter(
    "emporium_store_log_appends_total",
    &[],
    "Group commits: write-ahead log appends, one sync each.",
);
pub const LOG_APPEND_SECONDS: Def = Def::counter(
    "emporium_store_log_append_seconds_total",
    &[],
    "Time spent appending and syncing the log.",
);
pub const STORE_WRITES: Def = Def::counter(
    "emporium_store_writes_total",
    &[],
    "Writes made durable by group commits (per append: the batch size).",
);
pub const CHECKPOINTS: Def = Def::counter(
    "emporium_store_checkpoints_total",
    &[],
    "Checkpoints (sled flushed, log reset).",
);
pub const CHECKPOINT_SECONDS: Def = Def::counter(
    "emporium_store_checkpoint_seconds_total",
    &[],
    "Time the writer spent in checkpoints.",
);

/// What a scrape learns from the store before gathering (the registry's collectors are
/// synchronous; asking the store is not).
#[derive(Default)]
pub struct ScrapeValues {
    /// `u64::MAX`: unknown.
    outbox_depth: AtomicU64,
    store_up: AtomicU64,
}

impl ScrapeValues {
    pub fn set(&self, outbox_depth: Option<u64>, store_up: bool) {
        self.outbox_depth
            .store(outbox_depth.unwrap_or(u64::MAX), Ordering::Relaxed);
        self.store_up.store(u64::from(store_up), Ordering::Relaxed);
    }
}

/// Where the node's families are read from.
pub struct Sources {
    pub engine: Engine,
    pub relay: Arc<RelayStats>,
    pub sink: Arc<dyn EventSink>,
    pub cache: Option<Arc<CacheStats>>,
    pub commits: Option<Arc<CommitStats>>,
    pub scrape: Arc<ScrapeValues>,
}

fn load(a: &AtomicU64) -> f64 {
    a.load(Ordering::Relaxed) as f64
}

impl Sources {
    pub fn collector(self) -> Result<impl prometheus::core::Collector, prometheus::Error> {
        let defs = [
            &ACTORS_ACTIVE,
            &ACTORS_ACTIVATED,
            &ACTORS_PASSIVATED,
            &OUTBOX_DEPTH,
            &STORE_UP,
            &EVENTS_RELAYED,
            &RELAY_FAILURES,
            &SINK_UP,
            &CACHE_HITS,
            &CACHE_MISSES,
            &CACHE_ERRORS,
            &CACHE_UP,
            &LOG_APPENDS,
            &LOG_APPEND_SECONDS,
            &STORE_WRITES,
            &CHECKPOINTS,
            &CHECKPOINT_SECONDS,
        ];
        ScrapeCollector::new(&defs, move || self.read())
    }

    fn read(&self) -> Vec<MetricFamily> {
        let stats = self.engine.actor_stats();
        let mut active = ACTORS_ACTIVE.family();
        let mut activated = ACTORS_ACTIVATED.family();
        let mut passivated = ACTORS_PASSIVATED.family();
        for (kind, s) in stats.kinds {
            active = active.value(&[kind], s.active() as f64);
            activated = activated.value(&[kind], s.activated_total() as f64);
            passivated = passivated.value(&[kind], s.passivated_total() as f64);
        }
        let mut out = vec![active.done(), activated.done(), passivated.done()];
        let depth = self.scrape.outbox_depth.load(Ordering::Relaxed);
        if depth != u64::MAX {
            out.push(OUTBOX_DEPTH.family().value(&[], depth as f64).done());
        }
        out.push(
            STORE_UP
                .family()
                .value(&[], load(&self.scrape.store_up))
                .done(),
        );
        out.push(
            EVENTS_RELAYED
                .family()
                .value(&[], load(&self.relay.delivered))
                .done(),
        );
        out.push(
            RELAY_FAILURES
                .family()
                .value(&[], load(&self.relay.failures))
                .done(),
        );
        let sink_up = f64::from(u8::from(self.sink.healthy()));
        out.push(SINK_UP.family().value(&[], sink_up).done());
        if let Some(c) = &self.cache {
            let up = f64::from(u8::from(c.healthy.load(Ordering::Relaxed)));
            out.push(CACHE_HITS.family().value(&[], load(&c.hits)).done());
            out.push(CACHE_MISSES.family().value(&[], load(&c.misses)).done());
            out.push(CACHE_ERRORS.family().value(&[], load(&c.errors)).done());
            out.push(CACHE_UP.family().value(&[], up).done());
        }
        if let Some(c) = &self.commits {
            let seconds = |a: &AtomicU64| load(a) / 1e6;
            out.push(LOG_APPENDS.family().value(&[], load(&c.appends)).done());
            out.push(
                LOG_APPEND_SECONDS
                    .family()
                    .value(&[], seconds(&c.append_micros))
                    .done(),
            );
            out.push(STORE_WRITES.family().value(&[], load(&c.writes)).done());
            out.push(CHECKPOINTS.family().value(&[], load(&c.checkpoints)).done());
            out.push(
                CHECKPOINT_SECONDS
                    .family()
                    .value(&[], seconds(&c.checkpoint_micros))
                    .done(),
            );
        }
        out
    }
}
