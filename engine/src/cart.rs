//! The cart state machine: pure, no I/O. One cart per user.

use std::sync::Arc;

use litemap::LiteMap;

use serde::{Deserialize, Serialize};

/// The largest quantity of one line; anything above is a client error, not a stock question.
pub const MAX_LINE_QUANTITY: u32 = 10_000;
/// The most distinct lines one cart may hold.
pub const MAX_LINES: usize = 500;

/// The strings are shared (`Arc<str>`), so the copy of the state each change makes costs
/// reference counts, not an allocation per string; they encode exactly as `String`s do.
/// How long a cart remembers an add's operation id: longer than a forwarded add is sent again
/// after its outcome was lost (the engine gives up after 20 s).
pub const OP_MEMORY_MS: u64 = 60_000;
/// At most this many remembered operations (a cart receiving adds faster than this per minute
/// forgets the oldest first).
pub const MAX_OPS: usize = 256;

/// An add's operation id and when it was issued (milliseconds since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    pub id: u64,
    pub at_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartState {
    /// Keyed by SKU, so lines come out sorted by SKU. A sorted vector rather than a B-tree: a
    /// cart has a few lines, and a B-tree node has room for eleven (a one-line cart held ~450
    /// bytes more per live actor). Stored bytes are the same either way (bincode writes a map
    /// and a sequence of pairs alike).
    pub lines: LiteMap<Arc<str>, CartLine>,
    /// The adds applied in the last [`OP_MEMORY_MS`], oldest first: an add sent again after its
    /// outcome was lost (a forwarded command whose owner froze) is recognised and not applied
    /// twice.
    pub ops: Vec<Op>,
}

/// The stored layout before carts remembered operation ids.
#[derive(Deserialize)]
pub(crate) struct CartStateV1 {
    lines: LiteMap<Arc<str>, CartLine>,
}

impl From<CartStateV1> for CartState {
    fn from(v1: CartStateV1) -> Self {
        Self {
            lines: v1.lines,
            ops: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartLine {
    pub product_id: Arc<str>,
    pub quantity: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CartCommand {
    /// `available` is the tracked stock of the SKU, `None` when stock is not tracked. `op`, when
    /// given, makes the add idempotent: an op the cart has applied is not applied again.
    Add {
        sku: String,
        product_id: String,
        quantity: i64,
        available: Option<u64>,
        op: Option<Op>,
    },
    /// A quantity of 0 or less removes the line.
    SetQuantity {
        sku: String,
        quantity: i64,
        available: Option<u64>,
    },
    Remove {
        sku: String,
    },
    Clear,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CartEvent {
    QuantityChanged {
        sku: String,
        product_id: String,
        quantity: u32,
    },
    LineRemoved {
        sku: String,
    },
    Cleared,
    /// An add with an operation id was applied.
    OpApplied(Op),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum Error {
    #[error("quantity must be between 1 and {MAX_LINE_QUANTITY}, got {0}")]
    BadQuantity(i64),
    #[error("only {available} of {sku} in stock, the cart would hold {wanted}")]
    NotEnoughStock {
        sku: String,
        available: u64,
        wanted: u64,
    },
    #[error("{0} is not in the cart")]
    NotInCart(String),
    #[error("a cart holds at most {MAX_LINES} different products")]
    TooManyLines,
}

impl CartState {
    /// Decides what a command changes. Never mutates; [`CartState::evolve`] applies the result.
    pub fn apply(&self, cmd: &CartCommand) -> Result<Vec<CartEvent>, Error> {
        match cmd {
            CartCommand::Add {
                sku,
                product_id,
                quantity,
                available,
                op,
            } => {
                if op.is_some_and(|op| self.has_op(op.id)) {
                    return Ok(vec![]);
                }
                if !(1..=i64::from(MAX_LINE_QUANTITY)).contains(quantity) {
                    return Err(Error::BadQuantity(*quantity));
                }
                let current = self
                    .lines
                    .get(sku.as_str())
                    .map_or(0, |l| i64::from(l.quantity));
                if current == 0 && self.lines.len() >= MAX_LINES {
                    return Err(Error::TooManyLines);
                }
                let wanted = current + quantity;
                if wanted > i64::from(MAX_LINE_QUANTITY) {
                    return Err(Error::BadQuantity(wanted));
                }
                check_stock(sku, wanted, *available)?;
                let mut events = vec![CartEvent::QuantityChanged {
                    sku: sku.clone(),
                    product_id: product_id.clone(),
                    quantity: to_u32(wanted),
                }];
                events.extend(op.map(CartEvent::OpApplied));
                Ok(events)
            }
            CartCommand::SetQuantity {
                sku,
                quantity,
                available,
            } => {
                let line = self.lines.get(sku.as_str());
                if *quantity <= 0 {
                    // Removing a line that is not there (already removed elsewhere) is done.
                    return Ok(line.map_or_else(Vec::new, |_| {
                        vec![CartEvent::LineRemoved { sku: sku.clone() }]
                    }));
                }
                let Some(line) = line else {
                    return Err(Error::NotInCart(sku.clone()));
                };
                if *quantity > i64::from(MAX_LINE_QUANTITY) {
                    return Err(Error::BadQuantity(*quantity));
                }
                check_stock(sku, *quantity, *available)?;
                Ok(vec![CartEvent::QuantityChanged {
                    sku: sku.clone(),
                    product_id: line.product_id.to_string(),
                    quantity: to_u32(*quantity),
                }])
            }
            CartCommand::Remove { sku } => Ok(if self.lines.contains_key(sku.as_str()) {
                vec![CartEvent::LineRemoved { sku: sku.clone() }]
            } else {
                vec![]
            }),
            CartCommand::Clear => Ok(if self.lines.is_empty() {
                vec![]
            } else {
                vec![CartEvent::Cleared]
            }),
        }
    }

    pub fn evolve(&mut self, event: CartEvent) {
        match event {
            CartEvent::QuantityChanged {
                sku,
                product_id,
                quantity,
            } => match self.lines.get_mut(sku.as_str()) {
                // The line's strings stay shared with earlier copies of the state.
                Some(line) => {
                    line.quantity = quantity;
                    if *line.product_id != *product_id {
                        line.product_id = product_id.into();
                    }
                }
                None => {
                    self.lines.insert(
                        sku.into(),
                        CartLine {
                            product_id: product_id.into(),
                            quantity,
                        },
                    );
                }
            },
            CartEvent::LineRemoved { sku } => {
                self.lines.remove(sku.as_str());
            }
            CartEvent::Cleared => self.lines.clear(),
            CartEvent::OpApplied(op) => {
                let horizon = op.at_ms.saturating_sub(OP_MEMORY_MS);
                self.ops.retain(|o| o.at_ms >= horizon);
                if self.ops.len() >= MAX_OPS {
                    self.ops.remove(0);
                }
                self.ops.push(op);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Whether the add with operation id `id` was applied (within the remembered window).
    pub fn has_op(&self, id: u64) -> bool {
        self.ops.iter().any(|o| o.id == id)
    }
}

fn check_stock(sku: &str, wanted: i64, available: Option<u64>) -> Result<(), Error> {
    match available {
        Some(available) if u64::try_from(wanted).unwrap_or(u64::MAX) > available => {
            Err(Error::NotEnoughStock {
                sku: sku.to_owned(),
                available,
                wanted: u64::try_from(wanted).unwrap_or(0),
            })
        }
        _ => Ok(()),
    }
}

/// Callers have bounded the value to `1..=MAX_LINE_QUANTITY`.
fn to_u32(q: i64) -> u32 {
    u32::try_from(q).unwrap_or(MAX_LINE_QUANTITY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn add(sku: &str, quantity: i64, available: Option<u64>) -> CartCommand {
        CartCommand::Add {
            sku: sku.into(),
            product_id: format!("p-{sku}"),
            quantity,
            available,
            op: None,
        }
    }

    #[test]
    fn an_add_sent_again_with_its_operation_id_is_applied_once() {
        let mut cart = CartState::default();
        let with_op = |id, at_ms| CartCommand::Add {
            sku: "A".into(),
            product_id: "p-A".into(),
            quantity: 1,
            available: None,
            op: Some(Op { id, at_ms }),
        };
        run(&mut cart, &with_op(7, 1_000)).unwrap();
        assert!(
            cart.apply(&with_op(7, 1_000)).unwrap().is_empty(),
            "a replay changes nothing"
        );
        run(&mut cart, &with_op(8, 2_000)).unwrap();
        assert_eq!(cart.lines.get("A").map(|l| l.quantity).unwrap_or(0), 2);
        assert!(cart.has_op(7) && cart.has_op(8));
        // Many adds within the window are all remembered…
        for id in 100..300 {
            run(&mut cart, &with_op(id, 3_000)).unwrap();
        }
        assert!(cart.has_op(7) && cart.has_op(299));
        // … and a minute later the old ones are forgotten.
        run(&mut cart, &with_op(500, 3_000 + OP_MEMORY_MS)).unwrap();
        assert!(!cart.has_op(7) && cart.has_op(100) && cart.has_op(500));
        assert_eq!(cart.ops.len(), 201);
        // At most MAX_OPS, the oldest forgotten first.
        for id in 1_000..(1_000 + MAX_OPS as u64) {
            run(&mut cart, &with_op(id, 4_000)).unwrap_or(());
        }
        assert_eq!(cart.ops.len(), MAX_OPS);
        assert!(!cart.has_op(100));
    }

    fn run(state: &mut CartState, cmd: &CartCommand) -> Result<(), Error> {
        for e in state.apply(cmd)? {
            state.evolve(e);
        }
        Ok(())
    }

    #[test]
    fn adds_accumulate_and_lines_sort_by_sku() {
        let mut cart = CartState::default();
        run(&mut cart, &add("B", 2, None)).unwrap();
        run(&mut cart, &add("A", 1, None)).unwrap();
        run(&mut cart, &add("B", 3, None)).unwrap();
        let lines: Vec<_> = cart.lines.iter().map(|(s, l)| (&**s, l.quantity)).collect();
        assert_eq!(lines, vec![("A", 1), ("B", 5)]);
    }

    #[test]
    fn rejects_bad_quantities() {
        let cart = CartState::default();
        for q in [0, -1, 1_000_000_000_000, i64::from(MAX_LINE_QUANTITY) + 1] {
            assert_eq!(cart.apply(&add("A", q, None)), Err(Error::BadQuantity(q)));
        }
    }

    #[test]
    fn refuses_more_than_tracked_stock() {
        let mut cart = CartState::default();
        run(&mut cart, &add("A", 2, Some(3))).unwrap();
        assert!(matches!(
            cart.apply(&add("A", 2, Some(3))),
            Err(Error::NotEnoughStock {
                available: 3,
                wanted: 4,
                ..
            })
        ));
    }

    #[test]
    fn set_quantity_zero_removes_and_unknown_line_errs_unless_removing() {
        let mut cart = CartState::default();
        run(&mut cart, &add("A", 2, None)).unwrap();
        let set = |q| CartCommand::SetQuantity {
            sku: "A".into(),
            quantity: q,
            available: None,
        };
        run(&mut cart, &set(7)).unwrap();
        assert_eq!(cart.lines.get("A").map(|l| l.quantity).unwrap_or(0), 7);
        run(&mut cart, &set(0)).unwrap();
        assert!(cart.is_empty());
        assert_eq!(cart.apply(&set(1)), Err(Error::NotInCart("A".into())));
        assert_eq!(
            cart.apply(&set(0)),
            Ok(vec![]),
            "0 for an absent line changes nothing"
        );
        assert_eq!(cart.apply(&set(-3)), Ok(vec![]));
    }

    #[test]
    fn remove_and_clear_are_idempotent() {
        let mut cart = CartState::default();
        assert_eq!(
            cart.apply(&CartCommand::Remove { sku: "A".into() }),
            Ok(vec![])
        );
        assert_eq!(cart.apply(&CartCommand::Clear), Ok(vec![]));
        run(&mut cart, &add("A", 1, None)).unwrap();
        run(&mut cart, &CartCommand::Clear).unwrap();
        assert!(cart.is_empty());
    }

    /// Carts stored by builds that held the strings as `String` decode, and are written the same.
    #[test]
    fn shared_strings_keep_the_stored_layout() {
        #[derive(serde::Serialize)]
        struct OldLine {
            product_id: String,
            quantity: u32,
        }
        #[derive(serde::Serialize)]
        struct OldCart {
            lines: BTreeMap<String, OldLine>,
        }
        let old = OldCart {
            lines: [("SKU-1", "p-1", 3), ("SKU-2", "p-2", 1)]
                .into_iter()
                .map(|(sku, id, quantity)| {
                    let line = OldLine {
                        product_id: id.into(),
                        quantity,
                    };
                    (sku.to_owned(), line)
                })
                .collect(),
        };
        let mut cart = CartState::default();
        run(&mut cart, &add("SKU-2", 1, None)).unwrap();
        run(&mut cart, &add("SKU-1", 3, None)).unwrap();
        for (_, line) in cart.lines.iter_mut() {
            line.product_id = line.product_id.replace("p-SKU", "p").into();
        }
        // A cart stored before carts remembered operation ids (format 1) still reads.
        let old_bytes = crate::codec::encode(&old).unwrap();
        let stored = std::sync::Arc::new(cart.clone());
        assert_eq!(
            crate::codec::decode_stored::<std::sync::Arc<CartState>>(&old_bytes).unwrap(),
            stored
        );
        // Today's layout: format 2, the same lines, then the operation ids.
        let new_bytes = crate::codec::encode_stored(&stored).unwrap();
        assert_eq!(new_bytes[0], 2);
        assert_eq!(&new_bytes[1..old_bytes.len()], &old_bytes[1..]);
        assert_eq!(
            crate::codec::decode_stored::<std::sync::Arc<CartState>>(&new_bytes).unwrap(),
            stored
        );
    }

    #[test]
    fn a_changed_line_keeps_sharing_its_strings_with_the_last_state() {
        let mut cart = CartState::default();
        run(&mut cart, &add("A", 1, None)).unwrap();
        let before = cart.clone();
        run(&mut cart, &add("A", 2, None)).unwrap();
        let (sku, line) = cart.lines.iter().next().unwrap();
        let (old_sku, old_line) = before.lines.iter().next().unwrap();
        assert_eq!(line.quantity, 3);
        assert_eq!(old_line.quantity, 1, "the earlier state changed too");
        assert!(Arc::ptr_eq(sku, old_sku) && Arc::ptr_eq(&line.product_id, &old_line.product_id));
    }
}
