//! Per-SKU stock: pure state machine. `on_hand` is `None` when the SKU's stock is not tracked.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryState {
    pub on_hand: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum InventoryCommand {
    Reserve { quantity: u64 },
    Release { quantity: u64 },
    SetOnHand { on_hand: Option<u64> },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("only {available} in stock, {wanted} wanted")]
pub struct OutOfStock {
    pub available: u64,
    pub wanted: u64,
}

impl InventoryState {
    /// The state after the command, or why it cannot happen. `None` means nothing changes.
    pub fn apply(&self, cmd: &InventoryCommand) -> Result<Option<InventoryState>, OutOfStock> {
        match (cmd, self.on_hand) {
            (InventoryCommand::Reserve { .. } | InventoryCommand::Release { .. }, None) => Ok(None),
            (InventoryCommand::Reserve { quantity }, Some(on_hand)) => {
                if *quantity > on_hand {
                    return Err(OutOfStock {
                        available: on_hand,
                        wanted: *quantity,
                    });
                }
                Ok(Some(Self {
                    on_hand: Some(on_hand - quantity),
                }))
            }
            (InventoryCommand::Release { quantity }, Some(on_hand)) => Ok(Some(Self {
                on_hand: Some(on_hand.saturating_add(*quantity)),
            })),
            (InventoryCommand::SetOnHand { on_hand }, current) => {
                Ok((*on_hand != current).then_some(Self { on_hand: *on_hand }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_and_release_move_stock() {
        let s = InventoryState { on_hand: Some(3) };
        let s = s
            .apply(&InventoryCommand::Reserve { quantity: 2 })
            .unwrap()
            .unwrap();
        assert_eq!(s.on_hand, Some(1));
        assert_eq!(
            s.apply(&InventoryCommand::Reserve { quantity: 2 }),
            Err(OutOfStock {
                available: 1,
                wanted: 2
            })
        );
        let s = s
            .apply(&InventoryCommand::Release { quantity: 2 })
            .unwrap()
            .unwrap();
        assert_eq!(s.on_hand, Some(3));
    }

    #[test]
    fn untracked_stock_never_runs_out() {
        let s = InventoryState::default();
        assert_eq!(
            s.apply(&InventoryCommand::Reserve { quantity: u64::MAX }),
            Ok(None)
        );
        assert_eq!(
            s.apply(&InventoryCommand::SetOnHand { on_hand: None }),
            Ok(None)
        );
        let tracked = s
            .apply(&InventoryCommand::SetOnHand { on_hand: Some(5) })
            .unwrap();
        assert_eq!(tracked, Some(InventoryState { on_hand: Some(5) }));
    }
}
