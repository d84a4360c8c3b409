//! Inventory entities: one actor per SKU owns its stock.

use crate::actor::{Behaviour, Outcome, Registry, Step};
use crate::catalog::{Product, ProductDraft};
use crate::inventory::{InventoryCommand, InventoryState};
use crate::{codec, Engine, Error};

pub(crate) struct InventoryEntity;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) enum InventoryMsg {
    Change(InventoryCommand),
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
            InventoryMsg::Change(
                InventoryCommand::SetOnHand { .. }
                    | InventoryCommand::Reserve { hold: Some(_), .. }
                    | InventoryCommand::Release { hold: Some(_), .. }
            )
        )
    }

    fn handle(
        _: &Engine,
        key: &str,
        state: &InventoryState,
        cmd: InventoryMsg,
    ) -> Step<InventoryState, InventoryState> {
        Step::Ready(match cmd {
            InventoryMsg::Change(cmd) => match state.apply(&cmd) {
                Ok(Some(next)) => Ok(Outcome::changed(next.clone(), next)),
                Ok(None) => Ok(Outcome::unchanged(state.clone())),
                Err(_) => Err(Error::OutOfStock {
                    skus: vec![key.to_owned()],
                }),
            },
        })
    }
}

impl Engine {
    async fn inventory(&self, sku: &str, msg: InventoryMsg) -> Result<InventoryState, Error> {
        self.call::<InventoryEntity>(sku, sku, msg).await
    }

    /// Takes `quantity` of `sku` out of stock, or fails with `OutOfStock` naming the SKU.
    pub(crate) async fn reserve_stock(
        &self,
        sku: &str,
        quantity: u64,
        hold: Option<u64>,
    ) -> Result<(), Error> {
        self.inventory(
            sku,
            InventoryMsg::Change(InventoryCommand::Reserve { quantity, hold }),
        )
        .await
        .map(drop)
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
    /// acknowledged change is there, so reads need not wake the actor.
    pub async fn stock(&self, sku: &str) -> Result<Option<u64>, Error> {
        match self
            .stores()
            .snapshots
            .load(InventoryEntity::KIND, sku)
            .await?
        {
            Some(snapshot) => Ok(codec::decode_stored::<InventoryState>(&snapshot.data)?.on_hand),
            None => Ok(None),
        }
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
