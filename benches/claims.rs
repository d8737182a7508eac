//! The inbox binding under load: full cycles (create -> claim -> ack COMPLETED) per second with
//! competing workers, and the latency of a claim, on an empty database and on one that already
//! holds a million completed intents. Each figure stands next to ceilings measured in the same
//! run on the same machine, one phase after the other so they never compete for the CPU:
//!
//! 1. **fill**: a database created by the server gets (server stopped) the rows a million
//!    finished cycles of the inbox agent leave behind, written directly through the crate's store
//!    functions (`prefill/`).
//! 2. **axme, empty database**: the release `axme serve` on a fresh database, an agent
//!    registered with `delivery_mode: inbox`, producers creating intents for it and competing
//!    workers claiming and acknowledging them over keep-alive HTTP/1.1 (see `claims/load.rs`).
//! 3. **axme, 1,000,000 completed**: the server on the filled database, under the same load,
//!    right after phase 2. Its claim latency is compared with phase 2's.
//! 4. **domain in-process (ceiling)** and **raw SQLite (ceiling)**: the same cycles with no
//!    HTTP, JSON or queueing: through the domain functions, and as bare store statements (see
//!    `claims/ceiling.rs`), committed in batches as the server's group commit does; then the
//!    bare statements once more, on the filled database: what a million completed intents cost
//!    SQLite itself. Last **minimal schema (ceiling)**: the same logical writes into tables with
//!    only a primary key each (`common/minimal.rs`), the most this disk gives any design.
//!
//! `cargo bench --bench claims` runs it (about two minutes, a third of it the fill).
//! Run without `--bench` (as `cargo test --all-targets` does) it makes a short smoke run, so
//! the harness cannot rot unnoticed. It never edits anything outside its temporary directory
//! and stops every child process it started, also on panic.

#![forbid(unsafe_code)]

#[path = "claims/ceiling.rs"]
mod ceiling;
mod common;
#[path = "claims/load.rs"]
mod load;
#[path = "common/minimal.rs"]
mod minimal;
mod prefill;
#[path = "claims/report.rs"]
mod report;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::ChildServer;
use common::{API_KEY, PAYLOAD};

/// The inbox agent the workers claim for.
const AGENT: &str = "agent://bench/claims/worker";
const INTENT_TYPE: &str = "bench.claims.v1";

fn main() {
    if let Err(e) = run(&Params::from_env()) {
        eprintln!("claims benchmark failed: {e}");
        std::process::exit(1);
    }
}

/// The knobs of one run, printed with its results.
#[derive(Clone)]
pub struct Params {
    pub workers: usize,
    /// `max` of every claim.
    pub claim_max: usize,
    /// Connections each worker acks over at once.
    pub ack_connections: usize,
    pub lease_seconds: u64,
    pub wait_seconds: u64,
    /// Keep-alive connections creating intents.
    pub producers: usize,
    /// Most intents created and not yet acknowledged.
    pub window: u64,
    pub warmup: Duration,
    pub measure: Duration,
    /// Cycles per transaction in the ceilings.
    pub sqlite_batch: usize,
    /// Completed intents written before the second HTTP phase.
    pub prefill: u64,
    /// The 1-minute load average before the run: the machine may be shared.
    pub loadavg_before: String,
    /// `false` when run as a test (no `--bench`): a short run whose figures mean nothing.
    pub full: bool,
}

impl Params {
    fn from_env() -> Params {
        let k = common::Knobs::from_args();
        let claim_max = k.count("AXME_BENCH_CLAIM_MAX", 16.0, 4.0).min(100);
        Params {
            workers: k.count("AXME_BENCH_WORKERS", 8.0, 2.0),
            claim_max,
            ack_connections: k.count("AXME_BENCH_ACK_CONNECTIONS", claim_max as f64, 4.0),
            lease_seconds: 60,
            wait_seconds: 5,
            producers: k.count("AXME_BENCH_PRODUCERS", 32.0, 4.0),
            window: k.count("AXME_BENCH_WINDOW", 2048.0, 64.0) as u64,
            warmup: k.secs("AXME_BENCH_WARMUP_SECS", 2.0, 0.2),
            measure: k.secs("AXME_BENCH_SECS", 10.0, 0.5),
            sqlite_batch: k.count("AXME_BENCH_SQLITE_BATCH", 64.0, 8.0),
            prefill: k.count("AXME_BENCH_PREFILL", 1_000_000.0, 2_000.0) as u64,
            loadavg_before: common::loadavg(),
            full: k.full,
        }
    }
}

fn run(p: &Params) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| format!("creating a temporary directory: {e}"))?;

    // The fill comes first, so that the two HTTP phases run back to back and see the same
    // machine.
    eprintln!(
        "[bench] filling a database with {} completed intents ...",
        p.prefill
    );
    let full_db = dir.path().join("prefilled.db");
    let mut axme = start(&full_db)?;
    register(&axme)?;
    axme.stop();
    let filled = prefill::completed_cycles(&full_db, AGENT, p.prefill)?;
    // The fill does not fsync; flush its pages now, so the disk is idle when the phases start.
    std::fs::File::open(&full_db)
        .and_then(|f| f.sync_all())
        .map_err(|e| format!("syncing the filled database: {e}"))?;
    eprintln!(
        "[bench] filled: {} intents, {} events, {:.0} MB, in {:.1} s",
        filled.intents,
        filled.events,
        filled.bytes as f64 / 1e6,
        filled.elapsed.as_secs_f64()
    );

    eprintln!("[bench] axme, empty database ...");
    let mut axme = start(&dir.path().join("empty.db"))?;
    register(&axme)?;
    let first = preflight(&axme)?;
    let empty = load::run(axme.addr, axme.child.id(), p)?;
    axme.stop();
    progress("empty database", &empty);

    eprintln!("[bench] axme, {} completed intents ...", p.prefill);
    let began = Instant::now();
    let mut axme = start(&full_db)?;
    let startup = began.elapsed();
    let prefilled = load::run(axme.addr, axme.child.id(), p)?;
    axme.stop();
    progress("prefilled database", &prefilled);

    eprintln!("[bench] domain in-process (ceiling) ...");
    let domain = ceiling::run(&dir.path().join("domain.db"), ceiling::Kind::Domain, p)?;
    eprintln!(
        "[bench] domain in-process: {:.0} cycles/s",
        domain.per_sec()
    );
    eprintln!("[bench] raw SQLite (ceiling) ...");
    let raw = ceiling::run(&dir.path().join("raw.db"), ceiling::Kind::Raw, p)?;
    eprintln!("[bench] raw SQLite: {:.0} cycles/s", raw.per_sec());
    eprintln!("[bench] raw SQLite on the filled database (ceiling) ...");
    let raw_filled = ceiling::run(&full_db, ceiling::Kind::Raw, p)?;
    eprintln!(
        "[bench] raw SQLite, filled database: {:.0} cycles/s",
        raw_filled.per_sec()
    );

    eprintln!("[bench] minimal schema (ceiling) ...");
    let minimal = minimal::cycles(
        &dir.path().join("minimal.db"),
        p.sqlite_batch,
        p.warmup,
        p.measure,
        AGENT,
    )?;
    eprintln!("[bench] minimal schema: {:.0} cycles/s", minimal.per_sec());

    let table = report::render(&report::Run {
        params: p,
        first: &first,
        empty: &empty,
        prefilled: &prefilled,
        filled: &filled,
        startup,
        domain: &domain,
        raw: &raw,
        raw_filled: &raw_filled,
        minimal: &minimal,
    });
    println!("{table}");
    Ok(())
}

/// Starts the release server on `db`.
fn start(db: &Path) -> Result<ChildServer, String> {
    let mut cmd = common::axme_serve(db);
    cmd.env_remove("AXME_DURABILITY");
    ChildServer::spawn(&mut cmd, "axme")
}

/// Registers the inbox agent.
fn register(axme: &ChildServer) -> Result<(), String> {
    let agent = json!({"address": AGENT, "delivery_mode": "inbox"});
    call(axme, "POST", "/v1/agents", Some(&agent)).map(|_| ())
}

/// One cycle by hand, checked: the create's 200, a claim that hands out that intent, an ack
/// that makes it COMPLETED. Returns the ack's answer, shortened.
fn preflight(axme: &ChildServer) -> Result<String, String> {
    let payload: Value = serde_json::from_str(PAYLOAD).map_err(|e| e.to_string())?;
    let intent = json!({
        "intent_type": INTENT_TYPE,
        "correlation_id": uuid::Uuid::new_v4().to_string(),
        "to_agent": AGENT,
        "payload": payload,
    });
    let created = call(axme, "POST", "/v1/intents", Some(&intent))?;
    let id = created["intent_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let path = format!(
        "/v1/agents/{}/inbox/claim",
        AGENT.trim_start_matches("agent://")
    );
    let claimed = call(axme, "POST", &path, Some(&json!({"max": 1})))?;
    let claim = &claimed["claims"][0];
    if claim["intent"]["intent_id"].as_str() != Some(&id) {
        return Err(format!("the first claim answered {claimed}"));
    }
    let token = claim["lease_token"].as_str().unwrap_or_default();
    let ack = json!({"status": "COMPLETED", "result": {"ok": true}});
    let acked = call(axme, "POST", &format!("/v1/claims/{token}/ack"), Some(&ack))?;
    if acked["intent"]["status"].as_str() != Some("COMPLETED") {
        return Err(format!("the first ack answered {acked}"));
    }
    let text = acked.to_string();
    Ok(text.chars().take(160).collect::<String>() + "...")
}

/// One API call with the admin key; a non-2xx answer is an error carrying its body.
fn call(
    axme: &ChildServer,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<Value, String> {
    common::api_call(method, &format!("http://{}{path}", axme.addr), body)
}

/// One line on stderr after each HTTP phase, so a long run shows where it is.
fn progress(name: &str, l: &load::Load) {
    eprintln!(
        "[bench] {name}: {:.0} cycles/s, claim p50 {:.2} ms p99 {:.2} ms, {} errors",
        l.per_sec(),
        common::quantile_ms(&l.claim_us, 0.5).unwrap_or(f64::NAN),
        common::quantile_ms(&l.claim_us, 0.99).unwrap_or(f64::NAN),
        l.errors.count()
    );
}
