//! The files of uploads, in the media directory beside the database: one `<upload_id>` file
//! per upload whose bytes arrived whole, written first as `<upload_id>.part`, fsynced, then
//! renamed and the directory fsynced; one PUT at a time per upload; and the sweep of files no
//! row needs any more. No SQL: the sweep asks its caller for a row's status.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::Error;

/// Uploads whose bytes a PUT is writing now: a second PUT of the same upload meanwhile is
/// refused, so two bodies never interleave in one file. One set per process (upload ids are
/// random UUIDs); held by [`Writing`], released when it drops.
fn writing() -> &'static std::sync::Mutex<std::collections::HashSet<String>> {
    static SET: std::sync::OnceLock<std::sync::Mutex<std::collections::HashSet<String>>> =
        std::sync::OnceLock::new();
    SET.get_or_init(Default::default)
}

/// The right to write one upload's bytes, until dropped.
pub struct Writing(String);

impl Writing {
    /// Takes the right, or 409 `upload_in_progress` while another PUT of it runs.
    pub fn begin(upload_id: &str) -> Result<Writing, Error> {
        let mut set = writing()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !set.insert(upload_id.to_string()) {
            return Err(Error::conflict(
                "upload_in_progress",
                "another PUT of this upload is still running",
            ));
        }
        Ok(Writing(upload_id.to_string()))
    }
}

impl Drop for Writing {
    fn drop(&mut self) {
        writing()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.0);
    }
}

/// The final path of an upload's bytes, and the one they are written to first.
pub fn paths(dir: &Path, upload_id: &str) -> (PathBuf, PathBuf) {
    (dir.join(upload_id), dir.join(format!("{upload_id}.part")))
}

/// Moves a fully written, synced `.part` file to its final name and syncs the directory, so
/// the name survives a crash too.
pub fn commit_file(dir: &Path, upload_id: &str, mut file: std::fs::File) -> Result<(), Error> {
    let io = |e: std::io::Error| Error::Unavailable {
        reason: format!("the media directory failed: {e}"),
    };
    file.flush().map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    let (done, part) = paths(dir, upload_id);
    std::fs::rename(&part, &done).map_err(io)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io)
}

/// Removes files of the media directory that no row needs: finished files without a row
/// (retention removed it) and `.part` files of uploads that are no longer pending. Returns how
/// many went. `status_of` reads a row's status.
pub fn collect(
    dir: &Path,
    mut status_of: impl FnMut(&str) -> Result<Option<String>, Error>,
) -> Result<usize, Error> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(0);
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let (id, part) = match name.strip_suffix(".part") {
            Some(id) => (id.to_string(), true),
            None => (name.clone(), false),
        };
        if uuid::Uuid::try_parse(&id).is_err() {
            continue; // not ours
        }
        let stale = match status_of(&id)? {
            None => true,
            Some(s) => part && s != "pending",
        };
        if stale && std::fs::remove_file(e.path()).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_put_at_a_time_writes_an_upload() {
        let id = uuid::Uuid::new_v4().to_string();
        let first = Writing::begin(&id).unwrap();
        assert_eq!(
            Writing::begin(&id).err().map(|e| e.code()),
            Some("upload_in_progress")
        );
        drop(first);
        assert!(Writing::begin(&id).is_ok());
    }

    #[test]
    fn the_sweep_removes_only_files_no_upload_needs() {
        let dir = tempfile::tempdir().unwrap();
        let (live, gone, ended) = (
            uuid::Uuid::new_v4().to_string(),
            uuid::Uuid::new_v4().to_string(),
            uuid::Uuid::new_v4().to_string(),
        );
        for name in [
            live.clone(),
            format!("{live}.part"),
            gone.clone(),
            format!("{ended}.part"),
            "notes.txt".to_string(),
        ] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        let status = |id: &str| {
            Ok(if id == live {
                Some("pending".to_string())
            } else if id == ended {
                Some("ready".to_string())
            } else {
                None
            })
        };
        assert_eq!(collect(dir.path(), status).unwrap(), 2);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        left.sort();
        let mut want = vec![
            live.clone(),
            format!("{live}.part"),
            "notes.txt".to_string(),
        ];
        want.sort();
        assert_eq!(left, want);
    }
}
