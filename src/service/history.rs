//! An intent's state and its event log, written together. [`transition`] is the only place a
//! status changes: it asks `lifecycle::check` whether the move is legal, appends the event with
//! the next `seq` and writes the new state, in the caller's transaction. [`note`] appends an
//! event that changes no status. Both return what they appended and know none of its
//! consequences: `effects` turns appended events into pushes, threads and timers. This module
//! never calls up into the modules that react to events. The same three moves keep the
//! sender's live bytes (`store::live_bytes`): a create adds the payload, the move into a terminal
//! status takes it away, a redrive adds it back.

use serde_json::{json, Value};

use super::lifecycle;
use crate::clock;
use crate::model::{Status, WaitingReason};
use crate::store::completions::CompletionRow;
use crate::store::events::{self, EventRow};
use crate::store::intents::{self, IntentRow};
use crate::store::live_bytes;
use crate::store::Tx;
use crate::Error;

/// A created intent with its first events.
#[derive(Debug, Clone)]
pub struct Created {
    pub intent: IntentRow,
    pub events: Vec<EventRow>,
}

/// An intent after a change, with the events the change appended (oldest first) and, when the
/// change made it terminal and it has `reply_to`, the completion addressed to it.
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

/// Moves an intent to a new status: checks the move, writes the new state and appends its
/// event with the next `seq`. Every status change of the program goes through here.
pub fn transition(tx: &Tx, intent: &mut IntentRow, change: &Change<'_>) -> Result<EventRow, Error> {
    lifecycle::check(intent.status, change.to)?;
    if (change.to == Status::Waiting) != change.waiting_reason.is_some() {
        return Err(Error::internal(
            "a WAITING intent needs a waiting reason, and only a WAITING one",
        ));
    }
    if change.to.is_terminal() && !intent.status.is_terminal() {
        live_bytes::add(tx, &intent.from_agent, -payload_bytes(intent))?;
    }
    intent.status = change.to;
    intent.waiting_reason = change.waiting_reason;
    if let Some(r) = &change.result {
        intent.result = Some(serde_json::to_string(r)?);
    }
    if let Some(e) = &change.error {
        intent.error = Some(serde_json::to_string(e)?);
    }
    append(
        tx,
        intent,
        change.to.event_type(),
        change.actor,
        &change.details,
    )
}

/// Puts a FAILED intent back to SUBMITTED (`intent.submitted`): the one move out of a terminal
/// status, checked by `lifecycle::check_redrive` (see `inbox::redrive`, which decides when it
/// is allowed).
pub fn redrive(
    tx: &Tx,
    intent: &mut IntentRow,
    actor: &str,
    details: &Value,
) -> Result<EventRow, Error> {
    lifecycle::check_redrive(intent.status)?;
    live_bytes::add(tx, &intent.from_agent, payload_bytes(intent))?;
    intent.status = Status::Submitted;
    intent.waiting_reason = None;
    append(tx, intent, Status::Submitted.event_type(), actor, details)
}

/// Appends an event that records something without changing the status
/// (`intent.delivery_failed`, reminders, …), with the next `seq`.
pub fn note(
    tx: &Tx,
    intent: &mut IntentRow,
    event_type: &str,
    actor: &str,
    details: &Value,
) -> Result<EventRow, Error> {
    append(tx, intent, event_type, actor, details)
}

/// What an intent counts against its sender's live bytes (`--max-live-bytes-per-key`): its
/// payload's JSON, in bytes, while it is not terminal.
pub fn payload_bytes(intent: &IntentRow) -> i64 {
    intent.payload.len() as i64
}

/// Appends one event with the intent's current state (the next `seq`) and writes the state.
/// The caller has set the new status, if any.
fn append(
    tx: &Tx,
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
    event.event_id = events::append(tx, &event)?;
    intents::update_state(tx, intent)?;
    Ok(event)
}

/// Writes a new intent, born SUBMITTED, with `intent.created` (seq 1) and `intent.submitted`
/// (seq 2). Its row is written once in its final state (the CREATED -> SUBMITTED move is checked
/// against the table like any other), which spares every create an update of a row it has just
/// inserted.
pub fn create(tx: &Tx, mut intent: IntentRow) -> Result<Created, Error> {
    lifecycle::check(Status::Created, Status::Submitted)?;
    intent.status = Status::Submitted;
    intent.waiting_reason = None;
    intent.last_seq = 2;
    intent.id = intents::insert(tx, &intent)?;
    live_bytes::add(tx, &intent.from_agent, payload_bytes(&intent))?;
    let event = |seq: i64, status: Status, details: String| EventRow {
        event_id: 0,
        intent_id: intent.intent_id.clone(),
        seq,
        event_type: status.event_type().to_string(),
        status,
        waiting_reason: None,
        handler: Some(intent.to_agent.clone()),
        actor: intent.from_agent.clone(),
        at: intent.created_at.clone(),
        details,
    };
    let mut created = event(
        1,
        Status::Created,
        json!({"intent_type": intent.intent_type}).to_string(),
    );
    let mut submitted = event(2, Status::Submitted, "{}".to_string());
    created.event_id = events::append(tx, &created)?;
    submitted.event_id = events::append(tx, &submitted)?;
    Ok(Created {
        intent,
        events: vec![created, submitted],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::testing::{self, HANDLER};

    #[test]
    fn each_change_appends_the_next_seq_with_the_new_state() {
        let conn = testing::db();
        let tx = Tx::sqlite(&conn);
        let mut intent = testing::intent(&tx, json!({}));
        let e =
            transition(&tx, &mut intent, &Change::to(Status::Delivered, HANDLER)).expect("move");
        assert_eq!(
            (e.seq, e.status, e.event_type.as_str()),
            (3, Status::Delivered, "intent.delivered")
        );
        let n = note(
            &tx,
            &mut intent,
            "intent.reminder",
            HANDLER,
            &json!({"n": 1}),
        )
        .expect("note");
        assert_eq!((n.seq, n.status), (4, Status::Delivered));
        let stored = testing::reload(&tx, &intent.intent_id);
        assert_eq!((stored.status, stored.last_seq), (Status::Delivered, 4));
    }

    #[test]
    fn a_senders_live_bytes_follow_create_terminal_move_and_redrive() {
        use crate::service::testing::SENDER;
        use crate::store::live_bytes;
        let conn = testing::db();
        let tx = Tx::sqlite(&conn);
        let mut a = testing::intent(&tx, json!({"payload": {"blob": "x".repeat(100)}}));
        let b = testing::intent(&tx, json!({}));
        let (pa, pb) = (payload_bytes(&a), payload_bytes(&b));
        assert!(pa > 100);
        assert_eq!(live_bytes::of(&tx, SENDER).expect("read"), pa + pb);
        transition(&tx, &mut a, &Change::to(Status::Failed, HANDLER)).expect("failed");
        assert_eq!(live_bytes::of(&tx, SENDER).expect("read"), pb);
        redrive(&tx, &mut a, HANDLER, &json!({})).expect("redriven");
        assert_eq!(live_bytes::of(&tx, SENDER).expect("read"), pa + pb);
        transition(&tx, &mut a, &Change::to(Status::Canceled, HANDLER)).expect("canceled");
        assert_eq!(live_bytes::of(&tx, SENDER).expect("read"), pb);
    }

    #[test]
    fn an_illegal_move_and_a_redrive_of_a_live_intent_write_nothing() {
        let conn = testing::db();
        let tx = Tx::sqlite(&conn);
        let mut intent = testing::intent(&tx, json!({}));
        let before = conn.total_changes();
        let e = transition(&tx, &mut intent, &Change::to(Status::Submitted, HANDLER));
        assert_eq!(e.expect_err("to itself").code(), "invalid_transition");
        let mut waiting = Change::to(Status::InProgress, HANDLER);
        waiting.waiting_reason = Some(WaitingReason::Tool);
        assert!(
            transition(&tx, &mut intent, &waiting).is_err(),
            "a reason only when WAITING"
        );
        assert!(redrive(&tx, &mut intent, HANDLER, &json!({})).is_err());
        assert_eq!(conn.total_changes(), before);
        assert_eq!(testing::reload(&tx, &intent.intent_id).last_seq, 2);
    }
}
