//! Handlers of inbox claims (an extension of the AXME API): claim (with long poll), ack, nack,
//! extend.

use std::time::Duration;

use hyper::body::Incoming;
use hyper::Response;
use serde::Serialize;

use super::response::{self, Body};
use super::sse;
use super::wire;
use super::Ctx;
use crate::service::access::Access;
use crate::service::agents;
use crate::service::claims::{self, Claim};
use crate::service::history::Changed;
use crate::store::leases::LeaseRow;
use crate::store::notify::Topic;
use crate::{clock, Error};

type Result = std::result::Result<Response<Body>, Error>;

fn expires_at(lease: &LeaseRow) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(lease.expires_at_ms) * 1_000_000)
        .map(clock::format)
        .unwrap_or_default()
}

#[derive(Serialize)]
struct ClaimWire<'a> {
    lease_token: &'a str,
    attempt: i64,
    lease_expires_at: String,
    intent: wire::Intent<'a>,
}

#[derive(Serialize)]
struct Claims<'a> {
    ok: bool,
    claims: Vec<ClaimWire<'a>>,
}

/// `POST /v1/agents/{address}/inbox/claim {max?, lease_seconds?, wait_seconds?}`.
pub async fn claim(ctx: Ctx, body: Incoming) -> Result {
    let address = agents::path_address(ctx.param(0))?;
    Access::of(&ctx.principal).require(&address, "claiming the work of")?;
    let body = ctx.json(body).await?;
    let req = claims::claim_request(&body)?;
    let actor = ctx.principal.address();
    let store = ctx.state.store.clone();
    let attempt = || {
        let (store, address, actor) = (store.clone(), address.clone(), actor.clone());
        async move {
            let got = claims::take(&store, &address, req, &actor).await?;
            Ok((!got.is_empty()).then_some(got))
        }
    };
    let got: Vec<Claim> = match req.wait_seconds.filter(|s| *s > 0) {
        None => attempt().await?.unwrap_or_default(),
        Some(wait) => {
            // An intent held back by a nack delay becomes claimable by the clock, not by a
            // commit: wake for it too.
            let next = claims::next_available(&ctx.state.store, &address).await?;
            let recheck = next.map(|at| {
                let ms = (at - clock::now_ms()).max(0) as u64;
                tokio::time::Instant::now() + Duration::from_millis(ms)
            });
            sse::long_poll(
                &ctx.state,
                &ctx.principal,
                Duration::from_secs(wait),
                Topic::Agent(address.clone()),
                recheck,
                attempt,
            )
            .await?
            .unwrap_or_default()
        }
    };
    response::ok(&Claims {
        ok: true,
        claims: got
            .iter()
            .map(|c| {
                Ok(ClaimWire {
                    lease_token: &c.lease.lease_token,
                    attempt: c.lease.attempt,
                    lease_expires_at: expires_at(&c.lease),
                    intent: wire::Intent::from_row(&c.intent)?,
                })
            })
            .collect::<std::result::Result<_, Error>>()?,
    })
}

fn changed(c: &Changed) -> Result {
    let last = c
        .events
        .last()
        .ok_or_else(|| Error::internal("a change appended no event"))?;
    response::ok(&wire::ChangedIntent {
        ok: true,
        intent: wire::Intent::from_row(&c.intent)?,
        event: wire::Event::from_row(last)?,
        events: Some(wire::Event::list(&c.events)?),
        completion_delivery: None,
        applied: None,
        policy_generation: None,
    })
}

/// `POST /v1/claims/{lease_token}/ack {status?, result?, error?}`.
pub async fn ack(ctx: Ctx, body: Incoming) -> Result {
    let token = ctx.param(0).to_string();
    let access = Access::of(&ctx.principal);
    let body = ctx.json(body).await?;
    let req = claims::ack_request(&body)?;
    let actor = ctx.principal.address();
    let c = claims::ack_now(&ctx.state.store, &access, &token, req, &actor).await?;
    changed(&c)
}

/// `POST /v1/claims/{lease_token}/nack {delay_seconds?, error?}`.
pub async fn nack(ctx: Ctx, body: Incoming) -> Result {
    let token = ctx.param(0).to_string();
    let access = Access::of(&ctx.principal);
    let body = ctx.json(body).await?;
    let req = claims::nack_request(&body)?;
    let actor = ctx.principal.address();
    let c = claims::nack_now(&ctx.state.store, &access, &token, req, &actor).await?;
    changed(&c)
}

/// `POST /v1/claims/{lease_token}/extend {lease_seconds}`.
pub async fn extend(ctx: Ctx, body: Incoming) -> Result {
    let token = ctx.param(0).to_string();
    let access = Access::of(&ctx.principal);
    let body = ctx.json(body).await?;
    let seconds = claims::extend_request(&body)?;
    let (lease, intent) = claims::extend_now(&ctx.state.store, &access, &token, seconds).await?;
    #[derive(Serialize)]
    struct Extended<'a> {
        ok: bool,
        lease_token: &'a str,
        attempt: i64,
        lease_expires_at: String,
        intent: wire::Intent<'a>,
    }
    response::ok(&Extended {
        ok: true,
        lease_token: &lease.lease_token,
        attempt: lease.attempt,
        lease_expires_at: expires_at(&lease),
        intent: wire::Intent::from_row(&intent)?,
    })
}
