//! The status document rendered as tables: members, shards per node, shards in motion, the last
//! handoffs and the forwarding counters.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Deserialize;
use serde_json::Value;

use super::{HANDOFFS_SHOWN, RANGES_SHOWN};

// --- the document, as `/admin/cluster` sends it (unknown fields ignored, missing ones zero) ---

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Doc {
    node: u32,
    generation: u64,
    leaving: bool,
    claim_valid: bool,
    shard_count: u32,
    members: Vec<Member>,
    in_motion: usize,
    shards: Vec<Shard>,
    handoffs: Vec<Handoff>,
    started_at_ms: u64,
    forwarded: Forwarded,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Member {
    ordinal: u32,
    address: String,
    generation: u64,
    state: String,
    shards: usize,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Shard {
    shard: u32,
    owner: Option<u32>,
    epoch: Option<u64>,
    state: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Handoff {
    shards: usize,
    from: u32,
    to: Option<u32>,
    at_ms: u64,
    duration_ms: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Forwarded {
    sent: u64,
    served: u64,
    not_sent: u64,
    no_reply: u64,
    held_now: u64,
    held_total: u64,
    hold_timeouts: u64,
    fenced_writes: u64,
}

/// The tables for a status document; `now_ms` is the wall clock ages are measured against.
pub fn render(doc: &Value, now_ms: u64) -> Result<String, String> {
    if !doc.get("members").is_some_and(Value::is_array) || doc.get("node").is_none() {
        return Err("the answer is not a cluster status document (no node or members)".into());
    }
    let doc: Doc = serde_json::from_value(doc.clone())
        .map_err(|e| format!("the cluster status document does not parse: {e}"))?;
    let mut out = String::new();

    // Whose view this is.
    let mut flags = vec![if doc.claim_valid {
        "claim valid"
    } else {
        "claim NOT valid (serves nothing)"
    }];
    if doc.leaving {
        flags.push("LEAVING");
    }
    let _ = writeln!(
        out,
        "Cluster as node {} sees it (generation {}, {}; {} shards; up {})",
        doc.node,
        doc.generation,
        flags.join(", "),
        doc.shard_count,
        age(doc.started_at_ms, now_ms),
    );

    // Members.
    let _ = writeln!(out, "\nMEMBERS");
    let mut t = Table::new(&[
        ("ORDINAL", Align::Right),
        ("ADDRESS", Align::Left),
        ("GENERATION", Align::Right),
        ("STATE", Align::Left),
        ("SHARDS", Align::Right),
    ]);
    for m in &doc.members {
        let ordinal = if m.ordinal == doc.node {
            format!("{} *", m.ordinal)
        } else {
            m.ordinal.to_string()
        };
        t.row(vec![
            ordinal,
            or_dash(&m.address),
            m.generation.to_string(),
            or_dash(&m.state),
            m.shards.to_string(),
        ]);
    }
    t.render(&mut out);
    let _ = writeln!(out, "  (* this node)");

    // Shards per node, from every shard's owner.
    let total = doc.shards.len().max(1);
    let mut per_node: BTreeMap<u32, (usize, u64)> = BTreeMap::new();
    let mut unowned = 0;
    for s in &doc.shards {
        match s.owner {
            Some(o) => {
                let e = per_node.entry(o).or_default();
                e.0 += 1;
                e.1 = e.1.max(s.epoch.unwrap_or(0));
            }
            None => unowned += 1,
        }
    }
    let _ = writeln!(out, "\nSHARDS PER NODE");
    let mut t = Table::new(&[
        ("NODE", Align::Right),
        ("SHARDS", Align::Right),
        ("SHARE", Align::Right),
        ("HIGHEST EPOCH", Align::Right),
    ]);
    for (node, (n, epoch)) in &per_node {
        t.row(vec![
            node.to_string(),
            n.to_string(),
            percent(*n, total),
            epoch.to_string(),
        ]);
    }
    if unowned > 0 {
        t.row(vec![
            "none".into(),
            unowned.to_string(),
            percent(unowned, total),
            "-".into(),
        ]);
    }
    t.render(&mut out);

    // Shards in motion: being handed off by this node, released, or unknown to it.
    let _ = writeln!(out, "\nSHARDS IN MOTION: {}", doc.in_motion);
    let mut moving: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for s in &doc.shards {
        if matches!(s.state.as_str(), "draining" | "unowned" | "unknown") {
            moving.entry(s.state.as_str()).or_default().push(s.shard);
        }
    }
    for (state, shards) in &moving {
        let _ = writeln!(out, "  {state:<8} {}", ranges(shards));
    }

    // The last handoffs.
    let shown = doc.handoffs.len().min(HANDOFFS_SHOWN);
    let _ = writeln!(
        out,
        "\nLAST HANDOFFS ({shown} of {} this node remembers, oldest first)",
        doc.handoffs.len()
    );
    if doc.handoffs.is_empty() {
        let _ = writeln!(out, "  none");
    } else {
        let mut t = Table::new(&[
            ("AT (UTC)", Align::Left),
            ("AGO", Align::Right),
            ("SHARDS", Align::Right),
            ("FROM → TO", Align::Left),
            ("DURATION", Align::Right),
        ]);
        for h in &doc.handoffs[doc.handoffs.len() - shown..] {
            let to =
                h.to.map_or_else(|| "released".to_owned(), |t| t.to_string());
            t.row(vec![
                clock(h.at_ms),
                age(h.at_ms, now_ms),
                h.shards.to_string(),
                format!("{} → {to}", h.from),
                format!("{} ms", h.duration_ms),
            ]);
        }
        t.render(&mut out);
    }

    // Forwarding.
    let f = &doc.forwarded;
    let _ = writeln!(out, "\nFORWARDED (since this node started)");
    let mut t = Table::new(&[
        ("SENT", Align::Right),
        ("SERVED", Align::Right),
        ("NOT SENT", Align::Right),
        ("NO REPLY", Align::Right),
        ("HELD NOW", Align::Right),
        ("HELD TOTAL", Align::Right),
        ("HOLD TIMEOUTS", Align::Right),
        ("FENCED WRITES", Align::Right),
    ]);
    t.row(
        [
            f.sent,
            f.served,
            f.not_sent,
            f.no_reply,
            f.held_now,
            f.held_total,
            f.hold_timeouts,
            f.fenced_writes,
        ]
        .iter()
        .map(ToString::to_string)
        .collect(),
    );
    t.render(&mut out);
    Ok(out)
}

fn or_dash(s: &str) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s.to_owned()
    }
}

pub(super) fn percent(n: usize, total: usize) -> String {
    format!("{:.1}%", n as f64 * 100.0 / total as f64)
}

/// `0-3, 7, 9-12` for sorted shard ids, cut after a few ranges.
pub(super) fn ranges(ids: &[u32]) -> String {
    let mut spans: Vec<(u32, u32)> = Vec::new();
    for &id in ids {
        match spans.last_mut() {
            Some((_, end)) if id == end.saturating_add(1) => *end = id,
            _ => spans.push((id, id)),
        }
    }
    let mut parts: Vec<String> = spans
        .iter()
        .take(RANGES_SHOWN)
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect();
    if spans.len() > RANGES_SHOWN {
        parts.push(format!("… and {} more ranges", spans.len() - RANGES_SHOWN));
    }
    parts.join(", ")
}

/// How long ago `then_ms` was: `42s`, `3m 5s`, `2h 10m`, `4d 3h`; `-` when unknown.
pub(super) fn age(then_ms: u64, now_ms: u64) -> String {
    if then_ms == 0 {
        return "-".into();
    }
    let s = now_ms.saturating_sub(then_ms) / 1000;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// `2026-12-03 07:50:12.345` (UTC) for a Unix time in milliseconds.
pub(super) fn clock(ms: u64) -> String {
    if ms == 0 {
        return "-".into();
    }
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:03}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`, for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[derive(Clone, Copy)]
enum Align {
    Left,
    Right,
}

/// A plain-text table: a header row, columns as wide as their widest cell, two spaces apart.
struct Table {
    columns: Vec<(&'static str, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(columns: &[(&'static str, Align)]) -> Self {
        Self {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn render(&self, out: &mut String) {
        let width = |s: &str| s.chars().count();
        let widths: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, (head, _))| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(i))
                    .map(|c| width(c))
                    .chain([width(head)])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |out: &mut String, cells: &mut dyn Iterator<Item = &str>| {
            let mut text = String::from(" ");
            for (i, cell) in cells.enumerate() {
                let (w, align) = (widths.get(i).copied().unwrap_or(0), self.columns[i].1);
                let pad = " ".repeat(w.saturating_sub(width(cell)));
                text.push(' ');
                match align {
                    Align::Left => {
                        text.push_str(cell);
                        text.push_str(&pad);
                    }
                    Align::Right => {
                        text.push_str(&pad);
                        text.push_str(cell);
                    }
                }
                text.push(' ');
            }
            let _ = writeln!(out, "{}", text.trim_end());
        };
        line(out, &mut self.columns.iter().map(|(h, _)| *h));
        for row in &self.rows {
            line(
                out,
                &mut row.iter().take(self.columns.len()).map(String::as_str),
            );
        }
    }
}
