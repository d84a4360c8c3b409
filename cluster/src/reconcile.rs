//! What this node should do about ownership, decided from what it knows: a pure function of the
//! shard records, the node records, the discovered ordinals and the time. The control loop
//! performs the plan (claims and handoffs are conditional writes, so a plan made on a stale view
//! fails harmlessly and is made again).
//!
//! - **Live members** are the discovered ordinals whose current generation holds an unexpired
//!   lease and is not leaving (this node counts itself unless it is leaving).
//! - The **desired owner** of a shard is the rendezvous winner among the live members.
//! - A shard is **claimed** by its desired owner when nobody holds it, or when its holder's claim
//!   has expired (the holder's lease ran out, or a newer generation of its ordinal registered and
//!   the old one's last lease ran out: a restarted pod's shards wait for its previous life's
//!   lease, so a zombie of it can no longer be serving them).
//! - A shard this node serves but should not is **handed off** to its desired owner (or released
//!   when nobody is live), after the commands in flight on it finish.

use std::collections::{BTreeMap, BTreeSet};

use emporium_persistence::{NodeRecord, NodeRef, ShardRecord};

use crate::handoff::ShardState;
use crate::shard_map::{NodeId, ShardId, ShardMap};

/// The ownership changes to make now.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Shards to claim, grouped by their current holder (`None`: unowned).
    pub claims: BTreeMap<Option<NodeRef>, Vec<u32>>,
    /// Shards to hand off, grouped by their new owner (`None`: release them).
    pub handoffs: BTreeMap<Option<NodeRef>, Vec<u32>>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.claims.is_empty() && self.handoffs.is_empty()
    }
}

/// What the plan is made from.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    pub me: NodeId,
    pub leaving: bool,
    pub map: ShardMap,
    /// This node's table, indexed by shard.
    pub states: &'a [ShardState],
    /// The store's shard records (any order; missing shards are skipped).
    pub records: &'a [ShardRecord],
    pub nodes: &'a [NodeRecord],
    pub discovered: &'a BTreeSet<u32>,
    /// Wall-clock milliseconds (the clock leases are written in).
    pub now_ms: u64,
}

pub fn node_ref(id: NodeId) -> NodeRef {
    NodeRef {
        ordinal: id.ordinal,
        generation: id.generation,
    }
}

/// The live members: discovered, current generation, lease unexpired, not leaving.
pub fn live_members(view: &View<'_>) -> BTreeMap<u32, NodeRef> {
    let mut live: BTreeMap<u32, NodeRef> = view
        .nodes
        .iter()
        .filter(|n| {
            view.discovered.contains(&n.ordinal) && !n.leaving && n.lease_until_ms > view.now_ms
        })
        .map(|n| {
            (
                n.ordinal,
                NodeRef {
                    ordinal: n.ordinal,
                    generation: n.generation,
                },
            )
        })
        .collect();
    if view.leaving {
        live.remove(&view.me.ordinal);
    } else {
        live.insert(view.me.ordinal, node_ref(view.me));
    }
    live
}

/// Whether `holder` can no longer be serving: its lease ran out (for a generation superseded by
/// a newer one, the lease it held when that one registered).
pub fn claim_expired(holder: NodeRef, nodes: &[NodeRecord], now_ms: u64) -> bool {
    match nodes.iter().find(|n| n.ordinal == holder.ordinal) {
        None => true,
        Some(n) if n.generation == holder.generation => n.lease_until_ms <= now_ms,
        Some(n) if n.generation > holder.generation => n.superseded_until_ms <= now_ms,
        // A record older than the holder: the store lags what a peer told us; wait.
        Some(_) => false,
    }
}

pub fn plan(view: &View<'_>) -> Plan {
    let live = live_members(view);
    let me = node_ref(view.me);
    let mut out = Plan::default();
    for record in view.records {
        let shard = ShardId(record.shard);
        if record.shard >= view.map.shard_count() {
            continue;
        }
        let desired = ShardMap::desired_owner(shard, live.keys().copied())
            .and_then(|o| live.get(&o).copied());
        let state = view
            .states
            .get(record.shard as usize)
            .copied()
            .unwrap_or(ShardState::Unknown);
        match state {
            ShardState::Serving { .. } if desired != Some(me) => {
                out.handoffs.entry(desired).or_default().push(record.shard);
            }
            ShardState::Serving { .. } | ShardState::Draining { .. } => {}
            _ if desired == Some(me) && record.owner != Some(me) => {
                let free = match record.owner {
                    None => true,
                    Some(holder) => claim_expired(holder, view.nodes, view.now_ms),
                };
                if free {
                    out.claims
                        .entry(record.owner)
                        .or_default()
                        .push(record.shard);
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard_map::Epoch;

    const ME: NodeId = NodeId {
        ordinal: 0,
        generation: 3,
    };

    fn node(ordinal: u32, generation: u64, lease_until_ms: u64) -> NodeRecord {
        NodeRecord {
            ordinal,
            generation,
            address: format!("127.0.0.{}:7070", 11 + ordinal),
            lease_until_ms,
            leaving: false,
            superseded_until_ms: 0,
        }
    }

    fn r(ordinal: u32, generation: u64) -> NodeRef {
        NodeRef {
            ordinal,
            generation,
        }
    }

    struct Case {
        states: Vec<ShardState>,
        records: Vec<ShardRecord>,
        nodes: Vec<NodeRecord>,
        discovered: BTreeSet<u32>,
    }

    impl Case {
        fn new(shards: u32, owners: impl Fn(u32) -> Option<NodeRef>) -> Self {
            let records: Vec<ShardRecord> = (0..shards)
                .map(|s| ShardRecord {
                    shard: s,
                    owner: owners(s),
                    epoch: 1,
                })
                .collect();
            let states = records
                .iter()
                .map(|r| match r.owner {
                    Some(o) if o == node_ref(ME) => ShardState::Serving { epoch: Epoch(1) },
                    Some(o) => ShardState::Remote {
                        owner: o.ordinal,
                        epoch: Epoch(1),
                    },
                    None => ShardState::Unowned { epoch: Epoch(1) },
                })
                .collect();
            Self {
                states,
                records,
                nodes: vec![node(0, 3, 10_000), node(1, 1, 10_000), node(2, 1, 10_000)],
                discovered: [0, 1, 2].into(),
            }
        }

        fn plan(&self, leaving: bool, now_ms: u64) -> Plan {
            plan(&View {
                me: ME,
                leaving,
                map: ShardMap::new(self.records.len() as u32).unwrap(),
                states: &self.states,
                records: &self.records,
                nodes: &self.nodes,
                discovered: &self.discovered,
                now_ms,
            })
        }
    }

    fn desired(shard: u32, live: &[u32]) -> u32 {
        ShardMap::desired_owner(ShardId(shard), live.iter().copied()).unwrap()
    }

    #[test]
    fn a_settled_cluster_plans_nothing() {
        let case = Case::new(64, |s| {
            Some(r(
                desired(s, &[0, 1, 2]),
                if desired(s, &[0, 1, 2]) == 0 { 3 } else { 1 },
            ))
        });
        assert!(case.plan(false, 1_000).is_empty());
    }

    #[test]
    fn unowned_shards_are_claimed_by_their_desired_owner_only() {
        let case = Case::new(64, |_| None);
        let plan = case.plan(false, 1_000);
        let mine: Vec<u32> = (0..64).filter(|s| desired(*s, &[0, 1, 2]) == 0).collect();
        assert_eq!(plan.claims.get(&None), Some(&mine));
        assert!(plan.handoffs.is_empty());
    }

    #[test]
    fn a_leaving_node_hands_every_shard_to_its_stand_in() {
        let case = Case::new(64, |s| {
            Some(if desired(s, &[0, 1, 2]) == 0 {
                r(0, 3)
            } else {
                r(desired(s, &[0, 1, 2]), 1)
            })
        });
        let plan = case.plan(true, 1_000);
        assert!(plan.claims.is_empty());
        let mut handed = 0;
        for (to, shards) in &plan.handoffs {
            let to = to.unwrap();
            for s in shards {
                assert_eq!(to.ordinal, desired(*s, &[1, 2]));
                handed += 1;
            }
        }
        assert_eq!(
            handed,
            (0..64).filter(|s| desired(*s, &[0, 1, 2]) == 0).count()
        );
    }

    #[test]
    fn the_last_node_leaving_releases_its_shards() {
        let mut case = Case::new(16, |_| Some(r(0, 3)));
        case.nodes = vec![node(0, 3, 10_000)];
        case.discovered = [0].into();
        let plan = case.plan(true, 1_000);
        assert_eq!(plan.handoffs.get(&None).map(Vec::len), Some(16));
    }

    #[test]
    fn a_dead_holders_shards_wait_for_its_lease_then_go_to_their_stand_ins() {
        // Node 2 stopped renewing at 10_000; it is no longer live after that.
        let mut case = Case::new(64, |s| {
            let o = desired(s, &[0, 1, 2]);
            Some(r(o, if o == 0 { 3 } else { 1 }))
        });
        case.nodes[1].lease_until_ms = 20_000;
        // Before expiry node 2 is still live: nothing to do.
        assert!(case.plan(false, 9_000).is_empty());
        let plan = case.plan(false, 10_001);
        let expected: Vec<u32> = (0..64)
            .filter(|s| desired(*s, &[0, 1, 2]) == 2 && desired(*s, &[0, 1]) == 0)
            .collect();
        assert_eq!(plan.claims.get(&Some(r(2, 1))), Some(&expected));
    }

    #[test]
    fn a_restarted_ordinals_old_shards_wait_for_its_previous_lease() {
        let mut case = Case::new(64, |s| {
            let o = desired(s, &[0, 1, 2]);
            Some(r(o, if o == 0 { 3 } else { 1 }))
        });
        // Node 1 restarted as generation 2 at 5_000; its previous life's lease ran to 9_000.
        case.nodes[1] = NodeRecord {
            generation: 2,
            superseded_until_ms: 9_000,
            ..node(1, 2, 20_000)
        };
        // Node 1 (generation 2) is live and desired for its old shards; this node claims none.
        assert!(case.plan(false, 6_000).claims.is_empty());
        assert!(claim_expired(r(1, 1), &case.nodes, 9_001));
        assert!(!claim_expired(r(1, 1), &case.nodes, 8_999));
        assert!(!claim_expired(r(1, 2), &case.nodes, 8_999));
    }

    #[test]
    fn an_undiscovered_node_is_not_a_member() {
        let mut case = Case::new(64, |_| None);
        case.discovered = [0, 1].into();
        let plan = case.plan(false, 1_000);
        let mine: Vec<u32> = (0..64).filter(|s| desired(*s, &[0, 1]) == 0).collect();
        assert_eq!(plan.claims.get(&None), Some(&mine));
    }
}
