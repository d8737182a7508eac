//! The `media` table (uploads: what was declared, what arrived, whether it is ready) and
//! `media_refs` (which intents attach which uploads). The bytes themselves are files beside the
//! database (see `service::media`), never rows.

use super::Tx;
use rusqlite::{params, OptionalExtension, Row};

use crate::Error;

/// An upload as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaRow {
    pub upload_id: String,
    pub owner_agent: String,
    pub filename: String,
    pub mime_type: String,
    /// The size declared at creation; the bytes must be exactly this many.
    pub size_bytes: i64,
    pub expected_sha256: Option<String>,
    /// What arrived and was synced to disk, once the whole body has.
    pub received_bytes: Option<i64>,
    /// SHA-256 of what arrived (hex).
    pub sha256: Option<String>,
    /// `pending` or `ready`.
    pub status: String,
    pub created_at: String,
    pub expires_at: String,
    pub finalized_at: Option<String>,
}

const COLUMNS: &str = "upload_id, owner_agent, filename, mime_type, size_bytes, expected_sha256, \
                       received_bytes, sha256, status, created_at, expires_at, finalized_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<MediaRow> {
    Ok(MediaRow {
        upload_id: r.get(0)?,
        owner_agent: r.get(1)?,
        filename: r.get(2)?,
        mime_type: r.get(3)?,
        size_bytes: r.get(4)?,
        expected_sha256: r.get(5)?,
        received_bytes: r.get(6)?,
        sha256: r.get(7)?,
        status: r.get(8)?,
        created_at: r.get(9)?,
        expires_at: r.get(10)?,
        finalized_at: r.get(11)?,
    })
}

pub fn insert(conn: &Tx, m: &MediaRow) -> Result<(), Error> {
    conn.prepare_cached(&format!(
        "INSERT INTO media ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
    ))?
    .execute(params![
        m.upload_id,
        m.owner_agent,
        m.filename,
        m.mime_type,
        m.size_bytes,
        m.expected_sha256,
        m.received_bytes,
        m.sha256,
        m.status,
        m.created_at,
        m.expires_at,
        m.finalized_at
    ])?;
    Ok(())
}

pub fn get(conn: &Tx, upload_id: &str) -> Result<Option<MediaRow>, Error> {
    Ok(conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM media WHERE upload_id = ?1"))?
        .query_row([upload_id], from_row)
        .optional()?)
}

/// Records the bytes that arrived (already synced to disk) for a pending upload.
pub fn set_received(conn: &Tx, upload_id: &str, bytes: i64, sha256: &str) -> Result<(), Error> {
    conn.prepare_cached(
        "UPDATE media SET received_bytes = ?2, sha256 = ?3 WHERE upload_id = ?1 AND status = 'pending'",
    )?
    .execute(params![upload_id, bytes, sha256])?;
    Ok(())
}

pub fn set_ready(conn: &Tx, upload_id: &str, at: &str) -> Result<(), Error> {
    conn.prepare_cached(
        "UPDATE media SET status = 'ready', finalized_at = ?2 WHERE upload_id = ?1",
    )?
    .execute(params![upload_id, at])?;
    Ok(())
}

/// Bytes the quota counts at `now`: ready uploads, and pending ones that have not expired.
pub fn reserved_bytes(conn: &Tx, now: &str) -> Result<i64, Error> {
    Ok(conn
        .prepare_cached(
            "SELECT COALESCE(SUM(size_bytes), 0) FROM media \
             WHERE status = 'ready' OR (status = 'pending' AND expires_at > ?1)",
        )?
        .query_row([now], |r| r.get(0))?)
}

/// Records that `intent_id` attaches `upload_id`.
pub fn insert_ref(conn: &Tx, intent_id: &str, upload_id: &str) -> Result<(), Error> {
    conn.prepare_cached("INSERT OR IGNORE INTO media_refs (intent_id, upload_id) VALUES (?1, ?2)")?
        .execute(params![intent_id, upload_id])?;
    Ok(())
}

/// The intents that attach an upload.
pub fn intents_of(conn: &Tx, upload_id: &str) -> Result<Vec<String>, Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT intent_id FROM media_refs WHERE upload_id = ?1 ORDER BY intent_id",
    )?;
    let rows = stmt
        .query_map([upload_id], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(rows)
}

/// The status of an upload, if it still has a row.
pub fn known(conn: &Tx, upload_id: &str) -> Result<Option<String>, Error> {
    Ok(conn
        .prepare_cached("SELECT status FROM media WHERE upload_id = ?1")?
        .query_row([upload_id], |r| r.get(0))
        .optional()?)
}
