//! The handoff state machine of one shard, as this node sees it: a pure transition function (no
//! I/O, no clock), so every path of a handoff is unit-tested. The control loop feeds it what it
//! read from the store or heard from peers and performs the [`Action`] it returns.
//!
//! ```text
//!            record: owner = me                 release(to)            drained (closed)
//!  Unknown ─────────────────────────► Serving ─────────────► Draining ─────────► (transfer written)
//!  Unowned                              ▲  │                    │                  record: owner = to
//!  Remote  ◄────────────────────────────┼──┘ record: owner ≠ me,│                        │
//!     ▲          record: owner = me     │    newer epoch        │ lease lapsed           ▼
//!     └─────────────────────────────────┘    (lost: passivate)  └──────► Unknown     Remote / Unowned
//! ```
//! Invariants: a record older than what is known is ignored (epochs only grow); this node serves
//! a shard only in `Serving` (new commands) or `Draining` (commands already in flight finish);
//! leaving either for anything but a transfer this node wrote means its actors are dropped.

use crate::shard_map::{Epoch, NodeId};

/// What this node knows about one shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardState {
    /// Nothing read yet, or this node's claim lapsed: requests wait for the table.
    Unknown,
    /// Released and not yet claimed: requests wait for the new owner.
    Unowned { epoch: Epoch },
    /// Another node owns it: requests are forwarded there.
    Remote { owner: u32, epoch: Epoch },
    /// This node owns it and serves it.
    Serving { epoch: Epoch },
    /// This node is handing it to `to` (`None`: releasing it): new commands wait, commands in
    /// flight finish and may still write, and so may the commands they issue until the drain
    /// completes and `closed` is set (then the transfer is written and everything waits).
    Draining {
        epoch: Epoch,
        to: Option<NodeId>,
        closed: bool,
    },
}

/// What happened to the shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The shard's ownership record, as read from the store or announced by a peer.
    Record { owner: Option<NodeId>, epoch: Epoch },
    /// The control loop decided this node should give the shard to `to`.
    Release { to: Option<NodeId> },
    /// Every command in flight on the shard finished: the transfer may be written.
    Drained,
    /// This node's claim lapsed (it was paused, or could not renew its lease).
    LeaseLapsed,
    /// The transfer could not be written (the store did not answer): serve the shard again.
    TransferFailed,
}

/// What the control loop must do after a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Wait for the in-flight commands, then passivate the shard's actors and report `Drained`.
    Drain,
    /// Write the ownership change (owner me → `to`, epoch + 1) to the store.
    Transfer { to: Option<NodeId> },
    /// Drop the shard's actors at once: their state may be stale (someone else owns it now).
    Passivate,
}

/// Where a command for the shard goes now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Local(Epoch),
    Forward(u32),
    Wait,
}

impl ShardState {
    pub fn epoch(&self) -> Option<Epoch> {
        match *self {
            Self::Unknown => None,
            Self::Unowned { epoch }
            | Self::Remote { epoch, .. }
            | Self::Serving { epoch }
            | Self::Draining { epoch, .. } => Some(epoch),
        }
    }

    fn is_mine(&self) -> bool {
        matches!(self, Self::Serving { .. } | Self::Draining { .. })
    }

    /// Where a new command goes. `claim_valid` is whether this node's lease still holds;
    /// `nested` whether a command already in flight here issues it (a checkout reserving stock):
    /// a draining shard still serves those, since the drain waits for the command that issued
    /// them (holding them would hold the drain until the hold bound).
    pub fn route(&self, claim_valid: bool, nested: bool) -> Route {
        match *self {
            Self::Serving { epoch } if claim_valid => Route::Local(epoch),
            Self::Draining {
                epoch,
                closed: false,
                ..
            } if claim_valid && nested => Route::Local(epoch),
            Self::Remote { owner, .. } => Route::Forward(owner),
            Self::Serving { .. } | Self::Draining { .. } | Self::Unowned { .. } | Self::Unknown => {
                Route::Wait
            }
        }
    }

    /// Whether a command already admitted under `epoch` may still write.
    pub fn may_write(&self, epoch: Epoch, claim_valid: bool) -> bool {
        claim_valid
            && matches!(*self, Self::Serving { epoch: e } | Self::Draining { epoch: e, .. } if e == epoch)
    }
}

/// The transition function. `me` is this node's identity (ordinal and generation).
pub fn step(me: NodeId, state: ShardState, event: Event) -> (ShardState, Option<Action>) {
    match event {
        Event::Record { owner, epoch } => {
            if state.epoch().is_some_and(|known| epoch < known) {
                return (state, None);
            }
            let next = match owner {
                Some(node) if node == me => match state {
                    // Our own record again: keep draining if we are.
                    ShardState::Draining { epoch: e, .. } | ShardState::Serving { epoch: e }
                        if e == epoch =>
                    {
                        return (state, None)
                    }
                    _ => ShardState::Serving { epoch },
                },
                Some(node) => ShardState::Remote {
                    owner: node.ordinal,
                    epoch,
                },
                None => ShardState::Unowned { epoch },
            };
            let lost = state.is_mine() && !next.is_mine();
            let regained_over_newer =
                state.is_mine() && next.is_mine() && state.epoch() != Some(epoch);
            // Losing a shard this node did not give away, or finding it ours at another epoch
            // (someone owned it in between): the actors' state may be stale.
            let action = (lost || regained_over_newer).then_some(Action::Passivate);
            (next, action)
        }
        Event::Release { to } => match state {
            ShardState::Serving { epoch } if to != Some(me) => (
                ShardState::Draining {
                    epoch,
                    to,
                    closed: false,
                },
                Some(Action::Drain),
            ),
            _ => (state, None),
        },
        Event::Drained => match state {
            ShardState::Draining { epoch, to, .. } => (
                ShardState::Draining {
                    epoch,
                    to,
                    closed: true,
                },
                Some(Action::Transfer { to }),
            ),
            _ => (state, None),
        },
        Event::TransferFailed => match state {
            ShardState::Draining { epoch, .. } => (ShardState::Serving { epoch }, None),
            _ => (state, None),
        },
        Event::LeaseLapsed if state.is_mine() => (ShardState::Unknown, Some(Action::Passivate)),
        Event::LeaseLapsed => (state, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: NodeId = NodeId {
        ordinal: 1,
        generation: 4,
    };
    const OTHER: NodeId = NodeId {
        ordinal: 2,
        generation: 1,
    };

    fn rec(owner: Option<NodeId>, epoch: u64) -> Event {
        Event::Record {
            owner,
            epoch: Epoch(epoch),
        }
    }

    #[test]
    fn a_record_naming_this_node_makes_it_serve() {
        let (s, a) = step(ME, ShardState::Unknown, rec(Some(ME), 3));
        assert_eq!(s, ShardState::Serving { epoch: Epoch(3) });
        assert_eq!(a, None);
        assert_eq!(s.route(true, false), Route::Local(Epoch(3)));
        // A lapsed claim serves nothing, even a shard it still holds.
        assert_eq!(s.route(false, false), Route::Wait);
    }

    #[test]
    fn a_previous_generation_of_this_ordinal_is_another_node() {
        let old = NodeId {
            ordinal: 1,
            generation: 3,
        };
        let (s, _) = step(ME, ShardState::Unknown, rec(Some(old), 3));
        assert_eq!(s.route(true, false), Route::Forward(1));
        assert!(!s.may_write(Epoch(3), true));
    }

    #[test]
    fn records_older_than_what_is_known_are_ignored() {
        let serving = ShardState::Serving { epoch: Epoch(5) };
        assert_eq!(step(ME, serving, rec(Some(OTHER), 4)), (serving, None));
        let remote = ShardState::Remote {
            owner: 2,
            epoch: Epoch(5),
        };
        assert_eq!(step(ME, remote, rec(None, 4)), (remote, None));
    }

    #[test]
    fn release_drains_then_transfers_and_the_new_record_forwards() {
        let serving = ShardState::Serving { epoch: Epoch(5) };
        let (draining, a) = step(ME, serving, Event::Release { to: Some(OTHER) });
        assert_eq!(a, Some(Action::Drain));
        assert_eq!(
            draining.route(true, false),
            Route::Wait,
            "new commands are held"
        );
        assert_eq!(
            draining.route(true, true),
            Route::Local(Epoch(5)),
            "commands issued by the ones in flight are served"
        );
        assert_eq!(draining.route(false, true), Route::Wait);
        assert!(draining.may_write(Epoch(5), true), "in-flight ones finish");
        let (closed, a) = step(ME, draining, Event::Drained);
        assert_eq!(a, Some(Action::Transfer { to: Some(OTHER) }));
        assert_eq!(
            closed.route(true, true),
            Route::Wait,
            "once drained, even nested commands wait for the transfer"
        );
        assert!(closed.may_write(Epoch(5), true));
        // The transfer this node wrote: its drain passivated already; doing it again is harmless.
        let (remote, a) = step(ME, draining, rec(Some(OTHER), 6));
        assert_eq!(remote.route(true, false), Route::Forward(2));
        assert_eq!(a, Some(Action::Passivate));
        assert!(!remote.may_write(Epoch(5), true));
    }

    #[test]
    fn a_transfer_that_could_not_be_written_serves_the_shard_again() {
        let draining = ShardState::Draining {
            epoch: Epoch(5),
            to: Some(OTHER),
            closed: true,
        };
        let (s, a) = step(ME, draining, Event::TransferFailed);
        assert_eq!(s, ShardState::Serving { epoch: Epoch(5) });
        assert_eq!(a, None);
        let remote = ShardState::Remote {
            owner: 2,
            epoch: Epoch(5),
        };
        assert_eq!(step(ME, remote, Event::TransferFailed), (remote, None));
    }

    #[test]
    fn releasing_to_itself_or_from_a_non_owner_does_nothing() {
        let serving = ShardState::Serving { epoch: Epoch(5) };
        assert_eq!(
            step(ME, serving, Event::Release { to: Some(ME) }),
            (serving, None)
        );
        let remote = ShardState::Remote {
            owner: 2,
            epoch: Epoch(5),
        };
        assert_eq!(
            step(ME, remote, Event::Release { to: None }),
            (remote, None)
        );
        assert_eq!(step(ME, remote, Event::Drained), (remote, None));
    }

    #[test]
    fn losing_a_shard_it_did_not_give_away_drops_its_actors() {
        let serving = ShardState::Serving { epoch: Epoch(5) };
        let (s, a) = step(ME, serving, rec(Some(OTHER), 6));
        assert_eq!(s.route(true, false), Route::Forward(2));
        assert_eq!(a, Some(Action::Passivate));
    }

    #[test]
    fn regaining_a_shard_at_a_newer_epoch_drops_stale_actors() {
        let serving = ShardState::Serving { epoch: Epoch(5) };
        let (s, a) = step(ME, serving, rec(Some(ME), 7));
        assert_eq!(s, ShardState::Serving { epoch: Epoch(7) });
        assert_eq!(a, Some(Action::Passivate));
        assert!(
            !s.may_write(Epoch(5), true),
            "a write admitted at 5 is fenced"
        );
    }

    #[test]
    fn a_lapsed_claim_forgets_the_shard_and_drops_its_actors() {
        for state in [
            ShardState::Serving { epoch: Epoch(5) },
            ShardState::Draining {
                epoch: Epoch(5),
                to: None,
                closed: false,
            },
        ] {
            let (s, a) = step(ME, state, Event::LeaseLapsed);
            assert_eq!(s, ShardState::Unknown);
            assert_eq!(a, Some(Action::Passivate));
            assert_eq!(s.route(true, false), Route::Wait);
            assert!(!s.may_write(Epoch(5), true));
        }
        let remote = ShardState::Remote {
            owner: 2,
            epoch: Epoch(5),
        };
        assert_eq!(step(ME, remote, Event::LeaseLapsed), (remote, None));
    }

    #[test]
    fn released_shards_wait_for_a_claim() {
        let (s, a) = step(ME, ShardState::Unknown, rec(None, 2));
        assert_eq!(s, ShardState::Unowned { epoch: Epoch(2) });
        assert_eq!(a, None);
        assert_eq!(s.route(true, false), Route::Wait);
        let (s, _) = step(ME, s, rec(Some(ME), 3));
        assert_eq!(s.route(true, false), Route::Local(Epoch(3)));
    }
}
