//! The writer thread (group commit).
//!
//! The writer blocks for one job, then takes every job already waiting (up to `max_batch`) and
//! runs them all in one `BEGIN IMMEDIATE … COMMIT`. Callers are answered only after `COMMIT`
//! returns. While the disk is busy with one commit, new jobs queue up and ride the next one, so
//! throughput grows with load instead of collapsing to one fsync per request.
//!
//! A job that fails must leave no trace. Operations check everything (existence, lifecycle,
//! idempotency) before they write, so a failing job has almost always written nothing; the
//! writer verifies that with SQLite's change counter and lets the batch go on. A job that fails
//! *after* writing (an I/O error, a bug, a panic) cannot be undone alone without a savepoint
//! around every job — which would copy every page each job touches into a sub-journal and cost a
//! third of the writer's time — so then the whole batch is rolled back: that job gets its error,
//! the others a 503 asking them to retry, and nothing of any of them is stored.
//!
//! The writer records each transaction's size and timings in `StoreMetrics` with a few relaxed
//! atomic adds: no lock, no allocation, nothing that could slow a commit.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use rusqlite::Connection;

use tokio::sync::mpsc;

use super::notify::{self, Hub};
use super::{wal, Completion, Job, Tx};
use crate::metrics::StoreMetrics;
use crate::Error;

/// The writer thread's body. Returns when every job sender is gone and the queue is drained.
pub(super) fn run(
    conn: Connection,
    mut jobs: mpsc::Receiver<Job>,
    hub: Arc<Hub>,
    max_batch: usize,
    restart_due: Arc<AtomicBool>,
    snapshot_gate: wal::SnapshotGate,
    metrics: Arc<StoreMetrics>,
) {
    notify::collect_on_this_thread();
    let mut batch: Vec<Job> = Vec::with_capacity(max_batch);
    while let Some(first) = jobs.blocking_recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let (outcome, completions) = run_batch(&conn, &mut batch, &metrics);
        // What the batch appended; counted before the callers hear back (so a scrape right
        // after an answer includes its events), published only if it committed.
        let appended = notify::take_recorded();
        let deliveries = notify::take_delivery_flag();
        let committed = outcome.is_ok();
        if committed {
            metrics.events_written.add(appended.len() as u64);
        }
        for done in completions {
            done(outcome.clone());
        }
        if committed {
            hub.publish(&appended);
            if deliveries {
                hub.publish_deliveries();
            }
        }
        wal::restart_if_due_and_free(&conn, &restart_due, &snapshot_gate);
    }
}

/// Runs one batch in one transaction; returns how it ended and the answers its callers are
/// owed (given that outcome).
fn run_batch(
    conn: &Connection,
    batch: &mut Vec<Job>,
    metrics: &StoreMetrics,
) -> (Result<(), Error>, Vec<Completion>) {
    let size = batch.len();
    let began = Instant::now();
    if let Err(e) = exec(conn, "BEGIN IMMEDIATE") {
        metrics.failed_batches.inc();
        return (Err(e), batch.drain(..).map(fail_job).collect());
    }
    let mut completions: Vec<Completion> = Vec::with_capacity(size);
    let mut pending = batch.drain(..);
    let mut broken: Option<Error> = None;
    for job in pending.by_ref() {
        let before = conn.total_changes();
        let (ok, done) = run_job(conn, job);
        completions.push(done);
        if !ok && conn.total_changes() != before {
            tracing::error!("a write failed after writing; rolling back its whole batch");
            broken = Some(Error::Unavailable {
                reason: "a write committed together with this one failed half-way, so neither \
                         was stored; retry"
                    .into(),
            });
            break;
        }
    }
    // Jobs after a broken one are not run; they fail with the batch.
    let rest: Vec<Completion> = pending.map(fail_job).collect();
    completions.extend(rest);

    let outcome = match broken {
        Some(e) => Err(e),
        None => {
            let commit = Instant::now();
            let done = exec(conn, "COMMIT");
            metrics.commit.observe_duration(commit.elapsed());
            done
        }
    };
    metrics.transaction.observe_duration(began.elapsed());
    metrics.batch_size.observe(size as u64);
    if outcome.is_err() {
        let _ = exec(conn, "ROLLBACK");
    }
    if let Err(e) = &outcome {
        metrics.failed_batches.inc();
        tracing::error!(error = %e, jobs = size, "write batch failed");
    }
    (outcome, completions)
}

/// Runs one job, turning a panic into a failed job whose caller is told "internal error" (the
/// panic drops the job's reply channel).
fn run_job(conn: &Connection, job: Job) -> (bool, Completion) {
    match catch_unwind(AssertUnwindSafe(|| job(Some(&Tx::sqlite(conn))))) {
        Ok(r) => r,
        Err(_) => {
            tracing::error!("a write job panicked");
            (false, Box::new(|_| {}))
        }
    }
}

/// A job that will not run: its caller is answered with the batch's error without the job
/// touching the database.
fn fail_job(job: Job) -> Completion {
    job(None).1
}

fn exec(conn: &Connection, sql: &str) -> Result<(), Error> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}
