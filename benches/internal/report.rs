//! The printed table: parameters, the two phases, the CPU they took, and the target.

use std::fmt::Write as _;
use std::time::Duration;

use super::common::{machine, now, quantile_ms, thousands};
use super::{Params, Phase, HANDLED, PAYLOAD, UNHANDLED};

const TARGET_RATIO: f64 = 0.8;
/// Cores of CPU used by none of this process above which a phase is flagged.
const OTHER_WORK_LIMIT: f64 = 0.15;

fn ms(sorted_us: &[u32], q: f64) -> String {
    quantile_ms(sorted_us, q).map_or("-".into(), |v| format!("{v:.2}"))
}

pub fn render(p: &Params, first: &str, create_only: &Phase, round_trip: &Phase) -> String {
    let mut w = String::new();
    let _ = writeln!(
        w,
        "\naxme internal benchmark: HTTP create -> in-process handler -> COMPLETED"
    );
    if !p.full {
        let _ = writeln!(
            w,
            "SMOKE RUN (no --bench): short, maybe unoptimised; figures mean nothing"
        );
    }
    let about = [
        ("machine", machine()),
        ("date", now()),
        ("loadavg", format!("{} before the run (1 minute)", p.loadavg_before)),
        ("server", "axme embedded as a library (release), Server::run on a multi-thread runtime (one worker per CPU), durability full".to_string()),
        ("handler", format!("{HANDLED} registered with Server::handle (default options: 64 calls at once, 300 s lease); completes every intent at once")),
        ("load", format!("{} keep-alive HTTP/1.1 connections on one client thread in the same process, closed loop; payload {} bytes", p.connections, PAYLOAD.len())),
        ("create only", format!("creates for {UNHANDLED} (no handler): the same server taking creates alone")),
        ("round trip", format!("creates for {HANDLED}, at most {} created and not yet completed (AXME_BENCH_WINDOW)", p.window)),
        ("latency", "round trip: COMPLETED event received by an in-process observer (Server::events, filtered to the handler) - create's 200 read by the client".to_string()),
        ("period", format!("warm-up {:.1} s, then measured {:.1} s", p.warmup.as_secs_f64(), p.measure.as_secs_f64())),
        ("preflight", first.to_string()),
    ];
    for (k, v) in about {
        let _ = writeln!(w, "{k:<12}{v}");
    }
    let _ = writeln!(
        w,
        "\n{:<22}{:>10}{:>9}{:>9}{:>9}{:>9}{:>8}{:>8}",
        "", "intents/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "lost", "errors"
    );
    for (name, ph) in [
        ("create only", create_only),
        ("internal round trip", round_trip),
    ] {
        let l = &ph.latency_us;
        let _ = writeln!(
            w,
            "{name:<22}{:>10}{:>9}{:>9}{:>9}{:>9}{:>8}{:>8}",
            thousands(ph.per_sec),
            ms(l, 0.5),
            ms(l, 0.9),
            ms(l, 0.99),
            ms(l, 1.0),
            ph.lost,
            ph.tally.error_count()
        );
    }
    let _ = writeln!(
        w,
        "  create only: latency = the create's answer time; round trip: the creates' own answer p50 {} / p99 {} ms; {} created in the period",
        ms(&round_trip.create_us, 0.5),
        ms(&round_trip.create_us, 0.99),
        thousands(round_trip.tally.created.len() as f64)
    );

    let _ = writeln!(
        w,
        "\n{:<22}{:>10}{:>8}{:>15}{:>8}",
        "CPU busy (cores)", "server", "client", "whole machine", "other"
    );
    let mut disturbed = Vec::new();
    for (name, ph) in [
        ("create only", create_only),
        ("internal round trip", round_trip),
    ] {
        let cores = |d: Option<Duration>| d.map(|d| d.as_secs_f64() / ph.secs);
        let (process, client, whole) = (
            cores(ph.process_cpu),
            cores(ph.tally.cpu),
            cores(ph.machine_cpu),
        );
        let server = process.map(|p| p - client.unwrap_or(0.0));
        let other = whole.map(|m| m - process.unwrap_or(0.0));
        if other.is_some_and(|o| o > OTHER_WORK_LIMIT) {
            disturbed.push(name);
        }
        let [server, client, whole, other] =
            [server, client, whole, other].map(|c| c.map_or("-".into(), |c| format!("{c:.2}")));
        let _ = writeln!(w, "{name:<22}{server:>10}{client:>8}{whole:>15}{other:>8}");
    }
    let _ = writeln!(
        w,
        "  server = this process minus the client thread (the observer counts as server)"
    );
    super::common::write_disturbed(&mut w, &disturbed);

    let ratio = round_trip.per_sec / create_only.per_sec;
    let errors = create_only.tally.error_count() + round_trip.tally.error_count();
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    let checks = [
        ("check", "value".to_string(), "target", ""),
        (
            "round trip / create only",
            format!("{ratio:.3}"),
            ">= 0.80",
            verdict(ratio >= TARGET_RATIO),
        ),
        (
            "round trip p99",
            format!("{} ms", ms(&round_trip.latency_us, 0.99)),
            "(none)",
            "",
        ),
        (
            "lost (never completed)",
            round_trip.lost.to_string(),
            "0",
            verdict(round_trip.lost == 0),
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
        let _ = writeln!(w, "{name:<26}{value:>12}{target:>10}{verdict:>8}");
    }
    for (name, ph) in [("create only", create_only), ("round trip", round_trip)] {
        super::common::write_errors(
            &mut w,
            name,
            &ph.tally.errors,
            ph.tally.first_error.as_deref(),
        );
    }
    super::common::trim_lines(&w)
}
