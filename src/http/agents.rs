//! Handlers of the agent registry (`/v1/agents`, an extension of the AXME API).

use crate::service::access::Access;
use hyper::body::Incoming;
use hyper::Response;

use super::response::{self, from_rendered, Body};
use super::wire;
use super::Ctx;
use crate::service::agents;
use crate::service::idempotency::write_once_disclosing;
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
        move |c| agents::register(c, req),
        |(row, generated)| {
            let render = |secret: Option<&str>| {
                response::render(&wire::AgentEnvelope {
                    ok: true,
                    agent: wire::Agent::from_row(row, secret),
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

pub async fn list(ctx: Ctx) -> Result {
    let access = Access::of(&ctx.principal);
    let mut rows = ctx.state.store.read(agents::list).await?;
    rows.retain(|r| access.owns(&r.address));
    response::ok(&wire::AgentList {
        ok: true,
        agents: rows
            .iter()
            .map(|r| wire::Agent::from_row(r, None))
            .collect(),
    })
}

pub async fn get(ctx: Ctx) -> Result {
    let address = agents::path_address(ctx.param(0))?;
    if !Access::of(&ctx.principal).owns(&address) {
        // Another key's agent does not exist for this one.
        return Err(Error::NotFound {
            what: "agent",
            id: address,
        });
    }
    let row = ctx
        .state
        .store
        .read(move |c| agents::get(c, &address))
        .await?;
    response::ok(&wire::AgentEnvelope {
        ok: true,
        agent: wire::Agent::from_row(&row, None),
    })
}

pub async fn retire(ctx: Ctx) -> Result {
    let address = agents::path_address(ctx.param(0))?;
    Access::of(&ctx.principal).require(&address, "retiring")?;
    let a = address.clone();
    ctx.state
        .store
        .write(move |c| agents::retire(c, &a))
        .await?;
    response::ok(&wire::Retired {
        ok: true,
        address: &address,
    })
}
