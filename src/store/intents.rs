//! The `intents` table: one row per intent, holding its current state. The history of that state
//! is in `events`; the two are always written in the same transaction by the service layer.

use super::Tx;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ValueRef};
use rusqlite::{params, OptionalExtension, Row};

use crate::model::{Status, WaitingReason};
use crate::Error;

/// An intent as stored. JSON columns (`payload`, `result`, `error`, `human_task`) hold JSON text.
#[derive(Debug, Clone, PartialEq)]
pub struct IntentRow {
    /// Internal row id: the listing cursor. Zero before insertion.
    pub id: i64,
    pub intent_id: String,
    pub intent_type: String,
    pub correlation_id: String,
    pub from_agent: String,
    pub to_agent: String,
    pub reply_to: Option<String>,
    pub payload: String,
    pub status: Status,
    pub waiting_reason: Option<WaitingReason>,
    pub result: Option<String>,
    pub error: Option<String>,
    pub deadline_at: Option<String>,
    pub remind_after_seconds: Option<i64>,
    pub remind_interval_seconds: Option<i64>,
    pub max_reminders: Option<i64>,
    pub remind_count: i64,
    pub escalate_to: Option<String>,
    pub max_delivery_attempts: Option<i64>,
    pub delivery_attempt: i64,
    pub human_task: Option<String>,
    /// The `seq` of the intent's newest event.
    pub last_seq: i64,
    pub created_at: String,
    pub updated_at: String,
}

impl FromSql for Status {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let s = value.as_str()?;
        Status::parse(s).ok_or_else(|| FromSqlError::Other(format!("unknown status {s}").into()))
    }
}

impl FromSql for WaitingReason {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let s = value.as_str()?;
        WaitingReason::parse(s)
            .ok_or_else(|| FromSqlError::Other(format!("unknown waiting reason {s}").into()))
    }
}

const COLUMNS: &str =
    "id, intent_id, intent_type, correlation_id, from_agent, to_agent, reply_to, \
    payload, status, waiting_reason, result, error, deadline_at, remind_after_seconds, \
    remind_interval_seconds, max_reminders, remind_count, escalate_to, max_delivery_attempts, \
    delivery_attempt, human_task, last_seq, created_at, updated_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<IntentRow> {
    Ok(IntentRow {
        id: r.get(0)?,
        intent_id: r.get(1)?,
        intent_type: r.get(2)?,
        correlation_id: r.get(3)?,
        from_agent: r.get(4)?,
        to_agent: r.get(5)?,
        reply_to: r.get(6)?,
        payload: r.get(7)?,
        status: r.get(8)?,
        waiting_reason: r.get(9)?,
        result: r.get(10)?,
        error: r.get(11)?,
        deadline_at: r.get(12)?,
        remind_after_seconds: r.get(13)?,
        remind_interval_seconds: r.get(14)?,
        max_reminders: r.get(15)?,
        remind_count: r.get(16)?,
        escalate_to: r.get(17)?,
        max_delivery_attempts: r.get(18)?,
        delivery_attempt: r.get(19)?,
        human_task: r.get(20)?,
        last_seq: r.get(21)?,
        created_at: r.get(22)?,
        updated_at: r.get(23)?,
    })
}

/// Inserts a new intent and returns its row id.
pub fn insert(conn: &Tx, i: &IntentRow) -> Result<i64, Error> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO intents (intent_id, intent_type, correlation_id, from_agent, to_agent, \
         reply_to, payload, status, waiting_reason, result, error, deadline_at, \
         remind_after_seconds, remind_interval_seconds, max_reminders, remind_count, escalate_to, \
         max_delivery_attempts, delivery_attempt, human_task, last_seq, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, \
         ?19, ?20, ?21, ?22, ?23)",
    )?;
    stmt.execute(params![
        i.intent_id,
        i.intent_type,
        i.correlation_id,
        i.from_agent,
        i.to_agent,
        i.reply_to,
        i.payload,
        i.status.as_str(),
        i.waiting_reason.map(|w| w.as_str()),
        i.result,
        i.error,
        i.deadline_at,
        i.remind_after_seconds,
        i.remind_interval_seconds,
        i.max_reminders,
        i.remind_count,
        i.escalate_to,
        i.max_delivery_attempts,
        i.delivery_attempt,
        i.human_task,
        i.last_seq,
        i.created_at,
        i.updated_at,
    ])?;
    Ok(conn.last_insert_rowid())
}

/// The intent with this id, if any.
pub fn get(conn: &Tx, intent_id: &str) -> Result<Option<IntentRow>, Error> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM intents WHERE intent_id = ?1"
    ))?;
    Ok(stmt.query_row([intent_id], from_row).optional()?)
}

/// Writes back the mutable state of an intent (everything a lifecycle change may touch).
pub fn update_state(conn: &Tx, i: &IntentRow) -> Result<(), Error> {
    let mut stmt = conn.prepare_cached(
        "UPDATE intents SET status = ?2, waiting_reason = ?3, result = ?4, error = ?5, \
         to_agent = ?6, remind_count = ?7, delivery_attempt = ?8, last_seq = ?9, updated_at = ?10 \
         WHERE intent_id = ?1",
    )?;
    let n = stmt.execute(params![
        i.intent_id,
        i.status.as_str(),
        i.waiting_reason.map(|w| w.as_str()),
        i.result,
        i.error,
        i.to_agent,
        i.remind_count,
        i.delivery_attempt,
        i.last_seq,
        i.updated_at,
    ])?;
    if n != 1 {
        return Err(Error::NotFound {
            what: "intent",
            id: i.intent_id.clone(),
        });
    }
    Ok(())
}

/// Filters of the intent listing; `None` means "any".
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub to_agent: Option<String>,
    pub from_agent: Option<String>,
    pub status: Option<Status>,
    pub correlation_id: Option<String>,
    /// Only rows with an id below this (the previous page's last id).
    pub before_id: Option<i64>,
    pub limit: usize,
}

/// Intents matching the filter, newest first.
pub fn list(conn: &Tx, f: &ListFilter) -> Result<Vec<IntentRow>, Error> {
    let mut sql = format!("SELECT {COLUMNS} FROM intents WHERE 1 = 1");
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    let mut push = |clause: &str, v: rusqlite::types::Value| {
        args.push(v);
        sql.push_str(&format!(" AND {clause} ?{}", args.len()));
    };
    if let Some(v) = &f.to_agent {
        push("to_agent =", v.clone().into());
    }
    if let Some(v) = &f.from_agent {
        push("from_agent =", v.clone().into());
    }
    if let Some(v) = f.status {
        push("status =", v.as_str().to_string().into());
    }
    if let Some(v) = &f.correlation_id {
        push("correlation_id =", v.clone().into());
    }
    if let Some(v) = f.before_id {
        push("id <", v.into());
    }
    sql.push_str(&format!(" ORDER BY id DESC LIMIT {}", f.limit));
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(args), from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// The `WHERE` terms of a live intent with a deadline; they match the partial index
/// `intents_deadline` exactly, so SQLite can use it.
const LIVE_DEADLINE: &str = "deadline_at IS NOT NULL \
    AND status NOT IN ('COMPLETED', 'FAILED', 'CANCELED', 'TIMED_OUT')";

/// Ids of live intents whose deadline (RFC 3339 UTC, which sorts as text) is at or before `now`.
pub fn past_deadline(conn: &Tx, now: &str, limit: usize) -> Result<Vec<String>, Error> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT intent_id FROM intents WHERE {LIVE_DEADLINE} AND deadline_at <= ?1 \
         ORDER BY deadline_at LIMIT ?2"
    ))?;
    let rows = stmt
        .query_map(params![now, limit as i64], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(rows)
}

/// The earliest deadline of a live intent.
pub fn next_deadline(conn: &Tx) -> Result<Option<String>, Error> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT MIN(deadline_at) FROM intents WHERE {LIVE_DEADLINE}"
        ))?
        .query_row([], |r| r.get(0))?)
}

/// Gives an intent a human task when it has none (an approval asked for by a handler).
pub fn set_human_task_if_absent(
    conn: &Tx,
    intent_id: &str,
    task: &serde_json::Value,
) -> Result<(), Error> {
    conn.prepare_cached(
        "UPDATE intents SET human_task = ?2 WHERE intent_id = ?1 AND human_task IS NULL",
    )?
    .execute(params![intent_id, task.to_string()])?;
    Ok(())
}

/// Ids of intents in one of `statuses` not updated since `before` (RFC 3339 UTC, which sorts as
/// text), oldest first; with `parties`, only those sent by or addressed to one of them.
pub fn inactive(
    conn: &Tx,
    statuses: &[Status],
    before: &str,
    parties: Option<&[String]>,
    limit: usize,
) -> Result<Vec<String>, Error> {
    let statuses: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
    let parties = parties.map(serde_json::to_string).transpose()?;
    let mut stmt = conn.prepare_cached(
        "SELECT intent_id FROM intents WHERE status IN (SELECT value FROM json_each(?1)) \
         AND updated_at < ?2 AND (?3 IS NULL \
         OR to_agent IN (SELECT value FROM json_each(?3)) \
         OR from_agent IN (SELECT value FROM json_each(?3))) \
         ORDER BY updated_at, id LIMIT ?4",
    )?;
    let rows = stmt
        .query_map(
            rusqlite::params![
                serde_json::to_string(&statuses)?,
                before,
                parties,
                limit as i64
            ],
            |r| r.get(0),
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}
