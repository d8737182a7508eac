//! The durable runtime: the internal binding (`internal`, `builtin`), the in-process event
//! subscription (`observe`), and one scheduler for every timer: lease expiries (inbox claims),
//! intent deadlines (`deadline_at` -> TIMED_OUT), reminders, escalations and delays (the `timers`
//! table). Timers live in SQLite (a lease's `expires_at_ms`, an intent's `deadline_at`, a timer
//! row), so a restart neither loses nor repeats them: overdue ones fire at startup, and firing is
//! a lifecycle move checked (and a timer row deleted) in the same transaction, so none fires twice. This task
//! sleeps until the next one is due (at most a second, so a timer set meanwhile is noticed) and
//! fires what is due through the domain; it sits beside `http` and calls `service`, never the
//! reverse. On each pass it first looks for a step of the system clock (`jumps`), which shifts
//! the relative timers before anything is fired against the new time.

use std::time::Duration;

use tokio::sync::watch;

use crate::service::{claims, intents, timers as runtime_timers};
use crate::store::Store;

pub mod builtin;
pub mod internal;
pub mod jumps;
pub mod mail;
pub mod observe;
mod smtp;
mod smtp_tls;
pub mod smtp_url;

/// How many due timers of each kind one write fires.
const BATCH: usize = 256;
/// The longest sleep between two looks at the next expiry.
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// Fires due timers until `shutdown` flips.
pub async fn timers(store: Store, mut shutdown: watch::Receiver<bool>) {
    loop {
        jumps::check(&store).await;
        let next = store
            .read(|c| {
                Ok((
                    claims::next_expiry_ms(c)?,
                    intents::next_deadline(c)?,
                    runtime_timers::next_due_ms(c)?,
                ))
            })
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "reading the next timers failed; retrying");
                (None, None, None)
            });
        let now = crate::clock::now_ms();
        let deadline_ms = next
            .1
            .as_deref()
            .and_then(crate::clock::parse)
            .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64);
        let due = [next.0, deadline_ms, next.2].into_iter().flatten().min();
        if due.is_some_and(|at| at <= now) {
            let fired = store
                .write(|c| {
                    Ok(claims::expire_due(c, BATCH)?
                        + intents::time_out_due(c, BATCH)?
                        + runtime_timers::fire_due(c, BATCH)?)
                })
                .await;
            if let Err(e) = fired {
                tracing::warn!(error = %e, "firing timers failed; retrying");
                tokio::time::sleep(MAX_SLEEP).await;
            }
            continue;
        }
        let sleep = due.map_or(MAX_SLEEP, |at| {
            Duration::from_millis((at - now) as u64).min(MAX_SLEEP)
        });
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = shutdown.changed() => return,
        }
    }
}
