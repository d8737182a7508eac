//! `GET /metrics`: the Prometheus text exposition (format 0.0.4) of the server. Counters and
//! histograms come from the atomics the hot paths record into (`crate::metrics`); the gauges of
//! what the store holds (intents by status, the push retry queue, claimable intents per inbox
//! agent) are read on each scrape with index-only queries on a pooled read connection; the
//! stream and long-poll gauges are the counters their caps already keep.

use std::sync::atomic::Ordering;

use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::Response;

use super::response::Body;
use super::{router, AppState};
use crate::metrics::{self, Exposition};
use crate::model::Status;
use crate::service::operator;
use crate::Error;

/// The label of every route in metrics and logs (its name in the routing table), numbered like
/// `route as usize`.
pub fn route_names() -> Vec<String> {
    let mut names = Vec::new();
    for route in router::routes() {
        let i = route as usize;
        if names.len() <= i {
            names.resize(i + 1, String::new());
        }
        names[i] = format!("{route:?}");
    }
    names
}

/// The routing table's handler of `GET /metrics`: an admin key, unless `--metrics-public`.
pub async fn serve_scrape(ctx: super::Ctx) -> Result<Response<Body>, Error> {
    if !ctx.state.metrics_public {
        crate::service::auth::require_admin(&ctx.principal, "reading metrics")?;
    }
    serve(&ctx.state).await
}

/// Renders the exposition.
pub async fn serve(state: &AppState) -> Result<Response<Body>, Error> {
    // The counters first, the store after: a counter moves only after its commit, so whatever a
    // counter in this scrape has seen committed, the store's counts below include too.
    let mut out = Exposition::default();
    state.metrics.write(state.store.metrics(), &mut out);
    let now = crate::clock::now_ms();
    let held = operator::gauges(&state.store, now).await?;

    out.family(
        "axme_intents",
        "gauge",
        "Intents in the store by status (terminal ones until the retention removes them).",
    );
    for status in Status::ALL {
        let n = held
            .intents_by_status
            .iter()
            .find(|(s, _)| s == status.as_str())
            .map_or(0, |(_, n)| *n);
        out.sample("axme_intents", &[("status", status.as_str())], n as f64);
    }
    out.gauge(
        "axme_deliveries_pending",
        "Pushes waiting for their next attempt (the retry queue).",
        held.pending_deliveries as f64,
    );
    out.family(
        "axme_claim_queue_depth",
        "gauge",
        "Intents an inbox agent could claim now, per agent registered with the inbox binding.",
    );
    for (agent, n) in &held.claimable_by_agent {
        out.sample("axme_claim_queue_depth", &[("agent", agent)], *n as f64);
    }
    out.gauge(
        "axme_streams_open",
        "Open Server-Sent Events streams.",
        state.gauges.streams.load(Ordering::Relaxed) as f64,
    );
    out.gauge(
        "axme_connections_open",
        "Open client connections served (those past the connection cap are not counted).",
        state.connections.open() as f64,
    );
    out.gauge(
        "axme_long_polls_waiting",
        "Long polls (and waiting claims) held open until something arrives.",
        state.gauges.waiters.load(Ordering::Relaxed) as f64,
    );

    let mut resp = Response::new(Body::full(out.finish()));
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(metrics::CONTENT_TYPE),
    );
    Ok(resp)
}
