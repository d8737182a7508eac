//! API keys: generation, hashing, the first admin key of a new database, and the in-memory
//! table that authenticates every request without touching SQLite. Keys are stored only as
//! SHA-256 hashes (they are 256-bit random strings, so a fast hash is enough); a key is shown
//! once, when created, and never logged.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use base64::Engine;
use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};

use crate::clock;
use crate::model::KeyRole;
use crate::store::{keys, Store};
use crate::Error;

/// Who is calling: the live key that authenticated the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub key_id: String,
    /// The key's name; also the caller's default agent name (`agent://<name>`).
    pub name: String,
    /// What the key may do; `None` for the anonymous caller of a public route.
    pub role: Option<KeyRole>,
    /// The agents an `agent` key acts for (empty for admin keys).
    pub agents: Vec<String>,
}

impl Principal {
    /// The caller of a route open to everyone: no key, no role, no address (it may reach
    /// nothing that `service::access` guards).
    pub fn anonymous() -> Principal {
        Principal {
            key_id: String::new(),
            name: String::new(),
            role: None,
            agents: Vec::new(),
        }
    }

    /// The caller as an agent address: the default `from_agent` of what it sends and the
    /// `actor` of what it does.
    pub fn address(&self) -> String {
        match self.agents.first() {
            Some(a) if !self.is_admin() => a.clone(),
            _ => format!("agent://{}", self.name),
        }
    }

    pub fn is_admin(&self) -> bool {
        self.role == Some(KeyRole::Admin)
    }
}

/// The live keys by hash. Loaded at start; every key change updates it right after its commit
/// and before it is answered (`service::keys`), so a revoked key fails the next request.
#[derive(Default)]
pub struct Keys {
    /// Written by key creation/revocation, read by every request.
    by_hash: RwLock<HashMap<[u8; 32], Arc<Principal>>>,
}

impl Keys {
    /// Loads every live key, with the agents it is bound to, from the store.
    pub async fn load(store: &Store) -> Result<Keys, Error> {
        let (rows, bindings) = store
            .read(|c| Ok((keys::list_live(c)?, keys::all_agents(c)?)))
            .await?;
        let mut agents: HashMap<String, Vec<String>> = HashMap::new();
        for (key_id, address) in bindings {
            agents.entry(key_id).or_default().push(address);
        }
        let keys = Keys::default();
        for r in rows {
            let bound = agents.remove(&r.key_id).unwrap_or_default();
            keys.insert(&r, bound);
        }
        Ok(keys)
    }

    /// Makes a live key usable.
    pub fn insert(&self, r: &keys::KeyRow, agents: Vec<String>) {
        let Ok(hash) = <[u8; 32]>::try_from(r.key_hash.as_slice()) else {
            tracing::warn!(key_id = %r.key_id, "ignoring a stored key with a malformed hash");
            return;
        };
        if let Ok(mut map) = self.by_hash.write() {
            map.insert(
                hash,
                Arc::new(Principal {
                    key_id: r.key_id.clone(),
                    name: r.name.clone(),
                    role: Some(r.role),
                    agents,
                }),
            );
        }
    }

    /// Makes a key unusable from the next request on.
    pub fn remove(&self, key_id: &str) {
        // A poisoned lock still holds a consistent map (nothing panics while holding it), and a
        // revocation must never be skipped.
        let mut map = self
            .by_hash
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.retain(|_, p| p.key_id != key_id);
    }

    /// Whether a key is still live (not revoked): open streams check it.
    pub fn is_live(&self, key_id: &str) -> bool {
        self.by_hash
            .read()
            .map(|m| m.values().any(|p| p.key_id == key_id))
            .unwrap_or(false)
    }

    /// The principal of a presented key, if it is a live key.
    pub fn authenticate(&self, presented: &str) -> Option<Arc<Principal>> {
        let hash = hash_key(presented);
        self.by_hash.read().ok()?.get(&hash).cloned()
    }
}

/// Refuses a caller whose key is not an admin key (403); `action` says what needed one.
pub fn require_admin(principal: &Principal, action: &str) -> Result<(), Error> {
    if principal.is_admin() {
        Ok(())
    } else {
        Err(Error::Forbidden {
            reason: format!("{action} needs an admin key"),
        })
    }
}

/// SHA-256 of a key.
pub fn hash_key(key: &str) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, key.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// 32 bytes from the system's secure random source.
pub fn random_32() -> Result<[u8; 32], Error> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::internal("the system random source failed"))?;
    Ok(bytes)
}

/// A new random key: `axme_` and 32 random bytes in URL-safe base64.
pub fn generate_key() -> Result<String, Error> {
    Ok(format!(
        "axme_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_32()?)
    ))
}

/// A new webhook signing secret: `whsec_` and 32 random bytes in base64 (Standard Webhooks).
pub fn generate_webhook_secret() -> Result<String, Error> {
    Ok(format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(random_32()?)
    ))
}

/// What [`bootstrap`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Bootstrap {
    /// The database already had the given key, or keys and none was given.
    Unchanged,
    /// The given key was stored as an admin key.
    Stored,
    /// A new admin key was generated; it must be shown to the operator now, once.
    Generated(String),
}

/// The shortest operator-chosen admin key, and the fewest different characters it must have.
pub const CHOSEN_KEY_MIN_LEN: usize = 32;
pub const CHOSEN_KEY_MIN_DISTINCT: usize = 16;

/// An operator-chosen key is stored, like every key, as an unsalted SHA-256: enough for
/// generated keys (256 random bits; no guess list reaches them), but a leaked database lets
/// short or patterned keys be guessed offline. So a chosen key must be at least
/// [`CHOSEN_KEY_MIN_LEN`] visible ASCII characters with [`CHOSEN_KEY_MIN_DISTINCT`] different ones.
pub fn check_chosen_key(k: &str) -> Result<(), Error> {
    let visible = k.bytes().all(|b| b.is_ascii_graphic());
    let distinct = k.bytes().collect::<std::collections::HashSet<u8>>().len();
    if !visible || k.len() < CHOSEN_KEY_MIN_LEN || distinct < CHOSEN_KEY_MIN_DISTINCT {
        return Err(Error::invalid(
            "--api-key",
            format!(
                "must be at least {CHOSEN_KEY_MIN_LEN} visible ASCII characters with at least \
                 {CHOSEN_KEY_MIN_DISTINCT} different ones (e.g. axme_ and the output of \
                 `openssl rand -base64 32`); or leave it out and a key is generated"
            ),
        ));
    }
    Ok(())
}

/// Makes sure the database has an admin key: the one given (`--api-key`), stored if it is new,
/// or on a new database without one, a generated key.
pub async fn bootstrap(store: &Store, given: Option<&str>) -> Result<Bootstrap, Error> {
    if let Some(k) = given {
        check_chosen_key(k)?;
    }
    let given = given.map(str::to_string);
    store
        .write(move |conn| {
            let (key, outcome) = match given {
                Some(k) => {
                    let hash = hash_key(&k);
                    // A revoked key stays revoked: naming it again does not bring it back.
                    if let Some(known) = keys::list_all(conn)?
                        .into_iter()
                        .find(|r| r.key_hash == hash)
                    {
                        if let Some(at) = known.revoked_at {
                            tracing::warn!(key_id = %known.key_id, revoked_at = %at,
                                "the --api-key given was revoked; it stays revoked and cannot be used");
                        }
                        return Ok(Bootstrap::Unchanged);
                    }
                    (k, Bootstrap::Stored)
                }
                None if keys::count_all(conn)? > 0 => return Ok(Bootstrap::Unchanged),
                None => {
                    let k = generate_key()?;
                    (k.clone(), Bootstrap::Generated(k))
                }
            };
            keys::insert(
                conn,
                &keys::KeyRow {
                    key_id: uuid::Uuid::new_v4().to_string(),
                    key_hash: hash_key(&key).to_vec(),
                    name: "admin".into(),
                    role: KeyRole::Admin,
                    created_at: clock::now_rfc3339(),
                    revoked_at: None,
                },
            )?;
            Ok(outcome)
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_long_random_and_distinct() {
        let a = generate_key().unwrap();
        let b = generate_key().unwrap();
        assert!(a.starts_with("axme_") && a.len() == 5 + 43, "{a}");
        assert_ne!(a, b);
        assert_ne!(hash_key(&a), hash_key(&b));
    }

    #[test]
    fn a_chosen_key_must_be_long_and_varied() {
        assert!(check_chosen_key(&generate_key().unwrap()).is_ok());
        assert!(check_chosen_key("axme_test_admin_key_0123456789abcdef").is_ok());
        for weak in [
            "adminkey_0123456789abcdef0123",
            &"ab".repeat(20),
            "axme test admin key 0123456789abcdef",
        ] {
            assert!(check_chosen_key(weak).is_err(), "{weak}");
        }
    }
}
