//! Durable timers at scale: a million pending delays, their due times spread over a window, and
//! how late they fire and how much memory the server holds meanwhile.
//!
//! 1. **empty database**: the release `axme serve` on a database it creates; its `VmRSS` once it
//!    has been idle for a second, then it is stopped: the reference for memory.
//! 2. **fill**: with the server stopped, the same file gets `AXME_BENCH_TIMERS` (1,000,000)
//!    intents exactly as `agent://internal/delay` leaves them while they wait: WAITING_FOR_TIME
//!    with their four events and acked lease, written directly through the crate's store
//!    functions (`prefill/`). Then one `complete` timer each (the `timers` table, as
//!    `service::timers::complete_at` writes it), the `k`-th due at `t0 + k * spread / n`, where
//!    `t0` is `AXME_BENCH_LEAD_SECS` after the fill and `spread` is `AXME_BENCH_SPREAD_SECS`.
//!    Each timer's result carries its own due time, so its COMPLETED event tells how late it
//!    fired.
//! 3. **firing**: the server again on the filled file. Its scheduler fires each timer when due
//!    (the intent becomes COMPLETED in the same transaction that deletes the timer). The sample is
//!    every timer due in the measured period (`AXME_BENCH_WARMUP_SECS` after `t0`, for
//!    `AXME_BENCH_SECS`); its lateness is the COMPLETED event's `at` (stamped by the server when
//!    the firing transaction runs, just before its commit) minus the due time. `VmRSS` is sampled
//!    every 100 ms from start to end; `VmHWM` is the peak.
//!
//! After the period (and `SETTLE` more, for the latest firings) the server is stopped and the
//! events are read back from the file through the crate's store functions.
//!
//! `cargo bench --bench timers` runs it (about a minute and a half, a third of it the fill).
//! Run without `--bench` (as `cargo test --all-targets` does) it makes a short smoke run, so the
//! harness cannot rot unnoticed. It never edits anything outside its temporary directory and stops
//! every child process it started, also on panic.

#![forbid(unsafe_code)]

mod common;
mod prefill;

use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axme::store::events::{self, FirehoseFilter};
use axme::store::{open_connection, Durability};
use serde_json::Value;

use common::{cpu_time, machine, machine_busy, now, thousands, ChildServer};

/// How long after the period the server keeps running, so that late firings still happen.
const SETTLE: Duration = Duration::from_secs(3);
const TARGET_P99_MS: f64 = 50.0;
/// Cores of CPU used by none of the server and the bench above which the period is flagged.
const OTHER_WORK_LIMIT: f64 = 0.15;

fn main() {
    if let Err(e) = run(&Params::from_env()) {
        eprintln!("timers benchmark failed: {e}");
        std::process::exit(1);
    }
}

struct Params {
    timers: u64,
    /// The window the due times are spread over.
    spread: Duration,
    /// From the end of the fill to the first due time.
    lead: Duration,
    warmup: Duration,
    measure: Duration,
    loadavg_before: String,
    /// `false` when run as a test (no `--bench`): a short run whose figures mean nothing.
    full: bool,
}

impl Params {
    fn from_env() -> Params {
        let k = common::Knobs::from_args();
        Params {
            timers: k.pick("AXME_BENCH_TIMERS", 1_000_000.0, 2_000.0) as u64,
            spread: k.secs("AXME_BENCH_SPREAD_SECS", 600.0, 4.0),
            lead: k.secs("AXME_BENCH_LEAD_SECS", 15.0, 1.0),
            warmup: k.secs("AXME_BENCH_WARMUP_SECS", 2.0, 0.2),
            measure: k.secs("AXME_BENCH_SECS", 30.0, 1.0),
            loadavg_before: common::loadavg(),
            full: k.full,
        }
    }
}

fn unix_ms() -> i64 {
    (axme::clock::now().unix_timestamp_nanos() / 1_000_000) as i64
}

/// `VmRSS` and `VmHWM` of a process, in kB.
fn memory_kb(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse::<u64>()
            .ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

fn start(db: &Path) -> Result<ChildServer, String> {
    let mut cmd = common::axme_serve(db);
    cmd.env_remove("AXME_DURABILITY");
    ChildServer::spawn(&mut cmd, "axme")
}

/// What the firing phase measured.
struct Firing {
    /// Timers due in the measured period, and how many of them fired before the server stopped.
    due_in_period: u64,
    fired: u64,
    /// Lateness of each fired one, µs, sorted (negative would be early).
    late_us: Vec<i64>,
    /// Timers that were already overdue when the server came up (the fill ran long).
    overdue_at_start: u64,
    /// Timers fired (COMPLETED events) over the whole run.
    fired_total: u64,
    rss_empty_kb: u64,
    rss_start_kb: u64,
    rss_max_kb: u64,
    hwm_kb: u64,
    startup: Duration,
    server_cpu: Option<Duration>,
    machine_cpu: Option<Duration>,
    bench_cpu: Option<Duration>,
}

fn run(p: &Params) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| format!("creating a temporary directory: {e}"))?;
    let db = dir.path().join("timers.db");

    eprintln!("[bench] empty database ...");
    let mut axme = start(&db)?;
    std::thread::sleep(Duration::from_secs(1));
    let (rss_empty_kb, _) = memory_kb(axme.child.id()).ok_or("reading the server's memory")?;
    axme.stop();

    eprintln!("[bench] filling {} waiting intents ...", p.timers);
    let (filled, ids) = prefill::waiting_delays(&db, p.timers)?;
    let n = ids.len() as u64;
    let t0 = unix_ms() + p.lead.as_millis() as i64;
    let spread_ms = p.spread.as_millis() as i64;
    let due_ms =
        |k: u64| t0 + (i128::from(k) * i128::from(spread_ms) / i128::from(n.max(1))) as i64;
    let timers_took = prefill::delay_timers(&db, &ids, due_ms)?;
    drop(ids);
    std::fs::File::open(&db)
        .and_then(|f| f.sync_all())
        .map_err(|e| format!("syncing the filled database: {e}"))?;
    eprintln!(
        "[bench] filled: {} intents, {} events in {:.1} s, their timers in {:.1} s, {:.0} MB",
        filled.intents,
        filled.events,
        filled.elapsed.as_secs_f64(),
        timers_took.as_secs_f64(),
        std::fs::metadata(&db).map_or(0, |m| m.len()) as f64 / 1e6
    );
    let max_event_before = {
        let conn = open_connection(&db, Durability::Full, true).map_err(|e| e.to_string())?;
        events::max_event_id(&axme::store::Tx::sqlite(&conn)).map_err(|e| e.to_string())?
    };

    eprintln!("[bench] firing ...");
    let began = Instant::now();
    let mut axme = start(&db)?;
    let startup = began.elapsed();
    let up_ms = unix_ms();
    let pid = axme.child.id();
    std::thread::sleep(Duration::from_millis(500));
    let (rss_start_kb, _) = memory_kb(pid).ok_or("reading the server's memory")?;
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut max = 0;
            while !stop.load(Ordering::Acquire) {
                max = max.max(memory_kb(pid).map_or(0, |m| m.0));
                std::thread::sleep(Duration::from_millis(100));
            }
            max
        })
    };
    let period =
        (t0 + p.warmup.as_millis() as i64)..(t0 + (p.warmup + p.measure).as_millis() as i64);
    let wait_until = |ms: i64| {
        let left = ms - unix_ms();
        if left > 0 {
            std::thread::sleep(Duration::from_millis(left as u64));
        }
    };
    wait_until(period.start);
    let spid = pid.to_string();
    let cpu0 = (cpu_time(&spid), machine_busy(), cpu_time("self"));
    wait_until(period.end);
    let cpu1 = (cpu_time(&spid), machine_busy(), cpu_time("self"));
    std::thread::sleep(SETTLE);
    stop.store(true, Ordering::Release);
    let rss_max_kb = sampler.join().map_err(|_| "the memory sampler panicked")?;
    let (_, hwm_kb) = memory_kb(pid).ok_or("reading the server's memory")?;
    axme.stop();

    eprintln!("[bench] reading the firings back ...");
    let conn = open_connection(&db, Durability::Full, true).map_err(|e| e.to_string())?;
    let filter = FirehoseFilter {
        to_agent: Some(axme::runtime::builtin::DELAY.into()),
        ..FirehoseFilter::default()
    };
    let mut after = max_event_before;
    let (mut late_us, mut fired_total) = (Vec::new(), 0);
    loop {
        let page = events::firehose(&axme::store::Tx::sqlite(&conn), after, &filter, 10_000)
            .map_err(|e| e.to_string())?;
        let Some(last) = page.last() else { break };
        after = last.event_id;
        for e in page.iter().filter(|e| e.event_type == "intent.completed") {
            fired_total += 1;
            let details: Value = serde_json::from_str(&e.details).map_err(|e| e.to_string())?;
            let Some(due) = details["result"]["bench_due_ms"].as_i64() else {
                continue;
            };
            if !period.contains(&due) {
                continue;
            }
            let at = axme::clock::parse(&e.at).ok_or(format!("an event at {:?}", e.at))?;
            let at_us = (at.unix_timestamp_nanos() / 1000) as i64;
            late_us.push(at_us - due * 1000);
        }
    }
    late_us.sort_unstable();
    let count_due =
        |range: std::ops::Range<i64>| (0..n).filter(|k| range.contains(&due_ms(*k))).count() as u64;
    let used = |a: Option<Duration>, b: Option<Duration>| Some(b?.saturating_sub(a?));
    let firing = Firing {
        due_in_period: count_due(period.clone()),
        fired: late_us.len() as u64,
        late_us,
        overdue_at_start: count_due(i64::MIN..up_ms),
        fired_total,
        rss_empty_kb,
        rss_start_kb,
        rss_max_kb,
        hwm_kb,
        startup,
        server_cpu: used(cpu0.0, cpu1.0),
        machine_cpu: used(cpu0.1, cpu1.1),
        bench_cpu: used(cpu0.2, cpu1.2),
    };
    println!("{}", render(p, &filled, &firing));
    Ok(())
}

fn render(p: &Params, filled: &prefill::Filled, f: &Firing) -> String {
    let mut w = String::new();
    let _ = writeln!(
        w,
        "\naxme timers benchmark: {} pending durable delays",
        thousands(p.timers as f64)
    );
    if !p.full {
        let _ = writeln!(
            w,
            "SMOKE RUN (no --bench): short, maybe unoptimised; figures mean nothing"
        );
    }
    let rate = p.timers as f64 / p.spread.as_secs_f64();
    let about = [
        ("machine", machine()),
        ("date", now()),
        ("loadavg", format!("{} before the run (1 minute)", p.loadavg_before)),
        ("server", "axme serve, durability full".to_string()),
        ("pending", format!(
            "{} intents WAITING_FOR_TIME for agent://internal/delay ({} events, acked leases), one complete timer each; {:.0} MB; written in {:.1} s with the server stopped",
            thousands(filled.intents as f64), thousands(filled.events as f64), filled.bytes as f64 / 1e6, filled.elapsed.as_secs_f64()
        )),
        ("due", format!(
            "evenly over {:.0} s from {:.1} s after the fill ({} timers/s); the server came up in {:.2} s",
            p.spread.as_secs_f64(), p.lead.as_secs_f64(), thousands(rate), f.startup.as_secs_f64()
        )),
        ("sample", format!(
            "every timer due in the measured period: {:.1} s after the first due time, for {:.1} s",
            p.warmup.as_secs_f64(), p.measure.as_secs_f64()
        )),
        ("lateness", "the COMPLETED event's at (stamped in the firing transaction, before its commit) - the timer's due time".to_string()),
    ];
    for (k, v) in about {
        let _ = writeln!(w, "{k:<10}{v}");
    }
    let q = |x: f64| {
        let n = f.late_us.len();
        if n == 0 {
            return "-".to_string();
        }
        let rank = ((x * n as f64).ceil() as usize).clamp(1, n);
        format!("{:.2}", f.late_us[rank - 1] as f64 / 1000.0)
    };
    let _ = writeln!(
        w,
        "\n{:<24}{:>10}{:>10}{:>9}{:>9}{:>9}{:>9}{:>9}",
        "lateness (ms)", "due", "fired", "min", "p50", "p90", "p99", "max"
    );
    let _ = writeln!(
        w,
        "{:<24}{:>10}{:>10}{:>9}{:>9}{:>9}{:>9}{:>9}",
        "timers due in period",
        thousands(f.due_in_period as f64),
        thousands(f.fired as f64),
        q(0.0),
        q(0.5),
        q(0.9),
        q(0.99),
        q(1.0)
    );
    let _ = writeln!(
        w,
        "  {} timers fired in all (the period, its warm-up and {:.0} s after); {} were already due when the server came up",
        thousands(f.fired_total as f64),
        SETTLE.as_secs_f64(),
        thousands(f.overdue_at_start as f64)
    );
    let mb = |kb: u64| format!("{:.1} MB", kb as f64 / 1024.0);
    let _ = writeln!(w, "\n{:<44}{:>12}", "server memory (VmRSS)", "");
    let pending = format!("{} pending, 0.5 s after start", thousands(p.timers as f64));
    for (name, kb) in [
        ("empty database, idle", f.rss_empty_kb),
        (pending.as_str(), f.rss_start_kb),
        ("while firing (max of samples every 100 ms)", f.rss_max_kb),
        ("peak (VmHWM)", f.hwm_kb),
    ] {
        let _ = writeln!(w, "{name:<44}{:>12}", mb(kb));
    }
    let secs = p.measure.as_secs_f64();
    let cores = |d: Option<Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() / secs);
    let (server, whole, bench) = (
        cores(f.server_cpu),
        cores(f.machine_cpu),
        cores(f.bench_cpu),
    );
    let other = whole - server - bench;
    let _ = writeln!(
        w,
        "\nCPU busy (cores) over the period: server {server:.2}, bench {bench:.2}, whole machine {whole:.2}, other {other:.2}"
    );
    if other > OTHER_WORK_LIMIT {
        let _ = writeln!(w, "!!!!! other work took CPU during the period; the figures are suspect, rerun on a quiet machine");
    }
    let p99 = f
        .late_us
        .get(((0.99 * f.late_us.len() as f64).ceil() as usize).max(1) - 1)
        .map_or(f64::INFINITY, |v| *v as f64 / 1000.0);
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    let missing = f.due_in_period - f.fired.min(f.due_in_period);
    let checks = [
        ("check", "value".to_string(), "target", ""),
        (
            "lateness p99",
            format!("{p99:.2} ms"),
            "<= 50 ms",
            verdict(p99 <= TARGET_P99_MS),
        ),
        (
            "due in period, never fired",
            missing.to_string(),
            "0",
            verdict(missing == 0),
        ),
        (
            "RSS while firing / empty",
            format!("{:.2}", f.rss_max_kb as f64 / f.rss_empty_kb.max(1) as f64),
            "(none)",
            "",
        ),
    ];
    let _ = writeln!(w);
    for (name, value, target, verdict) in checks {
        let _ = writeln!(w, "{name:<30}{value:>12}{target:>10}{verdict:>8}");
    }
    w.lines().map(str::trim_end).collect::<Vec<_>>().join("\n")
}
