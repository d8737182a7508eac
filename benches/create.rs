//! Throughput and latency of `POST /v1/intents`, next to two ceilings measured in the same run on
//! the same machine, one after the other so they never compete for the CPU:
//!
//! 1. **bare hyper**: this binary, re-executed with a hidden argument, runs a hyper 1.x HTTP/1.1
//!    server on a 2-worker tokio runtime (like `axme serve`) that reads each request body fully
//!    and answers a constant body: the ceiling of "HTTP on this machine with this client".
//! 2. **axme**: the release `axme serve` binary on a fresh database in a temporary directory.
//! 3. **raw SQLite**: the rows a create writes (one intent, two events) inserted through the
//!    crate's own store functions, migrations and PRAGMAs, 64 creates per transaction, with no
//!    HTTP, JSON or queueing in between: the ceiling of "durable commits on this disk".
//!
//! The load generator is deliberately small so it leaves the CPU to the server (the two share the
//! machine): one current-thread tokio runtime, one task per keep-alive connection, each writing a
//! pre-built HTTP/1.1 request (only the `correlation_id` changes) and parsing just the status line
//! and the framing headers of the answer. It is closed-loop (a connection sends its next request
//! when the previous answer arrived), so latencies are service times under that load, not
//! open-loop latencies at a fixed arrival rate.
//!
//! `cargo bench --bench create` runs it. `AXME_BENCH_SECS` (default 10) sets the measured period,
//! `AXME_BENCH_WARMUP_SECS` (default 2) the warm-up, `AXME_BENCH_CONNECTIONS` (default 64) the
//! connection count. Run without `--bench` (as `cargo test --all-targets` does) it makes a short
//! smoke run, so the harness cannot rot unnoticed. It never edits anything outside its temporary
//! directory and stops every child process it started, also on panic.

#![forbid(unsafe_code)]

mod common;
#[path = "common/minimal.rs"]
mod minimal;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use common::FROM_AGENT;
use common::{cpu_time, machine_busy, quantile_ms, ChildServer, CreateTemplate};

/// The hidden argument that turns this binary into the bare hyper server.
const BARE_HYPER_ARG: &str = "--axme-bench-bare-hyper-server";
/// Creates per transaction in the raw SQLite ceiling.
const SQLITE_BATCH: usize = 64;
/// Shaped like a create's answer; the bare hyper server sends it verbatim.
const CONSTANT_RESPONSE: &str = r#"{"ok":true,"intent_id":"5f0c3a52-8d1e-4c2b-9a77-0e6f1d2c3b4a","status":"SUBMITTED","created_at":"2026-01-01T00:00:00.000000Z"}"#;
const INTENT_TYPE: &str = "bench.load.v1";
const TO_AGENT: &str = "agent://bench/worker";

fn main() {
    if std::env::args().any(|a| a == BARE_HYPER_ARG) {
        if let Err(e) = bare_hyper::serve() {
            eprintln!("bare hyper server: {e}");
            std::process::exit(1);
        }
        return;
    }
    if let Err(e) = run(&Params::from_env()) {
        eprintln!("create benchmark failed: {e}");
        std::process::exit(1);
    }
}

/// The knobs of one run, printed with its results.
struct Params {
    connections: usize,
    warmup: Duration,
    measure: Duration,
    /// The 1-minute load average before the run: the machine may be shared.
    loadavg_before: String,
    /// `false` when run as a test (no `--bench`): a short run whose figures mean nothing.
    full: bool,
}

impl Params {
    fn from_env() -> Params {
        let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        let loadavg_before = loadavg.split(' ').next().unwrap_or("?").to_string();
        let env = |name: &str| std::env::var(name).ok();
        let secs = |name: &str, default: f64| {
            let v = env(name).and_then(|v| v.parse::<f64>().ok());
            Duration::from_secs_f64(v.filter(|v| *v >= 0.0 && v.is_finite()).unwrap_or(default))
        };
        let connections = env("AXME_BENCH_CONNECTIONS")
            .and_then(|v| v.parse().ok())
            .filter(|n| *n > 0)
            .unwrap_or(64);
        if std::env::args().any(|a| a == "--bench") {
            Params {
                connections,
                warmup: secs("AXME_BENCH_WARMUP_SECS", 2.0),
                measure: secs("AXME_BENCH_SECS", 10.0).max(Duration::from_millis(100)),
                loadavg_before,
                full: true,
            }
        } else {
            Params {
                connections: connections.min(8),
                warmup: Duration::from_millis(100),
                measure: Duration::from_millis(300),
                loadavg_before,
                full: false,
            }
        }
    }
}

fn run(params: &Params) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| format!("creating a temporary directory: {e}"))?;
    let exe = std::env::current_exe().map_err(|e| format!("locating the bench binary: {e}"))?;

    eprintln!("[bench] bare hyper ceiling ...");
    let mut bare = ChildServer::spawn(Command::new(exe).arg(BARE_HYPER_ARG), "bare hyper")?;
    let bare_result = load::run(bare.addr, bare.child.id(), params)?;
    bare.stop();
    bare_result.progress("bare hyper");

    eprintln!("[bench] axme ({}) ...", env!("CARGO_BIN_EXE_axme"));
    let mut axme =
        ChildServer::spawn(&mut common::axme_serve(&dir.path().join("axme.db")), "axme")?;
    let first = load::preflight(axme.addr)?;
    let axme_result = load::run(axme.addr, axme.child.id(), params)?;
    axme.stop();
    axme_result.progress("axme");

    eprintln!("[bench] raw SQLite ceiling ...");
    let sqlite_result = raw_sqlite::run(&dir.path().join("raw.db"), params)?;
    eprintln!(
        "[bench] raw SQLite: {:.0} creates/s",
        sqlite_result.per_sec()
    );

    eprintln!("[bench] minimal schema ceiling ...");
    let minimal = minimal::creates(
        &dir.path().join("minimal.db"),
        SQLITE_BATCH,
        params.warmup,
        params.measure,
        TO_AGENT,
    )?;
    eprintln!("[bench] minimal schema: {:.0} creates/s", minimal.per_sec());

    let table = report::render(
        params,
        &first,
        &bare_result,
        &axme_result,
        &sqlite_result,
        &minimal,
    );
    println!("{table}");
    Ok(())
}

/// Measured figures of one HTTP target.
struct LoadResult {
    ok: u64,
    elapsed: Duration,
    /// Latencies of the successful requests that completed in the measured period, sorted (µs).
    latencies_us: Vec<u32>,
    /// Non-200 answers and I/O failures over the whole run (warm-up included), by kind.
    errors: BTreeMap<String, u64>,
    /// The first failure, with the start of its body, to show what went wrong.
    first_error: Option<String>,
    server_cpu: Option<Duration>,
    client_cpu: Option<Duration>,
    /// Every CPU of the machine, so other work on a shared machine shows.
    machine_cpu: Option<Duration>,
    request_len: usize,
    body_len: usize,
}

impl LoadResult {
    fn per_sec(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    fn quantile_ms(&self, q: f64) -> Option<f64> {
        quantile_ms(&self.latencies_us, q)
    }

    /// CPU time over the measured period, as a number of busy cores.
    fn cores(&self, cpu: Option<Duration>) -> Option<f64> {
        Some(cpu?.as_secs_f64() / self.elapsed.as_secs_f64())
    }

    fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// One line on stderr after each phase, so a long run shows where it is.
    fn progress(&self, name: &str) {
        eprintln!(
            "[bench] {name}: {:.0} req/s, p99 {:.2} ms, {} errors; cores busy: server {:.2}, client {:.2}, machine {:.2}",
            self.per_sec(),
            self.quantile_ms(0.99).unwrap_or(f64::NAN),
            self.error_count(),
            self.cores(self.server_cpu).unwrap_or(f64::NAN),
            self.cores(self.client_cpu).unwrap_or(f64::NAN),
            self.cores(self.machine_cpu).unwrap_or(f64::NAN),
        );
    }
}

mod load {
    //! The load generator: a minimal keep-alive HTTP/1.1 client on raw tokio sockets. It knows
    //! `Content-Length` and chunked framing and nothing else of HTTP.

    use super::*;
    use bytes::{Buf, BytesMut};
    use common::http::{connect, exchange};
    use tokio::net::TcpStream;

    /// What connection tasks saw; merged into one at the end.
    #[derive(Default)]
    struct Tally {
        ok: u64,
        latencies_us: Vec<u32>,
        errors: BTreeMap<String, u64>,
        first_error: Option<String>,
    }

    impl Tally {
        fn error(&mut self, kind: String, detail: &str) {
            if self.first_error.is_none() {
                let detail: String = detail.chars().take(300).collect();
                self.first_error = Some(format!("{kind}: {detail}"));
            }
            *self.errors.entry(kind).or_default() += 1;
        }

        fn merge(&mut self, other: Tally) {
            self.ok += other.ok;
            self.latencies_us.extend(other.latencies_us);
            for (kind, n) in other.errors {
                *self.errors.entry(kind).or_default() += n;
            }
            self.first_error = self.first_error.take().or(other.first_error);
        }
    }

    fn runtime() -> Result<tokio::runtime::Runtime, String> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("building the client runtime: {e}"))
    }

    /// Sends one create and checks the answer is a 200 of the documented shape; returns its body.
    pub fn preflight(addr: SocketAddr) -> Result<String, String> {
        runtime()?.block_on(async {
            let mut stream = connect(addr).await?;
            let mut buf = BytesMut::with_capacity(8192);
            let req = CreateTemplate::new(addr, INTENT_TYPE, TO_AGENT)
                .next(&mut 1)
                .to_vec();
            let resp = exchange(&mut stream, &req, &mut buf)
                .await
                .map_err(|e| format!("first create: {e}"))?;
            let body = String::from_utf8_lossy(&buf[resp.body_at..resp.len]).into_owned();
            let shaped = body.contains(r#""ok":true"#) && body.contains(r#""status":"SUBMITTED""#);
            if resp.status != 200 || !shaped {
                return Err(format!("first create answered {}: {body}", resp.status));
            }
            Ok(body)
        })
    }

    /// Drives `params.connections` keep-alive connections against `addr` through the warm-up and
    /// the measured period; `server_pid` is the process whose CPU time is reported.
    pub fn run(addr: SocketAddr, server_pid: u32, params: &Params) -> Result<LoadResult, String> {
        runtime()?.block_on(async {
            let template = CreateTemplate::new(addr, INTENT_TYPE, TO_AGENT);
            let mut streams = Vec::with_capacity(params.connections);
            for _ in 0..params.connections {
                streams.push(connect(addr).await?);
            }
            let start = Instant::now() + params.warmup;
            let window = start..start + params.measure;
            let seed = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64);
            let tasks: Vec<_> = streams
                .into_iter()
                .enumerate()
                .map(|(i, stream)| {
                    let rng = seed ^ ((i as u64 + 1) << 48);
                    let conn = drive(addr, stream, template.clone(), rng, window.clone());
                    tokio::spawn(conn)
                })
                .collect();

            // CPU use of the server and of this client over the measured period only.
            let pid = server_pid.to_string();
            tokio::time::sleep_until(window.start.into()).await;
            let (server0, client0, machine0) = (cpu_time(&pid), cpu_time("self"), machine_busy());
            tokio::time::sleep_until(window.end.into()).await;
            let (server1, client1, machine1) = (cpu_time(&pid), cpu_time("self"), machine_busy());

            let mut total = Tally::default();
            for task in tasks {
                total.merge(task.await.map_err(|e| format!("connection task: {e}"))?);
            }
            total.latencies_us.sort_unstable();
            let used = |a: Option<Duration>, b: Option<Duration>| Some(b?.saturating_sub(a?));
            Ok(LoadResult {
                ok: total.ok,
                elapsed: params.measure,
                latencies_us: total.latencies_us,
                errors: total.errors,
                first_error: total.first_error,
                server_cpu: used(server0, server1),
                client_cpu: used(client0, client1),
                machine_cpu: used(machine0, machine1),
                request_len: template.len(),
                body_len: template.body_len,
            })
        })
    }

    /// One connection's loop until the window closes: send, read the whole answer, record.
    /// A broken or closed connection is counted and replaced.
    async fn drive(
        addr: SocketAddr,
        stream: TcpStream,
        mut template: CreateTemplate,
        mut rng: u64,
        window: std::ops::Range<Instant>,
    ) -> Tally {
        let mut tally = Tally {
            latencies_us: Vec::with_capacity(
                window.end.duration_since(window.start).as_millis() as usize * 2,
            ),
            ..Tally::default()
        };
        let mut buf = BytesMut::with_capacity(16 * 1024);
        let mut stream = Some(stream);
        while Instant::now() < window.end {
            let conn = match stream.as_mut() {
                Some(s) => s,
                None => match connect(addr).await {
                    Ok(s) => stream.insert(s),
                    Err(e) => {
                        tally.error("connect failed".into(), &e);
                        break;
                    }
                },
            };
            let sent = Instant::now();
            let outcome = exchange(conn, template.next(&mut rng), &mut buf).await;
            let done = Instant::now();
            match outcome {
                Ok(resp) if resp.status == 200 => {
                    if window.contains(&done) {
                        tally.ok += 1;
                        let us = done.duration_since(sent).as_micros();
                        tally
                            .latencies_us
                            .push(u32::try_from(us).unwrap_or(u32::MAX));
                    }
                    buf.advance(resp.len);
                    if resp.close {
                        stream = None;
                    }
                }
                Ok(resp) => {
                    let body = String::from_utf8_lossy(&buf[resp.body_at..resp.len]);
                    tally.error(format!("HTTP {}", resp.status), &body);
                    buf.advance(resp.len);
                    if resp.close {
                        stream = None;
                    }
                }
                Err(e) => {
                    tally.error(format!("I/O {:?}", e.kind()), &e.to_string());
                    buf.clear();
                    stream = None;
                }
            }
        }
        tally
    }
}

mod bare_hyper {
    //! The bare hyper ceiling: what hyper alone answers on this machine, in its own process,
    //! configured like `axme serve` (HTTP/1.1 keep-alive connections with a 30 s header read
    //! timeout, `TCP_NODELAY`, on a 2-worker multi-thread runtime).

    use super::*;
    use http_body_util::{BodyExt, Full};
    use hyper::body::{Bytes, Incoming};
    use hyper::header::{HeaderValue, CONTENT_TYPE};
    use hyper::{Request, Response};

    /// Serves until killed or until the parent closes our stdin.
    pub fn serve() -> Result<(), String> {
        common::serve_bare(answer)
    }

    async fn answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
        // Read the whole body first, as the real server must before it can parse the JSON.
        let _body = req.into_body().collect().await?.to_bytes();
        let mut resp = Response::new(Full::new(Bytes::from_static(CONSTANT_RESPONSE.as_bytes())));
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(resp)
    }
}

/// Measured figures of the raw SQLite ceiling.
struct SqliteResult {
    creates: u64,
    elapsed: Duration,
    /// Durations of the measured transactions (each `SQLITE_BATCH` creates), sorted (µs).
    txn_us: Vec<u32>,
    /// CPU of this process (the inserting thread and the checkpointer) and of the whole machine.
    cpu: Option<Duration>,
    machine_cpu: Option<Duration>,
}

impl SqliteResult {
    fn per_sec(&self) -> f64 {
        self.creates as f64 / self.elapsed.as_secs_f64()
    }
}

mod raw_sqlite {
    //! The raw SQLite ceiling: the rows of a create, inserted through the crate's store functions
    //! on a connection opened by the crate: same migrations, same PRAGMAs (WAL,
    //! `synchronous=FULL`), and the same write-ahead log management as `Store::open`
    //! (`store::wal`: no auto-checkpoint on the writing connection, the crate's checkpointer
    //! thread, a log restart between batches when it asks). No schema SQL is copied here.

    use super::*;
    use axme::model::Status;
    use axme::store::events::{self, EventRow};
    use axme::store::intents;
    use axme::store::wal::{self, Checkpointer};
    use axme::store::{migrations, open_connection, Durability};
    use rusqlite::{Connection, TransactionBehavior};
    use std::path::Path;
    use std::sync::atomic::AtomicBool;

    fn err(what: &str) -> impl Fn(axme::Error) -> String + '_ {
        move |e| format!("raw SQLite: {what}: {e}")
    }

    /// Commits batches of creates for the warm-up, then for the measured period.
    pub fn run(path: &Path, params: &Params) -> Result<SqliteResult, String> {
        let mut conn = open_connection(path, Durability::Full, false).map_err(err("open"))?;
        migrations::migrate(&mut conn).map_err(err("migrate"))?;
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(|e| format!("raw SQLite: wal_autocheckpoint: {e}"))?;
        let checkpointer =
            Checkpointer::start(path, Durability::Full).map_err(err("checkpointer"))?;
        let due = &checkpointer.restart_due;

        commit_until(&mut conn, Instant::now() + params.warmup, due)?;
        let (t0, cpu0, machine0) = (Instant::now(), cpu_time("self"), machine_busy());
        let mut txn_us = commit_until(&mut conn, t0 + params.measure, due)?;
        let (elapsed, cpu1, machine1) = (t0.elapsed(), cpu_time("self"), machine_busy());
        drop(checkpointer);
        txn_us.sort_unstable();
        let used = |a: Option<Duration>, b: Option<Duration>| Some(b?.saturating_sub(a?));
        Ok(SqliteResult {
            creates: (txn_us.len() * SQLITE_BATCH) as u64,
            elapsed,
            txn_us,
            cpu: used(cpu0, cpu1),
            machine_cpu: used(machine0, machine1),
        })
    }

    /// Commits transactions of `SQLITE_BATCH` creates until `deadline`; returns how long each
    /// took, in µs.
    fn commit_until(
        conn: &mut Connection,
        deadline: Instant,
        restart_due: &AtomicBool,
    ) -> Result<Vec<u32>, String> {
        let mut txn_us = Vec::new();
        while Instant::now() < deadline {
            let began = Instant::now();
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| format!("raw SQLite: begin: {e}"))?;
            for _ in 0..SQLITE_BATCH {
                insert_create(&axme::store::Tx::sqlite(&tx))?;
            }
            tx.commit()
                .map_err(|e| format!("raw SQLite: commit: {e}"))?;
            let us = began.elapsed().as_micros();
            txn_us.push(u32::try_from(us).unwrap_or(u32::MAX));
            // Between batches, as the server's writer does.
            wal::restart_if_due(conn, restart_due);
        }
        Ok(txn_us)
    }

    /// The rows one `POST /v1/intents` leaves behind: the intent (already SUBMITTED, seq 2) and
    /// its `intent.created` and `intent.submitted` events.
    fn insert_create(conn: &axme::store::Tx) -> Result<(), String> {
        let now = axme::clock::now_rfc3339();
        let intent = common::submitted_intent(INTENT_TYPE, TO_AGENT, &now);
        let intent_id = intent.intent_id.clone();
        intents::insert(conn, &intent).map_err(err("insert intent"))?;
        for (seq, status, details) in [
            (
                1,
                Status::Created,
                format!(r#"{{"intent_type":"{INTENT_TYPE}"}}"#),
            ),
            (2, Status::Submitted, "{}".to_string()),
        ] {
            let event = EventRow {
                event_id: 0,
                intent_id: intent_id.clone(),
                seq,
                event_type: status.event_type().into(),
                status,
                waiting_reason: None,
                handler: Some(TO_AGENT.into()),
                actor: FROM_AGENT.into(),
                at: now.clone(),
                details,
            };
            events::append(conn, &event).map_err(err("append event"))?;
        }
        Ok(())
    }
}

mod report {
    //! The printed table: parameters, the three figures, the CPU they took, and the targets.

    use super::*;
    use common::{machine, now, thousands};

    const TARGET_PER_SEC: f64 = 40_000.0;
    const TARGET_BARE_RATIO: f64 = 0.25;
    const TARGET_P99_MS: f64 = 10.0;
    /// Cores of CPU used by neither the server nor the client above which a phase is flagged.
    /// Quiet runs show under 0.05 (kernel threads, timers).
    const OTHER_WORK_LIMIT: f64 = 0.15;

    pub fn render(
        p: &Params,
        first: &str,
        bare: &LoadResult,
        axme: &LoadResult,
        sqlite: &SqliteResult,
        minimal: &minimal::Measured,
    ) -> String {
        let mut w = String::new();
        let _ = writeln!(w, "\naxme create benchmark: POST /v1/intents");
        if !p.full {
            let _ = writeln!(
                w,
                "SMOKE RUN (no --bench): short, maybe unoptimised; figures mean nothing"
            );
        }
        let (warmup, measure) = (p.warmup.as_secs_f64(), p.measure.as_secs_f64());
        let about = [
            ("machine", machine()),
            ("date", now()),
            ("loadavg", format!("{} before the run (1 minute)", p.loadavg_before)),
            ("load", format!("{} keep-alive HTTP/1.1 connections, one task each on 1 client thread, closed loop", p.connections)),
            ("period", format!("warm-up {warmup:.1} s, then measured {measure:.1} s (AXME_BENCH_SECS)")),
            ("request", format!("{} bytes, {} of them JSON body; a fresh correlation_id each", axme.request_len, axme.body_len)),
            ("bare hyper", "hyper 1.x http1 set up like axme, 2-worker tokio runtime, reads the body, constant 200".into()),
            ("raw SQLite", format!("1 intent + 2 event rows per create, {SQLITE_BATCH} creates per transaction, WAL, synchronous=FULL")),
            ("minimal", format!("the same rows into tables with only a primary key each (WITHOUT ROWID, no other index), {SQLITE_BATCH} creates per transaction, same PRAGMAs")),
            ("axme said", first.to_string()),
        ];
        for (k, v) in about {
            let _ = writeln!(w, "{k:<12}{v}");
        }

        let _ = writeln!(
            w,
            "\n{:<22}{:>11}{:>9}{:>9}{:>9}{:>9}{:>9}{:>8}",
            "", "creates/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms", "errors"
        );
        for (name, r) in [("bare hyper (ceiling)", bare), ("axme", axme)] {
            let q = |q: f64| r.quantile_ms(q).map_or("-".into(), |v| format!("{v:.2}"));
            let (rate, errors) = (thousands(r.per_sec()), r.error_count());
            let (p50, p90, p99, p999, max) = (q(0.5), q(0.9), q(0.99), q(0.999), q(1.0));
            let _ = writeln!(
                w,
                "{name:<22}{rate:>11}{p50:>9}{p90:>9}{p99:>9}{p999:>9}{max:>9}{errors:>8}"
            );
        }
        let rate = thousands(sqlite.per_sec());
        let _ = writeln!(
            w,
            "{:<22}{rate:>11}{:>9}{:>9}{:>9}{:>9}{:>9}{:>8}",
            "raw SQLite (ceiling)", "-", "-", "-", "-", "-", "-"
        );
        let txn = |q: f64| quantile_ms(&sqlite.txn_us, q).map_or("-".into(), |v| format!("{v:.2}"));
        let _ = writeln!(
            w,
            "{:<22}(one transaction of {SQLITE_BATCH} creates: p50 {} ms, p99 {} ms, max {} ms; {} transactions)",
            "", txn(0.5), txn(0.99), txn(1.0), sqlite.txn_us.len()
        );
        let rate = thousands(minimal.per_sec());
        let _ = writeln!(
            w,
            "{:<22}{rate:>11}{:>9}{:>9}{:>9}{:>9}{:>9}{:>8}",
            "minimal schema (ceil.)", "-", "-", "-", "-", "-", "-"
        );
        let txn =
            |q: f64| quantile_ms(&minimal.txn_us, q).map_or("-".into(), |v| format!("{v:.2}"));
        let _ = writeln!(
            w,
            "{:<22}(one transaction of {SQLITE_BATCH} creates: p50 {} ms, p99 {} ms, max {} ms; {} transactions)",
            "", txn(0.5), txn(0.99), txn(1.0), minimal.txn_us.len()
        );

        let _ = writeln!(
            w,
            "\n{:<22}{:>11}{:>9}{:>15}{:>9}",
            "CPU busy (cores)", "server", "client", "whole machine", "other"
        );
        let cpu_rows = [
            (
                "bare hyper (ceiling)",
                [bare.server_cpu, bare.client_cpu, bare.machine_cpu],
                bare.elapsed,
            ),
            (
                "axme",
                [axme.server_cpu, axme.client_cpu, axme.machine_cpu],
                axme.elapsed,
            ),
            (
                "raw SQLite (ceiling)",
                [sqlite.cpu, None, sqlite.machine_cpu],
                sqlite.elapsed,
            ),
            (
                "minimal schema (ceil.)",
                [minimal.cpu, None, minimal.machine_cpu],
                minimal.elapsed,
            ),
        ];
        let mut disturbed = Vec::new();
        for (name, cpu, elapsed) in cpu_rows {
            let [server, client, machine] =
                cpu.map(|c| c.map(|c| c.as_secs_f64() / elapsed.as_secs_f64()));
            // What neither the server nor the client used: other work on a shared machine.
            let other = machine.map(|m| m - server.unwrap_or(0.0) - client.unwrap_or(0.0));
            if other.is_some_and(|o| o > OTHER_WORK_LIMIT) {
                disturbed.push(name);
            }
            let [server, client, machine, other] = [server, client, machine, other]
                .map(|c| c.map_or("-".into(), |c| format!("{c:.2}")));
            let _ = writeln!(
                w,
                "{name:<22}{server:>11}{client:>9}{machine:>15}{other:>9}"
            );
        }
        common::write_disturbed(&mut w, &disturbed);

        let p99 = axme.quantile_ms(0.99).unwrap_or(f64::INFINITY);
        let bare_ratio = axme.per_sec() / bare.per_sec();
        let sqlite_ratio = axme.per_sec() / sqlite.per_sec();
        let minimal_ratio = axme.per_sec() / minimal.per_sec();
        let schema_ratio = sqlite.per_sec() / minimal.per_sec();
        let errors = bare.error_count() + axme.error_count();
        let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
        let checks = [
            ("check", "value".into(), "target", ""),
            (
                "axme creates/s",
                thousands(axme.per_sec()),
                ">= 40,000",
                verdict(axme.per_sec() >= TARGET_PER_SEC),
            ),
            (
                "axme / bare hyper",
                format!("{bare_ratio:.3}"),
                ">= 0.25",
                verdict(bare_ratio >= TARGET_BARE_RATIO),
            ),
            (
                "axme p99",
                format!("{p99:.2} ms"),
                "<= 10 ms",
                verdict(p99 <= TARGET_P99_MS),
            ),
            (
                "axme / raw SQLite",
                format!("{sqlite_ratio:.3}"),
                "(none)",
                "",
            ),
            (
                "axme / minimal schema",
                format!("{minimal_ratio:.3}"),
                "(none)",
                "",
            ),
            (
                "raw SQLite / minimal",
                format!("{schema_ratio:.3}"),
                "(none)",
                "",
            ),
            (
                "errors (incl. warm-up)",
                errors.to_string(),
                "0",
                verdict(errors == 0),
            ),
        ];
        let _ = writeln!(w);
        for (name, value, target, verdict) in checks {
            let _ = writeln!(w, "{name:<24}{value:>12}{target:>12}{verdict:>8}");
        }
        for (name, r) in [("bare hyper", bare), ("axme", axme)] {
            common::write_errors(&mut w, name, &r.errors, r.first_error.as_deref());
        }
        common::trim_lines(&w)
    }
}
