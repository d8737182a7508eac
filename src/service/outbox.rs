//! The push outbox: which appended events become deliveries, written in the event's own
//! transaction — the intent itself to its `http` agent (on `intent.submitted`), and the event to
//! every active subscription that wants it — and the fan-out of webhook events (published, or
//! raised by the inbox) to their owner's subscriptions. A reaction of `effects`; it changes no
//! intent. One event produces at most `--max-fanout-per-event` deliveries: an intent's create
//! and a published event past it are refused (429), a later event is cut at it.

use crate::model::{DeliveryKind, DeliveryStatus};
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::clock;
use crate::model::Status;
use crate::store::deliveries::{self, DeliveryRow};
use crate::store::events::EventRow;
use crate::store::intents::IntentRow;
use crate::store::subscriptions::{SubscriptionRow, WebhookEventRow};
use crate::store::{agents, subscriptions, Tx};
use crate::Error;

/// The scheme, host and port of a URL: what a per-endpoint limit counts.
pub fn endpoint(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let host = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    format!("{scheme}://{host}")
}

/// Writes the deliveries an appended event causes: the intent itself to its `http` agent (on
/// `intent.submitted`), and the event to every active subscription that wants it. Runs in the
/// event's transaction.
pub fn enqueue(conn: &Tx, intent: &IntentRow, event: &EventRow) -> Result<(), Error> {
    let now = clock::now_rfc3339();
    let new = |kind: DeliveryKind, url: &str, max_attempts: i64| DeliveryRow {
        delivery_id: format!("msg_{}", uuid::Uuid::now_v7().simple()),
        kind,
        intent_id: Some(intent.intent_id.clone()),
        event_seq: Some(event.seq),
        event_type: event.event_type.clone(),
        agent_address: None,
        subscription_id: None,
        target_url: url.to_string(),
        status: DeliveryStatus::Pending,
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
    let mut rows = Vec::new();
    if event.status == Status::Submitted && event.event_type == Status::Submitted.event_type() {
        if let Some(agent) = agents::get(conn, &intent.to_agent)? {
            if let (true, None, Some(url)) = (
                agent.delivery_mode == crate::model::DeliveryMode::Http,
                &agent.disabled_at,
                &agent.webhook_url,
            ) {
                let max = intent
                    .max_delivery_attempts
                    .or(agent.max_delivery_attempts)
                    .unwrap_or(0);
                let mut d = new(DeliveryKind::Handler, url, max);
                d.agent_address = Some(agent.address.clone());
                rows.push(d);
            }
        }
    }
    for sub in subscriptions::active(conn)? {
        if subscription_wants(&sub, intent, event) {
            let mut d = new(DeliveryKind::Subscription, &sub.callback_url, 0);
            d.subscription_id = Some(sub.subscription_id.clone());
            rows.push(d);
        }
    }
    let cap = max_fanout();
    if rows.len() > cap {
        // The intent's first events are its create: that request is refused, precisely. A later
        // event (subscriptions added since) must not fail the operation that caused it, so it
        // goes to the handler and the oldest subscriptions only.
        if event.seq <= 2 {
            return Err(fanout_refused(rows.len(), cap));
        }
        tracing::warn!(
            intent_id = %intent.intent_id,
            event_type = %event.event_type,
            wanted = rows.len(),
            cap,
            "an event's pushes were cut at --max-fanout-per-event"
        );
        rows.truncate(cap);
    }
    for d in &rows {
        deliveries::insert(conn, d)?;
    }
    Ok(())
}

/// The default of `--max-fanout-per-event`.
pub const DEFAULT_MAX_FANOUT: usize = 1000;

/// `--max-fanout-per-event`, set once at start (`set_max_fanout`) and read by every enqueue:
/// the most push deliveries one event may produce, all written in the event's transaction.
static MAX_FANOUT: AtomicUsize = AtomicUsize::new(DEFAULT_MAX_FANOUT);

/// Sets `--max-fanout-per-event` for the process (0 is taken as no cap).
pub fn set_max_fanout(cap: usize) {
    let cap = if cap == 0 { usize::MAX } else { cap };
    MAX_FANOUT.store(cap, Ordering::Relaxed);
}

fn max_fanout() -> usize {
    MAX_FANOUT.load(Ordering::Relaxed)
}

/// The answer to a write whose event would produce more pushes than the cap.
fn fanout_refused(wanted: usize, cap: usize) -> Error {
    Error::QuotaExceeded {
        limit: "fanout_per_event",
        value: cap as u64,
        flag: "--max-fanout-per-event",
        reason: format!(
            "this event would produce {wanted} push deliveries; one event may produce at most \
             {cap} (--max-fanout-per-event); delete subscriptions that match it"
        ),
    }
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

/// Offers an event the server raises itself (the inbox's) to the owner's subscriptions that
/// want its type; stored and delivered like a published event, and not stored at all when no
/// subscription wants it.
pub fn emit(
    conn: &Tx,
    owner: &str,
    event_type: &str,
    source: &str,
    payload: &Value,
) -> Result<(), Error> {
    let mut subs = wanting(conn, owner, event_type)?;
    if subs.is_empty() {
        return Ok(());
    }
    // Raised by the server as a reaction: cut at the cap (oldest subscriptions first) rather
    // than failing the operation that raised it.
    subs.truncate(max_fanout());
    let event = WebhookEventRow {
        event_id: uuid::Uuid::now_v7().to_string(),
        owner_agent: owner.to_string(),
        event_type: event_type.to_string(),
        source: source.to_string(),
        payload: serde_json::to_string(payload)?,
        created_at: clock::now_rfc3339(),
    };
    subscriptions::insert_event(conn, &event)?;
    fan_out(conn, &event, &subs)?;
    Ok(())
}

/// The owner's active subscriptions that want an event type.
pub fn wanting(conn: &Tx, owner: &str, event_type: &str) -> Result<Vec<SubscriptionRow>, Error> {
    Ok(subscriptions::active(conn)?
        .into_iter()
        .filter(|sub| {
            sub.owner_agent == owner
                && serde_json::from_str::<Vec<String>>(&sub.event_types)
                    .unwrap_or_default()
                    .iter()
                    .any(|t| t == event_type)
        })
        .collect())
}

/// One pending delivery of a stored event per subscription.
pub fn fan_out(
    conn: &Tx,
    event: &WebhookEventRow,
    subs: &[SubscriptionRow],
) -> Result<Vec<DeliveryRow>, Error> {
    if subs.len() > max_fanout() {
        return Err(fanout_refused(subs.len(), max_fanout()));
    }
    let mut rows = Vec::with_capacity(subs.len());
    for sub in subs {
        let d = DeliveryRow {
            delivery_id: format!("msg_{}", uuid::Uuid::now_v7().simple()),
            kind: DeliveryKind::Subscription,
            intent_id: None,
            event_seq: None,
            event_type: event.event_type.clone(),
            agent_address: None,
            subscription_id: Some(sub.subscription_id.clone()),
            target_url: sub.callback_url.clone(),
            status: DeliveryStatus::Pending,
            attempts: 0,
            max_attempts: 0,
            next_attempt_ms: Some(clock::now_ms()),
            last_error: None,
            replay_of: None,
            created_at: event.created_at.clone(),
            updated_at: event.created_at.clone(),
            webhook_event_id: Some(event.event_id.clone()),
            endpoint: endpoint(&sub.callback_url),
        };
        deliveries::insert(conn, &d)?;
        rows.push(d);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::service::testing::{self, HANDLER, SENDER};

    #[test]
    fn an_endpoint_is_the_scheme_host_and_port_of_a_url() {
        assert_eq!(endpoint("https://h.test:8443/a?b#c"), "https://h.test:8443");
        assert_eq!(endpoint("http://h.test?x"), "http://h.test");
    }

    #[test]
    fn a_raised_event_goes_to_the_owners_subscriptions_that_want_it_and_is_kept_only_then() {
        let conn = testing::db();
        let tx = Tx::sqlite(&conn);
        let types = json!({"event_types": ["inbox.thread_created"]});
        let mine = testing::subscribe(&tx, HANDLER, "http://obs.test/1", types.clone());
        testing::subscribe(&tx, SENDER, "http://obs.test/2", types);
        testing::subscribe(&tx, HANDLER, "http://obs.test/3", json!({}));
        let before = conn.total_changes();
        emit(
            &tx,
            HANDLER,
            "inbox.reply_received",
            "axme/inbox",
            &json!({}),
        )
        .expect("unwanted");
        assert_eq!(
            conn.total_changes(),
            before,
            "no subscription wants it: nothing stored"
        );
        emit(
            &tx,
            HANDLER,
            "inbox.thread_created",
            "axme/inbox",
            &json!({"k": 1}),
        )
        .expect("sent");
        let d = testing::deliveries(&tx, None);
        assert_eq!(d.len(), 1);
        assert_eq!(
            d[0].subscription_id.as_deref(),
            Some(mine.subscription_id.as_str())
        );
        assert_eq!(
            (d[0].endpoint.as_str(), d[0].status),
            ("http://obs.test", crate::model::DeliveryStatus::Pending)
        );
    }

    #[test]
    fn a_disabled_http_handler_gets_no_push() {
        let conn = testing::db();
        let tx = Tx::sqlite(&conn);
        testing::agent(&tx, HANDLER, "http");
        agents::disable(&tx, HANDLER, &clock::now_rfc3339()).expect("disabled");
        let i = testing::intent(&tx, json!({}));
        assert!(testing::deliveries(&tx, Some(&i.intent_id)).is_empty());
    }
}
