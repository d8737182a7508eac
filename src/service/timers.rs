//! The rules of the runtime's durable timers: reminders and escalation of intents that are not
//! done in time (`remind_after_seconds`, `remind_interval_seconds`, `max_reminders`,
//! `escalate_to`), and delayed completions (`agent://internal/delay`, `Step::CompleteAfter`).
//!
//! Reminders: the first falls `remind_after_seconds` after creation, the next ones every
//! `remind_interval_seconds` (default: `remind_after_seconds`), up to `max_reminders` (default:
//! unlimited when an interval is given, else one). Each appends `intent.reminder` with its
//! number. One interval after the last reminder, an intent with `escalate_to` is escalated:
//! `intent.escalated`, then `intent.transfer` re-addresses it to `escalate_to`. A terminal
//! intent is never reminded or escalated. Deadlines (`deadline_at`) are timers too, kept on the
//! intent row itself (see `intents::time_out_due`).

use crate::store::Tx;
use serde_json::{json, Value};

use super::effects;
use super::history::Change;
use super::thread_hooks;
use crate::clock;
use crate::model::{event_type, Status, TimerKind, WaitingReason};
use crate::store::intents::IntentRow;
use crate::store::timers;
use crate::Error;

fn interval_ms(intent: &IntentRow) -> i64 {
    intent
        .remind_interval_seconds
        .or(intent.remind_after_seconds)
        .unwrap_or(0)
        .max(1)
        * 1000
}

fn max_reminders(intent: &IntentRow) -> Option<i64> {
    match (intent.max_reminders, intent.remind_interval_seconds) {
        (Some(m), _) => Some(m),
        (None, Some(_)) => None,
        (None, None) => Some(1),
    }
}

/// Fires every timer due now (at most `limit`); returns how many it handled.
pub fn fire_due(conn: &Tx, limit: usize) -> Result<usize, Error> {
    let due = timers::due(conn, clock::now_ms(), limit)?;
    for t in &due {
        timers::delete(conn, t.timer_id)?;
        let Some(mut intent) = crate::store::intents::get(conn, &t.intent_id)? else {
            continue;
        };
        if intent.status.is_terminal() {
            continue;
        }
        match TimerKind::parse(&t.kind) {
            Some(TimerKind::Remind) => remind(conn, &mut intent, t.due_ms)?,
            Some(TimerKind::Escalate) => escalate(conn, &mut intent)?,
            Some(TimerKind::Complete) => {
                // Only an intent still waiting for this time: one that moved on (to wait for a
                // person, say) is not completed behind its back.
                if intent.status != Status::Waiting
                    || intent.waiting_reason != Some(WaitingReason::Time)
                {
                    continue;
                }
                let data: Value = serde_json::from_str(&t.data).unwrap_or_else(|e| {
                    tracing::warn!(timer = t.timer_id, error = %e, "a timer's data is unreadable; completing with an empty result");
                    json!({})
                });
                let result = data.get("result").cloned().unwrap_or_else(|| json!({}));
                let mut change = Change::to(Status::Completed, "axme/runtime");
                change.details = json!({"result": result, "timer": "complete"});
                change.result = Some(result);
                effects::transition(conn, &mut intent, change)?;
            }
            None => tracing::warn!(
                kind = t.kind,
                timer = t.timer_id,
                "unknown timer kind dropped"
            ),
        }
    }
    Ok(due.len())
}

fn remind(conn: &Tx, intent: &mut IntentRow, due_ms: i64) -> Result<(), Error> {
    intent.remind_count += 1;
    let n = intent.remind_count;
    let max = max_reminders(intent);
    let more = max.is_none_or(|m| n < m);
    let next_ms = due_ms + interval_ms(intent);
    let mut details = json!({"reminder": n, "pending_with": intent.to_agent});
    if let Some(m) = max {
        details["max_reminders"] = json!(m);
    }
    effects::note(conn, intent, event_type::REMINDER, "axme/runtime", details)?;
    if more {
        timers::insert(conn, &intent.intent_id, TimerKind::Remind, next_ms, "{}")?;
    } else if intent.escalate_to.is_some() {
        timers::insert(conn, &intent.intent_id, TimerKind::Escalate, next_ms, "{}")?;
    }
    Ok(())
}

fn escalate(conn: &Tx, intent: &mut IntentRow) -> Result<(), Error> {
    let Some(to) = intent.escalate_to.clone() else {
        return Ok(());
    };
    let from = intent.to_agent.clone();
    if to == from {
        return Ok(());
    }
    effects::note(
        conn,
        intent,
        event_type::ESCALATED,
        "axme/runtime",
        json!({"from": from, "to": to, "reminders": intent.remind_count}),
    )?;
    intent.to_agent = to.clone();
    effects::note(
        conn,
        intent,
        event_type::TRANSFER,
        "axme/runtime",
        json!({"from": from, "to": to, "reason": "escalated"}),
    )?;
    let role = if intent.human_task.is_some() {
        crate::model::ThreadRole::Delegate
    } else {
        crate::model::ThreadRole::Handler
    };
    if intent.human_task.is_some()
        || crate::store::agents::get(conn, &to)?
            .is_some_and(|a| a.delivery_mode == crate::model::DeliveryMode::Inbox)
    {
        thread_hooks::open(conn, intent, &to, role)?;
    }
    Ok(())
}

/// When the earliest timer is due (Unix ms).
pub fn next_due_ms(conn: &Tx) -> Result<Option<i64>, Error> {
    timers::next_due_ms(conn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::testing::{self, HANDLER};
    use crate::service::{intents, schedule};
    use crate::store::threads;

    /// Moves every timer an hour earlier and fires what is due; how many fired.
    fn an_hour_later(tx: &Tx) -> usize {
        timers::shift_all(tx, -3_600_000).expect("shifted");
        fire_due(tx, 100).expect("fired")
    }

    #[test]
    fn reminders_fire_once_each_up_to_max_then_the_intent_escalates_to_a_new_handler() {
        let conn = testing::db();
        let tx = Tx::sqlite(&conn);
        let boss = "agent://test/boss";
        testing::agent(&tx, boss, "inbox");
        let fields = json!({"remind_after_seconds": 60, "max_reminders": 2, "escalate_to": boss});
        let id = testing::intent(&tx, fields).intent_id;
        assert_eq!(fire_due(&tx, 100).expect("nothing due"), 0);
        let fired: Vec<usize> = (0..4).map(|_| an_hour_later(&tx)).collect();
        assert_eq!(
            fired,
            [1, 1, 1, 0],
            "two reminders, one escalation, then nothing"
        );
        let h = testing::history(&tx, &id);
        let tail = [
            "intent.reminder",
            "intent.reminder",
            "intent.escalated",
            "intent.transfer",
        ];
        assert_eq!(&h[2..], tail);
        let i = testing::reload(&tx, &id);
        assert_eq!((i.to_agent.as_str(), i.remind_count), (boss, 2));
        assert!(
            threads::get(&tx, boss, &id).expect("read").is_some(),
            "the new handler's inbox"
        );
    }

    #[test]
    fn a_terminal_intent_is_never_reminded() {
        let conn = testing::db();
        let tx = Tx::sqlite(&conn);
        let id = testing::intent(&tx, json!({"remind_after_seconds": 60})).intent_id;
        let cancel =
            crate::service::requests::resolve(&json!({"status": "CANCELED", "reason": "x"}));
        intents::resolve(&tx, &id, cancel.expect("body"), HANDLER, None).expect("canceled");
        assert_eq!(an_hour_later(&tx), 1, "the timer is taken");
        assert_eq!(
            testing::history(&tx, &id).last().map(String::as_str),
            Some("intent.canceled")
        );
        assert_eq!(timers::count(&tx).expect("count"), 0);
    }

    #[test]
    fn a_delayed_completion_completes_only_an_intent_still_waiting_for_time() {
        let conn = testing::db();
        let tx = Tx::sqlite(&conn);
        let wait = |id: &str, reason: &str| {
            let body = json!({"status": "WAITING", "waiting_reason": reason});
            let req = crate::service::requests::progress(&body).expect("body");
            intents::progress(&tx, id, req, HANDLER, None).expect("waiting");
        };
        let timed = testing::intent(&tx, json!({})).intent_id;
        wait(&timed, "WAITING_FOR_TIME");
        schedule::complete_at(&tx, &timed, clock::now_ms(), &json!({"n": 1})).expect("timer");
        // A completion left behind for an intent that waits for a person now.
        let moved = testing::intent(&tx, json!({})).intent_id;
        wait(&moved, "WAITING_FOR_HUMAN");
        schedule::complete_at(&tx, &moved, clock::now_ms(), &json!({})).expect("stale timer");
        assert_eq!(an_hour_later(&tx), 2);
        let done = testing::reload(&tx, &timed);
        assert_eq!(
            (done.status, done.result.as_deref()),
            (Status::Completed, Some(r#"{"n":1}"#))
        );
        assert_eq!(
            testing::reload(&tx, &moved).waiting_reason,
            Some(WaitingReason::Human)
        );
    }
}
