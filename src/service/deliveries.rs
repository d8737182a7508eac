//! The rules of push delivery: which events become deliveries (written in the same transaction
//! as the event), what an attempt's outcome does to a delivery (retry with backoff, dead-letter)
//! and to its intent (DELIVERED, the handler's reply applied, `intent.delivery_failed`, FAILED
//! when attempts run out), and replay. The HTTP side of an attempt lives in `delivery`.

use std::collections::HashMap;
use std::time::Duration;

use rusqlite::Connection;
use serde_json::{json, Value};

use super::intents::{self, transition, Change};
use crate::model::Status;
use crate::store::deliveries::{self, AttemptRow, DeliveryRow, ListFilter};
use crate::store::events::EventRow;
use crate::store::intents::IntentRow;
use crate::store::{agents, subscriptions};
use crate::{clock, Error};

pub const KIND_HANDLER: &str = "handler";
pub const KIND_SUBSCRIPTION: &str = "subscription";

pub const PENDING: &str = "pending";
pub const DELIVERED: &str = "delivered";
pub const FAILED: &str = "failed";
pub const DEAD_LETTERED: &str = "dead_lettered";

/// When attempts are retried and how many there are.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Delay before retry 1, 2, …; the last delay repeats if attempts outlast the schedule.
    pub schedule: Vec<Duration>,
    /// The shortest wait after a 429 or a timeout (even when the schedule says less).
    pub throttle_floor: Duration,
    /// The longest `Retry-After` honoured.
    pub retry_after_cap: Duration,
}

impl RetryPolicy {
    /// Attempts a delivery gets when neither its intent nor its agent says: one per schedule
    /// step plus the first.
    pub fn default_attempts(&self) -> i64 {
        self.schedule.len() as i64 + 1
    }

    /// The delay before the next attempt after `attempts` failed ones, ±20% jitter.
    fn backoff(&self, attempts: i64, retry_after: Option<Duration>, throttled: bool) -> Duration {
        let step = (attempts.max(1) - 1) as usize;
        let base = self
            .schedule
            .get(step)
            .or(self.schedule.last())
            .copied()
            .unwrap_or(Duration::from_secs(5));
        let jitter = 0.8 + 0.4 * (uuid::Uuid::new_v4().as_u128() % 1000) as f64 / 1000.0;
        let mut delay = base.mul_f64(jitter);
        if throttled {
            delay = delay.max(self.throttle_floor);
        }
        if let Some(ra) = retry_after {
            delay = delay.max(ra.min(self.retry_after_cap));
        }
        delay
    }
}

/// Parses `5s,5m,30m,2h` into durations.
pub fn parse_schedule(s: &str) -> Result<Vec<Duration>, String> {
    s.split(',')
        .map(|part| {
            let part = part.trim();
            let (num, unit) = part.split_at(
                part.find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(part.len()),
            );
            let n: u64 = num
                .parse()
                .map_err(|_| format!("{part:?}: expected a number followed by ms, s, m, h or d"))?;
            let secs = match unit {
                "ms" => return Ok(Duration::from_millis(n)),
                "s" | "" => n,
                "m" => n * 60,
                "h" => n * 3600,
                "d" => n * 86_400,
                _ => {
                    return Err(format!(
                        "{part:?}: unknown unit {unit:?} (use ms, s, m, h or d)"
                    ))
                }
            };
            Ok(Duration::from_secs(secs))
        })
        .collect::<Result<Vec<_>, _>>()
        .and_then(|v| {
            if v.is_empty() {
                Err("the retry schedule is empty".into())
            } else {
                Ok(v)
            }
        })
}

/// The scheme, host and port of a URL: what a per-endpoint limit counts.
pub fn endpoint(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let host = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    format!("{scheme}://{host}")
}

/// Writes the deliveries an appended event causes: the intent itself to its `http` agent (on
/// `intent.submitted`), and the event to every active subscription that wants it. Runs in the
/// event's transaction.
pub fn enqueue(conn: &Connection, intent: &IntentRow, event: &EventRow) -> Result<(), Error> {
    let now = clock::now_rfc3339();
    let new = |kind: &str, url: &str, max_attempts: i64| DeliveryRow {
        delivery_id: format!("msg_{}", uuid::Uuid::now_v7().simple()),
        kind: kind.to_string(),
        intent_id: Some(intent.intent_id.clone()),
        event_seq: Some(event.seq),
        event_type: event.event_type.clone(),
        agent_address: None,
        subscription_id: None,
        target_url: url.to_string(),
        status: PENDING.to_string(),
        attempts: 0,
        max_attempts,
        next_attempt_ms: Some(clock::now_ms()),
        last_error: None,
        replay_of: None,
        created_at: now.clone(),
        updated_at: now.clone(),
        webhook_event_id: None,
        endpoint: endpoint(url),
    };
    if event.status == Status::Submitted && event.event_type == Status::Submitted.event_type() {
        if let Some(agent) = agents::get(conn, &intent.to_agent)? {
            if let (true, None, Some(url)) = (
                agent.delivery_mode == "http",
                &agent.disabled_at,
                &agent.webhook_url,
            ) {
                let max = intent
                    .max_delivery_attempts
                    .or(agent.max_delivery_attempts)
                    .unwrap_or(0);
                let mut d = new(KIND_HANDLER, url, max);
                d.agent_address = Some(agent.address.clone());
                deliveries::insert(conn, &d)?;
            }
        }
    }
    for sub in subscriptions::active(conn)? {
        if subscription_wants(&sub, intent, event) {
            let mut d = new(KIND_SUBSCRIPTION, &sub.callback_url, 0);
            d.subscription_id = Some(sub.subscription_id.clone());
            deliveries::insert(conn, &d)?;
        }
    }
    Ok(())
}

fn subscription_wants(
    sub: &subscriptions::SubscriptionRow,
    intent: &IntentRow,
    event: &EventRow,
) -> bool {
    let types: Vec<String> = serde_json::from_str(&sub.event_types).unwrap_or_default();
    let type_ok = types.iter().any(|t| {
        t == &event.event_type || (t == "intent.*" && event.event_type.starts_with("intent."))
    });
    type_ok
        && sub
            .intent_id
            .as_ref()
            .is_none_or(|id| *id == intent.intent_id)
        && sub
            .correlation_id
            .as_ref()
            .is_none_or(|c| *c == intent.correlation_id)
        && sub.to_agent.as_ref().is_none_or(|a| *a == intent.to_agent)
}

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
    conn: &Connection,
    delivery_id: &str,
    outcome: Outcome,
    policy: &RetryPolicy,
) -> Result<(DeliveryRow, Settled), Error> {
    let mut d = deliveries::get(conn, delivery_id)?.ok_or_else(|| Error::NotFound {
        what: "delivery",
        id: delivery_id.to_string(),
    })?;
    if d.status != PENDING {
        // Replayed or finished meanwhile (e.g. two attempts raced over a restart): keep the
        // record of the attempt, change nothing else.
        insert_attempt(conn, &d, &outcome, None)?;
        return Ok((d, Settled::Stale));
    }
    let now = clock::now_rfc3339();
    d.attempts = d.attempts.max(outcome.attempt);
    d.updated_at = now.clone();
    let intent = match (&d.kind[..], &d.intent_id) {
        (KIND_HANDLER, Some(id)) => crate::store::intents::get(conn, id)?,
        _ => None,
    };
    let mut note = None;
    match &outcome.verdict {
        Verdict::Delivered => {
            d.status = DELIVERED.into();
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
                    FAILED.into()
                } else {
                    DEAD_LETTERED.into()
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
    let settled = match &d.status[..] {
        DELIVERED => Settled::Delivered,
        PENDING => Settled::Retry,
        FAILED => Settled::Skipped,
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
    conn: &Connection,
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
    conn: &Connection,
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

fn disable_endpoint(conn: &Connection, d: &DeliveryRow, now: &str) -> Result<(), Error> {
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
    conn: &Connection,
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
    let applied = match status {
        "COMPLETED" | "FAILED" | "CANCELED" => {
            let req = super::requests::resolve(&json!({
                "status": status,
                "result": reply.get("result").cloned().or_else(|| (status == "COMPLETED").then(|| json!({}))),
                "error": reply.get("error").cloned().or_else(|| (status == "FAILED").then(|| json!({"code": "handler_failed"}))),
                "reason": reply.get("reason").cloned().or_else(|| (status == "CANCELED").then(|| json!("canceled by the handler"))),
            }));
            req.and_then(|r| intents::resolve(conn, &intent.intent_id, r, &actor))
        }
        "IN_PROGRESS" | "WAITING" => {
            let mut body = json!({"status": status});
            if let Some(w) = reply.get("waiting_reason") {
                body["waiting_reason"] = w.clone();
            }
            super::requests::progress(&body)
                .and_then(|p| intents::progress(conn, &intent.intent_id, p, &actor))
        }
        "ACKNOWLEDGED" => intents::ack(conn, &intent.intent_id, None, &actor),
        other => {
            return Ok(Some(format!(
                "the reply's status {other:?} was not applied: use COMPLETED, FAILED, CANCELED, \
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
    conn: &Connection,
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
    intents::note(
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
pub fn replay(
    conn: &Connection,
    delivery_id: &str,
    policy: &RetryPolicy,
) -> Result<DeliveryRow, Error> {
    let mut d = get(conn, delivery_id)?;
    if d.status == PENDING {
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
    d.status = PENDING.into();
    // Marks the delivery as replayed on purpose: it is sent even if its intent is terminal.
    d.replay_of = Some(d.delivery_id.clone());
    d.max_attempts = d.attempts + budget;
    d.next_attempt_ms = Some(clock::now_ms());
    d.updated_at = clock::now_rfc3339();
    deliveries::update_state(conn, &d)?;
    Ok(d)
}

pub fn get(conn: &Connection, delivery_id: &str) -> Result<DeliveryRow, Error> {
    deliveries::get(conn, delivery_id)?.ok_or_else(|| Error::NotFound {
        what: "delivery",
        id: delivery_id.to_string(),
    })
}

/// A delivery with its attempts.
pub fn get_with_attempts(
    conn: &Connection,
    id: &str,
) -> Result<(DeliveryRow, Vec<AttemptRow>), Error> {
    let d = get(conn, id)?;
    let a = deliveries::attempts(conn, id)?;
    Ok((d, a))
}

/// A delivery and its attempts.
pub type WithAttempts = (DeliveryRow, Vec<AttemptRow>);

/// One page of deliveries (newest first) with their attempts, and the next page's cursor.
pub fn list(
    conn: &Connection,
    mut filter: ListFilter,
) -> Result<(Vec<WithAttempts>, Option<i64>), Error> {
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

/// Everything an attempt needs, read in one go by the scheduler.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub delivery: DeliveryRow,
    pub url: String,
    /// Signing secrets (`whsec_…`), newest first.
    pub secrets: Vec<String>,
    pub intent: Option<IntentRow>,
    /// The event an observer push carries (not read for a handler push, whose body is the
    /// intent).
    pub event: Option<EventRow>,
    /// For a published (non-intent) event: that event.
    pub webhook_event: Option<subscriptions::WebhookEventRow>,
    /// Why this delivery cannot be attempted at all (endpoint disabled, secret gone, …): it is
    /// dead-lettered.
    pub blocked: Option<String>,
    /// Why this delivery no longer makes sense (the intent is terminal, the agent retired or
    /// switched to another binding): it is marked failed and the intent left alone.
    pub skipped: Option<String>,
}

/// The agents and subscriptions read by one batch of preparations: a scheduler pass that takes
/// many deliveries to one target reads it once. Hold one only for the length of a read.
#[derive(Debug, Default)]
pub struct Targets {
    agents: HashMap<String, Option<agents::AgentRow>>,
    subscriptions: HashMap<String, Option<subscriptions::SubscriptionRow>>,
}

impl Targets {
    fn agent(
        &mut self,
        conn: &Connection,
        address: &str,
    ) -> Result<Option<agents::AgentRow>, Error> {
        if let Some(a) = self.agents.get(address) {
            return Ok(a.clone());
        }
        let a = agents::get(conn, address)?;
        self.agents.insert(address.to_string(), a.clone());
        Ok(a)
    }

    fn subscription(
        &mut self,
        conn: &Connection,
        id: &str,
    ) -> Result<Option<subscriptions::SubscriptionRow>, Error> {
        if let Some(s) = self.subscriptions.get(id) {
            return Ok(s.clone());
        }
        let s = subscriptions::get(conn, id)?;
        self.subscriptions.insert(id.to_string(), s.clone());
        Ok(s)
    }
}

/// Reads what the attempt of a due delivery needs.
pub fn prepare(conn: &Connection, d: DeliveryRow) -> Result<Prepared, Error> {
    prepare_with(conn, d, &mut Targets::default())
}

/// [`prepare`], reading each agent and subscription once per `targets`.
pub fn prepare_with(
    conn: &Connection,
    d: DeliveryRow,
    targets: &mut Targets,
) -> Result<Prepared, Error> {
    let intent = match &d.intent_id {
        Some(id) => crate::store::intents::get(conn, id)?,
        None => None,
    };
    // A handler push carries the intent, not the event that caused it.
    let event = match (&d.intent_id, d.event_seq, d.kind == KIND_HANDLER) {
        (Some(id), Some(seq), false) => {
            crate::store::events::list_for_intent(conn, id, seq - 1, 1)?
                .into_iter()
                .next()
        }
        _ => None,
    };
    let webhook_event = match &d.webhook_event_id {
        Some(id) => subscriptions::get_event(conn, id)?,
        None => None,
    };
    let mut p = Prepared {
        url: d.target_url.clone(),
        delivery: d,
        secrets: Vec::new(),
        intent,
        event,
        webhook_event,
        blocked: None,
        skipped: None,
    };
    if let Some(address) = p.delivery.agent_address.clone() {
        match targets.agent(conn, &address)? {
            Some(a) if a.disabled_at.is_some() => {
                p.blocked = Some("the agent's webhook is disabled (it answered 410 Gone)".into())
            }
            Some(a) if a.delivery_mode != "http" || a.webhook_url.is_none() => {
                p.skipped = Some(format!(
                    "the agent {address} now receives through {}; the intent waits to be pulled",
                    a.delivery_mode
                ))
            }
            Some(a) => {
                p.secrets = super::agents::signing_secrets(
                    a.webhook_secret.as_deref(),
                    a.previous_secret.as_deref(),
                    a.previous_secret_until.as_deref(),
                );
                p.url = a.webhook_url.unwrap_or(p.url);
            }
            None => {
                p.skipped = Some(format!(
                    "the agent {address} was retired; the intent waits to be pulled"
                ))
            }
        }
    }
    if let Some(id) = p.delivery.subscription_id.clone() {
        match targets.subscription(conn, &id)? {
            Some(s) if s.revoked_at.is_some() => {
                p.blocked = Some("the subscription was deleted".into())
            }
            Some(s) if !s.active => p.blocked = Some("the subscription is inactive".into()),
            Some(s) => {
                p.secrets = super::agents::signing_secrets(
                    Some(&s.secret),
                    s.previous_secret.as_deref(),
                    s.previous_secret_until.as_deref(),
                );
                p.url = s.callback_url;
            }
            None => p.blocked = Some("the subscription no longer exists".into()),
        }
    }
    if p.secrets.is_empty() && p.blocked.is_none() && p.skipped.is_none() {
        p.blocked = Some("no signing secret".into());
    }
    if p.delivery.kind == KIND_HANDLER
        && p.delivery.replay_of.is_none()
        && p.intent.as_ref().is_some_and(|i| i.status.is_terminal())
    {
        p.skipped = Some("the intent is already terminal".into());
    }
    Ok(p)
}
