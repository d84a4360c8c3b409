//! The order state machine: lifecycle `Created → Paid → Shipped → Delivered`, `Cancelled` from
//! `Created` or `Paid`. Pure; every transition yields the event to store in the outbox.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderStatus {
    Created,
    Paid,
    Shipped,
    Delivered,
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "Created",
            Self::Paid => "Paid",
            Self::Shipped => "Shipped",
            Self::Delivered => "Delivered",
            Self::Cancelled => "Cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Created,
            Self::Paid,
            Self::Shipped,
            Self::Delivered,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|st| st.as_str().eq_ignore_ascii_case(s))
    }

    /// The routing key of the event a transition into this status emits.
    pub fn event_name(self) -> &'static str {
        match self {
            Self::Created => "order.created",
            Self::Paid => "order.paid",
            Self::Shipped => "order.shipped",
            Self::Delivered => "order.delivered",
            Self::Cancelled => "order.cancelled",
        }
    }

    fn can_become(self, next: Self) -> bool {
        matches!(
            (self, next),
            (Self::Created, Self::Paid)
                | (Self::Paid, Self::Shipped)
                | (Self::Shipped, Self::Delivered)
                | (Self::Created | Self::Paid, Self::Cancelled)
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderItem {
    pub product_id: String,
    pub sku: String,
    pub name: String,
    pub unit_price_cents: u64,
    pub quantity: u32,
}

impl OrderItem {
    pub fn line_total_cents(&self) -> u64 {
        self.unit_price_cents
            .saturating_mul(u64::from(self.quantity))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChange {
    pub status: OrderStatus,
    pub at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub id: String,
    pub user_email: String,
    pub items: Vec<OrderItem>,
    pub total_cents: u64,
    pub currency: String,
    pub status: OrderStatus,
    pub created_at_ms: u64,
    pub payment_ref: String,
    /// Every status the order has had, oldest first, with its time.
    pub history: Vec<StatusChange>,
}

impl Order {
    /// A new order in `Created`; the total is derived from the items.
    pub fn new(
        id: String,
        user_email: String,
        items: Vec<OrderItem>,
        currency: String,
        payment_ref: String,
        now_ms: u64,
    ) -> Self {
        let total_cents = items
            .iter()
            .map(OrderItem::line_total_cents)
            .fold(0u64, u64::saturating_add);
        Self {
            id,
            user_email,
            items,
            total_cents,
            currency,
            status: OrderStatus::Created,
            created_at_ms: now_ms,
            payment_ref,
            history: vec![StatusChange {
                status: OrderStatus::Created,
                at_ms: now_ms,
            }],
        }
    }

    /// The order after moving to `next`, or why it cannot.
    pub fn transition(&self, next: OrderStatus, now_ms: u64) -> Result<Order, Error> {
        if !self.status.can_become(next) {
            return Err(Error::IllegalTransition {
                from: self.status,
                to: next,
            });
        }
        let mut order = self.clone();
        order.status = next;
        order.history.push(StatusChange {
            status: next,
            at_ms: now_ms,
        });
        Ok(order)
    }
}

/// An order event as stored in the outbox: the order as it was after the transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderEvent {
    pub event_id: String,
    pub status: OrderStatus,
    pub occurred_at_ms: u64,
    pub order: Order,
}

impl OrderEvent {
    pub fn routing_key(&self) -> &'static str {
        self.status.event_name()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum Error {
    #[error("an order cannot go from {} to {}", from.as_str(), to.as_str())]
    IllegalTransition { from: OrderStatus, to: OrderStatus },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order() -> Order {
        let item = OrderItem {
            product_id: "p".into(),
            sku: "S".into(),
            name: "n".into(),
            unit_price_cents: 1999,
            quantity: 3,
        };
        Order::new(
            "o".into(),
            "a@b.c".into(),
            vec![item],
            "USD".into(),
            "pay".into(),
            10,
        )
    }

    #[test]
    fn total_is_sum_of_lines() {
        assert_eq!(order().total_cents, 5997);
    }

    #[test]
    fn happy_lifecycle_records_every_step() {
        let o = order()
            .transition(OrderStatus::Paid, 11)
            .and_then(|o| o.transition(OrderStatus::Shipped, 12))
            .and_then(|o| o.transition(OrderStatus::Delivered, 13))
            .unwrap();
        let steps: Vec<_> = o.history.iter().map(|h| (h.status, h.at_ms)).collect();
        assert_eq!(steps.len(), 4);
        assert_eq!(steps[3], (OrderStatus::Delivered, 13));
    }

    #[test]
    fn cancel_only_before_shipping() {
        assert!(order().transition(OrderStatus::Cancelled, 1).is_ok());
        let paid = order().transition(OrderStatus::Paid, 1).unwrap();
        assert!(paid.transition(OrderStatus::Cancelled, 2).is_ok());
        let shipped = paid.transition(OrderStatus::Shipped, 2).unwrap();
        assert!(shipped.transition(OrderStatus::Cancelled, 3).is_err());
        let cancelled = order().transition(OrderStatus::Cancelled, 1).unwrap();
        assert!(cancelled.transition(OrderStatus::Cancelled, 2).is_err());
        assert!(order().transition(OrderStatus::Delivered, 2).is_err());
    }

    #[test]
    fn statuses_parse_case_insensitively() {
        assert_eq!(OrderStatus::parse("shipped"), Some(OrderStatus::Shipped));
        assert_eq!(OrderStatus::parse("lost"), None);
    }
}
