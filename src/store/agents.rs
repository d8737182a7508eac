//! The `agents` table: registered agent addresses and the binding each receives intents through.
//! An address that has no row is a pull agent (stream/poll).

use super::Tx;
use crate::model::DeliveryMode;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};
use rusqlite::ToSql;
use rusqlite::{params, OptionalExtension, Row};

use crate::Error;

impl FromSql for DeliveryMode {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let s = value.as_str()?;
        DeliveryMode::parse(s)
            .ok_or_else(|| FromSqlError::Other(format!("unknown delivery mode {s}").into()))
    }
}

impl ToSql for DeliveryMode {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

/// A registered agent as stored. `webhook_secret` is the signing secret in full: it never leaves
/// the server except in the response that created it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRow {
    pub address: String,
    pub delivery_mode: DeliveryMode,
    pub display_name: Option<String>,
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<String>,
    pub lease_seconds: Option<i64>,
    pub max_delivery_attempts: Option<i64>,
    pub created_at: String,
    pub updated_at: String,
    /// Set when the agent's webhook answered `410 Gone`: no more pushes until it re-registers.
    pub disabled_at: Option<String>,
    /// The secret before the last rotation, still signing (beside the new one) until
    /// `previous_secret_until`, so receivers can switch without rejecting pushes.
    pub previous_secret: Option<String>,
    pub previous_secret_until: Option<String>,
}

const COLUMNS: &str = "address, delivery_mode, display_name, webhook_url, webhook_secret, \
    lease_seconds, max_delivery_attempts, created_at, updated_at, disabled_at, previous_secret, \
    previous_secret_until";

fn from_row(r: &Row<'_>) -> rusqlite::Result<AgentRow> {
    Ok(AgentRow {
        address: r.get(0)?,
        delivery_mode: r.get(1)?,
        display_name: r.get(2)?,
        webhook_url: r.get(3)?,
        webhook_secret: r.get(4)?,
        lease_seconds: r.get(5)?,
        max_delivery_attempts: r.get(6)?,
        created_at: r.get(7)?,
        updated_at: r.get(8)?,
        disabled_at: r.get(9)?,
        previous_secret: r.get(10)?,
        previous_secret_until: r.get(11)?,
    })
}

/// Inserts or replaces an agent by address, keeping its original `created_at`.
pub fn upsert(conn: &Tx, a: &AgentRow) -> Result<(), Error> {
    conn.prepare_cached(&format!(
        "INSERT INTO agents ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
         ON CONFLICT (address) DO UPDATE SET delivery_mode = excluded.delivery_mode, \
         display_name = excluded.display_name, webhook_url = excluded.webhook_url, \
         webhook_secret = excluded.webhook_secret, lease_seconds = excluded.lease_seconds, \
         max_delivery_attempts = excluded.max_delivery_attempts, updated_at = excluded.updated_at, \
         disabled_at = excluded.disabled_at, previous_secret = excluded.previous_secret, \
         previous_secret_until = excluded.previous_secret_until"
    ))?
    .execute(params![
        a.address,
        a.delivery_mode,
        a.display_name,
        a.webhook_url,
        a.webhook_secret,
        a.lease_seconds,
        a.max_delivery_attempts,
        a.created_at,
        a.updated_at,
        a.disabled_at,
        a.previous_secret,
        a.previous_secret_until
    ])?;
    Ok(())
}

/// Marks an agent's webhook disabled (it answered `410 Gone`).
pub fn disable(conn: &Tx, address: &str, at: &str) -> Result<(), Error> {
    conn.prepare_cached("UPDATE agents SET disabled_at = ?2 WHERE address = ?1")?
        .execute(params![address, at])?;
    Ok(())
}

pub fn get(conn: &Tx, address: &str) -> Result<Option<AgentRow>, Error> {
    Ok(conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM agents WHERE address = ?1"))?
        .query_row([address], from_row)
        .optional()?)
}

/// Every registered agent, by address.
pub fn list(conn: &Tx) -> Result<Vec<AgentRow>, Error> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {COLUMNS} FROM agents ORDER BY address"))?;
    let rows = stmt
        .query_map([], from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Deletes an agent; returns whether it existed.
pub fn delete(conn: &Tx, address: &str) -> Result<bool, Error> {
    Ok(conn
        .prepare_cached("DELETE FROM agents WHERE address = ?1")?
        .execute([address])?
        == 1)
}
