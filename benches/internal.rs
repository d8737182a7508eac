//! The internal binding under load: intents created over HTTP for an address served by an
//! in-process Rust handler, from the create's `200` to their COMPLETED event, next to the
//! create-only figure of the same server in the same run.
//!
//! The bench embeds the server as a library (release build), as `examples/internal_agent.rs`
//! shows: `Server::open`, a handler registered with `Server::handle` that completes every intent
//! at once, `Server::events` to follow lifecycle events in-process, and `Server::run` on a
//! multi-thread tokio runtime with as many workers as CPUs (as `axme serve`). The load generator
//! runs in the same process on a thread of its own (see `internal/load.rs`), one phase after the
//! other:
//!
//! 1. **create only**: 64 connections create intents for an address nobody handles (a pull
//!    agent), closed loop: what this server takes in creates alone.
//! 2. **internal round trip**: the same connections create intents for the handler's address,
//!    with at most `AXME_BENCH_WINDOW` intents created and not yet completed. The runtime claims
//!    them (DELIVERED under a lease), calls the handler, and records its result (COMPLETED); an
//!    in-process observer (`Server::events`, filtered to the handler's address) stamps each
//!    COMPLETED event as it receives it. Latency is that stamp minus the moment the load
//!    generator read the create's `200`, on the same clock.
//!
//! `cargo bench --bench internal` runs it (about 40 s plus the build). Run without `--bench` (as
//! `cargo test --all-targets` does) it makes a short smoke run, so the harness cannot rot
//! unnoticed. It never edits anything outside its temporary directory.

#![forbid(unsafe_code)]

mod common;
#[path = "internal/load.rs"]
mod load;
#[path = "internal/report.rs"]
mod report;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axme::config::ServeConfig;
use axme::model::Status;
use axme::runtime::internal::{Step, Work};
use axme::runtime::observe::{Events, From};
use axme::server::Server;
use axme::store::events::FirehoseFilter;
use serde_json::json;

use common::{cpu_time, machine_busy};
use common::{API_KEY, PAYLOAD};
use load::{Gate, IntentId, Tally};

/// The address of the in-process handler.
const HANDLED: &str = "agent://bench/internal/worker";
/// An address nobody handles: creates for it are creates and nothing else.
const UNHANDLED: &str = "agent://bench/internal/nobody";

fn main() {
    if let Err(e) = run(&Params::from_env()) {
        eprintln!("internal benchmark failed: {e}");
        std::process::exit(1);
    }
}

/// The knobs of one run, printed with its results.
pub struct Params {
    pub connections: usize,
    /// Most intents created and not yet completed in the round-trip phase.
    pub window: u64,
    pub warmup: Duration,
    pub measure: Duration,
    /// How long the round-trip phase waits for its last completions.
    pub drain: Duration,
    pub loadavg_before: String,
    /// `false` when run as a test (no `--bench`): a short run whose figures mean nothing.
    pub full: bool,
}

impl Params {
    fn from_env() -> Params {
        let k = common::Knobs::from_args();
        Params {
            connections: k.count("AXME_BENCH_CONNECTIONS", 64.0, 8.0),
            window: k.count("AXME_BENCH_WINDOW", 256.0, 32.0) as u64,
            warmup: k.secs("AXME_BENCH_WARMUP_SECS", 2.0, 0.2),
            measure: k.secs("AXME_BENCH_SECS", 10.0, 0.5),
            drain: k.secs("AXME_BENCH_DRAIN_SECS", 30.0, 10.0),
            loadavg_before: common::loadavg(),
            full: k.full,
        }
    }
}

/// What one phase measured.
pub struct Phase {
    pub secs: f64,
    /// Intents per second: creates answered (create only) or COMPLETED events received (round
    /// trip) in the measured period.
    pub per_sec: f64,
    /// Create only: each create's answer time. Round trip: create's 200 -> COMPLETED received,
    /// of the intents created in the measured period. µs, sorted.
    pub latency_us: Vec<u32>,
    /// The creates' own answer times in the measured period (µs, sorted).
    pub create_us: Vec<u32>,
    /// Intents created in the period whose COMPLETED never came before the drain deadline.
    pub lost: u64,
    pub tally: Tally,
    /// CPU of this whole process, and of the machine, over the measured period.
    pub process_cpu: Option<Duration>,
    pub machine_cpu: Option<Duration>,
}

/// Completions as the observer received them.
#[derive(Default)]
struct Seen {
    at: Vec<(IntentId, Instant)>,
}

fn run(p: &Params) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| format!("creating a temporary directory: {e}"))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("building the server's runtime: {e}"))?;
    let mut config = ServeConfig::new(dir.path().join("axme.db"));
    config.api_key = Some(API_KEY.into());
    let (addr, mut events, stop, serving) = rt.block_on(async {
        let mut server = Server::open(&config)
            .await
            .map_err(|e| format!("opening the server: {e}"))?;
        server
            .handle(HANDLED, |work: Work| async move {
                Step::Completed(json!({"done": true, "attempt": work.attempt}))
            })
            .map_err(|e| format!("registering the handler: {e}"))?;
        let filter = FirehoseFilter {
            to_agent: Some(HANDLED.into()),
            ..FirehoseFilter::default()
        };
        let events = server
            .events(From::Now, filter)
            .await
            .map_err(|e| format!("subscribing to events: {e}"))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("binding: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("local address: {e}"))?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(server.run(listener, async {
            let _ = stopped.await;
        }));
        Ok::<_, String>((addr, events, stop, serving))
    })?;

    eprintln!("[bench] preflight ...");
    let first = rt.block_on(preflight(addr, &mut events))?;

    eprintln!("[bench] create only ...");
    let create_only = phase(&rt, addr, UNHANDLED, u64::MAX, None, p)?;
    eprintln!("[bench] create only: {:.0} creates/s", create_only.per_sec);

    eprintln!("[bench] internal round trip ...");
    let round_trip = phase(&rt, addr, HANDLED, p.window, Some(events), p)?;
    eprintln!(
        "[bench] internal round trip: {:.0} intents/s",
        round_trip.per_sec
    );

    let _ = stop.send(());
    rt.block_on(async {
        match tokio::time::timeout(Duration::from_secs(30), serving).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => Err(format!("the server stopped with {e}")),
            Ok(Err(e)) => Err(format!("the server task: {e}")),
            Err(_) => Err("the server did not stop within 30 s".into()),
        }
    })?;
    println!("{}", report::render(p, &first, &create_only, &round_trip));
    Ok(())
}

/// One intent through the API and the handler, followed in-process to COMPLETED.
async fn preflight(addr: SocketAddr, events: &mut Events) -> Result<String, String> {
    let url = format!("http://{addr}/v1/intents");
    let body = json!({
        "intent_type": "bench.internal.v1",
        "correlation_id": uuid::Uuid::new_v4().to_string(),
        "to_agent": HANDLED,
        "payload": {"preflight": true},
    });
    let created = tokio::task::spawn_blocking(move || {
        ureq::post(&url)
            .set("x-api-key", API_KEY)
            .set("content-type", "application/json")
            .send_string(&body.to_string())
            .map_err(|e| format!("the first create: {e}"))?
            .into_string()
            .map_err(|e| format!("the first create's answer: {e}"))
    })
    .await
    .map_err(|e| format!("the first create: {e}"))??;
    let id = load::intent_id(created.as_bytes())
        .ok_or(format!("the first create answered {created}"))?;
    let id = String::from_utf8_lossy(&id).into_owned();
    let mut trail = Vec::new();
    let done = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let e = events
                .next()
                .await
                .map_err(|e| format!("following events: {e}"))?;
            if e.intent_id == id {
                trail.push(e.status.as_str());
                if e.status.is_terminal() {
                    return Ok::<_, String>(e);
                }
            }
        }
    })
    .await
    .map_err(|_| "the first intent did not finish within 10 s".to_string())??;
    if done.status != Status::Completed {
        return Err(format!(
            "the first intent ended {}: {}",
            done.status.as_str(),
            done.details
        ));
    }
    Ok(format!("{} ({})", trail.join(" -> "), done.details))
}

/// Runs one phase: creates for `to_agent` through the warm-up and the measured period; with an
/// observer, also waits for the completions of the intents created and matches them.
fn phase(
    rt: &tokio::runtime::Runtime,
    addr: SocketAddr,
    to_agent: &str,
    window: u64,
    events: Option<Events>,
    p: &Params,
) -> Result<Phase, String> {
    let gate = Arc::new(Gate::new(window));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let observing = events.map(|events| rt.spawn(observe(events, gate.clone(), seen.clone())));
    let start = Instant::now() + p.warmup;
    let period = start..start + p.measure;

    let pid = std::process::id().to_string();
    let cpu = std::thread::spawn({
        let period = period.clone();
        move || {
            std::thread::sleep(period.start.saturating_duration_since(Instant::now()));
            let a = (cpu_time(&pid), machine_busy());
            std::thread::sleep(period.end.saturating_duration_since(Instant::now()));
            let b = (cpu_time(&pid), machine_busy());
            let used = |a: Option<Duration>, b: Option<Duration>| Some(b?.saturating_sub(a?));
            (used(a.0, b.0), used(a.1, b.1))
        }
    });
    let tally = load::run(addr, to_agent, p.connections, period.clone(), gate.clone())?;
    let (process_cpu, machine_cpu) = cpu
        .join()
        .map_err(|_| "the CPU meter panicked".to_string())?;

    let mut create_us: Vec<u32> = tally.created.iter().map(|c| c.took_us).collect();
    create_us.sort_unstable();
    let secs = p.measure.as_secs_f64();
    let Some(observing) = observing else {
        return Ok(Phase {
            secs,
            per_sec: tally.created.len() as f64 / secs,
            latency_us: create_us.clone(),
            create_us,
            lost: 0,
            tally,
            process_cpu,
            machine_cpu,
        });
    };

    // Every intent created must complete; wait for the last ones.
    let deadline = Instant::now() + p.drain;
    let sent = gate.sent.load(std::sync::atomic::Ordering::Relaxed);
    while gate.completed.load(std::sync::atomic::Ordering::Relaxed) < sent
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    observing.abort();
    let seen = std::mem::take(
        &mut *seen
            .lock()
            .map_err(|_| "the observer panicked".to_string())?,
    );
    let in_period = seen.at.iter().filter(|(_, at)| period.contains(at)).count();
    let completed: HashMap<IntentId, Instant> = seen.at.into_iter().collect();
    let mut latency_us = Vec::with_capacity(tally.created.len());
    let mut lost = 0;
    for c in &tally.created {
        match completed.get(&c.intent) {
            Some(done) => {
                let us = done.saturating_duration_since(c.at).as_micros();
                latency_us.push(u32::try_from(us).unwrap_or(u32::MAX));
            }
            None => lost += 1,
        }
    }
    latency_us.sort_unstable();
    Ok(Phase {
        secs,
        per_sec: in_period as f64 / secs,
        latency_us,
        create_us,
        lost,
        tally,
        process_cpu,
        machine_cpu,
    })
}

/// Stamps every COMPLETED event of the handler's intents as it arrives.
async fn observe(mut events: Events, gate: Arc<Gate>, seen: Arc<Mutex<Seen>>) {
    while let Ok(e) = events.next().await {
        if e.status != Status::Completed {
            continue;
        }
        let at = Instant::now();
        if let Ok(id) = IntentId::try_from(e.intent_id.as_bytes()) {
            if let Ok(mut seen) = seen.lock() {
                seen.at.push((id, at));
            }
        }
        gate.completed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        gate.moved.notify_waiters();
    }
}
