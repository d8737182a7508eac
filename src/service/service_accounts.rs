//! Service accounts (`/v1/service-accounts`), AXME's agent identities, on top of the registry
//! and the keys: a service account is the agent `agent://<name>` with keys of its own. Its keys
//! are agent-role keys bound to that one address, so what they reach is what `access` lets an
//! agent key reach. Only admin keys create, delete or mint keys; an agent key sees the accounts
//! of its own addresses.
//!
//! The server has one organization and one workspace: `org_id` and `workspace_id` are kept as
//! sent (or [`DEFAULT_SCOPE`]) and shown back, but never filter anything.

use serde_json::Value;

use super::access::Access;
use super::auth::Keys;
use super::keys::{self, CreateKey, KeyInfo, KeyRole};
use super::validate::{self, Fields};
use crate::clock;
use crate::store::service_accounts::{self, ServiceAccountRow};
use crate::store::{agents, keys as stored_keys, Store, Tx};
use crate::Error;

/// The `org_id` and `workspace_id` of an account created without them.
pub const DEFAULT_SCOPE: &str = "00000000-0000-0000-0000-000000000000";

/// A checked `POST /v1/service-accounts` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateAccount {
    pub name: String,
    pub description: Option<String>,
    pub display_name: Option<String>,
    pub org_id: String,
    pub workspace_id: String,
    pub created_by_actor_id: Option<String>,
}

/// Reads `{name, org_id?, workspace_id?, description?, display_name?, created_by_actor_id?}`.
/// The name becomes the address (`agent://<name>`), so it keeps to the characters of a key name.
pub fn create_request(body: &Value) -> Result<CreateAccount, Error> {
    let f = Fields::body(body)?;
    f.deny_unknown(&[
        "name",
        "org_id",
        "workspace_id",
        "description",
        "display_name",
        "created_by_actor_id",
    ])?;
    let name = f.str_req("name", 2, 120)?;
    keys::check_name(name)?;
    let scope = |field: &str| -> Result<String, Error> {
        Ok(match f.str_opt(field, 1, 64)? {
            Some(id) => validate::uuid(field, id)?,
            None => DEFAULT_SCOPE.to_string(),
        })
    };
    Ok(CreateAccount {
        name: name.to_string(),
        description: f.str_opt("description", 0, 1024)?.map(str::to_string),
        display_name: f.str_opt("display_name", 0, 255)?.map(str::to_string),
        org_id: scope("org_id")?,
        workspace_id: scope("workspace_id")?,
        created_by_actor_id: f
            .str_opt("created_by_actor_id", 1, 255)?
            .map(str::to_string),
    })
}

/// Reads a `POST /v1/service-accounts/{id}/keys` body: `{created_by_actor_id?, expires_at?}`.
/// Keys here do not expire (they are revoked), so an expiry is refused rather than ignored.
pub fn key_request(body: &Value) -> Result<(), Error> {
    let f = Fields::body(body)?;
    f.deny_unknown(&["created_by_actor_id", "expires_at"])?;
    f.str_opt("created_by_actor_id", 1, 255)?;
    if f.has("expires_at") {
        return Err(Error::invalid(
            "expires_at",
            "keys do not expire on this server; revoke a key to end it",
        ));
    }
    Ok(())
}

/// Creates a service account; 409 `service_account_exists` when its name is taken.
pub fn create(conn: &Tx, req: CreateAccount, caller: &str) -> Result<ServiceAccountRow, Error> {
    let address = validate::address("name", &req.name)?;
    if service_accounts::get_by_address(conn, &address)?.is_some() {
        return Err(Error::conflict(
            "service_account_exists",
            format!("a service account named {:?} exists already", req.name),
        ));
    }
    let now = clock::now_rfc3339();
    let row = ServiceAccountRow {
        service_account_id: format!("sa_{}", uuid::Uuid::new_v4().simple()),
        name: req.name,
        address,
        description: req.description,
        display_name: req.display_name,
        org_id: req.org_id,
        workspace_id: req.workspace_id,
        created_by_actor_id: req
            .created_by_actor_id
            .unwrap_or_else(|| caller.to_string()),
        created_at: now.clone(),
        updated_at: now,
    };
    service_accounts::insert(conn, &row)?;
    Ok(row)
}

fn not_found(id: &str) -> Error {
    Error::NotFound {
        what: "service_account",
        id: id.to_string(),
    }
}

/// One account, if the caller may see it (404 otherwise, as if it did not exist).
pub async fn get(store: &Store, access: &Access, id: &str) -> Result<ServiceAccountRow, Error> {
    let (access, id) = (access.clone(), id.to_string());
    store.read(move |c| get_in(c, &access, &id)).await
}

fn get_in(conn: &Tx, access: &Access, id: &str) -> Result<ServiceAccountRow, Error> {
    match service_accounts::get(conn, id)? {
        Some(a) if access.owns(&a.address) => Ok(a),
        _ => Err(not_found(id)),
    }
}

/// The accounts the caller may see, by name.
pub async fn list(store: &Store, access: &Access) -> Result<Vec<ServiceAccountRow>, Error> {
    let access = access.clone();
    store.read(move |c| list_in(c, &access)).await
}

fn list_in(conn: &Tx, access: &Access) -> Result<Vec<ServiceAccountRow>, Error> {
    let mut rows = service_accounts::list(conn)?;
    rows.retain(|a| access.owns(&a.address));
    Ok(rows)
}

/// The account of an agent address, if it has one.
pub fn of_address(conn: &Tx, address: &str) -> Result<Option<ServiceAccountRow>, Error> {
    service_accounts::get_by_address(conn, address)
}

/// A deleted account and the keys its deletion revoked.
#[derive(Debug, Clone)]
pub struct Deleted {
    pub account: ServiceAccountRow,
    pub revoked_keys: Vec<String>,
}

/// Deletes an account: its own keys (bound to its address alone) are revoked, its registry
/// entry retired; intents already addressed to it stay. The revoked keys leave the live table
/// after the commit, before this returns.
pub async fn delete(store: &Store, live: &Keys, id: &str) -> Result<Deleted, Error> {
    let id = id.to_string();
    let deleted = store.write(move |c| delete_in(c, &id)).await?;
    for key_id in &deleted.revoked_keys {
        live.remove(key_id);
    }
    Ok(deleted)
}

fn delete_in(conn: &Tx, id: &str) -> Result<Deleted, Error> {
    let account = service_accounts::get(conn, id)?.ok_or_else(|| not_found(id))?;
    let revoked_keys = service_accounts::live_keys_of(conn, &account.address)?;
    let now = clock::now_rfc3339();
    for key_id in &revoked_keys {
        stored_keys::revoke(conn, key_id, &now)?;
    }
    agents::delete(conn, &account.address)?;
    service_accounts::delete(conn, id)?;
    Ok(Deleted {
        account,
        revoked_keys,
    })
}

/// Mints a key of an account the caller may see: an agent-role key bound to the account's
/// address alone, stored, then live; returned with the account and the key itself (shown once).
pub async fn mint_key(
    store: &Store,
    live: &Keys,
    access: &Access,
    id: &str,
) -> Result<(ServiceAccountRow, KeyInfo, String), Error> {
    let account = get(store, access, id).await?;
    let (key, token) = new_key(&account)?;
    let (stored, id) = (key.clone(), id.to_string());
    store.write(move |c| store_key(c, &id, &stored)).await?;
    live.insert(&key.row, key.agents.clone());
    Ok((account, key, token))
}

/// A new key of an account, not yet stored (see [`store_key`]): an agent-role key bound to
/// the account's address, named after the account.
fn new_key(account: &ServiceAccountRow) -> Result<(KeyInfo, String), Error> {
    keys::new_key(CreateKey {
        name: account.name.clone(),
        role: KeyRole::Agent,
        agents: vec![account.address.clone()],
    })
}

/// Stores a key made by [`new_key`], if its account still exists.
fn store_key(conn: &Tx, id: &str, key: &KeyInfo) -> Result<(), Error> {
    let account = service_accounts::get(conn, id)?.ok_or_else(|| not_found(id))?;
    if key.agents != [account.address] {
        return Err(Error::internal(
            "a service account key bound to another agent",
        ));
    }
    keys::insert(conn, key)
}

/// Revokes one key of an account; a key that is not the account's is 404. Revoking a revoked
/// key changes nothing. Returns the key as it is after, once it left the live table.
pub async fn revoke_key(
    store: &Store,
    live: &Keys,
    id: &str,
    key_id: &str,
) -> Result<KeyInfo, Error> {
    let (id, revoke) = (id.to_string(), key_id.to_string());
    let key = store.write(move |c| revoke_key_in(c, &id, &revoke)).await?;
    live.remove(key_id);
    Ok(key)
}

fn revoke_key_in(conn: &Tx, id: &str, key_id: &str) -> Result<KeyInfo, Error> {
    let account = service_accounts::get(conn, id)?.ok_or_else(|| not_found(id))?;
    let missing = || Error::NotFound {
        what: "key",
        id: key_id.to_string(),
    };
    let row = stored_keys::get(conn, key_id)?.ok_or_else(missing)?;
    let agents = stored_keys::agents_of(conn, key_id)?;
    if agents != [account.address] {
        return Err(missing());
    }
    if row.revoked_at.is_none() {
        stored_keys::revoke(conn, key_id, &clock::now_rfc3339())?;
    }
    let row = stored_keys::get(conn, key_id)?.ok_or_else(missing)?;
    Ok(KeyInfo { row, agents })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::service::testing::field_of;

    #[test]
    fn a_create_request_names_the_field_it_breaks() {
        let ok = create_request(&json!({"name": "checker"})).unwrap();
        assert_eq!(
            (ok.org_id.as_str(), ok.name.as_str()),
            (DEFAULT_SCOPE, "checker")
        );
        for (body, field) in [
            (json!({}), "name"),
            (json!({"name": "x"}), "name"),
            (json!({"name": "has space"}), "name"),
            (json!({"name": "ok", "org_id": "acme"}), "org_id"),
            (json!({"name": "ok", "workspace_id": 5}), "workspace_id"),
            (
                json!({"name": "ok", "description": "d".repeat(1025)}),
                "description",
            ),
            (json!({"name": "ok", "role": "admin"}), "role"),
        ] {
            assert_eq!(
                field_of(create_request(&body).unwrap_err()),
                field,
                "{body}"
            );
        }
    }

    #[test]
    fn a_key_request_refuses_an_expiry() {
        assert!(key_request(&json!({})).is_ok());
        assert!(key_request(&json!({"created_by_actor_id": "me"})).is_ok());
        assert_eq!(
            field_of(key_request(&json!({"expires_at": "2030-01-01T00:00:00Z"})).unwrap_err()),
            "expires_at"
        );
    }
}
