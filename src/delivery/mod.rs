//! The push binding's engine: a scheduler task that takes due deliveries from the outbox, hands
//! them to a pool of worker threads (blocking ureq POSTs), and records each outcome through the
//! domain (`service::deliveries::record`). It sits beside `http`: it calls the domain and the
//! store, never the reverse.
//!
//! - Due deliveries are found by reading the outbox when a commit wrote deliveries, when an
//!   attempt finished, or when the next one falls due — never by a busy loop.
//! - A dead or slow endpoint holds at most `per_endpoint` workers; deliveries to it wait in
//!   the outbox while the other workers serve healthy endpoints.
//! - A crash mid-attempt leaves the delivery pending: it is sent again after the restart, with
//!   the same `webhook-id`, so receivers can deduplicate (at-least-once).

pub mod attempt;
pub mod pool;
pub mod sign;
pub mod target;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::metrics::Metrics;
use crate::service::deliveries::{
    self as domain, Outcome, Prepared, RetryPolicy, Settled, Verdict,
};
use crate::store::deliveries as outbox;
use crate::store::Store;
use crate::Error;

use self::pool::WorkerPool;

/// Settings of the push binding (see `ServeConfig` for the flags).
#[derive(Debug, Clone)]
pub struct PushSettings {
    pub policy: RetryPolicy,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub workers: usize,
    pub per_endpoint: usize,
    pub deny_private: bool,
}

/// How many due deliveries one read takes.
const DUE_BATCH: usize = 512;

/// Runs the scheduler until `shutdown` flips, then waits for the attempts in flight and records
/// their outcomes.
pub async fn run(
    store: Store,
    settings: PushSettings,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut pool = match WorkerPool::new(settings.workers) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the push workers; pushes stay queued");
            return;
        }
    };
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(settings.connect_timeout)
        .timeout(settings.timeout)
        .redirects(0)
        .user_agent(concat!("axme/", env!("CARGO_PKG_VERSION")))
        .max_idle_connections_per_host(settings.per_endpoint.max(1) * 2)
        .resolver(target::GuardedResolver {
            deny_private: settings.deny_private,
        })
        .build();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Finished>();
    let mut flight = Flight::default();
    let policy = Arc::new(settings.policy.clone());
    loop {
        let next_due = match dispatch(
            &store,
            &pool,
            &agent,
            &done_tx,
            &mut flight,
            &settings,
            &metrics,
        )
        .await
        {
            Ok(next) => next,
            Err(e) => {
                tracing::warn!(error = %e, "reading the push outbox failed; retrying");
                Some(Instant::now() + Duration::from_secs(1))
            }
        };
        let wake_at = next_due.unwrap_or_else(|| Instant::now() + Duration::from_secs(60));
        tokio::select! {
            _ = store.deliveries_changed() => {}
            Some(first) = done_rx.recv() => {
                let mut finished = vec![first];
                while let Ok(more) = done_rx.try_recv() {
                    finished.push(more);
                }
                settle(&store, &policy, &metrics, &mut flight, finished).await;
            }
            _ = tokio::time::sleep_until(wake_at) => {}
            _ = shutdown.changed() => break,
        }
    }
    // Let the attempts in flight finish (each is bounded by the push timeout) and record them;
    // anything not attempted stays pending in the outbox for the next start.
    drop(done_tx);
    let joined = tokio::task::spawn_blocking(move || pool.shutdown());
    let _ = joined.await;
    let mut finished = Vec::new();
    while let Some(f) = done_rx.recv().await {
        finished.push(f);
    }
    settle(&store, &policy, &metrics, &mut flight, finished).await;
}

/// An attempt that came back from a worker.
struct Finished {
    delivery_id: String,
    endpoint: String,
    outcome: Outcome,
}

/// Deliveries being attempted, and how many per endpoint.
#[derive(Default)]
struct Flight {
    ids: HashSet<String>,
    per_endpoint: HashMap<String, usize>,
}

/// Hands every due delivery that has room to a worker. Returns when the next one falls due.
async fn dispatch(
    store: &Store,
    pool: &WorkerPool,
    agent: &ureq::Agent,
    done: &mpsc::UnboundedSender<Finished>,
    flight: &mut Flight,
    settings: &PushSettings,
    metrics: &Metrics,
) -> Result<Option<Instant>, Error> {
    let skip: HashSet<String> = flight.ids.clone();
    let saturated: Vec<&String> = flight
        .per_endpoint
        .iter()
        .filter(|(_, n)| **n >= settings.per_endpoint)
        .map(|(e, _)| e)
        .collect();
    let saturated = serde_json::to_string(&saturated)?;
    let limit = DUE_BATCH + skip.len();
    // Only what can go out now is prepared (each preparation reads the intent, its event and
    // its agent): at most one delivery per free worker, within each endpoint's limit.
    let free_workers = settings.workers.saturating_sub(flight.ids.len());
    let mut room = flight.per_endpoint.clone();
    let per_endpoint = settings.per_endpoint;
    let (prepared, next_due_ms, now_ms) = store
        .read(move |c| {
            let now = now_ms();
            let mut chosen = Vec::new();
            for d in outbox::due(c, now, &saturated, limit)? {
                if chosen.len() >= free_workers {
                    break;
                }
                let busy = room.entry(d.endpoint.clone()).or_insert(0);
                if skip.contains(&d.delivery_id) || *busy >= per_endpoint {
                    continue;
                }
                *busy += 1;
                chosen.push(d);
            }
            let prepared = chosen
                .into_iter()
                .map(|d| domain::prepare(c, d))
                .collect::<Result<Vec<Prepared>, Error>>()?;
            Ok((prepared, outbox::next_due_after(c, now)?, now))
        })
        .await?;
    let mut unsendable = Vec::new();
    for p in prepared {
        let key = p.delivery.endpoint.clone();
        if let Some(reason) = p.skipped.clone() {
            unsendable.push((p, reason, Verdict::Skipped));
            continue;
        }
        if let Some(reason) = p.blocked.clone() {
            unsendable.push((p, reason, Verdict::Permanent));
            continue;
        }
        let busy = flight.per_endpoint.get(&key).copied().unwrap_or(0);
        if busy >= settings.per_endpoint {
            continue;
        }
        let request = match attempt::render(&p) {
            Ok(r) => r,
            Err(e) => {
                let reason = format!("cannot render the webhook body: {e}");
                unsendable.push((p, reason, Verdict::Permanent));
                continue;
            }
        };
        let (agent, done, id, ep) = (
            agent.clone(),
            done.clone(),
            request.delivery_id.clone(),
            key.clone(),
        );
        let queued = pool.push(move || {
            let outcome = attempt::send(&agent, &request);
            let _ = done.send(Finished {
                delivery_id: id,
                endpoint: ep,
                outcome,
            });
        });
        if queued {
            flight.ids.insert(p.delivery.delivery_id.clone());
            *flight.per_endpoint.entry(key).or_default() += 1;
        }
    }
    for (p, reason, verdict) in unsendable {
        let outcome = Outcome {
            attempt: p.delivery.attempts + 1,
            status_code: None,
            latency_ms: 0,
            error: Some(format!("not attempted: {reason}")),
            response_excerpt: None,
            verdict,
            reply: None,
        };
        // Settled at once (no worker involved); the policy does not matter for these verdicts.
        let policy = settings.policy.clone();
        let id = p.delivery.delivery_id.clone();
        let (_, settled) = store
            .write(move |c| domain::record(c, &id, outcome, &policy))
            .await?;
        count(metrics, settled);
    }
    // Wake when the next delivery falls due; due ones held back by a per-endpoint limit are
    // taken when an attempt at that endpoint finishes.
    Ok(next_due_ms.map(|due| Instant::now() + Duration::from_millis((due - now_ms).max(0) as u64)))
}

/// Records finished attempts (concurrently, so they share group commits) and frees their place.
async fn settle(
    store: &Store,
    policy: &Arc<RetryPolicy>,
    metrics: &Arc<Metrics>,
    flight: &mut Flight,
    finished: Vec<Finished>,
) {
    let writes: Vec<_> = finished
        .iter()
        .map(|f| {
            let (store, policy, metrics) = (store.clone(), policy.clone(), metrics.clone());
            let (id, outcome) = (f.delivery_id.clone(), f.outcome.clone());
            tokio::spawn(async move {
                let result = store
                    .write(move |c| domain::record(c, &id, outcome, &policy))
                    .await;
                match result {
                    Ok((_, settled)) => count(&metrics, settled),
                    Err(e) => tracing::error!(error = %e, "recording a push attempt failed; it will be retried"),
                }
            })
        })
        .collect();
    for w in writes {
        let _ = w.await;
    }
    for f in finished {
        flight.ids.remove(&f.delivery_id);
        if let Some(n) = flight.per_endpoint.get_mut(&f.endpoint) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                flight.per_endpoint.remove(&f.endpoint);
            }
        }
    }
}

/// Counts a recorded attempt by what it led to (after its commit).
fn count(metrics: &Metrics, settled: Settled) {
    let p = &metrics.pushes;
    match settled {
        Settled::Delivered => p.delivered.inc(),
        Settled::Retry => p.retry.inc(),
        Settled::DeadLettered => p.dead_lettered.inc(),
        Settled::Skipped => p.skipped.inc(),
        Settled::Stale => {}
    }
}

fn now_ms() -> i64 {
    (crate::clock::now().unix_timestamp_nanos() / 1_000_000) as i64
}

#[cfg(test)]
mod tests {
    use crate::service::deliveries::endpoint;

    #[test]
    fn endpoints_are_scheme_host_and_port() {
        assert_eq!(
            endpoint("http://127.0.0.1:9000/hook?x=1"),
            "http://127.0.0.1:9000"
        );
        assert_eq!(endpoint("https://example.com/a/b"), "https://example.com");
    }
}
