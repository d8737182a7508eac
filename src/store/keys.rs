//! The `api_keys` table. Only SHA-256 hashes of keys are stored; a key itself is shown once,
//! when it is created, and never written anywhere.

use rusqlite::{params, Connection, Row};

use crate::Error;

/// A key as stored (its hash, never the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    pub key_id: String,
    pub key_hash: Vec<u8>,
    pub name: String,
    /// `admin` (the only role so far).
    pub role: String,
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

pub fn insert(conn: &Connection, k: &KeyRow) -> Result<(), Error> {
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

/// Every key that has not been revoked.
pub fn list_live(conn: &Connection) -> Result<Vec<KeyRow>, Error> {
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
pub fn count_all(conn: &Connection) -> Result<i64, Error> {
    Ok(conn
        .prepare_cached("SELECT COUNT(*) FROM api_keys")?
        .query_row([], |r| r.get(0))?)
}
