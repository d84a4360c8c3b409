//! Carts: one actor per user. The cart actor is also the user's checkout coordinator, so one user
//! never runs two checkouts at once.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::actor::{Behaviour, Outcome, Registry, Step};
use crate::cart::{CartCommand, CartState};
use crate::catalog::Product;
use crate::order::Order;
use crate::{Engine, Error};

use super::checkout::{self, CheckoutOutcome, CheckoutRequest};

pub(crate) struct CartEntity;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum CartMsg {
    Get,
    Change(CartCommand),
    Checkout(CheckoutRequest),
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum CartReply {
    /// Shared with the actor: a read costs a reference count, not a copy of the cart.
    State(Arc<CartState>),
    Changed,
    Checkout(CheckoutOutcome),
}

/// A cart line joined with its product as the catalog has it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CartLineView {
    pub product: Product,
    pub quantity: u32,
}

impl CartLineView {
    pub fn line_total_cents(&self) -> u64 {
        self.product
            .price_cents
            .saturating_mul(u64::from(self.quantity))
    }
}

impl Behaviour for CartEntity {
    const KIND: &'static str = "cart";
    type State = Arc<CartState>;
    type Command = CartMsg;
    type Reply = CartReply;

    fn registry(engine: &Engine) -> &Registry<Self> {
        &engine.inner().carts
    }

    /// An add with an operation id leaves it as the newest of the state it wrote.
    fn includes(
        before: &Arc<CartState>,
        written: &Arc<CartState>,
        stored: &Arc<CartState>,
    ) -> bool {
        written
            .ops
            .last()
            .is_some_and(|op| !before.has_op(op.id) && stored.has_op(op.id))
    }

    fn resend_safe(cmd: &CartMsg) -> bool {
        match cmd {
            CartMsg::Get => true,
            CartMsg::Change(CartCommand::Add { op, .. }) => op.is_some(),
            CartMsg::Change(_) => true,
            // The same key yields the same order; without one a second attempt could buy twice.
            CartMsg::Checkout(req) => req.idempotency_key.is_some(),
        }
    }

    fn handle(
        engine: &Engine,
        key: &str,
        state: &Arc<CartState>,
        cmd: CartMsg,
    ) -> Step<Arc<CartState>, CartReply> {
        match cmd {
            CartMsg::Get => Step::Ready(Ok(Outcome::unchanged(CartReply::State(state.clone())))),
            CartMsg::Change(cmd) => Step::Ready(match state.apply(&cmd) {
                Ok(events) if events.is_empty() => Ok(Outcome::unchanged(CartReply::Changed)),
                Ok(events) => {
                    let mut next = CartState::clone(state);
                    for event in events {
                        next.evolve(event);
                    }
                    Ok(Outcome::changed(Arc::new(next), CartReply::Changed))
                }
                Err(e) => Err(e.into()),
            }),
            CartMsg::Checkout(req) => Step::Async(Box::pin(checkout::run(
                engine.clone(),
                key.to_owned(),
                state.clone(),
                req,
            ))),
        }
    }
}

fn unexpected() -> Error {
    Error::Unavailable("cart actor gave an unexpected reply".into())
}

impl Engine {
    async fn cart(&self, email: &str, msg: CartMsg) -> Result<Option<Arc<CartState>>, Error> {
        match self.call::<CartEntity>(email, email, msg).await? {
            CartReply::State(state) => Ok(Some(state)),
            CartReply::Changed => Ok(None),
            CartReply::Checkout(_) => Err(unexpected()),
        }
    }

    /// The user's cart as its actor holds it (one actor round trip, no catalog join).
    pub async fn cart_state(&self, email: &str) -> Result<Arc<CartState>, Error> {
        Ok(self.cart(email, CartMsg::Get).await?.unwrap_or_default())
    }

    /// The user's cart, sorted by SKU, with current product data. Lines whose product was deleted
    /// are left out.
    pub async fn cart_view(&self, email: &str) -> Result<Vec<CartLineView>, Error> {
        let state = self.cart_state(email).await?;
        let catalog = self.catalog().snapshot();
        Ok(state
            .lines
            .iter()
            .filter_map(|(sku, line)| {
                catalog.get_by_sku(sku).map(|p| CartLineView {
                    product: p.clone(),
                    quantity: line.quantity,
                })
            })
            .collect())
    }

    fn product_by_sku(&self, sku: &str) -> Result<Product, Error> {
        self.catalog()
            .snapshot()
            .get_by_sku(sku)
            .cloned()
            .ok_or_else(|| Error::NotFound {
                what: "product",
                id: sku.to_owned(),
            })
    }

    pub async fn cart_add(&self, email: &str, sku: &str, quantity: i64) -> Result<(), Error> {
        let (sku, product_id) = {
            let catalog = self.catalog().snapshot();
            let product = catalog.get_by_sku(sku).ok_or_else(|| Error::NotFound {
                what: "product",
                id: sku.to_owned(),
            })?;
            (product.sku.clone(), product.id.clone())
        };
        let available = self.stock(&sku).await?;
        let cmd = CartCommand::Add {
            sku,
            product_id,
            quantity,
            available,
            // Makes the add safe to send again when a forwarded attempt's outcome is lost. One
            // node forwards nothing, and its carts stay as small as they were.
            op: (!self.ownership().is_single_node()).then(|| crate::cart::Op {
                id: uuid::Uuid::new_v4().as_u64_pair().0,
                at_ms: crate::clock::now_ms(),
            }),
        };
        self.cart(email, CartMsg::Change(cmd)).await.map(drop)
    }

    /// Sets a line's quantity; 0 or less removes it.
    pub async fn cart_set(&self, email: &str, sku: &str, quantity: i64) -> Result<(), Error> {
        let available = if quantity > 0 {
            self.product_by_sku(sku)?;
            self.stock(sku).await?
        } else {
            None
        };
        let cmd = CartCommand::SetQuantity {
            sku: sku.to_owned(),
            quantity,
            available,
        };
        self.cart(email, CartMsg::Change(cmd)).await.map(drop)
    }

    pub async fn cart_remove(&self, email: &str, sku: &str) -> Result<(), Error> {
        let cmd = CartCommand::Remove {
            sku: sku.to_owned(),
        };
        self.cart(email, CartMsg::Change(cmd)).await.map(drop)
    }

    pub async fn cart_clear(&self, email: &str) -> Result<(), Error> {
        self.cart(email, CartMsg::Change(CartCommand::Clear))
            .await
            .map(drop)
    }

    /// Turns the cart into an order; see [`checkout::run`] for the steps.
    pub async fn checkout(
        &self,
        email: &str,
        req: CheckoutRequest,
    ) -> Result<(Order, bool), Error> {
        match self
            .call::<CartEntity>(email, email, CartMsg::Checkout(req))
            .await?
        {
            CartReply::Checkout(CheckoutOutcome { order, created }) => Ok((order, created)),
            CartReply::State(_) | CartReply::Changed => Err(unexpected()),
        }
    }
}
