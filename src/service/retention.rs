//! Retention: a terminal intent (COMPLETED, FAILED, CANCELED, TIMED_OUT) whose last change is
//! older than the retention is removed together with everything that belongs to it — its
//! events, deliveries and their attempts, completions, leases and the idempotency records about
//! it. Live intents stay whatever their age, and so does an intent with a pending push: a push
//! is never dropped. The sweep deletes one batch per write, sized to hold the writer about
//! 20 ms, and pauses between batches, so other writes wait at most one small batch behind it
//! and keep most of the writer's time. It never runs `VACUUM` (SQLite reuses the freed pages).
//!
//! The sweep takes `now` as an argument, so tests can run it at any time they like.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::store::Tx;
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::metrics::{Counter, Metrics};
use crate::store::{retention, Store};
use crate::{clock, Error};

/// The most intents removed per write.
pub const BATCH: usize = 500;

/// The fewest intents removed per write (unless fewer are left).
const MIN_BATCH: usize = 10;

/// How long one batch should hold the writer: its deletes and its commit.
const BATCH_TIME: Duration = Duration::from_millis(20);

/// After a batch, the sweep waits this many times as long as the batch took.
const PAUSE: u32 = 4;

/// Free pages handed back per sweep on an `auto_vacuum=INCREMENTAL` database.
const VACUUM_PAGES: u32 = 4096;

/// The longest time between two sweeps.
const MAX_INTERVAL: Duration = Duration::from_secs(600);

/// Changes before this time (RFC 3339, as stored) are past a retention of `keep` at `now`.
pub fn cutoff(now: OffsetDateTime, keep: Duration) -> String {
    let keep = time::Duration::try_from(keep).unwrap_or(time::Duration::MAX);
    clock::format(now.checked_sub(keep).unwrap_or(OffsetDateTime::UNIX_EPOCH))
}

/// Removes at most `batch` intents expired at `cutoff`, with their rows; returns how many.
pub fn prune_batch(conn: &Tx, cutoff: &str, batch: usize) -> Result<usize, Error> {
    let ids = retention::expired(conn, cutoff, batch)?;
    retention::delete(conn, &ids)
}

/// Removes everything expired at `now` under a retention of `keep`, one batch of at most
/// `max_batch` intents per write, adding each batch to `pruned` as it commits, and returns how
/// many intents went. Stops early (between two batches) when `shutdown` flips; the next sweep
/// carries on.
pub async fn sweep(
    store: &Store,
    now: OffsetDateTime,
    keep: Duration,
    max_batch: usize,
    pruned: &Counter,
    shutdown: &watch::Receiver<bool>,
) -> Result<usize, Error> {
    let cutoff = cutoff(now, keep);
    let mut total = 0;
    let mut batch = max_batch.max(1);
    let mut shutdown = shutdown.clone();
    while !*shutdown.borrow() {
        let at = cutoff.clone();
        let started = Instant::now();
        let n = store.write(move |c| prune_batch(c, &at, batch)).await?;
        let took = started.elapsed();
        pruned.add(n as u64);
        total += n;
        if n < batch {
            break;
        }
        batch = next_batch(batch, took, max_batch);
        // Leave the writer to the others for a while: a sweep takes at most a fifth of it.
        tokio::select! {
            _ = tokio::time::sleep(took * PAUSE) => {}
            _ = shutdown.changed() => break,
        }
    }
    if total > 0 {
        store
            .write(|c| retention::incremental_vacuum(c, VACUUM_PAGES))
            .await?;
    }
    Ok(total)
}

/// The size of the next batch, so that one takes about [`BATCH_TIME`] from the write to its
/// commit (rows of old intents may be spread over many pages, and a disk may be slow): the
/// writes queued behind a batch wait about that long at most.
fn next_batch(batch: usize, took: Duration, max_batch: usize) -> usize {
    let scaled = batch as f64 * BATCH_TIME.as_secs_f64() / took.as_secs_f64().max(1e-6);
    (scaled as usize).clamp(MIN_BATCH.min(max_batch), max_batch.max(1))
}

/// How often to sweep under a retention of `keep`: often enough that nothing outlives it by
/// much, never more than every 100 ms nor less than every 10 minutes.
pub fn interval(keep: Duration) -> Duration {
    (keep / 2).clamp(Duration::from_millis(100), MAX_INTERVAL)
}

/// Sweeps at start and then every [`interval`] until `shutdown` flips.
pub async fn run(
    store: Store,
    keep: Duration,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(interval(keep));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let pruned = &metrics.pruned_intents;
        match sweep(&store, clock::now(), keep, BATCH, pruned, &shutdown).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(intents = n, retention = ?keep, "retention: removed expired intents");
            }
            Err(e) => tracing::warn!(error = %e, "retention sweep failed; it runs again later"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cutoff_is_now_minus_the_retention_in_the_stored_spelling() {
        let now = clock::parse("2026-11-25T12:00:00Z").expect("time");
        assert_eq!(
            cutoff(now, Duration::from_secs(30 * 86_400)),
            "2026-10-26T12:00:00.000000Z"
        );
        assert_eq!(
            cutoff(now, Duration::from_secs(u64::MAX)),
            "1970-01-01T00:00:00.000000Z"
        );
    }

    #[test]
    fn batches_shrink_when_slow_and_grow_when_quick_within_bounds() {
        let ms = Duration::from_millis;
        assert_eq!(next_batch(500, ms(100), 500), 100);
        assert_eq!(next_batch(100, ms(10), 500), 200);
        assert_eq!(next_batch(200, ms(1), 500), 500);
        assert_eq!(next_batch(20, Duration::from_secs(5), 500), MIN_BATCH);
        assert_eq!(next_batch(2, Duration::ZERO, 2), 2);
        assert_eq!(next_batch(2, Duration::from_secs(1), 2), 2);
    }

    #[test]
    fn sweeps_come_often_enough_but_not_too_often() {
        assert_eq!(interval(Duration::from_secs(30 * 86_400)), MAX_INTERVAL);
        assert_eq!(interval(Duration::from_secs(2)), Duration::from_secs(1));
        assert_eq!(
            interval(Duration::from_millis(10)),
            Duration::from_millis(100)
        );
    }
}
