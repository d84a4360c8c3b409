//! The generic entity actor: one actix actor per entity, activated from its snapshot on first
//! message, one message at a time (`AtomicResponse`), persisting the new state and its outbox
//! events in one conditional write before replying, and passivating when idle.

mod entity;
mod registry;
mod unknown;

pub(crate) use entity::{load, Envelope, Fence};

tokio::task_local! {
    /// Set while an actor's command runs (and on the owner's side of a command such a command
    /// forwarded): the commands it issues are nested in it.
    static NESTED: ();
}

/// Whether the current task runs inside an entity command.
pub(crate) fn is_nested() -> bool {
    NESTED.try_with(|()| ()).is_ok()
}

/// Runs `work` as part of an entity command: the commands it issues are nested.
pub(crate) fn nested<F: std::future::Future>(
    work: F,
) -> impl std::future::Future<Output = F::Output> {
    NESTED.scope((), work)
}
pub use registry::KindStats;
pub(crate) use registry::Registry;

use emporium_persistence::OutboxEntry;
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Engine, Error};

/// What one command did: the new state to persist (if it changed), events for the outbox,
/// effects to run once the write is durable, and the reply.
pub(crate) struct Outcome<S, R> {
    pub state: Option<S>,
    pub outbox: Vec<OutboxEntry>,
    pub effects: Vec<Effect>,
    pub reply: R,
    /// The reply holds even if writing `state` fails: what it reports already happened elsewhere
    /// (a checkout's order is stored; only clearing the cart failed). The actor then reloads.
    pub reply_stands: bool,
}

impl<S, R> Outcome<S, R> {
    pub fn unchanged(reply: R) -> Self {
        Self {
            state: None,
            outbox: Vec::new(),
            effects: Vec::new(),
            reply,
            reply_stands: false,
        }
    }

    pub fn changed(state: S, reply: R) -> Self {
        Self {
            state: Some(state),
            outbox: Vec::new(),
            effects: Vec::new(),
            reply,
            reply_stands: false,
        }
    }
}

/// Side effects described as values; only the owner runs them, after its write is durable.
#[derive(Debug, Clone)]
pub(crate) enum Effect {
    /// Gives `quantity` back to `sku`, or, with `product_id` set, to that product's current SKU
    /// when the catalog still has it (its SKU may have changed since the stock was taken).
    ReleaseStock {
        sku: String,
        product_id: Option<String>,
        quantity: u64,
        /// The checkout's key the stock was reserved under (then exactly that hold is given back).
        hold: Option<u64>,
    },
}

/// A command's result: computed right away (the common case) or needing other actors first.
pub(crate) enum Step<S, R> {
    Ready(Result<Outcome<S, R>, Error>),
    Async(LocalBoxFuture<'static, Result<Outcome<S, R>, Error>>),
}

/// What makes an entity kind: its state, commands and how a command is handled.
pub(crate) trait Behaviour: Sized + Unpin + 'static {
    const KIND: &'static str;
    type State: Default + Clone + crate::codec::Stored + Unpin + 'static;
    /// Commands and replies travel to and from other nodes when the entity lives there.
    type Command: Clone + Send + Serialize + DeserializeOwned + 'static;
    type Reply: Send + Serialize + DeserializeOwned + 'static;

    /// The secondary key the store indexes the snapshot by (an order's user).
    fn owner(_state: &Self::State) -> Option<String> {
        None
    }

    /// Whether `cmd` may be sent again when an attempt's outcome is unknown: applying it twice
    /// is the same as once (a read, a set, an add carrying its operation id).
    fn resend_safe(_cmd: &Self::Command) -> bool {
        false
    }

    /// Whether `stored`, a later state of the entity, shows that the write that took `before`
    /// to `written` was applied (a cart whose recent operations include the add that did it).
    fn includes(_before: &Self::State, _written: &Self::State, _stored: &Self::State) -> bool {
        false
    }

    /// Where this kind's live actors are kept.
    fn registry(engine: &Engine) -> &Registry<Self>;

    fn handle(
        engine: &Engine,
        key: &str,
        state: &Self::State,
        cmd: Self::Command,
    ) -> Step<Self::State, Self::Reply>;
}
