//! Inventory entities: one actor per SKU owns its stock.

use crate::actor::{Behaviour, Outcome, Registry, Step};
use crate::catalog::{Product, ProductDraft};
use crate::clock::now_ms;
use crate::inventory::{InventoryCommand, InventoryState, Verdict, MAX_HOLDS};
use crate::{codec, Engine, Error};

pub(crate) struct InventoryEntity;

/// How many timed-out holds one settling looks up (at once), so that the read that triggers it
/// waits for one round of order reads at most.
const SETTLE_BATCH: usize = 16;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) enum InventoryMsg {
    Change(InventoryCommand),
    /// Settles the holds that have timed out against the store (see [`crate::inventory`]).
    Settle,
}

impl Behaviour for InventoryEntity {
    const KIND: &'static str = "inventory";
    type State = InventoryState;
    type Command = InventoryMsg;
    type Reply = InventoryState;

    fn registry(engine: &Engine) -> &Registry<Self> {
        &engine.inner().inventory
    }

    /// Setting the quantity on hand twice is setting it once; so is reserving or releasing under
    /// a checkout's hold.
    fn resend_safe(cmd: &InventoryMsg) -> bool {
        matches!(
            cmd,
            InventoryMsg::Settle
                | InventoryMsg::Change(
                    InventoryCommand::SetOnHand { .. }
                        | InventoryCommand::Reserve { hold: Some(_), .. }
                        | InventoryCommand::ReserveFor { .. }
                        | InventoryCommand::Release { hold: Some(_), .. }
                )
        )
    }

    /// `Settle`, and a hold about to push the oldest out of a full list, first settle the holds
    /// that have timed out (reading their orders), then apply the command.
    fn handle(
        engine: &Engine,
        key: &str,
        state: &InventoryState,
        cmd: InventoryMsg,
    ) -> Step<InventoryState, InventoryState> {
        let now = now_ms();
        let (settle_first, cmd) = match cmd {
            InventoryMsg::Settle => (true, None),
            InventoryMsg::Change(cmd @ InventoryCommand::ReserveFor { .. }) => {
                (state.holds.len() >= MAX_HOLDS, Some(cmd))
            }
            InventoryMsg::Change(cmd) => (false, Some(cmd)),
        };
        let expired = match settle_first {
            true => state.expired(now, engine.hold_timeout_ms(), SETTLE_BATCH),
            false => Vec::new(),
        };
        if expired.is_empty() {
            return Step::Ready(applied(key, state.clone(), false, cmd, now));
        }
        let (engine, state, sku) = (engine.clone(), state.clone(), key.to_owned());
        Step::Async(Box::pin(async move {
            let verdicts = verdicts(&engine, &expired).await;
            match state.settled(&verdicts) {
                Some(settled) => {
                    tracing::info!(%sku, settled = ?verdicts,
                        "timed-out stock holds settled against their orders");
                    applied(&sku, settled, true, cmd, now)
                }
                None => applied(&sku, state, false, cmd, now),
            }
        }))
    }
}

/// The outcome of `cmd` (if any) on `state`, which is already a change from the stored state
/// when `changed`.
fn applied(
    sku: &str,
    state: InventoryState,
    changed: bool,
    cmd: Option<InventoryCommand>,
    now: u64,
) -> Result<Outcome<InventoryState, InventoryState>, Error> {
    let next = match cmd {
        Some(cmd) => state.apply(&cmd, now).map_err(|_| Error::OutOfStock {
            skus: vec![sku.to_owned()],
        })?,
        None => None,
    };
    Ok(match next {
        Some(next) => Outcome::changed(next.clone(), next),
        None if changed => Outcome::changed(state.clone(), state),
        None => Outcome::unchanged(state),
    })
}

/// What the store says of each expired hold's order; a hold whose order cannot be read now is
/// left for the next settling.
async fn verdicts(engine: &Engine, expired: &[(u64, u128)]) -> Vec<(u64, Verdict)> {
    let lookups = expired.iter().map(|(key, order)| async move {
        let id = uuid::Uuid::from_u128(*order).to_string();
        match engine.load_order(&id).await {
            Ok(Some(_)) => Some((*key, Verdict::Stored)),
            Ok(None) => Some((*key, Verdict::Absent)),
            Err(e) => {
                tracing::warn!(order = %id, error = %e, "a timed-out stock hold stays for now");
                None
            }
        }
    });
    futures_util::future::join_all(lookups)
        .await
        .into_iter()
        .flatten()
        .collect()
}

impl Engine {
    async fn inventory(&self, sku: &str, msg: InventoryMsg) -> Result<InventoryState, Error> {
        self.call::<InventoryEntity>(sku, sku, msg).await
    }

    /// Takes `quantity` of `sku` out of stock under the hold of the checkout storing `order`, or
    /// fails with `OutOfStock` naming the SKU. Stock short only because of holds that have timed
    /// out is settled first.
    pub(crate) async fn reserve_stock(
        &self,
        sku: &str,
        quantity: u64,
        hold: u64,
        order: uuid::Uuid,
    ) -> Result<(), Error> {
        let reserve = || {
            InventoryMsg::Change(InventoryCommand::ReserveFor {
                quantity,
                hold,
                order: order.as_u128(),
            })
        };
        match self.inventory(sku, reserve()).await {
            Err(Error::OutOfStock { .. }) if self.settle_holds(sku).await? => {
                self.inventory(sku, reserve()).await.map(drop)
            }
            result => result.map(drop),
        }
    }

    /// Settles `sku`'s timed-out holds, a batch at a time while that makes progress; true if it
    /// gave stock back.
    async fn settle_holds(&self, sku: &str) -> Result<bool, Error> {
        let mut state = self.stored_stock(sku).await?;
        let before = state.on_hand;
        for _ in 0..=crate::inventory::MAX_HOLDS / SETTLE_BATCH {
            let next = self.inventory(sku, InventoryMsg::Settle).await?;
            let progress = next.holds.len() < state.holds.len();
            state = next;
            if !progress {
                break;
            }
        }
        Ok(state.on_hand > before)
    }

    pub(crate) async fn release_stock(
        &self,
        sku: &str,
        quantity: u64,
        hold: Option<u64>,
    ) -> Result<(), Error> {
        self.inventory(
            sku,
            InventoryMsg::Change(InventoryCommand::Release { quantity, hold }),
        )
        .await
        .map(drop)
    }

    /// Sets the quantity on hand (`None`: stop tracking stock for this SKU).
    pub async fn set_stock(&self, sku: &str, on_hand: Option<u64>) -> Result<(), Error> {
        self.inventory(
            sku,
            InventoryMsg::Change(InventoryCommand::SetOnHand { on_hand }),
        )
        .await
        .map(drop)
    }

    /// The acknowledged stock of `sku` (`None`: not tracked), read from the store: every
    /// acknowledged change is there, so reads need not wake the actor (unless holds have timed
    /// out: they are settled first, so no stock reads low for a checkout that is gone).
    pub async fn stock(&self, sku: &str) -> Result<Option<u64>, Error> {
        let state = self.stored_stock(sku).await?;
        if state
            .expired(now_ms(), self.hold_timeout_ms(), 1)
            .is_empty()
        {
            return Ok(state.on_hand);
        }
        Ok(self.inventory(sku, InventoryMsg::Settle).await?.on_hand)
    }

    async fn stored_stock(&self, sku: &str) -> Result<InventoryState, Error> {
        match self
            .stores()
            .snapshots
            .load(InventoryEntity::KIND, sku)
            .await?
        {
            Some(snapshot) => codec::decode_stored::<InventoryState>(&snapshot.data),
            None => Ok(InventoryState::default()),
        }
    }

    fn hold_timeout_ms(&self) -> u64 {
        u64::try_from(self.options().stock_hold_timeout.as_millis()).unwrap_or(u64::MAX)
    }

    /// Creates a product. Stock lives with the SKU and is set before the product goes on sale; a
    /// SKU with stock left from a deleted product keeps it unless `stock` gives another. Returns
    /// the product with the stock it now has.
    pub async fn create_product(
        &self,
        draft: ProductDraft,
        stock: Option<u64>,
    ) -> Result<(Product, Option<u64>), Error> {
        let sku_free = self.catalog().snapshot().get_by_sku(&draft.sku).is_none();
        if stock.is_some() && sku_free {
            self.set_stock(&draft.sku, stock).await?;
        }
        let product = self.catalog().create(draft).await?;
        self.announce_catalog().await;
        let stock = match stock {
            Some(stock) => Some(stock),
            None => self.stock(&product.sku).await?,
        };
        Ok((product, stock))
    }

    /// Deletes a product; its stock stays with the SKU (a product created on it later keeps it).
    pub async fn delete_product(&self, id: &str) -> Result<(), Error> {
        self.catalog().delete(id).await?;
        self.announce_catalog().await;
        Ok(())
    }

    /// Updates a product; `stock` absent leaves it as it is, `Some(None)` stops tracking it. A
    /// product whose stock is tracked changes SKU only with its stock given (else it would go on
    /// sale without a limit: [`Error::StockTracked`]), set before the new SKU is on sale.
    /// Cancelled orders give stock back to their product's current SKU.
    pub async fn update_product(
        &self,
        id: &str,
        draft: ProductDraft,
        stock: Option<Option<u64>>,
    ) -> Result<(Product, Option<u64>), Error> {
        let catalog = self.catalog().snapshot();
        let renamed_from = catalog
            .get(id)
            .map(|p| p.sku.clone())
            .filter(|old| *old != draft.sku);
        if let Some(old) = &renamed_from {
            if stock.is_none() && self.stock(old).await?.is_some() {
                return Err(Error::StockTracked { sku: old.clone() });
            }
            if let (Some(stock), None) = (stock, catalog.get_by_sku(&draft.sku)) {
                self.set_stock(&draft.sku, stock).await?;
            }
        }
        let product = self.catalog().update(id, draft).await?;
        self.announce_catalog().await;
        if let (Some(stock), None) = (stock, &renamed_from) {
            self.set_stock(&product.sku, stock).await?;
        }
        let stock = self.stock(&product.sku).await?;
        Ok((product, stock))
    }
}
