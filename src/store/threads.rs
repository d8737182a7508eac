//! The `threads` and `thread_messages` tables: the inbox. A thread is one intent as seen by one
//! owner (its handler, its `reply_to`, an approver, a delegate); its timeline is the intent's
//! events plus the messages posted on the intent. `change_id` orders changes for the
//! `/v1/inbox/changes` feed: every change of a thread gives it the next value, so a thread
//! appears in the feed once, at its latest change.

use super::Tx;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};
use rusqlite::{params, OptionalExtension, Row, ToSql};

use crate::model::ThreadRole;
use crate::Error;

impl FromSql for ThreadRole {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let s = value.as_str()?;
        ThreadRole::parse(s)
            .ok_or_else(|| FromSqlError::Other(format!("unknown thread role {s}").into()))
    }
}

impl ToSql for ThreadRole {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadRow {
    pub owner_agent: String,
    pub intent_id: String,
    /// Why the owner sees the intent.
    pub role: ThreadRole,
    pub change_id: i64,
    pub read_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

const COLUMNS: &str = "owner_agent, intent_id, role, change_id, read_at, created_at, updated_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<ThreadRow> {
    Ok(ThreadRow {
        owner_agent: r.get(0)?,
        intent_id: r.get(1)?,
        role: r.get(2)?,
        change_id: r.get(3)?,
        read_at: r.get(4)?,
        created_at: r.get(5)?,
        updated_at: r.get(6)?,
    })
}

/// The next `change_id` (the writer is the only caller, so MAX + 1 cannot race).
fn next_change_id(conn: &Tx) -> Result<i64, Error> {
    Ok(conn
        .prepare_cached("SELECT COALESCE(MAX(change_id), 0) + 1 FROM threads")?
        .query_row([], |r| r.get(0))?)
}

/// Opens the owner's thread on an intent; `false` when it already existed (then only its role
/// is kept and it is touched as changed).
pub fn open(
    conn: &Tx,
    owner: &str,
    intent_id: &str,
    role: ThreadRole,
    at: &str,
) -> Result<bool, Error> {
    let change = next_change_id(conn)?;
    let inserted = conn
        .prepare_cached(&format!(
            "INSERT INTO threads ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, NULL, ?5, ?5) \
             ON CONFLICT (owner_agent, intent_id) DO NOTHING"
        ))?
        .execute(params![owner, intent_id, role, change, at])?;
    if inserted == 0 {
        touch_one(conn, owner, intent_id, at)?;
    }
    Ok(inserted == 1)
}

/// Marks every thread on an intent as changed (a new event, a new message). Returns the owners
/// whose threads were touched.
pub fn touch_intent(conn: &Tx, intent_id: &str, at: &str) -> Result<Vec<String>, Error> {
    let owners: Vec<String> = conn
        .prepare_cached("SELECT owner_agent FROM threads WHERE intent_id = ?1")?
        .query_map([intent_id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for owner in &owners {
        touch_one(conn, owner, intent_id, at)?;
    }
    Ok(owners)
}

fn touch_one(conn: &Tx, owner: &str, intent_id: &str, at: &str) -> Result<(), Error> {
    let change = next_change_id(conn)?;
    conn.prepare_cached(
        "UPDATE threads SET change_id = ?3, updated_at = ?4 \
         WHERE owner_agent = ?1 AND intent_id = ?2",
    )?
    .execute(params![owner, intent_id, change, at])?;
    Ok(())
}

pub fn set_read(conn: &Tx, owner: &str, intent_id: &str, at: &str) -> Result<(), Error> {
    let change = next_change_id(conn)?;
    conn.prepare_cached(
        "UPDATE threads SET read_at = ?3, change_id = ?4, updated_at = ?3 \
         WHERE owner_agent = ?1 AND intent_id = ?2",
    )?
    .execute(params![owner, intent_id, at, change])?;
    Ok(())
}

/// Changes why the owner sees the intent (a delegated task becomes `delegated`).
pub fn set_role(conn: &Tx, owner: &str, intent_id: &str, role: ThreadRole) -> Result<(), Error> {
    let change = next_change_id(conn)?;
    conn.prepare_cached(
        "UPDATE threads SET role = ?3, change_id = ?4 WHERE owner_agent = ?1 AND intent_id = ?2",
    )?
    .execute(params![owner, intent_id, role, change])?;
    Ok(())
}

pub fn get(conn: &Tx, owner: &str, intent_id: &str) -> Result<Option<ThreadRow>, Error> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM threads WHERE owner_agent = ?1 AND intent_id = ?2"
        ))?
        .query_row([owner, intent_id], from_row)
        .optional()?)
}

/// Every owner's thread on an intent, oldest first.
pub fn for_intent(conn: &Tx, intent_id: &str) -> Result<Vec<ThreadRow>, Error> {
    let rows = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM threads WHERE intent_id = ?1 ORDER BY created_at, owner_agent"
        ))?
        .query_map([intent_id], from_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// Threads changed after `after` (a `change_id`), oldest change first; of one owner, or of all
/// owners when `owner` is `None`.
pub fn changed_after(
    conn: &Tx,
    owner: Option<&str>,
    after: i64,
    limit: usize,
) -> Result<Vec<ThreadRow>, Error> {
    let rows = match owner {
        Some(o) => conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM threads WHERE owner_agent = ?1 AND change_id > ?2 \
                 ORDER BY change_id LIMIT ?3"
            ))?
            .query_map(params![o, after, limit as i64], from_row)?
            .collect::<rusqlite::Result<_>>()?,
        None => conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM threads WHERE change_id > ?1 ORDER BY change_id LIMIT ?2"
            ))?
            .query_map(params![after, limit as i64], from_row)?
            .collect::<rusqlite::Result<_>>()?,
    };
    Ok(rows)
}

/// The most recently changed threads, newest first; of one owner or of all.
pub fn latest(conn: &Tx, owner: Option<&str>, limit: usize) -> Result<Vec<ThreadRow>, Error> {
    let rows = match owner {
        Some(o) => conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM threads WHERE owner_agent = ?1 \
                 ORDER BY change_id DESC LIMIT ?2"
            ))?
            .query_map(params![o, limit as i64], from_row)?
            .collect::<rusqlite::Result<_>>()?,
        None => conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM threads ORDER BY change_id DESC LIMIT ?1"
            ))?
            .query_map(params![limit as i64], from_row)?
            .collect::<rusqlite::Result<_>>()?,
    };
    Ok(rows)
}

/// Threads whose intent waits for a person (WAITING_FOR_HUMAN) and that are a task of their
/// owner (`task`, `approver` or `delegate`), oldest first.
pub fn pending_tasks(
    conn: &Tx,
    owner: Option<&str>,
    limit: usize,
) -> Result<Vec<ThreadRow>, Error> {
    let cols = "t.owner_agent, t.intent_id, t.role, t.change_id, t.read_at, t.created_at, \
                t.updated_at";
    let filter = "t.role IN ('task', 'approver', 'delegate') AND i.status = 'WAITING' \
                  AND i.waiting_reason = 'WAITING_FOR_HUMAN'";
    let rows = match owner {
        Some(o) => conn
            .prepare_cached(&format!(
                "SELECT {cols} FROM threads t JOIN intents i ON i.intent_id = t.intent_id \
                 WHERE t.owner_agent = ?1 AND {filter} ORDER BY t.created_at LIMIT ?2"
            ))?
            .query_map(params![o, limit as i64], from_row)?
            .collect::<rusqlite::Result<_>>()?,
        None => conn
            .prepare_cached(&format!(
                "SELECT {cols} FROM threads t JOIN intents i ON i.intent_id = t.intent_id \
                 WHERE {filter} ORDER BY t.created_at LIMIT ?1"
            ))?
            .query_map(params![limit as i64], from_row)?
            .collect::<rusqlite::Result<_>>()?,
    };
    Ok(rows)
}

/// A message posted on an intent's conversation (a reply, a delegation note, a decision).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRow {
    pub message_id: String,
    pub intent_id: String,
    /// `reply`, `delegation` or `decision`.
    pub kind: String,
    pub author: String,
    /// JSON object text.
    pub body: String,
    /// JSON array of the owners that deleted it for themselves.
    pub hidden_for: String,
    pub deleted_at: Option<String>,
    pub at: String,
}

const MESSAGE_COLUMNS: &str =
    "message_id, intent_id, kind, author, body, hidden_for, deleted_at, at";

fn message_from_row(r: &Row<'_>) -> rusqlite::Result<MessageRow> {
    Ok(MessageRow {
        message_id: r.get(0)?,
        intent_id: r.get(1)?,
        kind: r.get(2)?,
        author: r.get(3)?,
        body: r.get(4)?,
        hidden_for: r.get(5)?,
        deleted_at: r.get(6)?,
        at: r.get(7)?,
    })
}

pub fn insert_message(conn: &Tx, m: &MessageRow) -> Result<(), Error> {
    conn.prepare_cached(&format!(
        "INSERT INTO thread_messages ({MESSAGE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
    ))?
    .execute(params![
        m.message_id,
        m.intent_id,
        m.kind,
        m.author,
        m.body,
        m.hidden_for,
        m.deleted_at,
        m.at
    ])?;
    Ok(())
}

/// The messages of an intent, oldest first, deleted ones included (the caller filters).
pub fn messages(conn: &Tx, intent_id: &str) -> Result<Vec<MessageRow>, Error> {
    let rows = conn
        .prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM thread_messages WHERE intent_id = ?1 \
             ORDER BY at, message_id"
        ))?
        .query_map([intent_id], message_from_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

pub fn update_message_visibility(conn: &Tx, m: &MessageRow) -> Result<(), Error> {
    conn.prepare_cached(
        "UPDATE thread_messages SET hidden_for = ?2, deleted_at = ?3 WHERE message_id = ?1",
    )?
    .execute(params![m.message_id, m.hidden_for, m.deleted_at])?;
    Ok(())
}
