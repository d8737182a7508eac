//! The `service_accounts` table: AXME's agent identities. A service account names one agent
//! address; its keys are ordinary agent-role keys bound to that address (`api_key_agents`).

use super::Tx;
use rusqlite::{params, OptionalExtension, Row};

use crate::Error;

/// A service account as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccountRow {
    pub service_account_id: String,
    pub name: String,
    /// The agent it is: `agent://<name>`.
    pub address: String,
    pub description: Option<String>,
    pub display_name: Option<String>,
    pub org_id: String,
    pub workspace_id: String,
    pub created_by_actor_id: String,
    pub created_at: String,
    pub updated_at: String,
}

const COLUMNS: &str = "service_account_id, name, address, description, display_name, org_id, \
    workspace_id, created_by_actor_id, created_at, updated_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<ServiceAccountRow> {
    Ok(ServiceAccountRow {
        service_account_id: r.get(0)?,
        name: r.get(1)?,
        address: r.get(2)?,
        description: r.get(3)?,
        display_name: r.get(4)?,
        org_id: r.get(5)?,
        workspace_id: r.get(6)?,
        created_by_actor_id: r.get(7)?,
        created_at: r.get(8)?,
        updated_at: r.get(9)?,
    })
}

pub fn insert(conn: &Tx, a: &ServiceAccountRow) -> Result<(), Error> {
    conn.prepare_cached(&format!(
        "INSERT INTO service_accounts ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
    ))?
    .execute(params![
        a.service_account_id,
        a.name,
        a.address,
        a.description,
        a.display_name,
        a.org_id,
        a.workspace_id,
        a.created_by_actor_id,
        a.created_at,
        a.updated_at
    ])?;
    Ok(())
}

pub fn get(conn: &Tx, id: &str) -> Result<Option<ServiceAccountRow>, Error> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM service_accounts WHERE service_account_id = ?1"
        ))?
        .query_row([id], from_row)
        .optional()?)
}

pub fn get_by_address(conn: &Tx, address: &str) -> Result<Option<ServiceAccountRow>, Error> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM service_accounts WHERE address = ?1"
        ))?
        .query_row([address], from_row)
        .optional()?)
}

/// Every service account, by name.
pub fn list(conn: &Tx) -> Result<Vec<ServiceAccountRow>, Error> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM service_accounts ORDER BY name"
    ))?;
    let rows = stmt
        .query_map([], from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Deletes a service account; returns whether it existed.
pub fn delete(conn: &Tx, id: &str) -> Result<bool, Error> {
    Ok(conn
        .prepare_cached("DELETE FROM service_accounts WHERE service_account_id = ?1")?
        .execute([id])?
        == 1)
}

/// The live keys bound to `address` and to nothing else: the keys of its service account.
pub fn live_keys_of(conn: &Tx, address: &str) -> Result<Vec<String>, Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT k.key_id FROM api_keys k JOIN api_key_agents a ON a.key_id = k.key_id \
         WHERE a.address = ?1 AND k.revoked_at IS NULL \
         AND NOT EXISTS (SELECT 1 FROM api_key_agents o WHERE o.key_id = k.key_id \
         AND o.address <> ?1) ORDER BY k.created_at, k.key_id",
    )?;
    let rows = stmt
        .query_map([address], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}
