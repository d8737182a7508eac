//! AXME `resume`, and the controls and policy an intent is patched with.
//!
//! A resume is one of three things, told apart by its body:
//! - a **handler's result** (a body with `action`, `result` or any field this server does not
//!   read itself; AXME agents send `{"action": "complete", ...}`): on a SUBMITTED, DELIVERED,
//!   ACKNOWLEDGED, IN_PROGRESS or WAITING intent it ends the intent, COMPLETED with those fields
//!   as the result, or FAILED when `action` is `fail`; `action: in_progress` only reports work;
//! - a **human's `task_result`** for a WAITING human task: the outcome must be one of the task's
//!   `allowed_outcomes` (default `approved`, `rejected`) and the task's `form_schema` must
//!   accept it; a rejecting outcome fails the intent (`rejected`), any other completes it;
//! - a plain **continue** (only `actor`, `reason`, `approve_current_step`): a WAITING intent
//!   moves to IN_PROGRESS; anything else is 409.
//!
//! A workflow's intent hands its resume to the intent of the step that runs. Every resume
//! answers the intent's `policy_generation` (moved on by `service::controls`), and is refused
//! (409) when an `expected_policy_generation` it names is not the current one.

use serde_json::{json, Map, Value};

use super::access::Access;
use super::effects;
use super::history::{Change, Changed};
use super::intents;
use super::validate::Fields;
use super::workflow_view;
use crate::model::builtin::WORKFLOW;
use crate::model::{Status, WaitingReason};
use crate::store::events;
use crate::store::workflows;
use crate::store::{Store, Tx};
use crate::Error;

/// The fields a resume reads itself; any other is part of a handler's result.
const CONTROL: &[&str] = &[
    "approve_current_step",
    "actor",
    "reason",
    "expected_policy_generation",
    "internal_scheduler",
    "task_result",
    "action",
    "result",
    "error",
];

/// What a handler's result asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Complete,
    Fail,
    InProgress,
}

/// A checked `POST /v1/intents/{id}/resume` body.
#[derive(Debug, Clone, Default)]
pub struct Resume {
    pub actor: Option<String>,
    pub reason: Option<String>,
    pub approve_current_step: bool,
    pub task_result: Option<Map<String, Value>>,
    pub expected_policy_generation: Option<i64>,
    /// A handler's result: the action and the result object (`None` for a plain continue).
    pub handler: Option<(Action, Map<String, Value>, Option<Value>)>,
}

pub fn request(body: &Value) -> Result<Resume, Error> {
    let f = Fields::body(body)?;
    let expected_policy_generation = f.int_opt("expected_policy_generation", 0, i64::MAX)?;
    f.bool_opt("internal_scheduler")?;
    let task_result = f.obj_opt("task_result")?.cloned();
    if let Some(tr) = &task_result {
        let t = Fields::nested(tr, "task_result".into());
        t.str_opt("outcome", 1, 64)?;
        t.str_opt("comment", 0, 4000)?;
        t.obj_opt("data")?;
    }
    let action = match f.str_opt("action", 1, 32)? {
        None => None,
        Some("complete" | "completed" | "resolve") => Some(Action::Complete),
        Some("fail" | "failed" | "reject") => Some(Action::Fail),
        Some("in_progress" | "progress" | "continue") => Some(Action::InProgress),
        Some(_) => {
            return Err(Error::invalid(
                "action",
                "must be one of complete, fail, in_progress",
            ))
        }
    };
    let result_obj = f.obj_opt("result")?.cloned();
    let error = f.obj_opt("error")?.cloned().map(Value::Object);
    let reason = f.str_opt("reason", 0, 2000)?.map(str::to_string);
    let obj = body.as_object().cloned().unwrap_or_default();
    let extra: Map<String, Value> = obj
        .iter()
        .filter(|(k, _)| !CONTROL.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let handler = if action.is_some() || result_obj.is_some() || !extra.is_empty() {
        // The result is what the handler sent: `result` alone when that is all it sent, else
        // every field beside the ones read here (and its `action` and `reason`, as sent).
        let result = match (result_obj, extra.is_empty()) {
            (Some(r), true) => r,
            (r, _) => {
                let mut m = extra;
                if let Some(r) = r {
                    m.insert("result".into(), Value::Object(r));
                }
                for k in ["action", "reason"] {
                    if let Some(v) = obj.get(k) {
                        m.insert(k.into(), v.clone());
                    }
                }
                m
            }
        };
        Some((action.unwrap_or(Action::Complete), result, error))
    } else {
        None
    };
    Ok(Resume {
        actor: f.str_opt("actor", 3, 255)?.map(str::to_string),
        reason,
        approve_current_step: f.bool_opt("approve_current_step")?.unwrap_or(true),
        task_result,
        expected_policy_generation,
        handler,
    })
}

/// A resume's change and the generation it was checked against.
#[derive(Debug, Clone)]
pub struct Resumed {
    pub changed: Changed,
    pub policy_generation: i64,
}

/// The policy generation of an intent: 1 until its controls or policy are first patched.
pub fn generation(conn: &Tx, intent_id: &str) -> Result<i64, Error> {
    Ok(workflows::controls(conn, intent_id)?.map_or(1, |c| c.policy_generation))
}

/// [`resume`] in a write of its own, by a caller that may handle the intent.
pub async fn resume_now(
    store: &Store,
    access: &Access,
    intent_id: &str,
    req: Resume,
    caller: &str,
    by: Option<&str>,
) -> Result<Resumed, Error> {
    let (access, id, caller) = (access.clone(), intent_id.to_string(), caller.to_string());
    let by = by.map(str::to_string);
    store
        .write(move |c| {
            access.handle(c, &id, false)?;
            resume(c, &id, req, &caller, by.as_deref())
        })
        .await
}

pub fn resume(
    conn: &Tx,
    intent_id: &str,
    req: Resume,
    caller: &str,
    by: Option<&str>,
) -> Result<Resumed, Error> {
    let mut intent = intents::get(conn, intent_id)?;
    let policy_generation = generation(conn, intent_id)?;
    if let Some(expected) = req.expected_policy_generation {
        if expected != policy_generation {
            return Err(Error::conflict(
                "policy_generation_mismatch",
                format!(
                    "expected_policy_generation is {expected}, but the intent's policy generation is {policy_generation}"
                ),
            ));
        }
    }
    if intent.to_agent == WORKFLOW && !intent.status.is_terminal() {
        if let Some(step_intent) = workflow_view::running_step_intent(conn, intent_id)? {
            let since = intent.last_seq;
            let mut inner = req;
            inner.expected_policy_generation = None;
            resume(conn, &step_intent, inner, caller, by)?;
            let intent = intents::get(conn, intent_id)?;
            let events = events::list_for_intent(conn, intent_id, since, 100)?;
            if events.is_empty() {
                return Err(Error::internal("the step's resume moved nothing"));
            }
            return Ok(Resumed {
                changed: Changed {
                    intent,
                    events,
                    completion: None,
                },
                policy_generation,
            });
        }
    }
    let actor = req.actor.as_deref().unwrap_or(caller);
    let human = intent.status == Status::Waiting
        && intent.waiting_reason == Some(WaitingReason::Human)
        && intent.human_task.is_some();
    let mut details = json!({"approve_current_step": req.approve_current_step});
    if let Some(reason) = &req.reason {
        details["reason"] = json!(reason);
    }
    intents::vouch(&mut details, actor, by);
    let change = if let (true, Some(tr)) = (human, &req.task_result) {
        details["task_result"] = Value::Object(tr.clone());
        task_decision(
            intent.human_task.as_deref().unwrap_or("{}"),
            tr,
            actor,
            details,
        )?
    } else if human && req.handler.is_none() {
        // A human task is decided by its task_result; without one, its rules still hold.
        check_task_result(intent.human_task.as_deref().unwrap_or("{}"), None)?;
        continue_waiting(&intent, actor, details)?
    } else if let Some((action, result, error)) = req.handler {
        if let Some(tr) = &req.task_result {
            details["task_result"] = Value::Object(tr.clone());
        }
        handler_result(action, result, error, req.reason.as_deref(), actor, details)
    } else {
        if let Some(tr) = &req.task_result {
            details["task_result"] = Value::Object(tr.clone());
        }
        continue_waiting(&intent, actor, details)?
    };
    let (event, completion) = effects::transition(conn, &mut intent, change)?;
    Ok(Resumed {
        changed: Changed {
            intent,
            events: vec![event],
            completion,
        },
        policy_generation,
    })
}

/// A plain continue: only a WAITING intent moves on (to IN_PROGRESS).
fn continue_waiting<'a>(
    intent: &crate::store::intents::IntentRow,
    actor: &'a str,
    details: Value,
) -> Result<Change<'a>, Error> {
    if intent.status != Status::Waiting {
        crate::service::lifecycle::check(intent.status, Status::InProgress)?;
        return Err(Error::conflict(
            "invalid_transition",
            format!(
                "a resume without a result continues only a WAITING intent; this one is {} (send the handler's result, e.g. {{\"action\": \"complete\"}})",
                intent.status
            ),
        ));
    }
    let mut change = Change::to(Status::InProgress, actor);
    change.details = details;
    Ok(change)
}

fn handler_result<'a>(
    action: Action,
    result: Map<String, Value>,
    error: Option<Value>,
    reason: Option<&str>,
    actor: &'a str,
    mut details: Value,
) -> Change<'a> {
    let result = Value::Object(result);
    match action {
        Action::Complete => {
            details["result"] = result.clone();
            let mut c = Change::to(Status::Completed, actor);
            c.details = details;
            c.result = Some(result);
            c
        }
        Action::Fail => {
            let error = error.unwrap_or_else(|| {
                json!({"code": "agent_failed", "message": reason.unwrap_or("the handler reported a failure"), "details": result})
            });
            details["error"] = error.clone();
            let mut c = Change::to(Status::Failed, actor);
            c.details = details;
            c.error = Some(error);
            c
        }
        Action::InProgress => {
            details["result"] = result;
            let mut c = Change::to(Status::InProgress, actor);
            c.details = details;
            c
        }
    }
}

/// The outcomes that reject a task: the intent fails with `rejected`.
const REJECTING: &[&str] = &["rejected", "reject", "declined", "denied"];

fn task_decision<'a>(
    task_json: &str,
    tr: &Map<String, Value>,
    actor: &'a str,
    mut details: Value,
) -> Result<Change<'a>, Error> {
    check_task_result(task_json, Some(tr))?;
    let outcome = tr.get("outcome").and_then(Value::as_str).unwrap_or("");
    let mut record = json!({"outcome": outcome, "task_result": tr, "decided_by": actor});
    if let Some(c) = tr.get("comment") {
        record["comment"] = c.clone();
    }
    if REJECTING.contains(&outcome) {
        let message = tr
            .get("comment")
            .and_then(Value::as_str)
            .unwrap_or("the task was rejected");
        let error = json!({"code": "rejected", "message": message, "details": record});
        details["error"] = error.clone();
        let mut c = Change::to(Status::Failed, actor);
        c.details = details;
        c.error = Some(error);
        Ok(c)
    } else {
        details["result"] = record.clone();
        let mut c = Change::to(Status::Completed, actor);
        c.details = details;
        c.result = Some(record);
        Ok(c)
    }
}

/// Enforces a human task's rules on a resume (422): the outcome (the task's
/// `allowed_outcomes`, default approved/rejected), `evidence_required`, `required_comment`, and
/// the `form_schema` on the submitted fields.
fn check_task_result(task_json: &str, result: Option<&Map<String, Value>>) -> Result<(), Error> {
    let task: Value = serde_json::from_str(task_json)?;
    let outcome = result
        .and_then(|r| r.get("outcome"))
        .and_then(Value::as_str);
    let default = json!(["approved", "rejected"]);
    let allowed = task
        .get("allowed_outcomes")
        .and_then(Value::as_array)
        .or_else(|| result.and(default.as_array()));
    if let Some(allowed) = allowed {
        let ok = outcome.is_some_and(|o| allowed.iter().any(|a| a.as_str() == Some(o)));
        if !ok {
            let list: Vec<&str> = allowed.iter().filter_map(Value::as_str).collect();
            return Err(Error::invalid(
                "task_result.outcome",
                format!("must be one of {}", list.join(", ")),
            ));
        }
    }
    if task.get("evidence_required").and_then(Value::as_bool) == Some(true) {
        let evidence = result
            .and_then(|r| r.get("data"))
            .and_then(|d| d.get("evidence"));
        let empty = match evidence {
            None | Some(Value::Null) => true,
            Some(Value::String(s)) => s.trim().is_empty(),
            Some(Value::Array(a)) => a.is_empty(),
            Some(Value::Object(o)) => o.is_empty(),
            Some(_) => false,
        };
        if empty {
            return Err(Error::invalid(
                "task_result.data.evidence",
                "is required by this task",
            ));
        }
    }
    if task.get("required_comment").and_then(Value::as_bool) == Some(true) {
        let comment = result
            .and_then(|r| r.get("comment"))
            .and_then(Value::as_str);
        if comment.is_none_or(|c| c.trim().is_empty()) {
            return Err(Error::invalid(
                "task_result.comment",
                "is required by this task",
            ));
        }
    }
    if let (Some(schema), Some(result)) = (task.get("form_schema"), result) {
        check_form(schema, result)?;
    }
    Ok(())
}

/// The form a human submitted: `task_result`'s own fields (as AXME's CLI sends them) with
/// those of `task_result.data`, less `outcome` and `comment`, checked against `form_schema`.
fn check_form(schema: &Value, result: &Map<String, Value>) -> Result<(), Error> {
    let mut form: Map<String, Value> = result
        .iter()
        .filter(|(k, _)| !["outcome", "comment", "data"].contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(Value::Object(data)) = result.get("data") {
        for (k, v) in data {
            form.entry(k.clone()).or_insert(v.clone());
        }
    }
    let validator = jsonschema::validator_for(schema).map_err(|e| {
        Error::invalid(
            "human_task.form_schema",
            format!("is not a valid JSON Schema: {e}"),
        )
    })?;
    let form = Value::Object(form);
    // Command lines send `--data key=value` as strings: a form that only fits with `"true"`,
    // `"30"` read as the JSON they spell is accepted as that.
    if validator.is_valid(&form) || validator.is_valid(&spelled(&form)) {
        return Ok(());
    }
    if let Some(e) = validator.iter_errors(&form).next() {
        let at = e.instance_path().to_string();
        let field = if at.is_empty() {
            "task_result".to_string()
        } else {
            format!("task_result{}", at.replace('/', "."))
        };
        return Err(Error::invalid(
            field,
            format!("does not fit the task's form: {e}"),
        ));
    }
    Ok(())
}

/// The form with each top-level string that spells a JSON boolean or number read as one.
fn spelled(form: &Value) -> Value {
    let mut out = form.clone();
    if let Value::Object(m) = &mut out {
        for v in m.values_mut() {
            if let Some(parsed) = v
                .as_str()
                .and_then(|s| serde_json::from_str::<Value>(s).ok())
                .filter(|p| p.is_boolean() || p.is_number())
            {
                *v = parsed;
            }
        }
    }
    out
}
