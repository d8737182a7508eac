//! The reactions: what an appended event causes, written in the same transaction as the event.
//! `history` appends events and returns them; this module turns each into its consequences —
//! push outbox rows (`outbox`), inbox threads (`thread_hooks`), timers (`schedule`) and the
//! completion addressed to `reply_to` — and is the one place that knows them all. Operations
//! change an intent through [`transition`] and [`note`] here, never through `history` alone,
//! so no event goes without its reactions. The modules it calls never call back up into it.

use serde_json::{json, Value};

use super::history::{self, Change, Created};
use super::{outbox, schedule, thread_hooks, workflow};
use crate::model::WaitingReason;
use crate::store::completions::{self, CompletionRow};
use crate::store::events::EventRow;
use crate::store::intents::IntentRow;
use crate::store::Tx;
use crate::Error;

/// Changes an intent's status ([`history::transition`]) and runs what the change causes: the
/// event's pushes and thread changes, the end of a delayed completion when the intent stops
/// waiting for time, and the completion for `reply_to` when it becomes terminal.
pub fn transition(
    tx: &Tx,
    intent: &mut IntentRow,
    change: Change<'_>,
) -> Result<(EventRow, Option<CompletionRow>), Error> {
    let was_waiting_for_time = intent.waiting_reason == Some(WaitingReason::Time);
    let event = history::transition(tx, intent, &change)?;
    if was_waiting_for_time {
        schedule::cancel_completion(tx, &intent.intent_id)?;
    }
    react(tx, intent, &event)?;
    let completion = if change.to.is_terminal() {
        complete(tx, intent, &event, change)?
    } else {
        None
    };
    Ok((event, completion))
}

/// Appends an event that changes no status ([`history::note`]) and runs its reactions.
pub fn note(
    tx: &Tx,
    intent: &mut IntentRow,
    event_type: &str,
    actor: &str,
    details: Value,
) -> Result<EventRow, Error> {
    let event = history::note(tx, intent, event_type, actor, &details)?;
    react(tx, intent, &event)?;
    Ok(event)
}

/// Puts a FAILED intent back to SUBMITTED ([`history::redrive`]) and runs the reactions of its
/// new `intent.submitted` (a push to an `http` handler among them).
pub fn redrive(
    tx: &Tx,
    intent: &mut IntentRow,
    actor: &str,
    details: Value,
) -> Result<EventRow, Error> {
    let event = history::redrive(tx, intent, actor, &details)?;
    react(tx, intent, &event)?;
    Ok(event)
}

/// Runs what a new intent's first events cause: their pushes, its threads and its first
/// reminder. (A new intent has no thread yet, so its first events touch none.)
pub fn created(tx: &Tx, created: &Created) -> Result<(), Error> {
    for event in &created.events {
        outbox::enqueue(tx, &created.intent, event)?;
    }
    Ok(())
}

/// What a new intent has once its first status is settled: the threads of its owners and its
/// first reminder.
pub fn opened(tx: &Tx, intent: &IntentRow) -> Result<(), Error> {
    thread_hooks::on_create(tx, intent)?;
    schedule::on_create(tx, intent)
}

/// What every appended event causes: the deliveries it owes, and its threads' changes.
fn react(tx: &Tx, intent: &IntentRow, event: &EventRow) -> Result<(), Error> {
    outbox::enqueue(tx, intent, event)?;
    thread_hooks::on_event(tx, intent, event)?;
    for appended in workflow::on_event(tx, intent, event)? {
        apply(tx, appended)?;
    }
    Ok(())
}

/// Runs the reactions of what the workflow engine appended: a new step intent's first events
/// and its threads and timers, or an event of an existing intent (which may move the engine
/// on again, a bounded number of times: each step intent ends once).
pub fn apply(tx: &Tx, appended: workflow::Appended) -> Result<(), Error> {
    match appended {
        workflow::Appended::Created(c) => {
            for event in &c.events {
                react(tx, &c.intent, event)?;
            }
            opened(tx, &c.intent)
        }
        workflow::Appended::Event {
            intent,
            event,
            left_time,
        } => {
            if left_time {
                schedule::cancel_completion(tx, &intent.intent_id)?;
            }
            react(tx, &intent, &event)
        }
    }
}

/// The completion of an intent that became terminal and has `reply_to`: stored for the
/// resolve response, and a thread in the `reply_to` address's inbox.
fn complete(
    tx: &Tx,
    intent: &IntentRow,
    event: &EventRow,
    change: Change<'_>,
) -> Result<Option<CompletionRow>, Error> {
    let Some(reply_to) = &intent.reply_to else {
        return Ok(None);
    };
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
        created_at: event.at.clone(),
    };
    completions::insert(tx, &row)?;
    thread_hooks::open(tx, intent, reply_to, "reply_to")?;
    Ok(Some(row))
}
