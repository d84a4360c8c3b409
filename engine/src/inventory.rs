//! Per-SKU stock: pure state machine. `on_hand` is `None` when the SKU's stock is not tracked.
//! A reservation may be keyed by its checkout (a hold): reserving again under the same key, or
//! releasing it twice, changes nothing, so a checkout can repeat either when an attempt's outcome
//! was lost.

use serde::{Deserialize, Serialize};

/// How many holds a SKU remembers (the oldest is forgotten first; a hold is needed only until its
/// checkout has stored its order or given the stock back, well under a second).
pub const MAX_HOLDS: usize = 64;

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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum InventoryCommand {
    /// `hold`: the checkout's key, making the reservation idempotent.
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

    /// The state after the command, or why it cannot happen. `None` means nothing changes.
    pub fn apply(&self, cmd: &InventoryCommand) -> Result<Option<InventoryState>, OutOfStock> {
        match (cmd, self.on_hand) {
            (InventoryCommand::Reserve { .. } | InventoryCommand::Release { .. }, None) => Ok(None),
            (
                InventoryCommand::Reserve {
                    hold: Some(key), ..
                },
                _,
            ) if self.hold(*key).is_some() => Ok(None),
            (InventoryCommand::Reserve { quantity, hold }, Some(on_hand)) => {
                if *quantity > on_hand {
                    return Err(OutOfStock {
                        available: on_hand,
                        wanted: *quantity,
                    });
                }
                let mut holds = self.holds.clone();
                if let Some(key) = hold {
                    if holds.len() >= MAX_HOLDS {
                        holds.remove(0);
                    }
                    holds.push(Hold {
                        key: *key,
                        quantity: *quantity,
                    });
                }
                Ok(Some(Self {
                    on_hand: Some(on_hand - quantity),
                    holds,
                }))
            }
            (
                InventoryCommand::Release {
                    hold: Some(key), ..
                },
                Some(on_hand),
            ) => Ok(self.hold(*key).map(|held| Self {
                on_hand: Some(on_hand.saturating_add(held.quantity)),
                holds: self
                    .holds
                    .iter()
                    .filter(|h| h.key != *key)
                    .copied()
                    .collect(),
            })),
            (
                InventoryCommand::Release {
                    quantity,
                    hold: None,
                },
                Some(on_hand),
            ) => Ok(Some(Self {
                on_hand: Some(on_hand.saturating_add(*quantity)),
                holds: self.holds.clone(),
            })),
            (InventoryCommand::SetOnHand { on_hand }, current) => {
                Ok((*on_hand != current).then(|| Self {
                    on_hand: *on_hand,
                    holds: self.holds.clone(),
                }))
            }
        }
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
        let s = tracked(3).apply(&reserve(2)).unwrap().unwrap();
        assert_eq!(s.on_hand, Some(1));
        assert_eq!(
            s.apply(&reserve(2)),
            Err(OutOfStock {
                available: 1,
                wanted: 2
            })
        );
        let release = InventoryCommand::Release {
            quantity: 2,
            hold: None,
        };
        let s = s.apply(&release).unwrap().unwrap();
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
        let s = tracked(5).apply(&take).unwrap().unwrap();
        assert_eq!(s.on_hand, Some(3));
        assert_eq!(s.apply(&take), Ok(None), "reserving again under the key");
        let s = s.apply(&give).unwrap().unwrap();
        assert_eq!((s.on_hand, s.holds.len()), (Some(5), 0));
        assert_eq!(s.apply(&give), Ok(None), "releasing again under the key");
        // A release under a key that never reserved (the reserve never arrived) gives nothing.
        assert_eq!(tracked(5).apply(&give), Ok(None));
    }

    #[test]
    fn holds_are_bounded() {
        let mut s = tracked(10_000);
        for key in 0..(MAX_HOLDS as u64 + 10) {
            let take = InventoryCommand::Reserve {
                quantity: 1,
                hold: Some(key),
            };
            s = s.apply(&take).unwrap().unwrap();
        }
        assert_eq!(s.holds.len(), MAX_HOLDS);
        assert!(s.hold(0).is_none() && s.hold(MAX_HOLDS as u64 + 9).is_some());
    }

    #[test]
    fn untracked_stock_never_runs_out() {
        let s = InventoryState::default();
        assert_eq!(s.apply(&reserve(u64::MAX)), Ok(None));
        assert_eq!(
            s.apply(&InventoryCommand::SetOnHand { on_hand: None }),
            Ok(None)
        );
        let tracked = s
            .apply(&InventoryCommand::SetOnHand { on_hand: Some(5) })
            .unwrap();
        assert_eq!(
            tracked,
            Some(InventoryState {
                on_hand: Some(5),
                holds: Vec::new()
            })
        );
    }
}
