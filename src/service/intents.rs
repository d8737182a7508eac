//! Intent operations. Each write operation is a function on the writer's connection, run inside
//! one transaction by `Store::write`: it reads the intent, asks `lifecycle::check` whether the
//! move is legal, and writes the new state and its event together, so an intent's status and
//! its history can never disagree. [`transition`] is the only place a status changes.

use serde_json::{json, Value};

use super::requests::{CreateIntent, Progress, Resolve};
/// AXME `resume` lives beside the controls it is checked against (`service::resume`).
pub use super::resume::resume;
use super::{deliveries, inbox, lifecycle};
use crate::clock;
use crate::model::{Status, WaitingReason};
use crate::store::completions::{self, CompletionRow};
use crate::store::events::{self, EventRow};
use crate::store::intents::{self, IntentRow, ListFilter};
use crate::Error;
use rusqlite::Connection;

/// The most events one page of `GET /v1/intents/{id}/events` returns.
pub const EVENTS_PAGE_MAX: usize = 1000;

/// A created intent with its first two events.
#[derive(Debug, Clone)]
pub struct Created {
    pub intent: IntentRow,
    pub events: Vec<EventRow>,
}

/// An intent after a change, with the events the change appended (oldest first) and, when the
/// change made it terminal and it has `reply_to`, the stored completion.
#[derive(Debug, Clone)]
pub struct Changed {
    pub intent: IntentRow,
    pub events: Vec<EventRow>,
    pub completion: Option<CompletionRow>,
}

impl Changed {
    /// The last event the change appended.
    pub fn last_event(&self) -> Option<&EventRow> {
        self.events.last()
    }
}

/// One status change, as asked for by an operation.
pub struct Change<'a> {
    pub to: Status,
    pub waiting_reason: Option<WaitingReason>,
    pub actor: &'a str,
    pub details: Value,
    pub result: Option<Value>,
    pub error: Option<Value>,
}

impl<'a> Change<'a> {
    pub fn to(to: Status, actor: &'a str) -> Change<'a> {
        Change {
            to,
            waiting_reason: None,
            actor,
            details: json!({}),
            result: None,
            error: None,
        }
    }
}

/// Moves an intent to a new status: checks the move, appends its event with the next `seq`,
/// writes the new state, and stores the completion for `reply_to` when the intent becomes
/// terminal. Every status change of the program goes through here.
pub fn transition(
    conn: &Connection,
    intent: &mut IntentRow,
    change: Change<'_>,
) -> Result<(EventRow, Option<CompletionRow>), Error> {
    lifecycle::check(intent.status, change.to)?;
    if (change.to == Status::Waiting) != change.waiting_reason.is_some() {
        return Err(Error::internal(
            "a WAITING intent needs a waiting reason, and only a WAITING one",
        ));
    }
    if intent.waiting_reason == Some(WaitingReason::Time) {
        super::timers::cancel_completion(conn, &intent.intent_id)?;
    }
    intent.status = change.to;
    intent.waiting_reason = change.waiting_reason;
    if let Some(r) = &change.result {
        intent.result = Some(serde_json::to_string(r)?);
    }
    if let Some(e) = &change.error {
        intent.error = Some(serde_json::to_string(e)?);
    }
    let event = record(
        conn,
        intent,
        change.to.event_type(),
        change.actor,
        &change.details,
    )?;
    let now = event.at.clone();

    let completion = match (&intent.reply_to, change.to.is_terminal()) {
        (Some(reply_to), true) => {
            let mut body = json!({
                "intent_id": intent.intent_id,
                "status": change.to.as_str(),
                "event_seq": event.seq,
            });
            if let Some(r) = change.result {
                body["result"] = r;
            }
            if let Some(e) = change.error {
                body["error"] = e;
            }
            if let Some(reason) = change.details.get("reason") {
                body["reason"] = reason.clone();
            }
            let row = CompletionRow {
                message_id: uuid::Uuid::new_v4().to_string(),
                intent_id: intent.intent_id.clone(),
                reply_to: reply_to.clone(),
                status: change.to.as_str().to_string(),
                event_seq: event.seq,
                body: serde_json::to_string(&body)?,
                created_at: now,
            };
            completions::insert(conn, &row)?;
            inbox::open(conn, intent, reply_to, "reply_to")?;
            Some(row)
        }
        _ => None,
    };
    Ok((event, completion))
}

/// Appends an event that records something without changing the status
/// (`intent.delivery_failed`, reminders, …), with the next `seq`.
pub fn note(
    conn: &Connection,
    intent: &mut IntentRow,
    event_type: &str,
    actor: &str,
    details: Value,
) -> Result<EventRow, Error> {
    record(conn, intent, event_type, actor, &details)
}

/// Appends one event with the intent's current state (the next `seq`), writes the state, and
/// runs what every event causes: its pushes and its inbox threads' changes. The caller has
/// set the new status, if any.
fn record(
    conn: &Connection,
    intent: &mut IntentRow,
    event_type: &str,
    actor: &str,
    details: &Value,
) -> Result<EventRow, Error> {
    let now = clock::now_rfc3339();
    intent.last_seq += 1;
    intent.updated_at = now.clone();
    let mut event = EventRow {
        event_id: 0,
        intent_id: intent.intent_id.clone(),
        seq: intent.last_seq,
        event_type: event_type.to_string(),
        status: intent.status,
        waiting_reason: intent.waiting_reason,
        handler: Some(intent.to_agent.clone()),
        actor: actor.to_string(),
        at: now,
        details: serde_json::to_string(details)?,
    };
    event.event_id = events::append(conn, &event)?;
    intents::update_state(conn, intent)?;
    deliveries::enqueue(conn, intent, &event)?;
    inbox::on_event(conn, intent, &event)?;
    super::workflow::on_event(conn, intent, &event)?;
    Ok(event)
}

/// Puts a FAILED intent back to SUBMITTED (`intent.submitted`): the redrive of an intent whose
/// delivery failed (see `inbox::redrive`, which decides when it is allowed).
pub fn redrive_transition(
    conn: &Connection,
    intent: &mut IntentRow,
    actor: &str,
    details: Value,
) -> Result<EventRow, Error> {
    lifecycle::check_redrive(intent.status)?;
    intent.status = Status::Submitted;
    intent.waiting_reason = None;
    record(
        conn,
        intent,
        Status::Submitted.event_type(),
        actor,
        &details,
    )
}

/// Creates an intent: the row, `intent.created` (seq 1) and `intent.submitted` (seq 2).
/// `from_agent` defaults to the caller's own address.
///
/// An intent is born SUBMITTED: its row is written once in its final state (the CREATED ->
/// SUBMITTED move is checked against the table like any other), which spares every create an
/// update of a row it has just inserted. Every later change goes through [`transition`].
pub fn create(conn: &Connection, req: CreateIntent, caller: &str) -> Result<Created, Error> {
    lifecycle::check(Status::Created, Status::Submitted)?;
    let now = clock::now_rfc3339();
    let from_agent = req.from_agent.unwrap_or_else(|| caller.to_string());
    let mut intent = IntentRow {
        id: 0,
        // Time-ordered ids keep the id indexes (intents, events) append-mostly: a create touches
        // the right edge of each B-tree instead of a random page.
        intent_id: uuid::Uuid::now_v7().to_string(),
        intent_type: req.intent_type,
        correlation_id: req.correlation_id,
        from_agent,
        to_agent: req.to_agent,
        reply_to: req.reply_to,
        payload: req.payload,
        status: Status::Submitted,
        waiting_reason: None,
        result: None,
        error: None,
        deadline_at: req.deadline_at,
        remind_after_seconds: req.remind_after_seconds,
        remind_interval_seconds: req.remind_interval_seconds,
        max_reminders: req.max_reminders,
        remind_count: 0,
        escalate_to: req.escalate_to,
        max_delivery_attempts: req.max_delivery_attempts,
        delivery_attempt: 0,
        human_task: req.human_task,
        last_seq: 2,
        created_at: now.clone(),
        updated_at: now.clone(),
    };
    intent.id = intents::insert(conn, &intent)?;
    let event = |seq: i64, status: Status, details: String| EventRow {
        event_id: 0,
        intent_id: intent.intent_id.clone(),
        seq,
        event_type: status.event_type().to_string(),
        status,
        waiting_reason: None,
        handler: Some(intent.to_agent.clone()),
        actor: intent.from_agent.clone(),
        at: now.clone(),
        details,
    };
    let mut created = event(
        1,
        Status::Created,
        json!({"intent_type": intent.intent_type}).to_string(),
    );
    let mut submitted = event(2, Status::Submitted, "{}".to_string());
    created.event_id = events::append(conn, &created)?;
    submitted.event_id = events::append(conn, &submitted)?;
    deliveries::enqueue(conn, &intent, &created)?;
    deliveries::enqueue(conn, &intent, &submitted)?;
    let mut appended = vec![created, submitted];
    if intent.human_task.is_some() && intent.to_agent != crate::runtime::builtin::APPROVAL {
        // A human task waits for a person from the start (the approval agent opens its task
        // in the approver's inbox itself).
        let actor = intent.from_agent.clone();
        let mut change = Change::to(Status::Waiting, &actor);
        change.waiting_reason = Some(WaitingReason::Human);
        change.details = json!({"reason": "human_task"});
        let (waiting, _) = transition(conn, &mut intent, change)?;
        appended.push(waiting);
    }
    inbox::on_create(conn, &intent)?;
    super::timers::on_create(conn, &intent)?;
    Ok(Created {
        intent,
        events: appended,
    })
}

/// The intent with this id, or 404.
pub fn get(conn: &Connection, intent_id: &str) -> Result<IntentRow, Error> {
    intents::get(conn, intent_id)?.ok_or_else(|| Error::NotFound {
        what: "intent",
        id: intent_id.to_string(),
    })
}

/// One page of the intent listing, newest first, and the cursor of the next page.
pub fn list(
    conn: &Connection,
    mut filter: ListFilter,
) -> Result<(Vec<IntentRow>, Option<i64>), Error> {
    let limit = filter.limit;
    filter.limit = limit + 1;
    let mut rows = intents::list(conn, &filter)?;
    let next = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|r| r.id)
    } else {
        None
    };
    Ok((rows, next))
}

/// The events of an intent after `since` (404 if the intent does not exist).
pub fn events_since(
    conn: &Connection,
    intent_id: &str,
    since: i64,
) -> Result<Vec<EventRow>, Error> {
    let rows = events::list_for_intent(conn, intent_id, since, EVENTS_PAGE_MAX)?;
    if rows.is_empty() {
        // An empty page is either "nothing new" or "no such intent"; tell them apart.
        get(conn, intent_id)?;
    }
    Ok(rows)
}

/// Resolves an intent to COMPLETED, FAILED or CANCELED (AXME `resolve`).
pub fn resolve(
    conn: &Connection,
    intent_id: &str,
    req: Resolve,
    caller: &str,
) -> Result<Changed, Error> {
    let mut intent = get(conn, intent_id)?;
    let actor = req.actor.as_deref().unwrap_or(caller);
    let mut details = json!({});
    if let Some(r) = &req.result {
        details["result"] = r.clone();
    }
    if let Some(e) = &req.error {
        details["error"] = e.clone();
    }
    if let Some(reason) = &req.reason {
        details["reason"] = json!(reason);
    }
    let change = Change {
        to: req.status,
        waiting_reason: None,
        actor,
        details,
        result: req.result,
        error: req.error,
    };
    let (event, completion) = transition(conn, &mut intent, change)?;
    Ok(Changed {
        intent,
        events: vec![event],
        completion,
    })
}

/// The handler acknowledges an intent. From SUBMITTED the hand-over is recorded first
/// (`intent.delivered`), so the history shows every step the table allows.
pub fn ack(
    conn: &Connection,
    intent_id: &str,
    actor: Option<String>,
    caller: &str,
) -> Result<Changed, Error> {
    let mut intent = get(conn, intent_id)?;
    let actor = actor.as_deref().unwrap_or(caller);
    let mut appended = Vec::with_capacity(2);
    if intent.status == Status::Submitted {
        let (e, _) = transition(conn, &mut intent, Change::to(Status::Delivered, actor))?;
        appended.push(e);
    }
    let (e, completion) = transition(conn, &mut intent, Change::to(Status::Acknowledged, actor))?;
    appended.push(e);
    Ok(Changed {
        intent,
        events: appended,
        completion,
    })
}

/// The handler reports progress: IN_PROGRESS, or WAITING with a reason.
pub fn progress(
    conn: &Connection,
    intent_id: &str,
    req: Progress,
    caller: &str,
) -> Result<Changed, Error> {
    let mut intent = get(conn, intent_id)?;
    let actor = req.actor.as_deref().unwrap_or(caller);
    let mut change = Change::to(req.status, actor);
    change.waiting_reason = req.waiting_reason;
    if let Some(d) = req.details {
        change.details = d;
    }
    let (event, completion) = transition(conn, &mut intent, change)?;
    Ok(Changed {
        intent,
        events: vec![event],
        completion,
    })
}

/// Times out every live intent whose `deadline_at` has passed (`intent.timed_out`, error
/// `intent_timeout`). Run by the runtime timer; an intent that reached a terminal status first
/// is not touched, so a deadline fires at most once. Returns how many intents it looked at.
pub fn time_out_due(conn: &Connection, limit: usize) -> Result<usize, Error> {
    let due = intents::past_deadline(conn, &clock::now_rfc3339(), limit)?;
    for id in &due {
        let Some(mut intent) = intents::get(conn, id)? else {
            continue;
        };
        if intent.status.is_terminal() {
            continue;
        }
        let error = json!({
            "code": "intent_timeout",
            "message": format!("the deadline {} passed", intent.deadline_at.clone().unwrap_or_default()),
        });
        let mut change = Change::to(Status::TimedOut, "axme/runtime");
        change.details = json!({"error": error});
        change.error = Some(error);
        transition(conn, &mut intent, change)?;
    }
    Ok(due.len())
}

/// When the next deadline of a live intent falls (RFC 3339).
pub fn next_deadline(conn: &Connection) -> Result<Option<String>, Error> {
    intents::next_deadline(conn)
}
