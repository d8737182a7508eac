//! Durable timers of the runtime. Timers live in SQLite (a lease's `expires_at_ms`), so a restart
//! neither loses nor repeats them: overdue ones fire at startup. This task sleeps until the next
//! one is due (at most a second, so a lease shortened elsewhere is noticed) and fires what is due
//! through the domain; it sits beside `http` and calls `service`, never the reverse.

use std::time::Duration;

use tokio::sync::watch;

use crate::service::claims;
use crate::store::Store;

/// How many expired leases one write handles.
const BATCH: usize = 256;
/// The longest sleep between two looks at the next expiry.
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// Expires leases until `shutdown` flips.
pub async fn lease_timer(store: Store, mut shutdown: watch::Receiver<bool>) {
    loop {
        let next = store
            .read(claims::next_expiry_ms)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "reading lease expiries failed; retrying");
                None
            });
        let wait = next.map(|at| at - claims::now_ms());
        if wait.is_some_and(|w| w <= 0) {
            if let Err(e) = store.write(|c| claims::expire_due(c, BATCH)).await {
                tracing::warn!(error = %e, "expiring leases failed; retrying");
                tokio::time::sleep(MAX_SLEEP).await;
            }
            continue;
        }
        let sleep = wait.map_or(MAX_SLEEP, |w| {
            Duration::from_millis(w as u64).min(MAX_SLEEP)
        });
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = shutdown.changed() => return,
        }
    }
}
