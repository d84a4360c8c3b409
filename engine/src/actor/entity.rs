use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use emporium_persistence::{Error as StoreError, SnapshotWrite};

use super::registry::Slot;
use super::{Behaviour, Step};
use crate::{codec, Engine, Error};

/// A command for an entity. Replies `Err(Error::Passivated)` if the actor already passivated;
/// the engine then re-sends to a fresh activation.
pub(crate) struct Envelope<B: Behaviour>(pub B::Command);

impl<B: Behaviour> Message for Envelope<B> {
    type Result = Result<B::Reply, Error>;
}

/// Asks an actor to passivate now (memory cap). Ignored while it is busy: handlers are atomic.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Passivate;

pub(crate) struct EntityActor<B: Behaviour> {
    key: String,
    engine: Engine,
    slot: Arc<Slot>,
    /// `None` until loaded from the store, and again after a failed or fenced write.
    loaded: Option<(B::State, u64)>,
    passivated: bool,
}

impl<B: Behaviour> EntityActor<B> {
    pub fn new(key: String, engine: Engine, slot: Arc<Slot>) -> Self {
        Self {
            key,
            engine,
            slot,
            loaded: None,
            passivated: false,
        }
    }

    fn passivate(&mut self, ctx: &mut Context<Self>) {
        if self.passivated {
            return;
        }
        self.passivated = true;
        B::registry(&self.engine).remove(&self.key, self.slot.generation);
        ctx.stop();
    }
}

impl<B: Behaviour> Actor for EntityActor<B> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(256);
        let idle = self.engine.options().idle_timeout;
        let every = (idle / 2).clamp(Duration::from_millis(100), Duration::from_secs(30));
        ctx.run_interval(every, move |act, ctx| {
            if act.slot.idle_for() >= idle {
                act.passivate(ctx);
            }
        });
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        // Covers stops that did not come through `passivate` (arbiter shutdown).
        B::registry(&self.engine).remove(&self.key, self.slot.generation);
        B::registry(&self.engine).stats().deactivated();
    }
}

impl<B: Behaviour> Handler<Passivate> for EntityActor<B> {
    type Result = ();

    fn handle(&mut self, _: Passivate, ctx: &mut Self::Context) {
        self.passivate(ctx);
    }
}

impl<B: Behaviour> Handler<Envelope<B>> for EntityActor<B> {
    type Result = AtomicResponse<Self, Result<B::Reply, Error>>;

    fn handle(&mut self, msg: Envelope<B>, _ctx: &mut Self::Context) -> Self::Result {
        if self.passivated {
            return AtomicResponse::new(Box::pin(fut::ready(Err(Error::Passivated))));
        }
        self.slot.touch();
        let engine = self.engine.clone();
        let key = self.key.clone();
        let loaded = self.loaded.take();
        let work = async move {
            let (state, version) = match loaded {
                Some(loaded) => loaded,
                None => match load::<B>(&engine, &key).await {
                    Ok(loaded) => loaded,
                    Err(e) => return (None, Err(e)),
                },
            };
            let outcome = match B::handle(&engine, &key, &state, msg.0) {
                Step::Ready(result) => result,
                Step::Async(fut) => fut.await,
            };
            let outcome = match outcome {
                Ok(outcome) => outcome,
                Err(e) => return (Some((state, version)), Err(e)),
            };
            let Some(new_state) = outcome.state else {
                return (Some((state, version)), Ok(outcome.reply));
            };
            let data = match codec::encode(&new_state) {
                Ok(data) => data,
                Err(e) => return (Some((state, version)), Err(e)),
            };
            let write = SnapshotWrite {
                kind: B::KIND,
                key: key.clone(),
                expected: version,
                owner: B::owner(&new_state),
                data,
                outbox: outcome.outbox,
            };
            let has_events = !write.outbox.is_empty();
            match engine.stores().snapshots.save(write).await {
                Ok(new_version) => {
                    if has_events {
                        engine.outbox_written();
                    }
                    for effect in outcome.effects {
                        engine.run_effect(effect).await;
                    }
                    (Some((new_state, new_version)), Ok(outcome.reply))
                }
                Err(StoreError::Conflict { .. }) => {
                    tracing::warn!(kind = B::KIND, key = %key, "stale write fenced; giving the entity up");
                    (None, Err(Error::Fenced(format!("{} {key}", B::KIND))))
                }
                // The write may or may not have landed: forget the state and reload next time.
                Err(e) => (None, Err(e.into())),
            }
        };
        AtomicResponse::new(Box::pin(work.into_actor(self).map(
            |(loaded, reply), act, ctx| {
                let fenced = matches!(reply, Err(Error::Fenced(_)));
                act.loaded = loaded;
                if fenced {
                    act.passivate(ctx);
                }
                reply
            },
        )))
    }
}

async fn load<B: Behaviour>(engine: &Engine, key: &str) -> Result<(B::State, u64), Error> {
    match engine.stores().snapshots.load(B::KIND, key).await? {
        Some(snapshot) => Ok((codec::decode(&snapshot.data)?, snapshot.version)),
        None => Ok((B::State::default(), 0)),
    }
}
