//! Keeping the write-ahead log small. The writer's connection never checkpoints on its own
//! (`wal_autocheckpoint=0`), so its commits never pay for one. Instead a checkpointer thread
//! copies the log into the database file with PASSIVE checkpoints (which never block the
//! writer) every 100 ms. Under steady writes a passive checkpoint can never catch the log's end,
//! and the log would grow without bound; so when it passes [`RESTART_FRAMES`], the checkpointer
//! raises a flag and the writer, between two batches, runs a RESTART checkpoint — cheap, since
//! the passive ones already copied almost everything — after which the next commit writes the
//! log from its start again. `journal_size_limit` then trims the file.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use super::{open_connection, Durability};
use crate::Error;

/// Log frames (pages) after which the writer restarts the log: 16384 × 4 KiB = 64 MiB.
pub const RESTART_FRAMES: i64 = 16_384;

/// How often the checkpointer runs.
const INTERVAL: Duration = Duration::from_millis(100);

/// The background checkpointer thread and the flag it raises for the writer.
pub struct Checkpointer {
    /// Dropping it stops the thread; the thread holds the receiver.
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    /// Raised by the checkpointer when the log is too long; lowered by the writer when it has
    /// restarted the log.
    pub restart_due: Arc<AtomicBool>,
}

impl Checkpointer {
    /// Starts the checkpointer on its own connection to `path`.
    pub fn start(path: &Path, durability: Durability) -> Result<Checkpointer, Error> {
        let conn = open_connection(path, durability, false)?;
        let (stop, stopped) = mpsc::channel::<()>();
        let restart_due = Arc::new(AtomicBool::new(false));
        let due = restart_due.clone();
        let thread = std::thread::Builder::new()
            .name("axme-checkpoint".into())
            .spawn(move || loop {
                match stopped.recv_timeout(INTERVAL) {
                    Err(mpsc::RecvTimeoutError::Timeout) => match checkpoint(&conn, "PASSIVE") {
                        Ok((_, log, _)) if log > RESTART_FRAMES => {
                            due.store(true, Ordering::Release)
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "background checkpoint failed"),
                    },
                    _ => return,
                }
            })
            .map_err(|e| Error::internal(format!("spawn checkpointer: {e}")))?;
        Ok(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
            restart_due,
        })
    }

    /// Stops the thread and waits for it.
    pub fn stop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Long-lived read snapshots (online backups) hold this gate shared for as long as they read.
/// A RESTART checkpoint waits for every reader, so the writer would stall behind such a snapshot
/// for the whole busy timeout; instead it restarts the log only when it can take the gate
/// exclusively, and otherwise leaves the restart due for after the snapshot (the log grows
/// meanwhile).
pub type SnapshotGate = Arc<RwLock<()>>;

/// Run by the writer between batches: [`restart_if_due`], unless a long snapshot holds the
/// gate (then the restart stays due).
pub fn restart_if_due_and_free(conn: &Connection, due: &AtomicBool, gate: &SnapshotGate) {
    if !due.load(Ordering::Acquire) {
        return;
    }
    if let Ok(_exclusive) = gate.try_write() {
        restart_if_due(conn, due);
    }
}

/// Restarts the log if the checkpointer asked for it.
pub fn restart_if_due(conn: &Connection, due: &AtomicBool) {
    if due.swap(false, Ordering::AcqRel) {
        if let Err(e) = checkpoint(conn, "RESTART") {
            tracing::warn!(error = %e, "restarting the write-ahead log failed");
        }
    }
}

/// Runs a checkpoint of the given mode and returns SQLite's `(busy, log frames, checkpointed
/// frames)`.
pub fn checkpoint(conn: &Connection, mode: &str) -> Result<(i64, i64, i64), Error> {
    Ok(
        conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_snapshot_gate_defers_the_log_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = open_connection(&dir.path().join("w.db"), Durability::Normal, false).unwrap();
        let (due, gate) = (AtomicBool::new(true), SnapshotGate::default());
        let shared = gate.read().unwrap();
        restart_if_due_and_free(&conn, &due, &gate);
        assert!(
            due.load(Ordering::Acquire),
            "still due while a snapshot reads"
        );
        drop(shared);
        restart_if_due_and_free(&conn, &due, &gate);
        assert!(
            !due.load(Ordering::Acquire),
            "restarted once the snapshot is gone"
        );
    }
}
