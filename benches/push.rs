//! The push binding under load: how many handler webhooks axme delivers per second to one
//! endpoint, how long a created intent takes to reach it, and whether an endpoint that hangs
//! slows the deliveries to a healthy one. Each figure stands next to a ceiling measured in the
//! same run on the same machine, one phase after the other so they never compete for the CPU:
//!
//! 1. **bare ureq (ceiling)**: as many threads as axme may use for one endpoint, each POSTing the
//!    webhook axme sent (body and headers captured in the same run) with a ureq 2 agent set up
//!    like axme's, to the same receiver: what ureq and the receiver manage on this machine.
//! 2. **axme, saturation**: 64 keep-alive connections create intents addressed to an `http`
//!    agent whose `webhook_url` is the receiver, as fast as axme takes them but with at most
//!    `AXME_BENCH_WINDOW` (64) intents created and not yet received, so that the outbox stays
//!    near empty: the most deliveries per second axme sustains (a window of 32 or 128 gives
//!    fewer).
//! 3. **axme, deep backlog**: the same with a window of `AXME_BENCH_DEEP_WINDOW` (1,024), so
//!    that the outbox always holds more due deliveries than the endpoint has room for (64),
//!    as it does whenever producers outrun the pushes.
//! 4. **axme, 70%**: open loop at 70% of the rate reached in 2: latency below saturation. When
//!    that rate is above the rate of 3, a passing backlog can tip it into 3's regime, where it
//!    falls behind for good; the table says so.
//! 5. **axme, 70% of deep**: open loop at 70% of the rate reached in 3.
//! 6. **axme + dead endpoint**: 2 again while a second `http` agent's endpoint (the black hole)
//!    accepts connections and never answers, each attempt timing out after `--push-timeout 2`,
//!    with intents created for it at a steady rate: isolation.
//! 7. **axme + slow owner**: 6 again after the dead agent (the owner of the black hole) also
//!    subscribed to its own intents' events at `SLOW_ENDPOINTS` (5) more black holes: one owner
//!    with six endpoints that never answer, more than all the workers' worth of attempts
//!    (6 x `per_endpoint` > `--push-workers`). The healthy owner's deliveries/s and latency are
//!    set against 2's (no slow owner): what fair shares of the workers among owners cost it.
//!
//! Latency is from the moment the bench read the create's `200` to the moment the receiver got
//! the webhook, both on the wall clock of the same machine. Every delivery is a real one: signed
//! with the agent's secret (checked on the first one) and recorded (attempt row, delivery state,
//! the intent moved to DELIVERED) in a transaction of its own after the attempt; the next attempt
//! to the endpoint may start while that transaction commits.
//!
//! The receiver is this binary re-executed with a hidden argument (its CPU is counted apart);
//! the load generator is one current-thread tokio runtime with a task per connection on raw
//! sockets, as in `benches/create.rs`.
//!
//! `cargo bench --bench push` runs it (about 90 s). Run without `--bench` (as
//! `cargo test --all-targets` does) it makes a short smoke run, so the harness cannot rot
//! unnoticed. It never edits anything outside its temporary directory and stops every child
//! process it started, also on panic.

#![forbid(unsafe_code)]

#[path = "push/api.rs"]
mod api;
#[path = "push/ceiling.rs"]
mod ceiling;
mod common;
#[path = "push/load.rs"]
mod load;
#[path = "push/receiver.rs"]
mod receiver;
#[path = "push/report.rs"]
mod report;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{cpu_time, machine_busy, ChildServer, Errors};
use receiver::BlackHole;

/// The healthy agent's and the dead agent's signing secret (`whsec_` + base64 of 32 bytes).
const WEBHOOK_SECRET: &str = "whsec_YXhtZSBiZW5jaCBwdXNoIHdlYmhvb2sgc2VjcmV0ISE=";
const HEALTHY_AGENT: &str = "agent://bench/push/healthy";
const DEAD_AGENT: &str = "agent://bench/push/dead";
/// Seconds one push attempt may take (`--push-timeout`): how long the black hole holds each.
const PUSH_TIMEOUT_SECS: u64 = 2;
/// The slow owner's endpoints besides its handler's (phase 7), each a black hole.
const SLOW_ENDPOINTS: usize = 5;
/// Cores of CPU used by none of the server, the receiver and the bench above which a phase is
/// flagged. Quiet runs show under 0.05 (kernel threads, timers).
const OTHER_WORK_LIMIT: f64 = 0.15;

fn main() {
    if std::env::args().any(|a| a == receiver::ARG) {
        if let Err(e) = receiver::serve() {
            eprintln!("receiver: {e}");
            std::process::exit(1);
        }
        return;
    }
    if let Err(e) = run(&Params::from_env()) {
        eprintln!("push benchmark failed: {e}");
        std::process::exit(1);
    }
}

/// The knobs of one run, printed with its results.
pub struct Params {
    /// Keep-alive connections creating intents to the healthy agent.
    pub connections: usize,
    pub warmup: Duration,
    pub measure: Duration,
    /// Most intents created and not yet received, in the closed-loop phases ("saturation" and
    /// the dead endpoint's): few enough that the outbox stays near empty.
    pub window: u64,
    /// The same in the "deep backlog" phase: enough that the outbox always holds more due
    /// deliveries than the endpoint has room for (`per_endpoint`).
    pub deep_window: u64,
    /// `--push-endpoint-concurrency`; `--push-workers` is twice it, so that a dead endpoint
    /// holding its share leaves as many to a healthy one. Also the ceiling's thread count.
    pub per_endpoint: usize,
    /// The open-loop phase's rate, as a fraction of the saturation figure.
    pub below: f64,
    /// Creates per second to the dead agent in the isolation phase.
    pub dead_rate: f64,
    /// How long a phase may wait for its last deliveries after the measured period.
    pub drain: Duration,
    /// The 1-minute load average before the run: the machine may be shared.
    pub loadavg_before: String,
    /// `false` when run as a test (no `--bench`): a short run whose figures mean nothing.
    pub full: bool,
}

impl Params {
    fn from_env() -> Params {
        let k = common::Knobs::from_args();
        Params {
            connections: k.count("AXME_BENCH_CONNECTIONS", 64.0, 8.0),
            warmup: k.secs("AXME_BENCH_WARMUP_SECS", 2.0, 0.2),
            measure: k.secs("AXME_BENCH_SECS", 10.0, 0.5),
            window: k.count("AXME_BENCH_WINDOW", 64.0, 8.0) as u64,
            deep_window: k.count("AXME_BENCH_DEEP_WINDOW", 1024.0, 64.0) as u64,
            per_endpoint: k.count("AXME_BENCH_ENDPOINT_CONCURRENCY", 64.0, 8.0),
            below: k.num("AXME_BENCH_BELOW", 0.7).min(1.0),
            dead_rate: k.pick("AXME_BENCH_DEAD_RATE", 100.0, 20.0),
            drain: k.secs("AXME_BENCH_DRAIN_SECS", 30.0, 10.0),
            loadavg_before: common::loadavg(),
            full: k.full,
        }
    }

    /// The flags axme is started with, besides its database, address and key.
    pub fn push_flags(&self) -> Vec<String> {
        [
            ("--push-workers", (2 * self.per_endpoint).to_string()),
            ("--push-endpoint-concurrency", self.per_endpoint.to_string()),
            ("--push-timeout", PUSH_TIMEOUT_SECS.to_string()),
        ]
        .into_iter()
        .flat_map(|(k, v)| [k.to_string(), v])
        .collect()
    }
}

/// The processes and endpoints of a run; dropping it stops the child processes.
pub struct Servers {
    pub axme: ChildServer,
    pub receiver: ChildServer,
    pub black_hole: BlackHole,
    /// The slow owner's subscription endpoints (phase 7).
    pub slow: Vec<BlackHole>,
}

impl Servers {
    pub fn pids(&self) -> [u32; 2] {
        [self.axme.child.id(), self.receiver.child.id()]
    }
}

/// What one phase measured.
pub struct Phase {
    pub name: String,
    pub secs: f64,
    /// Webhooks the receiver got in the measured period.
    pub received: u64,
    /// Intents created (200) in the measured period; `None` for the ceiling.
    pub created: Option<u64>,
    /// The open-loop rate asked for, if the phase was open loop.
    pub offered: Option<f64>,
    /// Open-loop sends more than 10 ms behind their schedule (their connection was still
    /// waiting for an earlier answer), of all the phase's creates (warm-up included).
    pub late: (u64, u64),
    /// Create's 200 -> receiver's arrival, µs, sorted, of the intents created in the period.
    pub latencies_us: Vec<i64>,
    /// Intents created in the period whose webhook never arrived before the drain deadline.
    pub lost: u64,
    /// Webhooks received more than once (pushes are at-least-once).
    pub duplicates: u64,
    /// Creates' own answer times (µs, sorted), or the ceiling's POST round trips.
    pub service_us: Vec<u32>,
    pub errors: Errors,
    pub cpu: Cpu,
    pub dead: Option<Dead>,
}

impl Phase {
    pub fn per_sec(&self) -> f64 {
        self.received as f64 / self.secs
    }

    /// The `q` quantile of the delivery latency, ms.
    pub fn latency_ms(&self, q: f64) -> Option<f64> {
        let n = self.latencies_us.len();
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n.max(1));
        Some(*self.latencies_us.get(rank - 1)? as f64 / 1000.0)
    }

    /// One line on stderr after each phase, so a long run shows where it is.
    pub fn progress(&self) {
        eprintln!(
            "[bench] {}: {:.0} deliveries/s, p50 {:.2} ms, p99 {:.2} ms, {} lost, {} errors; cores: axme {:.2}, receiver {:.2}, bench {:.2}, machine {:.2}",
            self.name,
            self.per_sec(),
            self.latency_ms(0.5).unwrap_or(f64::NAN),
            self.latency_ms(0.99).unwrap_or(f64::NAN),
            self.lost,
            self.errors.count(),
            self.cpu.axme.unwrap_or(f64::NAN),
            self.cpu.receiver.unwrap_or(f64::NAN),
            self.cpu.bench.unwrap_or(f64::NAN),
            self.cpu.machine.unwrap_or(f64::NAN),
        );
    }
}

/// Every phase of a run, in the order they ran.
pub struct Results {
    pub bare: Phase,
    pub saturated: Phase,
    pub deep: Phase,
    pub below: Phase,
    pub below_deep: Phase,
    pub isolated: Phase,
    pub slow_owner: Phase,
}

impl Results {
    pub fn all(&self) -> [&Phase; 7] {
        [
            &self.bare,
            &self.saturated,
            &self.deep,
            &self.below,
            &self.below_deep,
            &self.isolated,
            &self.slow_owner,
        ]
    }
}

/// The dead endpoint during the isolation phase.
pub struct Dead {
    /// Intents created for the dead agent per second (whole phase).
    pub created_per_sec: f64,
    /// Connections the black hole held, on average over the measured period.
    pub held: f64,
    /// Connections axme gave up on (timed out) in the measured period.
    pub timed_out: u64,
}

/// CPU counters at one moment: of axme, the receiver, this bench, the whole machine, and every
/// other process (to name what disturbed a phase on a shared machine).
pub struct CpuMark {
    at: Instant,
    axme: Option<Duration>,
    receiver: Option<Duration>,
    bench: Option<Duration>,
    machine: Option<Duration>,
    others: BTreeMap<u32, (String, Duration)>,
}

impl CpuMark {
    pub fn now(pids: [u32; 2]) -> CpuMark {
        CpuMark {
            at: Instant::now(),
            axme: cpu_time(&pids[0].to_string()),
            receiver: cpu_time(&pids[1].to_string()),
            bench: cpu_time("self"),
            machine: machine_busy(),
            others: others(pids),
        }
    }

    /// The CPU used since `self`, in busy cores.
    pub fn until(&self, end: &CpuMark) -> Cpu {
        let secs = end.at.duration_since(self.at).as_secs_f64().max(1e-6);
        let cores = |a: Option<Duration>, b: Option<Duration>| {
            Some(b?.saturating_sub(a?).as_secs_f64() / secs)
        };
        let mut top: Vec<(String, f64)> = end
            .others
            .iter()
            .map(|(pid, (name, t1))| {
                let t0 = self.others.get(pid).map_or(Duration::ZERO, |(_, t0)| *t0);
                (name.clone(), t1.saturating_sub(t0).as_secs_f64() / secs)
            })
            .collect();
        top.sort_by(|a, b| b.1.total_cmp(&a.1));
        top.retain(|(_, c)| *c >= 0.02);
        top.truncate(3);
        Cpu {
            axme: cores(self.axme, end.axme),
            receiver: cores(self.receiver, end.receiver),
            bench: cores(self.bench, end.bench),
            machine: cores(self.machine, end.machine),
            top_others: top,
        }
    }
}

/// CPU time so far of every process but ours, by pid, with its name.
fn others(pids: [u32; 2]) -> BTreeMap<u32, (String, Duration)> {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return BTreeMap::new();
    };
    dir.filter_map(|e| {
        let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        if pid == me || pids.contains(&pid) {
            return None;
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let name = stat.get(stat.find('(')? + 1..stat.rfind(')')?)?.to_string();
        Some((pid, (name, cpu_time(&pid.to_string())?)))
    })
    .collect()
}

/// CPU busy over a measured period, in cores.
#[derive(Clone, Default)]
pub struct Cpu {
    pub axme: Option<f64>,
    pub receiver: Option<f64>,
    pub bench: Option<f64>,
    pub machine: Option<f64>,
    /// The other processes that used the most (at least 0.02 cores), by name.
    pub top_others: Vec<(String, f64)>,
}

impl Cpu {
    /// What none of our processes used: other work on a shared machine.
    pub fn other(&self) -> Option<f64> {
        let ours: f64 = [self.axme, self.receiver, self.bench]
            .iter()
            .map(|c| c.unwrap_or(0.0))
            .sum();
        Some(self.machine? - ours)
    }
}

/// The wall clock in Unix nanoseconds: the one clock the bench and the receiver both read.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

fn run(params: &Params) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| format!("creating a temporary directory: {e}"))?;
    let exe = std::env::current_exe().map_err(|e| format!("locating the bench binary: {e}"))?;

    eprintln!("[bench] starting the receiver, the black hole and axme ...");
    let receiver = ChildServer::spawn(Command::new(exe).arg(receiver::ARG), "receiver")?;
    let black_hole = BlackHole::start()?;
    let slow = (0..SLOW_ENDPOINTS)
        .map(|_| BlackHole::start())
        .collect::<Result<Vec<_>, _>>()?;
    // Another build of axme may be measured with this harness (an A/B comparison on a noisy
    // machine: both in turn, each next to its own ceiling).
    let server =
        std::env::var_os("AXME_BENCH_SERVER").unwrap_or_else(|| env!("CARGO_BIN_EXE_axme").into());
    let mut cmd = common::serve_command(&server, &dir.path().join("axme.db"));
    cmd.args(params.push_flags());
    let axme = ChildServer::spawn(&mut cmd, "axme")?;
    let mut servers = Servers {
        axme,
        receiver,
        black_hole,
        slow,
    };

    let first = load::preflight(&servers)?;
    eprintln!(
        "[bench] first webhook: signature {}, intent {}, delivery {}",
        if first.signature_ok { "ok" } else { "WRONG" },
        first.intent_status,
        first.delivery_status
    );

    eprintln!("[bench] bare ureq ceiling ...");
    let bare = ceiling::run(&servers, &first.sample, params)?;
    bare.progress();

    eprintln!("[bench] axme at saturation ...");
    let window = load::Pace::Closed {
        window: params.window,
    };
    let saturated = load::run(&servers, "axme, saturation", window, None, params)?;
    saturated.progress();

    eprintln!("[bench] axme at saturation with a deep backlog ...");
    let deep = load::Pace::Closed {
        window: params.deep_window,
    };
    let deep = load::run(&servers, "axme, deep backlog", deep, None, params)?;
    deep.progress();

    let percent = params.below * 100.0;
    let rate = (saturated.per_sec() * params.below).max(1.0);
    eprintln!("[bench] axme at {rate:.0}/s ...");
    let name = format!("axme, {percent:.0}% of saturation");
    let below = load::run(&servers, &name, load::Pace::Open { rate }, None, params)?;
    below.progress();

    let rate = (deep.per_sec() * params.below).max(1.0);
    eprintln!("[bench] axme at {rate:.0}/s ...");
    let name = format!("axme, {percent:.0}% of deep");
    let below_deep = load::run(&servers, &name, load::Pace::Open { rate }, None, params)?;
    below_deep.progress();

    eprintln!("[bench] axme at saturation with a dead endpoint ...");
    let dead = Some(params.dead_rate);
    let isolated = load::run(&servers, "axme + dead endpoint", window, dead, params)?;
    isolated.progress();

    eprintln!("[bench] axme at saturation beside an owner with slow endpoints ...");
    api::subscribe_slow_owner(&servers)?;
    let name = format!("axme + slow owner ({})", SLOW_ENDPOINTS + 1);
    let slow_owner = load::run(&servers, &name, window, dead, params)?;
    slow_owner.progress();

    servers.axme.stop();
    servers.receiver.stop();
    let results = Results {
        bare,
        saturated,
        deep,
        below,
        below_deep,
        isolated,
        slow_owner,
    };
    println!("{}", report::render(params, &first, &results));
    Ok(())
}
