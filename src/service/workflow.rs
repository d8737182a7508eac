//! The workflow engine: a scenario's steps run as a durable state machine on its intent.
//!
//! The workflow's intent is addressed to `agent://internal/workflow`. Each step is carried by
//! an intent of its own (the *step intent*, from `agent://internal/workflow`) to whoever does
//! it: the assigned agent through its binding, the human's inbox, or a built-in agent. When a
//! step intent ends (the agent's resume or resolve, a claim ack, a human's decision, a
//! timeout), [`on_event`] records the step's outcome on the workflow's intent and starts the
//! next step, in the transaction of the event that ended it: state lives only in the
//! database, so a crash between two steps loses nothing and repeats nothing.
//!
//! On the workflow's intent every step shows as one `intent.waiting` (started; `step_id`,
//! `step_intent_id`, `pending_with` in the details) and one `intent.in_progress` (ended;
//! `step_status` and the step's `result` or `error`), then the intent ends COMPLETED, FAILED or
//! TIMED_OUT with the last step. Reminders and escalations of a step are mirrored onto it.
//!
//! The engine is one of the reactions `effects` runs for every appended event, and it never
//! calls back up into `effects`: it writes through `history` and its own tables only, and hands
//! what it appended back as [`Appended`], whose reactions `effects` then runs (which may bring
//! the engine a step intent's events in turn). It never calls into `http` or `runtime`.

use serde_json::{json, Value};

use super::email;
use super::history::{self, Change, Created};
use super::workflow_steps::{steps_of, Kind, StepSpec};
use crate::clock;
use crate::model::builtin::WORKFLOW;
use crate::model::{event_type, Status, StepStatus, WaitingReason};
use crate::store::agents as agent_rows;
use crate::store::events::EventRow;
use crate::store::intents::IntentRow;
use crate::store::workflows::{self, StepRow};
use crate::store::Tx;
use crate::Error;

/// How many steps may start and end without waiting for anyone before the engine calls it a
/// loop (an `on_failure` cycle through steps that fail at once).
const MAX_HOPS: u32 = 50;

/// What the engine appended, for `effects` to run the reactions of.
#[derive(Debug)]
pub enum Appended {
    /// A new step intent with its first events (a human step's WAITING one among them).
    Created(Created),
    /// An event appended to an intent, with the intent as it was then; `left_time` when the
    /// event moved it out of WAITING_FOR_TIME (its delayed completion no longer applies).
    Event {
        intent: IntentRow,
        event: EventRow,
        left_time: bool,
    },
}

type Out = Vec<Appended>;

fn change(tx: &Tx, out: &mut Out, intent: &mut IntentRow, c: Change<'_>) -> Result<(), Error> {
    let left_time = intent.waiting_reason == Some(WaitingReason::Time);
    let event = history::transition(tx, intent, &c)?;
    out.push(Appended::Event {
        intent: intent.clone(),
        event,
        left_time,
    });
    Ok(())
}

fn note(
    tx: &Tx,
    out: &mut Out,
    intent: &mut IntentRow,
    event_type: &str,
    details: Value,
) -> Result<(), Error> {
    let event = history::note(tx, intent, event_type, WORKFLOW, &details)?;
    out.push(Appended::Event {
        intent: intent.clone(),
        event,
        left_time: false,
    });
    Ok(())
}

/// How a step ended.
enum Outcome {
    Completed(Value),
    /// `(step status, error)`: failed, timed out or canceled.
    Failed(StepStatus, Value),
}

/// Starts a new workflow at its entry step (`scenarios::apply`, same transaction).
pub fn begin(
    conn: &Tx,
    intent: &mut IntentRow,
    steps: &[StepSpec],
    entry: &str,
) -> Result<Vec<Appended>, Error> {
    let mut out = Vec::new();
    start(conn, &mut out, intent, steps, entry, 0)?;
    Ok(out)
}

fn find<'a>(steps: &'a [StepSpec], id: &str) -> Result<&'a StepSpec, Error> {
    steps
        .iter()
        .find(|s| s.step_id == id)
        .ok_or_else(|| Error::internal(format!("the workflow has no step {id}")))
}

fn start(
    conn: &Tx,
    out: &mut Out,
    wf: &mut IntentRow,
    steps: &[StepSpec],
    step_id: &str,
    hops: u32,
) -> Result<(), Error> {
    let step = find(steps, step_id)?;
    let now = clock::now_rfc3339();
    workflows::set_current(conn, &wf.intent_id, Some(step_id), &now)?;
    let retired = step.kind == Kind::Agent
        && step.registered
        && agent_rows::get(conn, &step.address)?.is_none();
    let carrier = if retired || step.kind == Kind::Escalation {
        None
    } else {
        Some(carry(conn, out, wf, step)?)
    };
    let mut row = StepRow {
        id: 0,
        intent_id: wf.intent_id.clone(),
        step_id: step.step_id.clone(),
        step_intent_id: carrier.as_ref().map(|c| c.intent_id.clone()),
        status: StepStatus::Running,
        result: None,
        started_at: now,
        ended_at: None,
    };
    row.id = workflows::insert_step(conn, &row)?;
    let mut details = json!({
        "step_id": step.step_id,
        "tool_id": step.tool_id,
        "step_status": "started",
        "pending_with": pending_with(step),
    });
    if let Some(c) = &carrier {
        details["step_intent_id"] = json!(c.intent_id);
        if let Some(d) = &c.deadline_at {
            details["step_deadline_at"] = json!(d);
        }
    }
    let mut change = Change::to(Status::Waiting, WORKFLOW);
    change.waiting_reason = Some(step.kind.waiting_reason());
    change.details = details;
    self::change(conn, out, wf, change)?;
    if retired {
        let error = json!({
            "code": "agent_not_found",
            "message": format!("{} was retired since the scenario was applied", step.address),
        });
        return settle(
            conn,
            out,
            wf,
            steps,
            &row,
            Outcome::Failed(StepStatus::Failed, error),
            hops + 1,
        );
    }
    if step.kind == Kind::Escalation {
        let d = json!({"step_id": step.step_id, "escalated_to": step.address, "reason": "workflow step"});
        note(conn, out, wf, event_type::ESCALATED, d)?;
        let result = json!({"escalated_to": step.address});
        return settle(
            conn,
            out,
            wf,
            steps,
            &row,
            Outcome::Completed(result),
            hops + 1,
        );
    }
    Ok(())
}

fn pending_with(step: &StepSpec) -> Value {
    let kind = match step.kind {
        Kind::Human => "human",
        Kind::Agent => "agent",
        _ => "internal",
    };
    json!({"type": kind, "ref": step.address, "name": step.address, "step_id": step.step_id})
}

/// Creates the intent that carries `step` to its agent, human or built-in agent.
fn carry(conn: &Tx, out: &mut Out, wf: &IntentRow, step: &StepSpec) -> Result<IntentRow, Error> {
    let parent: Value = serde_json::from_str(&wf.payload)?;
    let mut previous = serde_json::Map::new();
    for run in workflows::steps(conn, &wf.intent_id)? {
        if let (Some(r), StepStatus::Completed) = (&run.result, run.status) {
            previous.insert(run.step_id, serde_json::from_str(r)?);
        }
    }
    let mut payload = match step.kind {
        Kind::Delay | Kind::Notification => step.input.clone(),
        // An agent's task carries the work's own fields at its top level too: AXME's agents
        // read `payload["order_id"]` as often as `payload["parent_payload"]["order_id"]`.
        // The step's keys below are written after them and win on a clash.
        Kind::Agent => {
            let mut fields = match parent.is_object() {
                true => parent.clone(),
                false => json!({}),
            };
            fields["input"] = step.input.clone();
            fields
        }
        _ => json!({"input": step.input}),
    };
    payload["parent_intent_id"] = json!(wf.intent_id);
    payload["step_id"] = json!(step.step_id);
    payload["tool_id"] = json!(step.tool_id);
    payload["parent_payload"] = parent;
    payload["previous_results"] = Value::Object(previous);
    let deadline_at = step
        .deadline_seconds
        .map(|s| clock::format(clock::now() + time::Duration::seconds(s)));
    let now = clock::now_rfc3339();
    let row = IntentRow {
        id: 0,
        intent_id: uuid::Uuid::now_v7().to_string(),
        intent_type: wf.intent_type.clone(),
        correlation_id: wf.correlation_id.clone(),
        from_agent: WORKFLOW.to_string(),
        to_agent: step.address.clone(),
        reply_to: None,
        payload: payload.to_string(),
        status: Status::Submitted,
        waiting_reason: None,
        result: None,
        error: None,
        deadline_at,
        remind_after_seconds: step.remind_after_seconds,
        remind_interval_seconds: step.remind_interval_seconds,
        max_reminders: step.max_reminders,
        remind_count: 0,
        escalate_to: step.escalate_to.clone(),
        max_delivery_attempts: wf.max_delivery_attempts,
        delivery_attempt: 0,
        human_task: step.human_task.clone(),
        last_seq: 2,
        created_at: now.clone(),
        updated_at: now,
    };
    let mut created = history::create(conn, row)?;
    if created.intent.human_task.is_some() {
        // A human's step waits for that person from the start, as any human task does.
        let mut c = Change::to(Status::Waiting, WORKFLOW);
        c.waiting_reason = Some(WaitingReason::Human);
        c.details = json!({"reason": "human_task", "step_id": step.step_id});
        let waiting = history::transition(conn, &mut created.intent, &c)?;
        created.events.push(waiting);
    }
    if let Some(to) = email::recipient(created.intent.human_task.as_deref()) {
        email::queue(conn, &created.intent, &to, "task")?;
    }
    let intent = created.intent.clone();
    out.push(Appended::Created(created));
    Ok(intent)
}

/// Reacts to an event just appended (same transaction): a step intent that ended ends its
/// step; a workflow intent ended from outside (canceled, its deadline) cancels its running
/// step. Costs nothing for intents that are neither (two string compares).
pub fn on_event(conn: &Tx, intent: &IntentRow, event: &EventRow) -> Result<Vec<Appended>, Error> {
    let mut out = Vec::new();
    let status_event = event.event_type == event.status.event_type();
    if intent.from_agent == WORKFLOW {
        if status_event && event.status.is_terminal() {
            step_ended(conn, &mut out, intent)?;
        } else if event.event_type == event_type::REMINDER
            || event.event_type == event_type::ESCALATED
        {
            if let Some(to) = email::recipient(intent.human_task.as_deref())
                .filter(|_| event.event_type == event_type::REMINDER)
            {
                email::queue(conn, intent, &to, "reminder")?;
            }
            mirror(conn, &mut out, intent, event)?;
        }
    } else if intent.to_agent == WORKFLOW && status_event && event.status.is_terminal() {
        workflow_ended(conn, &mut out, intent)?;
    }
    Ok(out)
}

fn json_or_null(s: Option<&String>) -> Result<Value, Error> {
    Ok(match s {
        Some(s) => serde_json::from_str(s)?,
        None => Value::Null,
    })
}

fn step_ended(conn: &Tx, out: &mut Out, carrier: &IntentRow) -> Result<(), Error> {
    let Some(run) = workflows::step_by_intent(conn, &carrier.intent_id)? else {
        return Ok(());
    };
    if run.status != StepStatus::Running {
        return Ok(());
    }
    let error = json_or_null(carrier.error.as_ref())?;
    let outcome = match carrier.status {
        Status::Completed => Outcome::Completed(json_or_null(carrier.result.as_ref())?),
        Status::TimedOut => Outcome::Failed(StepStatus::TimedOut, error),
        Status::Canceled => Outcome::Failed(StepStatus::Canceled, error),
        _ => Outcome::Failed(StepStatus::Failed, error),
    };
    let Some(mut wf) = crate::store::intents::get(conn, &run.intent_id)? else {
        return Ok(());
    };
    if wf.status.is_terminal() {
        return Ok(());
    }
    let Some(row) = workflows::get(conn, &wf.intent_id)? else {
        return Ok(());
    };
    let steps = steps_of(&serde_json::from_str(&row.spec)?);
    settle(conn, out, &mut wf, &steps, &run, outcome, 0)
}

/// Records how a step ended and moves on: the next step, or the end of the workflow.
fn settle(
    conn: &Tx,
    out: &mut Out,
    wf: &mut IntentRow,
    steps: &[StepSpec],
    run: &StepRow,
    outcome: Outcome,
    hops: u32,
) -> Result<(), Error> {
    let now = clock::now_rfc3339();
    let (status, value) = match &outcome {
        Outcome::Completed(v) => (StepStatus::Completed, v),
        Outcome::Failed(s, e) => (*s, e),
    };
    workflows::finish_step(conn, run.id, status, Some(&value.to_string()), &now)?;
    let mut details = json!({"step_id": run.step_id, "step_status": status.as_str()});
    details[if status == StepStatus::Completed {
        "result"
    } else {
        "error"
    }] = value.clone();
    if let Some(c) = &run.step_intent_id {
        details["step_intent_id"] = json!(c);
    }
    if wf.status == Status::Waiting {
        let mut change = Change::to(Status::InProgress, WORKFLOW);
        change.details = details;
        self::change(conn, out, wf, change)?;
    } else {
        note(conn, out, wf, "intent.step_ended", details)?;
    }
    let step = find(steps, &run.step_id)?;
    let next = match outcome {
        Outcome::Completed(_) => step.on_success.clone(),
        Outcome::Failed(..) => step.on_failure.clone(),
    };
    match next {
        Some(n) if hops < MAX_HOPS => start(conn, out, wf, steps, &n, hops),
        Some(_) => {
            let e = json!({"code": "workflow_loop", "message": "too many steps ended without waiting for anyone; the workflow loops"});
            finish(
                conn,
                out,
                wf,
                &run.step_id,
                Outcome::Failed(StepStatus::Failed, e),
            )
        }
        None => finish(conn, out, wf, &run.step_id, outcome),
    }
}

/// Ends the workflow's intent with the outcome of its last step.
fn finish(
    conn: &Tx,
    out: &mut Out,
    wf: &mut IntentRow,
    last: &str,
    outcome: Outcome,
) -> Result<(), Error> {
    workflows::set_current(conn, &wf.intent_id, None, &clock::now_rfc3339())?;
    let mut results = serde_json::Map::new();
    for run in workflows::steps(conn, &wf.intent_id)? {
        if run.status == StepStatus::Completed {
            results.insert(run.step_id, json_or_null(run.result.as_ref())?);
        }
    }
    let change = match outcome {
        Outcome::Completed(result) => {
            let result = json!({"last_step": last, "result": result, "steps": results});
            let mut c = Change::to(Status::Completed, WORKFLOW);
            c.details = json!({"result": result, "step_id": last});
            c.result = Some(result);
            c
        }
        Outcome::Failed(status, cause) => {
            let timed_out = status == StepStatus::TimedOut;
            let error = json!({
                "code": if timed_out { "step_timeout" } else { "step_failed" },
                "message": format!("step {last} {}", if timed_out { "timed out" } else { status.as_str() }),
                "step_id": last,
                "details": cause,
            });
            let to = if timed_out {
                Status::TimedOut
            } else {
                Status::Failed
            };
            let mut c = Change::to(to, WORKFLOW);
            c.details = json!({"error": error, "step_id": last});
            c.error = Some(error);
            c
        }
    };
    self::change(conn, out, wf, change)
}

/// The workflow's intent ended while a step ran (canceled, its own deadline): the step is
/// canceled, and its intent with it.
fn workflow_ended(conn: &Tx, out: &mut Out, wf: &IntentRow) -> Result<(), Error> {
    let Some(row) = workflows::get(conn, &wf.intent_id)? else {
        return Ok(());
    };
    if row.current_step.is_none() {
        return Ok(());
    }
    let now = clock::now_rfc3339();
    workflows::set_current(conn, &wf.intent_id, None, &now)?;
    for run in workflows::steps(conn, &wf.intent_id)? {
        if run.status != StepStatus::Running {
            continue;
        }
        let why = json!({"code": "workflow_ended", "message": format!("the workflow's intent is {}", wf.status)});
        workflows::finish_step(
            conn,
            run.id,
            StepStatus::Canceled,
            Some(&why.to_string()),
            &now,
        )?;
        let Some(id) = &run.step_intent_id else {
            continue;
        };
        if let Some(mut carrier) = crate::store::intents::get(conn, id)? {
            if !carrier.status.is_terminal() {
                let mut c = Change::to(Status::Canceled, WORKFLOW);
                c.details = json!({"reason": format!("the workflow's intent is {}", wf.status)});
                self::change(conn, out, &mut carrier, c)?;
            }
        }
    }
    Ok(())
}

/// A reminder or escalation of a step intent shows on the workflow's intent too.
fn mirror(conn: &Tx, out: &mut Out, carrier: &IntentRow, event: &EventRow) -> Result<(), Error> {
    let Some(run) = workflows::step_by_intent(conn, &carrier.intent_id)? else {
        return Ok(());
    };
    let Some(mut wf) = crate::store::intents::get(conn, &run.intent_id)? else {
        return Ok(());
    };
    if run.status != StepStatus::Running || wf.status.is_terminal() {
        return Ok(());
    }
    let mut details: Value = serde_json::from_str(&event.details)?;
    if !details.is_object() {
        details = json!({});
    }
    details["step_id"] = json!(run.step_id);
    details["step_intent_id"] = json!(carrier.intent_id);
    details["pending_with"] = json!({"ref": carrier.to_agent, "name": carrier.to_agent});
    note(conn, out, &mut wf, &event.event_type, details)
}
