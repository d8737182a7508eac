//! The push binding's engine: a scheduler task that takes due deliveries from the outbox, hands
//! them to a pool of worker threads (blocking ureq POSTs), and records their outcomes through
//! the domain (`service::deliveries::record_all`). It sits beside `http`: it calls the domain
//! and the store, never the reverse.
//!
//! - Due deliveries are found by reading the outbox when a commit wrote deliveries, when an
//!   attempt ended or its outcome was committed, or when the next one falls due — never by a
//!   busy loop.
//! - Due work is read endpoint by endpoint, only at the endpoints with room: a dead or slow
//!   endpoint holds at most `per_endpoint` places (attempts on workers, and failed attempts
//!   until their outcome is committed), and its backlog waits in the outbox without being read
//!   while the other workers serve healthy endpoints.
//! - The free workers are shared among owners (`fair`): round-robin, one due delivery per
//!   owner per round, and no owner holds more than `per_owner` workers, so one owner's slow
//!   endpoints cannot take the workers every other owner's pushes need.
//! - Outcomes are recorded beside dispatch, never in its way: the attempts that ended by the
//!   time the loop looks are recorded by one write job (one transaction). No delivery is read
//!   as due again until its outcome is committed. A delivered attempt frees its place at its
//!   endpoint at once; a failed one keeps it until its outcome (a 410 that disables the
//!   endpoint, a backoff) is committed, so a failing endpoint's next attempt knows of it.
//! - A crash mid-attempt, or before its outcome is committed, leaves the delivery pending: it
//!   is sent again after the restart, with the same `webhook-id`, so receivers can deduplicate
//!   (at-least-once).

pub mod attempt;
mod fair;
mod flight;
pub mod pool;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::metrics::Metrics;
use crate::service::deliveries::{Outcome, RetryPolicy, Settled, Verdict};
use crate::service::push_targets;
use crate::store::deliveries as outbox;
use crate::store::Store;
use crate::Error;

use self::flight::{Finished, Flight, Place, Recorder};
use self::pool::WorkerPool;

/// Settings of the push binding (see `ServeConfig` for the flags).
#[derive(Debug, Clone)]
pub struct PushSettings {
    pub policy: RetryPolicy,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub workers: usize,
    pub per_endpoint: usize,
    /// Attempts of one owner on workers at most (`--push-workers-per-owner`), so one owner's
    /// slow endpoints leave workers to the others.
    pub per_owner: usize,
    pub deny_private: bool,
}

/// Runs the scheduler until `shutdown` flips, then waits for the attempts in flight and records
/// their outcomes.
///
/// One loop: take what is due and has room, hand it to workers, then wait for a commit that
/// wrote deliveries, an attempt that ended, a record job that ended, or the next due time.
/// Outcomes are recorded by write jobs that run beside the loop (see `flight::Recorder`), so
/// dispatch never waits for a commit.
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
        .resolver(crate::webhook::target::GuardedResolver {
            deny_private: settings.deny_private,
        })
        .build();
    // Workers send each ended attempt here; the loop below receives them.
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Finished>();
    let mut flight = Flight::default();
    let mut recorder = Recorder::new(store.clone(), settings.policy.clone(), metrics.clone());
    // Whether something may have made work takeable since the last pass (new or retried
    // deliveries, room at an endpoint, a free worker, a due time). A pass that cannot find
    // anything is not made: each costs a read, and most wake-ups (an attempt ended, an outcome
    // committed) free nothing.
    let mut dirty = true;
    let mut wake_at = Instant::now();
    loop {
        if dirty {
            dirty = false;
            let next_due =
                match dispatch(&store, &pool, &agent, &done_tx, &mut flight, &settings).await {
                    Ok((next, unsendable)) => {
                        recorder.start(unsendable);
                        next
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "reading the push outbox failed; retrying");
                        Some(Instant::now() + Duration::from_secs(1))
                    }
                };
            wake_at = next_due.unwrap_or_else(|| Instant::now() + Duration::from_secs(60));
        }
        tokio::select! {
            _ = store.deliveries_changed() => dirty = true,
            Some(first) = done_rx.recv() => {
                let mut finished = vec![first];
                while let Ok(more) = done_rx.try_recv() {
                    finished.push(more);
                }
                let workers_were_busy = flight.sending() >= settings.workers;
                for f in &finished {
                    dirty |= f.place == Place::Freed
                        && flight.room(&f.endpoint, settings.per_endpoint) == 0;
                    dirty |= flight.owner_sending(&f.owner) >= settings.per_owner;
                    flight.attempt_ended(&f.endpoint, &f.owner, f.place);
                }
                dirty |= workers_were_busy;
                recorder.start(finished);
            }
            Some((settled, committed)) = recorder.next_settled() => {
                // A failed record job leaves its deliveries pending: they are due again.
                dirty |= !committed;
                for (rowid, endpoint, place) in settled {
                    let before = flight.room(&endpoint, settings.per_endpoint);
                    flight.settled(rowid, &endpoint, place);
                    dirty |= flight.room(&endpoint, settings.per_endpoint) > before;
                }
            }
            _ = tokio::time::sleep_until(wake_at) => dirty = true,
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
    recorder.start(finished);
    while recorder.next_settled().await.is_some() {}
}

/// Hands every due delivery that has room to a worker. Returns when the next one falls due, and
/// the due deliveries that cannot be sent at all (to be recorded as such).
async fn dispatch(
    store: &Store,
    pool: &WorkerPool,
    agent: &ureq::Agent,
    done: &mpsc::UnboundedSender<Finished>,
    flight: &mut Flight,
    settings: &PushSettings,
) -> Result<(Option<Instant>, Vec<Finished>), Error> {
    // Only what can go out now is read and prepared (each preparation reads the intent, its
    // event and its agent): at most one delivery per free worker, within each endpoint's room.
    // With no worker free there is nothing to do until an attempt ends, which wakes the loop.
    let free_workers = settings.workers.saturating_sub(flight.sending());
    if free_workers == 0 {
        return Ok((None, Vec::new()));
    }
    let per_endpoint = settings.per_endpoint;
    let busy = flight.busy(per_endpoint);
    let owners = flight.owners();
    let per_owner = settings.per_owner;
    // A step of the system clock re-anchors the server's clock in the write that shifts the
    // pending deliveries; a read overlapping that (the clock's generation odd or moved) could
    // pair the new time with rows not yet shifted, so it is thrown away and made again.
    let generation = crate::clock::generation();
    let (prepared, next_due_ms, now_ms) = store
        .read(move |c| {
            let now = crate::clock::now_ms();
            let room = |o: &str| per_owner.saturating_sub(owners.get(o).copied().unwrap_or(0));
            let candidates = due_with_room(c, now, &busy, per_endpoint, room)?;
            let due = fair::pick(candidates, room, free_workers);
            let mut prepared = Vec::with_capacity(due.len());
            let mut targets = push_targets::Targets::default();
            for (rowid, owner) in due {
                if let Some(d) = outbox::get_by_rowid(c, rowid)? {
                    let p = push_targets::prepare_with(c, d, &mut targets)?;
                    prepared.push((rowid, owner, p));
                }
            }
            Ok((prepared, outbox::next_due_after(c, now)?, now))
        })
        .await?;
    if generation % 2 == 1 || crate::clock::generation() != generation {
        return Ok((Some(Instant::now() + Duration::from_millis(20)), Vec::new()));
    }
    let mut unsendable = Vec::new();
    for (rowid, owner, p) in prepared {
        let endpoint = p.delivery.endpoint.clone();
        let refusal = match (&p.skipped, &p.blocked) {
            (Some(reason), _) => Some((reason.clone(), Verdict::Skipped)),
            (None, Some(reason)) => Some((reason.clone(), Verdict::Permanent)),
            (None, None) => None,
        };
        if let Some((reason, verdict)) = refusal {
            flight.taken(rowid, &endpoint);
            unsendable.push(Finished {
                rowid,
                delivery_id: p.delivery.delivery_id.clone(),
                endpoint,
                owner,
                outcome: not_attempted(&p, &reason, verdict),
                place: Place::Freed,
            });
            continue;
        }
        let (agent, done, ep, by) = (agent.clone(), done.clone(), endpoint.clone(), owner.clone());
        let queued = pool.push(move || {
            // The body is rendered here, on the worker, to keep the scheduler loop short.
            let outcome = match attempt::render(&p) {
                Ok(request) => attempt::send(&agent, &request),
                Err(e) => not_attempted(
                    &p,
                    &format!("cannot render the webhook body: {e}"),
                    Verdict::Permanent,
                ),
            };
            let place = if outcome.verdict == Verdict::Delivered {
                Place::Freed
            } else {
                Place::Held
            };
            let _ = done.send(Finished {
                rowid,
                delivery_id: p.delivery.delivery_id,
                endpoint: ep,
                owner: by,
                outcome,
                place,
            });
        });
        if queued {
            flight.sent(rowid, &endpoint, &owner);
        }
    }
    // Wake when the next delivery falls due; due ones held back by a per-endpoint limit are
    // taken when an attempt at that endpoint ends.
    let next =
        next_due_ms.map(|due| Instant::now() + Duration::from_millis((due - now_ms).max(0) as u64));
    Ok((next, unsendable))
}

/// The deliveries that may be taken now, with their owners: from each endpoint with room, as
/// many due deliveries as it has room for (skipping those already taken) and as their owners
/// have room for; `fair::pick` then shares the free workers among the owners. A saturated
/// endpoint costs one index seek however long its backlog, and an endpoint whose owner has no
/// room left one owner lookup: an owner holding its whole share on hanging endpoints does not
/// make every pass read its backlog.
fn due_with_room(
    conn: &crate::store::Tx,
    now: i64,
    busy: &HashMap<String, (usize, HashSet<i64>)>,
    per_endpoint: usize,
    owner_room: impl Fn(&str) -> usize,
) -> Result<Vec<fair::Candidate>, Error> {
    let no_skip = HashSet::new();
    let mut left: HashMap<String, usize> = HashMap::new();
    let mut due: Vec<fair::Candidate> = Vec::new();
    let mut after = String::new();
    while let Some((endpoint, soonest)) = outbox::next_pending_endpoint(conn, &after)? {
        let (room, skip) = busy
            .get(&endpoint)
            .map_or((per_endpoint, &no_skip), |(room, skip)| (*room, skip));
        if soonest <= now && room > 0 {
            let rows = outbox::due_at_endpoint(conn, &endpoint, now, room + skip.len())?;
            let fresh = rows.into_iter().filter(|(rowid, _)| !skip.contains(rowid));
            for (rowid, at) in fresh.take(room) {
                let owner = outbox::owner_of(conn, rowid)?;
                let budget = left
                    .entry(owner.clone())
                    .or_insert_with(|| owner_room(&owner));
                // An endpoint's deliveries are nearly always one owner's: once that owner has
                // no room, the rest of this endpoint waits for the next pass.
                if *budget == 0 {
                    break;
                }
                *budget -= 1;
                due.push((at, rowid, owner));
            }
        }
        after = endpoint;
    }
    Ok(due)
}

/// The outcome of a delivery that was not attempted, and why.
fn not_attempted(p: &push_targets::Prepared, reason: &str, verdict: Verdict) -> Outcome {
    Outcome {
        attempt: p.delivery.attempts + 1,
        status_code: None,
        latency_ms: 0,
        error: Some(format!("not attempted: {reason}")),
        response_excerpt: None,
        verdict,
        reply: None,
    }
}

/// Counts a recorded attempt by what it led to (after its commit).
pub(crate) fn count(metrics: &Metrics, settled: Settled) {
    let p = &metrics.pushes;
    match settled {
        Settled::Delivered => p.delivered.inc(),
        Settled::Retry => p.retry.inc(),
        Settled::DeadLettered => p.dead_lettered.inc(),
        Settled::Skipped => p.skipped.inc(),
        Settled::Stale => {}
    }
}

#[cfg(test)]
mod tests {
    use crate::service::outbox::endpoint;

    #[test]
    fn endpoints_are_scheme_host_and_port() {
        assert_eq!(
            endpoint("http://127.0.0.1:9000/hook?x=1"),
            "http://127.0.0.1:9000"
        );
        assert_eq!(endpoint("https://example.com/a/b"), "https://example.com");
    }
}
