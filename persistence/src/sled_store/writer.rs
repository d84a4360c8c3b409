//! The writer thread: applies queued writes, appends their operations to the log as one record,
//! makes it durable, then completes them all; and checkpoints sled.
//!
//! Snapshot saves, nearly every write, travel as plain values with the sender of their reply, so
//! the hot path boxes nothing; the rarer writes (outbox, catalog) are boxed closures.

use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::{storage, CommitStats, Trees};
use crate::wal::{Op, Wal};
use crate::{Error, SnapshotWrite};

/// How a boxed write is completed once its batch's append returned (`Err`: the append failed).
pub(super) type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;
/// Applies one write (not yet durable), records its operations, returns how to complete it.
pub(super) type Apply = Box<dyn FnOnce(&Trees, &mut Vec<Op>) -> Completion + Send>;

/// The most jobs one log append covers; bounds the wait of the first job in a batch.
const MAX_BATCH: usize = 4096;

pub(super) enum Job {
    Save(SnapshotWrite, oneshot::Sender<Result<u64, Error>>),
    Other(Apply),
}

/// A job applied to the trees, waiting for its batch to be durable.
enum Applied {
    Save(oneshot::Sender<Result<u64, Error>>, Result<u64, Error>),
    Other(Completion),
}

impl Job {
    fn apply(self, trees: &Trees, ops: &mut Vec<Op>) -> Applied {
        match self {
            Self::Save(write, reply) => Applied::Save(reply, trees.save(&write, ops)),
            Self::Other(job) => Applied::Other(job(trees, ops)),
        }
    }
}

impl Applied {
    fn complete(self, flushed: &Result<(), String>) {
        match self {
            Self::Save(reply, result) => {
                let _ = reply.send(once_durable(result, flushed));
            }
            Self::Other(complete) => complete(flushed.clone()),
        }
    }
}

/// A write's result as its caller sees it: its own error first, else the batch's append's.
pub(super) fn once_durable<T>(
    result: Result<T, Error>,
    flushed: &Result<(), String>,
) -> Result<T, Error> {
    match (result, flushed) {
        (Ok(value), Ok(())) => Ok(value),
        (Err(e), _) => Err(e),
        (Ok(_), Err(e)) => Err(Error::Unavailable(format!("flush failed: {e}"))),
    }
}

pub(super) fn writer_loop(
    trees: &Trees,
    mut wal: Wal,
    rx: &mpsc::Receiver<Job>,
    stats: &CommitStats,
    every: Duration,
) {
    let mut last_checkpoint = Instant::now();
    // Reused from batch to batch.
    let (mut ops, mut applied) = (Vec::new(), Vec::new());
    loop {
        let first = match rx.recv_timeout(every) {
            Ok(job) => job,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                checkpoint(trees, &mut wal, &mut last_checkpoint, stats);
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        applied.push(first.apply(trees, &mut ops));
        // Everything queued while the last append ran joins this batch.
        while applied.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => applied.push(job.apply(trees, &mut ops)),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let batch_end = trees.next_seq.load(Ordering::Relaxed);
        let result = if ops.is_empty() {
            Ok(())
        } else {
            wal.append(&ops).map_err(|e| e.to_string())
        };
        if result.is_ok() {
            trees.durable_seq.store(batch_end, Ordering::Release);
        }
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        stats.appends.fetch_add(1, Ordering::Relaxed);
        stats.append_micros.fetch_add(micros, Ordering::Relaxed);
        stats
            .writes
            .fetch_add(applied.len() as u64, Ordering::Relaxed);
        if let Err(e) = &result {
            // The batch is applied in memory and maybe in sled but is not durable, and after a
            // failed sync the file's state is unknown (the lesson of PostgreSQL's "fsyncgate"):
            // stop, and let recovery rebuild from flushed sled and the log. Nothing is acknowledged.
            tracing::error!(error = %e, "write-ahead log append failed; stopping to recover on restart");
            std::process::abort();
        }
        // One pass with nothing else in it, so the woken requests find the whole batch complete.
        for done in applied.drain(..) {
            done.complete(&result);
        }
        ops.clear();
        if last_checkpoint.elapsed() >= every || wal.len() >= super::CHECKPOINT_BYTES {
            checkpoint(trees, &mut wal, &mut last_checkpoint, stats);
        }
    }
    checkpoint(trees, &mut wal, &mut last_checkpoint, stats);
}

/// Makes sled durable up to now, then empties the log it covers.
fn checkpoint(trees: &Trees, wal: &mut Wal, last: &mut Instant, stats: &CommitStats) {
    *last = Instant::now();
    if wal.len() == 0 {
        return;
    }
    let flushed = trees
        .spill_memtable()
        .and_then(|()| trees.mark_checkpoint())
        .and_then(|()| trees.db.flush().map_err(storage));
    stats.checkpoints.fetch_add(1, Ordering::Relaxed);
    let micros = u64::try_from(last.elapsed().as_micros()).unwrap_or(u64::MAX);
    stats.checkpoint_micros.fetch_add(micros, Ordering::Relaxed);
    match flushed {
        Ok(_) => {
            if let Err(e) = wal.reset() {
                // The log's header may or may not name the new generation: appending either way
                // could hide acknowledged writes from replay. Stop; restart recovers from sled.
                tracing::error!(error = %e, "cannot reset the write-ahead log; stopping");
                std::process::abort();
            }
        }
        Err(e) => tracing::error!(error = %e, "checkpoint failed; the log keeps the writes"),
    }
}
