//! Counters of the peer link, as plain atomics so the hot path pays one relaxed add and the
//! HTTP layer can export them later (it owns the metrics registry; this crate does not).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use super::PeerError;

/// Upper bounds, in seconds, of the latency histogram's buckets (Prometheus `le` labels); an
/// implicit `+Inf` bucket holds the rest.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Counters of one node's peer link: the client side (calls this node makes) and the server side
/// (connections and requests it accepts). Share one `Arc<PeerStats>` between both, or read each.
#[derive(Debug, Default)]
pub struct PeerStats {
    requests_sent: AtomicU64,
    unreachable: AtomicU64,
    overloaded: AtomicU64,
    timeout: AtomicU64,
    closed: AtomicU64,
    refused: AtomicU64,
    remote: AtomicU64,
    codec: AtomicU64,
    connections_opened: AtomicU64,
    connections_accepted: AtomicU64,
    auth_refused: AtomicU64,
    bad_frames: AtomicU64,
    requests_served: AtomicU64,
    requests_shed: AtomicU64,
    latency: LatencyHistogram,
}

/// A point-in-time copy of [`PeerStats`].
#[derive(Debug, Clone, PartialEq)]
pub struct PeerStatsSnapshot {
    /// Client: requests handed to a connection.
    pub requests_sent: u64,
    /// Client: failed calls, by [`PeerError`] variant.
    pub unreachable: u64,
    pub overloaded: u64,
    pub timeout: u64,
    pub closed: u64,
    pub refused: u64,
    pub remote: u64,
    pub codec: u64,
    /// Client: connections opened (handshake completed).
    pub connections_opened: u64,
    /// Server: TCP connections accepted, before authentication.
    pub connections_accepted: u64,
    /// Server: connections refused in the handshake (wrong secret, garbage, HTTP, timeout).
    pub auth_refused: u64,
    /// Server: authenticated connections closed for a malformed or oversized frame.
    pub bad_frames: u64,
    /// Server: requests whose handler completed.
    pub requests_served: u64,
    /// Server: requests answered "overloaded" without running the handler.
    pub requests_shed: u64,
    /// Client: latency of successful calls.
    pub latency: HistogramSnapshot,
}

impl PeerStats {
    pub fn snapshot(&self) -> PeerStatsSnapshot {
        PeerStatsSnapshot {
            requests_sent: self.requests_sent.load(Relaxed),
            unreachable: self.unreachable.load(Relaxed),
            overloaded: self.overloaded.load(Relaxed),
            timeout: self.timeout.load(Relaxed),
            closed: self.closed.load(Relaxed),
            refused: self.refused.load(Relaxed),
            remote: self.remote.load(Relaxed),
            codec: self.codec.load(Relaxed),
            connections_opened: self.connections_opened.load(Relaxed),
            connections_accepted: self.connections_accepted.load(Relaxed),
            auth_refused: self.auth_refused.load(Relaxed),
            bad_frames: self.bad_frames.load(Relaxed),
            requests_served: self.requests_served.load(Relaxed),
            requests_shed: self.requests_shed.load(Relaxed),
            latency: self.latency.snapshot(),
        }
    }

    pub(crate) fn record_error(&self, error: &PeerError) {
        let counter = match error {
            PeerError::Unreachable(_) => &self.unreachable,
            PeerError::Overloaded => &self.overloaded,
            PeerError::Timeout => &self.timeout,
            PeerError::Closed => &self.closed,
            PeerError::Refused(_) => &self.refused,
            PeerError::Remote(_) => &self.remote,
            PeerError::Codec(_) => &self.codec,
        };
        counter.fetch_add(1, Relaxed);
    }

    pub(crate) fn record_success(&self, latency: Duration) {
        self.latency.observe(latency);
    }

    pub(crate) fn request_sent(&self) {
        self.requests_sent.fetch_add(1, Relaxed);
    }

    pub(crate) fn connection_opened(&self) {
        self.connections_opened.fetch_add(1, Relaxed);
    }

    pub(crate) fn connection_accepted(&self) {
        self.connections_accepted.fetch_add(1, Relaxed);
    }

    pub(crate) fn auth_refused(&self) {
        self.auth_refused.fetch_add(1, Relaxed);
    }

    pub(crate) fn bad_frame(&self) {
        self.bad_frames.fetch_add(1, Relaxed);
    }

    pub(crate) fn request_served(&self) {
        self.requests_served.fetch_add(1, Relaxed);
    }

    pub(crate) fn request_shed(&self) {
        self.requests_shed.fetch_add(1, Relaxed);
    }
}

/// A fixed-bucket latency histogram of atomics.
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    /// Per bucket (not cumulative); the `+Inf` bucket is `count` minus their sum.
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

/// A histogram in Prometheus' shape: cumulative counts per upper bound, then count and sum.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// `(le, observations ≤ le)` for each bound of [`LATENCY_BUCKETS`], cumulative.
    pub buckets: Vec<(f64, u64)>,
    /// All observations (the `+Inf` bucket).
    pub count: u64,
    pub sum_seconds: f64,
}

impl LatencyHistogram {
    pub fn observe(&self, latency: Duration) {
        let seconds = latency.as_secs_f64();
        if let Some(index) = LATENCY_BUCKETS.iter().position(|le| seconds <= *le) {
            self.buckets[index].fetch_add(1, Relaxed);
        }
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut total = 0;
        let buckets = LATENCY_BUCKETS
            .iter()
            .zip(&self.buckets)
            .map(|(le, bucket)| {
                total += bucket.load(Relaxed);
                (*le, total)
            })
            .collect();
        let sum_seconds = Duration::from_nanos(self.sum_nanos.load(Relaxed)).as_secs_f64();
        // Reads are not one atomic step; keep the snapshot self-consistent (+Inf ≥ every bucket).
        let count = self.count.load(Relaxed).max(total);
        HistogramSnapshot {
            buckets,
            count,
            sum_seconds,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative_with_an_inf_bucket() {
        let histogram = LatencyHistogram::default();
        histogram.observe(Duration::from_micros(50));
        histogram.observe(Duration::from_micros(100));
        histogram.observe(Duration::from_millis(3));
        histogram.observe(Duration::from_secs(10));
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.buckets[0], (0.0001, 2));
        assert_eq!(snapshot.buckets[4], (0.0025, 2));
        assert_eq!(snapshot.buckets[5], (0.005, 3));
        assert_eq!(snapshot.buckets[13], (2.5, 3));
        assert_eq!(snapshot.count, 4);
        assert!((snapshot.sum_seconds - 10.00315).abs() < 1e-9);
    }

    #[test]
    fn errors_are_counted_by_kind() {
        let stats = PeerStats::default();
        stats.record_error(&PeerError::Timeout);
        stats.record_error(&PeerError::Timeout);
        stats.record_error(&PeerError::Refused("x".into()));
        let snapshot = stats.snapshot();
        assert_eq!(
            (snapshot.timeout, snapshot.refused, snapshot.closed),
            (2, 1, 0)
        );
    }
}
