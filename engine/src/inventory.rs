//! Per-SKU stock: pure state machine. `on_hand` is `None` when the SKU's stock is not tracked.
//! A reservation may be keyed by its checkout (a hold): reserving again under the same key, or
//! releasing it twice, changes nothing, so a checkout can repeat either when an attempt's outcome
//! was lost. A hold names the order its checkout stores; one older than the hold timeout belongs
//! to a checkout that will never store its order any more, and is settled against the store: kept
//! (forgotten, its stock stays sold) if the order is there, given back if it is not.

use serde::{Deserialize, Serialize};

/// How many holds a SKU remembers. A new hold on a full list settles the timed-out ones first;
/// only when none has timed out is the oldest forgotten (its stock left taken, never oversold).
pub const MAX_HOLDS: usize = 256;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryState {
    pub on_hand: Option<u64>,
    /// Reservations taken under a checkout's key, oldest first.
    pub holds: Vec<Hold>,
}

/// A reservation keyed by its checkout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub key: u64,
    pub quantity: u64,
    /// The order its checkout stores (the UUID's bits): what settles the hold once it times out.
    /// `None` for holds taken without one; those are only ever given back or forgotten.
    pub order: Option<u128>,
    /// When it was taken or last reserved again by its checkout (owner's clock, Unix ms).
    pub at_ms: u64,
}

/// The stored layout before holds.
#[derive(Deserialize)]
pub(crate) struct InventoryStateV1 {
    on_hand: Option<u64>,
}

impl From<InventoryStateV1> for InventoryState {
    fn from(v1: InventoryStateV1) -> Self {
        Self {
            on_hand: v1.on_hand,
            holds: Vec::new(),
        }
    }
}

/// The stored layout before holds named their order.
#[derive(Deserialize)]
pub(crate) struct InventoryStateV2 {
    on_hand: Option<u64>,
    holds: Vec<(u64, u64)>,
}

impl From<InventoryStateV2> for InventoryState {
    fn from(v2: InventoryStateV2) -> Self {
        Self {
            on_hand: v2.on_hand,
            holds: v2
                .holds
                .into_iter()
                .map(|(key, quantity)| Hold {
                    key,
                    quantity,
                    order: None,
                    at_ms: 0,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum InventoryCommand {
    /// `hold`: the checkout's key, making the reservation idempotent. Checkouts reserve with
    /// `ReserveFor`; this is read from peers of builds that did not, during a rolling deploy.
    Reserve {
        quantity: u64,
        hold: Option<u64>,
    },
    /// With `hold`, gives back exactly what that hold reserved (if it still stands).
    Release {
        quantity: u64,
        hold: Option<u64>,
    },
    SetOnHand {
        on_hand: Option<u64>,
    },
    /// Reserves under the hold `hold` of the checkout storing `order`. Reserving again under it
    /// takes nothing more but renews the hold's time: its checkout is still running.
    ReserveFor {
        quantity: u64,
        hold: u64,
        order: u128,
    },
}

/// What the store says of an expired hold's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The order is stored: the hold is forgotten, its stock stays sold.
    Stored,
    /// The order is not stored and never will be: the stock comes back.
    Absent,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("only {available} in stock, {wanted} wanted")]
pub struct OutOfStock {
    pub available: u64,
    pub wanted: u64,
}

impl InventoryState {
    fn hold(&self, key: u64) -> Option<&Hold> {
        self.holds.iter().find(|h| h.key == key)
    }

    fn without(&self, key: u64) -> Vec<Hold> {
        self.holds
            .iter()
            .filter(|h| h.key != key)
            .copied()
            .collect()
    }

    /// `self` with `quantity` more taken under `hold`, or why there is not enough.
    fn reserved(
        &self,
        on_hand: u64,
        quantity: u64,
        hold: Option<Hold>,
    ) -> Result<Self, OutOfStock> {
        if quantity > on_hand {
            return Err(OutOfStock {
                available: on_hand,
                wanted: quantity,
            });
        }
        let mut holds = self.holds.clone();
        if let Some(hold) = hold {
            if holds.len() >= MAX_HOLDS {
                holds.remove(0);
            }
            holds.push(hold);
        }
        Ok(Self {
            on_hand: Some(on_hand - quantity),
            holds,
        })
    }

    /// The state after the command at `now_ms`, or why it cannot happen. `None`: nothing changes.
    pub fn apply(
        &self,
        cmd: &InventoryCommand,
        now_ms: u64,
    ) -> Result<Option<InventoryState>, OutOfStock> {
        let Some(on_hand) = self.on_hand else {
            return Ok(match cmd {
                InventoryCommand::SetOnHand { on_hand: Some(n) } => Some(Self {
                    on_hand: Some(*n),
                    holds: self.holds.clone(),
                }),
                _ => None,
            });
        };
        match cmd {
            InventoryCommand::Reserve {
                hold: Some(key), ..
            } if self.hold(*key).is_some() => Ok(None),
            InventoryCommand::Reserve { quantity, hold } => {
                let hold = hold.map(|key| Hold {
                    key,
                    quantity: *quantity,
                    order: None,
                    at_ms: now_ms,
                });
                self.reserved(on_hand, *quantity, hold).map(Some)
            }
            InventoryCommand::ReserveFor { hold: key, .. } if self.hold(*key).is_some() => {
                let holds = self.holds.iter().map(|h| Hold {
                    at_ms: if h.key == *key { now_ms } else { h.at_ms },
                    ..*h
                });
                Ok(Some(Self {
                    on_hand: self.on_hand,
                    holds: holds.collect(),
                }))
            }
            InventoryCommand::ReserveFor {
                quantity,
                hold,
                order,
            } => {
                let hold = Hold {
                    key: *hold,
                    quantity: *quantity,
                    order: Some(*order),
                    at_ms: now_ms,
                };
                self.reserved(on_hand, *quantity, Some(hold)).map(Some)
            }
            InventoryCommand::Release {
                hold: Some(key), ..
            } => Ok(self.hold(*key).map(|held| Self {
                on_hand: Some(on_hand.saturating_add(held.quantity)),
                holds: self.without(*key),
            })),
            InventoryCommand::Release {
                quantity,
                hold: None,
            } => Ok(Some(Self {
                on_hand: Some(on_hand.saturating_add(*quantity)),
                holds: self.holds.clone(),
            })),
            InventoryCommand::SetOnHand { on_hand: set } => {
                Ok((*set != self.on_hand).then(|| Self {
                    on_hand: *set,
                    holds: self.holds.clone(),
                }))
            }
        }
    }

    /// Up to `limit` of the holds taken `timeout_ms` or longer before `now_ms` that name their
    /// order, oldest first: their checkouts will not store an order any more, so the store can
    /// tell what became of them.
    pub fn expired(&self, now_ms: u64, timeout_ms: u64, limit: usize) -> Vec<(u64, u128)> {
        self.holds
            .iter()
            .filter(|h| now_ms.saturating_sub(h.at_ms) >= timeout_ms)
            .filter_map(|h| h.order.map(|order| (h.key, order)))
            .take(limit)
            .collect()
    }

    /// The state once the holds in `verdicts` are settled: a stored order's hold is forgotten
    /// (its stock stays sold), an absent order's stock comes back. `None`: nothing changes.
    pub fn settled(&self, verdicts: &[(u64, Verdict)]) -> Option<InventoryState> {
        let mut next = self.clone();
        for (key, verdict) in verdicts {
            let Some(held) = next.hold(*key).copied() else {
                continue;
            };
            if *verdict == Verdict::Absent {
                next.on_hand = next.on_hand.map(|n| n.saturating_add(held.quantity));
            }
            next.holds = next.without(*key);
        }
        (next != *self).then_some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reserve(quantity: u64) -> InventoryCommand {
        InventoryCommand::Reserve {
            quantity,
            hold: None,
        }
    }

    fn tracked(on_hand: u64) -> InventoryState {
        InventoryState {
            on_hand: Some(on_hand),
            holds: Vec::new(),
        }
    }

    #[test]
    fn reserve_and_release_move_stock() {
        let s = tracked(3).apply(&reserve(2), 0).unwrap().unwrap();
        assert_eq!(s.on_hand, Some(1));
        assert_eq!(
            s.apply(&reserve(2), 0),
            Err(OutOfStock {
                available: 1,
                wanted: 2
            })
        );
        let release = InventoryCommand::Release {
            quantity: 2,
            hold: None,
        };
        let s = s.apply(&release, 0).unwrap().unwrap();
        assert_eq!(s.on_hand, Some(3));
    }

    #[test]
    fn a_checkouts_hold_is_taken_once_and_given_back_once() {
        let take = InventoryCommand::Reserve {
            quantity: 2,
            hold: Some(7),
        };
        let give = InventoryCommand::Release {
            quantity: 2,
            hold: Some(7),
        };
        let s = tracked(5).apply(&take, 0).unwrap().unwrap();
        assert_eq!(s.on_hand, Some(3));
        assert_eq!(s.apply(&take, 0), Ok(None), "reserving again under the key");
        let s = s.apply(&give, 0).unwrap().unwrap();
        assert_eq!((s.on_hand, s.holds.len()), (Some(5), 0));
        assert_eq!(s.apply(&give, 0), Ok(None), "releasing again under the key");
        // A release under a key that never reserved (the reserve never arrived) gives nothing.
        assert_eq!(tracked(5).apply(&give, 0), Ok(None));
    }

    #[test]
    fn holds_are_bounded() {
        let mut s = tracked(10_000);
        for key in 0..(MAX_HOLDS as u64 + 10) {
            let take = InventoryCommand::Reserve {
                quantity: 1,
                hold: Some(key),
            };
            s = s.apply(&take, 0).unwrap().unwrap();
        }
        assert_eq!(s.holds.len(), MAX_HOLDS);
        assert!(s.hold(0).is_none() && s.hold(MAX_HOLDS as u64 + 9).is_some());
    }

    #[test]
    fn untracked_stock_never_runs_out() {
        let s = InventoryState::default();
        assert_eq!(s.apply(&reserve(u64::MAX), 0), Ok(None));
        assert_eq!(
            s.apply(&InventoryCommand::SetOnHand { on_hand: None }, 0),
            Ok(None)
        );
        let tracked = s
            .apply(&InventoryCommand::SetOnHand { on_hand: Some(5) }, 0)
            .unwrap();
        assert_eq!(
            tracked,
            Some(InventoryState {
                on_hand: Some(5),
                holds: Vec::new()
            })
        );
    }

    fn reserve_for(quantity: u64, order: u128) -> InventoryCommand {
        InventoryCommand::ReserveFor {
            quantity,
            hold: order as u64,
            order,
        }
    }

    #[test]
    fn a_hold_expires_only_after_the_timeout_since_its_checkout_last_reserved() {
        let s = tracked(10)
            .apply(&reserve_for(3, 7), 1_000)
            .unwrap()
            .unwrap();
        assert_eq!(s.on_hand, Some(7));
        assert!(s.expired(60_999, 60_000, 8).is_empty());
        assert_eq!(s.expired(61_000, 60_000, 8), vec![(7, 7)]);
        // The checkout reserving again (a retry under the same key) takes nothing more and
        // renews the hold.
        let again = s.apply(&reserve_for(3, 7), 50_000).unwrap().unwrap();
        assert_eq!(again.on_hand, Some(7));
        assert!(again.expired(61_000, 60_000, 8).is_empty());
        assert_eq!(again.expired(110_000, 60_000, 8), vec![(7, 7)]);
        // Holds that name no order are never settled against the store.
        let anonymous = InventoryCommand::Reserve {
            quantity: 1,
            hold: Some(9),
        };
        let s = again.apply(&anonymous, 0).unwrap().unwrap();
        assert_eq!(s.expired(u64::MAX, 60_000, 8), vec![(7, 7)]);
    }

    #[test]
    fn settling_keeps_a_stored_orders_stock_and_gives_back_an_absent_ones() {
        let s = tracked(10)
            .apply(&reserve_for(3, 1), 0)
            .and_then(|s| s.unwrap_or_default().apply(&reserve_for(2, 2), 0))
            .unwrap()
            .unwrap();
        assert_eq!(s.on_hand, Some(5));
        let settled = s
            .settled(&[(1, Verdict::Stored), (2, Verdict::Absent)])
            .unwrap();
        assert_eq!((settled.on_hand, settled.holds.len()), (Some(7), 0));
        // Settling again, or a release arriving late, changes nothing.
        assert_eq!(settled.settled(&[(2, Verdict::Absent)]), None);
        let late = InventoryCommand::Release {
            quantity: 2,
            hold: Some(2),
        };
        assert_eq!(settled.apply(&late, 0), Ok(None));
    }

    #[test]
    fn stock_stored_before_holds_named_their_order_still_reads() {
        // Format 2: on_hand, then holds as (key, quantity).
        let v2 = bincode::serialize(&(Some(5u64), vec![(42u64, 2u64)])).unwrap();
        let s: InventoryState = bincode::deserialize::<InventoryStateV2>(&v2)
            .unwrap()
            .into();
        assert_eq!(s.on_hand, Some(5));
        assert_eq!(
            s.holds,
            vec![Hold {
                key: 42,
                quantity: 2,
                order: None,
                at_ms: 0
            }]
        );
        assert!(
            s.expired(u64::MAX, 1, 8).is_empty(),
            "never settled: no order to look up"
        );
    }
}
