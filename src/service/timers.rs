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
use super::schedule::{COMPLETE, ESCALATE, REMIND};
use super::thread_hooks;
use crate::clock;
use crate::model::{event_type, Status, WaitingReason};
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
        match t.kind.as_str() {
            REMIND => remind(conn, &mut intent, t.due_ms)?,
            ESCALATE => escalate(conn, &mut intent)?,
            COMPLETE => {
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
            other => tracing::warn!(
                kind = other,
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
        timers::insert(conn, &intent.intent_id, REMIND, next_ms, "{}")?;
    } else if intent.escalate_to.is_some() {
        timers::insert(conn, &intent.intent_id, ESCALATE, next_ms, "{}")?;
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
        "delegate"
    } else {
        "handler"
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
