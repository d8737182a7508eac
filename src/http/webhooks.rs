//! Handlers of the push binding's API: webhook subscriptions and published events (AXME's
//! `/v1/webhooks/...`, extended with intent events and filters) and the delivery log
//! (`/v1/deliveries`, an extension).

use crate::model::DeliveryStatus;
use crate::service::access::Access;
use hyper::body::Incoming;
use hyper::Response;
use serde::Serialize;

use super::response::{self, from_rendered, Body};
use super::wire;
use super::{request, Ctx};
use crate::service::deliveries as domain;
use crate::service::idempotency::{write_once, write_once_disclosing};
use crate::service::subscriptions::{self, Counters};
use crate::store::deliveries::ListFilter;
use crate::store::subscriptions::{SubscriptionRow, WebhookEventRow};
use crate::{clock, Error};

type Result = std::result::Result<Response<Body>, Error>;

/// The owner a subscription call acts for: the owner scope if given, else the caller.
fn owner(ctx: &Ctx) -> std::result::Result<String, Error> {
    Ok(scope(ctx)?.unwrap_or_else(|| ctx.principal.address()))
}

/// The owner scope as given, checked against the key (an agent key is always scoped).
fn scope(ctx: &Ctx) -> std::result::Result<Option<String>, Error> {
    Access::of(&ctx.principal).owner_scope(request::owner_agent(&ctx.headers, &ctx.query)?)
}

#[derive(Serialize)]
struct Subscription<'a> {
    subscription_id: &'a str,
    owner_agent: &'a str,
    callback_url: &'a str,
    event_types: Vec<String>,
    active: bool,
    description: Option<&'a str>,
    created_at: &'a str,
    updated_at: &'a str,
    revoked_at: Option<&'a str>,
    secret_hint: Option<String>,
    /// The generated secret, in the response that created it only.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    intent_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    to_agent: Option<&'a str>,
}

impl<'a> Subscription<'a> {
    fn from_row(r: &'a SubscriptionRow, generated: Option<&'a str>) -> Subscription<'a> {
        Subscription {
            subscription_id: &r.subscription_id,
            owner_agent: &r.owner_agent,
            callback_url: &r.callback_url,
            event_types: serde_json::from_str(&r.event_types).unwrap_or_default(),
            active: r.active,
            description: r.description.as_deref(),
            created_at: &r.created_at,
            updated_at: &r.updated_at,
            revoked_at: r.revoked_at.as_deref(),
            secret_hint: Some(subscriptions::secret_hint(&r.secret)),
            secret: generated,
            intent_id: r.intent_id.as_deref(),
            correlation_id: r.correlation_id.as_deref(),
            to_agent: r.to_agent.as_deref(),
        }
    }
}

#[derive(Serialize)]
struct SubscriptionEnvelope<'a> {
    ok: bool,
    subscription: Subscription<'a>,
}

pub async fn upsert_subscription(ctx: Ctx, body: Incoming) -> Result {
    let body = ctx.json(body).await?;
    let req = subscriptions::upsert_request(&body)?;
    let owner = owner(&ctx)?;
    let access = Access::of(&ctx.principal);
    let scope = ctx.idempotency("POST /v1/webhooks/subscriptions".into(), &body)?;
    let max_per_owner = ctx.state.limits.max_subscriptions_per_owner;
    let rendered = write_once_disclosing(
        &ctx.state.store,
        scope,
        move |c| {
            // An agent key observes only its own agents' intents, or one intent it may see.
            let lifecycle = req.event_types.iter().any(|t| t.starts_with("intent."));
            if lifecycle {
                access.observe(
                    c,
                    req.to_agent.as_deref(),
                    req.intent_id.as_deref(),
                    "observing the intents of",
                    "observing intent events",
                )?;
            }
            subscriptions::upsert(c, &owner, req, max_per_owner)
        },
        |(row, generated)| {
            let render = |secret: Option<&str>| {
                response::render(&SubscriptionEnvelope {
                    ok: true,
                    subscription: Subscription::from_row(row, secret),
                })
            };
            // A replay says the subscription exists, never the generated secret again.
            let kept = generated.is_some().then(|| render(None)).transpose()?;
            Ok((render(generated.as_deref())?, kept))
        },
    )
    .await?;
    Ok(from_rendered(rendered))
}

pub async fn list_subscriptions(ctx: Ctx) -> Result {
    let owner = scope(&ctx)?;
    let rows = ctx
        .state
        .store
        .read(move |c| subscriptions::list(c, owner.as_deref()))
        .await?;
    #[derive(Serialize)]
    struct List<'a> {
        ok: bool,
        subscriptions: Vec<Subscription<'a>>,
    }
    response::ok(&List {
        ok: true,
        subscriptions: rows
            .iter()
            .map(|r| Subscription::from_row(r, None))
            .collect(),
    })
}

/// `DELETE /v1/webhooks/subscriptions/{id}`: an agent key revokes only its owners'
/// subscriptions (another's is 404); an admin key revokes any by its id, whatever owner scope it
/// names (AXME's clients send their `owner_agent` on every call, also for a subscription an
/// upsert without one created for the caller).
pub async fn delete_subscription(ctx: Ctx) -> Result {
    let id = crate::service::validate::uuid("subscription_id", ctx.param(0))?;
    let owner = scope(&ctx)?.filter(|_| !Access::of(&ctx.principal).is_admin());
    let row = ctx
        .state
        .store
        .write(move |c| subscriptions::delete(c, owner.as_deref(), &id))
        .await?;
    #[derive(Serialize)]
    struct Deleted<'a> {
        ok: bool,
        subscription_id: &'a str,
        revoked_at: &'a str,
    }
    response::ok(&Deleted {
        ok: true,
        subscription_id: &row.subscription_id,
        revoked_at: row.revoked_at.as_deref().unwrap_or_default(),
    })
}

#[derive(Serialize)]
struct Published<'a> {
    ok: bool,
    accepted_at: &'a str,
    event_type: &'a str,
    source: &'a str,
    owner_agent: &'a str,
    event_id: &'a str,
    queued_deliveries: i64,
    processed_deliveries: i64,
    delivered: i64,
    pending: i64,
    dead_lettered: i64,
}

fn published<'a>(e: &'a WebhookEventRow, c: &Counters, at: &'a str) -> Published<'a> {
    Published {
        ok: true,
        accepted_at: at,
        event_type: &e.event_type,
        source: &e.source,
        owner_agent: &e.owner_agent,
        event_id: &e.event_id,
        queued_deliveries: c.queued,
        processed_deliveries: c.processed,
        delivered: c.delivered,
        pending: c.pending,
        dead_lettered: c.dead_lettered,
    }
}

pub async fn publish_event(ctx: Ctx, body: Incoming) -> Result {
    let body = ctx.json(body).await?;
    let req = subscriptions::publish_request(&body)?;
    let owner = owner(&ctx)?;
    let scope = ctx.idempotency("POST /v1/webhooks/events".into(), &body)?;
    let rendered = write_once(
        &ctx.state.store,
        scope,
        move |c| subscriptions::publish(c, &owner, req),
        |(event, counters)| response::render(&published(event, counters, &event.created_at)),
    )
    .await?;
    Ok(from_rendered(rendered))
}

pub async fn replay_event(ctx: Ctx) -> Result {
    let id = crate::service::validate::uuid("event_id", ctx.param(0))?;
    let owner = scope(&ctx)?;
    let policy = ctx.state.push_policy.clone();
    let (event, counters) = ctx
        .state
        .store
        .write(move |c| subscriptions::replay_event(c, owner.as_deref(), &id, &policy))
        .await?;
    let now = clock::now_rfc3339();
    #[derive(Serialize)]
    struct Replayed<'a> {
        ok: bool,
        event_id: &'a str,
        owner_agent: &'a str,
        event_type: &'a str,
        queued_deliveries: i64,
        processed_deliveries: i64,
        delivered: i64,
        pending: i64,
        dead_lettered: i64,
        replayed_at: &'a str,
    }
    response::ok(&Replayed {
        ok: true,
        event_id: &event.event_id,
        owner_agent: &event.owner_agent,
        event_type: &event.event_type,
        queued_deliveries: counters.queued,
        processed_deliveries: counters.processed,
        delivered: counters.delivered,
        pending: counters.pending,
        dead_lettered: counters.dead_lettered,
        replayed_at: &now,
    })
}

// --- The delivery log ---------------------------------------------------------------------

/// A delivery as the caller may see it (agent keys: without answers and error details).
fn shown<'a>(ctx: &Ctx, d: wire::Delivery<'a>) -> wire::Delivery<'a> {
    if ctx.principal.is_admin() {
        d
    } else {
        d.for_agent_key()
    }
}

pub async fn list_deliveries(ctx: Ctx) -> Result {
    let q = &ctx.query;
    let status = match q.get("status") {
        Some(s) if DeliveryStatus::parse(s).is_some() => DeliveryStatus::parse(s),
        Some(_) => {
            return Err(Error::invalid(
                "status",
                "must be one of pending, delivered, failed, dead_lettered",
            ))
        }
        None => None,
    };
    let filter = ListFilter {
        intent_id: q.get("intent_id").map(request::intent_id).transpose()?,
        status,
        before_rowid: q.int("cursor", 1, i64::MAX)?,
        limit: q.int("limit", 1, 200)?.unwrap_or(50) as usize,
    };
    let access = Access::of(&ctx.principal);
    let (rows, next) = ctx
        .state
        .store
        .read(move |c| {
            // An agent key lists the deliveries of one intent it may see.
            if !access.is_admin() {
                match &filter.intent_id {
                    Some(id) => {
                        access.read(c, id)?;
                    }
                    None => access.require_filter(&[None], "listing deliveries")?,
                }
            }
            let (mut rows, next) = domain::list(c, filter)?;
            // Only pushes to the key's own agents and subscriptions (see `Access::delivery`).
            let mut kept = Vec::with_capacity(rows.len());
            for row in rows.drain(..) {
                if access.delivery(c, &row.0).is_ok() {
                    kept.push(row);
                }
            }
            Ok((kept, next))
        })
        .await?;
    #[derive(Serialize)]
    struct List<'a> {
        ok: bool,
        deliveries: Vec<wire::Delivery<'a>>,
        next_cursor: Option<String>,
    }
    response::ok(&List {
        ok: true,
        deliveries: rows
            .iter()
            .map(|(d, a)| shown(&ctx, wire::Delivery::from_rows(d, a)))
            .collect(),
        next_cursor: next.map(|n| n.to_string()),
    })
}

pub async fn get_delivery(ctx: Ctx) -> Result {
    let id = ctx.param(0).to_string();
    let access = Access::of(&ctx.principal);
    let (d, a) = ctx
        .state
        .store
        .read(move |c| {
            let (d, a) = domain::get_with_attempts(c, &id)?;
            access.delivery(c, &d)?;
            Ok((d, a))
        })
        .await?;
    response::ok(&wire::DeliveryEnvelope {
        ok: true,
        delivery: shown(&ctx, wire::Delivery::from_rows(&d, &a)),
    })
}

pub async fn replay_delivery(ctx: Ctx) -> Result {
    let id = ctx.param(0).to_string();
    let access = Access::of(&ctx.principal);
    let policy = ctx.state.push_policy.clone();
    let (d, a) = ctx
        .state
        .store
        .write(move |c| {
            access.delivery(c, &domain::get(c, &id)?)?;
            domain::replay(c, &id, &policy)?;
            domain::get_with_attempts(c, &id)
        })
        .await?;
    response::ok(&wire::DeliveryEnvelope {
        ok: true,
        delivery: shown(&ctx, wire::Delivery::from_rows(&d, &a)),
    })
}
