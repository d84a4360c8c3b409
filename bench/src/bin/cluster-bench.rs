//! The cluster's load generator (driven by `scripts/bench-cluster.sh`): a closed loop of keep-alive
//! HTTP/1.1 connections on one thread, with each request's latency recorded.
//!
//! ```text
//! cluster-bench run --users FILE [--owners FILE --shards N --node ORD=ADDR ...]
//!     --request add|read --conns C --duration SECS --rounds R [--warmup SECS]
//!     --variant 'NAME|TARGET|PIDS' ...
//! cluster-bench activate --users FILE --owners FILE --shards N --home ORD --addr ADDR
//!     --count N --conns C [--request read|add]
//! ```
//!
//! `--users`: one `email token` per line. `--owners`: one `shard owner` per line (the shards of
//! `GET /admin/cluster`). A user's owner is `owners[ShardMap::new(shards).shard_of(email)]`: carts
//! are placed by the email's bytes.
//!
//! `run` sends every variant the same users, interleaved: each round runs every variant for
//! `--duration` (the order alternates between rounds), so a slow spell of the machine hits them
//! alike. A variant's TARGET is `owner` (each request to its user's owner node), `forwarded` (to
//! the next listed node after the owner: a node that must forward it), or a comma list of
//! addresses (connection i sends to address i mod n: a balancer spreading connections). PIDS (comma
//! list, may be empty) are the server processes whose user+system CPU over the variant's run is
//! divided by its requests; `--store-pid PID` adds the store's own CPU per request to each line.
//!
//! `activate` sends one request per user whose owner is node `--home`, to `--addr`, `--count`
//! users at most: it activates that many cart actors (`read`: GET /api/cart, a store read of a
//! cart that does not exist yet; `add`: one item each, a store write).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

type Result<T> = std::result::Result<T, String>;

#[path = "cluster_bench/conn.rs"]
mod conn;
#[path = "cluster_bench/opts.rs"]
mod opts;
#[path = "cluster_bench/stats.rs"]
mod stats;

use conn::*;
use opts::*;
use stats::*;

/// Where one variant sends a given user's requests from a given connection.
enum Target {
    Owner,
    Forwarded,
    Spread(Vec<SocketAddr>),
}

struct Variant {
    name: String,
    target: Target,
    pids: Vec<String>,
}

fn parse_variant(spec: &str) -> Result<Variant> {
    let mut parts = spec.split('|');
    let name = parts.next().unwrap_or_default().to_owned();
    let target = match parts.next().unwrap_or_default() {
        "owner" => Target::Owner,
        "forwarded" => Target::Forwarded,
        list => Target::Spread(
            list.split(',')
                .map(|a| {
                    a.parse()
                        .map_err(|_| format!("variant {spec}: bad address {a:?}"))
                })
                .collect::<Result<_>>()?,
        ),
    };
    let pids = parts
        .next()
        .unwrap_or_default()
        .split(',')
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    if name.is_empty() {
        return Err(format!("variant {spec:?}: NAME|TARGET|PIDS"));
    }
    Ok(Variant { name, target, pids })
}

fn address_for(
    v: &Variant,
    user: &User,
    conn: usize,
    nodes: &BTreeMap<u32, SocketAddr>,
) -> Result<SocketAddr> {
    match &v.target {
        Target::Spread(list) => Ok(list[conn % list.len()]),
        Target::Owner | Target::Forwarded => {
            let owner = user
                .owner
                .ok_or("owner/forwarded variants need --owners and --shards")?;
            let ordinals: Vec<u32> = nodes.keys().copied().collect();
            let at = ordinals
                .iter()
                .position(|o| *o == owner)
                .ok_or_else(|| format!("owner {owner} of {} is not a --node", user.email))?;
            let pick = if matches!(v.target, Target::Owner) {
                ordinals[at]
            } else {
                if ordinals.len() < 2 {
                    return Err("forwarded needs two --node".into());
                }
                ordinals[(at + 1) % ordinals.len()]
            };
            Ok(nodes[&pick])
        }
    }
}

/// One round of one variant.
#[derive(Default)]
struct Sample {
    latencies_us: Vec<u32>,
    non_2xx: u64,
    errors: u64,
    first_failure: Option<String>,
    elapsed: Duration,
    cpu_ticks: u64,
    store_ticks: u64,
}

/// `conns` connections in a closed loop for `duration`: each walks the users from its own offset,
/// sending each request to `address_for`, keeping one connection per address.
#[allow(clippy::too_many_arguments)]
async fn closed_loop(
    v: &Variant,
    users: &Rc<Vec<User>>,
    nodes: &BTreeMap<u32, SocketAddr>,
    kind: Kind,
    skus: usize,
    conns: usize,
    duration: Duration,
    step: &Rc<std::cell::Cell<usize>>,
    store_pid: Option<&str>,
) -> Result<Sample> {
    let started = Instant::now();
    let deadline = started + duration;
    let base = step.get();
    let workers = (0..conns).map(|c| {
        let users = users.clone();
        async move {
            let mut s = Sample::default();
            let mut open: BTreeMap<SocketAddr, Conn> = BTreeMap::new();
            let mut i = c * 7919 + base;
            while Instant::now() < deadline {
                let u = &users[i % users.len()];
                // each user's cart holds at most four lines, like a real cart
                let sku = (i % users.len() + (i / users.len()) % 4) % skus;
                i += 1;
                let addr = address_for(v, u, c, nodes)?;
                let req = request_bytes(kind, u, sku);
                let t0 = Instant::now();
                if let std::collections::btree_map::Entry::Vacant(e) = open.entry(addr) {
                    match Conn::connect(addr).await {
                        Ok(conn) => {
                            e.insert(conn);
                        }
                        Err(err) => {
                            s.errors += 1;
                            s.first_failure
                                .get_or_insert(format!("connect {addr}: {err}"));
                            actix_rt::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    }
                }
                let conn = open.get_mut(&addr).ok_or("connection vanished")?;
                match conn.exchange(&req).await {
                    Ok(Response { status, body, .. }) => {
                        let us = u32::try_from(t0.elapsed().as_micros()).unwrap_or(u32::MAX);
                        s.latencies_us.push(us);
                        if !(200..300).contains(&status) {
                            s.non_2xx += 1;
                            s.first_failure.get_or_insert(format!(
                                "{status} from {addr}: {}",
                                String::from_utf8_lossy(&body[..body.len().min(200)])
                            ));
                        }
                    }
                    Err(err) => {
                        s.errors += 1;
                        s.first_failure.get_or_insert(format!("{addr}: {err}"));
                        open.remove(&addr);
                    }
                }
            }
            Ok::<Sample, String>(s)
        }
    });
    let c0: u64 = v.pids.iter().map(|p| cpu_ticks(p)).sum::<Result<u64>>()?;
    let s0 = store_pid.map(cpu_ticks).transpose()?.unwrap_or(0);
    let results = futures_util::future::join_all(workers).await;
    let c1: u64 = v.pids.iter().map(|p| cpu_ticks(p)).sum::<Result<u64>>()?;
    let s1 = store_pid.map(cpu_ticks).transpose()?.unwrap_or(0);
    step.set(base + 104_729);
    let mut total = Sample {
        elapsed: started.elapsed(),
        cpu_ticks: c1.saturating_sub(c0),
        store_ticks: s1.saturating_sub(s0),
        ..Sample::default()
    };
    for r in results {
        let s = r?;
        total.latencies_us.extend(s.latencies_us);
        total.non_2xx += s.non_2xx;
        total.errors += s.errors;
        if total.first_failure.is_none() {
            total.first_failure = s.first_failure;
        }
    }
    total.latencies_us.sort_unstable();
    Ok(total)
}

async fn run(o: &Opts) -> Result<()> {
    let users = Rc::new(load_users(o)?);
    if users.is_empty() {
        return Err("no users".into());
    }
    let nodes = load_nodes(o)?;
    let kind = o.kind()?;
    let skus: usize = o.num("skus", Some(64))?;
    let conns: usize = o.num("conns", Some(8))?;
    let duration = Duration::from_secs_f64(o.num("duration", Some(5.0))?);
    let warmup = Duration::from_secs_f64(o.num("warmup", Some(2.0))?);
    let rounds: usize = o.num("rounds", Some(5))?;
    let tck: f64 = o.num("clk-tck", Some(100.0))?;
    let store_pid = o.get("store-pid");
    let store_pid = store_pid.as_deref();
    let variants: Vec<Variant> = o
        .all("variant")
        .iter()
        .map(|s| parse_variant(s))
        .collect::<Result<_>>()?;
    if variants.is_empty() {
        return Err("no --variant".into());
    }
    let step = Rc::new(std::cell::Cell::new(0));
    let kind_name = if kind == Kind::Add { "add" } else { "read" };
    if !warmup.is_zero() {
        for v in &variants {
            let s = closed_loop(v, &users, &nodes, kind, skus, conns, warmup, &step, None).await?;
            println!(
                "warmup {kind_name} {}: {} requests, non-2xx {}, errors {}{}",
                v.name,
                s.latencies_us.len(),
                s.non_2xx,
                s.errors,
                s.first_failure
                    .map(|f| format!(" (first: {f})"))
                    .unwrap_or_default()
            );
        }
    }
    // Per variant: (rps, p50, p99, cpu µs/req) per round, and every latency.
    let mut rows: Vec<Vec<(f64, f64, f64, f64)>> = vec![Vec::new(); variants.len()];
    let mut pooled: Vec<Vec<u32>> = vec![Vec::new(); variants.len()];
    let mut failures = vec![(0u64, 0u64); variants.len()];
    for r in 0..rounds {
        let mut order: Vec<usize> = (0..variants.len()).collect();
        if r % 2 == 1 {
            order.reverse();
        }
        let mut line = format!("round {} {kind_name}", r + 1);
        let mut here = vec![(0.0, 0.0, 0.0, 0.0); variants.len()];
        for &vi in &order {
            let v = &variants[vi];
            let s = closed_loop(
                v, &users, &nodes, kind, skus, conns, duration, &step, store_pid,
            )
            .await?;
            let n = s.latencies_us.len();
            let rps = n as f64 / s.elapsed.as_secs_f64();
            let cpu = if v.pids.is_empty() || n == 0 {
                f64::NAN
            } else {
                s.cpu_ticks as f64 * 1e6 / tck / n as f64
            };
            let (p50, p99) = (pct(&s.latencies_us, 50.0), pct(&s.latencies_us, 99.0));
            let store_cpu = if n == 0 {
                f64::NAN
            } else {
                s.store_ticks as f64 * 1e6 / tck / n as f64
            };
            here[vi] = (rps, p50, p99, cpu);
            rows[vi].push(here[vi]);
            pooled[vi].extend_from_slice(&s.latencies_us);
            failures[vi].0 += s.non_2xx;
            failures[vi].1 += s.errors;
            let _ = write!(
                line,
                " | {} {rps:.0} req/s p50 {p50:.2} ms p99 {p99:.2} ms cpu {cpu:.0} us/req{} non-2xx {} errors {}",
                v.name,
                if store_pid.is_some() {
                    format!(" (store {store_cpu:.0})")
                } else {
                    String::new()
                },
                s.non_2xx,
                s.errors
            );
            if let Some(f) = s.first_failure {
                let _ = write!(line, " (first failure: {f})");
            }
        }
        if variants.len() > 1 {
            for vi in 1..variants.len() {
                let _ = write!(
                    line,
                    " | p50 {}/{} {:.2}x",
                    variants[vi].name,
                    variants[0].name,
                    here[vi].1 / here[0].1
                );
            }
        }
        println!("{line}");
    }
    for (vi, v) in variants.iter().enumerate() {
        let r = &rows[vi];
        pooled[vi].sort_unstable();
        let p50s: Vec<f64> = r.iter().map(|x| x.1).collect();
        let p99s: Vec<f64> = r.iter().map(|x| x.2).collect();
        let rps: Vec<f64> = r.iter().map(|x| x.0).collect();
        let cpu: Vec<f64> = r.iter().map(|x| x.3).collect();
        println!(
            "summary {kind_name} {}: p50 median {:.2} ms ({}), p99 median {:.2} ms ({}), all requests p50 {:.2} p99 {:.2} ms, {:.0} req/s median ({:.0}-{:.0}), cpu {:.0} us/req median, non-2xx {}, errors {}, {} rounds x {} conns",
            v.name,
            median(p50s.clone()),
            range(&p50s),
            median(p99s.clone()),
            range(&p99s),
            pct(&pooled[vi], 50.0),
            pct(&pooled[vi], 99.0),
            median(rps.clone()),
            rps.iter().copied().fold(f64::INFINITY, f64::min),
            rps.iter().copied().fold(0.0, f64::max),
            median(cpu),
            failures[vi].0,
            failures[vi].1,
            r.len(),
            conns
        );
    }
    for vi in 1..variants.len() {
        let ratios: Vec<f64> = (0..rows[0].len())
            .map(|i| rows[vi][i].1 / rows[0][i].1)
            .collect();
        let tput: Vec<f64> = (0..rows[0].len())
            .map(|i| rows[vi][i].0 / rows[0][i].0)
            .collect();
        println!(
            "ratio {kind_name} {}/{}: p50 median {:.2}x ({}), throughput median {:.2}x ({})",
            variants[vi].name,
            variants[0].name,
            median(ratios.clone()),
            range(&ratios),
            median(tput.clone()),
            range(&tput)
        );
    }
    Ok(())
}

async fn activate(o: &Opts) -> Result<()> {
    let users = load_users(o)?;
    let home: u32 = o.num("home", None)?;
    let addr: SocketAddr = o.need("addr")?.parse().map_err(|_| "--addr: bad address")?;
    let count: usize = o.num("count", None)?;
    let conns: usize = o.num("conns", Some(16))?;
    let kind = o.kind()?;
    let chosen: Rc<Vec<User>> = Rc::new(
        users
            .into_iter()
            .filter(|u| u.owner == Some(home))
            .take(count)
            .collect(),
    );
    if chosen.len() < count {
        eprintln!(
            "only {} users are placed on node {home}; activating those",
            chosen.len()
        );
    }
    let next = Rc::new(std::cell::Cell::new(0usize));
    let started = Instant::now();
    let workers = (0..conns).map(|_| {
        let (chosen, next) = (chosen.clone(), next.clone());
        async move {
            let (mut ok, mut bad, mut first) = (0u64, 0u64, None::<String>);
            let mut conn: Option<Conn> = None;
            loop {
                let i = next.get();
                if i >= chosen.len() {
                    break;
                }
                next.set(i + 1);
                let req = request_bytes(kind, &chosen[i], i % 64);
                // Up to three tries per user (a refused connection is retried on a new one).
                let mut done = false;
                for _ in 0..3 {
                    if conn.is_none() {
                        match Conn::connect(addr).await {
                            Ok(c) => conn = Some(c),
                            Err(e) => {
                                first.get_or_insert(format!("connect: {e}"));
                                actix_rt::time::sleep(Duration::from_millis(50)).await;
                                continue;
                            }
                        }
                    }
                    let Some(c) = conn.as_mut() else { continue };
                    match c.exchange(&req).await {
                        Ok(Response { status, .. }) if (200..300).contains(&status) => {
                            done = true;
                            break;
                        }
                        Ok(Response { status, body, .. }) => {
                            first.get_or_insert(format!(
                                "{status}: {}",
                                String::from_utf8_lossy(&body[..body.len().min(200)])
                            ));
                            break;
                        }
                        Err(e) => {
                            first.get_or_insert(format!("{e}"));
                            conn = None;
                        }
                    }
                }
                if done {
                    ok += 1;
                } else {
                    bad += 1;
                }
            }
            (ok, bad, first)
        }
    });
    let results = futures_util::future::join_all(workers).await;
    let secs = started.elapsed().as_secs_f64();
    let ok: u64 = results.iter().map(|r| r.0).sum();
    let bad: u64 = results.iter().map(|r| r.1).sum();
    let first = results.into_iter().find_map(|r| r.2);
    println!(
        "activated {ok} carts on node {home} through {addr} in {secs:.1} s ({:.0}/s), failed {bad}{}",
        ok as f64 / secs,
        first.map(|f| format!(" (first failure: {f})")).unwrap_or_default()
    );
    if bad > 0 {
        return Err(format!("{bad} activations failed"));
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = args.split_first() else {
        eprintln!("usage: cluster-bench run|activate --option value ... (see the source's header)");
        return std::process::ExitCode::from(2);
    };
    let result = Opts::parse(rest).and_then(|o| {
        actix_rt::System::new().block_on(async move {
            match cmd.as_str() {
                "run" => run(&o).await,
                "activate" => activate(&o).await,
                other => Err(format!("unknown command {other}: run or activate")),
            }
        })
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cluster-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
