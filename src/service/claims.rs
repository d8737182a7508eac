//! Inbox claims: workers of one agent compete for its queue. A claim locks each intent it takes
//! to a lease (DELIVERED meanwhile); `ack` moves it on, `nack` puts it back (after a delay),
//! `extend` keeps it. A lease that expires puts the intent back too, with
//! `intent.delivery_failed` (reason `lease_expired`); too many attempts FAIL the intent with
//! `delivery_failed`. At least once: a worker that dies between claim and ack loses nothing.

use std::time::Duration;

use crate::store::{Store, Tx};
use serde_json::{json, Value};

use super::access::Access;
use super::effects::{self, transition};
use super::history::{Change, Changed};
use super::intents;
use super::validate::Fields;
use crate::model::{event_type, Status};
use crate::store::intents::IntentRow;
use crate::store::leases::{self, LeaseRow};
use crate::store::{agents, intents as intent_rows};
use crate::{clock, Error};

/// A lease's length when neither the claim nor the agent says.
pub const DEFAULT_LEASE_SECONDS: i64 = 30;
/// Attempts an intent gets when neither it nor its agent says.
pub const DEFAULT_MAX_ATTEMPTS: i64 = 5;
/// The longest default nack delay.
const MAX_NACK_DELAY: Duration = Duration::from_secs(15 * 60);

const ACTIVE: &str = "active";

/// A checked claim body.
#[derive(Debug, Clone, Copy)]
pub struct ClaimRequest {
    pub max: usize,
    pub lease_seconds: Option<i64>,
    pub wait_seconds: Option<u64>,
}

pub fn claim_request(body: &Value) -> Result<ClaimRequest, Error> {
    if body.is_null() {
        return Ok(ClaimRequest {
            max: 1,
            lease_seconds: None,
            wait_seconds: None,
        });
    }
    let f = Fields::body(body)?;
    f.deny_unknown(&["max", "lease_seconds", "wait_seconds"])?;
    Ok(ClaimRequest {
        max: f.int_opt("max", 1, 100)?.unwrap_or(1) as usize,
        lease_seconds: f.int_opt("lease_seconds", 1, 43_200)?,
        wait_seconds: f.int_opt("wait_seconds", 0, 60)?.map(|s| s as u64),
    })
}

/// One claimed intent.
#[derive(Debug, Clone)]
pub struct Claim {
    pub lease: LeaseRow,
    pub intent: IntentRow,
}

/// Claims up to `req.max` intents of `agent`, oldest first; each becomes DELIVERED under a new
/// lease.
pub fn claim(conn: &Tx, agent: &str, req: ClaimRequest, actor: &str) -> Result<Vec<Claim>, Error> {
    let registered = agents::get(conn, agent)?;
    let lease_seconds = req
        .lease_seconds
        .or(registered.as_ref().and_then(|a| a.lease_seconds))
        .unwrap_or(DEFAULT_LEASE_SECONDS);
    let via = match &registered {
        Some(a) if a.delivery_mode == crate::model::DeliveryMode::Internal => "internal",
        _ => "inbox",
    };
    let now = clock::now_ms();
    let ids = leases::claimable(conn, agent, now, req.max)?;
    hand_over(conn, agent, ids, lease_seconds, via, actor)
}

/// Claims up to `req.max` intents of an internal handler's `agent`, oldest first, with no sender
/// past `per_sender` calls in flight (`in_flight` counts them, by `from_agent`): one sender's
/// backlog of slow work never takes every call of the handler.
pub fn claim_shared(
    conn: &Tx,
    agent: &str,
    req: ClaimRequest,
    in_flight: &std::collections::HashMap<String, usize>,
    per_sender: usize,
) -> Result<Vec<Claim>, Error> {
    let lease_seconds = req.lease_seconds.unwrap_or(DEFAULT_LEASE_SECONDS);
    let full: Vec<&String> = in_flight
        .iter()
        .filter(|(_, n)| **n >= per_sender)
        .map(|(s, _)| s)
        .collect();
    let except = serde_json::to_string(&full)?;
    let mut taken: std::collections::HashMap<String, usize> = Default::default();
    let mut ids = Vec::new();
    for (id, sender) in leases::claimable_except(conn, agent, clock::now_ms(), req.max, &except)? {
        let n = taken.entry(sender.clone()).or_default();
        if *n + in_flight.get(&sender).copied().unwrap_or(0) < per_sender {
            *n += 1;
            ids.push(id);
        }
    }
    hand_over(conn, agent, ids, lease_seconds, "internal", agent)
}

/// Puts each of `ids` under a new lease of `agent` (DELIVERED, one more attempt).
fn hand_over(
    conn: &Tx,
    agent: &str,
    ids: Vec<String>,
    lease_seconds: i64,
    via: &str,
    actor: &str,
) -> Result<Vec<Claim>, Error> {
    let now = clock::now_ms();
    let mut out = Vec::new();
    for id in ids {
        let Some(mut intent) = intent_rows::get(conn, &id)? else {
            continue;
        };
        intent.delivery_attempt += 1;
        // The claim's millisecond first, then 122 random bits: the leases' primary key grows at
        // its right edge. A fully random token lands on a random page of that index, so once
        // many leases are stored every claim writes (and first reads) a page of its own.
        let token = format!("lease_{now:012x}{}", uuid::Uuid::new_v4().simple());
        let mut change = Change::to(Status::Delivered, actor);
        change.details = json!({"via": via, "attempt": intent.delivery_attempt});
        transition(conn, &mut intent, change)?;
        leases::set_available_at(conn, &id, None)?;
        let lease = LeaseRow {
            lease_token: token,
            intent_id: id,
            agent_address: agent.to_string(),
            attempt: intent.delivery_attempt,
            expires_at_ms: now + lease_seconds * 1000,
            state: ACTIVE.into(),
            created_at: clock::now_rfc3339(),
        };
        leases::insert(conn, &lease)?;
        out.push(Claim { lease, intent });
    }
    Ok(out)
}

/// The lease of `token` if it still holds its intent; 409 `lease_lost` otherwise.
fn live_lease(conn: &Tx, token: &str) -> Result<(LeaseRow, IntentRow), Error> {
    let lost = || {
        Error::conflict(
            "lease_lost",
            "this lease expired or was superseded: the intent may be with another worker now",
        )
    };
    let lease = leases::get(conn, token)?.ok_or_else(|| Error::NotFound {
        what: "claim",
        id: token.to_string(),
    })?;
    if lease.state != ACTIVE || lease.expires_at_ms <= clock::now_ms() {
        return Err(lost());
    }
    let intent = intents::get(conn, &lease.intent_id)?;
    if intent.status != Status::Delivered || intent.delivery_attempt != lease.attempt {
        return Err(lost());
    }
    Ok((lease, intent))
}

/// A checked ack body.
#[derive(Debug, Clone)]
pub struct AckRequest {
    pub status: Status,
    pub result: Option<Value>,
    pub error: Option<Value>,
    /// With `status: WAITING` (in-process handlers only).
    pub waiting_reason: Option<crate::model::WaitingReason>,
}

pub fn ack_request(body: &Value) -> Result<AckRequest, Error> {
    if body.is_null() {
        return Ok(AckRequest {
            status: Status::Acknowledged,
            result: None,
            error: None,
            waiting_reason: None,
        });
    }
    let f = Fields::body(body)?;
    f.deny_unknown(&["status", "result", "error"])?;
    let status = match f.str_opt("status", 1, 32)? {
        None | Some("ACKNOWLEDGED") => Status::Acknowledged,
        Some("IN_PROGRESS") => Status::InProgress,
        Some("COMPLETED") => Status::Completed,
        Some("FAILED") => Status::Failed,
        Some(_) => {
            return Err(Error::invalid(
                "status",
                "must be one of ACKNOWLEDGED, IN_PROGRESS, COMPLETED, FAILED",
            ))
        }
    };
    Ok(AckRequest {
        status,
        result: f.obj_opt("result")?.cloned().map(Value::Object),
        error: f.obj_opt("error")?.cloned().map(Value::Object),
        waiting_reason: None,
    })
}

/// Acknowledges a claim with the resulting status; the intent leaves the queue.
pub fn ack(conn: &Tx, token: &str, req: AckRequest, actor: &str) -> Result<Changed, Error> {
    let (lease, mut intent) = live_lease(conn, token)?;
    let mut change = Change::to(req.status, actor);
    change.waiting_reason = req.waiting_reason;
    let mut details = json!({"lease_token": lease.lease_token});
    match req.status {
        Status::Completed => {
            let result = req.result.unwrap_or_else(|| json!({}));
            details["result"] = result.clone();
            change.result = Some(result);
        }
        Status::Failed => {
            let error = req.error.unwrap_or_else(|| json!({"code": "failed"}));
            details["error"] = error.clone();
            change.error = Some(error);
        }
        _ => {}
    }
    change.details = details;
    let (event, completion) = transition(conn, &mut intent, change)?;
    leases::set_state(conn, token, "acked", lease.expires_at_ms)?;
    Ok(Changed {
        intent,
        events: vec![event],
        completion,
    })
}

/// A checked nack body.
#[derive(Debug, Clone)]
pub struct NackRequest {
    pub delay_seconds: Option<i64>,
    pub error: Option<Value>,
}

pub fn nack_request(body: &Value) -> Result<NackRequest, Error> {
    if body.is_null() {
        return Ok(NackRequest {
            delay_seconds: None,
            error: None,
        });
    }
    let f = Fields::body(body)?;
    f.deny_unknown(&["delay_seconds", "error"])?;
    Ok(NackRequest {
        delay_seconds: f.int_opt("delay_seconds", 0, 43_200)?,
        error: match body.get("error") {
            None | Some(Value::Null) => None,
            Some(Value::String(_)) => f.str_opt("error", 0, 2000)?.map(|s| json!(s)),
            Some(_) => f.obj_opt("error")?.cloned().map(Value::Object),
        },
    })
}

/// Gives a claim back: the intent returns to the queue after the delay (exponential with
/// jitter by default), or FAILS if it has used up its attempts.
pub fn nack(conn: &Tx, token: &str, req: NackRequest, actor: &str) -> Result<Changed, Error> {
    let (lease, mut intent) = live_lease(conn, token)?;
    let delay = match req.delay_seconds {
        Some(s) => Duration::from_secs(s as u64),
        None => backoff(intent.delivery_attempt),
    };
    let mut details = json!({"reason": "nacked", "lease_token": token, "attempt": lease.attempt});
    if let Some(e) = req.error {
        details["error"] = e;
    }
    let events = requeue(conn, &mut intent, details, delay, actor)?;
    leases::set_state(conn, token, "nacked", lease.expires_at_ms)?;
    Ok(Changed {
        intent,
        events,
        completion: None,
    })
}

/// Lengthens a live claim.
pub fn extend(conn: &Tx, token: &str, lease_seconds: i64) -> Result<(LeaseRow, IntentRow), Error> {
    let (mut lease, intent) = live_lease(conn, token)?;
    lease.expires_at_ms = clock::now_ms() + lease_seconds * 1000;
    leases::set_state(conn, token, ACTIVE, lease.expires_at_ms)?;
    Ok((lease, intent))
}

pub fn extend_request(body: &Value) -> Result<i64, Error> {
    let f = Fields::body(body)?;
    f.deny_unknown(&["lease_seconds"])?;
    f.int_opt("lease_seconds", 1, 43_200)?
        .ok_or_else(|| Error::invalid("lease_seconds", "is required"))
}

/// Puts expired leases' intents back in the queue (run by the lease timer). Returns how many
/// leases it handled.
pub fn expire_due(conn: &Tx, limit: usize) -> Result<usize, Error> {
    let due = leases::expired(conn, clock::now_ms(), limit)?;
    for lease in &due {
        leases::set_state(conn, &lease.lease_token, "expired", lease.expires_at_ms)?;
        let Some(mut intent) = intent_rows::get(conn, &lease.intent_id)? else {
            continue;
        };
        // Only the lease that still holds the intent puts it back.
        if intent.status != Status::Delivered || intent.delivery_attempt != lease.attempt {
            continue;
        }
        let details = json!({
            "reason": "lease_expired",
            "lease_token": lease.lease_token,
            "attempt": lease.attempt,
        });
        requeue(conn, &mut intent, details, Duration::ZERO, "axme/inbox")?;
    }
    Ok(due.len())
}

/// When the next intent of `agent` held back by a nack delay becomes claimable (Unix ms).
pub fn next_available_ms(conn: &Tx, agent: &str) -> Result<Option<i64>, Error> {
    leases::next_available_ms(conn, agent, clock::now_ms())
}

/// When the next lease expires (Unix ms).
pub fn next_expiry_ms(conn: &Tx) -> Result<Option<i64>, Error> {
    leases::next_expiry_ms(conn)
}

/// Records a failed hand-over and sends the intent back to the queue, or FAILS it when its
/// attempts are used up.
fn requeue(
    conn: &Tx,
    intent: &mut IntentRow,
    details: Value,
    delay: Duration,
    actor: &str,
) -> Result<Vec<crate::store::events::EventRow>, Error> {
    let max = intent
        .max_delivery_attempts
        .or(agents::get(conn, &intent.to_agent)?.and_then(|a| a.max_delivery_attempts))
        .unwrap_or(DEFAULT_MAX_ATTEMPTS);
    let note = effects::note(conn, intent, event_type::DELIVERY_FAILED, actor, details)?;
    let mut events = vec![note];
    if intent.delivery_attempt >= max {
        let error = json!({
            "code": "delivery_failed",
            "message": format!("{} delivery attempts of {} failed", intent.delivery_attempt, intent.to_agent),
        });
        let mut change = Change::to(Status::Failed, actor);
        change.details = json!({"error": error});
        change.error = Some(error);
        events.push(transition(conn, intent, change)?.0);
    } else {
        let mut change = Change::to(Status::Submitted, actor);
        change.details = json!({"redelivery": true, "attempt": intent.delivery_attempt + 1});
        events.push(transition(conn, intent, change)?.0);
        let at = (!delay.is_zero()).then(|| clock::now_ms() + delay.as_millis() as i64);
        leases::set_available_at(conn, &intent.intent_id, at)?;
    }
    Ok(events)
}

/// The default nack delay: 1 s doubled per attempt, at most 15 minutes, ±20% jitter.
fn backoff(attempt: i64) -> Duration {
    let base =
        Duration::from_secs(1u64 << attempt.clamp(0, 20).saturating_sub(1)).min(MAX_NACK_DELAY);
    let jitter = 0.8 + 0.4 * (uuid::Uuid::new_v4().as_u128() % 1000) as f64 / 1000.0;
    base.mul_f64(jitter)
}

// --- The operations of the HTTP API, each in its own read or transaction ------------------

/// One claim attempt for `agent` (whose work the caller was allowed to claim): what it took.
pub async fn take(
    store: &Store,
    agent: &str,
    req: ClaimRequest,
    actor: &str,
) -> Result<Vec<Claim>, Error> {
    let (agent, actor) = (agent.to_string(), actor.to_string());
    store.write(move |c| claim(c, &agent, req, &actor)).await
}

/// When the next intent of `agent` held back by a nack delay becomes claimable (ms).
pub async fn next_available(store: &Store, agent: &str) -> Result<Option<i64>, Error> {
    let agent = agent.to_string();
    store.read(move |c| next_available_ms(c, &agent)).await
}

/// Runs `op` on the lease `token` in a write of its own, once the caller is known to be one
/// that may handle the lease's intent (404 otherwise).
async fn leased<T: Send + 'static>(
    store: &Store,
    access: &Access,
    token: &str,
    op: impl FnOnce(&Tx, &str) -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    let (access, token) = (access.clone(), token.to_string());
    store
        .write(move |c| {
            access.lease(c, &token)?;
            op(c, &token)
        })
        .await
}

/// [`ack`] by a caller that may handle the lease's intent (404 otherwise).
pub async fn ack_now(
    store: &Store,
    access: &Access,
    token: &str,
    req: AckRequest,
    actor: &str,
) -> Result<Changed, Error> {
    let actor = actor.to_string();
    leased(store, access, token, move |c, t| ack(c, t, req, &actor)).await
}

/// [`nack`] by a caller that may handle the lease's intent (404 otherwise).
pub async fn nack_now(
    store: &Store,
    access: &Access,
    token: &str,
    req: NackRequest,
    actor: &str,
) -> Result<Changed, Error> {
    let actor = actor.to_string();
    leased(store, access, token, move |c, t| nack(c, t, req, &actor)).await
}

/// [`extend`] by a caller that may handle the lease's intent (404 otherwise).
pub async fn extend_now(
    store: &Store,
    access: &Access,
    token: &str,
    lease_seconds: i64,
) -> Result<(LeaseRow, IntentRow), Error> {
    leased(store, access, token, move |c, t| {
        extend(c, t, lease_seconds)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nack_backoff_doubles_and_is_capped() {
        let ms = |a| backoff(a).as_millis();
        assert!((800..=1200).contains(&ms(1)), "{}", ms(1));
        assert!((3200..=4800).contains(&ms(3)), "{}", ms(3));
        assert!(ms(40) <= 18 * 60 * 1000);
    }
}
