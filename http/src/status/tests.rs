#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::render::*;
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
