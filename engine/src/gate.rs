//! A bound on work a request can start that is heavy in CPU and memory: password hashing
//! (argon2id takes ~19 MiB and tens of milliseconds per hash).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::Error;

/// At most `slots` jobs run at once on the blocking pool, and at most `queue` more wait for a
/// slot; past that a job is refused at once with a retryable error (503). Without it a flood of
/// logins started one blocking thread and one hash's memory each: 150 concurrent logins measured
/// 1.5 GB of peak memory.
pub(crate) struct Gate {
    slots: Arc<Semaphore>,
    /// Jobs admitted and not yet finished (waiting or running).
    admitted: AtomicUsize,
    limit: usize,
    what: &'static str,
}

/// Gives an admission back when its job ends, or when its caller gives up waiting.
struct Admission<'a>(&'a AtomicUsize);

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Gate {
    pub fn new(slots: usize, queue: usize, what: &'static str) -> Self {
        let slots = slots.max(1);
        Self {
            slots: Arc::new(Semaphore::new(slots)),
            admitted: AtomicUsize::new(0),
            limit: slots + queue,
            what,
        }
    }

    /// One slot per core but one (left to the write path, as the HTTP workers leave it), at least
    /// one, and a queue of 128 per core: a few seconds at ~30 ms per hash, so a burst of real
    /// logins waits rather than fails, while a flood is cut off.
    pub fn per_core(what: &'static str) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self::new(cores.saturating_sub(1).max(1), 128 * cores, what)
    }

    pub async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Error> {
        let _admission = Admission(&self.admitted);
        if self.admitted.fetch_add(1, Ordering::AcqRel) >= self.limit {
            return Err(Error::Unavailable(format!(
                "too many {} at once; retry in a moment",
                self.what
            )));
        }
        let permit = Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .map_err(|_| Error::Unavailable(format!("{} are not taken now", self.what)))?;
        // The permit goes with the job: a caller that stops waiting does not free its slot
        // while its hash still runs.
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            job()
        })
        .await
        .map_err(|e| Error::Unavailable(format!("worker pool: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(flavor = "current_thread")]
    async fn runs_at_most_slots_at_once_and_refuses_past_the_queue() {
        let gate = Gate::new(2, 3, "hashes");
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let jobs = (0..10).map(|_| {
            let (running, most) = (Arc::clone(&running), Arc::clone(&most));
            gate.run(move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(30));
                running.fetch_sub(1, Ordering::SeqCst);
            })
        });
        let results = futures_util::future::join_all(jobs).await;
        let done = results.iter().filter(|r| r.is_ok()).count();
        let refused = results
            .iter()
            .filter(|r| matches!(r, Err(Error::Unavailable(m)) if m.contains("too many hashes")))
            .count();
        assert_eq!((done, refused), (5, 5), "{results:?}");
        assert_eq!(most.load(Ordering::SeqCst), 2);
        // Everything given back: the next job is admitted.
        assert_eq!(gate.admitted.load(Ordering::SeqCst), 0);
        assert!(gate.run(|| ()).await.is_ok());
    }
}
