//! Handlers of the intents API: parse the request, call the service, render the wire shape.
//! No lifecycle rule or SQL lives here.

use hyper::body::Incoming;
use hyper::Response;
use serde_json::Value;

use super::request;
use super::response::{self, from_rendered, Body};
use super::wire;
use super::Ctx;
use crate::model::Status;
use crate::service::access::Access;
use crate::service::cleanup;
use crate::service::history::Changed;
use crate::service::idempotency::{write_once, Rendered, Scope};
use crate::service::intents;
use crate::service::requests;
use crate::service::{controls, resume};
use crate::store::intents::ListFilter;
use crate::Error;

type Result = std::result::Result<Response<Body>, Error>;

pub async fn create(ctx: Ctx, body: Incoming) -> Result {
    let body = ctx.json(body).await?;
    let scope = ctx.idempotency("POST /v1/intents".into(), &body)?;
    Ok(from_rendered(create_from(&ctx, &body, scope).await?))
}

/// Creates the intent a read body asks for, under an idempotency scope, and renders the answer:
/// what `POST /v1/intents` and the MCP tool `axme.intents_send` both do.
pub(crate) async fn create_from(
    ctx: &Ctx,
    body: &Value,
    scope: Option<Scope>,
) -> std::result::Result<Rendered, Error> {
    let mut req = requests::create_intent(body, ctx.state.limits.max_payload_bytes)?;
    req.from_agent = Access::of(&ctx.principal).sender(req.from_agent);
    let caller = ctx.principal.address();
    let quota = live_quota(ctx);
    write_once(
        &ctx.state.store,
        scope,
        move |c| intents::create_within(c, req, &caller, quota.as_ref()),
        |created| {
            response::render(&wire::Created {
                ok: true,
                intent_id: &created.intent.intent_id,
                status: created.intent.status.as_str(),
                created_at: &created.intent.created_at,
            })
        },
    )
    .await
}

/// The caller's quota on live payload bytes: an agent key's addresses and
/// `--max-live-bytes-per-key`; admin keys have none.
pub(crate) fn live_quota(ctx: &Ctx) -> Option<intents::LiveQuota> {
    (!ctx.principal.is_admin()).then(|| intents::LiveQuota {
        agents: ctx.principal.agents.clone(),
        max_bytes: ctx.state.limits.max_live_bytes_per_key,
    })
}

pub async fn get(ctx: Ctx) -> Result {
    let id = request::intent_id(ctx.param(0))?;
    let access = Access::of(&ctx.principal);
    let row = ctx.state.store.read(move |c| access.read(c, &id)).await?;
    response::ok(&wire::IntentEnvelope {
        ok: true,
        intent: wire::Intent::from_row(&row)?,
    })
}

/// The most intents one page of the listing returns.
const LIST_LIMIT_MAX: i64 = 200;

pub async fn list(ctx: Ctx) -> Result {
    let q = &ctx.query;
    let addr = |name: &str| -> std::result::Result<Option<String>, Error> {
        q.get(name)
            .map(|v| crate::service::validate::address(name, v))
            .transpose()
    };
    let status = match q.get("status") {
        None => None,
        Some(s) => Some(Status::parse(s).ok_or_else(|| {
            Error::invalid(
                "status",
                "must be one of the intent statuses (e.g. SUBMITTED)",
            )
        })?),
    };
    let correlation_id = q
        .get("correlation_id")
        .map(|v| crate::service::validate::uuid("correlation_id", v))
        .transpose()?;
    let filter = ListFilter {
        to_agent: addr("to_agent")?,
        from_agent: addr("from_agent")?,
        status,
        correlation_id,
        before_id: q.int("cursor", 1, i64::MAX)?,
        limit: q.int("limit", 1, LIST_LIMIT_MAX)?.unwrap_or(50) as usize,
    };
    Access::of(&ctx.principal).require_filter(
        &[filter.to_agent.as_deref(), filter.from_agent.as_deref()],
        "listing intents",
    )?;
    let (rows, next) = ctx
        .state
        .store
        .read(move |c| intents::list(c, filter))
        .await?;
    response::ok(&wire::IntentList {
        ok: true,
        intents: rows
            .iter()
            .map(wire::Intent::from_row)
            .collect::<std::result::Result<_, _>>()?,
        next_cursor: next.map(|n| n.to_string()),
    })
}

/// `POST /v1/intents/bulk-cancel` (AXME's CLI `intents cleanup`): a dry run names the stale
/// intents; otherwise they are canceled in one transaction.
pub async fn bulk_cancel(ctx: Ctx, body: Incoming) -> Result {
    let body = ctx.json(body).await?;
    let req = cleanup::request(&body)?;
    let access = Access::of(&ctx.principal);
    let caller = ctx.principal.address();
    let render = |o: &cleanup::Outcome| {
        response::render(&wire::BulkCanceled {
            ok: true,
            dry_run: o.dry_run,
            would_cancel: o.dry_run.then_some(o.intent_ids.len()),
            canceled: if o.dry_run { 0 } else { o.intent_ids.len() },
            intent_ids: &o.intent_ids,
        })
    };
    if req.dry_run {
        let outcome = ctx
            .state
            .store
            .read(move |c| cleanup::run(c, &req, &access, &caller))
            .await?;
        return Ok(from_rendered(render(&outcome)?));
    }
    let scope = ctx.idempotency("POST /v1/intents/bulk-cancel".into(), &body)?;
    let rendered = write_once(
        &ctx.state.store,
        scope,
        move |c| cleanup::run(c, &req, &access, &caller),
        render,
    )
    .await?;
    Ok(from_rendered(rendered))
}

/// Which change a write endpoint asks for.
enum Op {
    Resolve(requests::Resolve),
    Resume(resume::Resume),
    Ack(Option<String>),
    Progress(requests::Progress),
    Redrive(Option<String>),
}

pub async fn resolve(ctx: Ctx, body: Incoming) -> Result {
    change(ctx, body, "resolve", |b| {
        requests::resolve(b).map(Op::Resolve)
    })
    .await
}

pub async fn resume(ctx: Ctx, body: Incoming) -> Result {
    change(ctx, body, "resume", |b| resume::request(b).map(Op::Resume)).await
}

pub async fn ack(ctx: Ctx, body: Incoming) -> Result {
    change(ctx, body, "ack", |b| requests::ack(b).map(Op::Ack)).await
}

pub async fn progress(ctx: Ctx, body: Incoming) -> Result {
    change(ctx, body, "progress", |b| {
        requests::progress(b).map(Op::Progress)
    })
    .await
}

/// `POST /v1/intents/{id}/redrive {actor?}`: an intent that FAILED with `delivery_failed` goes
/// back to its handler's queue.
pub async fn redrive(ctx: Ctx, body: Incoming) -> Result {
    change(ctx, body, "redrive", |b| requests::ack(b).map(Op::Redrive)).await
}

/// The shared path of every state-changing endpoint on one intent.
async fn change(
    ctx: Ctx,
    body: Incoming,
    action: &str,
    parse: impl FnOnce(&Value) -> std::result::Result<Op, Error>,
) -> Result {
    let id = request::intent_id(ctx.param(0))?;
    let body = ctx.json(body).await?;
    let op = parse(&body)?;
    request::owner_agent(&ctx.headers, &ctx.query)?;
    let scope = ctx.idempotency(format!("POST /v1/intents/{id}/{action}"), &body)?;
    let caller = ctx.principal.address();
    // An agent key's real identity is recorded beside an actor it claims (`details.by`).
    let by = (!ctx.principal.is_admin()).then(|| caller.clone());
    let is_resolve = matches!(op, Op::Resolve(_));
    let cancels = matches!(&op, Op::Resolve(r) if r.status == Status::Canceled);
    let access = Access::of(&ctx.principal);
    let rendered = write_once(
        &ctx.state.store,
        scope,
        move |c| {
            access.handle(c, &id, cancels)?;
            let changed = match op {
                Op::Resolve(r) => intents::resolve(c, &id, r, &caller, by.as_deref()),
                Op::Resume(r) => {
                    let r = resume::resume(c, &id, r, &caller, by.as_deref())?;
                    return Ok((r.changed, Some(r.policy_generation)));
                }
                Op::Ack(actor) => intents::ack(c, &id, actor, &caller, by.as_deref()),
                Op::Progress(p) => intents::progress(c, &id, p, &caller, by.as_deref()),
                Op::Redrive(actor) => {
                    let actor = actor.as_deref().unwrap_or(&caller);
                    crate::service::inbox::redrive(c, &id, actor, by.as_deref())
                }
            }?;
            Ok((changed, None))
        },
        move |(changed, generation)| render_changed(changed, is_resolve, *generation),
    )
    .await?;
    Ok(from_rendered(rendered))
}

fn render_changed(
    changed: &Changed,
    is_resolve: bool,
    policy_generation: Option<i64>,
) -> std::result::Result<crate::service::idempotency::Rendered, Error> {
    let last = changed
        .last_event()
        .ok_or_else(|| Error::internal("a change appended no event"))?;
    response::render(&wire::ChangedIntent {
        ok: true,
        intent: wire::Intent::from_row(&changed.intent)?,
        event: wire::Event::from_row(last)?,
        events: (!is_resolve)
            .then(|| wire::Event::list(&changed.events))
            .transpose()?,
        completion_delivery: is_resolve
            .then(|| wire::CompletionDelivery::from_row(changed.completion.as_ref()))
            .transpose()?,
        applied: policy_generation.map(|_| true),
        policy_generation,
    })
}

/// `POST /v1/intents/{id}/controls {controls_patch}` and `/policy {grants_patch?,
/// envelope_patch?}`: merge patches, each moving the intent's policy generation on.
pub async fn controls(ctx: Ctx, body: Incoming) -> Result {
    patch(ctx, body, "controls").await
}

pub async fn policy(ctx: Ctx, body: Incoming) -> Result {
    patch(ctx, body, "policy").await
}

async fn patch(ctx: Ctx, body: Incoming, target: &'static str) -> Result {
    let id = request::intent_id(ctx.param(0))?;
    let body = ctx.json(body).await?;
    let req = controls::patch_request(&body, target)?;
    request::owner_agent(&ctx.headers, &ctx.query)?;
    let scope = ctx.idempotency(format!("POST /v1/intents/{id}/{target}"), &body)?;
    let access = Access::of(&ctx.principal);
    let rendered = write_once(
        &ctx.state.store,
        scope,
        move |c| {
            access.handle(c, &id, true)?;
            controls::patch(c, &id, req)
        },
        move |row| {
            let doc = |s: &str| serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
            response::render(&serde_json::json!({
                "ok": true,
                "applied": true,
                "intent_id": row.intent_id,
                "policy_generation": row.policy_generation,
                "controls": doc(&row.controls),
                "policy": doc(&row.policy),
                "updated_at": row.updated_at,
            }))
        },
    )
    .await?;
    Ok(from_rendered(rendered))
}
