//! Observer pushes: AXME's webhook subscriptions (`/v1/webhooks/subscriptions`), extended with
//! the intent lifecycle event types and per-intent, per-correlation and per-agent filters, and
//! AXME's published events (`/v1/webhooks/events`). Deliveries themselves follow the rules of
//! `deliveries`.

use crate::store::{Store, Tx};
use base64::Engine;
use serde_json::Value;

use super::deliveries::{self, RetryPolicy};
use super::outbox;
use super::validate::{self, Fields};
use crate::model::DeliveryStatus;
use crate::store::deliveries::{self as delivery_rows, DeliveryRow};
use crate::store::subscriptions::{self as store, SubscriptionRow, WebhookEventRow};
use crate::{clock, Error};

/// The event types of AXME's own (non-intent) webhooks.
pub const AXME_EVENT_TYPES: &[&str] = &[
    "inbox.thread_created",
    "inbox.thread_updated",
    "inbox.reply_received",
    "invite.accepted",
    "auth.session_revoked",
];

/// Intent lifecycle event types a subscription may ask for (`intent.*` means all of them).
pub const INTENT_EVENT_TYPES: &[&str] = &[
    "intent.*",
    "intent.created",
    "intent.submitted",
    "intent.delivered",
    "intent.acknowledged",
    "intent.in_progress",
    "intent.waiting",
    "intent.completed",
    "intent.failed",
    "intent.canceled",
    "intent.timed_out",
    "intent.transfer",
    "intent.reminder",
    "intent.escalated",
    "intent.delivery_failed",
];

/// A checked `POST /v1/webhooks/subscriptions` body.
#[derive(Debug, Clone)]
pub struct Upsert {
    pub callback_url: String,
    pub event_types: Vec<String>,
    pub secret: Option<String>,
    pub active: bool,
    pub description: Option<String>,
    pub intent_id: Option<String>,
    pub correlation_id: Option<String>,
    pub to_agent: Option<String>,
}

pub fn upsert_request(body: &Value) -> Result<Upsert, Error> {
    let f = Fields::body(body)?;
    f.deny_unknown(&[
        "callback_url",
        "event_types",
        "secret",
        "active",
        "description",
        "intent_id",
        "correlation_id",
        "to_agent",
    ])?;
    let callback_url = f.str_req("callback_url", 8, 2048)?.to_string();
    super::agents::check_url("callback_url", &callback_url)?;
    let types = f
        .str_array_opt("event_types", (1, 32), (1, 64))?
        .ok_or_else(|| Error::invalid("event_types", "is required"))?;
    for (i, t) in types.iter().enumerate() {
        if !AXME_EVENT_TYPES.contains(t) && !INTENT_EVENT_TYPES.contains(t) {
            return Err(Error::invalid(
                format!("event_types[{i}]"),
                format!(
                    "unknown event type {t:?}: use intent.* or an intent lifecycle type, or one of {}",
                    AXME_EVENT_TYPES.join(", ")
                ),
            ));
        }
    }
    let secret = f.str_opt("secret", 16, 128)?.map(signing_secret);
    Ok(Upsert {
        callback_url,
        event_types: types.into_iter().map(str::to_string).collect(),
        secret,
        active: f.bool_opt("active")?.unwrap_or(true),
        description: f.str_opt("description", 0, 255)?.map(str::to_string),
        intent_id: f
            .str_opt("intent_id", 1, 64)?
            .map(|v| validate::uuid("intent_id", v))
            .transpose()?,
        correlation_id: f
            .str_opt("correlation_id", 1, 64)?
            .map(|v| validate::uuid("correlation_id", v))
            .transpose()?,
        to_agent: f.address_opt("to_agent")?,
    })
}

/// The last four characters of a secret as its owner knows it: of the plain string for a
/// secret given as one, else of the `whsec_` form.
pub fn secret_hint(secret: &str) -> String {
    let plain = secret
        .strip_prefix("whsec_")
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .filter(|s| s.len() >= 16 && s.chars().all(|c| c.is_ascii_graphic()));
    let shown = plain.as_deref().unwrap_or(secret);
    shown[shown.len().saturating_sub(4)..].to_string()
}

/// A given secret as a Standard Webhooks signing secret: a `whsec_` secret is kept; any other
/// string is used as the raw key, i.e. `whsec_` + base64 of its bytes.
fn signing_secret(s: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    match s.strip_prefix("whsec_").map(|b| b64.decode(b)) {
        Some(Ok(_)) => s.to_string(),
        _ => format!("whsec_{}", b64.encode(s.as_bytes())),
    }
}

/// Creates, or updates by (owner, callback URL), a subscription. Returns it and, when the
/// server generated the secret, that secret (shown this once).
pub fn upsert(
    conn: &Tx,
    owner: &str,
    req: Upsert,
    max_per_owner: usize,
) -> Result<(SubscriptionRow, Option<String>), Error> {
    let existing = store::find(conn, owner, &req.callback_url)?;
    // Each subscription multiplies the events it matches into delivery rows, written in the
    // event's own transaction: an owner's count is capped (0: no cap).
    if existing.is_none() && max_per_owner > 0 {
        let held = store::list(conn, Some(owner))?
            .iter()
            .filter(|s| s.active)
            .count();
        if held >= max_per_owner {
            return Err(Error::TooMany {
                reason: format!(
                    "{owner} already has {held} subscriptions, its limit \
                     (--max-subscriptions-per-owner); delete one first"
                ),
            });
        }
    }
    let now = clock::now_rfc3339();
    let mut generated = None;
    let secret = match (req.secret, &existing) {
        (Some(s), _) => s,
        (None, Some(e)) => e.secret.clone(),
        (None, None) => {
            let s = super::auth::generate_webhook_secret()?;
            generated = Some(s.clone());
            s
        }
    };
    let (previous_secret, previous_secret_until) = super::agents::rotated(
        existing.as_ref().map(|e| {
            (
                e.secret.clone(),
                e.previous_secret.clone(),
                e.previous_secret_until.clone(),
            )
        }),
        Some(&secret),
    );
    let row = SubscriptionRow {
        subscription_id: existing.as_ref().map_or_else(
            || uuid::Uuid::now_v7().to_string(),
            |e| e.subscription_id.clone(),
        ),
        owner_agent: owner.to_string(),
        callback_url: req.callback_url,
        event_types: serde_json::to_string(&req.event_types)?,
        secret,
        active: req.active,
        description: req.description,
        intent_id: req.intent_id,
        correlation_id: req.correlation_id,
        to_agent: req.to_agent,
        created_at: existing.map_or_else(|| now.clone(), |e| e.created_at),
        updated_at: now,
        revoked_at: None,
        previous_secret,
        previous_secret_until,
    };
    store::upsert(conn, &row)?;
    Ok((row, generated))
}

/// The subscriptions of `owner` (every owner's without one).
pub async fn list(store: &Store, owner: Option<&str>) -> Result<Vec<SubscriptionRow>, Error> {
    let owner = owner.map(str::to_string);
    store.read(move |c| store::list(c, owner.as_deref())).await
}

/// Revokes a subscription of `owner` (404 for another owner's).
pub async fn delete(
    store: &Store,
    owner: Option<&str>,
    id: &str,
) -> Result<SubscriptionRow, Error> {
    let (owner, id) = (owner.map(str::to_string), id.to_string());
    store
        .write(move |c| delete_in(c, owner.as_deref(), &id))
        .await
}

fn delete_in(conn: &Tx, owner: Option<&str>, id: &str) -> Result<SubscriptionRow, Error> {
    let mut row = store::get(conn, id)?
        .filter(|s| s.revoked_at.is_none() && owner.is_none_or(|o| o == s.owner_agent))
        .ok_or_else(|| Error::NotFound {
            what: "subscription",
            id: id.to_string(),
        })?;
    let now = clock::now_rfc3339();
    row.revoked_at = Some(now.clone());
    row.active = false;
    row.updated_at = now;
    store::upsert(conn, &row)?;
    Ok(row)
}

/// A checked `POST /v1/webhooks/events` body.
#[derive(Debug, Clone)]
pub struct Publish {
    pub event_type: String,
    pub source: String,
    pub payload: String,
}

pub fn publish_request(body: &Value) -> Result<Publish, Error> {
    let f = Fields::body(body)?;
    f.deny_unknown(&["event_type", "source", "payload"])?;
    let event_type = f.str_req("event_type", 3, 100)?;
    if !AXME_EVENT_TYPES.contains(&event_type) {
        return Err(Error::invalid(
            "event_type",
            format!("must be one of {}", AXME_EVENT_TYPES.join(", ")),
        ));
    }
    Ok(Publish {
        event_type: event_type.to_string(),
        source: f.str_req("source", 2, 100)?.to_string(),
        payload: serde_json::to_string(f.obj_req("payload")?)?,
    })
}

/// Counts of a published event's deliveries, for AXME's response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    pub queued: i64,
    pub processed: i64,
    pub delivered: i64,
    pub pending: i64,
    pub dead_lettered: i64,
}

fn counters(rows: &[DeliveryRow]) -> Counters {
    let count = |s: DeliveryStatus| rows.iter().filter(|d| d.status == s).count() as i64;
    let pending = count(DeliveryStatus::Pending);
    Counters {
        queued: rows.len() as i64,
        processed: rows.len() as i64 - pending,
        delivered: count(DeliveryStatus::Delivered),
        pending,
        dead_lettered: count(DeliveryStatus::DeadLettered),
    }
}

/// Publishes an event to the owner's active subscriptions that want its type.
pub fn publish(conn: &Tx, owner: &str, req: Publish) -> Result<(WebhookEventRow, Counters), Error> {
    let event = WebhookEventRow {
        event_id: uuid::Uuid::now_v7().to_string(),
        owner_agent: owner.to_string(),
        event_type: req.event_type,
        source: req.source,
        payload: req.payload,
        created_at: clock::now_rfc3339(),
    };
    store::insert_event(conn, &event)?;
    let subs = outbox::wanting(conn, owner, &event.event_type)?;
    let rows = outbox::fan_out(conn, &event, &subs)?;
    let c = counters(&rows);
    Ok((event, c))
}

/// Sends a published event again to the subscriptions it went to.
pub async fn replay_event(
    store: &Store,
    owner: Option<&str>,
    event_id: &str,
    policy: &RetryPolicy,
) -> Result<(WebhookEventRow, Counters), Error> {
    let (owner, id, policy) = (
        owner.map(str::to_string),
        event_id.to_string(),
        policy.clone(),
    );
    store
        .write(move |c| replay_event_in(c, owner.as_deref(), &id, &policy))
        .await
}

fn replay_event_in(
    conn: &Tx,
    owner: Option<&str>,
    event_id: &str,
    policy: &RetryPolicy,
) -> Result<(WebhookEventRow, Counters), Error> {
    let event = store::get_event(conn, event_id)?
        .filter(|e| owner.is_none_or(|o| o == e.owner_agent))
        .ok_or_else(|| Error::NotFound {
            what: "event",
            id: event_id.to_string(),
        })?;
    for d in delivery_rows::for_webhook_event(conn, event_id)? {
        if d.status != DeliveryStatus::Pending {
            deliveries::replay(conn, &d.delivery_id, policy)?;
        }
    }
    let rows = delivery_rows::for_webhook_event(conn, event_id)?;
    Ok((event, counters(&rows)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::service::deliveries::Verdict;
    use crate::service::testing::{self, BOB, HANDLER};

    #[test]
    fn an_upsert_by_the_same_url_keeps_the_id_and_the_generated_secret() {
        let conn = testing::db();
        let tx = Tx::sqlite(&conn);
        let req = |active: bool| {
            let body = json!({"callback_url": "http://obs.test/a", "event_types": ["intent.*"], "active": active});
            upsert_request(&body).expect("body")
        };
        let (first, secret) = upsert(&tx, HANDLER, req(true), 100).expect("created");
        let (again, none) = upsert(&tx, HANDLER, req(false), 100).expect("updated");
        assert_eq!(
            (&again.subscription_id, &again.secret),
            (&first.subscription_id, &first.secret)
        );
        assert_eq!((secret.as_ref(), none), (Some(&first.secret), None));
        assert!(!again.active);
        let (other, _) = upsert(&tx, BOB, req(true), 100).expect("another owner's");
        assert_ne!(other.subscription_id, first.subscription_id);
    }

    #[test]
    fn another_owners_subscription_cannot_be_deleted_and_nothing_is_written() {
        let conn = testing::db();
        let tx = Tx::sqlite(&conn);
        let sub = testing::subscribe(&tx, HANDLER, "http://obs.test/a", json!({}));
        let before = conn.total_changes();
        let e = delete_in(&tx, Some(BOB), &sub.subscription_id).expect_err("not bob's");
        assert_eq!((e.code(), conn.total_changes()), ("not_found", before));
        assert!(delete_in(&tx, Some(HANDLER), &sub.subscription_id)
            .expect("revoked")
            .revoked_at
            .is_some());
        assert!(
            delete_in(&tx, None, &sub.subscription_id).is_err(),
            "revoked once"
        );
    }

    #[test]
    fn a_published_event_is_counted_and_replayed_to_the_subscriptions_it_went_to() {
        let conn = testing::db();
        let tx = Tx::sqlite(&conn);
        let types = json!({"event_types": ["invite.accepted"]});
        testing::subscribe(&tx, HANDLER, "http://obs.test/a", types.clone());
        testing::subscribe(&tx, HANDLER, "http://obs.test/b", types);
        let body = json!({"event_type": "invite.accepted", "source": "app", "payload": {}});
        let (event, c) =
            publish(&tx, HANDLER, publish_request(&body).expect("body")).expect("sent");
        assert_eq!((c.queued, c.pending, c.processed), (2, 2, 0));
        let first = testing::deliveries(&tx, None).remove(0).delivery_id;
        let outcome = testing::outcome(1, Verdict::Delivered, None);
        deliveries::record(&tx, &first, outcome, &testing::policy()).expect("delivered");
        let (_, c) = replay_event_in(&tx, Some(HANDLER), &event.event_id, &testing::policy())
            .expect("again");
        assert_eq!(
            (c.queued, c.pending, c.delivered),
            (2, 2, 0),
            "the delivered one is pending again"
        );
        let e = replay_event_in(&tx, Some(BOB), &event.event_id, &testing::policy())
            .expect_err("bob's?");
        assert_eq!(e.code(), "not_found");
    }
}
