//! The JSON shapes of `/v1/service-accounts` (AXP `api.service_accounts.*.response.v1.json`,
//! which allow no other fields): the account, and its keys as minted and as revoked.

use serde::Serialize;

use crate::service::keys::KeyInfo;
use crate::store::service_accounts::ServiceAccountRow;

/// An account as `get` and `list` show it.
#[derive(Serialize)]
pub struct ServiceAccount<'a> {
    pub service_account_id: &'a str,
    pub org_id: &'a str,
    pub workspace_id: &'a str,
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub status: &'static str,
    pub created_by_actor_id: &'a str,
    pub created_at: &'a str,
    pub updated_at: &'a str,
}

impl<'a> ServiceAccount<'a> {
    pub fn from_row(r: &'a ServiceAccountRow) -> ServiceAccount<'a> {
        ServiceAccount {
            service_account_id: &r.service_account_id,
            org_id: &r.org_id,
            workspace_id: &r.workspace_id,
            name: &r.name,
            description: r.description.as_deref(),
            status: "active",
            created_by_actor_id: &r.created_by_actor_id,
            created_at: &r.created_at,
            updated_at: &r.updated_at,
        }
    }
}

/// An account as its creation shows it: with the agent it is.
#[derive(Serialize)]
pub struct CreatedAccount<'a> {
    #[serde(flatten)]
    pub account: ServiceAccount<'a>,
    pub agent_address: &'a str,
    pub display_name: Option<&'a str>,
}

#[derive(Serialize)]
pub struct Created<'a> {
    pub ok: bool,
    pub service_account: CreatedAccount<'a>,
}

impl<'a> Created<'a> {
    pub fn from_row(r: &'a ServiceAccountRow) -> Created<'a> {
        Created {
            ok: true,
            service_account: CreatedAccount {
                account: ServiceAccount::from_row(r),
                agent_address: &r.address,
                display_name: r.display_name.as_deref(),
            },
        }
    }
}

#[derive(Serialize)]
pub struct Envelope<'a> {
    pub ok: bool,
    pub service_account: ServiceAccount<'a>,
}

#[derive(Serialize)]
pub struct List<'a> {
    pub ok: bool,
    pub service_accounts: Vec<ServiceAccount<'a>>,
}

/// `DELETE /v1/service-accounts/{id}`: the account is gone, these keys were revoked with it.
#[derive(Serialize)]
pub struct Deleted<'a> {
    pub ok: bool,
    pub service_account_id: &'a str,
    pub agent_address: &'a str,
    pub revoked_key_ids: &'a [String],
}

/// A minted key: the one response that carries the key itself (`token`).
#[derive(Serialize)]
pub struct MintedKey<'a> {
    pub key_id: &'a str,
    pub service_account_id: &'a str,
    /// The key's last four characters.
    pub key_hint: &'a str,
    pub status: &'static str,
    pub created_at: &'a str,
    pub expires_at: Option<&'a str>,
    pub token: &'a str,
}

#[derive(Serialize)]
pub struct KeyMinted<'a> {
    pub ok: bool,
    pub key: MintedKey<'a>,
}

impl<'a> KeyMinted<'a> {
    pub fn new(account_id: &'a str, key: &'a KeyInfo, token: &'a str) -> KeyMinted<'a> {
        KeyMinted {
            ok: true,
            key: MintedKey {
                key_id: &key.row.key_id,
                service_account_id: account_id,
                key_hint: &token[token.len().saturating_sub(4)..],
                status: "active",
                created_at: &key.row.created_at,
                expires_at: None,
                token,
            },
        }
    }
}

#[derive(Serialize)]
pub struct RevokedKey<'a> {
    pub service_account_id: &'a str,
    pub key_id: &'a str,
    pub status: &'static str,
    pub revoked_at: &'a str,
}

#[derive(Serialize)]
pub struct KeyRevoked<'a> {
    pub ok: bool,
    pub key: RevokedKey<'a>,
}
