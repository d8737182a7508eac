//! The `events` table: the append-only history of every intent. `seq` counts 1, 2, 3 … per
//! intent with no gaps; `event_id` is the global, strictly increasing position of an event in
//! the log (the feed cursor). Events are never updated or deleted while their intent is kept.

use rusqlite::{params, Connection, Row};

use crate::model::{Status, WaitingReason};
use crate::Error;

/// An event as stored. `details` holds a JSON object as text.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    /// Global position in the log; zero before insertion.
    pub event_id: i64,
    pub intent_id: String,
    pub seq: i64,
    pub event_type: String,
    pub status: Status,
    pub waiting_reason: Option<WaitingReason>,
    pub handler: Option<String>,
    pub actor: String,
    pub at: String,
    pub details: String,
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<EventRow> {
    Ok(EventRow {
        event_id: r.get(0)?,
        intent_id: r.get(1)?,
        seq: r.get(2)?,
        event_type: r.get(3)?,
        status: r.get(4)?,
        waiting_reason: r.get(5)?,
        handler: r.get(6)?,
        actor: r.get(7)?,
        at: r.get(8)?,
        details: r.get(9)?,
    })
}

/// Appends an event and returns its global event id. The `(intent_id, seq)` uniqueness
/// constraint refuses a duplicate `seq`, so a racing writer can never fork an intent's history.
pub fn append(conn: &Connection, e: &EventRow) -> Result<i64, Error> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO events (intent_id, seq, event_type, status, waiting_reason, handler, actor, \
         at, details) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    stmt.execute(params![
        e.intent_id,
        e.seq,
        e.event_type,
        e.status.as_str(),
        e.waiting_reason.map(|w| w.as_str()),
        e.handler,
        e.actor,
        e.at,
        e.details,
    ])?;
    Ok(conn.last_insert_rowid())
}

/// The events of one intent with `seq > since`, oldest first, at most `limit`.
pub fn list_for_intent(
    conn: &Connection,
    intent_id: &str,
    since: i64,
    limit: usize,
) -> Result<Vec<EventRow>, Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT event_id, intent_id, seq, event_type, status, waiting_reason, handler, actor, at, \
         details FROM events WHERE intent_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
    )?;
    let rows = stmt
        .query_map(params![intent_id, since, limit as i64], from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// The highest event id ever committed (0 for an empty log).
pub fn max_event_id(conn: &Connection) -> Result<i64, Error> {
    let mut stmt = conn.prepare_cached("SELECT COALESCE(MAX(event_id), 0) FROM events")?;
    Ok(stmt.query_row([], |r| r.get(0))?)
}
