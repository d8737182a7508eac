//! Handlers of `/v1/service-accounts` (AXME's agent identities), as AXME's SDKs and CLI call
//! them. Creating, deleting and minting or revoking keys need an admin key; an agent key lists
//! and reads the accounts of its own addresses. Minting a key refuses an `Idempotency-Key`, like
//! `POST /v1/keys`: its response holds a key that is never stored, so it could not be replayed.

use hyper::body::Incoming;
use hyper::Response;
use serde_json::{json, Value};

use super::response::{self, from_rendered, Body};
use super::wire::accounts as wire;
use super::{request, Ctx};
use crate::service::access::Access;
use crate::service::auth::require_admin;
use crate::service::idempotency::write_once;
use crate::service::service_accounts as accounts;
use crate::Error;

type Result = std::result::Result<Response<Body>, Error>;

const ACTION: &str = "managing service accounts";

/// A service account id as it appears in a path: `sa_` and 32 hex digits.
fn account_id(raw: &str) -> std::result::Result<String, Error> {
    let hex = raw.strip_prefix("sa_").unwrap_or("");
    if hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(raw.to_ascii_lowercase())
    } else {
        Err(Error::invalid(
            "service_account_id",
            "must be sa_ followed by 32 hex digits",
        ))
    }
}

/// `POST /v1/service-accounts`.
pub async fn create(ctx: Ctx, body: Incoming) -> Result {
    require_admin(&ctx.principal, ACTION)?;
    let body = ctx.json(body).await?;
    let req = accounts::create_request(&body)?;
    let scope = ctx.idempotency("POST /v1/service-accounts".into(), &body)?;
    let caller = ctx.principal.address();
    let rendered = write_once(
        &ctx.state.store,
        scope,
        move |c| accounts::create(c, req, &caller),
        |row| response::render(&wire::Created::from_row(row)),
    )
    .await?;
    Ok(from_rendered(rendered))
}

/// `GET /v1/service-accounts?org_id=&workspace_id=` (both accepted, neither filters: the server
/// has one organization).
pub async fn list(ctx: Ctx) -> Result {
    for scope in ["org_id", "workspace_id"] {
        if let Some(v) = ctx.query.get(scope) {
            crate::service::validate::uuid(scope, v)?;
        }
    }
    let access = Access::of(&ctx.principal);
    let rows = accounts::list(&ctx.state.store, &access).await?;
    response::ok(&wire::List {
        ok: true,
        service_accounts: rows.iter().map(wire::ServiceAccount::from_row).collect(),
    })
}

/// `GET /v1/service-accounts/{id}`.
pub async fn get(ctx: Ctx) -> Result {
    let id = account_id(ctx.param(0))?;
    let access = Access::of(&ctx.principal);
    let row = accounts::get(&ctx.state.store, &access, &id).await?;
    response::ok(&wire::Envelope {
        ok: true,
        service_account: wire::ServiceAccount::from_row(&row),
    })
}

/// `DELETE /v1/service-accounts/{id}`: its own keys are revoked (refused from the next request
/// on) and its registry entry retired.
pub async fn delete(ctx: Ctx) -> Result {
    require_admin(&ctx.principal, ACTION)?;
    let id = account_id(ctx.param(0))?;
    let deleted = accounts::delete(&ctx.state.store, &ctx.state.keys, &id).await?;
    response::ok(&wire::Deleted {
        ok: true,
        service_account_id: &deleted.account.service_account_id,
        agent_address: &deleted.account.address,
        revoked_key_ids: &deleted.revoked_keys,
    })
}

/// `POST /v1/service-accounts/{id}/keys`: a new agent key of the account, shown this once.
pub async fn create_key(ctx: Ctx, body: Incoming) -> Result {
    require_admin(&ctx.principal, ACTION)?;
    let id = account_id(ctx.param(0))?;
    let body = match ctx.json(body).await? {
        Value::Null => json!({}),
        b => b,
    };
    if ctx.headers.contains_key("idempotency-key") {
        return Err(Error::BadRequest {
            field: "Idempotency-Key".into(),
            reason: "minting a key cannot be replayed: its response holds a key that is never \
                     stored"
                .into(),
        });
    }
    accounts::key_request(&body)?;
    let access = Access::of(&ctx.principal);
    let (account, key, token) =
        accounts::mint_key(&ctx.state.store, &ctx.state.keys, &access, &id).await?;
    response::ok(&wire::KeyMinted::new(
        &account.service_account_id,
        &key,
        &token,
    ))
}

/// `POST /v1/service-accounts/{id}/keys/{key_id}/revoke` (no body).
pub async fn revoke_key(ctx: Ctx) -> Result {
    require_admin(&ctx.principal, ACTION)?;
    let id = account_id(ctx.param(0))?;
    let key_id = request::key_id(ctx.param(1))?;
    let key = accounts::revoke_key(&ctx.state.store, &ctx.state.keys, &id, &key_id).await?;
    response::ok(&wire::KeyRevoked {
        ok: true,
        key: wire::RevokedKey {
            service_account_id: &id,
            key_id: &key.row.key_id,
            status: "revoked",
            revoked_at: key.row.revoked_at.as_deref().unwrap_or_default(),
        },
    })
}
