//! The four entity kinds: each a [`Behaviour`](crate::actor::Behaviour) for the generic actor,
//! plus the engine methods that route commands to it.

mod cart;
mod checkout;
mod inventory;
mod order;
mod user;

pub(crate) use cart::CartEntity;
pub use cart::CartLineView;
pub use checkout::{CheckoutOutcome, CheckoutRequest};
pub(crate) use inventory::InventoryEntity;
pub(crate) use order::OrderEntity;
pub(crate) use user::UserEntity;
