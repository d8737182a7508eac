//! Online backups: a consistent copy of the whole database, taken while the server keeps
//! serving. SQLite's backup API copies the pages of a read connection's snapshot into a new
//! file; in WAL mode that read never blocks the writer, and the writer never blocks it.
//!
//! The copy is made in one step. A backup that copies a few pages at a time releases its
//! snapshot between steps and starts over whenever another connection commits in between, so
//! under steady writes it might never finish; one step reads one snapshot from start to end.
//! While the step runs, the snapshot gate is held shared so that the writer does not wait
//! behind it with a RESTART checkpoint (see `wal::SnapshotGate`).

use std::fs::File;
use std::path::PathBuf;

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use super::{open_connection, Store};
use crate::Error;

/// A finished backup: an open, already unlinked file (it vanishes when dropped, even if the
/// process dies) and its length.
pub struct Snapshot {
    pub file: File,
    pub len: u64,
}

impl Store {
    /// Copies a consistent snapshot of the database into a temporary file beside it (where the
    /// operator has made room for the database) and returns it open for reading. Blocking: call
    /// it on a blocking thread.
    pub fn snapshot_blocking(&self) -> Result<Snapshot, Error> {
        let path = self.temp_backup_path();
        let result = self.copy_into(&path).and_then(|()| {
            let file = File::open(&path)
                .map_err(|e| Error::internal(format!("open the backup copy: {e}")))?;
            let len = file
                .metadata()
                .map_err(|e| Error::internal(format!("read the backup's size: {e}")))?
                .len();
            Ok(Snapshot { file, len })
        });
        // The open file stays readable after its name is gone.
        if let Err(e) = std::fs::remove_file(&path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %path.display(), error = %e, "could not remove a backup copy");
            }
        }
        result
    }

    fn temp_backup_path(&self) -> PathBuf {
        let name = self
            .inner
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "axme.db".into());
        self.inner
            .path
            .with_file_name(format!(".{name}.backup-{}.tmp", uuid::Uuid::new_v4()))
    }

    fn copy_into(&self, dest: &std::path::Path) -> Result<(), Error> {
        let src = open_connection(&self.inner.path, self.inner.durability, true)?;
        // Created empty and private first: SQLite takes an empty file as an empty database.
        super::create_private(dest)
            .map_err(|e| Error::internal(format!("create the backup copy: {e}")))?;
        let mut dst = Connection::open_with_flags(
            dest,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        {
            let _shared = self
                .inner
                .snapshot_gate
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let backup = Backup::new(&src, &mut dst)?;
            match backup.step(-1)? {
                StepResult::Done => {}
                other => {
                    return Err(Error::Unavailable {
                        reason: format!("the database could not be read for a backup ({other:?})"),
                    })
                }
            }
        }
        // The copy carries the WAL flag of its source; as a rollback-journal database it is one
        // self-contained file.
        let mode: String = dst.query_row("PRAGMA journal_mode=DELETE", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("delete") {
            return Err(Error::internal(format!(
                "the backup copy stayed in journal mode {mode}"
            )));
        }
        dst.close().map_err(|(_, e)| Error::from(e))?;
        Ok(())
    }
}

/// Why a backup file cannot be used.
#[derive(Debug)]
pub enum Unusable {
    /// It is not a readable SQLite database.
    Unreadable(String),
    /// `PRAGMA integrity_check` found these problems.
    Corrupt(Vec<String>),
}

/// Opens a backup file read-only and runs `PRAGMA integrity_check` on it; returns its schema
/// version (`PRAGMA user_version`). Used by the client's `axme backup` on the downloaded file.
pub fn verify_file(path: &std::path::Path) -> Result<i64, Unusable> {
    let bad = |e: rusqlite::Error| Unusable::Unreadable(e.to_string());
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(bad)?;
    let verdict: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .and_then(|mut s| {
            s.query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(bad)?;
    if verdict != ["ok"] {
        return Err(Unusable::Corrupt(verdict));
    }
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(bad)
}
