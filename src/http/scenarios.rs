//! Handlers of scenario bundles (`/v1/scenarios/validate`, `/v1/scenarios/apply`) and the
//! workflow view of an intent (`GET /v1/intents/{id}/workflow`, an extension). The checks and
//! the apply itself live in `service::scenarios`; this file reads and renders.

use hyper::body::Incoming;
use hyper::Response;
use serde_json::{json, Value};

use super::request;
use super::response::{self, from_rendered, Body};
use super::Ctx;
use crate::model::builtin::WORKFLOW;
use crate::service::access::Access;
use crate::service::idempotency::{self, write_once, Rendered, Scope};
use crate::service::{scenarios, workflow};
use crate::Error;

type Result = std::result::Result<Response<Body>, Error>;

fn problems(list: &[(String, String)]) -> (Vec<String>, Vec<Value>) {
    let lines = list.iter().map(|(p, m)| format!("{p}: {m}")).collect();
    let items = list
        .iter()
        .map(|(p, m)| json!({"path": p, "message": m}))
        .collect();
    (lines, items)
}

/// `POST /v1/scenarios/validate`: every problem of the bundle, nothing written. `errors` and
/// `warnings` are lines `"<JSON path>: <message>"` (what AXME's CLI prints); `error_details`
/// and `warning_details` hold the same as `{path, message}`.
pub async fn validate(ctx: Ctx, body: Incoming) -> Result {
    let body = ctx.json(body).await?;
    response::ok(&validate_from(&ctx, body).await?)
}

/// The report of `POST /v1/scenarios/validate` on a read body: what it and the MCP tool
/// `axme.scenarios_validate` both answer.
pub(crate) async fn validate_from(ctx: &Ctx, body: Value) -> std::result::Result<Value, Error> {
    let max = ctx.state.limits.max_payload_bytes;
    let report = ctx
        .state
        .store
        .read(move |c| scenarios::validate(c, &body, max))
        .await?;
    let (errors, error_details) = problems(&report.errors);
    let (warnings, warning_details) = problems(&report.warnings);
    Ok(json!({
        "ok": true,
        "valid": errors.is_empty(),
        "errors": errors,
        "warnings": warnings,
        "error_details": error_details,
        "warning_details": warning_details,
    }))
}

/// `POST /v1/scenarios/apply`: 422 naming the first problem's path, or the applied bundle.
/// Idempotent under `Idempotency-Key` or the bundle's own `idempotency_key`.
pub async fn apply(ctx: Ctx, body: Incoming) -> Result {
    let body = ctx.json(body).await?;
    let scope = ctx.idempotency("POST /v1/scenarios/apply".into(), &body)?;
    Ok(from_rendered(apply_from(&ctx, &body, scope).await?))
}

/// Applies a read bundle under an idempotency scope (else the bundle's own `idempotency_key`)
/// and renders the answer: what `POST /v1/scenarios/apply` and the MCP tool
/// `axme.scenarios_apply` both do.
pub(crate) async fn apply_from(
    ctx: &Ctx,
    body: &Value,
    scope: Option<Scope>,
) -> std::result::Result<Rendered, Error> {
    Access::of(&ctx.principal).require(WORKFLOW, "applying a scenario for")?;
    let (report, bundle) = scenarios::check(body, ctx.state.limits.max_payload_bytes);
    if let Some((path, message)) = report.errors.first() {
        let more = match report.errors.len() {
            1 => String::new(),
            n => format!(
                " (and {} more: POST /v1/scenarios/validate lists them)",
                n - 1
            ),
        };
        return Err(Error::invalid(path.clone(), format!("{message}{more}")));
    }
    let bundle =
        bundle.ok_or_else(|| Error::internal("a bundle without errors did not compile"))?;
    let scope = match scope {
        Some(s) => Some(s),
        None => bundle.idempotency_key.clone().map(|key| Scope {
            key_id: ctx.principal.key_id.clone(),
            endpoint: "POST /v1/scenarios/apply".into(),
            key,
            request_hash: idempotency::request_hash(body),
        }),
    };
    let caller = ctx.principal.address();
    let quota = super::intents::live_quota(ctx);
    let mut rendered = write_once(
        &ctx.state.store,
        scope,
        move |c| scenarios::apply(c, bundle, &caller, quota.as_ref()),
        |a| {
            let agents: Vec<Value> = a
                .agents
                .iter()
                .map(|(role, address, created)| {
                    json!({"role": role, "address": address, "created": created})
                })
                .collect();
            let provisioned: Vec<&String> = a
                .agents
                .iter()
                .filter(|(_, _, created)| *created)
                .map(|(_, address, _)| address)
                .collect();
            response::render(&json!({
                "ok": true,
                "intent_id": a.intent.intent_id,
                "scenario_id": a.scenario_id,
                "status": a.intent.status.as_str(),
                "lifecycle_status": a.intent.status.as_str(),
                "pending_with": a.pending_with,
                "compile_id": a.compile_id,
                "workflow_compile_id": a.compile_id,
                "idempotent": false,
                "agents": agents,
                "agents_provisioned": provisioned,
                "humans": a.humans.iter().map(|(role, address)| json!({"role": role, "address": address})).collect::<Vec<_>>(),
                "deadline_at": a.intent.deadline_at,
                "created_at": a.intent.created_at,
            }))
        },
    )
    .await?;
    if rendered.replayed {
        // The stored answer, marked as the idempotent match it now is.
        if let Ok(mut v) = serde_json::from_slice::<Value>(&rendered.body) {
            v["idempotent"] = json!(true);
            rendered.body = serde_json::to_vec(&v)?;
        }
    }
    Ok(rendered)
}

/// `GET /v1/intents/{id}/workflow`: the compiled steps, which one runs, and every run of a
/// step with the intent that carries it and its result.
pub async fn workflow(ctx: Ctx) -> Result {
    let id = request::intent_id(ctx.param(0))?;
    let access = Access::of(&ctx.principal);
    let (row, runs) = ctx
        .state
        .store
        .read(move |c| {
            access.read(c, &id)?;
            workflow::view(c, &id)
        })
        .await?;
    let doc = |s: &Option<String>| {
        s.as_deref()
            .and_then(|s| serde_json::from_str::<Value>(s).ok())
            .unwrap_or(Value::Null)
    };
    let spec: Value = serde_json::from_str(&row.spec)?;
    let runs: Vec<Value> = runs
        .iter()
        .map(|r| {
            json!({
                "step_id": r.step_id,
                "status": r.status,
                "step_intent_id": r.step_intent_id,
                "result": doc(&r.result),
                "started_at": r.started_at,
                "ended_at": r.ended_at,
            })
        })
        .collect();
    response::ok(&json!({
        "ok": true,
        "workflow": {
            "intent_id": row.intent_id,
            "compile_id": row.compile_id,
            "scenario_id": row.scenario_id,
            "entry_step": spec["entry_step"],
            "current_step": row.current_step,
            "steps": spec["steps"],
            "runs": runs,
            "created_at": row.created_at,
            "updated_at": row.updated_at,
        }
    }))
}
