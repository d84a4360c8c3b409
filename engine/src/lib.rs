//! The Emporium domain: pure state machines for carts, orders, per-SKU inventory and user
//! accounts, and the actors that own them.
//!
//! Solves: a single writer per entity (one actix actor per cart, order, SKU and user, one message
//! at a time), activation from the entity's snapshot on first message and passivation when idle or
//! over the memory cap, durable acknowledgement (the new state and its outbox events are written
//! in one version-checked store write before the reply), and checkout as a sequence of commands
//! to those actors.
//!
//! Deliberately does not: speak HTTP or JSON, know which backend stores it, or talk to peer nodes.
//! The state machines (`cart`, `order`, `inventory`, `payment`, `catalog` queries) do no I/O and
//! are tested without a runtime. Callers hold an [`Engine`], never an actor address.

mod actor;
pub mod cart;
pub mod catalog;
pub mod clock;
mod codec;
pub mod demo;
mod engine;
mod entities;
mod error;
mod forward;
mod gate;
pub mod inventory;
pub mod order;
pub mod payment;
mod relay;
pub mod trace;
pub mod user;

pub use actor::KindStats;
pub use emporium_persistence::EventSink;
pub use engine::{ActorStats, Engine, EngineOptions};
pub use entities::{CartLineView, CheckoutOutcome, CheckoutRequest};
pub use error::Error;
pub use forward::ForwardStats;
pub use relay::{decode_order_event, InProcessSink, Relay, RelayStats};
