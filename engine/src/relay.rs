//! The outbox relay: reads undelivered events in order, hands each to a sink, and marks it
//! delivered only after the sink accepted it. A crash between the two re-sends (at least once);
//! nothing is lost. The embedded default's sink is [`InProcessSink`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use emporium_persistence::{EventSink, OutboxEntry};
use tokio::sync::broadcast;
use tracing::Instrument as _;

use crate::clock::now_ms;
use crate::order::OrderEvent;
use crate::{codec, Engine};

const BATCH: usize = 256;

/// Decodes an outbox payload written by the order actor.
pub fn decode_order_event(payload: &[u8]) -> Result<OrderEvent, crate::Error> {
    codec::decode(payload)
}

/// Delivers events to subscribers in this process (and to the log).
pub struct InProcessSink {
    tx: broadcast::Sender<OrderEvent>,
}

impl Default for InProcessSink {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(1024).0,
        }
    }
}

impl InProcessSink {
    pub fn subscribe(&self) -> broadcast::Receiver<OrderEvent> {
        self.tx.subscribe()
    }
}

#[async_trait]
impl EventSink for InProcessSink {
    fn name(&self) -> &'static str {
        "in-process"
    }

    async fn publish(&self, entries: &[OutboxEntry]) -> Result<(), emporium_persistence::Error> {
        for entry in entries {
            match codec::decode::<OrderEvent>(&entry.payload) {
                Ok(event) => {
                    tracing::info!(event = %entry.routing_key, event_id = %entry.event_id,
                        order = %event.order.id, "order event");
                    // No subscriber is fine: the event stays in the outbox as delivered.
                    let _ = self.tx.send(event);
                }
                Err(e) => {
                    tracing::error!(event_id = %entry.event_id, error = %e, "undecodable outbox event kept as delivered");
                }
            }
        }
        Ok(())
    }
}

/// Counters of the relay, read by `/metrics` (the sink reports its own health).
#[derive(Debug, Default)]
pub struct RelayStats {
    pub delivered: AtomicU64,
    pub failures: AtomicU64,
}

pub struct Relay {
    engine: Engine,
    sink: Arc<dyn EventSink>,
    stats: Arc<RelayStats>,
    retention: Duration,
}

impl Relay {
    pub fn new(engine: Engine, sink: Arc<dyn EventSink>, retention: Duration) -> Self {
        Self {
            engine,
            sink,
            stats: Arc::new(RelayStats::default()),
            retention,
        }
    }

    pub fn stats(&self) -> Arc<RelayStats> {
        self.stats.clone()
    }

    /// Relays until the process ends.
    pub async fn run(self) {
        let mut last_prune = 0u64;
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.relay_batch().await {
                Ok(full) => {
                    backoff = Duration::from_millis(100);
                    if full {
                        continue;
                    }
                }
                Err(e) => {
                    self.stats.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(sink = self.sink.name(), error = %e, retry_in = ?backoff, "relay failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    continue;
                }
            }
            let now = now_ms();
            if now.saturating_sub(last_prune) > 60_000 {
                last_prune = now;
                let cutoff = now
                    .saturating_sub(u64::try_from(self.retention.as_millis()).unwrap_or(u64::MAX));
                match self.engine.stores().outbox.prune_delivered(cutoff).await {
                    // A store prunes a bounded number per call: while it finds some, come back
                    // in a second rather than a minute.
                    Ok(pruned) if pruned > 0 => last_prune = now.saturating_sub(59_000),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "pruning delivered events failed"),
                }
            }
            let _ =
                tokio::time::timeout(Duration::from_secs(1), self.engine.outbox_changed()).await;
        }
    }

    /// Relays one batch; returns whether it was full (more may be waiting).
    async fn relay_batch(&self) -> Result<bool, String> {
        let outbox = &self.engine.stores().outbox;
        let batch = outbox.pending(BATCH).await.map_err(|e| e.to_string())?;
        if batch.is_empty() {
            return Ok(false);
        }
        let entries: Vec<OutboxEntry> = batch.iter().map(|r| r.entry.clone()).collect();
        // An event written by a newer build (a rolling deploy) is for a node that can read it: no
        // sink of this build may drop it as undecodable, so the batch is not handed to one.
        let newer = entries.iter().find(|e| codec::is_newer_format(&e.payload));
        let published = match newer {
            Some(e) => Err(format!("event {} was written by a newer build", e.event_id)),
            None => {
                // All or nothing: a batch that failed part-way is sent again whole (at least once).
                let span = tracing::trace_span!(target: "emporium::relay", "relay.publish",
                    otel.name = "relay.publish", sink = self.sink.name(), events = entries.len());
                let published = self.sink.publish(&entries).instrument(span).await;
                published.map_err(|e| e.to_string())
            }
        };
        if let Err(e) = published {
            // Let another node's relay take these now (one that can reach the broker, or read
            // an event of a newer build) instead of when this one's claim lease ends.
            if let Err(release) = outbox.release(&batch).await {
                tracing::debug!(error = %release, "releasing the claimed outbox entries failed");
            }
            return Err(e);
        }
        outbox
            .mark_delivered(&batch, now_ms())
            .await
            .map_err(|e| e.to_string())?;
        self.stats
            .delivered
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(batch.len() == BATCH)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use emporium_cluster::{Ownership, ShardMap};
    use emporium_persistence::testkit::outbox_entry;
    use emporium_persistence::{MemoryStore, Outbox, Stores};

    /// Whatever the sink: an event of a newer build leaves its batch undelivered (for a newer
    /// node), while one corrupt under a known format is skipped and the outbox moves on.
    #[actix_rt::test]
    async fn newer_events_are_left_for_a_newer_node_and_corrupt_ones_skipped() {
        let store = Arc::new(MemoryStore::new());
        let stores = Stores::from_backend(store.clone());
        let map = Ownership::single_node(ShardMap::new(8).unwrap());
        let engine = Engine::start(stores, map, crate::EngineOptions::default())
            .await
            .unwrap();
        let relay = Relay::new(engine, Arc::new(InProcessSink::default()), Duration::ZERO);

        store
            .append(outbox_entry("bad", vec![1, 0xff]))
            .await
            .unwrap();
        assert_eq!(relay.relay_batch().await, Ok(false));
        assert_eq!(store.depth().await, Ok(0));

        store
            .append(outbox_entry("new", vec![2, 0, 0]))
            .await
            .unwrap();
        let newer = relay.relay_batch().await;
        assert!(newer.is_err(), "{newer:?}");
        assert_eq!(store.depth().await, Ok(1));
    }
}
