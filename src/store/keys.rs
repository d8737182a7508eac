//! The `api_keys` table and `api_key_agents` (the agents an agent-role key is bound to). Only
//! SHA-256 hashes of keys are stored; a key itself is shown once, when it is created, and never
//! written anywhere.

use super::Tx;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};
use rusqlite::{params, Row, ToSql};

use crate::model::KeyRole;
use crate::Error;

impl FromSql for KeyRole {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let s = value.as_str()?;
        KeyRole::parse(s).ok_or_else(|| FromSqlError::Other(format!("unknown key role {s}").into()))
    }
}

impl ToSql for KeyRole {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

/// A key as stored (its hash, never the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    pub key_id: String,
    pub key_hash: Vec<u8>,
    pub name: String,
    pub role: KeyRole,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<KeyRow> {
    Ok(KeyRow {
        key_id: r.get(0)?,
        key_hash: r.get(1)?,
        name: r.get(2)?,
        role: r.get(3)?,
        created_at: r.get(4)?,
        revoked_at: r.get(5)?,
    })
}

pub fn insert(conn: &Tx, k: &KeyRow) -> Result<(), Error> {
    conn.prepare_cached(
        "INSERT INTO api_keys (key_id, key_hash, name, role, created_at, revoked_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        k.key_id,
        k.key_hash,
        k.name,
        k.role,
        k.created_at,
        k.revoked_at
    ])?;
    Ok(())
}

const COLUMNS: &str = "key_id, key_hash, name, role, created_at, revoked_at";

/// Every key that has not been revoked.
pub fn list_live(conn: &Tx) -> Result<Vec<KeyRow>, Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT key_id, key_hash, name, role, created_at, revoked_at FROM api_keys \
         WHERE revoked_at IS NULL ORDER BY created_at",
    )?;
    let rows = stmt
        .query_map([], from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// How many keys exist at all, revoked ones included (zero only on a new database).
pub fn count_all(conn: &Tx) -> Result<i64, Error> {
    Ok(conn
        .prepare_cached("SELECT COUNT(*) FROM api_keys")?
        .query_row([], |r| r.get(0))?)
}

/// Every key, revoked ones included, oldest first.
pub fn list_all(conn: &Tx) -> Result<Vec<KeyRow>, Error> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM api_keys ORDER BY created_at, key_id"
    ))?;
    let rows = stmt
        .query_map([], from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// One key by id, if it exists.
pub fn get(conn: &Tx, key_id: &str) -> Result<Option<KeyRow>, Error> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {COLUMNS} FROM api_keys WHERE key_id = ?1"))?;
    let mut rows = stmt.query_map([key_id], from_row)?;
    Ok(rows.next().transpose()?)
}

/// Marks a live key revoked at `at`; returns whether it was live.
pub fn revoke(conn: &Tx, key_id: &str, at: &str) -> Result<bool, Error> {
    let n = conn
        .prepare_cached(
            "UPDATE api_keys SET revoked_at = ?2 WHERE key_id = ?1 AND revoked_at IS NULL",
        )?
        .execute(params![key_id, at])?;
    Ok(n == 1)
}

/// How many live keys have the `admin` role.
pub fn count_live_admins(conn: &Tx) -> Result<i64, Error> {
    Ok(conn
        .prepare_cached(
            "SELECT COUNT(*) FROM api_keys WHERE role = 'admin' AND revoked_at IS NULL",
        )?
        .query_row([], |r| r.get(0))?)
}

/// Binds a key to the agents it acts for.
pub fn insert_agents(conn: &Tx, key_id: &str, addresses: &[String]) -> Result<(), Error> {
    let mut stmt = conn
        .prepare_cached("INSERT OR IGNORE INTO api_key_agents (key_id, address) VALUES (?1, ?2)")?;
    for a in addresses {
        stmt.execute(params![key_id, a])?;
    }
    Ok(())
}

/// Every key's agents, as `(key_id, address)` pairs ordered by key and address.
pub fn all_agents(conn: &Tx) -> Result<Vec<(String, String)>, Error> {
    let mut stmt =
        conn.prepare_cached("SELECT key_id, address FROM api_key_agents ORDER BY key_id, address")?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// One key's agents, ordered by address.
pub fn agents_of(conn: &Tx, key_id: &str) -> Result<Vec<String>, Error> {
    let mut stmt = conn
        .prepare_cached("SELECT address FROM api_key_agents WHERE key_id = ?1 ORDER BY address")?;
    let rows = stmt
        .query_map([key_id], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}
