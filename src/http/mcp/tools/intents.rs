//! The intent tools: `axme.intents_send` (`POST /v1/intents`, idempotent under the same key),
//! `axme.intents_list`, `axme.intents_log` / `axme.intents_watch` (the events, waited for like
//! a long poll), `axme.intents_cancel` and `axme.intents_resume`, through the same service
//! functions and `Access` as their REST routes.

use std::time::Duration;

use serde_json::{json, Value};

use super::{body_of, intent_id, str_arg, to_value, Outcome};
use crate::http::{sse, wire, Ctx};
use crate::model::Status;
use crate::service::access::Access;
use crate::service::idempotency::{self, Scope};
use crate::service::{intents, requests, validate};
use crate::store::intents::ListFilter;
use crate::store::notify::Topic;
use crate::Error;

/// `axme.intents_send`: `POST /v1/intents`, idempotent under the same key and endpoint.
pub async fn send(ctx: &Ctx, _access: Access, args: &Value) -> Outcome {
    let mut body = body_of(args, &[]);
    if let Some(m) = body.as_object_mut() {
        m.entry("intent_type")
            .or_insert_with(|| json!("intent.ask.v1"));
        m.entry("payload").or_insert_with(|| json!({}));
        m.entry("correlation_id")
            .or_insert_with(|| json!(uuid::Uuid::new_v4().to_string()));
    }
    let scope = str_arg(args, "idempotency_key").map(|k| Scope {
        key_id: ctx.principal.key_id.clone(),
        endpoint: "POST /v1/intents".into(),
        key: k.to_string(),
        request_hash: idempotency::request_hash(&body),
    });
    let rendered = crate::http::intents::create_from(ctx, &body, scope).await?;
    let mut v: Value = serde_json::from_slice(&rendered.body)?;
    if let Some(m) = v.as_object_mut() {
        m.remove("ok");
    }
    Ok(v)
}

pub async fn list(ctx: &Ctx, access: Access, args: &Value) -> Outcome {
    let addr = |name: &str| {
        str_arg(args, name)
            .map(|v| validate::address(name, v))
            .transpose()
    };
    let status = match str_arg(args, "status") {
        None => None,
        Some(s) => Some(Status::parse(s).ok_or_else(|| {
            Error::invalid(
                "status",
                "must be one of the intent statuses (e.g. SUBMITTED)",
            )
        })?),
    };
    let filter = ListFilter {
        to_agent: addr("to_agent")?,
        from_agent: addr("from_agent")?,
        status,
        correlation_id: None,
        before_id: None,
        limit: args.get("limit").and_then(Value::as_u64).unwrap_or(50) as usize,
    };
    let (rows, _) = intents::list(&ctx.state.store, &access, filter).await?;
    let list = rows
        .iter()
        .map(|r| to_value(&wire::Intent::from_row(r)?))
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(json!({"intents": list}))
}

/// `axme.intents_log` (no wait) and `axme.intents_watch`: the events after `since`, waiting
/// like a long poll of `GET /v1/intents/{id}/events?wait_seconds=` when there are none yet.
pub async fn events(ctx: &Ctx, access: Access, args: &Value, wait: Duration) -> Outcome {
    let id = intent_id(args)?;
    let since = args.get("since").and_then(Value::as_i64).unwrap_or(0);
    let row = intents::read(&ctx.state.store, &access, &id).await?;
    let store = ctx.state.store.clone();
    let read = || {
        let (store, id) = (store.clone(), id.clone());
        async move {
            let rows = intents::events(&store, &id, since).await?;
            Ok((!rows.is_empty()).then_some(rows))
        }
    };
    let rows = if wait.is_zero() {
        read().await?
    } else {
        sse::long_poll(
            &ctx.state,
            &ctx.principal,
            wait,
            Topic::Intent(id.clone()),
            None,
            read,
        )
        .await?
    }
    .unwrap_or_default();
    let next = rows.last().map_or(since, |e| e.seq);
    Ok(
        json!({"intent_id": row.intent_id, "events": to_value(&wire::Event::list(&rows)?)?, "next_since": next}),
    )
}

/// `axme.intents_cancel` (`resolve` with CANCELED, as sender or handler) and
/// `axme.intents_resume` (as handler).
pub async fn change(ctx: &Ctx, access: Access, tool: &str, args: &Value) -> Outcome {
    let id = intent_id(args)?;
    let caller = ctx.principal.address();
    // An agent key's real identity is recorded beside an actor it claims, as over REST.
    let by = (!ctx.principal.is_admin()).then(|| caller.clone());
    let cancel = tool == "axme.intents_cancel";
    let changed = if cancel {
        // `resolve` needs a reason to cancel; a model that gives none cancels "by request".
        let reason = str_arg(args, "reason").unwrap_or("canceled by request");
        let body = json!({"status": "CANCELED", "reason": reason});
        let r = requests::resolve(&body)?;
        intents::resolve_now(&ctx.state.store, &access, &id, r, &caller, by.as_deref()).await?
    } else {
        let r = crate::service::resume::request(&body_of(args, &["intent_id"]))?;
        crate::service::resume::resume_now(
            &ctx.state.store,
            &access,
            &id,
            r,
            &caller,
            by.as_deref(),
        )
        .await?
        .changed
    };
    let event = match changed.last_event() {
        Some(e) => to_value(&wire::Event::from_row(e)?)?,
        None => Value::Null,
    };
    Ok(json!({"intent": to_value(&wire::Intent::from_row(&changed.intent)?)?, "event": event}))
}
