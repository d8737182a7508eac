//! The printed table of the push bench: parameters, deliveries per second and latency of each
//! phase next to the ceiling, the CPU each phase took, and the targets.

use std::fmt::Write as _;

use super::api::Preflight;
use super::common::{machine, now, quantile_ms, thousands};
use super::load::PAYLOAD;
use super::{Params, Phase, Results, HEALTHY_AGENT, OTHER_WORK_LIMIT, PUSH_TIMEOUT_SECS};

/// Deliveries per second to one endpoint at saturation.
const TARGET_PER_SEC: f64 = 10_000.0;
/// p99 of create-to-receipt latency below saturation, ms.
const TARGET_P99_MS: f64 = 20.0;
/// Throughput to a healthy endpoint next to a dead one, as a fraction of healthy only.
const TARGET_ISOLATION: f64 = 0.90;
/// An open-loop phase that received less than this fraction of what it offered fell behind.
const KEPT_UP: f64 = 0.98;

pub fn render(p: &Params, first: &Preflight, r: &Results) -> String {
    let (bare, saturated, deep, isolated) = (&r.bare, &r.saturated, &r.deep, &r.isolated);
    let slow_owner = &r.slow_owner;
    let (below, below_deep) = (&r.below, &r.below_deep);
    let phases = r.all();
    let mut w = String::new();
    let _ = writeln!(
        w,
        "\naxme push benchmark: handler webhooks to an http agent"
    );
    if !p.full {
        let _ = writeln!(
            w,
            "SMOKE RUN (no --bench): short, maybe unoptimised; figures mean nothing"
        );
    }
    let (warmup, measure) = (p.warmup.as_secs_f64(), p.measure.as_secs_f64());
    let dead_warmup = warmup.max(PUSH_TIMEOUT_SECS as f64 + 1.0);
    let body = &first.sample.body;
    let shown: String = body.chars().take(100).collect();
    let checked = format!(
        "the first: signature {} with the agent's secret; delivery {:?} with {} recorded attempt(s); intent {}",
        if first.signature_ok { "verified" } else { "DID NOT VERIFY" },
        first.delivery_status,
        first.attempts,
        first.intent_status
    );
    let about = [
        ("machine", machine()),
        ("date", now()),
        ("loadavg", format!("{} before the run (1 minute)", p.loadavg_before)),
        ("axme", format!("axme serve {}: {} attempts at once to one endpoint, and as many workers again for the dead one{}", p.push_flags().join(" "), p.per_endpoint, std::env::var("AXME_BENCH_SERVER").map(|s| format!(" (binary {s}, AXME_BENCH_SERVER)")).unwrap_or_default())),
        ("receiver", "hyper 1.x http1 set up like axme (2 workers), own process; stamps the arrival, reads the body, answers 200 (empty) at once".into()),
        ("load", format!("{} keep-alive HTTP/1.1 connections creating intents for {HEALTHY_AGENT}, one task each on 1 client thread; payload {} bytes", p.connections, PAYLOAD.len())),
        ("saturation", format!("closed loop, at most {} intents created and not yet received (AXME_BENCH_WINDOW): the outbox stays near empty", p.window)),
        ("deep", format!("the same with at most {} (AXME_BENCH_DEEP_WINDOW): more due deliveries wait in the outbox than the endpoint has room for ({})", thousands(p.deep_window as f64), p.per_endpoint)),
        ("below", format!("open loop at {:.0}% of the saturation figure ({}/s), then of the deep-backlog figure ({}/s)", p.below * 100.0, thousands(below.offered.unwrap_or(0.0)), thousands(below_deep.offered.unwrap_or(0.0)))),
        ("dead", format!("a second http agent whose endpoint accepts and never answers; {} creates/s for it on 4 more connections; attempts time out after {PUSH_TIMEOUT_SECS} s", p.dead_rate)),
        ("slow owner", format!("the dead agent also subscribed to its intents' events at {} more black holes: one owner with {} endpoints that never answer, more attempts than --push-workers; it may hold at most half of the workers (--push-workers-per-owner)", super::SLOW_ENDPOINTS, super::SLOW_ENDPOINTS + 1)),
        ("ceiling", format!("{} threads of bare ureq 2 POSTs (one agent set up like axme's) of the webhook axme sent, to the same receiver", p.per_endpoint)),
        ("period", format!("warm-up {warmup:.1} s ({dead_warmup:.1} s with the dead endpoint), measured {measure:.1} s; then the last deliveries are awaited")),
        ("latency", "create's 200 read by the bench -> webhook at the receiver (wall clock, same machine)".into()),
        ("webhook", checked),
        ("body", format!("{} bytes: {shown}...", body.len())),
    ];
    for (k, v) in about {
        let _ = writeln!(w, "{k:<12}{v}");
    }

    let _ = writeln!(
        w,
        "\n{:<24}{:>13}{:>11}{:>8}{:>8}{:>8}{:>8}{:>7}{:>8}",
        "", "deliveries/s", "creates/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "lost", "errors"
    );
    for r in phases {
        let q = |q: f64| r.latency_ms(q).map_or("-".into(), |v| format!("{v:.2}"));
        let created = r
            .created
            .map_or("-".into(), |c| thousands(c as f64 / r.secs));
        let lost = r.created.map_or("-".into(), |_| r.lost.to_string());
        let _ = writeln!(
            w,
            "{:<24}{:>13}{created:>11}{:>8}{:>8}{:>8}{:>8}{lost:>7}{:>8}",
            r.name,
            thousands(r.per_sec()),
            q(0.5),
            q(0.9),
            q(0.99),
            q(1.0),
            r.errors.count()
        );
    }
    let svc = |r: &Phase| {
        let q = |q: f64| quantile_ms(&r.service_us, q).map_or("-".into(), |v| format!("{v:.2}"));
        format!("p50 {} / p99 {} ms", q(0.5), q(0.99))
    };
    let _ = writeln!(
        w,
        "  ceiling's POST round trip {}; creates' own answer: {} (saturation), {} (deep), {} and {} (open loop), {} (dead)",
        svc(bare),
        svc(saturated),
        svc(deep),
        svc(below),
        svc(below_deep),
        svc(isolated)
    );
    for r in [below, below_deep] {
        let (Some(rate), (late, sent)) = (r.offered, r.late) else {
            continue;
        };
        let _ = writeln!(
            w,
            "  {}: {late} of {sent} creates sent more than 10 ms behind schedule (their connection still waited for an answer)",
            r.name
        );
        if r.per_sec() < KEPT_UP * rate {
            let _ = writeln!(
                w,
                "!!!!! {}: FELL BEHIND: {}/s received of {}/s offered; the outbox backlog grew, so its latencies are queueing",
                r.name,
                thousands(r.per_sec()),
                thousands(rate)
            );
        }
    }
    if let Some(d) = &isolated.dead {
        let _ = writeln!(
            w,
            "  dead endpoint: {:.0} creates/s for it; the black hole held {:.1} connections on average; {} attempts timed out in the period",
            d.created_per_sec, d.held, d.timed_out
        );
    }
    let dups: u64 = phases.iter().map(|r| r.duplicates).sum();
    if dups > 0 {
        let _ = writeln!(
            w,
            "  {dups} webhooks arrived more than once (at-least-once)"
        );
    }

    let _ = writeln!(
        w,
        "\n{:<24}{:>8}{:>10}{:>8}{:>15}{:>8}",
        "CPU busy (cores)", "axme", "receiver", "bench", "whole machine", "other"
    );
    let mut disturbed = Vec::new();
    for r in phases {
        let c = &r.cpu;
        let other = c.other();
        if other.is_some_and(|o| o > OTHER_WORK_LIMIT) {
            let top: Vec<String> = c
                .top_others
                .iter()
                .map(|(name, cores)| format!("{name} {cores:.2}"))
                .collect();
            disturbed.push(format!("{} ({})", r.name, top.join(", ")));
        }
        let [a, rc, b, m, o] = [c.axme, c.receiver, c.bench, c.machine, other]
            .map(|v| v.map_or("-".into(), |v| format!("{v:.2}")));
        let _ = writeln!(w, "{:<24}{a:>8}{rc:>10}{b:>8}{m:>15}{o:>8}", r.name);
    }
    let _ = writeln!(
        w,
        "  bench = load generator + black hole, or the ceiling's ureq threads; other = whole machine - the three"
    );
    if !disturbed.is_empty() {
        let _ = writeln!(
            w,
            "!!!!! other work took CPU during: {}; those figures are suspect, rerun on a quiet machine",
            disturbed.join("; ")
        );
    }

    let p99 = |r: &Phase| r.latency_ms(0.99).unwrap_or(f64::INFINITY);
    let kept_up = |r: &Phase| r.per_sec() / r.offered.unwrap_or(f64::INFINITY);
    let isolation = isolated.per_sec() / saturated.per_sec();
    let fair_share = slow_owner.per_sec() / saturated.per_sec();
    let p50 = |r: &Phase| r.latency_ms(0.5).unwrap_or(f64::INFINITY);
    let fair_latency = p50(slow_owner) / p50(saturated);
    let lost: u64 = phases.iter().map(|r| r.lost).sum();
    let errors: u64 = phases.iter().map(|r| r.errors.count()).sum();
    let first_ok = first.signature_ok
        && first.intent_status == "DELIVERED"
        && first.delivery_status == "delivered";
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    let checks = [
        ("check", "value".to_string(), "target", ""),
        (
            "deliveries/s at saturation",
            thousands(saturated.per_sec()),
            ">= 10,000",
            verdict(saturated.per_sec() >= TARGET_PER_SEC),
        ),
        (
            "p99 latency at 70% of saturation",
            format!("{:.2} ms", p99(below)),
            "<= 20 ms",
            verdict(p99(below) <= TARGET_P99_MS),
        ),
        (
            "p99 latency at 70% of deep backlog",
            format!("{:.2} ms", p99(below_deep)),
            "<= 20 ms",
            verdict(p99(below_deep) <= TARGET_P99_MS),
        ),
        (
            "with a dead endpoint / healthy only",
            format!("{isolation:.3}"),
            ">= 0.90",
            verdict(isolation >= TARGET_ISOLATION),
        ),
        (
            "beside a slow owner / healthy only",
            format!("{fair_share:.3}"),
            ">= 0.90",
            verdict(fair_share >= TARGET_ISOLATION),
        ),
        (
            "p50 beside a slow owner / healthy only",
            format!("{fair_latency:.3}"),
            "(none)",
            "",
        ),
        (
            "70% of saturation: received/offered",
            format!("{:.3}", kept_up(below)),
            ">= 0.98",
            verdict(kept_up(below) >= KEPT_UP),
        ),
        (
            "70% of deep: received/offered",
            format!("{:.3}", kept_up(below_deep)),
            ">= 0.98",
            verdict(kept_up(below_deep) >= KEPT_UP),
        ),
        (
            "deep backlog / saturation",
            format!("{:.3}", deep.per_sec() / saturated.per_sec()),
            "(none)",
            "",
        ),
        (
            "axme / bare ureq",
            format!("{:.3}", saturated.per_sec() / bare.per_sec()),
            "(none)",
            "",
        ),
        (
            "lost (never received)",
            lost.to_string(),
            "0",
            verdict(lost == 0),
        ),
        (
            "errors (incl. warm-up)",
            errors.to_string(),
            "0",
            verdict(errors == 0),
        ),
        (
            "first webhook checked",
            if first_ok { "ok" } else { "WRONG" }.to_string(),
            "ok",
            verdict(first_ok),
        ),
    ];
    let _ = writeln!(w);
    for (name, value, target, verdict) in checks {
        let _ = writeln!(w, "{name:<36}{value:>12}{target:>12}{verdict:>8}");
    }
    for r in phases {
        super::common::write_errors(
            &mut w,
            &r.name,
            &r.errors.by_kind,
            r.errors.first.as_deref(),
        );
    }
    super::common::trim_lines(&w)
}
