//! A write whose answer was lost (a store timeout, a dropped connection, this process paused
//! mid-write) may have been applied or not. A retryable 503 promises the client it was not, so the
//! outcome is settled before anything is answered: read the entity back and, if it still stands at
//! the version the write was conditional on, take that version with the state from before the
//! write (one more conditional write), after which the lost one can never apply.

use std::time::Duration;

use emporium_persistence::{Error as StoreError, SnapshotWrite};

use super::{Behaviour, Fence};
use crate::{codec, Engine};

/// What became of a write whose answer was lost.
pub(super) enum Resolved {
    /// It is in the store; `current` when nothing was written after it.
    Landed { current: bool },
    /// It did not happen and never will.
    NotApplied,
    /// The store cannot tell now.
    Unknown,
}

/// How long settling may take: the write it follows has already waited out the store's operation
/// timeout, and a request must still be answered within the 10 s a client is promised.
const RESOLVE_WITHIN: Duration = Duration::from_secs(2);

/// The write of `written` (encoded as `data`) over `before`, conditional on version `expected`.
/// A store that does not tell within [`RESOLVE_WITHIN`] leaves it [`Resolved::Unknown`].
pub(super) async fn resolve<B: Behaviour>(
    engine: &Engine,
    key: &str,
    fence: Fence,
    expected: u64,
    before: &B::State,
    written: &B::State,
    data: &[u8],
) -> Resolved {
    let resolution = async {
        let store = &engine.stores().snapshots;
        for _ in 0..4 {
            let stored = match store.load(B::KIND, key).await {
                Ok(stored) => stored,
                Err(_) => return Resolved::Unknown,
            };
            match stored {
                Some(s) if s.version == expected + 1 && s.data == data => {
                    return Resolved::Landed { current: true }
                }
                // Past the version the write was conditional on: it can no longer apply, and was
                // applied only if a later state shows it.
                Some(s) if s.version > expected => {
                    let included = codec::decode_stored::<B::State>(&s.data)
                        .is_ok_and(|stored| B::includes(before, written, &stored));
                    return if included {
                        Resolved::Landed { current: false }
                    } else {
                        Resolved::NotApplied
                    };
                }
                _ => {}
            }
            // Still at `expected`: the write is on its way or lost. Taking the version first
            // settles it.
            let Ok(old) = codec::encode_stored(before) else {
                return Resolved::Unknown;
            };
            let settle = SnapshotWrite {
                kind: B::KIND,
                key: key.to_owned(),
                expected,
                epoch: fence.epoch.0,
                owner: B::owner(before),
                data: old,
                outbox: Vec::new(),
            };
            match store.save(settle).await {
                Ok(_) => return Resolved::NotApplied,
                // Something was written meanwhile (perhaps the lost write): look again.
                Err(StoreError::Conflict { .. } | StoreError::Fenced { .. }) => {}
                Err(_) => return Resolved::Unknown,
            }
        }
        Resolved::Unknown
    };
    tokio::time::timeout(RESOLVE_WITHIN, resolution)
        .await
        .unwrap_or(Resolved::Unknown)
}
