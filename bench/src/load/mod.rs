//! `emporium-load`: drives the storefront API like shoppers do and reports what it saw.
//!
//! One thread: the shoppers are tasks on one actix (tokio current-thread) runtime, sharing their
//! state through `Rc`/`RefCell`. Closed loop: `--connections` shoppers, each sending its next
//! request when the last is answered. Open loop: requests start at `--rate` per second on a fixed
//! schedule whatever the answers take, and each latency counts from the request's scheduled
//! start, so a stall shows as latency instead of as fewer requests (no coordinated omission).
//!
//! It sends only to the `--targets` it is given and stops by itself at `--duration`,
//! `--max-requests`, Ctrl-C or SIGTERM; it does not retry writes (a write without an answer is reported as
//! failed and counted as uncertain by `--verify`), and it is not a benchmark of the store on its
//! own: the generator shares the machine it measures.

mod client;
pub mod conn;
mod opts;
mod plot;
mod report;
mod scenario;
mod setup;
mod stats;
mod verify;

use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_rt::time::sleep;

pub use opts::{Options, Scenario};
pub use report::{Event, OpSummary, Summary, TargetSummary};
pub use verify::Verification;

use client::Client;
use scenario::World;
use stats::{Percentiles, SecondRow, ERROR_CLASSES};

/// Runs the load on a runtime of its own on this thread (for callers outside one).
pub fn run_blocking(opts: Options) -> Result<Summary, String> {
    actix_rt::System::new().block_on(run(opts))
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Sets up shoppers and products, runs the load, verifies when asked, and writes summary.json,
/// timeline.csv and timeline.png into `--out`.
pub async fn run(opts: Options) -> Result<Summary, String> {
    opts.validate()?;
    std::fs::create_dir_all(&opts.out).map_err(|e| format!("{}: {e}", opts.out.display()))?;
    let client = Rc::new(Client::new(&opts.targets, opts.timeout)?);
    let health_stop = Rc::new(Cell::new(false));
    client.spawn_health_checks(health_stop.clone());
    let setup = match setup::prepare(&opts, &client).await {
        Ok(s) => s,
        Err(e) => {
            health_stop.set(true);
            return Err(format!("setup: {e}"));
        }
    };
    let quiet = opts.quiet;
    if !quiet {
        eprintln!(
            "emporium-load: {} against {}; {} shoppers, {} products to buy, {} catalog products",
            opts.scenario.name(),
            opts.targets.join(","),
            setup.shoppers.len(),
            setup.buy.len(),
            setup.catalog_ids.len()
        );
    }
    let stop = Rc::new(Cell::new(false));
    let world = Rc::new(World::new(
        opts.clone(),
        client.clone(),
        setup,
        stop.clone(),
    ));
    let started_at = unix_now();
    {
        // Ctrl-C or SIGTERM ends the load early; the run still verifies and reports.
        let stop = stop.clone();
        actix_rt::spawn(async move {
            use actix_rt::signal::unix::{signal, SignalKind};
            let Ok(mut term) = signal(SignalKind::terminate()) else {
                return;
            };
            first_of(actix_rt::signal::ctrl_c(), term.recv()).await;
            stop.set(true);
        });
    }
    let done = Rc::new(Cell::new(false));
    let ticker = actix_rt::spawn(progress(world.clone(), done.clone()));
    match opts.rate {
        Some(rate) => open_loop(&world, rate).await,
        None => closed_loop(&world).await,
    }
    stop.set(true);
    let elapsed = world.started.elapsed().as_secs_f64();
    done.set(true);
    let _ = ticker.await;
    let verification = if opts.verify {
        if !quiet {
            eprintln!("emporium-load: verifying acknowledged writes");
        }
        Some(verify::verify(&world).await)
    } else {
        None
    };
    health_stop.set(true);
    let events = match &opts.events {
        Some(path) if path.exists() => report::read_events(path, started_at)?,
        Some(path) => {
            eprintln!(
                "emporium-load: no events file {} (no markers)",
                path.display()
            );
            Vec::new()
        }
        None => Vec::new(),
    };
    finish(&world, started_at, elapsed, verification, events)
}

fn finish(
    world: &World,
    started_at: f64,
    elapsed: f64,
    verification: Option<Verification>,
    events: Vec<Event>,
) -> Result<Summary, String> {
    let opts = &world.opts;
    let stats = world.stats.borrow();
    let out = &opts.out;
    let files: BTreeMap<String, std::path::PathBuf> = [
        ("json", out.join("summary.json")),
        ("csv", out.join("timeline.csv")),
        ("png", out.join("timeline.png")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let summary = Summary {
        scenario: opts.scenario,
        mode: if opts.rate.is_some() {
            "open"
        } else {
            "closed"
        },
        connections: opts.rate.is_none().then_some(opts.connections),
        rate: opts.rate,
        users: world.setup.shoppers.len(),
        products: world.setup.buy.len(),
        started_at,
        duration_secs: elapsed,
        requests: stats.requests,
        ok: stats.ok,
        errors: report::errors_map(&stats.errors),
        failed: stats.errors.iter().sum(),
        throughput_per_sec: stats.requests as f64 / elapsed.max(1e-9),
        latency_ms: Percentiles::of(&stats.overall),
        operations: report::operations(&stats, elapsed),
        targets: world
            .client
            .targets
            .iter()
            .map(|t| TargetSummary {
                url: t.url.clone(),
                answered: t.answered.get(),
                refused: t.refused.get(),
                skipped_not_ready: t.skipped_not_ready.get(),
            })
            .collect(),
        verify: verification,
        events,
        first_failures: stats.first_failures.clone(),
        files: files.clone(),
    };
    let json = serde_json::to_string_pretty(&summary).map_err(|e| format!("summary: {e}"))?;
    std::fs::write(&files["json"], json).map_err(|e| format!("summary.json: {e}"))?;
    std::fs::write(&files["csv"], report::timeline_csv(&stats.timeline))
        .map_err(|e| format!("timeline.csv: {e}"))?;
    let title = format!(
        "emporium-load {}, {} — {} requests, {} failed{}",
        opts.scenario.name(),
        match opts.rate {
            Some(r) => format!("open loop {r}/s"),
            None => format!("{} connections", opts.connections),
        },
        summary.requests,
        summary.failed,
        summary
            .verify
            .as_ref()
            .map(|v| format!(", {} acknowledged writes missing", v.missing_total))
            .unwrap_or_default()
    );
    plot::write_png(&files["png"], &title, &stats.timeline, &summary.events)?;
    Ok(summary)
}

/// Waits for whichever of two futures ends first.
async fn first_of<A: std::future::Future, B: std::future::Future>(a: A, b: B) {
    futures_util::future::select(std::pin::pin!(a), std::pin::pin!(b)).await;
}

/// `--connections` shoppers, each sending its next request when the last is answered.
async fn closed_loop(world: &Rc<World>) {
    let deadline = world.started + world.opts.duration;
    let workers = (0..world.opts.connections).map(|_| {
        let world = world.clone();
        async move {
            while Instant::now() < deadline && world.claim_request() {
                world.step(Instant::now()).await;
            }
        }
    });
    futures_util::future::join_all(workers).await;
}

/// Requests started at `rate` per second on a fixed schedule; at most `--max-in-flight` at once
/// (a later one waits, and its wait counts in its latency).
async fn open_loop(world: &Rc<World>, rate: f64) {
    let deadline = world.started + world.opts.duration;
    let in_flight = Rc::new(Cell::new(0usize));
    let max = world.opts.max_in_flight;
    for i in 0u64.. {
        let intended = world.started + Duration::from_secs_f64(i as f64 / rate);
        if intended >= deadline || !world.claim_request() {
            break;
        }
        actix_rt::time::sleep_until(intended.into()).await;
        while in_flight.get() >= max && !world.stop.get() {
            sleep(Duration::from_millis(1)).await;
        }
        if world.stop.get() {
            break;
        }
        in_flight.set(in_flight.get() + 1);
        let (world, in_flight) = (world.clone(), in_flight.clone());
        actix_rt::spawn(async move {
            world.step(intended).await;
            in_flight.set(in_flight.get() - 1);
        });
    }
    // Requests still in flight end within their timeout.
    let limit = Instant::now() + world.opts.timeout * 2 + Duration::from_secs(5);
    while in_flight.get() > 0 && Instant::now() < limit {
        sleep(Duration::from_millis(5)).await;
    }
}

/// Closes each second of the timeline and prints the progress line, until `done`.
async fn progress(world: Rc<World>, done: Rc<Cell<bool>>) {
    let mut second = 0u64;
    loop {
        let boundary = world.started + Duration::from_secs(second + 1);
        while Instant::now() < boundary && !done.get() {
            sleep((boundary - Instant::now()).min(Duration::from_millis(50))).await;
        }
        if done.get() {
            // The last, partial second, when it saw any request.
            let mut stats = world.stats.borrow_mut();
            if stats.requests > stats.timeline.iter().map(|r| r.requests).sum::<u64>() {
                let row = stats.close_second(second);
                drop(stats);
                print_progress(&world, &row);
            }
            return;
        }
        let row = world.stats.borrow_mut().close_second(second);
        print_progress(&world, &row);
        second += 1;
    }
}

fn print_progress(world: &World, row: &SecondRow) {
    if world.opts.quiet {
        return;
    }
    let errors: Vec<String> = ERROR_CLASSES
        .iter()
        .zip(row.errors)
        .filter(|(_, n)| *n > 0)
        .map(|(c, n)| format!("{c} {n}"))
        .collect();
    let total = world.stats.borrow().requests;
    eprintln!(
        "[{:>4}s] {:>6} req/s  errors: {:<24} p50 {:>8.2} ms  p99 {:>8.2} ms  total {total}",
        row.second + 1,
        row.requests,
        if errors.is_empty() {
            "none".to_owned()
        } else {
            errors.join(", ")
        },
        row.p50_ms,
        row.p99_ms,
    );
}

/// The end-of-run table (operations, targets, verification).
pub fn table(summary: &Summary) -> String {
    report::table(summary)
}
