//! API key management (`/v1/keys`, an extension of the AXME API): creating keys with a role,
//! listing them, revoking them. Only admin keys may manage keys. Every change is committed
//! first, then applied to the in-memory key table ([`Keys`]) before the caller is answered, so a
//! revoked key is refused from the next request on. The last live admin key cannot be revoked:
//! without it nobody could manage keys any more. What an `agent` key may do beyond this is not
//! decided here; its role and agents are recorded for that.

use crate::store::Tx;
use serde_json::Value;

use super::auth::{self, Keys};
use super::validate::{self, Fields};
use crate::clock;
use crate::store::keys::{self, KeyRow};
use crate::store::Store;
use crate::Error;

/// Most agents one key may be bound to.
pub const MAX_AGENTS: usize = 100;

pub use crate::model::KeyRole;

/// A checked `POST /v1/keys` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateKey {
    pub name: String,
    pub role: KeyRole,
    /// Normalized addresses, sorted, without duplicates; empty for admin keys.
    pub agents: Vec<String>,
}

/// A key as its owner may see it: the stored row (whose hash never leaves the server) and the
/// agents it is bound to.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    pub row: KeyRow,
    pub agents: Vec<String>,
}

/// Reads a `POST /v1/keys` body: `{name, role?: admin|agent, agents?: [address]}`.
pub fn create_request(body: &Value) -> Result<CreateKey, Error> {
    let f = Fields::body(body)?;
    f.deny_unknown(&["name", "role", "agents"])?;
    let name = f.str_req("name", 1, 64)?;
    check_name(name)?;
    let role = match f.str_opt("role", 1, 16)? {
        None => KeyRole::Admin,
        Some(r) => {
            KeyRole::parse(r).ok_or_else(|| Error::invalid("role", "must be admin or agent"))?
        }
    };
    let raw = f
        .str_array_opt("agents", (0, MAX_AGENTS), (1, validate::ADDRESS_MAX))?
        .unwrap_or_default();
    let mut agents = raw
        .iter()
        .enumerate()
        .map(|(i, a)| validate::address(&format!("agents[{i}]"), a))
        .collect::<Result<Vec<_>, _>>()?;
    agents.sort();
    agents.dedup();
    match role {
        KeyRole::Agent if agents.is_empty() => {
            return Err(Error::invalid(
                "agents",
                "is required for role agent: name at least one agent address",
            ))
        }
        KeyRole::Admin if !agents.is_empty() => {
            return Err(Error::invalid(
                "agents",
                "is only for role agent (an admin key acts for every agent)",
            ))
        }
        _ => {}
    }
    Ok(CreateKey {
        name: name.to_string(),
        role,
        agents,
    })
}

/// A key's name is also the caller's default agent name (`agent://<name>`), so it is kept to
/// characters that read well in an address.
pub fn check_name(name: &str) -> Result<(), Error> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/');
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) || !name.chars().all(ok_char) {
        return Err(Error::invalid(
            "name",
            "must start with a letter or digit and use only letters, digits, '-', '_', '.', '/'",
        ));
    }
    Ok(())
}

/// Creates a key; returns it with the key itself, which is shown this once.
pub async fn create(
    store: &Store,
    live: &Keys,
    req: CreateKey,
) -> Result<(KeyInfo, String), Error> {
    let (info, secret) = new_key(req)?;
    let stored = info.clone();
    store.write(move |c| insert(c, &stored)).await?;
    live.insert(&info.row, info.agents.clone());
    Ok((info, secret))
}

/// A new key, not yet stored: its record and the key itself. Whoever stores it (with
/// [`insert`]) applies it to the live table after the commit, before answering.
pub fn new_key(req: CreateKey) -> Result<(KeyInfo, String), Error> {
    let secret = auth::generate_key()?;
    let row = KeyRow {
        key_id: uuid::Uuid::new_v4().to_string(),
        key_hash: auth::hash_key(&secret).to_vec(),
        name: req.name,
        role: req.role,
        created_at: clock::now_rfc3339(),
        revoked_at: None,
    };
    Ok((
        KeyInfo {
            row,
            agents: req.agents,
        },
        secret,
    ))
}

/// Stores a new key with its agent bindings.
pub fn insert(conn: &Tx, info: &KeyInfo) -> Result<(), Error> {
    keys::insert(conn, &info.row)?;
    keys::insert_agents(conn, &info.row.key_id, &info.agents)
}

/// Every key, revoked ones included, oldest first.
pub async fn list(store: &Store) -> Result<Vec<KeyInfo>, Error> {
    store.read(list_in).await
}

fn list_in(conn: &Tx) -> Result<Vec<KeyInfo>, Error> {
    let rows = keys::list_all(conn)?;
    let mut by_key = std::collections::HashMap::<String, Vec<String>>::new();
    for (key_id, address) in keys::all_agents(conn)? {
        by_key.entry(key_id).or_default().push(address);
    }
    Ok(rows
        .into_iter()
        .map(|row| KeyInfo {
            agents: by_key.remove(&row.key_id).unwrap_or_default(),
            row,
        })
        .collect())
}

/// Revokes a key. Revoking a revoked key changes nothing and returns it as it is; revoking the
/// last live admin key is 409 `last_admin_key`.
pub async fn revoke(store: &Store, live: &Keys, key_id: String) -> Result<KeyInfo, Error> {
    let id = key_id.clone();
    let info = store
        .write(move |c| {
            let row = keys::get(c, &id)?.ok_or_else(|| Error::NotFound {
                what: "key",
                id: id.clone(),
            })?;
            if row.revoked_at.is_none() {
                if row.role == KeyRole::Admin && keys::count_live_admins(c)? <= 1 {
                    return Err(Error::conflict(
                        "last_admin_key",
                        "this is the last live admin key; create another admin key before revoking it",
                    ));
                }
                keys::revoke(c, &id, &clock::now_rfc3339())?;
            }
            let row = keys::get(c, &id)?.ok_or_else(|| Error::internal("revoked key vanished"))?;
            Ok(KeyInfo {
                agents: keys::agents_of(c, &id)?,
                row,
            })
        })
        .await?;
    live.remove(&key_id);
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::service::testing::field_of;

    #[test]
    fn create_requests_default_to_admin_and_normalize_agents() {
        let r = create_request(&json!({"name": "ci"})).unwrap();
        assert_eq!((r.role, r.agents.len()), (KeyRole::Admin, 0));
        let r = create_request(
            &json!({"name": "w", "role": "agent", "agents": ["b/w", "agent://a/w", "agent://b/w"]}),
        )
        .unwrap();
        assert_eq!(r.agents, vec!["agent://a/w", "agent://b/w"]);
    }

    #[test]
    fn create_requests_name_the_field_they_break() {
        let bad = [
            (json!({}), "name"),
            (json!({"name": ""}), "name"),
            (json!({"name": "has space"}), "name"),
            (json!({"name": "-x"}), "name"),
            (json!({"name": "x", "role": "root"}), "role"),
            (json!({"name": "x", "role": "agent"}), "agents"),
            (
                json!({"name": "x", "role": "agent", "agents": []}),
                "agents",
            ),
            (json!({"name": "x", "agents": ["a/b"]}), "agents"),
            (
                json!({"name": "x", "role": "agent", "agents": ["a/b", "http://x"]}),
                "agents[1]",
            ),
            (json!({"name": "x", "scope": "all"}), "scope"),
        ];
        for (body, field) in bad {
            assert_eq!(
                field_of(create_request(&body).unwrap_err()),
                field,
                "{body}"
            );
        }
    }
}
