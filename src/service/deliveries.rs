//! The rules of push delivery after the outbox (`outbox` writes which events become
//! deliveries): what an attempt's outcome does to a delivery (retry with backoff, dead-letter)
//! and to its intent (DELIVERED, the handler's reply applied, `intent.delivery_failed`, FAILED
//! when attempts run out), and replay. The HTTP side of an attempt lives in `delivery`.

use std::time::Duration;

use crate::store::Tx;
use serde_json::{json, Value};

use super::effects::{self, transition};
use super::history::Change;
use super::intents;
pub use super::retry::RetryPolicy;
use crate::model::Status;
use crate::model::{DeliveryKind, DeliveryStatus};
use crate::store::deliveries::{self, AttemptRow, DeliveryRow, ListFilter};
use crate::store::intents::IntentRow;
use crate::store::{agents, subscriptions};
use crate::{clock, Error};

/// What one attempt came to, as the HTTP side saw it.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub attempt: i64,
    pub status_code: Option<u16>,
    pub latency_ms: i64,
    pub error: Option<String>,
    pub response_excerpt: Option<String>,
    pub verdict: Verdict,
    /// A handler's 2xx JSON body, which may move the intent on (`{"status": ...}`).
    pub reply: Option<Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Delivered,
    /// Try again later; `throttled` for 429 and timeouts (which wait at least the floor).
    Retry {
        retry_after: Option<Duration>,
        throttled: bool,
    },
    /// `410 Gone`: the endpoint is disabled and the delivery dead-lettered.
    Gone,
    /// The target can never be reached (refused address): dead-lettered at once.
    Permanent,
    /// Not attempted because it no longer makes sense (the intent is already terminal): the
    /// delivery is marked failed, the intent left alone.
    Skipped,
}

/// What recording an attempt did to its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    Delivered,
    /// Failed; another attempt is scheduled.
    Retry,
    /// Failed for the last time.
    DeadLettered,
    /// Not attempted: its intent was already terminal.
    Skipped,
    /// The delivery was no longer pending (finished or replayed meanwhile): only the attempt
    /// was recorded.
    Stale,
}

/// Records an attempt and moves the delivery (and, for handler pushes, its intent) on.
pub fn record(
    conn: &Tx,
    delivery_id: &str,
    outcome: Outcome,
    policy: &RetryPolicy,
) -> Result<(DeliveryRow, Settled), Error> {
    let mut d = deliveries::get(conn, delivery_id)?.ok_or_else(|| Error::NotFound {
        what: "delivery",
        id: delivery_id.to_string(),
    })?;
    if d.status != DeliveryStatus::Pending {
        // Replayed or finished meanwhile (e.g. two attempts raced over a restart): keep the
        // record of the attempt, change nothing else.
        insert_attempt(conn, &d, &outcome, None)?;
        return Ok((d, Settled::Stale));
    }
    let now = clock::now_rfc3339();
    d.attempts = d.attempts.max(outcome.attempt);
    d.updated_at = now.clone();
    let intent = match (d.kind, &d.intent_id) {
        (DeliveryKind::Handler, Some(id)) => crate::store::intents::get(conn, id)?,
        _ => None,
    };
    let mut note = None;
    match &outcome.verdict {
        Verdict::Delivered => {
            d.status = DeliveryStatus::Delivered;
            d.next_attempt_ms = None;
            d.last_error = None;
            if let Some(mut intent) = intent {
                note = handler_delivered(conn, &mut intent, &d, outcome.reply.as_ref())?;
            }
        }
        verdict => {
            let max = if d.max_attempts > 0 {
                d.max_attempts
            } else {
                policy.default_attempts()
            };
            let reason = outcome
                .error
                .clone()
                .unwrap_or_else(|| format!("HTTP {}", outcome.status_code.unwrap_or(0)));
            d.last_error = Some(reason.clone());
            let exhausted = match verdict {
                Verdict::Retry {
                    retry_after,
                    throttled,
                } if d.attempts < max => {
                    let delay = policy.backoff(d.attempts, *retry_after, *throttled);
                    d.next_attempt_ms = Some(clock::now_ms() + delay.as_millis() as i64);
                    false
                }
                Verdict::Gone => {
                    disable_endpoint(conn, &d, &now)?;
                    true
                }
                _ => true,
            };
            if exhausted {
                d.status = if *verdict == Verdict::Skipped {
                    DeliveryStatus::Failed
                } else {
                    DeliveryStatus::DeadLettered
                };
                d.next_attempt_ms = None;
            }
            if let (Some(mut intent), false) = (intent, *verdict == Verdict::Skipped) {
                handler_failed(conn, &mut intent, &d, &outcome, &reason, exhausted)?;
            }
        }
    }
    insert_attempt(conn, &d, &outcome, note)?;
    deliveries::update_state(conn, &d)?;
    let settled = match d.status {
        DeliveryStatus::Delivered => Settled::Delivered,
        DeliveryStatus::Pending => Settled::Retry,
        DeliveryStatus::Failed => Settled::Skipped,
        _ => Settled::DeadLettered,
    };
    Ok((d, settled))
}

/// What recording one outcome of a batch came to: the delivery's new state, or why it was not
/// recorded.
pub type Recorded = (String, Result<(DeliveryRow, Settled), Error>);

/// Records the outcomes of many attempts in one write job (one transaction), in order. An
/// outcome that fails before writing anything (its delivery is gone) is reported and the others
/// are recorded; one that fails after writing fails the whole job, so that no outcome is ever
/// half-recorded: the writer rolls the job back, the deliveries stay pending and are attempted
/// again (same `webhook-id`).
pub fn record_all(
    conn: &Tx,
    outcomes: Vec<(String, Outcome)>,
    policy: &RetryPolicy,
) -> Result<Vec<Recorded>, Error> {
    let mut recorded = Vec::with_capacity(outcomes.len());
    for (delivery_id, outcome) in outcomes {
        let before = conn.total_changes();
        let result = record(conn, &delivery_id, outcome, policy);
        if let Err(e) = &result {
            if conn.total_changes() != before {
                return Err(e.clone());
            }
        }
        recorded.push((delivery_id, result));
    }
    Ok(recorded)
}

fn insert_attempt(
    conn: &Tx,
    d: &DeliveryRow,
    o: &Outcome,
    note: Option<String>,
) -> Result<(), Error> {
    let error = match (&o.error, note) {
        (Some(e), Some(n)) => Some(format!("{e}; {n}")),
        (e, n) => e.clone().or(n),
    };
    deliveries::insert_attempt(
        conn,
        &AttemptRow {
            delivery_id: d.delivery_id.clone(),
            attempt: o.attempt,
            at: clock::now_rfc3339(),
            status_code: o.status_code.map(i64::from),
            latency_ms: o.latency_ms,
            error,
            response_excerpt: o.response_excerpt.clone(),
        },
    )
}

fn disable_endpoint(conn: &Tx, d: &DeliveryRow, now: &str) -> Result<(), Error> {
    if let Some(address) = &d.agent_address {
        agents::disable(conn, address, now)?;
    }
    if let Some(id) = &d.subscription_id {
        subscriptions::deactivate(conn, id, now)?;
    }
    Ok(())
}

/// A handler took the intent: SUBMITTED -> DELIVERED, then its reply, if it carries a status,
/// applied through the lifecycle table. Returns a note for the attempt record when the reply
/// could not be applied (the delivery still counts as delivered).
fn handler_delivered(
    conn: &Tx,
    intent: &mut IntentRow,
    d: &DeliveryRow,
    reply: Option<&Value>,
) -> Result<Option<String>, Error> {
    let actor = d
        .agent_address
        .clone()
        .unwrap_or_else(|| intent.to_agent.clone());
    if intent.status == Status::Submitted {
        let mut change = Change::to(Status::Delivered, &actor);
        change.details = json!({"via": "http", "delivery_id": d.delivery_id});
        transition(conn, intent, change)?;
    }
    let Some(status) = reply.and_then(|r| r.get("status")).and_then(Value::as_str) else {
        return Ok(None);
    };
    let reply = reply.cloned().unwrap_or_default();
    let applied = match Status::parse(status) {
        Some(s @ (Status::Completed | Status::Failed | Status::Canceled)) => {
            let req = super::requests::resolve(&json!({
                "status": status,
                "result": reply.get("result").cloned().or_else(|| (s == Status::Completed).then(|| json!({}))),
                "error": reply.get("error").cloned().or_else(|| (s == Status::Failed).then(|| json!({"code": "handler_failed"}))),
                "reason": reply.get("reason").cloned().or_else(|| (s == Status::Canceled).then(|| json!("canceled by the handler"))),
            }));
            req.and_then(|r| intents::resolve(conn, &intent.intent_id, r, &actor, None))
        }
        Some(Status::InProgress | Status::Waiting) => {
            let mut body = json!({"status": status});
            if let Some(w) = reply.get("waiting_reason") {
                body["waiting_reason"] = w.clone();
            }
            super::requests::progress(&body)
                .and_then(|p| intents::progress(conn, &intent.intent_id, p, &actor, None))
        }
        Some(Status::Acknowledged) => intents::ack(conn, &intent.intent_id, None, &actor, None),
        _ => {
            return Ok(Some(format!(
                "the reply's status {status:?} was not applied: use COMPLETED, FAILED, CANCELED, \
                 IN_PROGRESS, WAITING or ACKNOWLEDGED"
            )))
        }
    };
    match applied {
        Ok(changed) => {
            *intent = changed.intent;
            Ok(None)
        }
        Err(e) => Ok(Some(format!(
            "the reply's status {status} was not applied: {e}"
        ))),
    }
}

/// A handler push failed: the attempt is on the intent's record (`intent.delivery_failed`), and
/// when attempts are exhausted the intent FAILS with `delivery_failed`.
fn handler_failed(
    conn: &Tx,
    intent: &mut IntentRow,
    d: &DeliveryRow,
    outcome: &Outcome,
    reason: &str,
    exhausted: bool,
) -> Result<(), Error> {
    if intent.status.is_terminal() {
        return Ok(());
    }
    let details = json!({
        "delivery_id": d.delivery_id,
        "attempt": outcome.attempt,
        "status_code": outcome.status_code,
        "error": reason,
        "dead_lettered": exhausted,
    });
    effects::note(
        conn,
        intent,
        crate::model::event_type::DELIVERY_FAILED,
        "axme/push",
        details,
    )?;
    if exhausted {
        let mut change = Change::to(Status::Failed, "axme/push");
        let error = json!({
            "code": "delivery_failed",
            "message": format!("the webhook of {} failed {} time(s): {reason}", intent.to_agent, d.attempts),
            "delivery_id": d.delivery_id,
        });
        change.details = json!({"error": error});
        change.error = Some(error);
        transition(conn, intent, change)?;
    }
    Ok(())
}

/// Puts a finished delivery back in the queue (same `webhook-id`), with a fresh budget of
/// attempts.
pub fn replay(conn: &Tx, delivery_id: &str, policy: &RetryPolicy) -> Result<DeliveryRow, Error> {
    let mut d = get(conn, delivery_id)?;
    if d.status == DeliveryStatus::Pending {
        return Err(Error::conflict(
            "delivery_pending",
            "this delivery is still pending; it will be attempted at next_attempt_at",
        ));
    }
    let budget = if d.max_attempts > 0 {
        d.max_attempts
    } else {
        policy.default_attempts()
    };
    d.status = DeliveryStatus::Pending;
    // Marks the delivery as replayed on purpose: it is sent even if its intent is terminal.
    d.replay_of = Some(d.delivery_id.clone());
    d.max_attempts = d.attempts + budget;
    d.next_attempt_ms = Some(clock::now_ms());
    d.updated_at = clock::now_rfc3339();
    deliveries::update_state(conn, &d)?;
    Ok(d)
}

pub fn get(conn: &Tx, delivery_id: &str) -> Result<DeliveryRow, Error> {
    deliveries::get(conn, delivery_id)?.ok_or_else(|| Error::NotFound {
        what: "delivery",
        id: delivery_id.to_string(),
    })
}

/// A delivery with its attempts.
pub fn get_with_attempts(conn: &Tx, id: &str) -> Result<(DeliveryRow, Vec<AttemptRow>), Error> {
    let d = get(conn, id)?;
    let a = deliveries::attempts(conn, id)?;
    Ok((d, a))
}

/// A delivery and its attempts.
pub type WithAttempts = (DeliveryRow, Vec<AttemptRow>);

/// One page of deliveries (newest first) with their attempts, and the next page's cursor.
pub fn list(conn: &Tx, mut filter: ListFilter) -> Result<(Vec<WithAttempts>, Option<i64>), Error> {
    let limit = filter.limit;
    filter.limit = limit + 1;
    let mut rows = deliveries::list(conn, &filter)?;
    let next = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|(rowid, _)| *rowid)
    } else {
        None
    };
    let out = rows
        .into_iter()
        .map(|(_, d)| {
            let a = deliveries::attempts(conn, &d.delivery_id)?;
            Ok((d, a))
        })
        .collect::<Result<Vec<_>, Error>>()?;
    Ok((out, next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::testing::{self, pushed, HANDLER};
    use crate::store::agents as agent_rows;

    const RETRY: Verdict = Verdict::Retry {
        retry_after: None,
        throttled: false,
    };

    /// Records attempt `n` with `verdict` (and a handler's `reply`) under the test policy.
    fn send(
        tx: &Tx,
        id: &str,
        n: i64,
        verdict: Verdict,
        reply: Option<Value>,
    ) -> (DeliveryRow, Settled) {
        record(
            tx,
            id,
            testing::outcome(n, verdict, reply),
            &testing::policy(),
        )
        .expect("recorded")
    }

    #[test]
    fn a_failed_push_is_retried_after_its_backoff_then_dead_letters_and_fails_the_intent() {
        let conn = testing::db();
        let tx = Tx::sqlite(&conn);
        let (i, d) = pushed(&tx, 2);
        let now = clock::now_ms();
        let (row, settled) = send(&tx, &d, 1, RETRY, None);
        let wait = row.next_attempt_ms.expect("scheduled") - now;
        assert_eq!(settled, Settled::Retry);
        assert!((700..=1300).contains(&wait), "1 s ±20%, was {wait} ms");
        assert_eq!(testing::reload(&tx, &i.intent_id).status, Status::Submitted);
        let (row, settled) = send(&tx, &d, 2, RETRY, None);
        assert_eq!(
            (settled, row.status, row.next_attempt_ms),
            (Settled::DeadLettered, DeliveryStatus::DeadLettered, None)
        );
        let i = testing::reload(&tx, &i.intent_id);
        assert_eq!(i.status, Status::Failed);
        assert!(i.error.unwrap_or_default().contains("\"delivery_failed\""));
        let h = testing::history(&tx, &i.intent_id);
        assert_eq!(
            h.iter().filter(|t| *t == "intent.delivery_failed").count(),
            2,
            "{h:?}"
        );
    }

    #[test]
    fn a_410_disables_the_agent_and_dead_letters_at_once() {
        let conn = testing::db();
        let tx = Tx::sqlite(&conn);
        let (i, d) = pushed(&tx, 5);
        assert_eq!(
            send(&tx, &d, 1, Verdict::Gone, None).1,
            Settled::DeadLettered
        );
        let agent = agent_rows::get(&tx, HANDLER).expect("read").expect("agent");
        assert!(agent.disabled_at.is_some());
        assert_eq!(testing::reload(&tx, &i.intent_id).status, Status::Failed);
    }

    #[test]
    fn the_handlers_reply_moves_the_intent_on_or_is_noted_on_the_attempt() {
        let conn = testing::db();
        let tx = Tx::sqlite(&conn);
        let (i, d) = pushed(&tx, 5);
        let reply = json!({"status": "COMPLETED", "result": {"ok": true}});
        assert_eq!(
            send(&tx, &d, 1, Verdict::Delivered, Some(reply)).1,
            Settled::Delivered
        );
        let h = testing::history(&tx, &i.intent_id);
        assert_eq!(&h[2..], ["intent.delivered", "intent.completed"]);
        let (i, d) = pushed(&tx, 5);
        send(
            &tx,
            &d,
            1,
            Verdict::Delivered,
            Some(json!({"status": "WAITING"})),
        );
        assert_eq!(testing::reload(&tx, &i.intent_id).status, Status::Delivered);
        let note = get_with_attempts(&tx, &d).expect("attempts").1[0]
            .error
            .clone();
        let note = note.unwrap_or_default();
        assert!(
            note.contains("the reply's status WAITING was not applied"),
            "{note}"
        );
    }

    #[test]
    fn replay_refuses_a_pending_delivery_and_gives_a_finished_one_a_fresh_budget() {
        let conn = testing::db();
        let tx = Tx::sqlite(&conn);
        let (_, d) = pushed(&tx, 1);
        let before = conn.total_changes();
        let e = replay(&tx, &d, &testing::policy()).expect_err("pending");
        assert_eq!(
            (e.code(), conn.total_changes()),
            ("delivery_pending", before)
        );
        send(&tx, &d, 1, RETRY, None);
        let row = replay(&tx, &d, &testing::policy()).expect("replayed");
        let replayed = (row.status, row.max_attempts, row.replay_of.as_deref());
        assert_eq!(replayed, (DeliveryStatus::Pending, 2, Some(d.as_str())));
        send(&tx, &d, 2, Verdict::Delivered, None);
        // A finished delivery only keeps the record of a late attempt.
        assert_eq!(send(&tx, &d, 3, Verdict::Delivered, None).1, Settled::Stale);
        assert_eq!(get_with_attempts(&tx, &d).expect("attempts").1.len(), 3);
    }
}
