//! The printed table: parameters, the two HTTP phases and the two ceilings, the CPU they took,
//! and the targets.

use std::fmt::Write as _;
use std::time::Duration;

use super::ceiling::Ceiling;
use super::common::{machine, now, quantile_ms, thousands};
use super::load::Load;
use super::minimal::Measured;
use super::prefill::Filled;
use super::{Params, AGENT};

const TARGET_PER_SEC: f64 = 15_000.0;
/// Claim latency with the filled database, relative to the empty one.
const TARGET_LATENCY_RATIO: f64 = 1.2;
/// Cores of CPU used by neither the server nor the bench above which a phase is flagged.
const OTHER_WORK_LIMIT: f64 = 0.15;

pub struct Run<'a> {
    pub params: &'a Params,
    pub first: &'a str,
    pub empty: &'a Load,
    pub prefilled: &'a Load,
    pub filled: &'a Filled,
    pub startup: Duration,
    pub domain: &'a Ceiling,
    pub raw: &'a Ceiling,
    pub raw_filled: &'a Ceiling,
    pub minimal: &'a Measured,
}

fn ms(sorted_us: &[u32], q: f64) -> String {
    quantile_ms(sorted_us, q).map_or("-".into(), |v| format!("{v:.2}"))
}

pub fn render(r: &Run<'_>) -> String {
    let p = r.params;
    let mut w = String::new();
    let _ = writeln!(
        w,
        "\naxme claims benchmark: full inbox cycles (create -> claim -> ack COMPLETED)"
    );
    if !p.full {
        let _ = writeln!(
            w,
            "SMOKE RUN (no --bench): short, maybe unoptimised; figures mean nothing"
        );
    }
    let f = r.filled;
    let about = [
        ("machine", machine()),
        ("date", now()),
        ("loadavg", format!("{} before the run (1 minute)", p.loadavg_before)),
        ("workers", format!(
            "{} threads, each 1 keep-alive connection claiming {{\"max\":{},\"lease_seconds\":{},\"wait_seconds\":{}}} and {} acking what it got at once (COMPLETED, with a result)",
            p.workers, p.claim_max, p.lease_seconds, p.wait_seconds, p.ack_connections
        )),
        ("producers", format!(
            "{} keep-alive connections creating intents for {AGENT} (delivery_mode inbox, durability full), closed loop, at most {} created and not yet acked",
            p.producers, thousands(p.window as f64)
        )),
        ("period", format!(
            "warm-up {:.1} s, then measured {:.1} s; a request counts when its answer arrives in the period",
            p.warmup.as_secs_f64(), p.measure.as_secs_f64()
        )),
        ("ceilings", format!(
            "in-process, no HTTP: {} cycles per transaction (create a batch, claim the previous one, ack the one before), WAL, synchronous=FULL",
            p.sqlite_batch
        )),
        ("prefill", format!(
            "{} completed intents ({} events, as many threads and acked leases), {:.0} MB, written in {:.1} s with the server stopped; it then started in {:.2} s",
            thousands(f.intents as f64), thousands(f.events as f64), f.bytes as f64 / 1e6,
            f.elapsed.as_secs_f64(), r.startup.as_secs_f64()
        )),
        ("axme said", r.first.to_string()),
    ];
    for (k, v) in about {
        let _ = writeln!(w, "{k:<11}{v}");
    }

    let _ = writeln!(
        w,
        "\n{:<30}{:>9}  {:>34}{:>6}{:>7}  {:>15}{:>11}{:>8}",
        "",
        "cycles/s",
        "claim ms: p50    p90    p99    max",
        "fill",
        "waits",
        "ack p50/p99 ms",
        "create p99",
        "errors"
    );
    let prefilled_name = format!("axme, {} completed", thousands(f.intents as f64));
    for (name, l) in [
        ("axme, empty database", r.empty),
        (prefilled_name.as_str(), r.prefilled),
    ] {
        let fill = l.claimed as f64 / l.claims.max(1) as f64;
        let claim = format!(
            "{:>7}{:>7}{:>7}{:>7}",
            ms(&l.claim_us, 0.5),
            ms(&l.claim_us, 0.9),
            ms(&l.claim_us, 0.99),
            ms(&l.claim_us, 1.0)
        );
        let ack = format!("{} / {}", ms(&l.ack_us, 0.5), ms(&l.ack_us, 0.99));
        let _ = writeln!(
            w,
            "{name:<30}{:>9}  {claim:>34}{fill:>6.1}{:>7}  {ack:>15}{:>11}{:>8}",
            thousands(l.per_sec()),
            l.empty_claims,
            ms(&l.create_us, 0.99),
            l.errors.count()
        );
    }
    for (name, c) in [
        ("domain in-process (ceiling)", r.domain),
        ("raw SQLite (ceiling)", r.raw),
        ("raw SQLite, filled (ceiling)", r.raw_filled),
    ] {
        let _ = writeln!(
            w,
            "{name:<30}{:>9}  (one transaction of {} cycles: p50 {} ms, p99 {} ms, max {} ms; {} transactions)",
            thousands(c.per_sec()),
            p.sqlite_batch,
            ms(&c.txn_us, 0.5),
            ms(&c.txn_us, 0.99),
            ms(&c.txn_us, 1.0),
            c.txn_us.len()
        );
    }
    let m = r.minimal;
    let _ = writeln!(
        w,
        "{:<30}{:>9}  (one transaction of {} cycles: p50 {} ms, p99 {} ms, max {} ms; {} transactions)",
        "minimal schema (ceiling)",
        thousands(m.per_sec()),
        p.sqlite_batch,
        ms(&m.txn_us, 0.5),
        ms(&m.txn_us, 0.99),
        ms(&m.txn_us, 1.0),
        m.txn_us.len()
    );
    let _ = writeln!(
        w,
        "  minimal schema = the same intent, event and lease writes into tables with only a primary key each (WITHOUT ROWID), same PRAGMAs and batching"
    );
    let _ = writeln!(
        w,
        "  fill = intents per claim (at most {}); waits = claims that found nothing and waited in their long poll",
        p.claim_max
    );
    for (name, l) in [("empty", r.empty), ("prefilled", r.prefilled)] {
        let _ = writeln!(
            w,
            "  {name}: {} creates, {} claims handing out {} intents, {} acks answered in the period",
            thousands(l.created as f64),
            thousands(l.claims as f64),
            thousands(l.claimed as f64),
            thousands(l.cycles as f64)
        );
    }

    let _ = writeln!(
        w,
        "\n{:<30}{:>8}{:>8}{:>15}{:>8}",
        "CPU busy (cores)", "server", "bench", "whole machine", "other"
    );
    let secs = p.measure.as_secs_f64();
    let rows = [
        (
            "axme, empty database",
            [r.empty.server_cpu, r.empty.bench_cpu, r.empty.machine_cpu],
            secs,
        ),
        (
            prefilled_name.as_str(),
            [
                r.prefilled.server_cpu,
                r.prefilled.bench_cpu,
                r.prefilled.machine_cpu,
            ],
            secs,
        ),
        (
            "domain in-process (ceiling)",
            [r.domain.cpu, None, r.domain.machine_cpu],
            r.domain.elapsed.as_secs_f64(),
        ),
        (
            "raw SQLite (ceiling)",
            [r.raw.cpu, None, r.raw.machine_cpu],
            r.raw.elapsed.as_secs_f64(),
        ),
        (
            "raw SQLite, filled (ceiling)",
            [r.raw_filled.cpu, None, r.raw_filled.machine_cpu],
            r.raw_filled.elapsed.as_secs_f64(),
        ),
        (
            "minimal schema (ceiling)",
            [r.minimal.cpu, None, r.minimal.machine_cpu],
            r.minimal.elapsed.as_secs_f64(),
        ),
    ];
    let mut disturbed = Vec::new();
    for (name, cpu, secs) in rows {
        let [server, bench, whole] = cpu.map(|c| c.map(|c| c.as_secs_f64() / secs));
        let other = whole.map(|m| m - server.unwrap_or(0.0) - bench.unwrap_or(0.0));
        if other.is_some_and(|o| o > OTHER_WORK_LIMIT) {
            disturbed.push(name);
        }
        let [server, bench, whole, other] =
            [server, bench, whole, other].map(|c| c.map_or("-".into(), |c| format!("{c:.2}")));
        let _ = writeln!(w, "{name:<30}{server:>8}{bench:>8}{whole:>15}{other:>8}");
    }
    let _ = writeln!(
        w,
        "  the ceilings run in the bench's process: their CPU is under \"server\""
    );
    super::common::write_disturbed(&mut w, &disturbed);

    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    let ratio = |q: f64| {
        let a = quantile_ms(&r.prefilled.claim_us, q).unwrap_or(f64::INFINITY);
        let b = quantile_ms(&r.empty.claim_us, q).unwrap_or(f64::NAN);
        a / b
    };
    let (p50, p99) = (ratio(0.5), ratio(0.99));
    let errors = r.empty.errors.count() + r.prefilled.errors.count();
    let checks = [
        ("check", "value".to_string(), "target", ""),
        (
            "cycles/s, empty database",
            thousands(r.empty.per_sec()),
            ">= 15,000",
            verdict(r.empty.per_sec() >= TARGET_PER_SEC),
        ),
        (
            "cycles/s, raw SQLite ceiling",
            thousands(r.raw.per_sec()),
            "(>= 15,000?)",
            if r.raw.per_sec() >= TARGET_PER_SEC {
                "above"
            } else {
                "BELOW"
            },
        ),
        (
            "axme / raw SQLite",
            format!("{:.3}", r.empty.per_sec() / r.raw.per_sec()),
            "(none)",
            "",
        ),
        (
            "axme / minimal schema",
            format!("{:.3}", r.empty.per_sec() / r.minimal.per_sec()),
            "(none)",
            "",
        ),
        (
            "raw SQLite / minimal schema",
            format!("{:.3}", r.raw.per_sec() / r.minimal.per_sec()),
            "(none)",
            "",
        ),
        (
            "axme / domain in-process",
            format!("{:.3}", r.empty.per_sec() / r.domain.per_sec()),
            "(none)",
            "",
        ),
        (
            "claim p50, filled / empty",
            format!("{p50:.3}"),
            "<= 1.20",
            verdict(p50 <= TARGET_LATENCY_RATIO),
        ),
        (
            "claim p99, filled / empty",
            format!("{p99:.3}"),
            "<= 1.20",
            verdict(p99 <= TARGET_LATENCY_RATIO),
        ),
        (
            "raw SQLite, filled / empty",
            format!("{:.3}", r.raw_filled.per_sec() / r.raw.per_sec()),
            "(none)",
            "",
        ),
        (
            "cycles/s, filled / empty",
            format!("{:.3}", r.prefilled.per_sec() / r.empty.per_sec()),
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
        let _ = writeln!(w, "{name:<30}{value:>12}{target:>14}{verdict:>8}");
    }
    for (name, l) in [
        ("empty database", r.empty),
        ("prefilled database", r.prefilled),
    ] {
        super::common::write_errors(&mut w, name, &l.errors.by_kind, l.errors.first.as_deref());
    }
    super::common::trim_lines(&w)
}
