//! `emporium cluster status`: asks one node for its view of the cluster (`GET /admin/cluster`,
//! admin token) and prints it as tables, or the raw document with `--json`.
//!
//! Every failure (nothing listening, a missing or non-admin token, a node that is not in a
//! cluster, something that is not an emporium node) becomes one line naming the node and what to
//! do about it; nothing here panics.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

/// How long the whole request may take (connecting included).
const TIMEOUT: Duration = Duration::from_secs(10);
/// A status document lists every shard: ~70 bytes each, at most 65,536 shards.
const BODY_LIMIT: usize = 64 * 1024 * 1024;
/// Handoffs shown (the node keeps a bounded history; `--json` has all of it).
const HANDOFFS_SHOWN: usize = 10;
/// Shard ranges listed per state before "… and N more".
const RANGES_SHOWN: usize = 16;

/// `emporium cluster status` options.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The node's API address (http://host:port); any node answers with its own view.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// An admin's bearer token (an account whose email is in EMPORIUM_ADMIN_EMAILS).
    #[arg(long, env = "EMPORIUM_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print the node's status document as it came (JSON) instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// Fetches the document and prints it; `Err` is the one line to show.
pub async fn run(args: StatusArgs) -> Result<(), String> {
    let (base, endpoint) = endpoint(&args.url)?;
    let token = args
        .token
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let body = fetch(&base, &endpoint, token).await?;
    let doc: Value = serde_json::from_slice(&body).map_err(|e| {
        format!("{base} answered 200 but not with JSON ({e}): is it an emporium node?")
    })?;
    if args.json {
        println!("{}", String::from_utf8_lossy(&body).trim_end());
        return Ok(());
    }
    print!("{}", render(&doc, now_ms())?);
    Ok(())
}

/// `(base, base + /admin/cluster)` from what the operator typed: `http://host:port`, with or
/// without a trailing slash or the path itself; `host:port` alone means http.
fn endpoint(url: &str) -> Result<(String, String), String> {
    let url = url.trim();
    let with_scheme = if url.contains("://") {
        url.to_owned()
    } else {
        format!("http://{url}")
    };
    let uri: awc::http::Uri = with_scheme
        .parse()
        .map_err(|e| format!("--url {url:?} is not a URL like http://127.0.0.11:8080 ({e})"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(format!(
                "--url {url:?}: this command speaks plain HTTP only; give the node's own \
                 http:// address (or a port-forward to it), not the load balancer's https://"
            ))
        }
        _ => return Err(format!("--url {url:?} must start with http://")),
    }
    let Some(authority) = uri.authority() else {
        return Err(format!("--url {url:?} has no host"));
    };
    let base = format!("http://{authority}");
    let path = uri.path().trim_end_matches('/');
    let path = if path.ends_with("/admin/cluster") {
        path.to_owned()
    } else {
        format!("{path}/admin/cluster")
    };
    Ok((base.clone(), format!("{base}{path}")))
}

async fn fetch(base: &str, endpoint: &str, token: Option<&str>) -> Result<Vec<u8>, String> {
    use awc::error::{ConnectError, SendRequestError};
    let client = awc::Client::builder()
        .timeout(TIMEOUT)
        .connector(awc::Connector::new().timeout(TIMEOUT))
        .finish();
    let mut request = client
        .get(endpoint)
        .insert_header(("accept", "application/json"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let mut response = request.send().await.map_err(|e| match e {
        SendRequestError::Connect(ConnectError::Io(io))
            if io.kind() == std::io::ErrorKind::ConnectionRefused =>
        {
            format!("cannot reach {base}: connection refused (is an emporium node running there?)")
        }
        SendRequestError::Connect(ConnectError::Timeout) | SendRequestError::Timeout => {
            format!("{base} did not answer within {} s", TIMEOUT.as_secs())
        }
        SendRequestError::Connect(ConnectError::Resolver(r)) => {
            format!("cannot resolve the host of {base}: {r}")
        }
        SendRequestError::Connect(c) => format!("cannot reach {base}: {c}"),
        other => format!("GET {endpoint} failed: {other}"),
    })?;
    let status = response.status().as_u16();
    let body = response
        .body()
        .limit(BODY_LIMIT)
        .await
        .map_err(|e| format!("{base} answered {status} but the body did not arrive: {e}"))?;
    if status == 200 {
        return Ok(body.to_vec());
    }
    // The API's errors are `{"error","message"}`; anything else is shown as text, shortened.
    let message = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(&body);
            let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
            text.chars().take(200).collect()
        });
    Err(match status {
        401 if token.is_none() => format!(
            "{base} wants an admin token: pass --token or set EMPORIUM_ADMIN_TOKEN \
             (log in as an account listed in EMPORIUM_ADMIN_EMAILS)"
        ),
        401 => format!(
            "{base} refused the token (401: {message}): it is invalid, expired or signed \
             with another EMPORIUM_JWT_SECRET; log in again"
        ),
        403 => format!(
            "{base} refused the token (403): it is not an admin's; log in as an account \
             listed in the node's EMPORIUM_ADMIN_EMAILS"
        ),
        404 if message.to_lowercase().contains("not part of a cluster") => format!(
            "{base} is not part of a cluster: it runs as a single node (no EMPORIUM_PEERS or \
             EMPORIUM_PEER_DNS)"
        ),
        404 => format!("{base} has no /admin/cluster (404): is it an emporium node?"),
        _ => format!("GET {endpoint} answered {status}: {message}"),
    })
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

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

fn percent(n: usize, total: usize) -> String {
    format!("{:.1}%", n as f64 * 100.0 / total as f64)
}

/// `0-3, 7, 9-12` for sorted shard ids, cut after a few ranges.
fn ranges(ids: &[u32]) -> String {
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
fn age(then_ms: u64, now_ms: u64) -> String {
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
fn clock(ms: u64) -> String {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    /// A three-node view, as node 1 sends it: node 2 is restarting (its shards with node 0 as
    /// stand-in), two shards released, one handoff to nobody.
    fn sample() -> Value {
        let owners = [
            Some(0),
            Some(0),
            Some(1),
            None,
            Some(0),
            Some(1),
            None,
            Some(1),
        ];
        let shards: Vec<Value> = owners
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let state = match o {
                    Some(1) => "serving",
                    Some(_) => "remote",
                    None => "unowned",
                };
                json!({"shard": i, "owner": o, "epoch": o.map(|_| 3 + i as u64), "state": state})
            })
            .collect();
        json!({
            "node": 1, "generation": 7, "leaving": false, "claimValid": true, "shardCount": 8,
            "members": [
                {"ordinal": 0, "address": "127.0.0.11:7070", "generation": 4, "state": "serving", "shards": 3},
                {"ordinal": 1, "address": "127.0.0.12:7070", "generation": 7, "state": "serving", "shards": 3},
                {"ordinal": 2, "address": "127.0.0.13:7070", "generation": 5, "state": "gone", "shards": 0}
            ],
            "inMotion": 2,
            "shards": shards,
            "handoffs": [
                {"shards": 3, "from": 2, "to": 0, "atMs": 1_764_748_212_345_u64, "durationMs": 41},
                {"shards": 2, "from": 1, "to": null, "atMs": 1_764_748_272_000_u64, "durationMs": 7}
            ],
            "startedAtMs": 1_764_748_000_000_u64,
            "forwarded": {"sent": 120, "served": 98, "notSent": 1, "noReply": 0, "heldNow": 0,
                          "heldTotal": 5, "holdTimeouts": 0, "fencedWrites": 2}
        })
    }

    #[test]
    fn renders_members_shards_handoffs_and_counters() {
        let now = 1_764_748_300_000;
        let out = render(&sample(), now).unwrap();
        let want = "\
Cluster as node 1 sees it (generation 7, claim valid; 8 shards; up 5m 0s)

MEMBERS
  ORDINAL  ADDRESS          GENERATION  STATE    SHARDS
        0  127.0.0.11:7070           4  serving       3
      1 *  127.0.0.12:7070           7  serving       3
        2  127.0.0.13:7070           5  gone          0
  (* this node)

SHARDS PER NODE
  NODE  SHARDS  SHARE  HIGHEST EPOCH
     0       3  37.5%              7
     1       3  37.5%             10
  none       2  25.0%              -

SHARDS IN MOTION: 2
  unowned  3, 6

LAST HANDOFFS (2 of 2 this node remembers, oldest first)
  AT (UTC)                    AGO  SHARDS  FROM → TO     DURATION
  2025-12-03 07:50:12.345  1m 27s       3  2 → 0            41 ms
  2025-12-03 07:51:12.000     28s       2  1 → released      7 ms

FORWARDED (since this node started)
  SENT  SERVED  NOT SENT  NO REPLY  HELD NOW  HELD TOTAL  HOLD TIMEOUTS  FENCED WRITES
   120      98         1         0         0           5              0              2
";
        assert_eq!(out, want, "\n{out}");
    }

    #[test]
    fn flags_a_leaving_node_without_a_claim_and_tolerates_missing_fields() {
        let doc = json!({"node": 2, "leaving": true, "claimValid": false, "members": []});
        let out = render(&doc, 0).unwrap();
        assert!(out.contains("claim NOT valid"), "{out}");
        assert!(out.contains("LEAVING"), "{out}");
        assert!(out.contains("SHARDS IN MOTION: 0"), "{out}");
        assert!(out.contains("LAST HANDOFFS (0 of 0"), "{out}");
    }

    #[test]
    fn refuses_what_is_not_a_status_document() {
        let e = render(&json!({"status": "ready"}), 0).unwrap_err();
        assert!(e.contains("not a cluster status document"), "{e}");
    }

    #[test]
    fn ranges_and_clock() {
        assert_eq!(ranges(&[0, 1, 2, 3, 7, 9, 10]), "0-3, 7, 9-10");
        let many: Vec<u32> = (0..100).map(|i| i * 2).collect();
        assert!(ranges(&many).ends_with("… and 84 more ranges"));
        assert_eq!(clock(0), "-");
        assert_eq!(clock(951_782_400_000), "2000-02-29 00:00:00.000");
        assert_eq!(age(1000, 3_725_000), "1h 2m");
    }

    #[test]
    fn urls_the_operator_may_type() {
        let e = |u: &str| endpoint(u).map(|(_, e)| e);
        let want = "http://127.0.0.11:8080/admin/cluster";
        for typed in [
            "http://127.0.0.11:8080",
            "http://127.0.0.11:8080/",
            "127.0.0.11:8080",
            "http://127.0.0.11:8080/admin/cluster",
        ] {
            assert_eq!(e(typed).as_deref(), Ok(want), "{typed}");
        }
        assert!(e("https://shop.example.com")
            .unwrap_err()
            .contains("plain HTTP"));
        assert!(e("ftp://x").unwrap_err().contains("http://"));
        assert!(e("http://").is_err());
    }
}
