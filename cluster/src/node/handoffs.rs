//! Performing a plan's handoffs: hold, drain together, passivate, transfer per destination.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Instant;

use emporium_persistence::NodeRef;

use super::{change_of, wall_ms, Node};
use crate::handoff::{Action, Event};
use crate::reconcile::node_ref;
use crate::shard_map::{NodeId, ShardId};
use crate::stats::HandoffRecord;
use crate::wire::OwnerChange;

impl Node {
    /// The handoffs of one plan: hold new commands for every shard leaving → drain them all
    /// together (a command in flight on one may issue commands to another, which are served
    /// until all are idle at once) → passivate their actors → one conditional transfer per
    /// destination, written concurrently.
    pub(super) async fn hand_off(
        &self,
        handoffs: BTreeMap<Option<NodeRef>, Vec<u32>>,
    ) -> Vec<OwnerChange> {
        let started = Instant::now();
        let me = node_ref(self.me());
        let mut batches: Vec<(Option<NodeRef>, Vec<ShardId>)> = Vec::new();
        for (to, shards) in handoffs {
            let target = to.map(|t| NodeId {
                ordinal: t.ordinal,
                generation: t.generation,
            });
            let ids: Vec<ShardId> = shards
                .iter()
                .map(|s| ShardId(*s))
                .filter(|s| {
                    self.0.ownership.apply(*s, Event::Release { to: target }) == Some(Action::Drain)
                })
                .collect();
            if !ids.is_empty() {
                batches.push((to, ids));
            }
        }
        let all: Vec<ShardId> = batches.iter().flat_map(|(_, ids)| ids.clone()).collect();
        if all.is_empty() {
            return Vec::new();
        }
        if !self
            .0
            .ownership
            .drain_all(&all, self.0.options.drain_bound)
            .await
        {
            tracing::warn!(shards = all.len(), "commands still in flight after the drain bound; handing off anyway (their writes are fenced)");
        }
        self.passivate(all.iter().copied().collect());
        let writes = batches.iter().map(|(to, ids)| async move {
            let raw: Vec<u32> = ids.iter().map(|s| s.0).collect();
            (*to, ids, self.0.leases.transfer(&raw, Some(me), *to).await)
        });
        let mut written = Vec::new();
        for (to, ids, result) in futures_util::future::join_all(writes).await {
            match result {
                Ok(records) => {
                    let changes: Vec<OwnerChange> = records
                        .iter()
                        .filter(|r| r.owner == to)
                        .map(change_of)
                        .collect();
                    self.apply_changes(&changes);
                    // Shards the transfer did not move (someone else changed them) serve
                    // again until the next read of the store.
                    for s in ids {
                        self.0.ownership.apply(*s, Event::TransferFailed);
                    }
                    let took = started.elapsed();
                    for c in &changes {
                        tracing::debug!(shard = c.shard, from = me.ordinal, to = ?c.owner,
                            epoch = c.epoch, "shard handed off");
                    }
                    self.0.stats.record_handoff(took);
                    let duration_ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
                    tracing::info!(shards = changes.len(), from = me.ordinal,
                        to = ?to.map(|t| t.ordinal), duration_ms, "handed off shards");
                    self.remember(HandoffRecord {
                        shards: changes.len(),
                        from: me.ordinal,
                        to: to.map(|t| t.ordinal),
                        at_ms: wall_ms(),
                        duration_ms,
                    });
                    written.extend(changes);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "writing a handoff failed; serving the shards again");
                    for s in ids {
                        self.0.ownership.apply(*s, Event::TransferFailed);
                    }
                    self.0.reread.store(true, Ordering::Release);
                }
            }
        }
        written
    }

    fn remember(&self, record: HandoffRecord) {
        let mut history = self
            .0
            .history
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if history.len() >= 20 {
            history.pop_front();
        }
        history.push_back(record);
    }
}
