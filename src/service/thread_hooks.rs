//! The inbox threads' reactions to intent events: who owns a thread on an intent (its handler
//! when that is an `inbox` agent, a human task's assignees, `reply_to`, an approver, a delegate),
//! opening those threads, bumping them on every event, and offering each change to the owner's
//! webhook subscriptions (`inbox.thread_created`, `inbox.thread_updated`). A reaction of
//! `effects`, also used by the inbox actions; it never changes an intent's status.

use serde_json::{json, Value};

use super::outbox;
use crate::clock;
use crate::model::{Status, ThreadRole, WaitingReason};
use crate::store::agents;
use crate::store::events::EventRow;
use crate::store::intents::IntentRow;
use crate::store::threads::{self, ThreadRow};
use crate::store::Tx;
use crate::Error;

/// A thread's status: `pending` (waiting for its owner), `active` or `done`.
pub fn thread_status(t: &ThreadRow, i: &IntentRow) -> &'static str {
    let waits_for_owner = if t.role.is_task() {
        i.waiting_reason == Some(WaitingReason::Human)
    } else {
        t.role == ThreadRole::Handler && i.status == Status::Submitted
    };
    if i.status.is_terminal() {
        "done"
    } else if waits_for_owner {
        "pending"
    } else {
        "active"
    }
}

/// Opens `owner`'s thread on `intent` and offers `inbox.thread_created` to the owner's
/// subscriptions. An existing thread is only touched.
pub fn open(conn: &Tx, intent: &IntentRow, owner: &str, role: ThreadRole) -> Result<(), Error> {
    let created = threads::open(conn, owner, &intent.intent_id, role, &clock::now_rfc3339())?;
    let kind = if created {
        "inbox.thread_created"
    } else {
        "inbox.thread_updated"
    };
    if let Some(t) = threads::get(conn, owner, &intent.intent_id)? {
        offer(conn, &t, intent, kind, None)?;
    }
    Ok(())
}

/// Runs after every event appended to an intent: its threads change. Cheap when the intent
/// has none (one index probe).
pub fn on_event(conn: &Tx, intent: &IntentRow, event: &EventRow) -> Result<(), Error> {
    let owners = threads::touch_intent(conn, &intent.intent_id, &event.at)?;
    for owner in owners {
        if let Some(t) = threads::get(conn, &owner, &intent.intent_id)? {
            offer(
                conn,
                &t,
                intent,
                "inbox.thread_updated",
                Some(json!({"event_type": event.event_type, "seq": event.seq})),
            )?;
        }
    }
    Ok(())
}

/// Opens the threads a new intent has: its handler's when the handler is an `inbox` agent or
/// the intent carries a human task, and the task's `agent://` assignees'.
pub fn on_create(conn: &Tx, intent: &IntentRow) -> Result<(), Error> {
    if intent.to_agent == crate::model::builtin::APPROVAL {
        // The approval agent opens the task in the approver's inbox when it takes the intent.
        return Ok(());
    }
    if let Some(task) = &intent.human_task {
        open(conn, intent, &intent.to_agent, ThreadRole::Task)?;
        let task: Value = serde_json::from_str(task)?;
        for a in task["assignees"].as_array().into_iter().flatten() {
            if let Some(addr) = a.as_str().filter(|s| s.starts_with("agent://")) {
                if addr != intent.to_agent {
                    open(conn, intent, addr, ThreadRole::Task)?;
                }
            }
        }
    } else if agents::get(conn, &intent.to_agent)?
        .is_some_and(|a| a.delivery_mode == crate::model::DeliveryMode::Inbox)
    {
        open(conn, intent, &intent.to_agent, ThreadRole::Handler)?;
    }
    Ok(())
}

/// Offers a thread change to the owner's webhook subscriptions that want `kind`.
pub fn offer(
    conn: &Tx,
    t: &ThreadRow,
    intent: &IntentRow,
    kind: &str,
    extra: Option<Value>,
) -> Result<(), Error> {
    let mut payload = json!({
        "thread_id": t.intent_id,
        "intent_id": t.intent_id,
        "owner_agent": t.owner_agent,
        "role": t.role.as_str(),
        "status": thread_status(t, intent),
        "intent_status": intent.status.as_str(),
        "from_agent": intent.from_agent,
        "to_agent": intent.to_agent,
        "updated_at": t.updated_at,
    });
    if let Some(Value::Object(extra)) = extra {
        for (k, v) in extra {
            payload[k] = v;
        }
    }
    outbox::emit(conn, &t.owner_agent, kind, "axme/inbox", &payload)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::testing::{self, task, HANDLER};
    use crate::service::{intents, requests};

    #[test]
    fn a_task_thread_is_pending_while_its_intent_waits_for_a_person() {
        let conn = testing::db();
        let tx = Tx::sqlite(&conn);
        let id = task(&tx, json!({}));
        let status = |tx: &Tx| {
            let t = threads::get(tx, HANDLER, &id)
                .expect("read")
                .expect("thread");
            thread_status(&t, &testing::reload(tx, &id))
        };
        assert_eq!(status(&tx), "pending");
        let req = crate::service::resume::request(&json!({})).expect("body");
        crate::service::resume::resume(&tx, &id, req, HANDLER, None).expect("resumed");
        assert_eq!(status(&tx), "active");
        let done = requests::resolve(&json!({"status": "COMPLETED", "result": {}})).expect("body");
        intents::resolve(&tx, &id, done, HANDLER, None).expect("completed");
        assert_eq!(status(&tx), "done");
    }

    #[test]
    fn thread_changes_are_offered_to_the_owners_subscriptions() {
        let conn = testing::db();
        let tx = Tx::sqlite(&conn);
        testing::agent(&tx, HANDLER, "inbox");
        let types = json!({"event_types": ["inbox.thread_created", "inbox.thread_updated"]});
        testing::subscribe(&tx, HANDLER, "http://obs.test/1", types);
        let id = testing::intent(&tx, json!({})).intent_id;
        intents::ack(&tx, &id, None, HANDLER, None).expect("ack");
        let types: Vec<String> = testing::deliveries(&tx, None)
            .into_iter()
            .map(|d| d.event_type)
            .collect();
        let updated = "inbox.thread_updated";
        assert_eq!(
            types,
            ["inbox.thread_created", updated, updated],
            "created, delivered, acked"
        );
    }

    #[test]
    fn an_intent_to_the_approval_agent_opens_no_thread_at_creation() {
        let conn = testing::db();
        let tx = Tx::sqlite(&conn);
        let fields =
            json!({"to_agent": crate::model::builtin::APPROVAL, "human_task": {"title": "t"}});
        let i = testing::intent(&tx, fields);
        assert!(threads::for_intent(&tx, &i.intent_id)
            .expect("threads")
            .is_empty());
        assert_eq!(
            i.status,
            Status::Submitted,
            "the approval agent takes it first"
        );
    }
}
