//! Checkout, run inside the user's cart actor: reserve stock for every line (in SKU order) →
//! charge the test provider → store the order with its `order.created` event → clear the cart.
//! Any failure before the order is stored releases what was reserved; a checkout that would write
//! its order later than half the stock hold timeout after its first reservation gives up instead,
//! so a hold past the timeout is one whose order is either stored or never will be.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::actor::Outcome;
use crate::cart::CartState;
use crate::clock::{now_ms, year_month};
use crate::order::{Order, OrderItem};
use crate::payment::{self, Card};
use crate::{Engine, Error};

use super::cart::CartReply;

/// Namespace of order ids derived from idempotency keys (UUID v5).
const IDEMPOTENCY_NAMESPACE: Uuid = Uuid::from_u128(0x6f1e_2c8a_4b3d_4e5f_9a7b_1c2d_3e4f_5a6b);

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CheckoutRequest {
    /// The client's `Idempotency-Key`: the same key from the same user yields the same order.
    pub idempotency_key: Option<String>,
    /// `None` charges the default test card.
    pub card: Option<Card>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckoutOutcome {
    pub order: Order,
    /// False when an earlier checkout with the same idempotency key made the order.
    pub created: bool,
}

/// The order id of a checkout. With an idempotency key it is derived from (user, key), so a retry
/// finds the order even if the first attempt crashed after storing it.
fn order_id(email: &str, key: Option<&str>) -> Uuid {
    match key {
        Some(key) => Uuid::new_v5(&IDEMPOTENCY_NAMESPACE, format!("{email}\n{key}").as_bytes()),
        None => Uuid::new_v4(),
    }
}

fn replay(order: Order) -> Outcome<Arc<CartState>, CartReply> {
    Outcome::unchanged(CartReply::Checkout(CheckoutOutcome {
        order,
        created: false,
    }))
}

/// Gives back this checkout's holds on `reserved`, except on the SKUs of `kept` (an order stored
/// under the same key: its holds are the same ones, and stay with it).
async fn release_all(engine: &Engine, reserved: &[(String, u64)], hold: u64, kept: Option<&Order>) {
    for (sku, quantity) in reserved {
        if kept.is_some_and(|order| order.items.iter().any(|i| i.sku == *sku)) {
            continue;
        }
        engine
            .run_effect(crate::actor::Effect::ReleaseStock {
                sku: sku.clone(),
                product_id: None,
                quantity: *quantity,
                hold: Some(hold),
            })
            .await;
    }
}

pub(super) async fn run(
    engine: Engine,
    email: String,
    cart: Arc<CartState>,
    req: CheckoutRequest,
) -> Result<Outcome<Arc<CartState>, CartReply>, Error> {
    let uuid = order_id(&email, req.idempotency_key.as_deref());
    let id = uuid.to_string();
    if req.idempotency_key.is_some() {
        match engine.order(&id, Some(&email)).await {
            Ok(existing) => return Ok(replay(existing)),
            Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    // What is bought is what `GET /api/cart` shows: lines whose product was deleted (or given
    // another SKU) since they were added are left out, and go with the rest when the cart clears.
    let catalog = engine.catalog().snapshot();
    let items: Vec<OrderItem> = cart
        .lines
        .iter()
        .filter_map(|(sku, line)| {
            catalog.get_by_sku(sku).map(|p| OrderItem {
                product_id: p.id.clone(),
                sku: sku.to_string(),
                name: p.name.clone(),
                unit_price_cents: p.price_cents,
                quantity: line.quantity,
            })
        })
        .collect();
    if items.is_empty() {
        return Err(Error::EmptyCart);
    }
    let card = req.card.unwrap_or_else(Card::default_test_card);
    card.validate().map_err(Error::InvalidPayment)?;

    // Reservations are held under the order's id: a retry of this checkout (same key, same id)
    // reserves nothing twice, and a reserve or release whose answer was lost can be sent again.
    let hold = emporium_cluster::fnv1a64(id.as_bytes());
    let started = std::time::Instant::now();
    let mut reserved = Vec::with_capacity(items.len());
    let mut unavailable = Vec::new();
    let mut failure = None;
    for item in &items {
        let quantity = u64::from(item.quantity);
        match engine.reserve_stock(&item.sku, quantity, hold, uuid).await {
            Ok(()) => reserved.push((item.sku.clone(), quantity)),
            Err(Error::OutOfStock { skus }) => unavailable.extend(skus),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    if let Some(e) = failure {
        release_all(&engine, &reserved, hold, None).await;
        return Err(e);
    }
    if !unavailable.is_empty() {
        release_all(&engine, &reserved, hold, None).await;
        return Err(Error::OutOfStock { skus: unavailable });
    }

    if started.elapsed() > engine.options().stock_hold_timeout / 2 {
        release_all(&engine, &reserved, hold, None).await;
        return Err(Error::Unavailable(
            "checkout took too long to reserve its stock; try again".into(),
        ));
    }
    let now = now_ms();
    let total = items
        .iter()
        .map(OrderItem::line_total_cents)
        .fold(0u64, u64::saturating_add);
    let payment_ref = match payment::charge(&card, total, year_month(now)) {
        Ok(reference) => reference,
        Err(declined) => {
            release_all(&engine, &reserved, hold, None).await;
            return Err(declined.into());
        }
    };
    let order = Order::new(
        id,
        email,
        items,
        engine.options().currency.clone(),
        payment_ref,
        now,
    );
    let attempted = order.clone();
    match engine.create_order(order).await {
        Ok(reply) if reply.created => Ok(stored(reply.order)),
        Ok(reply) => {
            release_all(&engine, &reserved, hold, Some(&reply.order)).await;
            Ok(replay(reply.order))
        }
        Err(e) => {
            // A remote store can fail a write it applied (a lost acknowledgement, a timeout).
            // If the order is there, it stands; if that cannot be known, the reservations are
            // kept (stock reads low, never oversold) rather than given back under a live order.
            match engine.load_order(&attempted.id).await {
                // This attempt's order (an earlier attempt with the same key is another order,
                // paid with its own reservations: answer with it and give ours back).
                Ok(Some(order)) if order == attempted => Ok(stored(order)),
                Ok(Some(order)) => {
                    release_all(&engine, &reserved, hold, Some(&order)).await;
                    Ok(replay(order))
                }
                Ok(None) if !matches!(e, Error::Unavailable(_) | Error::Fenced(_)) => {
                    release_all(&engine, &reserved, hold, None).await;
                    Err(e)
                }
                _ => {
                    tracing::error!(order = %attempted.id, ?reserved, error = %e,
                        "order write failed with an unknown outcome; its stock stays reserved \
                         until a retry or the hold timeout settles it");
                    Err(e)
                }
            }
        }
    }
}

/// The reply for an order this checkout stored.
fn stored(order: Order) -> Outcome<Arc<CartState>, CartReply> {
    let mut outcome = Outcome::changed(
        Arc::default(),
        CartReply::Checkout(CheckoutOutcome {
            order,
            created: true,
        }),
    );
    // The order is stored and paid: a failure to clear the cart must not turn into a
    // retryable error that would buy the same cart twice.
    outcome.reply_stands = true;
    outcome
}

#[cfg(test)]
mod tests {
    #[test]
    fn idempotent_ids_are_per_user_and_key() {
        let a = super::order_id("a@x.io", Some("k1"));
        assert_eq!(a, super::order_id("a@x.io", Some("k1")));
        assert_ne!(a, super::order_id("b@x.io", Some("k1")));
        assert_ne!(a, super::order_id("a@x.io", Some("k2")));
        assert_ne!(
            super::order_id("a@x.io", None),
            super::order_id("a@x.io", None)
        );
    }
}
