use std::sync::Arc;
use std::time::Duration;

use actix::dev::{MessageResponse, OneshotSender};
use actix::prelude::*;
use emporium_cluster::{Epoch, ShardId};
use emporium_persistence::{Error as StoreError, SnapshotWrite};

use tracing::Instrument as _;

use super::registry::Slot;
use super::unknown::Resolved;
use super::{Behaviour, Step};
use crate::{codec, Engine, Error};

/// A command for an entity, with the span of its caller (so a trace follows it into the actor)
/// and the shard ownership it was admitted under. Replies `Err(Error::Passivated)` if the actor
/// already passivated; the engine then re-sends to a fresh activation.
pub(crate) struct Envelope<B: Behaviour> {
    pub cmd: B::Command,
    pub span: tracing::Span,
    pub fence: Fence,
}

/// The shard and ownership epoch a command was admitted under: its write is conditional on both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fence {
    pub shard: ShardId,
    pub epoch: Epoch,
}

impl<B: Behaviour> Message for Envelope<B> {
    type Result = Result<B::Reply, Error>;
}

/// Asks an actor to passivate once it is done with the command in hand (handlers are atomic), if
/// it has been idle at least `idle_for` by then: zero for the memory cap and a handoff, the idle
/// timeout for the engine's idle sweep (a command that came in meanwhile keeps it alive).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Passivate {
    pub idle_for: Duration,
}

pub(crate) struct EntityActor<B: Behaviour> {
    key: String,
    engine: Engine,
    slot: Arc<Slot>,
    /// `None` until loaded from the store, and again after a failed or fenced write.
    loaded: Option<(B::State, u64)>,
    /// The ownership epoch the state was loaded under: a command admitted under another one
    /// reloads first (someone else may have owned the entity in between).
    loaded_epoch: Epoch,
    passivated: bool,
}

impl<B: Behaviour> EntityActor<B> {
    pub fn new(key: String, engine: Engine, slot: Arc<Slot>) -> Self {
        Self {
            key,
            engine,
            slot,
            loaded: None,
            loaded_epoch: Epoch(0),
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
        // No timer of its own: the engine's idle sweep (one per engine) passivates idle actors,
        // which keeps an active actor's memory to its state, mailbox and registry entry.
        ctx.set_mailbox_capacity(256);
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        // Covers stops that did not come through `passivate` (arbiter shutdown).
        B::registry(&self.engine).remove(&self.key, self.slot.generation);
        B::registry(&self.engine).stats().deactivated();
    }
}

impl<B: Behaviour> Handler<Passivate> for EntityActor<B> {
    type Result = ();

    fn handle(&mut self, msg: Passivate, ctx: &mut Self::Context) {
        if self.slot.idle_for() >= msg.idle_for {
            self.passivate(ctx);
        }
    }
}

/// A reply now (commands that change nothing on a loaded actor: no boxing, no waiting), or an
/// atomic future that holds the actor's mailbox until the write behind it is durable.
pub(crate) enum Response<B: Behaviour> {
    Now(Result<B::Reply, Error>),
    Later(AtomicResponse<EntityActor<B>, Result<B::Reply, Error>>),
}

impl<B: Behaviour> MessageResponse<EntityActor<B>, Envelope<B>> for Response<B> {
    fn handle(
        self,
        ctx: &mut Context<EntityActor<B>>,
        tx: Option<OneshotSender<Result<B::Reply, Error>>>,
    ) {
        match self {
            Self::Now(result) => {
                if let Some(tx) = tx {
                    let _ = tx.send(result);
                }
            }
            Self::Later(atomic) => {
                MessageResponse::<EntityActor<B>, Envelope<B>>::handle(atomic, ctx, tx)
            }
        }
    }
}

type Settled<B> = (
    Option<(<B as Behaviour>::State, u64)>,
    Result<<B as Behaviour>::Reply, Error>,
);

impl<B: Behaviour> EntityActor<B> {
    /// Runs `work` atomically; its result becomes the actor's state and the reply.
    fn atomic(
        &mut self,
        work: impl std::future::Future<Output = Settled<B>> + 'static,
    ) -> Response<B> {
        Response::Later(AtomicResponse::new(Box::pin(
            super::nested(work)
                .into_actor(self)
                .map(|(loaded, reply), act, ctx| {
                    let fenced = matches!(reply, Err(Error::Fenced(_)));
                    act.loaded = loaded;
                    if fenced {
                        act.passivate(ctx);
                    }
                    reply
                }),
        )))
    }
}

impl<B: Behaviour> Handler<Envelope<B>> for EntityActor<B> {
    type Result = Response<B>;

    fn handle(&mut self, msg: Envelope<B>, _ctx: &mut Self::Context) -> Self::Result {
        if self.passivated {
            return Response::Now(Err(Error::Passivated));
        }
        self.slot.touch();
        let span = tracing::trace_span!(target: "emporium::actor", parent: &msg.span, "actor",
            otel.name = B::KIND, entity.kind = B::KIND, entity.key = %self.key);
        let fence = msg.fence;
        if fence.epoch != self.loaded_epoch {
            self.loaded = None;
            self.loaded_epoch = fence.epoch;
        }
        let step = match &self.loaded {
            Some((state, _)) => {
                span.in_scope(|| B::handle(&self.engine, &self.key, state, msg.cmd))
            }
            None => {
                let (engine, key) = (self.engine.clone(), self.key.clone());
                return self.atomic(
                    async move {
                        let (state, version) = match load::<B>(&engine, &key).await {
                            Ok(loaded) => loaded,
                            Err(e) => return (None, Err(e)),
                        };
                        let outcome = match B::handle(&engine, &key, &state, msg.cmd) {
                            Step::Ready(result) => result,
                            Step::Async(fut) => fut.await,
                        };
                        settle::<B>(engine, key, fence, state, version, outcome).await
                    }
                    .instrument(span),
                );
            }
        };
        match step {
            Step::Ready(Err(e)) => Response::Now(Err(e)),
            Step::Ready(Ok(outcome))
                if outcome.state.is_none()
                    && outcome.outbox.is_empty()
                    && outcome.effects.is_empty() =>
            {
                Response::Now(Ok(outcome.reply))
            }
            step => {
                let (engine, key) = (self.engine.clone(), self.key.clone());
                let Some((state, version)) = self.loaded.take() else {
                    return Response::Now(Err(Error::Unavailable("entity state missing".into())));
                };
                self.atomic(
                    async move {
                        let outcome = match step {
                            Step::Ready(result) => result,
                            Step::Async(fut) => fut.await,
                        };
                        settle::<B>(engine, key, fence, state, version, outcome).await
                    }
                    .instrument(span),
                )
            }
        }
    }
}

/// Persists what a command did (state and outbox in one conditional write), runs its effects,
/// and decides the actor's next state.
async fn settle<B: Behaviour>(
    engine: Engine,
    key: String,
    fence: Fence,
    state: B::State,
    version: u64,
    outcome: Result<super::Outcome<B::State, B::Reply>, Error>,
) -> Settled<B> {
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(e) => return (Some((state, version)), Err(e)),
    };
    let Some(new_state) = outcome.state else {
        for effect in outcome.effects {
            engine.run_effect(effect).await;
        }
        return (Some((state, version)), Ok(outcome.reply));
    };
    let data = match codec::encode_stored(&new_state) {
        Ok(data) => data,
        Err(e) => return (Some((state, version)), Err(e)),
    };
    // Only the current owner writes, and only while its claim holds (a node that was paused past
    // its lease must not write what it computed before).
    if !engine.ownership().may_write(fence.shard, fence.epoch) {
        tracing::warn!(kind = B::KIND, key = %key, shard = fence.shard.0, epoch = fence.epoch.0,
            "write refused: this node no longer owns the shard");
        return (None, Err(Error::Fenced(format!("{} {key}", B::KIND))));
    }
    // Kept to recognise the write in the store if its acknowledgement is lost.
    let written = data.clone();
    let write = SnapshotWrite {
        kind: B::KIND,
        key: key.clone(),
        expected: version,
        epoch: fence.epoch.0,
        owner: B::owner(&new_state),
        data,
        outbox: outcome.outbox,
    };
    let has_events = !write.outbox.is_empty();
    let save = engine
        .stores()
        .snapshots
        .save(write)
        .instrument(tracing::trace_span!(
            target: "emporium::store",
            "store.save",
            otel.name = "store.save",
            entity.kind = B::KIND,
            events = has_events
        ));
    let saved = match save.await {
        // A remote store can apply a write and fail to say so: settle what happened first.
        Err(StoreError::Unavailable(reason)) => {
            let resolved = super::unknown::resolve::<B>(
                &engine, &key, fence, version, &state, &new_state, &written,
            )
            .await;
            match resolved {
                Resolved::Landed { current } => {
                    tracing::info!(kind = B::KIND, key = %key, "a write whose answer was lost is in the store");
                    Ok((version + 1, current))
                }
                Resolved::NotApplied => Err(StoreError::Unavailable(reason)),
                Resolved::Unknown => {
                    tracing::warn!(kind = B::KIND, key = %key, "a write's outcome is unknown: the store cannot tell");
                    Err(StoreError::Unavailable(reason))
                }
            }
        }
        other => other.map(|v| (v, true)),
    };
    match saved {
        Ok((new_version, current)) => {
            if has_events {
                engine.outbox_written();
            }
            for effect in outcome.effects {
                engine.run_effect(effect).await;
            }
            // Written but overtaken since (its answer was lost): reload before the next command.
            let next = current.then_some((new_state, new_version));
            (next, Ok(outcome.reply))
        }
        // The write may not have landed (refused as stale, or unknown): forget the state and reload
        // next time. A reply whose effect is already stored (a paid order) still stands: turning
        // it into a retryable error would invite a second purchase.
        Err(e) if outcome.reply_stands => {
            tracing::warn!(kind = B::KIND, key = %key, error = %e, "state write failed after the reply's effect was stored");
            (None, Ok(outcome.reply))
        }
        Err(StoreError::Conflict { .. } | StoreError::Fenced { .. }) => {
            engine.ownership().record_fenced_write();
            tracing::warn!(kind = B::KIND, key = %key, "stale write fenced; giving the entity up");
            (None, Err(Error::Fenced(format!("{} {key}", B::KIND))))
        }
        Err(e) => (None, Err(e.into())),
    }
}

/// An entity's acknowledged state and version from the store (the default state, version 0, if
/// it has none): what its actor activates from, and what code outside the actor may read.
pub(crate) async fn load<B: Behaviour>(
    engine: &Engine,
    key: &str,
) -> Result<(B::State, u64), Error> {
    let load = engine
        .stores()
        .snapshots
        .load(B::KIND, key)
        .instrument(tracing::trace_span!(
            target: "emporium::store",
            "store.load",
            otel.name = "store.load",
            entity.kind = B::KIND
        ));
    match load.await? {
        Some(snapshot) => Ok((codec::decode_stored(&snapshot.data)?, snapshot.version)),
        None => Ok((B::State::default(), 0)),
    }
}
