//! The writer thread (group commit) and the checkpointer thread.
//!
//! The writer blocks for one job, then takes every job already waiting (up to `max_batch`) and
//! runs them all in one `BEGIN IMMEDIATE … COMMIT`, each inside `SAVEPOINT job` so one failing
//! job rolls back alone. Callers are answered only after `COMMIT` returns. While the disk is busy
//! with one commit, new jobs queue up and ride the next one, so throughput grows with load instead
//! of collapsing to one fsync per request.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use rusqlite::Connection;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::notify::Hub;
use super::{events, Completion, Job};
use crate::Error;

/// The writer thread's body. Returns when every job sender is gone and the queue is drained.
pub(super) fn run(
    conn: Connection,
    mut jobs: mpsc::Receiver<Job>,
    hub: Arc<Hub>,
    mut last_published: i64,
    max_batch: usize,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(max_batch);
    while let Some(first) = jobs.blocking_recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        run_batch(&conn, &mut batch);
        publish(&conn, &hub, &mut last_published);
    }
}

/// Wakes the subscribers of what the last commit made visible. Called only after `COMMIT`, so
/// a subscriber that reads the database when woken always finds what woke it.
fn publish(conn: &Connection, hub: &Hub, last_published: &mut i64) {
    match events::committed_after(conn, *last_published) {
        Ok(new) if !new.is_empty() => {
            *last_published = new.last().map_or(*last_published, |e| e.event_id);
            hub.publish(&new);
        }
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "reading the committed events failed"),
    }
}

fn run_batch(conn: &Connection, batch: &mut Vec<Job>) {
    let size = batch.len();
    if let Err(e) = exec(conn, "BEGIN IMMEDIATE") {
        fail_all(batch.drain(..).map(fail_job), e);
        return;
    }
    let mut completions: Vec<Completion> = Vec::with_capacity(size);
    let mut pending = batch.drain(..);
    let mut broken: Option<Error> = None;
    for job in pending.by_ref() {
        if let Err(e) = exec(conn, "SAVEPOINT job") {
            broken = Some(e);
            completions.push(fail_job(job));
            break;
        }
        let (ok, done) = run_job(conn, job);
        completions.push(done);
        let end = if ok {
            exec(conn, "RELEASE job")
        } else {
            exec(conn, "ROLLBACK TO job").and_then(|_| exec(conn, "RELEASE job"))
        };
        if let Err(e) = end {
            broken = Some(e);
            break;
        }
    }
    // Jobs after a broken savepoint are not run; they fail with the batch.
    let rest: Vec<Completion> = pending.map(fail_job).collect();
    completions.extend(rest);

    let outcome = match broken {
        Some(e) => Err(e),
        None => exec(conn, "COMMIT"),
    };
    if outcome.is_err() {
        let _ = exec(conn, "ROLLBACK");
    }
    if let Err(e) = &outcome {
        tracing::error!(error = %e, jobs = size, "write batch failed");
    }
    for done in completions {
        done(outcome.clone());
    }
}

/// Runs one job, turning a panic into a failed job whose caller is told "internal error" (the
/// panic drops the job's reply channel).
fn run_job(conn: &Connection, job: Job) -> (bool, Completion) {
    match catch_unwind(AssertUnwindSafe(|| job(Some(conn)))) {
        Ok(r) => r,
        Err(_) => {
            tracing::error!("a write job panicked; its savepoint is rolled back");
            (false, Box::new(|_| {}))
        }
    }
}

/// A job that will not run: its caller is answered with the batch's error without the job
/// touching the database.
fn fail_job(job: Job) -> Completion {
    job(None).1
}

fn fail_all(completions: impl Iterator<Item = Completion>, e: Error) {
    for done in completions {
        done(Err(e.clone()));
    }
}

fn exec(conn: &Connection, sql: &str) -> Result<(), Error> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

/// Runs a checkpoint of the given mode (`PASSIVE`, `TRUNCATE`, ...).
pub(super) fn checkpoint(conn: &Connection, mode: &str) -> Result<(), Error> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |_| Ok(()))?;
    Ok(())
}

/// The checkpointer thread's body: a PASSIVE checkpoint every 200 ms until told to stop (its
/// stop channel's sender is dropped by `Store::shutdown`).
pub(super) fn checkpoint_loop(conn: Connection, stop: std::sync::mpsc::Receiver<()>) {
    loop {
        match stop.recv_timeout(Duration::from_millis(200)) {
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if let Err(e) = checkpoint(&conn, "PASSIVE") {
                    tracing::warn!(error = %e, "background checkpoint failed");
                }
            }
            _ => return,
        }
    }
}
