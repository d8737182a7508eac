//! The pull bindings under load: how fast a commit reaches 1,000 Server-Sent Events subscribers,
//! what an idle stream costs the server in memory, and how fast a commit wakes waiting long polls.
//! Each figure stands next to a ceiling measured in the same run on the same machine, one after
//! the other so they never compete for the CPU:
//!
//! 1. **Fan-out latency.** 1,000 subscribers on one intent's stream
//!    (`GET /v1/intents/{id}/events/stream`), then separately 1,000 on the firehose
//!    (`GET /v1/events/stream`); a committer on its own thread then posts progress to the intent
//!    (`POST /v1/intents/{id}/progress`, alternating WAITING and IN_PROGRESS) at a modest fixed
//!    rate (5/s: far below what the server commits, and a fortieth of what the ceiling fans
//!    out). Each (event, subscriber) pair gives two latencies: receipt − the moment just before
//!    the committing request was written ("from send", which includes the commit's fsync), and
//!    receipt − the moment its 200 was read ("from 200", negative when the frame arrived first).
//! 2. **Idle cost.** 10,000 idle SSE connections (agent feed streams of distinct addresses) on a
//!    fresh server; its resident memory (`VmRSS`) before and after, per connection.
//! 3. **Long-poll wake-up.** 200 long polls (`GET /v1/intents/{id}/events?since=&wait_seconds=30`)
//!    parked on one intent, one commit, latency to each poll's answer; 20 rounds.
//!
//! The ceiling of each is a minimal broadcaster: this binary, re-executed with a hidden argument,
//! runs a bare hyper server set up like `axme serve` that queues the bytes it is poked with (a
//! frame or an answer captured from axme in the same run) to every open stream or parked poll.
//!
//! The client is deliberately small so it leaves the CPU to the server: one current-thread tokio
//! runtime with one task per connection on raw sockets, parsing only HTTP framing and SSE `id:`
//! lines; the committer is a blocking socket on a thread of its own so its timestamps never wait
//! for the busy runtime. Receipt times are taken when a read returns, so they include the
//! client's own turn through 1,000 ready sockets; the ceiling pays the same.
//!
//! `cargo bench --bench streams` runs it (about 45 s after the build). 10,000 client sockets need
//! `RLIMIT_NOFILE` above 10,000: when the soft limit is lower, the bench re-executes itself
//! through `sh -c 'ulimit -n ...'` up to the hard limit (no unsafe code), and holds fewer idle
//! connections if even that is short. Run without `--bench` (as `cargo test --all-targets` does)
//! it makes a short smoke run, so the harness cannot rot unnoticed. It never edits anything
//! outside its temporary directory and stops every child process it started, also on panic.

#![forbid(unsafe_code)]

#[path = "streams/bare.rs"]
mod bare;
#[path = "streams/client.rs"]
mod client;
mod common;
#[path = "streams/fanout.rs"]
mod fanout;
#[path = "streams/idle.rs"]
mod idle;
#[path = "streams/polls.rs"]
mod polls;
#[path = "streams/report.rs"]
mod report;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::API_KEY;
use common::{cpu_time, machine_busy, ChildServer, Errors};
use polls::PollPaths;

/// Set in the environment of the re-executed bench, so it never loops.
const REEXEC_ENV: &str = "AXME_BENCH_NOFILE_RAISED";
/// File descriptors the bench needs besides its idle connections (subscribers, polls, slack).
const FD_SLACK: usize = 2_500;

fn main() {
    if std::env::args().any(|a| a == bare::ARG) {
        if let Err(e) = bare::serve() {
            eprintln!("bare broadcaster: {e}");
            std::process::exit(1);
        }
        return;
    }
    let mut params = Params::from_env();
    if let Err(e) = raise_nofile(&mut params) {
        eprintln!("streams benchmark failed: {e}");
        std::process::exit(1);
    }
    if let Err(e) = run(&params) {
        eprintln!("streams benchmark failed: {e}");
        std::process::exit(1);
    }
}

/// The knobs of one run, printed with its results.
pub struct Params {
    /// SSE subscribers in each fan-out measurement.
    pub subscribers: usize,
    /// Commits in each fan-out measurement, and their rate.
    pub events: usize,
    pub rate: f64,
    /// Long polls waiting at once, and how many commits wake them.
    pub polls: usize,
    pub rounds: usize,
    /// Idle SSE connections, and the number asked for (more than `idle` when the file
    /// descriptor limit was too low).
    pub idle: usize,
    pub idle_asked: usize,
    /// The soft `RLIMIT_NOFILE` this process runs with.
    pub nofile: Option<u64>,
    /// The 1-minute load average before the run: the machine may be shared.
    pub loadavg_before: String,
    /// `false` when run as a test (no `--bench`): a short run whose figures mean nothing.
    pub full: bool,
}

impl Params {
    fn from_env() -> Params {
        let k = common::Knobs::from_args();
        let idle = k.count("AXME_BENCH_IDLE", 10_000.0, 200.0);
        Params {
            subscribers: k.count("AXME_BENCH_SUBSCRIBERS", 1_000.0, 20.0),
            events: k.count("AXME_BENCH_EVENTS", 25.0, 4.0),
            rate: k.num("AXME_BENCH_EVENT_RATE", 5.0),
            polls: k.count("AXME_BENCH_POLLS", 200.0, 10.0),
            rounds: k.count("AXME_BENCH_POLL_ROUNDS", 20.0, 2.0),
            idle,
            idle_asked: idle,
            nofile: nofile_limits().map(|(soft, _)| soft),
            loadavg_before: common::loadavg(),
            full: k.full,
        }
    }

    /// File descriptors this process needs.
    fn fds_needed(&self) -> usize {
        self.idle + self.subscribers.max(self.polls) + FD_SLACK
    }
}

/// The soft and hard `RLIMIT_NOFILE` of this process, from `/proc/self/limits`.
fn nofile_limits() -> Option<(u64, u64)> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut fields = line.split_whitespace().skip(3);
    let mut value = || match fields.next()? {
        "unlimited" => Some(u64::MAX),
        v => v.parse().ok(),
    };
    Some((value()?, value()?))
}

/// Makes sure this process (and so the servers it starts, which inherit the limit) may open
/// enough sockets: re-executes itself under `sh -c 'ulimit -n N'` when the soft limit is too
/// low and the hard limit allows more, and otherwise holds fewer idle connections.
fn raise_nofile(params: &mut Params) -> Result<(), String> {
    let Some((soft, hard)) = nofile_limits() else {
        return Ok(());
    };
    let needed = params.fds_needed() as u64;
    if soft >= needed {
        return Ok(());
    }
    let target = hard.min(needed.max(65_536));
    if target > soft && std::env::var_os(REEXEC_ENV).is_none() {
        use std::os::unix::process::CommandExt;
        let exe = std::env::current_exe().map_err(|e| format!("locating the bench: {e}"))?;
        eprintln!(
            "[bench] RLIMIT_NOFILE {soft} is below {needed}; re-executing under ulimit -n {target}"
        );
        // `exec` only returns on failure.
        let e = Command::new("sh")
            .arg("-c")
            .arg(r#"ulimit -n "$0" && exec "$@""#)
            .arg(target.to_string())
            .arg(exe)
            .args(std::env::args_os().skip(1))
            .env(REEXEC_ENV, "1")
            .exec();
        return Err(format!("re-executing under a higher ulimit -n: {e}"));
    }
    let room = (soft as usize).saturating_sub(params.fds_needed() - params.idle);
    eprintln!(
        "[bench] RLIMIT_NOFILE is {soft} (hard {hard}): holding {room} idle connections, not {}",
        params.idle
    );
    params.idle = room.max(1);
    Ok(())
}

/// CPU counters at one moment: of the server, of this bench, of the whole machine, and of every
/// other process (to name what disturbed a phase on a shared machine).
pub struct CpuMark {
    at: Instant,
    server_pid: u32,
    server: Option<Duration>,
    client: Option<Duration>,
    machine: Option<Duration>,
    others: BTreeMap<u32, (String, Duration)>,
}

impl CpuMark {
    pub fn now(server_pid: u32) -> CpuMark {
        CpuMark {
            at: Instant::now(),
            server_pid,
            server: cpu_time(&server_pid.to_string()),
            client: cpu_time("self"),
            machine: machine_busy(),
            others: others(server_pid),
        }
    }

    /// The CPU used since `self`, in busy cores.
    pub fn until(&self, end: &CpuMark) -> Cpu {
        let secs = end.at.duration_since(self.at).as_secs_f64().max(1e-6);
        let cores = |a: Option<Duration>, b: Option<Duration>| {
            Some(b?.saturating_sub(a?).as_secs_f64() / secs)
        };
        let mut top: Vec<(String, f64)> = others(self.server_pid)
            .into_iter()
            .map(|(pid, (name, t1))| {
                let t0 = self.others.get(&pid).map_or(Duration::ZERO, |(_, t0)| *t0);
                (name, t1.saturating_sub(t0).as_secs_f64() / secs)
            })
            .collect();
        let named_others = top.iter().map(|(_, c)| c).sum();
        top.sort_by(|a, b| b.1.total_cmp(&a.1));
        top.retain(|(_, c)| *c >= 0.02);
        top.truncate(3);
        Cpu {
            secs,
            server: cores(self.server, end.server),
            client: cores(self.client, end.client),
            machine: cores(self.machine, end.machine),
            top_others: top,
            named_others,
        }
    }
}

/// CPU time so far of every process but the server and this bench, by pid, with its name.
fn others(server_pid: u32) -> BTreeMap<u32, (String, Duration)> {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return BTreeMap::new();
    };
    dir.filter_map(|e| {
        let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        if pid == me || pid == server_pid {
            return None;
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let name = stat.get(stat.find('(')? + 1..stat.rfind(')')?)?.to_string();
        Some((pid, (name, cpu_time(&pid.to_string())?)))
    })
    .collect()
}

/// CPU busy over a measured period, in cores.
#[derive(Clone)]
pub struct Cpu {
    pub secs: f64,
    pub server: Option<f64>,
    pub client: Option<f64>,
    pub machine: Option<f64>,
    /// The other processes that used the most (at least 0.02 cores), by name.
    pub top_others: Vec<(String, f64)>,
    /// What all other processes alive at the end used; the rest of `other()` went to processes
    /// that came and went within the period, or to the kernel.
    pub named_others: f64,
}

impl Cpu {
    /// What neither the server nor the client used: other work on a shared machine.
    pub fn other(&self) -> Option<f64> {
        Some(self.machine? - self.server.unwrap_or(0.0) - self.client.unwrap_or(0.0))
    }
}

/// Resident memory and thread count of a process, from `/proc/PID/status`.
pub fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse::<u64>().ok()
    };
    Some((field("VmRSS:")?, field("Threads:")?))
}

/// Every figure of the run, for the table.
pub struct Results {
    pub intent_axme: fanout::FanOut,
    pub intent_bare: fanout::FanOut,
    pub firehose_axme: fanout::FanOut,
    pub firehose_bare: fanout::FanOut,
    pub polls_axme: polls::Polls,
    pub polls_bare: polls::Polls,
    pub idle_axme: idle::Idle,
    pub idle_bare: idle::Idle,
}

fn run(params: &Params) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| format!("creating a temporary directory: {e}"))?;
    let exe = std::env::current_exe().map_err(|e| format!("locating the bench binary: {e}"))?;
    let max_streams = (params.idle + params.subscribers + 1_000).max(20_000);
    let max_waiters = (params.polls + 100).max(10_000);

    eprintln!(
        "[bench] starting axme ({}) and the bare broadcaster ...",
        env!("CARGO_BIN_EXE_axme")
    );
    let mut axme = spawn_axme(&dir.path().join("axme.db"), max_streams, max_waiters)?;
    let mut bare = ChildServer::spawn(Command::new(&exe).arg(bare::ARG), "bare broadcaster")?;
    let (apid, bpid) = (axme.child.id(), bare.child.id());
    let (aaddr, baddr) = (axme.addr, bare.addr);

    // Fan-out: axme first, so that the ceiling sends the very frames axme sent.
    let intent = client::intent(aaddr, "fan-out on one intent")?;
    let path = format!(
        "/v1/intents/{}/events/stream?since={}",
        intent.id, intent.seq
    );
    let commits = client::progress_requests(aaddr, &intent, params.events);
    let intent_axme = fanout::fan_out(aaddr, apid, &path, commits, params)?;
    intent_axme.progress("intent stream, axme");
    let pokes = client::frame_pokes(baddr, &intent_axme.sample, params.events);
    let intent_bare = fanout::fan_out(baddr, bpid, "/stream", pokes, params)?;
    intent_bare.progress("intent stream, bare");

    let firehose = client::intent(aaddr, "fan-out on the firehose")?;
    let path = format!("/v1/events/stream?since={}", client::log_end(aaddr)?);
    let commits = client::progress_requests(aaddr, &firehose, params.events);
    let firehose_axme = fanout::fan_out(aaddr, apid, &path, commits, params)?;
    firehose_axme.progress("firehose, axme");
    let pokes = client::frame_pokes(baddr, &firehose_axme.sample, params.events);
    let firehose_bare = fanout::fan_out(baddr, bpid, "/stream", pokes, params)?;
    firehose_bare.progress("firehose, bare");

    // Long polls, axme first for the same reason.
    let polled = client::intent(aaddr, "long polls")?;
    let commits = client::progress_requests(aaddr, &polled, params.rounds);
    let polls_axme = polls::long_polls(aaddr, apid, PollPaths::Axme(&polled), commits, params)?;
    polls_axme.progress("long polls, axme");
    let pokes = client::answer_pokes(baddr, &polls_axme.sample, params.rounds);
    let polls_bare = polls::long_polls(baddr, bpid, PollPaths::Bare, pokes, params)?;
    polls_bare.progress("long polls, bare");
    axme.stop();
    bare.stop();

    // Idle connections, each on a fresh server so nothing left by the phases above is reused.
    eprintln!(
        "[bench] idle: {} connections on a fresh axme ...",
        params.idle
    );
    let mut axme = spawn_axme(&dir.path().join("idle.db"), max_streams, max_waiters)?;
    let feed = |i: usize| format!("/v1/agents/bench/idle/{i}/intents/stream");
    let idle_axme = idle::idle(axme.addr, axme.child.id(), &feed, params)?;
    axme.stop();
    idle_axme.progress("idle, axme");
    eprintln!(
        "[bench] idle: {} connections on a fresh bare broadcaster ...",
        params.idle
    );
    let mut bare = ChildServer::spawn(Command::new(&exe).arg(bare::ARG), "bare broadcaster")?;
    let idle_bare = idle::idle(bare.addr, bare.child.id(), &|_| "/stream".into(), params)?;
    bare.stop();
    idle_bare.progress("idle, bare");

    let results = Results {
        intent_axme,
        intent_bare,
        firehose_axme,
        firehose_bare,
        polls_axme,
        polls_bare,
        idle_axme,
        idle_bare,
    };
    println!("{}", report::render(params, &results));
    Ok(())
}

/// Starts `axme serve` on a fresh database at `db` with room for the bench's streams.
fn spawn_axme(db: &Path, max_streams: usize, max_waiters: usize) -> Result<ChildServer, String> {
    let mut cmd = common::axme_serve(db);
    cmd.args(["--max-streams", &max_streams.to_string()])
        .args(["--max-waiters", &max_waiters.to_string()]);
    ChildServer::spawn(&mut cmd, "axme")
}
