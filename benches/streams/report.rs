//! The printed table of the streams bench: parameters, the latencies and memory of axme next to
//! the bare broadcaster's, the CPU each phase took, and the targets.

use std::fmt::Write as _;

use super::client::quantile_ms;
use super::common::{machine, now, thousands};
use super::fanout::FanOut;
use super::idle::Idle;
use super::{Cpu, Errors, Params, Results};

/// p99 of fan-out and wake-up latency, ms.
const TARGET_P99_MS: f64 = 5.0;
/// Resident memory per idle stream, KiB.
const TARGET_KIB_PER_CONN: f64 = 20.0;
/// Cores of CPU used by neither the server nor the bench above which a phase is flagged.
const OTHER_WORK_LIMIT: f64 = 0.15;

pub fn render(p: &Params, r: &Results) -> String {
    let mut w = String::new();
    let _ = writeln!(
        w,
        "\naxme streams benchmark: SSE fan-out, idle streams, long-poll wake-ups"
    );
    if !p.full {
        let _ = writeln!(
            w,
            "SMOKE RUN (no --bench): small, maybe unoptimised; figures mean nothing"
        );
    }
    let idle_note = match p.idle < p.idle_asked {
        true => format!(
            " (REDUCED from {}: RLIMIT_NOFILE too low)",
            thousands(p.idle_asked as f64)
        ),
        false => String::new(),
    };
    let frame = &r.intent_axme.sample;
    let about = [
        ("machine", machine()),
        ("date", now()),
        ("loadavg", format!("{} before the run (1 minute)", p.loadavg_before)),
        ("fan-out", format!("{} SSE subscribers per row; {} commits at {}/s, one progress event each (WAITING, IN_PROGRESS in turn)", thousands(p.subscribers as f64), p.events, p.rate)),
        ("long polls", format!("{} polls parked on one intent (wait_seconds=30), {} rounds of one commit, sent 150 ms after the polls", p.polls, p.rounds)),
        ("idle", format!("{} SSE connections on a fresh server (axme: agent feed streams of distinct addresses){idle_note}", thousands(p.idle as f64))),
        ("latency", "\"send\": receipt - just before the commit was written (includes its fsync); \"200\": receipt - its 200 was read".into()),
        ("ceiling", "bare hyper 1.x http1 set up like axme, 2 workers, one 256-frame queue per stream; each poke queues axme's frame to all".into()),
        ("nofile", p.nofile.map_or("?".into(), |n| format!("{n} (soft RLIMIT_NOFILE of the bench and the servers it starts)"))),
        ("frame", format!("{} bytes: {}", frame.len() + 2, frame.replace('\n', "\\n"))),
    ];
    for (k, v) in about {
        let _ = writeln!(w, "{k:<12}{v}");
    }

    let _ = writeln!(w, "\nfan-out latency (ms), every (commit, subscriber) pair");
    latency_header(&mut w);
    for (kind, axme, bare) in [
        ("intent stream", &r.intent_axme, &r.intent_bare),
        ("firehose", &r.firehose_axme, &r.firehose_bare),
    ] {
        latency_rows(
            &mut w,
            kind,
            "axme",
            &axme.from_send,
            &axme.from_ok,
            &axme.errors,
        );
        latency_rows(
            &mut w,
            "",
            "bare (ceiling)",
            &bare.from_send,
            &bare.from_ok,
            &bare.errors,
        );
    }
    commit_header(&mut w);
    for (name, f) in [
        ("intent stream, axme", &r.intent_axme),
        ("intent stream, bare", &r.intent_bare),
        ("firehose, axme", &r.firehose_axme),
        ("firehose, bare", &r.firehose_bare),
    ] {
        let opened = Some(f.opened_in);
        commit_row(
            &mut w,
            name,
            &f.round_trips,
            &f.cpu,
            f.commits,
            f.server_threads,
            opened,
        );
    }

    let _ = writeln!(w, "\nlong-poll wake latency (ms), every (round, poll) pair");
    latency_header(&mut w);
    let (a, b) = (&r.polls_axme, &r.polls_bare);
    latency_rows(
        &mut w,
        "intent events",
        "axme",
        &a.from_send,
        &a.from_ok,
        &a.errors,
    );
    latency_rows(
        &mut w,
        "",
        "bare (ceiling)",
        &b.from_send,
        &b.from_ok,
        &b.errors,
    );
    commit_header(&mut w);
    for (name, p) in [("long polls, axme", a), ("long polls, bare", b)] {
        commit_row(
            &mut w,
            name,
            &p.round_trips,
            &p.cpu,
            p.rounds,
            p.server_threads,
            None,
        );
    }

    let _ = writeln!(
        w,
        "\n{:<16}{:>8}{:>12}{:>12}{:>10}{:>10}{:>12}{:>11}{:>13}",
        "idle streams",
        "conns",
        "RSS before",
        "RSS after",
        "KiB/conn",
        "threads",
        "RSS closed",
        "opened in",
        "server cores"
    );
    for (name, i) in [("axme", &r.idle_axme), ("bare (ceiling)", &r.idle_bare)] {
        idle_row(&mut w, name, i);
    }
    let _ = writeln!(w, "{:<16}(RSS in KiB from /proc/PID/status; threads before -> after; server cores while all sat idle, 2 s)", "");

    let _ = writeln!(
        w,
        "\n{:<26}{:>9}{:>9}{:>15}{:>9}  other processes (cores)",
        "CPU busy (cores)", "server", "bench", "whole machine", "other"
    );
    let phases: [(&str, &Cpu); 8] = [
        ("fan-out intent, axme", &r.intent_axme.cpu),
        ("fan-out intent, bare", &r.intent_bare.cpu),
        ("fan-out firehose, axme", &r.firehose_axme.cpu),
        ("fan-out firehose, bare", &r.firehose_bare.cpu),
        ("long polls, axme", &r.polls_axme.cpu),
        ("long polls, bare", &r.polls_bare.cpu),
        ("idle, axme", &r.idle_axme.cpu),
        ("idle, bare", &r.idle_bare.cpu),
    ];
    let mut disturbed = Vec::new();
    for (name, cpu) in phases {
        let other = cpu.other();
        // Memory and the idle server's own CPU do not depend on other work: idle is not flagged.
        let timed = !name.starts_with("idle");
        if timed && other.is_some_and(|o| o > OTHER_WORK_LIMIT) {
            disturbed.push(name);
        }
        let c = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}"));
        let mut top: Vec<String> = cpu
            .top_others
            .iter()
            .map(|(n, c)| format!("{n} {c:.2}"))
            .collect();
        let unnamed = other.map_or(0.0, |o| o - cpu.named_others);
        if unnamed >= 0.05 {
            top.push(format!("short-lived or kernel {unnamed:.2}"));
        }
        let _ = writeln!(
            w,
            "{name:<26}{:>9}{:>9}{:>15}{:>9}  {}",
            c(cpu.server),
            c(cpu.client),
            c(cpu.machine),
            c(other),
            top.join(", ")
        );
    }
    let _ = writeln!(
        w,
        "{:<26}(a busy machine does not change memory, so the idle rows are never flagged)",
        ""
    );
    super::common::write_disturbed(&mut w, &disturbed);

    checks(&mut w, r);
    let all_errors: [(&str, &Errors); 6] = [
        ("fan-out intent, axme", &r.intent_axme.errors),
        ("fan-out intent, bare", &r.intent_bare.errors),
        ("fan-out firehose, axme", &r.firehose_axme.errors),
        ("fan-out firehose, bare", &r.firehose_bare.errors),
        ("long polls, axme", &r.polls_axme.errors),
        ("long polls, bare", &r.polls_bare.errors),
    ];
    for (name, e) in all_errors {
        super::common::write_errors(&mut w, name, &e.by_kind, e.first.as_deref());
    }
    super::common::trim_lines(&w)
}

fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.2}"))
}

fn commit_header(w: &mut String) {
    let _ = writeln!(
        w,
        "{:<24}{:>28}{:>14}{:>9}{:>11}",
        "per commit", "round trip p50/p99/max ms", "server CPU", "threads", "opened in"
    );
}

/// A commit's round trip (written to 200 read), the server's CPU per commit (all the work the
/// commit caused, wake-ups included), its thread count at the end, and how long the connections
/// took to open.
fn commit_row(
    w: &mut String,
    name: &str,
    round_trips: &[i64],
    cpu: &Cpu,
    commits: usize,
    threads: Option<u64>,
    opened: Option<std::time::Duration>,
) {
    let q = |q| ms(quantile_ms(round_trips, q));
    let trips = format!("{} / {} / {}", q(0.5), q(0.99), q(1.0));
    let per = cpu.server.map_or("-".into(), |c| {
        format!("{:.1} ms", c * cpu.secs * 1000.0 / commits.max(1) as f64)
    });
    let threads = threads.map_or("-".into(), |t| t.to_string());
    let opened = opened.map_or("-".into(), |d| format!("{:.2} s", d.as_secs_f64()));
    let _ = writeln!(
        w,
        "  {name:<22}{trips:>28}{per:>14}{threads:>9}{opened:>11}"
    );
}

fn latency_header(w: &mut String) {
    let _ = writeln!(
        w,
        "{:<15}{:<16}{:<6}{:>9}{:>8}{:>8}{:>8}{:>9}{:>8}{:>8}",
        "", "", "from", "pairs", "p50", "p90", "p99", "p99.9", "max", "errors"
    );
}

fn latency_rows(w: &mut String, kind: &str, who: &str, send: &[i64], ok: &[i64], errors: &Errors) {
    for (i, (from, v)) in [("send", send), ("200", ok)].into_iter().enumerate() {
        let q = |q| ms(quantile_ms(v, q));
        let (kind, who) = if i == 0 { (kind, who) } else { ("", "") };
        let errors = if i == 0 {
            errors.count().to_string()
        } else {
            String::new()
        };
        let _ = writeln!(
            w,
            "{kind:<15}{who:<16}{from:<6}{:>9}{:>8}{:>8}{:>8}{:>9}{:>8}{errors:>8}",
            thousands(v.len() as f64),
            q(0.5),
            q(0.9),
            q(0.99),
            q(0.999),
            q(1.0)
        );
    }
}

fn idle_row(w: &mut String, name: &str, i: &Idle) {
    let kib = |v: Option<(u64, u64)>| v.map_or("-".into(), |(rss, _)| thousands(rss as f64));
    let threads = match (i.before, i.after) {
        (Some((_, a)), Some((_, b))) => format!("{a}->{b}"),
        _ => "-".into(),
    };
    let per = i.per_conn_kib().map_or("-".into(), |v| format!("{v:.1}"));
    let cores = i.cpu.server.map_or("-".into(), |v| format!("{v:.3}"));
    let _ = writeln!(
        w,
        "{name:<16}{:>8}{:>12}{:>12}{per:>10}{threads:>10}{:>12}{:>10.1} s{cores:>13}",
        thousands(i.n as f64),
        kib(i.before),
        kib(i.after),
        kib(i.closed),
        i.opened_in.as_secs_f64()
    );
}

fn checks(w: &mut String, r: &Results) {
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    let p99 = |v: &[i64]| quantile_ms(v, 0.99);
    let fmt_ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2} ms"));
    let mut rows: Vec<(String, String, String, String, &str)> = Vec::new();
    let mut latency = |name: &str, axme: Option<f64>, bare: Option<f64>| {
        let ok = axme.is_some_and(|v| v <= TARGET_P99_MS);
        rows.push((
            name.into(),
            fmt_ms(axme),
            fmt_ms(bare),
            "<= 5 ms".into(),
            verdict(ok),
        ));
    };
    let fan = |f: &FanOut| (p99(&f.from_ok), p99(&f.from_send));
    let (ia, ib) = (fan(&r.intent_axme), fan(&r.intent_bare));
    let (fa, fb) = (fan(&r.firehose_axme), fan(&r.firehose_bare));
    latency("fan-out p99, intent, from 200", ia.0, ib.0);
    latency("fan-out p99, intent, from send", ia.1, ib.1);
    latency("fan-out p99, firehose, from 200", fa.0, fb.0);
    latency("fan-out p99, firehose, from send", fa.1, fb.1);
    let (pa, pb) = (&r.polls_axme, &r.polls_bare);
    latency(
        "long-poll p99, from 200",
        p99(&pa.from_ok),
        p99(&pb.from_ok),
    );
    latency(
        "long-poll p99, from send",
        p99(&pa.from_send),
        p99(&pb.from_send),
    );
    let kib = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1} KiB"));
    let per = r.idle_axme.per_conn_kib();
    rows.push((
        "idle RSS per connection".into(),
        kib(per),
        kib(r.idle_bare.per_conn_kib()),
        "<= 20 KiB".into(),
        verdict(per.is_some_and(|v| v <= TARGET_KIB_PER_CONN)),
    ));
    let errors = |fs: [&Errors; 3]| fs.iter().map(|e| e.count()).sum::<u64>();
    let ea = errors([&r.intent_axme.errors, &r.firehose_axme.errors, &pa.errors]);
    let eb = errors([&r.intent_bare.errors, &r.firehose_bare.errors, &pb.errors]);
    rows.push((
        "errors".into(),
        ea.to_string(),
        eb.to_string(),
        "0".into(),
        verdict(ea + eb == 0),
    ));

    let _ = writeln!(
        w,
        "\n{:<34}{:>11}{:>11}{:>11}{:>8}",
        "check", "axme", "ceiling", "target", ""
    );
    for (name, axme, bare, target, verdict) in rows {
        let _ = writeln!(w, "{name:<34}{axme:>11}{bare:>11}{target:>11}{verdict:>8}");
    }
}
