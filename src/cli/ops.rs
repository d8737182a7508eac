//! `axme backup` and `axme healthcheck`, for operators and their scripts.
//!
//! A backup is downloaded from `GET /v1/admin/backup` into a temporary file beside the target,
//! synced, checked with SQLite's `PRAGMA integrity_check`, and only then renamed over the target,
//! so the target is either the old file or a complete, checked backup, never half of one.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;

use super::client::Client;
use super::term::{self, Spinner};
use super::{BackupArgs, Failure, HealthArgs};

pub fn healthcheck(a: HealthArgs) -> Result<(), Failure> {
    let client = Client::with_timeout(&a.conn, Duration::from_secs(a.timeout.max(1)))?;
    let v = client.get("/health").map_err(|f| Failure {
        message: format!("unhealthy: {}", f.message),
        ..f
    })?;
    if v["ok"] != json!(true) || v["status"] != json!("ok") {
        return Err(Failure::new(format!(
            "unhealthy: {} answered {}",
            client.base(),
            term::truncate(&v.to_string(), 200)
        )));
    }
    if a.conn.json {
        term::print_json(&v);
    } else {
        println!(
            "ok: axme {} (schema {}) at {}",
            term::field(&v, "version"),
            term::field(&v, "schema_version"),
            client.base()
        );
    }
    Ok(())
}

pub fn backup(a: BackupArgs) -> Result<(), Failure> {
    let client = Client::new(&a.conn)?;
    if a.out.is_dir() {
        return Err(Failure::new(format!(
            "{} is a directory; name the backup file",
            a.out.display()
        )));
    }
    let temp = temp_path(&a.out)?;
    let result = download(&client, &temp).and_then(|bytes| {
        let schema = check(&temp)?;
        std::fs::rename(&temp, &a.out).map_err(|e| {
            Failure::new(format!(
                "cannot move the backup to {}: {e}",
                a.out.display()
            ))
        })?;
        sync_dir(&a.out);
        Ok((bytes, schema))
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    let (bytes, schema) = result?;
    if a.conn.json {
        term::print_json(&json!({
            "ok": true,
            "path": a.out.display().to_string(),
            "bytes": bytes,
            "schema_version": schema,
            "integrity_check": "ok",
        }));
    } else {
        println!(
            "backup written to {} ({}, schema {schema}, integrity ok)",
            a.out.display(),
            size(bytes)
        );
    }
    Ok(())
}

/// A file name beside `out` that nothing else uses.
fn temp_path(out: &Path) -> Result<PathBuf, Failure> {
    let name = out
        .file_name()
        .ok_or_else(|| Failure::new(format!("{} does not name a file", out.display())))?
        .to_string_lossy();
    Ok(out.with_file_name(format!(".{name}.partial-{}", uuid::Uuid::new_v4())))
}

/// Streams the backup into `path` (created new) and syncs it; returns its size.
fn download(client: &Client, path: &Path) -> Result<u64, Failure> {
    let resp = client.open(client.long_request("GET", "/v1/admin/backup"), None)?;
    let expected: Option<u64> = resp.header("content-length").and_then(|v| v.parse().ok());
    let mut body = resp.into_reader();
    // Private (0600) like the database: a backup holds webhook secrets and every payload.
    let mut file = File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Failure::new(format!("cannot create {}: {e}", path.display())))?;
    let mut spinner = Spinner::new();
    let mut shown = Instant::now();
    let mut buf = vec![0u8; 256 * 1024];
    let mut written = 0u64;
    loop {
        let n = body.read(&mut buf).map_err(|e| {
            Failure::new(format!(
                "the backup download from {} broke off after {}: {e}",
                client.base(),
                size(written)
            ))
        })?;
        if n == 0 {
            break;
        }
        file.write_all(&buf[..n])
            .map_err(|e| Failure::new(format!("cannot write {}: {e}", path.display())))?;
        written += n as u64;
        if shown.elapsed() >= Duration::from_millis(100) {
            let of = expected
                .map(|t| format!(" of {}", size(t)))
                .unwrap_or_default();
            spinner.tick(&format!("downloading the backup: {}{of}", size(written)));
            shown = Instant::now();
        }
    }
    spinner.clear();
    if let Some(n) = expected {
        if n != written {
            return Err(Failure::new(format!(
                "the backup download was cut short: {written} of {n} bytes"
            )));
        }
    }
    file.sync_all()
        .map_err(|e| Failure::new(format!("cannot sync {}: {e}", path.display())))?;
    Ok(written)
}

/// Checks the downloaded file's integrity (`store::backup::verify_file`); returns its schema
/// version.
fn check(path: &Path) -> Result<i64, Failure> {
    match crate::store::backup::verify_file(path) {
        Ok(version) => Ok(version),
        Err(crate::store::backup::Unusable::Unreadable(e)) => Err(Failure::new(format!(
            "the downloaded backup is not a readable SQLite database: {e}"
        ))),
        Err(crate::store::backup::Unusable::Corrupt(verdict)) => Err(Failure::new(format!(
            "the downloaded backup failed its integrity check: {}",
            term::truncate(&verdict.join("; "), 300)
        ))),
    }
}

/// Makes the rename durable (best effort: not every platform can sync a directory).
fn sync_dir(file: &Path) {
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// A byte count for people.
fn size(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if b >= KIB * KIB {
        format!("{:.1} MiB", b / (KIB * KIB))
    } else if b >= KIB {
        format!("{:.1} KiB", b / KIB)
    } else {
        format!("{bytes} B")
    }
}
