//! Intent operations: create, resolve, ack, progress, deadlines, and the reads (resume is in
//! `service::resume`). Each write operation runs inside one transaction of the caller's: it
//! reads the intent and changes it through `effects::transition` (the status, its event and
//! their reactions together), so an intent's status and its history can never disagree.

use serde_json::json;

use super::effects::{self, transition};
use super::history::{self, Change, Changed, Created};
use super::requests::{CreateIntent, Progress, Resolve};
use crate::clock;
use crate::model::{Status, WaitingReason};
use crate::store::events::{self, EventRow};
use crate::store::intents::{self, IntentRow, ListFilter};
use crate::store::Tx;
use crate::Error;

/// The most events one page of `GET /v1/intents/{id}/events` returns.
pub const EVENTS_PAGE_MAX: usize = 1000;

/// Creates an intent: the row, `intent.created` (seq 1) and `intent.submitted` (seq 2), born
/// SUBMITTED (see `history::create`). `from_agent` defaults to the caller's own address.
pub fn create(conn: &Tx, req: CreateIntent, caller: &str) -> Result<Created, Error> {
    let now = clock::now_rfc3339();
    let from_agent = req.from_agent.unwrap_or_else(|| caller.to_string());
    let intent = IntentRow {
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
        updated_at: now,
    };
    let mut created = history::create(conn, intent)?;
    effects::created(conn, &created)?;
    let intent = &mut created.intent;
    if intent.human_task.is_some() && intent.to_agent != crate::model::builtin::APPROVAL {
        // A human task waits for a person from the start (the approval agent opens its task
        // in the approver's inbox itself).
        let actor = intent.from_agent.clone();
        let mut change = Change::to(Status::Waiting, &actor);
        change.waiting_reason = Some(WaitingReason::Human);
        change.details = json!({"reason": "human_task"});
        let (waiting, _) = transition(conn, intent, change)?;
        created.events.push(waiting);
    }
    effects::opened(conn, &created.intent)?;
    Ok(created)
}

/// The intent with this id, or 404.
pub fn get(conn: &Tx, intent_id: &str) -> Result<IntentRow, Error> {
    intents::get(conn, intent_id)?.ok_or_else(|| Error::NotFound {
        what: "intent",
        id: intent_id.to_string(),
    })
}

/// One page of the intent listing, newest first, and the cursor of the next page.
pub fn list(conn: &Tx, mut filter: ListFilter) -> Result<(Vec<IntentRow>, Option<i64>), Error> {
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
pub fn events_since(conn: &Tx, intent_id: &str, since: i64) -> Result<Vec<EventRow>, Error> {
    let rows = events::list_for_intent(conn, intent_id, since, EVENTS_PAGE_MAX)?;
    if rows.is_empty() {
        // An empty page is either "nothing new" or "no such intent"; tell them apart.
        get(conn, intent_id)?;
    }
    Ok(rows)
}

/// Resolves an intent to COMPLETED, FAILED or CANCELED (AXME `resolve`).
pub fn resolve(conn: &Tx, intent_id: &str, req: Resolve, caller: &str) -> Result<Changed, Error> {
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
    conn: &Tx,
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
pub fn progress(conn: &Tx, intent_id: &str, req: Progress, caller: &str) -> Result<Changed, Error> {
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
pub fn time_out_due(conn: &Tx, limit: usize) -> Result<usize, Error> {
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
pub fn next_deadline(conn: &Tx) -> Result<Option<String>, Error> {
    intents::next_deadline(conn)
}
