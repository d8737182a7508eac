//! Scenario bundles (AXME `ScenarioBundle`): reading one into a checked, compiled workflow, and
//! applying it. A check collects every problem it finds, each named by its JSON path
//! (`workflow.steps[1].assigned_to`), so `validate` can list them all; `apply` refuses a bundle
//! with any error (422 naming the first path) and otherwise, in one transaction, provisions the
//! agents, stores the compiled workflow, creates its intent and starts its entry step.
//!
//! The bundle follows AXME's reference document and CLI where the published schema lags them:
//! `title`, `agents[].delivery_mode` and `humans[]` without `contact` are accepted. A field this
//! server does not know is a warning, not an error, so AXME's own bundles apply unchanged.
//! A human whose `contact` names a user (`@nick`, `user_id`) is bound to that user's inbox.

use serde_json::{json, Map, Value};

use super::agents::{self, DeliveryMode, RegisterAgent};
use super::requests::CreateIntent;
use super::scenario_fields::{
    address, array, boolean, int, object, resolve_role, text, unknown, Report, Roles,
    BUILTIN_PREFIX,
};
use super::workflow;
use super::workflow_steps::{self, Kind, StepSpec};
use super::{effects, intents, users, validate};
use crate::clock;
use crate::model::builtin::WORKFLOW;
use crate::store::agents as agent_rows;
use crate::store::intents::IntentRow;
use crate::store::users as user_rows;
use crate::store::workflows::{self, WorkflowRow};
use crate::store::Tx;
use crate::Error;

/// An agent of a bundle, as it will be provisioned.
#[derive(Debug, Clone)]
pub struct AgentSpec {
    pub role: String,
    pub address: String,
    pub display_name: Option<String>,
    pub mode: Option<DeliveryMode>,
    pub create_if_missing: bool,
    pub webhook_url: Option<String>,
}

/// A human of a bundle: its role's address, and the user its `contact` names, if any.
#[derive(Debug, Clone)]
pub struct HumanSpec {
    pub role: String,
    pub address: String,
    /// `contact` when it names a user (`@nick` or a `user_id`) and no `address` was given.
    pub user: Option<String>,
    /// The JSON path of `contact`.
    path: String,
}

/// A checked bundle, ready to apply.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub scenario_id: String,
    pub idempotency_key: Option<String>,
    pub agents: Vec<AgentSpec>,
    pub humans: Vec<HumanSpec>,
    pub steps: Vec<StepSpec>,
    pub entry_step: Option<String>,
    pub intent: CreateIntent,
}

const TOP: &[&str] = &[
    "scenario_id",
    "title",
    "description",
    "idempotency_key",
    "agents",
    "humans",
    "workflow",
    "intent",
];
const AGENT: &[&str] = &[
    "role",
    "address",
    "display_name",
    "delivery_mode",
    "create_if_missing",
    "callback_url",
    "webhook_url",
];
const HUMAN: &[&str] = &["role", "contact", "display_name", "address"];
const INTENT: &[&str] = &[
    "type",
    "payload",
    "deadline_at",
    "remind_after_seconds",
    "remind_interval_seconds",
    "max_reminders",
    "escalate_to",
    "max_delivery_attempts",
    "correlation_id",
];

/// Checks a bundle and compiles it. `max_payload_bytes` bounds `intent.payload`.
pub fn check(body: &Value, max_payload_bytes: usize) -> (Report, Option<Bundle>) {
    let mut r = Report::default();
    let Some(top) = body.as_object() else {
        r.error("$", "a scenario bundle must be a JSON object");
        return (r, None);
    };
    unknown(&mut r, top, TOP, "");
    let scenario_id = text(&mut r, top, "scenario_id", "", (3, 255), true).map(str::to_string);
    if let Some(id) = &scenario_id {
        let ok = id.split('.').all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        });
        if !ok {
            r.error("scenario_id", "must match ^[a-z0-9_]+(\\.[a-z0-9_]+)*$");
        }
    }
    text(&mut r, top, "title", "", (0, 255), false);
    text(&mut r, top, "description", "", (0, 4000), false);
    let idempotency_key = text(&mut r, top, "idempotency_key", "", (1, 255), false);

    let mut roles: Roles = Vec::new();
    let mut agent_specs = Vec::new();
    let mut humans = Vec::new();
    for (i, a) in array(&mut r, top, "agents", 50).iter().enumerate() {
        let at = format!("agents[{i}]");
        let Some(a) = a.as_object() else {
            r.error(at, "must be an object");
            continue;
        };
        unknown(&mut r, a, AGENT, &at);
        if let Some(spec) = agent(&mut r, a, &at, &roles) {
            roles.push((spec.role.clone(), spec.address.clone(), false));
            agent_specs.push(spec);
        }
    }
    for (i, h) in array(&mut r, top, "humans", 20).iter().enumerate() {
        let at = format!("humans[{i}]");
        let Some(h) = h.as_object() else {
            r.error(at, "must be an object");
            continue;
        };
        unknown(&mut r, h, HUMAN, &at);
        let role = text(&mut r, h, "role", &at, (1, 100), true);
        let contact = text(&mut r, h, "contact", &at, (1, 255), false);
        text(&mut r, h, "display_name", &at, (0, 255), false);
        let given = text(&mut r, h, "address", &at, (1, 383), false);
        let addr = match given {
            Some(raw) => address(&mut r, raw, &format!("{at}.address")),
            None => role.map(|role| format!("agent://human/{role}")),
        };
        if let (Some(role), Some(addr)) = (role, addr) {
            if roles.iter().any(|(r, _, _)| r == role) {
                r.error(format!("{at}.role"), format!("{role} is already a role"));
            }
            roles.push((role.to_string(), addr.clone(), true));
            let names_user = |c: &&str| c.starts_with('@') || uuid::Uuid::parse_str(c).is_ok();
            humans.push(HumanSpec {
                role: role.to_string(),
                address: addr,
                user: contact
                    .filter(|_| given.is_none())
                    .filter(names_user)
                    .map(str::to_string),
                path: format!("{at}.contact"),
            });
        }
    }

    let intent = match object(&mut r, top, "intent", "") {
        None => {
            if !top.contains_key("intent") {
                r.error("intent", "is required");
            }
            None
        }
        Some(i) => intent_spec(&mut r, i, &roles, max_payload_bytes),
    };
    let (steps, entry_step) = match object(&mut r, top, "workflow", "") {
        Some(w) => workflow_steps::check_workflow(&mut r, w, &roles),
        None => {
            if agent_specs.len() != 1 {
                r.error(
                    "workflow",
                    "is required unless the bundle has exactly one agent",
                );
            }
            let step = agent_specs.first().map(|a| StepSpec::plain(&a.address));
            (step.into_iter().collect(), None)
        }
    };
    let bundle = match (r.errors.is_empty(), scenario_id, intent) {
        (true, Some(scenario_id), Some(intent)) => Some(Bundle {
            scenario_id,
            idempotency_key: idempotency_key.map(str::to_string),
            agents: agent_specs,
            humans,
            steps,
            entry_step,
            intent,
        }),
        _ => None,
    };
    (r, bundle)
}

fn agent(r: &mut Report, a: &Map<String, Value>, at: &str, roles: &Roles) -> Option<AgentSpec> {
    let role = text(r, a, "role", at, (1, 100), true);
    let addr = text(r, a, "address", at, (1, 383), true)
        .and_then(|raw| address(r, raw, &format!("{at}.address")));
    let display_name = text(r, a, "display_name", at, (0, 255), false).map(str::to_string);
    let mode = match text(r, a, "delivery_mode", at, (1, 32), false) {
        None => None,
        Some(m) => match DeliveryMode::parse(m) {
            Some(m) => Some(m),
            None => {
                r.error(
                    format!("{at}.delivery_mode"),
                    "must be one of stream, poll, http, inbox, internal",
                );
                None
            }
        },
    };
    let create_if_missing = boolean(r, a, "create_if_missing", at).unwrap_or(false);
    let mut webhook_url = None;
    for key in ["callback_url", "webhook_url"] {
        if let Some(url) = text(r, a, key, at, (1, 2048), false) {
            match agents::check_url(&format!("{at}.{key}"), url) {
                Ok(()) => webhook_url = Some(url.to_string()),
                Err(e) => r.error(format!("{at}.{key}"), e.to_string()),
            }
        }
    }
    if mode == Some(DeliveryMode::Http) && webhook_url.is_none() && create_if_missing {
        r.error(
            format!("{at}.callback_url"),
            "is required when delivery_mode is http",
        );
    }
    if addr
        .as_deref()
        .is_some_and(|a| a.starts_with(BUILTIN_PREFIX))
    {
        r.error(
            format!("{at}.address"),
            "agent://internal/ names the built-in agents; a bundle does not provision them",
        );
    }
    let (role, address) = (role?, addr?);
    if roles.iter().any(|(r, _, _)| r == role) {
        r.error(format!("{at}.role"), format!("{role} is already a role"));
    }
    Some(AgentSpec {
        role: role.to_string(),
        address,
        display_name,
        mode,
        create_if_missing,
        webhook_url,
    })
}

fn intent_spec(
    r: &mut Report,
    i: &Map<String, Value>,
    roles: &Roles,
    max_payload_bytes: usize,
) -> Option<CreateIntent> {
    unknown(r, i, INTENT, "intent");
    let intent_type = text(r, i, "type", "intent", (3, 255), true);
    if intent_type.is_some_and(|t| !validate::is_intent_type(t)) {
        r.error(
            "intent.type",
            "must match ^[a-z0-9_]+(\\.[a-z0-9_]+)+\\.v[0-9]+$ (e.g. intent.deployment.approval.v1)",
        );
    }
    let payload = object(r, i, "payload", "intent")
        .cloned()
        .unwrap_or_default();
    let payload = serde_json::to_string(&payload).unwrap_or_else(|_| "{}".into());
    if payload.len() > max_payload_bytes {
        r.error(
            "intent.payload",
            format!("is larger than {max_payload_bytes} bytes"),
        );
    }
    let deadline_at = text(r, i, "deadline_at", "intent", (1, 64), false).and_then(|s| {
        let t = clock::parse(s).filter(|t| (0..=9999).contains(&t.year()));
        if t.is_none() {
            r.error("intent.deadline_at", "must be an RFC 3339 date-time");
        }
        t.map(clock::format)
    });
    let correlation_id = match text(r, i, "correlation_id", "intent", (1, 64), false) {
        None => Some(uuid::Uuid::new_v4().to_string()),
        Some(c) => match validate::uuid("intent.correlation_id", c) {
            Ok(c) => Some(c),
            Err(_) => {
                r.error("intent.correlation_id", "must be a UUID");
                None
            }
        },
    };
    let escalate_to = text(r, i, "escalate_to", "intent", (1, 383), false)
        .and_then(|raw| resolve_role(r, raw, "intent.escalate_to", roles))
        .map(|(a, _)| a);
    let max_delivery_attempts = int(r, i, "max_delivery_attempts", "intent", 1);
    if max_delivery_attempts.is_some_and(|n| n > 1000) {
        r.error("intent.max_delivery_attempts", "must be at most 1000");
    }
    Some(CreateIntent {
        intent_type: intent_type?.to_string(),
        correlation_id: correlation_id?,
        from_agent: None,
        to_agent: WORKFLOW.to_string(),
        reply_to: None,
        payload,
        deadline_at,
        remind_after_seconds: int(r, i, "remind_after_seconds", "intent", 1),
        remind_interval_seconds: int(r, i, "remind_interval_seconds", "intent", 1),
        max_reminders: int(r, i, "max_reminders", "intent", 1),
        escalate_to,
        max_delivery_attempts,
        human_task: None,
    })
}

/// `POST /v1/scenarios/validate`: the check, plus warnings that need the registry (agents that
/// are neither registered nor created, who will have to pull their steps).
pub fn validate(conn: &Tx, body: &Value, max_payload_bytes: usize) -> Result<Report, Error> {
    let (mut report, mut bundle) = check(body, max_payload_bytes);
    if let Some(b) = bundle.as_mut() {
        bind_humans(conn, b, &mut report)?;
    }
    for (i, a) in bundle.iter().flat_map(|b| b.agents.iter().enumerate()) {
        if !a.create_if_missing && agent_rows::get(conn, &a.address)?.is_none() {
            report.warn(
                format!("agents[{i}].address"),
                format!(
                    "{} is not registered and create_if_missing is false: it will have to pull its steps (stream or poll)",
                    a.address
                ),
            );
        }
    }
    Ok(report)
}

/// Binds each human whose `contact` names a user (`@nick` or `user_id`) to that user's inbox
/// address: the steps assigned to the role (and escalations to it) go there, so the user's key
/// sees and decides them. A contact naming no user of this server is an error at its path; any
/// other contact (an e-mail address) keeps the role's own address.
fn bind_humans(conn: &Tx, bundle: &mut Bundle, r: &mut Report) -> Result<(), Error> {
    for h in &mut bundle.humans {
        let Some(contact) = h.user.as_deref() else {
            continue;
        };
        let user = match users::nick(&h.path, contact) {
            Ok(n) if contact.starts_with('@') => user_rows::by_nick(conn, &n.normalized)?,
            Err(_) if contact.starts_with('@') => None,
            _ => user_rows::by_id(conn, contact)?,
        };
        let Some(user) = user else {
            r.error(
                h.path.clone(),
                format!("{contact} is no user of this server (register the nick or accept an invite first)"),
            );
            continue;
        };
        let to = user.owner_agent;
        for s in &mut bundle.steps {
            if s.address == h.address {
                s.address = to.clone();
            }
            if s.escalate_to.as_deref() == Some(h.address.as_str()) {
                s.escalate_to = Some(to.clone());
            }
        }
        if bundle.intent.escalate_to.as_deref() == Some(h.address.as_str()) {
            bundle.intent.escalate_to = Some(to.clone());
        }
        h.address = to;
    }
    Ok(())
}

/// What `apply` did.
#[derive(Debug, Clone)]
pub struct Applied {
    pub intent: IntentRow,
    pub compile_id: String,
    pub scenario_id: String,
    /// `(role, address, created)` for every agent of the bundle.
    pub agents: Vec<(String, String, bool)>,
    /// `(role, address)` for every human: a user's inbox when its contact names one.
    pub humans: Vec<(String, String)>,
    pub pending_with: Option<String>,
}

/// Applies a checked bundle in the caller's transaction: registers the agents it creates or
/// whose binding it sets, creates the intent with its workflow, and starts the entry step.
pub fn apply(
    conn: &Tx,
    mut bundle: Bundle,
    caller: &str,
    quota: Option<&intents::LiveQuota>,
) -> Result<Applied, Error> {
    let mut bound = Report::default();
    bind_humans(conn, &mut bundle, &mut bound)?;
    if let Some((path, message)) = bound.errors.into_iter().next() {
        return Err(Error::invalid(path, message));
    }
    let mut provisioned = Vec::new();
    let mut steps = bundle.steps;
    for a in &bundle.agents {
        let existing = agent_rows::get(conn, &a.address)?;
        let created = existing.is_none() && a.create_if_missing;
        let changes = a
            .mode
            .is_some_and(|m| existing.as_ref().is_some_and(|e| e.delivery_mode != m))
            || (existing.is_some() && a.webhook_url.is_some());
        if created || changes {
            let keep = existing.as_ref();
            agents::register(
                conn,
                RegisterAgent {
                    address: a.address.clone(),
                    mode: a
                        .mode
                        .or_else(|| keep.map(|e| e.delivery_mode))
                        .unwrap_or(DeliveryMode::Stream),
                    display_name: a
                        .display_name
                        .clone()
                        .or_else(|| keep.and_then(|e| e.display_name.clone())),
                    webhook_url: a
                        .webhook_url
                        .clone()
                        .or_else(|| keep.and_then(|e| e.webhook_url.clone())),
                    webhook_secret: None,
                    lease_seconds: keep.and_then(|e| e.lease_seconds),
                    max_delivery_attempts: keep.and_then(|e| e.max_delivery_attempts),
                },
            )?;
        }
        let registered = existing.is_some() || created;
        for s in steps.iter_mut().filter(|s| s.address == a.address) {
            s.registered = registered;
        }
        provisioned.push((a.role.clone(), a.address.clone(), created));
    }
    let mut req = bundle.intent;
    req.from_agent = None;
    let created = intents::create_within(conn, req, caller, quota)?;
    let mut intent = created.intent;
    let now = clock::now_rfc3339();
    let compile_id = uuid::Uuid::now_v7().to_string();
    let entry = bundle
        .entry_step
        .or_else(|| steps.first().map(|s| s.step_id.clone()))
        .ok_or_else(|| Error::invalid("workflow.steps", "must have at least one step"))?;
    let spec = json!({
        "entry_step": entry,
        "steps": steps.iter().map(StepSpec::to_value).collect::<Vec<_>>(),
    });
    workflows::insert(
        conn,
        &WorkflowRow {
            intent_id: intent.intent_id.clone(),
            compile_id: compile_id.clone(),
            scenario_id: bundle.scenario_id.clone(),
            spec: spec.to_string(),
            current_step: None,
            created_at: now.clone(),
            updated_at: now,
        },
    )?;
    for appended in workflow::begin(conn, &mut intent, &steps, &entry)? {
        effects::apply(conn, appended)?;
    }
    let pending_with = steps
        .iter()
        .find(|s| s.step_id == entry)
        .filter(|s| s.kind != Kind::Escalation)
        .map(|s| s.address.clone());
    Ok(Applied {
        intent,
        compile_id,
        scenario_id: bundle.scenario_id,
        agents: provisioned,
        humans: bundle
            .humans
            .into_iter()
            .map(|h| (h.role, h.address))
            .collect(),
        pending_with,
    })
}
