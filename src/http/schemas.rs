//! Handlers of payload schemas (`/v1/schemas`): any key reads them, admin keys write them.

use hyper::body::Incoming;
use hyper::Response;

use super::response::{self, from_rendered, Body};
use super::wire::schemas::SchemaEnvelope;
use super::Ctx;
use crate::service::access::Access;
use crate::service::idempotency::write_once;
use crate::service::schemas;
use crate::Error;

type Result = std::result::Result<Response<Body>, Error>;

/// `POST /v1/schemas {semantic_type, schema_json, compatibility_mode, schema_ref?, scope?,
/// active?}`.
pub async fn upsert(ctx: Ctx, body: Incoming) -> Result {
    let body = ctx.json(body).await?;
    let access = Access::of(&ctx.principal);
    let req = schemas::upsert_request(&body)?;
    let scope = ctx.idempotency("POST /v1/schemas".into(), &body)?;
    let rendered = write_once(
        &ctx.state.store,
        scope,
        move |c| schemas::upsert(c, &access, req),
        |row| response::render(&SchemaEnvelope::new(row, false)?),
    )
    .await?;
    Ok(from_rendered(rendered))
}

/// `GET /v1/schemas/{semantic_type}`.
pub async fn get(ctx: Ctx) -> Result {
    let semantic_type = schemas::semantic_type("semantic_type", ctx.param(0))?;
    let row = schemas::get(&ctx.state.store, &semantic_type).await?;
    response::ok(&SchemaEnvelope::new(&row, true)?)
}
