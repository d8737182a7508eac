//! The `payload_schemas` table: one JSON Schema per semantic type (an intent type), and the
//! payloads of stored intents of a type, read when a `backward` schema must keep accepting them.

use super::Tx;
use rusqlite::{params, OptionalExtension, Row};

use crate::Error;

/// A payload schema as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaRow {
    pub semantic_type: String,
    /// The schema as JSON text, as it was sent.
    pub schema_json: String,
    /// 64 hex digits: SHA-256 of the schema's canonical JSON.
    pub schema_hash: String,
    pub schema_ref: String,
    /// `strict`, `backward` or `warn`.
    pub compatibility_mode: String,
    /// `tenant` or `core`.
    pub scope: String,
    pub owner_agent: Option<String>,
    pub active: bool,
    pub created_at: String,
    pub updated_at: String,
}

const COLUMNS: &str = "semantic_type, schema_json, schema_hash, schema_ref, compatibility_mode, \
                       scope, owner_agent, active, created_at, updated_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<SchemaRow> {
    Ok(SchemaRow {
        semantic_type: r.get(0)?,
        schema_json: r.get(1)?,
        schema_hash: r.get(2)?,
        schema_ref: r.get(3)?,
        compatibility_mode: r.get(4)?,
        scope: r.get(5)?,
        owner_agent: r.get(6)?,
        active: r.get(7)?,
        created_at: r.get(8)?,
        updated_at: r.get(9)?,
    })
}

pub fn get(conn: &Tx, semantic_type: &str) -> Result<Option<SchemaRow>, Error> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM payload_schemas WHERE semantic_type = ?1"
        ))?
        .query_row([semantic_type], from_row)
        .optional()?)
}

/// Inserts the schema or replaces every field of it but `created_at`.
pub fn upsert(conn: &Tx, s: &SchemaRow) -> Result<(), Error> {
    conn.prepare_cached(&format!(
        "INSERT INTO payload_schemas ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
         ON CONFLICT (semantic_type) DO UPDATE SET schema_json = excluded.schema_json, \
         schema_hash = excluded.schema_hash, schema_ref = excluded.schema_ref, \
         compatibility_mode = excluded.compatibility_mode, scope = excluded.scope, \
         owner_agent = excluded.owner_agent, active = excluded.active, \
         updated_at = excluded.updated_at"
    ))?
    .execute(params![
        s.semantic_type,
        s.schema_json,
        s.schema_hash,
        s.schema_ref,
        s.compatibility_mode,
        s.scope,
        s.owner_agent,
        s.active,
        s.created_at,
        s.updated_at
    ])?;
    Ok(())
}

/// The newest `limit` payloads of intents of `intent_type`, as `(intent_id, payload JSON)`.
pub fn payloads_of_type(
    conn: &Tx,
    intent_type: &str,
    limit: usize,
) -> Result<Vec<(String, String)>, Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT intent_id, payload FROM intents WHERE intent_type = ?1 ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = stmt
        .query_map(params![intent_type, limit as i64], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}
