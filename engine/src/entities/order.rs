//! Orders: one actor per order, placed on its user's shard. Every transition is stored with its
//! outbox event in one write; cancelling releases the stock after that write is durable.

use emporium_persistence::OutboxEntry;
use serde::{Deserialize, Serialize};

use crate::actor::{Behaviour, Effect, Outcome, Registry, Step};
use crate::clock::now_ms;
use crate::order::{Order, OrderEvent, OrderStatus};
use crate::{codec, Engine, Error};

pub(crate) struct OrderEntity;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum OrderMsg {
    /// Stores a new order; if it exists already, returns it unchanged (idempotent create).
    Create(Order),
    /// `requester` is `None` for an admin, who may move any order.
    Transition {
        to: OrderStatus,
        requester: Option<String>,
    },
}

/// The order, and whether this command created it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct OrderReply {
    pub order: Order,
    pub created: bool,
}

fn not_found(id: &str) -> Error {
    Error::NotFound {
        what: "order",
        id: id.to_owned(),
    }
}

fn event_for(order: &Order, now: u64) -> Result<OutboxEntry, Error> {
    let event = OrderEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        status: order.status,
        occurred_at_ms: now,
        order: order.clone(),
    };
    Ok(OutboxEntry {
        event_id: event.event_id.clone(),
        routing_key: event.routing_key().to_owned(),
        payload: codec::encode(&event)?,
        created_at_ms: now,
        trace_parent: crate::trace::current(),
    })
}

impl Behaviour for OrderEntity {
    const KIND: &'static str = "order";
    type State = Option<Order>;
    type Command = OrderMsg;
    type Reply = OrderReply;

    fn owner(state: &Self::State) -> Option<String> {
        state.as_ref().map(|o| o.user_email.clone())
    }

    fn registry(engine: &Engine) -> &Registry<Self> {
        &engine.inner().orders
    }

    /// Creating an order that exists returns it unchanged.
    fn resend_safe(cmd: &OrderMsg) -> bool {
        matches!(cmd, OrderMsg::Create(_))
    }

    fn handle(
        _: &Engine,
        key: &str,
        state: &Self::State,
        cmd: OrderMsg,
    ) -> Step<Self::State, OrderReply> {
        let now = now_ms();
        Step::Ready(match (cmd, state) {
            (OrderMsg::Create(_), Some(existing)) => Ok(Outcome::unchanged(OrderReply {
                order: existing.clone(),
                created: false,
            })),
            (OrderMsg::Create(order), None) => event_for(&order, now).map(|event| {
                let mut outcome = Outcome::changed(
                    Some(order.clone()),
                    OrderReply {
                        order,
                        created: true,
                    },
                );
                outcome.outbox.push(event);
                outcome
            }),
            (OrderMsg::Transition { .. }, None) => Err(not_found(key)),
            (OrderMsg::Transition { to, requester }, Some(order)) => {
                if requester.is_some_and(|r| r != order.user_email) {
                    return Step::Ready(Err(not_found(key)));
                }
                order
                    .transition(to, now)
                    .map_err(Error::from)
                    .and_then(|next| {
                        let event = event_for(&next, now)?;
                        let mut outcome = Outcome::changed(
                            Some(next.clone()),
                            OrderReply {
                                order: next.clone(),
                                created: false,
                            },
                        );
                        outcome.outbox.push(event);
                        if to == OrderStatus::Cancelled {
                            outcome.effects = next
                                .items
                                .iter()
                                .map(|i| Effect::ReleaseStock {
                                    hold: None,
                                    sku: i.sku.clone(),
                                    product_id: Some(i.product_id.clone()),
                                    quantity: u64::from(i.quantity),
                                })
                                .collect();
                        }
                        Ok(outcome)
                    })
            }
        })
    }
}

impl Engine {
    pub(crate) async fn create_order(&self, order: Order) -> Result<OrderReply, Error> {
        let (owner, id) = (order.user_email.clone(), order.id.clone());
        self.call::<OrderEntity>(&owner, &id, OrderMsg::Create(order))
            .await
    }

    /// Reads an acknowledged order from the store. Order ids are UUIDs: anything else is absent
    /// without a store read (and without a place in the store's set of keys known absent).
    pub(crate) async fn load_order(&self, id: &str) -> Result<Option<Order>, Error> {
        if uuid::Uuid::try_parse(id).is_err() {
            return Ok(None);
        }
        match self.stores().snapshots.load(OrderEntity::KIND, id).await? {
            Some(snapshot) => codec::decode::<Option<Order>>(&snapshot.data),
            None => Ok(None),
        }
    }

    /// An order as `viewer` may see it: their own, or any for an admin (`viewer` = `None`).
    pub async fn order(&self, id: &str, viewer: Option<&str>) -> Result<Order, Error> {
        match self.load_order(id).await? {
            Some(order) if viewer.is_none_or(|v| v == order.user_email) => Ok(order),
            _ => Err(not_found(id)),
        }
    }

    /// A user's orders, newest first.
    pub async fn orders_of(&self, email: &str) -> Result<Vec<Order>, Error> {
        let mut orders = Vec::new();
        for snapshot in self
            .stores()
            .snapshots
            .list_by_owner(OrderEntity::KIND, email)
            .await?
        {
            if let Some(order) = codec::decode::<Option<Order>>(&snapshot.data)? {
                orders.push(order);
            }
        }
        orders.sort_by(|a, b| {
            b.created_at_ms
                .cmp(&a.created_at_ms)
                .then_with(|| b.id.cmp(&a.id))
        });
        Ok(orders)
    }

    /// Moves an order to `to`. `requester` `None` means an admin.
    pub async fn transition_order(
        &self,
        id: &str,
        to: OrderStatus,
        requester: Option<&str>,
    ) -> Result<Order, Error> {
        // The order lives on its user's shard; find the user first. A customer's order is read
        // first too, so an id that is not theirs never activates an actor (it would stay in
        // memory until idle, and count against the actor cap).
        let owner = self.order(id, requester).await?.user_email;
        let msg = OrderMsg::Transition {
            to,
            requester: requester.map(str::to_owned),
        };
        Ok(self.call::<OrderEntity>(&owner, id, msg).await?.order)
    }
}
