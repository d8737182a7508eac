//! The steps of a workflow: what each `tool_id` (or `runtime_type`) means, how a bundle's
//! `workflow` is checked into steps (every problem named by its JSON path), and the compiled
//! form stored with the workflow. No status changes here: `service::workflow` runs the steps.

use serde_json::{json, Map, Value};

use super::scenario_fields::{
    int, object, resolve_role, step_task, text, Report, Roles, BUILTIN_PREFIX,
};
use crate::model::builtin::{DELAY, NOTIFY};
use crate::model::WaitingReason;

/// What a step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `tool.agent.task.v1`: an intent to the assigned agent, through its binding.
    Agent,
    /// `tool.approval.human_signoff` (and `tool.notification.notify_owner`): a task in the
    /// assigned human's inbox.
    Human,
    /// `tool.internal.delay`: `agent://internal/delay` waits `input.seconds`.
    Delay,
    /// `tool.internal.notification`: `agent://internal/notify` posts `input.body` to `input.url`.
    Notification,
    /// `tool.internal.escalation`: an `intent.escalated` event naming `escalate_to`; ends at once.
    Escalation,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Agent => "agent",
            Kind::Human => "human",
            Kind::Delay => "delay",
            Kind::Notification => "notification",
            Kind::Escalation => "escalation",
        }
    }

    fn parse(s: &str) -> Option<Kind> {
        [
            Kind::Agent,
            Kind::Human,
            Kind::Delay,
            Kind::Notification,
            Kind::Escalation,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    /// Why the workflow's intent waits while a step of this kind runs.
    pub fn waiting_reason(self) -> WaitingReason {
        match self {
            Kind::Agent => WaitingReason::Agent,
            Kind::Human => WaitingReason::Human,
            Kind::Delay => WaitingReason::Time,
            Kind::Notification | Kind::Escalation => WaitingReason::Tool,
        }
    }
}

/// The tool ids a step may name, and what each runs as.
const TOOLS: &[(&str, Kind)] = &[
    ("tool.agent.task.v1", Kind::Agent),
    ("tool.approval.human_signoff", Kind::Human),
    ("tool.notification.notify_owner", Kind::Human),
    ("tool.internal.delay", Kind::Delay),
    ("tool.internal.notification", Kind::Notification),
    ("tool.internal.escalation", Kind::Escalation),
];

/// `runtime_type` spellings of the same built-ins (AXP `WorkflowStepSpec`).
const RUNTIME_TYPES: &[(&str, &str)] = &[
    ("human_approval", "tool.approval.human_signoff"),
    ("delay", "tool.internal.delay"),
    ("notification", "tool.internal.notification"),
    ("escalation", "tool.internal.escalation"),
];

const STEP: &[&str] = &[
    "step_id",
    "tool_id",
    "runtime_type",
    "runtime_config",
    "assigned_to",
    "requires_approval",
    "step_deadline_seconds",
    "retry",
    "human_task",
    "remind_after_seconds",
    "remind_interval_seconds",
    "max_reminders",
    "escalate_to",
    "on_success",
    "on_failure",
    "input",
];

/// One compiled step. `address` is who carries it: the agent, the human, or the built-in agent.
#[derive(Debug, Clone, PartialEq)]
pub struct StepSpec {
    pub step_id: String,
    pub tool_id: String,
    pub kind: Kind,
    pub address: String,
    /// Whether the address had a registration when the bundle was applied: a step whose
    /// registered agent was retired since fails instead of waiting for a pull that never comes.
    pub registered: bool,
    pub input: Value,
    pub human_task: Option<String>,
    pub deadline_seconds: Option<i64>,
    pub remind_after_seconds: Option<i64>,
    pub remind_interval_seconds: Option<i64>,
    pub max_reminders: Option<i64>,
    pub escalate_to: Option<String>,
    /// The step after a success: `on_success`, else the next one in order, else the end.
    pub on_success: Option<String>,
    /// The step after a failure: `on_failure`, else the workflow fails.
    pub on_failure: Option<String>,
}

impl StepSpec {
    /// The one step of a bundle without a workflow: its agent's task.
    pub fn plain(address: &str) -> StepSpec {
        StepSpec {
            step_id: "task".into(),
            tool_id: "tool.agent.task.v1".into(),
            kind: Kind::Agent,
            address: address.to_string(),
            registered: false,
            input: json!({}),
            human_task: None,
            deadline_seconds: None,
            remind_after_seconds: None,
            remind_interval_seconds: None,
            max_reminders: None,
            escalate_to: None,
            on_success: None,
            on_failure: None,
        }
    }

    pub fn to_value(&self) -> Value {
        json!({
            "step_id": self.step_id,
            "tool_id": self.tool_id,
            "kind": self.kind.as_str(),
            "address": self.address,
            "registered": self.registered,
            "input": self.input,
            "human_task": self.human_task,
            "step_deadline_seconds": self.deadline_seconds,
            "remind_after_seconds": self.remind_after_seconds,
            "remind_interval_seconds": self.remind_interval_seconds,
            "max_reminders": self.max_reminders,
            "escalate_to": self.escalate_to,
            "on_success": self.on_success,
            "on_failure": self.on_failure,
        })
    }

    /// Reads a stored step back (`None` if it is not one this build wrote).
    pub fn from_value(v: &Value) -> Option<StepSpec> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let n = |k: &str| v.get(k).and_then(Value::as_i64);
        Some(StepSpec {
            step_id: s("step_id")?,
            tool_id: s("tool_id")?,
            kind: Kind::parse(v.get("kind")?.as_str()?)?,
            address: s("address")?,
            registered: v.get("registered").and_then(Value::as_bool) == Some(true),
            input: v.get("input").cloned().unwrap_or_else(|| json!({})),
            human_task: s("human_task"),
            deadline_seconds: n("step_deadline_seconds"),
            remind_after_seconds: n("remind_after_seconds"),
            remind_interval_seconds: n("remind_interval_seconds"),
            max_reminders: n("max_reminders"),
            escalate_to: s("escalate_to"),
            on_success: s("on_success"),
            on_failure: s("on_failure"),
        })
    }
}

/// The compiled steps of a stored workflow spec.
pub fn steps_of(spec: &Value) -> Vec<StepSpec> {
    spec["steps"]
        .as_array()
        .map(|a| a.iter().filter_map(StepSpec::from_value).collect())
        .unwrap_or_default()
}

/// Checks `workflow` and compiles its steps; the entry step, when one is named.
pub fn check_workflow(
    r: &mut Report,
    w: &Map<String, Value>,
    roles: &Roles,
) -> (Vec<StepSpec>, Option<String>) {
    for k in w.keys() {
        if !["steps", "entry_step", "macro_id", "parameters"].contains(&k.as_str()) {
            r.warnings.push((
                format!("workflow.{k}"),
                "is not a field this server knows; it is ignored".into(),
            ));
        }
    }
    if w.get("macro_id").is_some_and(|m| !m.is_null()) {
        r.errors.push((
            "workflow.macro_id".into(),
            "no workflow macros are registered on this server; give the steps inline".into(),
        ));
    }
    let raw = match w.get("steps") {
        Some(Value::Array(a)) if !a.is_empty() && a.len() <= 100 => a.as_slice(),
        Some(Value::Array(_)) => {
            r.errors
                .push(("workflow.steps".into(), "must have 1 to 100 steps".into()));
            &[]
        }
        None | Some(Value::Null) => {
            r.errors
                .push(("workflow.steps".into(), "is required".into()));
            &[]
        }
        Some(_) => {
            r.errors
                .push(("workflow.steps".into(), "must be an array".into()));
            &[]
        }
    };
    let mut steps: Vec<StepSpec> = Vec::new();
    let mut ids: Vec<Option<String>> = Vec::new();
    for (i, s) in raw.iter().enumerate() {
        let at = format!("workflow.steps[{i}]");
        let Some(s) = s.as_object() else {
            r.errors.push((at, "must be an object".into()));
            ids.push(None);
            continue;
        };
        let id = text(r, s, "step_id", &at, (1, 100), true).map(str::to_string);
        if let Some(id) = &id {
            if ids.iter().flatten().any(|x| x == id) {
                r.errors.push((
                    format!("{at}.step_id"),
                    format!("{id} is already the id of an earlier step"),
                ));
            }
        }
        ids.push(id.clone());
        if let Some(step) = step(r, s, &at, roles, id) {
            steps.push(step);
        }
    }
    // Targets are checked once every id is known; the default success target is the next step.
    for (i, s) in raw.iter().enumerate() {
        let at = format!("workflow.steps[{i}]");
        for key in ["on_success", "on_failure"] {
            if let Some(t) = s.get(key).and_then(Value::as_str) {
                if !ids.iter().flatten().any(|x| x == t) {
                    r.errors.push((
                        format!("{at}.{key}"),
                        format!("{t} is not the step_id of a step of this workflow"),
                    ));
                }
            }
        }
    }
    let order: Vec<String> = steps.iter().map(|s| s.step_id.clone()).collect();
    for (i, s) in steps.iter_mut().enumerate() {
        if s.on_success.is_none() {
            s.on_success = order.get(i + 1).cloned();
        }
    }
    let entry = match w.get("entry_step") {
        None | Some(Value::Null) => None,
        Some(Value::String(e)) if ids.iter().flatten().any(|x| x == e) => Some(e.clone()),
        Some(Value::String(e)) => {
            r.errors.push((
                "workflow.entry_step".into(),
                format!("{e} is not the step_id of a step of this workflow"),
            ));
            None
        }
        Some(_) => {
            r.errors
                .push(("workflow.entry_step".into(), "must be a string".into()));
            None
        }
    };
    (steps, entry)
}

fn step(
    r: &mut Report,
    s: &Map<String, Value>,
    at: &str,
    roles: &Roles,
    id: Option<String>,
) -> Option<StepSpec> {
    for k in s.keys().filter(|k| !STEP.contains(&k.as_str())) {
        r.warnings.push((
            format!("{at}.{k}"),
            "is not a field this server knows; it is ignored".into(),
        ));
    }
    let runtime = text(r, s, "runtime_type", at, (1, 64), false);
    let tool = match (text(r, s, "tool_id", at, (1, 255), false), runtime) {
        (Some(t), _) => Some(t),
        (None, Some(rt)) => match RUNTIME_TYPES.iter().find(|(n, _)| *n == rt) {
            Some((_, t)) => Some(*t),
            None => {
                let names: Vec<&str> = RUNTIME_TYPES.iter().map(|(n, _)| *n).collect();
                r.errors.push((
                    format!("{at}.runtime_type"),
                    format!("must be one of {} on this server", names.join(", ")),
                ));
                None
            }
        },
        (None, None) => {
            r.errors
                .push((format!("{at}.tool_id"), "is required".into()));
            None
        }
    };
    let kind = tool.and_then(|t| match TOOLS.iter().find(|(n, _)| *n == t) {
        Some((_, k)) => Some(*k),
        None => {
            let names: Vec<&str> = TOOLS.iter().map(|(n, _)| *n).collect();
            r.errors.push((
                format!("{at}.tool_id"),
                format!("must be one of {}", names.join(", ")),
            ));
            None
        }
    });
    let config = object(r, s, "runtime_config", at).cloned();
    let mut input = object(r, s, "input", at).cloned().unwrap_or_default();
    for (k, v) in config.into_iter().flatten() {
        input.entry(k).or_insert(v);
    }
    let deadline_seconds = int(r, s, "step_deadline_seconds", at, 1);
    let escalate_to = text(r, s, "escalate_to", at, (1, 383), false)
        .and_then(|raw| resolve_role(r, raw, &format!("{at}.escalate_to"), roles))
        .map(|(a, _)| a);
    let assigned = text(r, s, "assigned_to", at, (1, 383), false)
        .and_then(|raw| resolve_role(r, raw, &format!("{at}.assigned_to"), roles));
    let human_task =
        object(r, s, "human_task", at).and_then(|t| step_task(r, t, &format!("{at}.human_task")));
    if let Some(v) = s
        .get("requires_approval")
        .filter(|v| !v.is_null() && !v.is_boolean())
    {
        r.errors.push((
            format!("{at}.requires_approval"),
            format!("must be true or false, not {v}"),
        ));
    }
    let kind = kind?;
    let address = match kind {
        Kind::Agent => match assigned {
            Some((a, false)) if a.starts_with(BUILTIN_PREFIX) => {
                r.errors.push((
                    format!("{at}.assigned_to"),
                    "names a built-in agent; give the step its tool_id (e.g. tool.internal.delay)"
                        .into(),
                ));
                return None;
            }
            Some((a, false)) => a,
            Some((_, true)) => {
                r.errors.push((
                    format!("{at}.assigned_to"),
                    "names a human; a tool.agent.task.v1 step is assigned to an agent".into(),
                ));
                return None;
            }
            None => {
                if !s.contains_key("assigned_to") {
                    r.errors.push((
                        format!("{at}.assigned_to"),
                        "is required for a tool.agent.task.v1 step".into(),
                    ));
                }
                return None;
            }
        },
        Kind::Human => match assigned.or_else(|| {
            roles
                .iter()
                .find(|(_, _, human)| *human)
                .map(|(_, a, _)| (a.clone(), true))
        }) {
            Some((a, _)) => a,
            None => {
                r.errors.push((
                    format!("{at}.assigned_to"),
                    "is required: a human sign-off needs a role of humans[]".into(),
                ));
                return None;
            }
        },
        Kind::Delay => {
            let ok = input
                .get("seconds")
                .and_then(Value::as_f64)
                .is_some_and(|n| (0.0..=2_592_000.0).contains(&n));
            if !ok {
                r.errors.push((
                    format!("{at}.input.seconds"),
                    "is required: the seconds to wait, 0 to 2592000".into(),
                ));
            }
            DELAY.to_string()
        }
        Kind::Notification => {
            let ok = input
                .get("url")
                .and_then(Value::as_str)
                .is_some_and(|u| u.starts_with("http://") || u.starts_with("https://"));
            if !ok {
                r.errors.push((
                    format!("{at}.input.url"),
                    "is required: the http(s) URL to notify".into(),
                ));
            }
            NOTIFY.to_string()
        }
        Kind::Escalation => match escalate_to.clone().or(assigned.map(|(a, _)| a)) {
            Some(a) => a,
            None => {
                r.errors.push((
                    format!("{at}.escalate_to"),
                    "is required for an escalation step".into(),
                ));
                return None;
            }
        },
    };
    let human_task = match (kind, human_task) {
        (Kind::Human, None) => {
            let title = id.clone().unwrap_or_else(|| "approval".into());
            Some(json!({"title": title, "task_type": "approval"}).to_string())
        }
        (_, t) => t,
    };
    Some(StepSpec {
        step_id: id?,
        tool_id: tool?.to_string(),
        kind,
        address,
        registered: false,
        input: Value::Object(input),
        human_task,
        deadline_seconds,
        remind_after_seconds: int(r, s, "remind_after_seconds", at, 1),
        remind_interval_seconds: int(r, s, "remind_interval_seconds", at, 1),
        max_reminders: int(r, s, "max_reminders", at, 1),
        escalate_to,
        on_success: text(r, s, "on_success", at, (1, 100), false).map(str::to_string),
        on_failure: text(r, s, "on_failure", at, (1, 100), false).map(str::to_string),
    })
}
