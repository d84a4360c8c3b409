//! The end of a run: the summary (printed as a table, written as JSON), the per-second timeline
//! (CSV) and the events to mark on the plot.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::stats::{Percentiles, SecondRow, Stats, ERROR_CLASSES};
use super::verify::Verification;

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OpSummary {
    pub count: u64,
    pub ok: u64,
    pub rate_per_sec: f64,
    pub latency_ms: Percentiles,
    /// Non-2xx answers by status, failures by class.
    pub errors: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetSummary {
    pub url: String,
    pub answered: u64,
    pub refused: u64,
    pub skipped_not_ready: u64,
}

/// A marker on the plot: seconds since the load started, and its label.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    pub second: f64,
    pub label: String,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub scenario: super::opts::Scenario,
    /// "closed" (`connections` shoppers) or "open" (`rate` arrivals per second).
    pub mode: &'static str,
    pub connections: Option<usize>,
    pub rate: Option<f64>,
    pub users: usize,
    pub products: usize,
    /// Unix time the load started, in seconds.
    pub started_at: f64,
    pub duration_secs: f64,
    pub requests: u64,
    pub ok: u64,
    /// Requests that were not 2xx, by class (4xx, 5xx, io, timeout, refused).
    pub errors: BTreeMap<String, u64>,
    pub failed: u64,
    pub throughput_per_sec: f64,
    pub latency_ms: Percentiles,
    pub operations: BTreeMap<String, OpSummary>,
    pub targets: Vec<TargetSummary>,
    pub verify: Option<Verification>,
    pub events: Vec<Event>,
    pub first_failures: Vec<String>,
    pub files: BTreeMap<String, PathBuf>,
}

pub fn errors_map(counts: &[u64; 5]) -> BTreeMap<String, u64> {
    ERROR_CLASSES
        .iter()
        .zip(counts)
        .map(|(c, n)| ((*c).to_owned(), *n))
        .collect()
}

pub fn operations(stats: &Stats, secs: f64) -> BTreeMap<String, OpSummary> {
    stats
        .ops
        .iter()
        .map(|(name, s)| {
            (
                (*name).to_owned(),
                OpSummary {
                    count: s.count,
                    ok: s.ok,
                    rate_per_sec: s.count as f64 / secs.max(1e-9),
                    latency_ms: Percentiles::of(&s.hist),
                    errors: s.errors.clone(),
                },
            )
        })
        .collect()
}

fn errors_text(errors: &BTreeMap<String, u64>) -> String {
    let parts: Vec<String> = errors
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{k}×{n}"))
        .collect();
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(" ")
    }
}

/// The end-of-run table: one row per operation and one for all.
pub fn table(s: &Summary) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}  errors",
        "operation", "count", "rate/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms"
    );
    let mut row = |name: &str, count: u64, rate: f64, l: &Percentiles, errors: String| {
        let _ = writeln!(
            out,
            "{name:<10} {count:>9} {rate:>9.1} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}  {errors}",
            l.p50, l.p90, l.p99, l.p999, l.max
        );
    };
    for (name, op) in &s.operations {
        row(
            name,
            op.count,
            op.rate_per_sec,
            &op.latency_ms,
            errors_text(&op.errors),
        );
    }
    row(
        "all",
        s.requests,
        s.throughput_per_sec,
        &s.latency_ms,
        errors_text(&s.errors),
    );
    for t in &s.targets {
        let _ = writeln!(
            out,
            "target {}: {} answered, {} connections refused, {} requests sent elsewhere (not ready)",
            t.url, t.answered, t.refused, t.skipped_not_ready
        );
    }
    if let Some(v) = &s.verify {
        let _ = writeln!(
            out,
            "verify: {} acknowledged add units and {} acknowledged checkouts of {} shoppers; \
             missing: {} (adds {}, orders {}, altered orders {}, stock not taken {}, products {}); \
             unreadable {}; uncertain writes (no answer or 5xx) {}",
            v.acknowledged_adds,
            v.acknowledged_checkouts,
            v.users_checked,
            v.missing_total,
            v.missing_adds,
            v.missing_orders,
            v.altered_orders,
            v.stock_not_taken,
            v.missing_products,
            v.unreadable,
            v.uncertain_writes
        );
    }
    out
}

pub fn timeline_csv(rows: &[SecondRow]) -> String {
    let mut out = String::from("second,requests,ok");
    for c in ERROR_CLASSES {
        let _ = write!(out, ",errors_{c}");
    }
    out.push_str(",p50_ms,p99_ms,max_ms\n");
    for r in rows {
        let _ = write!(out, "{},{},{}", r.second, r.requests, r.ok);
        for n in r.errors {
            let _ = write!(out, ",{n}");
        }
        let _ = writeln!(out, ",{:.3},{:.3},{:.3}", r.p50_ms, r.p99_ms, r.max_ms);
    }
    out
}

/// Events from `path`: `<time> <label>` per line, the time in Unix seconds (above 10^9) or in
/// seconds since the load started; blank lines and `#` comments skipped.
pub fn read_events(path: &Path, started_at: f64) -> Result<Vec<Event>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut events = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (time, label) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let t: f64 = time
            .parse()
            .map_err(|_| format!("{}:{}: {time:?} is not a time", path.display(), n + 1))?;
        let second = if t > 1e9 { t - started_at } else { t };
        events.push(Event {
            second,
            label: label.trim().to_owned(),
        });
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_take_unix_or_relative_times() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("events");
        std::fs::write(
            &path,
            "# comment\n1700000010.5 restart node 1\n\n3 scale 3 -> 5\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let events = read_events(&path, 1_700_000_000.0).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(events.len(), 2);
        assert!((events[0].second - 10.5).abs() < 1e-9);
        assert_eq!(events[0].label, "restart node 1");
        assert_eq!(
            (events[1].second, events[1].label.as_str()),
            (3.0, "scale 3 -> 5")
        );
    }

    #[test]
    fn the_timeline_has_one_line_per_second_and_a_header() {
        let mut s = Stats::default();
        s.record(
            "add",
            &super::super::stats::Outcome::Status(204),
            std::time::Duration::from_millis(2),
        );
        s.close_second(0);
        s.close_second(1);
        let csv = timeline_csv(&s.timeline);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("second,requests,ok,errors_4xx"));
        assert!(lines[1].starts_with("0,1,1,0,0,0,0,0,"));
    }
}
