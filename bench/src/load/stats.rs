//! What the run saw: an HDR histogram of latencies per operation and for each second, answers
//! by status, failures by class.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// The classes a request that was not a 2xx falls into.
pub const ERROR_CLASSES: [&str; 5] = ["4xx", "5xx", "io", "timeout", "refused"];

/// Latencies in microseconds, 1 µs to 10 min, 3 significant digits.
fn histogram() -> Histogram<u64> {
    match Histogram::new_with_bounds(1, 600_000_000, 3) {
        Ok(h) => h,
        // Constant bounds that the crate accepts: not reachable by anything a server sends.
        Err(e) => panic!("histogram bounds: {e}"),
    }
}

/// How one request ended.
pub enum Outcome<'a> {
    Status(u16),
    Failed(&'a str),
}

impl Outcome<'_> {
    /// `None` for a 2xx, else its error class.
    pub fn error_class(&self) -> Option<&'static str> {
        match self {
            Outcome::Status(s) if (200..300).contains(s) => None,
            Outcome::Status(s) if (400..500).contains(s) => Some("4xx"),
            Outcome::Status(_) => Some("5xx"),
            Outcome::Failed(class) => ERROR_CLASSES.iter().copied().find(|c| c == class),
        }
    }
    fn label(&self) -> String {
        match self {
            Outcome::Status(s) => s.to_string(),
            Outcome::Failed(class) => (*class).to_owned(),
        }
    }
}

pub struct OpStats {
    pub hist: Histogram<u64>,
    pub count: u64,
    pub ok: u64,
    /// Answers that were not 2xx by status ("503"), and failures by class ("io").
    pub errors: BTreeMap<String, u64>,
}

/// One second of the run, as the timeline and the plot show it.
#[derive(Clone, Debug, Serialize)]
pub struct SecondRow {
    /// Seconds since the load started (the row covers [second, second + 1)).
    pub second: u64,
    pub requests: u64,
    pub ok: u64,
    /// Counts in the order of `ERROR_CLASSES`.
    pub errors: [u64; 5],
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

pub struct Stats {
    pub ops: BTreeMap<&'static str, OpStats>,
    pub overall: Histogram<u64>,
    pub requests: u64,
    pub ok: u64,
    pub errors: [u64; 5],
    window: Histogram<u64>,
    window_requests: u64,
    window_ok: u64,
    window_errors: [u64; 5],
    pub timeline: Vec<SecondRow>,
    /// The first few failures, for the report.
    pub first_failures: Vec<String>,
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            ops: BTreeMap::new(),
            overall: histogram(),
            requests: 0,
            ok: 0,
            errors: [0; 5],
            window: histogram(),
            window_requests: 0,
            window_ok: 0,
            window_errors: [0; 5],
            timeline: Vec::new(),
            first_failures: Vec::new(),
        }
    }
}

impl Stats {
    pub fn record(&mut self, op: &'static str, outcome: &Outcome<'_>, latency: Duration) {
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let entry = self.ops.entry(op).or_insert_with(|| OpStats {
            hist: histogram(),
            count: 0,
            ok: 0,
            errors: BTreeMap::new(),
        });
        entry.hist.saturating_record(us);
        entry.count += 1;
        self.overall.saturating_record(us);
        self.window.saturating_record(us);
        self.requests += 1;
        self.window_requests += 1;
        match outcome.error_class() {
            None => {
                entry.ok += 1;
                self.ok += 1;
                self.window_ok += 1;
            }
            Some(class) => {
                *entry.errors.entry(outcome.label()).or_default() += 1;
                let k = ERROR_CLASSES.iter().position(|c| *c == class).unwrap_or(2);
                self.errors[k] += 1;
                self.window_errors[k] += 1;
            }
        }
    }

    pub fn note_failure(&mut self, text: String) {
        if self.first_failures.len() < 10 {
            self.first_failures.push(text);
        }
    }

    /// Closes the current second as row `second` of the timeline and returns it.
    pub fn close_second(&mut self, second: u64) -> SecondRow {
        let empty = self.window.is_empty();
        let q = |h: &Histogram<u64>, p: f64| {
            if empty {
                0.0
            } else {
                ms(h.value_at_quantile(p))
            }
        };
        let row = SecondRow {
            second,
            requests: self.window_requests,
            ok: self.window_ok,
            errors: self.window_errors,
            p50_ms: q(&self.window, 0.5),
            p99_ms: q(&self.window, 0.99),
            max_ms: if empty { 0.0 } else { ms(self.window.max()) },
        };
        self.window.reset();
        self.window_requests = 0;
        self.window_ok = 0;
        self.window_errors = [0; 5];
        self.timeline.push(row.clone());
        row
    }
}

/// Percentiles of a histogram in milliseconds.
#[derive(Clone, Debug, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self {
                p50: 0.0,
                p90: 0.0,
                p99: 0.0,
                p999: 0.0,
                max: 0.0,
            };
        }
        Self {
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_close_with_their_own_percentiles_and_errors() {
        let mut s = Stats::default();
        for ms in 1..=100u64 {
            s.record("add", &Outcome::Status(204), Duration::from_millis(ms));
        }
        s.record("add", &Outcome::Status(503), Duration::from_millis(5));
        s.record("checkout", &Outcome::Failed("io"), Duration::from_millis(5));
        let row = s.close_second(0);
        assert_eq!((row.requests, row.ok), (102, 100));
        assert_eq!(row.errors, [0, 1, 1, 0, 0]);
        assert!((row.p50_ms - 50.0).abs() < 1.0, "{}", row.p50_ms);
        assert!((row.max_ms - 100.0).abs() < 0.2, "{}", row.max_ms);
        let empty = s.close_second(1);
        assert_eq!((empty.requests, empty.p99_ms), (0, 0.0));
        assert_eq!(s.ops["add"].errors["503"], 1);
        assert_eq!(s.ops["checkout"].errors["io"], 1);
        assert_eq!(s.requests, 102);
    }
}
