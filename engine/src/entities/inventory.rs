//! Inventory entities: one actor per SKU owns its stock.

use crate::actor::{Behaviour, Outcome, Registry, Step};
use crate::inventory::{InventoryCommand, InventoryState};
use crate::{codec, Engine, Error};

pub(crate) struct InventoryEntity;

#[derive(Debug, Clone)]
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
    pub(crate) async fn reserve_stock(&self, sku: &str, quantity: u64) -> Result<(), Error> {
        self.inventory(
            sku,
            InventoryMsg::Change(InventoryCommand::Reserve { quantity }),
        )
        .await
        .map(drop)
    }

    pub(crate) async fn release_stock(&self, sku: &str, quantity: u64) -> Result<(), Error> {
        self.inventory(
            sku,
            InventoryMsg::Change(InventoryCommand::Release { quantity }),
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
            Some(snapshot) => Ok(codec::decode::<InventoryState>(&snapshot.data)?.on_hand),
            None => Ok(None),
        }
    }
}
