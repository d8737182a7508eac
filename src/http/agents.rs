//! Handlers of the agent registry (`/v1/agents`: AXME's listing and lookup, and registering a
//! binding, an extension). Service accounts show here as the agents they are.

use crate::service::access::Access;
use hyper::body::Incoming;
use hyper::Response;

use super::response::{self, from_rendered, Body};
use super::wire;
use super::Ctx;
use crate::service::idempotency::write_once_disclosing;
use crate::service::{agents, service_accounts};
use crate::Error;

type Result = std::result::Result<Response<Body>, Error>;

pub async fn register(ctx: Ctx, body: Incoming) -> Result {
    let body = ctx.json(body).await?;
    let req = agents::register_request(&body)?;
    Access::of(&ctx.principal).require(&req.address, "registering")?;
    let scope = ctx.idempotency("POST /v1/agents".into(), &body)?;
    let rendered = write_once_disclosing(
        &ctx.state.store,
        scope,
        move |c| {
            let (agent, generated) = agents::register(c, req)?;
            let account = service_accounts::of_address(c, &agent.address)?;
            Ok((agents::Entry { agent, account }, generated))
        },
        |(entry, generated)| {
            let render = |secret: Option<&str>| {
                response::render(&wire::AgentEnvelope {
                    ok: true,
                    agent: wire::Agent::from_entry(entry, secret),
                })
            };
            // A replay says the agent is registered, never the generated secret again.
            let kept = generated.is_some().then(|| render(None)).transpose()?;
            Ok((render(generated.as_deref())?, kept))
        },
    )
    .await?;
    Ok(from_rendered(rendered))
}

/// `GET /v1/agents?limit=`: registered agents and service accounts, by address.
pub async fn list(ctx: Ctx) -> Result {
    let access = Access::of(&ctx.principal);
    // AXME's `org_id` and `workspace_id` name the one organization there is; `limit` is kept.
    let limit = ctx.query.int("limit", 1, 1000)?;
    let entries = agents::entries(&ctx.state.store, &access, limit.map(|n| n as usize)).await?;
    response::ok(&wire::AgentList {
        ok: true,
        agents: entries
            .iter()
            .map(|e| wire::Agent::from_entry(e, None))
            .collect(),
    })
}

pub async fn get(ctx: Ctx) -> Result {
    let address = agents::path_address(ctx.param(0))?;
    let access = Access::of(&ctx.principal);
    let entry = agents::entry(&ctx.state.store, &access, &address).await?;
    response::ok(&wire::AgentEnvelope {
        ok: true,
        agent: wire::Agent::from_entry(&entry, None),
    })
}

pub async fn retire(ctx: Ctx) -> Result {
    let address = agents::path_address(ctx.param(0))?;
    agents::retire(&ctx.state.store, &Access::of(&ctx.principal), &address).await?;
    response::ok(&wire::Retired {
        ok: true,
        address: &address,
    })
}
