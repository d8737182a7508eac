//! The `mail_outbox` table (mails a human task owes its assignee, kept until the relay took
//! them, each retried on its own schedule) and the `email_links` table (the magic links those
//! mails carry, found by the SHA-256 of their token; the token itself is never stored).

use rusqlite::{params, OptionalExtension, Row};

use super::Tx;
use crate::Error;

/// A mail waiting to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailRow {
    pub id: i64,
    /// The intent that carries the human task.
    pub intent_id: String,
    pub to_addr: String,
    /// `task` (the first mail) or `reminder`.
    pub kind: String,
    pub attempts: i64,
}

/// A magic link as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRow {
    pub token_hash: Vec<u8>,
    pub intent_id: String,
    pub email: String,
    pub created_at: String,
    pub expires_at: String,
    pub used_at: Option<String>,
}

pub fn insert(
    conn: &Tx,
    intent_id: &str,
    to_addr: &str,
    kind: &str,
    at_ms: i64,
    created_at: &str,
) -> Result<(), Error> {
    conn.prepare_cached(
        "INSERT INTO mail_outbox (intent_id, to_addr, kind, next_at_ms, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![intent_id, to_addr, kind, at_ms, created_at])?;
    Ok(())
}

/// Unsent mails due at `now_ms` that have attempts left, oldest first.
pub fn due(conn: &Tx, now_ms: i64, max_attempts: i64, limit: usize) -> Result<Vec<MailRow>, Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, intent_id, to_addr, kind, attempts FROM mail_outbox \
         WHERE sent_at IS NULL AND next_at_ms <= ?1 AND attempts < ?2 ORDER BY next_at_ms LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![now_ms, max_attempts, limit as i64], |r: &Row| {
        Ok(MailRow {
            id: r.get(0)?,
            intent_id: r.get(1)?,
            to_addr: r.get(2)?,
            kind: r.get(3)?,
            attempts: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Counts an attempt and sets when the next one is due (should this one not be recorded).
pub fn attempt(conn: &Tx, id: i64, next_at_ms: i64) -> Result<(), Error> {
    conn.prepare_cached(
        "UPDATE mail_outbox SET attempts = attempts + 1, next_at_ms = ?2 WHERE id = ?1",
    )?
    .execute(params![id, next_at_ms])?;
    Ok(())
}

/// Ends a mail: sent (no error), or given up on / no longer owed (with why).
pub fn finish(conn: &Tx, id: i64, at: &str, error: Option<&str>) -> Result<(), Error> {
    conn.prepare_cached("UPDATE mail_outbox SET sent_at = ?2, last_error = ?3 WHERE id = ?1")?
        .execute(params![id, at, error])?;
    Ok(())
}

pub fn failed(conn: &Tx, id: i64, error: &str) -> Result<(), Error> {
    conn.prepare_cached("UPDATE mail_outbox SET last_error = ?2 WHERE id = ?1")?
        .execute(params![id, error])?;
    Ok(())
}

pub fn insert_link(conn: &Tx, l: &LinkRow) -> Result<(), Error> {
    conn.prepare_cached(
        "INSERT INTO email_links (token_hash, intent_id, email, created_at, expires_at, used_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        l.token_hash,
        l.intent_id,
        l.email,
        l.created_at,
        l.expires_at,
        l.used_at
    ])?;
    Ok(())
}

pub fn link(conn: &Tx, token_hash: &[u8]) -> Result<Option<LinkRow>, Error> {
    Ok(conn
        .prepare_cached(
            "SELECT token_hash, intent_id, email, created_at, expires_at, used_at \
             FROM email_links WHERE token_hash = ?1",
        )?
        .query_row([token_hash], |r| {
            Ok(LinkRow {
                token_hash: r.get(0)?,
                intent_id: r.get(1)?,
                email: r.get(2)?,
                created_at: r.get(3)?,
                expires_at: r.get(4)?,
                used_at: r.get(5)?,
            })
        })
        .optional()?)
}

/// Marks a link used; returns whether it was still unused.
pub fn use_link(conn: &Tx, token_hash: &[u8], at: &str) -> Result<bool, Error> {
    let n = conn
        .prepare_cached(
            "UPDATE email_links SET used_at = ?2 WHERE token_hash = ?1 AND used_at IS NULL",
        )?
        .execute(params![token_hash, at])?;
    Ok(n == 1)
}
