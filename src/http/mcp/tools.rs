//! The MCP tools, named as AXME names them, each with its JSON Schema `inputSchema` (checked
//! with the same validator as payload schemas before the tool runs). Each tool does what its
//! REST route does, through the same service functions and the same `Access` of the caller's
//! key: `axme.intents_send` is `POST /v1/intents`, `axme.tasks_approve` is
//! `POST /v1/approvals/{id}/decision`, and so on. Results are the REST answers' JSON.
//!
//! Every tool also takes `owner_agent` and `idempotency_key`, which the AXME SDKs add to every
//! call: `owner_agent` is the owner scope of the inbox tools, and `idempotency_key` makes
//! `axme.intents_send` replay-safe exactly like an `Idempotency-Key` on `POST /v1/intents`.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::http::{request, wire, Ctx};
use crate::service::access::Access;
use crate::service::idempotency::{self, Scope};
use crate::service::inbox::{self, Decision};
use crate::service::{agents, inbox_view, operator, users, validate};
use crate::Error;

mod intents;

type Outcome = Result<Value, Error>;

/// One tool: its name, a title and description for the model, and its input schema's
/// properties and required names (the common `owner_agent` and `idempotency_key` are added).
pub struct Tool {
    pub name: &'static str,
    title: &'static str,
    description: &'static str,
    properties: fn() -> Value,
    required: &'static [&'static str],
}

const INTENT_ID: &str = "The intent's id (a UUID).";

/// The `bundle` argument of the scenario tools (the server checks it as `POST
/// /v1/scenarios/validate` does, every problem by its JSON path).
fn bundle_schema() -> Value {
    json!({"type": "object", "description": "A ScenarioBundle: {scenario_id, agents: [{role, address, delivery_mode?}], humans?, workflow: {steps}, intent: {type, payload}, ...} as POST /v1/scenarios/apply takes it."})
}

const TOOLS: &[Tool] = &[
    Tool { name: "axme.status", title: "Server status", description: "The server's version and schema version.", properties: || json!({}), required: &[] },
    Tool { name: "axme.whoami", title: "Who am I", description: "The API key this connection uses: its name, role and the agent addresses it acts for.", properties: || json!({}), required: &[] },
    Tool { name: "axme.check_nick", title: "Check a nick", description: "Whether a @nick is free, and the public address it would have.", properties: || json!({"nick": {"type": "string", "minLength": 1, "maxLength": 64, "description": "The nick, e.g. @alice."}}), required: &["nick"] },
    Tool { name: "axme.register_nick", title: "Register a nick", description: "Registers a @nick: for an agent key, as the user of its own address; for an admin key, a new user with a new inbox address.", properties: || json!({"nick": {"type": "string", "minLength": 1, "maxLength": 64}, "display_name": {"type": "string", "minLength": 1, "maxLength": 120}, "phone": {"type": "string"}, "email": {"type": "string"}}), required: &["nick"] },
    Tool { name: "axme.get_profile", title: "A user's profile", description: "The profile of the user whose inbox is owner_agent (by default, this key's own address).", properties: || json!({}), required: &[] },
    Tool { name: "axme.intents_send", title: "Send an intent", description: "Sends an intent to an agent: it is stored, delivered to the agent and followed until it completes, fails or is canceled. Returns its intent_id.", properties: || json!({
        "to_agent": {"type": "string", "minLength": 3, "description": "The receiving agent, e.g. agent://team/billing."},
        "intent_type": {"type": "string", "description": "e.g. billing.invoice.send.v1 (default intent.ask.v1)."},
        "payload": {"type": "object", "description": "What the agent is asked to do."},
        "correlation_id": {"type": "string", "description": "A UUID tying related intents together (new by default)."},
        "from_agent": {"type": "string"}, "reply_to": {"type": "string"},
        "deadline_at": {"type": "string", "description": "RFC 3339 time after which the intent times out."},
        "human_task": {"type": "object", "description": "A task for a person: {title, description?, task_type?, allowed_outcomes?, ...}."}
    }), required: &["to_agent"] },
    Tool { name: "axme.intents_get", title: "Get an intent", description: "An intent with its status, payload and result.", properties: || json!({"intent_id": {"type": "string", "description": INTENT_ID}}), required: &["intent_id"] },
    Tool { name: "axme.intents_list", title: "List intents", description: "Intents newest first, filtered by receiver, sender or status (an agent key must name one of its addresses).", properties: || json!({"to_agent": {"type": "string"}, "from_agent": {"type": "string"}, "status": {"type": "string"}, "limit": {"type": "integer", "minimum": 1, "maximum": 200}}), required: &[] },
    Tool { name: "axme.intents_log", title: "An intent's events", description: "The events of an intent after sequence number since (0 for all).", properties: || json!({"intent_id": {"type": "string", "description": INTENT_ID}, "since": {"type": "integer", "minimum": 0}}), required: &["intent_id"] },
    Tool { name: "axme.intents_watch", title: "Wait for an intent's next events", description: "Like axme.intents_log, but waits up to wait_seconds for an event after since.", properties: || json!({"intent_id": {"type": "string", "description": INTENT_ID}, "since": {"type": "integer", "minimum": 0}, "wait_seconds": {"type": "integer", "minimum": 0, "maximum": 30}}), required: &["intent_id"] },
    Tool { name: "axme.intents_cancel", title: "Cancel an intent", description: "Cancels an intent this key sent or handles, with a reason.", properties: || json!({"intent_id": {"type": "string", "description": INTENT_ID}, "reason": {"type": "string", "maxLength": 1000}}), required: &["intent_id"] },
    Tool { name: "axme.intents_resume", title: "Resume a waiting intent", description: "Resumes a WAITING intent this key handles (approve_current_step, actor, reason, task_result, ...).", properties: || json!({"intent_id": {"type": "string", "description": INTENT_ID}, "approve_current_step": {"type": "boolean"}, "actor": {"type": "string"}, "reason": {"type": "string"}, "task_result": {"type": "object"}}), required: &["intent_id"] },
    Tool { name: "axme.tasks_list", title: "Pending human tasks", description: "Human tasks waiting in the inbox of owner_agent (by default, this key's own address).", properties: || json!({}), required: &[] },
    Tool { name: "axme.tasks_approve", title: "Approve a task", description: "Approves a waiting human task: the intent completes with the decision as its result.", properties: || json!({"intent_id": {"type": "string", "description": INTENT_ID}, "comment": {"type": "string", "maxLength": 1000}}), required: &["intent_id"] },
    Tool { name: "axme.tasks_reject", title: "Reject a task", description: "Rejects a waiting human task: the intent fails with code rejected.", properties: || json!({"intent_id": {"type": "string", "description": INTENT_ID}, "comment": {"type": "string", "maxLength": 1000}}), required: &["intent_id"] },
    Tool { name: "axme.generate_invite_link", title: "Invite someone", description: "A one-time invite link from owner_agent (by default, this key's own address); whoever accepts it with a nick becomes a user with a key.", properties: || json!({"recipient_hint": {"type": "string", "minLength": 1, "maxLength": 255}, "ttl_seconds": {"type": "integer", "minimum": 60, "maximum": 1209600}}), required: &[] },
    Tool { name: "axme.media_get_upload", title: "An upload's status", description: "A media upload's status and, once ready, its download_url.", properties: || json!({"upload_id": {"type": "string"}}), required: &["upload_id"] },
    Tool { name: "axme.scenarios_validate", title: "Check a scenario bundle", description: "Checks a ScenarioBundle (agents, humans, workflow, intent) without writing anything: every error and warning with its JSON path.", properties: || json!({"bundle": bundle_schema()}), required: &["bundle"] },
    Tool { name: "axme.scenarios_apply", title: "Apply a scenario bundle", description: "Applies a ScenarioBundle in one transaction: its agents provisioned, its workflow compiled, its intent created and its first step started. Returns the intent_id; the same bundle again (or the same idempotency_key) answers the first intent with idempotent true.", properties: || json!({"bundle": bundle_schema()}), required: &["bundle"] },
    Tool { name: "axme.agents_list", title: "List agents", description: "The registered agents this key may see, with their delivery modes.", properties: || json!({}), required: &[] },
];

/// Properties every tool takes.
const COMMON: &[&str] = &["owner_agent", "idempotency_key"];

fn input_schema(t: &Tool) -> Value {
    let mut props = match (t.properties)() {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    props.insert("owner_agent".into(), json!({"type": "string", "description": "The owner scope (an agent address this key acts for)."}));
    props.insert(
        "idempotency_key".into(),
        json!({"type": "string", "minLength": 1, "maxLength": 255}),
    );
    json!({"type": "object", "properties": props, "required": t.required, "additionalProperties": false})
}

/// Every tool as `tools/list` shows it.
pub fn list() -> Vec<Value> {
    TOOLS
        .iter()
        .map(|t| json!({"name": t.name, "title": t.title, "description": t.description, "inputSchema": input_schema(t)}))
        .collect()
}

pub fn find(name: &str) -> Option<&'static Tool> {
    TOOLS.iter().find(|t| t.name == name)
}

fn validators() -> &'static HashMap<&'static str, jsonschema::Validator> {
    static V: OnceLock<HashMap<&'static str, jsonschema::Validator>> = OnceLock::new();
    V.get_or_init(|| {
        TOOLS
            .iter()
            .filter_map(|t| Some((t.name, jsonschema::validator_for(&input_schema(t)).ok()?)))
            .collect()
    })
}

/// Refuses arguments that break the tool's input schema, naming the pointer of each fault.
pub fn check_arguments(t: &Tool, args: &Value) -> Result<(), Error> {
    let Some(v) = validators().get(t.name) else {
        return Err(Error::internal(format!(
            "the input schema of {} does not compile",
            t.name
        )));
    };
    let faults: Vec<String> = v
        .iter_errors(args)
        .take(20)
        .map(|e| {
            let p = e.instance_path().as_str().to_string();
            format!("{}: {e}", if p.is_empty() { "/" } else { &p })
        })
        .collect();
    match faults.first() {
        None => Ok(()),
        Some(_) => Err(Error::Invalid {
            code: "invalid_arguments",
            field: "arguments".into(),
            reason: faults.join("; "),
        }),
    }
}

fn to_value<T: Serialize>(v: &T) -> Outcome {
    Ok(serde_json::to_value(v)?)
}

fn str_arg<'a>(args: &'a Value, name: &str) -> Option<&'a str> {
    args.get(name).and_then(Value::as_str)
}

/// The arguments without the common ones and `drop`, as a REST body.
fn body_of(args: &Value, drop: &[&str]) -> Value {
    let mut m = args.as_object().cloned().unwrap_or_default();
    m.retain(|k, _| !COMMON.contains(&k.as_str()) && !drop.contains(&k.as_str()));
    Value::Object(m)
}

fn intent_id(args: &Value) -> Result<String, Error> {
    request::intent_id(str_arg(args, "intent_id").unwrap_or(""))
}

/// The owner scope from `owner_agent`, checked like `x-owner-agent` on the inbox routes.
fn owner(access: &Access, args: &Value) -> Result<Option<String>, Error> {
    let given = str_arg(args, "owner_agent")
        .map(|o| validate::address("owner_agent", o))
        .transpose()?;
    access.owner_scope(given)
}

pub async fn run(ctx: &Ctx, t: &Tool, args: &Value) -> Outcome {
    let access = Access::of(&ctx.principal);
    let store = &ctx.state.store;
    match t.name {
        "axme.status" => {
            let schema_version = store.read(operator::schema_version).await?;
            Ok(json!({"version": env!("CARGO_PKG_VERSION"), "schema_version": schema_version}))
        }
        "axme.whoami" => {
            let p = &ctx.principal;
            Ok(
                json!({"key_id": p.key_id, "name": p.name, "role": p.role, "agents": p.agents, "address": p.address()}),
            )
        }
        "axme.check_nick" => {
            let raw = str_arg(args, "nick").unwrap_or("").to_string();
            let nick = users::nick("nick", &raw)?;
            let n = nick.clone();
            let available = store.read(move |c| users::available(c, &n)).await?;
            Ok(
                json!({"nick": raw, "normalized_nick": nick.normalized, "public_address": users::public_address(&nick.normalized), "available": available}),
            )
        }
        "axme.register_nick" => {
            let req = users::register_request(&body_of(args, &[]))?;
            let user = store
                .write(move |c| users::register(c, &access, req))
                .await?;
            to_value(&wire::people::User::from_row(
                &user,
                wire::people::UserShape::Registered,
            ))
        }
        "axme.get_profile" => {
            let owner = owner(&access, args)?
                .ok_or_else(|| Error::invalid("owner_agent", "is required with an admin key"))?;
            let user = store
                .read(move |c| users::profile_of(c, &access, &owner))
                .await?;
            to_value(&wire::people::User::from_row(
                &user,
                wire::people::UserShape::Profile,
            ))
        }
        "axme.intents_send" => intents::send(ctx, access, args).await,
        "axme.intents_get" => {
            let id = intent_id(args)?;
            let row = store.read(move |c| access.read(c, &id)).await?;
            Ok(json!({"intent": to_value(&wire::Intent::from_row(&row)?)?}))
        }
        "axme.intents_list" => intents::list(ctx, access, args).await,
        "axme.intents_log" => intents::events(ctx, access, args, Duration::ZERO).await,
        "axme.intents_watch" => {
            let wait = args
                .get("wait_seconds")
                .and_then(Value::as_u64)
                .unwrap_or(10);
            intents::events(ctx, access, args, Duration::from_secs(wait)).await
        }
        "axme.intents_cancel" | "axme.intents_resume" => {
            intents::change(ctx, access, t.name, args).await
        }
        "axme.tasks_list" => {
            let owner = owner(&access, args)?;
            let views = store
                .read(move |c| inbox_view::tasks(c, owner.as_deref()))
                .await?;
            let mut seen = std::collections::HashSet::new();
            let tasks = views
                .iter()
                .filter(|v| seen.insert(v.intent.intent_id.clone()))
                .map(|v| {
                    to_value(&wire::Task {
                        intent_id: &v.intent.intent_id,
                        intent_type: &v.intent.intent_type,
                        status: "WAITING",
                        from_agent: &v.intent.from_agent,
                        assigned_at: &v.thread.created_at,
                        due_at: v.intent.deadline_at.as_deref(),
                        human_task: inbox_view::task_spec(&v.intent)?,
                    })
                })
                .collect::<Result<Vec<_>, Error>>()?;
            Ok(json!({"tasks": tasks}))
        }
        "axme.tasks_approve" | "axme.tasks_reject" => {
            let decision = if t.name == "axme.tasks_approve" {
                Decision::Approve
            } else {
                Decision::Reject
            };
            let id = intent_id(args)?;
            let owner = owner(&access, args)?;
            let comment = str_arg(args, "comment").map(str::to_string);
            let operator = access.is_admin();
            let d = store
                .write(move |c| {
                    inbox::decide(
                        c,
                        owner.as_deref(),
                        operator,
                        &id,
                        decision,
                        comment.as_deref(),
                    )
                })
                .await?;
            Ok(json!({
                "intent_id": d.view.intent.intent_id,
                "decision": d.decision.as_str(),
                "comment": d.comment,
                "decided_at": d.decided_at,
                "intent_status": d.view.intent.status.as_str(),
            }))
        }
        "axme.generate_invite_link" => {
            let owner = owner(&access, args)?
                .ok_or_else(|| Error::invalid("owner_agent", "is required with an admin key"))?;
            let mut body = body_of(args, &[]);
            body["owner_agent"] = json!(owner);
            let req = crate::service::invites::create_request(&body)?;
            let token = crate::service::invites::new_token()?;
            let t = token.clone();
            let row = store
                .write(move |c| {
                    crate::service::invites::create(c, &access, req, &t, crate::clock::now())
                })
                .await?;
            let url = format!("{}/v1/invites/{token}", ctx.state.public_url());
            to_value(&wire::people::InviteCreated::new(&row, &token, url))
        }
        "axme.media_get_upload" => {
            let id = validate::uuid("upload_id", str_arg(args, "upload_id").unwrap_or(""))?;
            let row = store
                .read(move |c| crate::service::media::readable(c, &access, &id))
                .await?;
            let status = crate::service::media::status_at(&row, crate::clock::now());
            let url = (status == "ready").then(|| {
                format!(
                    "{}/v1/media/{}/content",
                    ctx.state.public_url(),
                    row.upload_id
                )
            });
            to_value(&wire::media::UploadEnvelope::new(&row, status, url))
        }
        "axme.scenarios_validate" => {
            let bundle = args.get("bundle").cloned().unwrap_or_default();
            let mut v = crate::http::scenarios::validate_from(ctx, bundle).await?;
            if let Some(m) = v.as_object_mut() {
                m.remove("ok");
            }
            Ok(v)
        }
        "axme.scenarios_apply" => {
            let bundle = args.get("bundle").cloned().unwrap_or_default();
            let scope = str_arg(args, "idempotency_key").map(|k| Scope {
                key_id: ctx.principal.key_id.clone(),
                endpoint: "POST /v1/scenarios/apply".into(),
                key: k.to_string(),
                request_hash: idempotency::request_hash(&bundle),
            });
            let rendered = crate::http::scenarios::apply_from(ctx, &bundle, scope).await?;
            let mut v: Value = serde_json::from_slice(&rendered.body)?;
            if let Some(m) = v.as_object_mut() {
                m.remove("ok");
            }
            Ok(v)
        }
        "axme.agents_list" => {
            let mut entries = store.read(agents::entries).await?;
            entries.retain(|e| access.owns(&e.agent.address));
            let list = entries
                .iter()
                .map(|e| to_value(&wire::Agent::from_entry(e, None)))
                .collect::<Result<Vec<_>, Error>>()?;
            Ok(json!({"agents": list}))
        }
        other => Err(Error::internal(format!(
            "tool {other} has no implementation"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_input_schema_compiles_and_names_are_unique() {
        assert_eq!(validators().len(), TOOLS.len());
        let mut names: Vec<&str> = TOOLS.iter().map(|t| t.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), TOOLS.len());
        for t in TOOLS {
            for r in t.required {
                assert!(
                    input_schema(t)["properties"].get(*r).is_some(),
                    "{}: {r}",
                    t.name
                );
            }
        }
    }

    #[test]
    fn arguments_are_checked_against_the_schema_with_pointers() {
        let Some(t) = find("axme.intents_watch") else {
            panic!("axme.intents_watch is a tool");
        };
        assert!(check_arguments(t, &json!({"intent_id": "x", "wait_seconds": 3})).is_ok());
        let e = check_arguments(t, &json!({"wait_seconds": 99, "extra": true})).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("/wait_seconds") && text.contains("intent_id"),
            "{text}"
        );
    }
}
