//! The `leases` table: inbox claims. A lease locks one intent to one claim until it expires;
//! the intent's `available_at_ms` says when a nacked intent may be claimed again.

use super::Tx;
use rusqlite::{params, OptionalExtension, Row};

use crate::Error;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    pub lease_token: String,
    pub intent_id: String,
    pub agent_address: String,
    pub attempt: i64,
    pub expires_at_ms: i64,
    /// `active`, `acked`, `nacked`, `expired` or `superseded`.
    pub state: String,
    pub created_at: String,
}

const COLUMNS: &str =
    "lease_token, intent_id, agent_address, attempt, expires_at_ms, state, created_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<LeaseRow> {
    Ok(LeaseRow {
        lease_token: r.get(0)?,
        intent_id: r.get(1)?,
        agent_address: r.get(2)?,
        attempt: r.get(3)?,
        expires_at_ms: r.get(4)?,
        state: r.get(5)?,
        created_at: r.get(6)?,
    })
}

pub fn insert(conn: &Tx, l: &LeaseRow) -> Result<(), Error> {
    conn.prepare_cached(&format!(
        "INSERT INTO leases ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
    ))?
    .execute(params![
        l.lease_token,
        l.intent_id,
        l.agent_address,
        l.attempt,
        l.expires_at_ms,
        l.state,
        l.created_at
    ])?;
    Ok(())
}

pub fn get(conn: &Tx, token: &str) -> Result<Option<LeaseRow>, Error> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM leases WHERE lease_token = ?1"
        ))?
        .query_row([token], from_row)
        .optional()?)
}

pub fn set_state(conn: &Tx, token: &str, state: &str, expires_at_ms: i64) -> Result<(), Error> {
    conn.prepare_cached("UPDATE leases SET state = ?2, expires_at_ms = ?3 WHERE lease_token = ?1")?
        .execute(params![token, state, expires_at_ms])?;
    Ok(())
}

/// Active leases that expired at `now_ms`, oldest first.
pub fn expired(conn: &Tx, now_ms: i64, limit: usize) -> Result<Vec<LeaseRow>, Error> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM leases WHERE state = 'active' AND expires_at_ms <= ?1 \
         ORDER BY expires_at_ms LIMIT ?2"
    ))?;
    let rows = stmt
        .query_map(params![now_ms, limit as i64], from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// When the next active lease expires (Unix ms), if any.
pub fn next_expiry_ms(conn: &Tx) -> Result<Option<i64>, Error> {
    Ok(conn
        .prepare_cached("SELECT MIN(expires_at_ms) FROM leases WHERE state = 'active'")?
        .query_row([], |r| r.get(0))?)
}

/// Moves every active lease's expiry by `by_ms` (a step of the system clock; see
/// `runtime::jumps`). Returns how many moved.
pub fn shift_active(conn: &Tx, by_ms: i64) -> Result<usize, Error> {
    Ok(conn
        .prepare_cached(
            "UPDATE leases SET expires_at_ms = expires_at_ms + ?1 WHERE state = 'active'",
        )?
        .execute([by_ms])?)
}

/// Moves the nack delays still running at `now_ms` by `by_ms` (see [`shift_active`]).
pub fn shift_held_back(conn: &Tx, by_ms: i64, now_ms: i64) -> Result<usize, Error> {
    Ok(conn
        .prepare_cached(
            "UPDATE intents SET available_at_ms = available_at_ms + ?1 \
             WHERE status = 'SUBMITTED' AND available_at_ms > ?2",
        )?
        .execute(params![by_ms, now_ms])?)
}

/// Intents of `agent` that can be claimed at `now_ms`: SUBMITTED and not held back by a nack
/// delay, oldest first.
pub fn claimable(conn: &Tx, agent: &str, now_ms: i64, limit: usize) -> Result<Vec<String>, Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT intent_id FROM intents WHERE to_agent = ?1 AND status = 'SUBMITTED' \
         AND (available_at_ms IS NULL OR available_at_ms <= ?2) ORDER BY id LIMIT ?3",
    )?;
    let rows = stmt
        .query_map(params![agent, now_ms, limit as i64], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(rows)
}

/// The same as [`claimable`], leaving out the intents sent by the addresses in `except` (a JSON
/// array of strings), each with its sender: what a handler that shares its calls among senders
/// claims.
pub fn claimable_except(
    conn: &Tx,
    agent: &str,
    now_ms: i64,
    limit: usize,
    except: &str,
) -> Result<Vec<(String, String)>, Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT intent_id, from_agent FROM intents WHERE to_agent = ?1 AND status = 'SUBMITTED' \
         AND (available_at_ms IS NULL OR available_at_ms <= ?2) \
         AND from_agent NOT IN (SELECT value FROM json_each(?4)) ORDER BY id LIMIT ?3",
    )?;
    let rows = stmt
        .query_map(params![agent, now_ms, limit as i64, except], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Holds a nacked intent back from claims until `at_ms`.
pub fn set_available_at(conn: &Tx, intent_id: &str, at_ms: Option<i64>) -> Result<(), Error> {
    conn.prepare_cached("UPDATE intents SET available_at_ms = ?2 WHERE intent_id = ?1")?
        .execute(params![intent_id, at_ms])?;
    Ok(())
}

/// The earliest time a nacked intent of `agent` becomes claimable again, after `now_ms`.
pub fn next_available_ms(conn: &Tx, agent: &str, now_ms: i64) -> Result<Option<i64>, Error> {
    Ok(conn
        .prepare_cached(
            "SELECT MIN(available_at_ms) FROM intents WHERE to_agent = ?1 AND status = 'SUBMITTED' \
             AND available_at_ms > ?2",
        )?
        .query_row(params![agent, now_ms], |r| r.get(0))?)
}
