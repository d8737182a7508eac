//! Handlers of API key management (`/v1/keys`, an extension of the AXME API). Admin keys only.
//! `POST /v1/keys` refuses an `Idempotency-Key`: its response carries the new key, which is
//! never stored anywhere, so it could not be replayed.

use hyper::body::Incoming;
use hyper::Response;

use super::response::{self, Body};
use super::{request, wire, Ctx};
use crate::service::auth::require_admin;
use crate::service::keys;
use crate::Error;

type Result = std::result::Result<Response<Body>, Error>;

const ACTION: &str = "managing API keys";

pub async fn create(ctx: Ctx, body: Incoming) -> Result {
    require_admin(&ctx.principal, ACTION)?;
    let body = ctx.json(body).await?;
    if ctx.headers.contains_key("idempotency-key") {
        return Err(Error::BadRequest {
            field: "Idempotency-Key".into(),
            reason:
                "POST /v1/keys cannot be replayed: its response holds a key that is never stored"
                    .into(),
        });
    }
    let req = keys::create_request(&body)?;
    let (info, api_key) = keys::create(&ctx.state.store, &ctx.state.keys, req).await?;
    response::ok(&wire::KeyCreated {
        ok: true,
        key: wire::Key::from_info(&info),
        api_key: &api_key,
    })
}

pub async fn list(ctx: Ctx) -> Result {
    require_admin(&ctx.principal, ACTION)?;
    let all = keys::list(&ctx.state.store).await?;
    response::ok(&wire::KeyList {
        ok: true,
        keys: all.iter().map(wire::Key::from_info).collect(),
    })
}

pub async fn revoke(ctx: Ctx) -> Result {
    require_admin(&ctx.principal, ACTION)?;
    let key_id = request::key_id(ctx.param(0))?;
    let info = keys::revoke(&ctx.state.store, &ctx.state.keys, key_id).await?;
    response::ok(&wire::KeyEnvelope {
        ok: true,
        key: wire::Key::from_info(&info),
    })
}
