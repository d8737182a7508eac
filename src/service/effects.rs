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
        let ending = Ending {
            result: change.result,
            error: change.error,
            reason: change.details.get("reason").cloned(),
        };
        complete(tx, intent, &event, ending)?
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
            react(tx, &intent, &event)?;
            if event.status.is_terminal() && event.event_type == event.status.event_type() {
                // The engine ended a workflow: its outcome goes to `reply_to` as any end does.
                let parsed =
                    |s: &Option<String>| s.as_deref().map(serde_json::from_str).transpose();
                let ending = Ending {
                    result: parsed(&intent.result)?,
                    error: parsed(&intent.error)?,
                    reason: serde_json::from_str::<Value>(&event.details)?
                        .get("reason")
                        .cloned(),
                };
                complete(tx, &intent, &event, ending)?;
            }
            Ok(())
        }
    }
}

/// What an intent ended with, as its completion tells it.
struct Ending {
    result: Option<Value>,
    error: Option<Value>,
    reason: Option<Value>,
}

/// The completion of an intent that became terminal and has `reply_to`: stored for the
/// resolve response, and a thread in the `reply_to` address's inbox.
fn complete(
    tx: &Tx,
    intent: &IntentRow,
    event: &EventRow,
    ending: Ending,
) -> Result<Option<CompletionRow>, Error> {
    let Some(reply_to) = &intent.reply_to else {
        return Ok(None);
    };
    let mut body = json!({
        "intent_id": intent.intent_id,
        "status": event.status.as_str(),
        "event_seq": event.seq,
    });
    if let Some(r) = ending.result {
        body["result"] = r;
    }
    if let Some(e) = ending.error {
        body["error"] = e;
    }
    if let Some(reason) = ending.reason {
        body["reason"] = reason;
    }
    let row = CompletionRow {
        message_id: uuid::Uuid::new_v4().to_string(),
        intent_id: intent.intent_id.clone(),
        reply_to: reply_to.clone(),
        status: event.status.as_str().to_string(),
        event_seq: event.seq,
        body: serde_json::to_string(&body)?,
        created_at: event.at.clone(),
    };
    completions::insert(tx, &row)?;
    thread_hooks::open(tx, intent, reply_to, crate::model::ThreadRole::ReplyTo)?;
    Ok(Some(row))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::Status;
    use crate::service::testing::{self, HANDLER, SENDER};
    use crate::service::{intents, requests};
    use crate::store::{threads, timers};

    #[test]
    fn an_http_handler_gets_one_push_of_its_submission_and_a_pull_handler_none() {
        let conn = testing::db();
        let tx = Tx::sqlite(&conn);
        testing::agent(&tx, HANDLER, "http");
        let pushed = testing::intent(&tx, json!({}));
        let pulled = testing::intent(&tx, json!({"to_agent": "agent://test/puller"}));
        let d = testing::deliveries(&tx, Some(&pushed.intent_id));
        assert_eq!(d.len(), 1);
        assert_eq!(
            (d[0].kind.as_str(), d[0].event_type.as_str()),
            ("handler", "intent.submitted")
        );
        assert_eq!(d[0].agent_address.as_deref(), Some(HANDLER));
        assert!(testing::deliveries(&tx, Some(&pulled.intent_id)).is_empty());
        // Later events of the pushed intent owe its handler nothing more.
        intents::ack(&tx, &pushed.intent_id, None, HANDLER, None).expect("ack");
        assert_eq!(testing::deliveries(&tx, Some(&pushed.intent_id)).len(), 1);
    }

    #[test]
    fn subscriptions_get_the_events_their_type_intent_correlation_and_agent_filters_want() {
        let conn = testing::db();
        let tx = Tx::sqlite(&conn);
        let first = testing::intent(&tx, json!({}));
        let other_correlation = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
        let url = |n: u8| format!("http://obs.test/{n}");
        let all = testing::subscribe(&tx, SENDER, &url(1), json!({}));
        let acks = testing::subscribe(
            &tx,
            SENDER,
            &url(2),
            json!({"event_types": ["intent.acknowledged"]}),
        );
        let one = testing::subscribe(&tx, SENDER, &url(3), json!({"intent_id": first.intent_id}));
        let corr = testing::subscribe(
            &tx,
            SENDER,
            &url(4),
            json!({"correlation_id": other_correlation}),
        );
        let agent = testing::subscribe(
            &tx,
            SENDER,
            &url(5),
            json!({"to_agent": "agent://test/other"}),
        );
        let second = testing::intent(
            &tx,
            json!({"correlation_id": other_correlation, "to_agent": "agent://test/other"}),
        );
        intents::ack(&tx, &first.intent_id, None, HANDLER, None).expect("ack first");
        intents::ack(&tx, &second.intent_id, None, HANDLER, None).expect("ack second");
        let got = |sub: &str| -> Vec<(String, String)> {
            testing::deliveries(&tx, None)
                .into_iter()
                .filter(|d| d.subscription_id.as_deref() == Some(sub))
                .map(|d| (d.intent_id.unwrap_or_default(), d.event_type))
                .collect()
        };
        let (a, b) = (&first.intent_id, &second.intent_id);
        let pair = |i: &str, t: &str| (i.to_string(), t.to_string());
        let types = [
            "intent.created",
            "intent.submitted",
            "intent.delivered",
            "intent.acknowledged",
        ];
        // Subscribed after the first intent was created: only its ack events reach `all`.
        assert_eq!(got(&all.subscription_id).len(), 2 + types.len());
        assert_eq!(
            got(&acks.subscription_id),
            vec![
                pair(a, "intent.acknowledged"),
                pair(b, "intent.acknowledged")
            ]
        );
        assert_eq!(
            got(&one.subscription_id),
            vec![pair(a, "intent.delivered"), pair(a, "intent.acknowledged")]
        );
        let of_second: Vec<_> = types.iter().map(|t| pair(b, t)).collect();
        assert_eq!(got(&corr.subscription_id), of_second);
        assert_eq!(got(&agent.subscription_id), of_second);
    }

    #[test]
    fn an_inbox_handler_a_human_task_and_reply_to_get_threads_bumped_by_later_events() {
        let conn = testing::db();
        let tx = Tx::sqlite(&conn);
        testing::agent(&tx, HANDLER, "inbox");
        let to_inbox = testing::intent(&tx, json!({}));
        let task = testing::intent(
            &tx,
            json!({"to_agent": "agent://test/person", "reply_to": "agent://test/back",
                   "human_task": {"title": "t", "assignees": ["agent://test/peer", "bob@x.test"]}}),
        );
        let thread = |owner: &str, id: &str| threads::get(&tx, owner, id).expect("read");
        assert_eq!(
            thread(HANDLER, &to_inbox.intent_id).map(|t| t.role.as_str()),
            Some("handler")
        );
        assert_eq!(
            thread("agent://test/person", &task.intent_id).map(|t| t.role.as_str()),
            Some("task")
        );
        assert_eq!(
            thread("agent://test/peer", &task.intent_id).map(|t| t.role.as_str()),
            Some("task")
        );
        assert!(
            thread("agent://test/back", &task.intent_id).is_none(),
            "reply_to waits for the end"
        );
        let before = thread(HANDLER, &to_inbox.intent_id).map(|t| t.change_id);
        intents::ack(&tx, &to_inbox.intent_id, None, HANDLER, None).expect("ack");
        assert!(thread(HANDLER, &to_inbox.intent_id).map(|t| t.change_id) > before);
        let cancel =
            requests::resolve(&json!({"status": "CANCELED", "reason": "no"})).expect("body");
        let done = intents::resolve(&tx, &task.intent_id, cancel, SENDER, None).expect("cancel");
        let completion = done.completion.expect("a completion for reply_to");
        assert_eq!(
            (completion.reply_to.as_str(), completion.status.as_str()),
            ("agent://test/back", "CANCELED")
        );
        assert_eq!(
            thread("agent://test/back", &task.intent_id).map(|t| t.role.as_str()),
            Some("reply_to")
        );
    }

    #[test]
    fn leaving_waiting_for_time_ends_the_delayed_completion() {
        let conn = testing::db();
        let tx = Tx::sqlite(&conn);
        let mut intent = testing::intent(&tx, json!({}));
        let mut wait = Change::to(Status::Waiting, HANDLER);
        wait.waiting_reason = Some(WaitingReason::Time);
        transition(&tx, &mut intent, wait).expect("wait for time");
        schedule::complete_at(
            &tx,
            &intent.intent_id,
            crate::clock::now_ms() + 60_000,
            &json!({}),
        )
        .expect("timer");
        assert_eq!(
            timers::for_intent(&tx, &intent.intent_id)
                .expect("timers")
                .len(),
            1
        );
        transition(&tx, &mut intent, Change::to(Status::InProgress, HANDLER)).expect("resume");
        assert!(timers::for_intent(&tx, &intent.intent_id)
            .expect("timers")
            .is_empty());
        assert_eq!(
            testing::reload(&tx, &intent.intent_id).status,
            Status::InProgress
        );
    }

    #[test]
    fn an_illegal_change_writes_nothing_and_runs_no_reaction() {
        let conn = testing::db();
        let tx = Tx::sqlite(&conn);
        testing::subscribe(&tx, SENDER, "http://obs.test/1", json!({}));
        let mut intent = testing::intent(&tx, json!({"reply_to": "agent://test/back"}));
        let before = conn.total_changes();
        let e = transition(&tx, &mut intent, Change::to(Status::Waiting, HANDLER))
            .expect_err("no reason");
        assert_eq!(e.code(), "internal_error", "{e}");
        let e =
            transition(&tx, &mut intent, Change::to(Status::Created, HANDLER)).expect_err("back");
        assert_eq!(e.code(), "invalid_transition", "{e}");
        assert_eq!(conn.total_changes(), before);
    }
}
