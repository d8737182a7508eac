//! Soak: mixed traffic for a long time at half of the measured capacity, with the server's memory
//! and latency sampled every minute. The question is not "how fast" but "does it stay the same":
//! resident memory must be flat after warm-up (no growth beyond 10%) and p99 stable.
//!
//! The mix, per unit of work (a **cycle**): an intent created for an inbox agent, claimed and acked
//! COMPLETED (3 requests); an intent created for a pull agent and resolved (2 requests); and every
//! tenth cycle an intent for an http agent, pushed to a local receiver. Beside it, one SSE client
//! follows the firehose and one long poll waits on an agent feed, the whole time.
//!
//! Phase 1 (capacity, 20 s): closed loop, 16 threads doing cycles as fast as they can.
//! Phase 2 (soak, `AXME_SOAK_MINUTES`, default 30): open loop at `AXME_SOAK_LOAD` (default 0.5)
//! of the phase-1 rate, spread evenly over 16 threads. Each minute prints: cycles/s, requests/s,
//! p50/p99 request latency of that minute, errors, the server's RSS (VmRSS) and the database size.
//! At the end: RSS after warm-up (from minute 5, or the first third of a short run) against the
//! largest RSS after it, and the spread of the per-minute p99.
//!
//! `cargo bench --bench soak` runs it (about 31 minutes). Without `--bench` it makes a 40-second
//! smoke run so the harness cannot rot.

#![forbid(unsafe_code)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{quantile_ms, ChildServer};
use serde_json::{json, Value};

const API_KEY: &str = "axme_soak_admin_key_0123456789abcdef";
const THREADS: usize = 16;
const INBOX_AGENT: &str = "agent://soak/inbox";
const PULL_AGENT: &str = "agent://soak/pull";
const PUSH_AGENT: &str = "agent://soak/push";

#[derive(Default)]
struct Minute {
    latencies_us: Vec<u32>,
    cycles: u64,
    requests: u64,
    errors: u64,
}

struct Shared {
    base: String,
    stop: AtomicBool,
    minute: Mutex<Minute>,
    pushes_received: AtomicU64,
    sse_events: AtomicU64,
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let minutes: f64 = if bench {
        std::env::var("AXME_SOAK_MINUTES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(30.0)
    } else {
        0.34
    };
    let load: f64 = std::env::var("AXME_SOAK_LOAD")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.5);
    if let Err(e) = run(minutes, load, bench) {
        eprintln!("soak failed: {e}");
        std::process::exit(1);
    }
}

fn run(minutes: f64, load: f64, bench: bool) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let receiver = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let receiver_addr = receiver.local_addr().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_axme"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--api-key", API_KEY])
        .arg("--data")
        .arg(dir.path().join("soak.db"))
        .env_remove("AXME_API_KEY");
    let mut server = ChildServer::spawn(&mut cmd, "axme")?;
    let pid = server.child.id();
    let shared = Arc::new(Shared {
        base: format!("http://{}", server.addr),
        stop: AtomicBool::new(false),
        minute: Mutex::new(Minute::default()),
        pushes_received: AtomicU64::new(0),
        sse_events: AtomicU64::new(0),
    });
    {
        let s = shared.clone();
        std::thread::spawn(move || receive_pushes(receiver, s));
    }
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build();
    for (address, mode) in [(INBOX_AGENT, "inbox"), (PULL_AGENT, "poll")] {
        post(
            &agent,
            &shared.base,
            "/v1/agents",
            &json!({"address": address, "delivery_mode": mode}),
        )?;
    }
    post(
        &agent,
        &shared.base,
        "/v1/agents",
        &json!({"address": PUSH_AGENT, "delivery_mode": "http",
                "webhook_url": format!("http://{receiver_addr}/hook")}),
    )?;
    let watchers = start_watchers(&shared);

    // Phase 1: capacity.
    let capacity_secs = if bench { 20 } else { 5 };
    eprintln!("[soak] measuring capacity for {capacity_secs} s ...");
    let rate = drive(&shared, None, Duration::from_secs(capacity_secs))?;
    let target = rate * load;
    eprintln!(
        "[soak] capacity {rate:.0} cycles/s; soaking at {:.0}% = {target:.0} cycles/s for {minutes} min",
        load * 100.0
    );
    take_minute(&shared);

    // Phase 2: the soak, sampled every minute (every 10 s in the smoke run).
    let sample = if bench {
        Duration::from_secs(60)
    } else {
        Duration::from_secs(10)
    };
    let total = Duration::from_secs_f64(minutes * 60.0);
    let driver = {
        let s = shared.clone();
        std::thread::spawn(move || drive(&s, Some(target), total))
    };
    println!(
        "\n## Soak: {:.0}% of capacity ({target:.0} cycles/s), {} run, {}",
        load * 100.0,
        if bench { "full" } else { "smoke" },
        common::machine()
    );
    println!("\n| minute | cycles/s | requests/s | p50 ms | p99 ms | errors | RSS MiB | db MiB | pushes | SSE events |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let started = Instant::now();
    let mut rows: Vec<(f64, f64, f64)> = Vec::new(); // (minute, rss MiB, p99 ms)
    let mut n = 0;
    while started.elapsed() < total {
        let t0 = Instant::now();
        std::thread::sleep(
            sample
                .min(total.saturating_sub(started.elapsed()))
                .max(Duration::from_millis(100)),
        );
        n += 1;
        let m = take_minute(&shared);
        let secs = t0.elapsed().as_secs_f64();
        let mut lat = m.latencies_us;
        lat.sort_unstable();
        let p50 = quantile_ms(&lat, 0.50).unwrap_or(0.0);
        let p99 = quantile_ms(&lat, 0.99).unwrap_or(0.0);
        let rss = rss_mib(pid).unwrap_or(0.0);
        let db = dir_mib(dir.path());
        rows.push((n as f64, rss, p99));
        println!(
            "| {n} | {:.0} | {:.0} | {p50:.2} | {p99:.2} | {} | {rss:.1} | {db:.1} | {} | {} |",
            m.cycles as f64 / secs,
            m.requests as f64 / secs,
            m.errors,
            shared.pushes_received.load(Ordering::Relaxed),
            shared.sse_events.load(Ordering::Relaxed),
        );
    }
    let _ = driver.join();
    shared.stop.store(true, Ordering::Relaxed);
    drop(watchers);
    server.stop();

    let warm = if bench { 5 } else { rows.len().div_ceil(3) };
    if rows.len() > warm {
        let base = rows[warm - 1].1;
        let peak = rows[warm..].iter().map(|r| r.1).fold(base, f64::max);
        let growth = (peak - base) / base * 100.0;
        let p99s: Vec<f64> = rows[warm..].iter().map(|r| r.2).collect();
        let (lo, hi) = p99s
            .iter()
            .fold((f64::MAX, 0.0f64), |(l, h), v| (l.min(*v), h.max(*v)));
        println!(
            "\nRSS after warm-up (sample {warm}): {base:.1} MiB; largest after it: {peak:.1} MiB ({growth:+.1}%, limit +10%): {}",
            if growth <= 10.0 { "flat" } else { "GREW" }
        );
        println!("p99 per sample after warm-up: {lo:.2}–{hi:.2} ms");
    }
    Ok(())
}

/// Runs cycles on `THREADS` threads for `period`: as fast as possible (`rate: None`) or at `rate`
/// cycles/s in all. Returns the cycles/s achieved.
fn drive(shared: &Arc<Shared>, rate: Option<f64>, period: Duration) -> Result<f64, String> {
    let started = Instant::now();
    let done = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (s, done) = (shared.clone(), done.clone());
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new()
                    .timeout(Duration::from_secs(30))
                    .build();
                let interval = rate.map(|r| Duration::from_secs_f64(THREADS as f64 / r));
                let mut next = Instant::now()
                    + interval.map_or(Duration::ZERO, |i| i.mul_f64(t as f64 / THREADS as f64));
                let mut i: u64 = 0;
                while started.elapsed() < period && !s.stop.load(Ordering::Relaxed) {
                    if let Some(iv) = interval {
                        let now = Instant::now();
                        if next > now {
                            std::thread::sleep(next - now);
                        }
                        next += iv;
                    }
                    cycle(&agent, &s, i % 10 == 0);
                    i += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().map_err(|_| "a load thread panicked".to_string())?;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

/// One cycle of the mix; records each request's latency or error.
fn cycle(agent: &ureq::Agent, s: &Shared, with_push: bool) {
    let mut lat = Vec::with_capacity(6);
    let mut errors = 0;
    let mut call = |method: &str, path: &str, body: &Value| -> Option<Value> {
        let t = Instant::now();
        let r = agent
            .request(method, &format!("{}{path}", s.base))
            .set("x-api-key", API_KEY)
            .set("content-type", "application/json")
            .send_string(&body.to_string());
        lat.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
        match r.ok().and_then(|r| r.into_string().ok()) {
            Some(text) => serde_json::from_str(&text).ok(),
            None => {
                errors += 1;
                None
            }
        }
    };
    let intent = |to: &str| {
        json!({"intent_type": "soak.work.v1", "correlation_id": uuid::Uuid::new_v4().to_string(),
               "to_agent": to, "payload": {"job": "soak", "n": 42, "note": "mixed traffic"}})
    };
    call("POST", "/v1/intents", &intent(INBOX_AGENT));
    if let Some(c) = call(
        "POST",
        "/v1/agents/soak/inbox/inbox/claim",
        &json!({"max": 1, "lease_seconds": 60}),
    ) {
        if let Some(token) = c["claims"][0]["lease_token"].as_str() {
            call(
                "POST",
                &format!("/v1/claims/{token}/ack"),
                &json!({"status": "COMPLETED", "result": {"ok": true}}),
            );
        }
    }
    if let Some(created) = call("POST", "/v1/intents", &intent(PULL_AGENT)) {
        if let Some(id) = created["intent_id"].as_str() {
            call(
                "POST",
                &format!("/v1/intents/{id}/resolve"),
                &json!({"status": "COMPLETED", "result": {"done": 1}}),
            );
        }
    }
    if with_push {
        call("POST", "/v1/intents", &intent(PUSH_AGENT));
    }
    let mut m = s.minute.lock().unwrap_or_else(|e| e.into_inner());
    m.requests += lat.len() as u64;
    m.latencies_us.extend(lat);
    m.errors += errors;
    m.cycles += 1;
}

fn take_minute(s: &Shared) -> Minute {
    std::mem::take(&mut *s.minute.lock().unwrap_or_else(|e| e.into_inner()))
}

/// One SSE client on the firehose and one long poll on the pull agent's feed, for the whole run.
fn start_watchers(s: &Arc<Shared>) -> Vec<std::thread::JoinHandle<()>> {
    let sse = {
        let s = s.clone();
        std::thread::spawn(move || {
            // Resumed from the last event id after a reconnect (the server ends a stream after
            // its maximum lifetime), as a real client does, so nothing is replayed twice.
            let mut last_id = String::from("0");
            while !s.stop.load(Ordering::Relaxed) {
                let Ok(r) = ureq::get(&format!("{}/v1/events/stream", s.base))
                    .set("x-api-key", API_KEY)
                    .set("last-event-id", &last_id)
                    .call()
                else {
                    std::thread::sleep(Duration::from_millis(200));
                    continue;
                };
                for line in BufReader::new(r.into_reader()).lines() {
                    let Ok(line) = line else { break };
                    if let Some(id) = line.strip_prefix("id:") {
                        last_id = id.trim().to_string();
                    }
                    if line.starts_with("data:") {
                        s.sse_events.fetch_add(1, Ordering::Relaxed);
                    }
                    if s.stop.load(Ordering::Relaxed) {
                        return;
                    }
                }
            }
        })
    };
    let poll = {
        let s = s.clone();
        std::thread::spawn(move || {
            let agent = ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(90))
                .build();
            let mut since = 0i64;
            while !s.stop.load(Ordering::Relaxed) {
                let r = agent
                    .get(&format!(
                        "{}/v1/agents/soak/pull/intents?since={since}&limit=100&wait_seconds=20",
                        s.base
                    ))
                    .set("x-api-key", API_KEY)
                    .call();
                match r.ok().and_then(|r| r.into_string().ok()) {
                    Some(t) => {
                        let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                        since = v["next_since"].as_i64().unwrap_or(since);
                    }
                    None => std::thread::sleep(Duration::from_millis(200)),
                }
            }
        })
    };
    vec![sse, poll]
}

/// A minimal HTTP/1.1 receiver: reads each request and answers 200, counting them.
fn receive_pushes(listener: TcpListener, s: Arc<Shared>) {
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let s = s.clone();
        std::thread::spawn(move || {
            let Ok(read_half) = stream.try_clone() else {
                return;
            };
            let mut reader = BufReader::new(read_half);
            loop {
                let mut len = 0usize;
                let mut line = String::new();
                loop {
                    line.clear();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    let l = line.trim_end().to_ascii_lowercase();
                    if l.is_empty() {
                        break;
                    }
                    if let Some(v) = l.strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0u8; len];
                if reader.read_exact(&mut body).is_err() {
                    return;
                }
                s.pushes_received.fetch_add(1, Ordering::Relaxed);
                if stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                    .is_err()
                {
                    return;
                }
            }
        });
    }
}

fn post(agent: &ureq::Agent, base: &str, path: &str, body: &Value) -> Result<Value, String> {
    let text = agent
        .post(&format!("{base}{path}"))
        .set("x-api-key", API_KEY)
        .set("content-type", "application/json")
        .send_string(&body.to_string())
        .map_err(|e| format!("POST {path}: {e}"))?
        .into_string()
        .map_err(|e| e.to_string())?;
    serde_json::from_str(&text).map_err(|e| e.to_string())
}

fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

fn dir_mib(dir: &std::path::Path) -> f64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len() as f64)
                .sum::<f64>()
                / 1_048_576.0
        })
        .unwrap_or(0.0)
}
