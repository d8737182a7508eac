//! The `timers` table: durable runtime timers (reminders, escalations, delays). A timer is
//! deleted in the same transaction that acts on it, so it fires once: not lost by a crash before
//! the commit, not repeated after it.

use super::Tx;
use rusqlite::types::ToSqlOutput;
use rusqlite::{params, Row, ToSql};

use crate::model::TimerKind;
use crate::Error;

impl ToSql for TimerKind {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerRow {
    pub timer_id: i64,
    pub intent_id: String,
    /// A [`TimerKind`] as stored. Read as text: a kind this build does not know is dropped by
    /// the scheduler with a warning, instead of failing the read of every due timer.
    pub kind: String,
    /// When it is due, Unix milliseconds.
    pub due_ms: i64,
    /// JSON object text: what the timer needs when it fires.
    pub data: String,
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<TimerRow> {
    Ok(TimerRow {
        timer_id: r.get(0)?,
        intent_id: r.get(1)?,
        kind: r.get(2)?,
        due_ms: r.get(3)?,
        data: r.get(4)?,
    })
}

pub fn insert(
    conn: &Tx,
    intent_id: &str,
    kind: TimerKind,
    due_ms: i64,
    data: &str,
) -> Result<i64, Error> {
    conn.prepare_cached(
        "INSERT INTO timers (intent_id, kind, due_ms, data) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![intent_id, kind, due_ms, data])?;
    Ok(conn.last_insert_rowid())
}

/// Timers due at `now_ms`, earliest first.
pub fn due(conn: &Tx, now_ms: i64, limit: usize) -> Result<Vec<TimerRow>, Error> {
    let rows = conn
        .prepare_cached(
            "SELECT timer_id, intent_id, kind, due_ms, data FROM timers WHERE due_ms <= ?1 \
             ORDER BY due_ms LIMIT ?2",
        )?
        .query_map(params![now_ms, limit as i64], from_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

pub fn delete(conn: &Tx, timer_id: i64) -> Result<(), Error> {
    conn.prepare_cached("DELETE FROM timers WHERE timer_id = ?1")?
        .execute([timer_id])?;
    Ok(())
}

/// Drops an intent's pending timers of one kind.
pub fn delete_kind(conn: &Tx, intent_id: &str, kind: TimerKind) -> Result<(), Error> {
    conn.prepare_cached("DELETE FROM timers WHERE intent_id = ?1 AND kind = ?2")?
        .execute(params![intent_id, kind])?;
    Ok(())
}

/// When the earliest timer is due (Unix ms).
pub fn next_due_ms(conn: &Tx) -> Result<Option<i64>, Error> {
    Ok(conn
        .prepare_cached("SELECT MIN(due_ms) FROM timers")?
        .query_row([], |r| r.get(0))?)
}

/// Moves every timer by `by_ms` (a step of the system clock; see `runtime::jumps`). Returns how
/// many moved.
pub fn shift_all(conn: &Tx, by_ms: i64) -> Result<usize, Error> {
    Ok(conn
        .prepare_cached("UPDATE timers SET due_ms = due_ms + ?1")?
        .execute([by_ms])?)
}

/// The pending timers of an intent, earliest first.
pub fn for_intent(conn: &Tx, intent_id: &str) -> Result<Vec<TimerRow>, Error> {
    let rows = conn
        .prepare_cached(
            "SELECT timer_id, intent_id, kind, due_ms, data FROM timers WHERE intent_id = ?1 \
             ORDER BY due_ms",
        )?
        .query_map([intent_id], from_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// How many timers are pending.
pub fn count(conn: &Tx) -> Result<i64, Error> {
    Ok(conn
        .prepare_cached("SELECT COUNT(*) FROM timers")?
        .query_row([], |r| r.get(0))?)
}
