//! Intent operations: create, resolve, ack, progress, deadlines, and the reads (resume is in
//! `service::resume`). Each write operation runs inside one transaction of the caller's: it
//! reads the intent and changes it through `effects::transition` (the status, its event and
//! their reactions together), so an intent's status and its history can never disagree.

use serde_json::{json, Value};

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

/// An agent key's quota on stored work: the sender addresses it is bound to, and the payload
/// bytes their live (non-terminal) intents may hold together (`--max-live-bytes-per-key`; 0
/// means no quota). Admin keys have none.
#[derive(Debug, Clone)]
pub struct LiveQuota {
    pub agents: Vec<String>,
    pub max_bytes: u64,
}

impl LiveQuota {
    /// Refuses a new payload of `adding` bytes that would take the key past its quota (429
    /// naming the flag); the key is accepted again once its intents end.
    pub fn check(&self, conn: &Tx, adding: usize) -> Result<(), Error> {
        if self.max_bytes == 0 {
            return Ok(());
        }
        let mut held: i64 = 0;
        for agent in &self.agents {
            held += crate::store::live_bytes::of(conn, agent)?;
        }
        if held.max(0) as u64 + adding as u64 <= self.max_bytes {
            return Ok(());
        }
        Err(Error::QuotaExceeded {
            limit: "live_bytes_per_key",
            value: self.max_bytes,
            flag: "--max-live-bytes-per-key",
            reason: format!(
                "the key's live intents hold {held} payload bytes; {adding} more would pass its \
                 quota of {} (--max-live-bytes-per-key); it may send again once some of them \
                 end",
                self.max_bytes
            ),
        })
    }
}

/// Creates an intent for a key with a quota on live bytes: the quota is checked in the same
/// transaction as the create (see [`create`]).
pub fn create_within(
    conn: &Tx,
    req: CreateIntent,
    caller: &str,
    quota: Option<&LiveQuota>,
) -> Result<Created, Error> {
    if let Some(q) = quota {
        q.check(conn, req.payload.len())?;
    }
    create(conn, req, caller)
}

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
    super::payloads::on_create(conn, &mut created.intent, &mut created.events)?;
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

/// Records who really made a change requested with an agent key (`by`, its address): an
/// `actor` the request named stays the event's actor (AXME's field, a label), and when it is
/// not `by`, `by` goes beside it as `details.by`. A `by` the client put into `details` is
/// replaced, so on an agent key's events `details.by`, when present, is always the principal.
/// Admin keys (the operator) and the server's own moves pass `None`.
pub fn vouch(details: &mut Value, actor: &str, by: Option<&str>) {
    let (Some(by), Some(map)) = (by, details.as_object_mut()) else {
        return;
    };
    if actor != by || map.contains_key("by") {
        map.insert("by".into(), json!(by));
    }
}

/// Resolves an intent to COMPLETED, FAILED or CANCELED (AXME `resolve`).
pub fn resolve(
    conn: &Tx,
    intent_id: &str,
    req: Resolve,
    caller: &str,
    by: Option<&str>,
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
    vouch(&mut details, actor, by);
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
    by: Option<&str>,
) -> Result<Changed, Error> {
    let mut intent = get(conn, intent_id)?;
    let actor = actor.as_deref().unwrap_or(caller);
    let mut appended = Vec::with_capacity(2);
    let change = |to| {
        let mut c = Change::to(to, actor);
        vouch(&mut c.details, actor, by);
        c
    };
    if intent.status == Status::Submitted {
        let (e, _) = transition(conn, &mut intent, change(Status::Delivered))?;
        appended.push(e);
    }
    let (e, completion) = transition(conn, &mut intent, change(Status::Acknowledged))?;
    appended.push(e);
    Ok(Changed {
        intent,
        events: appended,
        completion,
    })
}

/// The handler reports progress: IN_PROGRESS, or WAITING with a reason.
pub fn progress(
    conn: &Tx,
    intent_id: &str,
    req: Progress,
    caller: &str,
    by: Option<&str>,
) -> Result<Changed, Error> {
    let mut intent = get(conn, intent_id)?;
    let actor = req.actor.as_deref().unwrap_or(caller);
    let mut change = Change::to(req.status, actor);
    change.waiting_reason = req.waiting_reason;
    if let Some(d) = req.details {
        change.details = d;
    }
    vouch(&mut change.details, actor, by);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::testing::{self, task, HANDLER, SENDER};
    use crate::service::{requests, resume};

    fn resume_with(tx: &Tx, id: &str, task_result: Value) -> Result<Changed, Error> {
        let req = resume::request(&json!({"task_result": task_result})).expect("body");
        resume::resume(tx, id, req, HANDLER, None).map(|r| r.changed)
    }

    #[test]
    fn a_new_intent_is_submitted_at_seq_2_and_a_human_task_waits_for_a_person() {
        let conn = testing::db();
        let tx = Tx::sqlite(&conn);
        let plain = testing::intent(&tx, json!({}));
        assert_eq!(
            (plain.status, plain.last_seq, plain.from_agent.as_str()),
            (Status::Submitted, 2, SENDER)
        );
        assert_eq!(
            testing::history(&tx, &plain.intent_id),
            ["intent.created", "intent.submitted"]
        );
        let waiting = testing::reload(&tx, &task(&tx, json!({})));
        assert_eq!(
            (waiting.status, waiting.waiting_reason),
            (Status::Waiting, Some(WaitingReason::Human))
        );
        assert_eq!(
            events_since(&tx, &waiting.intent_id, 2)
                .expect("tail")
                .len(),
            1
        );
        let e = events_since(&tx, "no-such-intent", 0).expect_err("unknown");
        assert_eq!(e.code(), "intent_not_found");
    }

    #[test]
    fn a_resume_outside_the_tasks_rules_is_422_and_writes_nothing() {
        let conn = testing::db();
        let tx = Tx::sqlite(&conn);
        let rules = json!({"allowed_outcomes": ["done"], "required_comment": true, "evidence_required": true});
        let id = task(&tx, rules);
        let before = conn.total_changes();
        let fields = |r: Value| resume_with(&tx, &id, r).expect_err("refused").to_string();
        assert!(fields(json!({"outcome": "nope"})).starts_with("task_result.outcome:"));
        let no_evidence = json!({"outcome": "done", "comment": "c", "data": {"evidence": []}});
        assert!(fields(no_evidence).starts_with("task_result.data.evidence:"));
        let no_comment = json!({"outcome": "done", "data": {"evidence": "photo"}});
        assert!(fields(no_comment).starts_with("task_result.comment:"));
        assert_eq!(conn.total_changes(), before);
        let ok = json!({"outcome": "done", "comment": "c", "data": {"evidence": "photo"}});
        // The task_result decides the task: its outcome completes the intent.
        assert_eq!(
            resume_with(&tx, &id, ok).expect("resumed").intent.status,
            Status::Completed
        );
        let e = resume_with(&tx, &id, json!({})).expect_err("not waiting");
        assert_eq!(e.code(), "intent_terminal");
    }

    #[test]
    fn an_ack_from_submitted_records_the_hand_over_first() {
        let conn = testing::db();
        let tx = Tx::sqlite(&conn);
        let id = testing::intent(&tx, json!({})).intent_id;
        let changed = ack(&tx, &id, None, HANDLER, None).expect("ack");
        let types: Vec<&str> = changed
            .events
            .iter()
            .map(|e| e.event_type.as_str())
            .collect();
        assert_eq!(types, ["intent.delivered", "intent.acknowledged"]);
        let before = conn.total_changes();
        assert_eq!(
            ack(&tx, &id, None, HANDLER, None)
                .expect_err("twice")
                .code(),
            "invalid_transition"
        );
        assert_eq!(conn.total_changes(), before);
    }

    #[test]
    fn a_passed_deadline_times_out_a_live_intent_once() {
        let conn = testing::db();
        let tx = Tx::sqlite(&conn);
        let past = json!({"deadline_at": "2020-01-01T00:00:00Z"});
        let live = testing::intent(&tx, past.clone()).intent_id;
        let done = testing::intent(&tx, past).intent_id;
        let cancel =
            requests::resolve(&json!({"status": "CANCELED", "reason": "x"})).expect("body");
        resolve(&tx, &done, cancel, SENDER, None).expect("canceled");
        assert_eq!(
            time_out_due(&tx, 10).expect("due"),
            1,
            "a terminal intent is not due"
        );
        let i = testing::reload(&tx, &live);
        assert_eq!(i.status, Status::TimedOut);
        assert!(i.error.unwrap_or_default().contains("intent_timeout"));
        assert_eq!(time_out_due(&tx, 10).expect("again"), 0);
        assert_eq!(next_deadline(&tx).expect("next"), None);
    }
}
