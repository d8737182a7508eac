//! The `events` table: the append-only history of every intent. `seq` counts 1, 2, 3 … per
//! intent with no gaps; `event_id` is the global, strictly increasing position of an event in
//! the log (the feed cursor). Events are never updated or deleted while their intent is kept.
//!
//! `event_id` is a plain `INTEGER PRIMARY KEY` (SQLite gives max + 1), not `AUTOINCREMENT`,
//! which would update `sqlite_sequence` on every insert. Ids stay strictly increasing as long
//! as the newest event is never deleted — so whatever prunes old events must always keep the
//! newest one.

use super::Tx;
use rusqlite::{params, Row};

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

const COLUMNS: &str =
    "event_id, intent_id, seq, event_type, status, waiting_reason, handler, actor, at, details";

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
pub fn append(conn: &Tx, e: &EventRow) -> Result<i64, Error> {
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
    let event_id = conn.last_insert_rowid();
    super::notify::record(Committed {
        event_id,
        intent_id: e.intent_id.clone(),
        seq: e.seq,
        event_type: e.event_type.clone(),
        handler: e.handler.clone(),
    });
    Ok(event_id)
}

/// The events of one intent with `seq > since`, oldest first, at most `limit`.
pub fn list_for_intent(
    conn: &Tx,
    intent_id: &str,
    since: i64,
    limit: usize,
) -> Result<Vec<EventRow>, Error> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM events WHERE intent_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
    ))?;
    let rows = stmt
        .query_map(params![intent_id, since, limit as i64], from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// The highest event id ever committed (0 for an empty log).
pub fn max_event_id(conn: &Tx) -> Result<i64, Error> {
    let mut stmt = conn.prepare_cached("SELECT COALESCE(MAX(event_id), 0) FROM events")?;
    Ok(stmt.query_row([], |r| r.get(0))?)
}

/// The short form of an event, recorded as it is appended and published to subscribers once its
/// transaction has committed (see `notify`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub event_id: i64,
    pub intent_id: String,
    pub seq: i64,
    pub event_type: String,
    pub handler: Option<String>,
}

/// The feed of an agent: `intent.submitted` and terminal events handled by `address` with
/// `event_id > after`, oldest first. The `event_type IN (...)` term matches the partial index
/// `events_feed` exactly, so SQLite can use it.
pub fn feed_for_agent(
    conn: &Tx,
    address: &str,
    after: i64,
    limit: usize,
) -> Result<Vec<EventRow>, Error> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM events WHERE handler = ?1 AND event_id > ?2 AND event_type IN \
         ('intent.submitted', 'intent.completed', 'intent.failed', 'intent.canceled', \
         'intent.timed_out') ORDER BY event_id LIMIT ?3"
    ))?;
    let rows = stmt
        .query_map(params![address, after, limit as i64], from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Filters of the event firehose; `None` means "any".
#[derive(Debug, Clone, Default)]
pub struct FirehoseFilter {
    pub intent_id: Option<String>,
    pub to_agent: Option<String>,
    pub correlation_id: Option<String>,
}

/// Every event with `event_id > after` that passes the filter, oldest first.
pub fn firehose(
    conn: &Tx,
    after: i64,
    f: &FirehoseFilter,
    limit: usize,
) -> Result<Vec<EventRow>, Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT e.event_id, e.intent_id, e.seq, e.event_type, e.status, e.waiting_reason, \
         e.handler, e.actor, e.at, e.details FROM events e \
         WHERE e.event_id > ?1 AND (?2 IS NULL OR e.intent_id = ?2) \
         AND (?3 IS NULL OR e.handler = ?3) \
         AND (?4 IS NULL OR e.intent_id IN (SELECT intent_id FROM intents WHERE correlation_id = ?4)) \
         ORDER BY e.event_id LIMIT ?5",
    )?;
    let rows = stmt
        .query_map(
            params![
                after,
                f.intent_id,
                f.to_agent,
                f.correlation_id,
                limit as i64
            ],
            from_row,
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}
