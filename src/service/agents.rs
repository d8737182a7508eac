//! The agent registry: which binding each address receives its intents through. Registering is
//! an upsert by address; an address never registered behaves as a pull (stream/poll) agent. The
//! registry shows service accounts (`service_accounts`) as agents too: registered or not, each
//! is the agent of its address.

use crate::store::{Store, Tx};
use base64::Engine;
use serde_json::Value;

use super::access::Access;
use super::auth;
use super::validate::{self, Fields};
use crate::clock;
use crate::store::agents::{self, AgentRow};
use crate::store::service_accounts::{self, ServiceAccountRow};
use crate::Error;

pub use crate::model::DeliveryMode;

/// A checked `POST /v1/agents` body.
#[derive(Debug, Clone)]
pub struct RegisterAgent {
    pub address: String,
    pub mode: DeliveryMode,
    pub display_name: Option<String>,
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<String>,
    pub lease_seconds: Option<i64>,
    pub max_delivery_attempts: Option<i64>,
}

pub fn register_request(body: &Value) -> Result<RegisterAgent, Error> {
    let f = Fields::body(body)?;
    f.deny_unknown(&[
        "address",
        "delivery_mode",
        "display_name",
        "webhook_url",
        "callback_url",
        "webhook_secret",
        "lease_seconds",
        "max_delivery_attempts",
    ])?;
    let address = f.address_req("address")?;
    let mode = DeliveryMode::parse(f.str_req("delivery_mode", 1, 16)?).ok_or_else(|| {
        Error::invalid(
            "delivery_mode",
            "must be one of stream, poll, http (or push), inbox, internal",
        )
    })?;
    // AXME's agents register a `callback_url`: the same thing.
    let webhook_url = f.str_opt("webhook_url", 1, 2048)?.map(str::to_string);
    if let Some(url) = &webhook_url {
        check_url("webhook_url", url)?;
    }
    let callback_url = f.str_opt("callback_url", 1, 2048)?.map(str::to_string);
    if let Some(url) = &callback_url {
        check_url("callback_url", url)?;
        if webhook_url.as_ref().is_some_and(|w| w != url) {
            return Err(Error::invalid(
                "callback_url",
                "names another URL than webhook_url; send one of them",
            ));
        }
    }
    let webhook_url = webhook_url.or(callback_url);
    if mode == DeliveryMode::Http && webhook_url.is_none() {
        return Err(Error::invalid(
            "webhook_url",
            "is required when delivery_mode is http (or its synonym callback_url)",
        ));
    }
    let webhook_secret = f.str_opt("webhook_secret", 1, 256)?.map(str::to_string);
    if let Some(secret) = &webhook_secret {
        check_webhook_secret(secret)?;
    }
    Ok(RegisterAgent {
        address,
        mode,
        display_name: f.str_opt("display_name", 1, 255)?.map(str::to_string),
        webhook_url,
        webhook_secret,
        lease_seconds: f.int_opt("lease_seconds", 1, 43_200)?,
        max_delivery_attempts: f.int_opt("max_delivery_attempts", 1, 1000)?,
    })
}

/// Checks a webhook URL: http or https, a host, no spaces.
pub fn check_url(field: &str, url: &str) -> Result<(), Error> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| Error::invalid(field, "must be an http:// or https:// URL"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::invalid(
            field,
            "must name a host and contain no spaces",
        ));
    }
    Ok(())
}

/// A Standard Webhooks secret: `whsec_` and the base64 of 24 to 64 bytes.
fn check_webhook_secret(secret: &str) -> Result<(), Error> {
    let decoded = secret
        .strip_prefix("whsec_")
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok());
    match decoded {
        Some(bytes) if (24..=64).contains(&bytes.len()) => Ok(()),
        _ => Err(Error::invalid(
            "webhook_secret",
            "must be whsec_ followed by the base64 of 24 to 64 random bytes",
        )),
    }
}

/// Registers or updates an agent. An http agent without a secret keeps the one it had, or gets
/// a generated one, returned here in full and never again.
pub fn register(conn: &Tx, req: RegisterAgent) -> Result<(AgentRow, Option<String>), Error> {
    let existing = agents::get(conn, &req.address)?;
    let now = clock::now_rfc3339();
    let mut generated = None;
    let webhook_secret = match (req.webhook_secret, req.mode) {
        (Some(s), _) => Some(s),
        (None, mode) => match existing.as_ref().and_then(|a| a.webhook_secret.clone()) {
            Some(kept) => Some(kept),
            None if mode == DeliveryMode::Http => {
                let s = auth::generate_webhook_secret()?;
                generated = Some(s.clone());
                Some(s)
            }
            None => None,
        },
    };
    let (previous_secret, previous_secret_until) = rotated(
        existing.as_ref().and_then(|a| {
            a.webhook_secret.clone().map(|s| {
                (
                    s,
                    a.previous_secret.clone(),
                    a.previous_secret_until.clone(),
                )
            })
        }),
        webhook_secret.as_deref(),
    );
    let row = AgentRow {
        address: req.address,
        delivery_mode: req.mode,
        display_name: req.display_name,
        webhook_url: req.webhook_url,
        webhook_secret,
        lease_seconds: req.lease_seconds,
        max_delivery_attempts: req.max_delivery_attempts,
        created_at: existing.map_or_else(|| now.clone(), |a| a.created_at),
        updated_at: now,
        // Registering again re-enables a webhook that answered 410 Gone.
        disabled_at: None,
        previous_secret,
        previous_secret_until,
    };
    agents::upsert(conn, &row)?;
    Ok((row, generated))
}

/// How long a replaced signing secret keeps signing beside the new one.
pub const SECRET_GRACE: time::Duration = time::Duration::hours(24);

/// The previous secret after a change from `old` (with its own previous one) to `new`: the old
/// secret for [`SECRET_GRACE`] if it changed, else whatever grace was running.
pub fn rotated(
    old: Option<(String, Option<String>, Option<String>)>,
    new: Option<&str>,
) -> (Option<String>, Option<String>) {
    match old {
        Some((old, _, _)) if Some(old.as_str()) != new => {
            (Some(old), Some(clock::format(clock::now() + SECRET_GRACE)))
        }
        Some((_, prev, until)) => (prev, until),
        None => (None, None),
    }
}

/// The secrets that sign a push now: the current one, and the previous one while its grace
/// period runs.
pub fn signing_secrets(
    current: Option<&str>,
    previous: Option<&str>,
    until: Option<&str>,
) -> Vec<String> {
    let now = clock::now_rfc3339();
    let mut out: Vec<String> = current.map(str::to_string).into_iter().collect();
    if let (Some(p), Some(u)) = (previous, until) {
        if u > now.as_str() {
            out.push(p.to_string());
        }
    }
    out
}

/// Reads an address from a path segment: with or without `agent://`.
pub fn path_address(raw: &str) -> Result<String, Error> {
    validate::address("address", raw)
}

pub fn get(conn: &Tx, address: &str) -> Result<AgentRow, Error> {
    agents::get(conn, address)?.ok_or_else(|| Error::NotFound {
        what: "agent",
        id: address.to_string(),
    })
}

pub fn list(conn: &Tx) -> Result<Vec<AgentRow>, Error> {
    agents::list(conn)
}

/// An agent as the registry shows it: its binding, and the service account it is, if any.
#[derive(Debug, Clone)]
pub struct Entry {
    pub agent: AgentRow,
    pub account: Option<ServiceAccountRow>,
}

impl Entry {
    /// `active`, or `suspended` while its webhook is disabled (it answered `410 Gone`).
    pub fn status(&self) -> &'static str {
        if self.agent.disabled_at.is_some() {
            "suspended"
        } else {
            "active"
        }
    }
}

/// A service account never registered with a binding: a pull agent, as every address is until
/// it registers one.
fn unregistered(account: &ServiceAccountRow) -> AgentRow {
    AgentRow {
        address: account.address.clone(),
        delivery_mode: DeliveryMode::Stream,
        display_name: account.display_name.clone(),
        webhook_url: None,
        webhook_secret: None,
        lease_seconds: None,
        max_delivery_attempts: None,
        created_at: account.created_at.clone(),
        updated_at: account.updated_at.clone(),
        disabled_at: None,
        previous_secret: None,
        previous_secret_until: None,
    }
}

/// The registry as `access` sees it: every registered agent and every service account of its
/// addresses (all of them for an admin key), by address, at most `limit`.
pub async fn entries(
    store: &Store,
    access: &Access,
    limit: Option<usize>,
) -> Result<Vec<Entry>, Error> {
    let mut all = store.read(entries_in).await?;
    all.retain(|e| access.owns(&e.agent.address));
    if let Some(n) = limit {
        all.truncate(n);
    }
    Ok(all)
}

fn entries_in(conn: &Tx) -> Result<Vec<Entry>, Error> {
    let mut accounts: std::collections::BTreeMap<String, ServiceAccountRow> =
        service_accounts::list(conn)?
            .into_iter()
            .map(|a| (a.address.clone(), a))
            .collect();
    let mut out: Vec<Entry> = agents::list(conn)?
        .into_iter()
        .map(|agent| Entry {
            account: accounts.remove(&agent.address),
            agent,
        })
        .collect();
    out.extend(accounts.into_values().map(|a| Entry {
        agent: unregistered(&a),
        account: Some(a),
    }));
    out.sort_by(|a, b| a.agent.address.cmp(&b.agent.address));
    Ok(out)
}

/// The registry entry of one address: registered, or a service account; 404 otherwise, and for
/// an agent key also when the address is not one of its own.
pub async fn entry(store: &Store, access: &Access, address: &str) -> Result<Entry, Error> {
    if !access.owns(address) {
        // Another key's agent does not exist for this one.
        return Err(Error::NotFound {
            what: "agent",
            id: address.to_string(),
        });
    }
    let address = address.to_string();
    store.read(move |c| entry_in(c, &address)).await
}

fn entry_in(conn: &Tx, address: &str) -> Result<Entry, Error> {
    let account = service_accounts::get_by_address(conn, address)?;
    let agent = match (agents::get(conn, address)?, &account) {
        (Some(agent), _) => agent,
        (None, Some(a)) => unregistered(a),
        (None, None) => {
            return Err(Error::NotFound {
                what: "agent",
                id: address.to_string(),
            })
        }
    };
    Ok(Entry { agent, account })
}

/// Retires an agent; intents already addressed to it stay, and the address becomes a pull
/// agent again.
pub async fn retire(store: &Store, access: &Access, address: &str) -> Result<(), Error> {
    access.require(address, "retiring")?;
    let address = address.to_string();
    store.write(move |c| retire_in(c, &address)).await
}

fn retire_in(conn: &Tx, address: &str) -> Result<(), Error> {
    if agents::delete(conn, address)? {
        Ok(())
    } else {
        Err(Error::NotFound {
            what: "agent",
            id: address.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rotated_secret_keeps_signing_during_its_grace_period() {
        let (prev, until) = rotated(Some(("whsec_old".into(), None, None)), Some("whsec_new"));
        assert_eq!(prev.as_deref(), Some("whsec_old"));
        let secrets = signing_secrets(Some("whsec_new"), prev.as_deref(), until.as_deref());
        assert_eq!(secrets, vec!["whsec_new", "whsec_old"]);
        let expired = signing_secrets(
            Some("whsec_new"),
            prev.as_deref(),
            Some("2000-01-01T00:00:00Z"),
        );
        assert_eq!(expired, vec!["whsec_new"]);
    }

    #[test]
    fn registering_the_same_secret_again_keeps_the_running_grace() {
        let running = Some((
            "whsec_a".into(),
            Some("whsec_z".into()),
            Some("2999-01-01T00:00:00Z".into()),
        ));
        assert_eq!(
            rotated(running, Some("whsec_a")),
            (Some("whsec_z".into()), Some("2999-01-01T00:00:00Z".into()))
        );
        assert_eq!(rotated(None, Some("whsec_a")), (None, None));
    }
}
