//! The domain: lifecycle rules, intent operations, request checking, keys and idempotency.
//! It stands between `http` (which only parses and renders) and `store` (which only stores):
//! it never imports hyper, and never writes SQL itself.

pub(crate) mod access;
pub mod agents;
pub(crate) mod auth;
pub mod claims;
pub(crate) mod cleanup;
pub(crate) mod controls;
pub(crate) mod deliveries;
pub(crate) mod delivery_log;
pub mod effects;
pub(crate) mod email;
pub(crate) mod email_links;
pub(crate) mod feed;
pub mod history;
pub(crate) mod idempotency;
pub mod inbox;
pub(crate) mod inbox_view;
pub mod intents;
pub(crate) mod invites;
pub mod keys;
pub(crate) mod lifecycle;
pub(crate) mod media;
pub(crate) mod operator;
pub(crate) mod outbox;
pub(crate) mod payloads;
pub(crate) mod push_targets;
pub mod requests;
pub mod resume;
pub mod retention;
pub(crate) mod retry;
pub mod scenario_fields;
pub(crate) mod scenario_report;
pub(crate) mod scenarios;
pub(crate) mod schedule;
pub(crate) mod schemas;
pub(crate) mod service_accounts;
pub mod subscriptions;
pub(crate) mod thread_hooks;
pub(crate) mod timers;
pub(crate) mod users;
pub mod validate;
pub mod workflow;
pub mod workflow_steps;
pub mod workflow_view;

/// What the service tests share: a migrated in-memory database, and the few steps most tests
/// begin with (an intent created, an agent registered, a subscription made), each through the
/// same request readers and operations the HTTP layer calls.
#[cfg(test)]
pub(crate) mod testing {
    use serde_json::{json, Value};

    use super::deliveries::{Outcome, RetryPolicy, Verdict};
    use super::{agents, intents, requests, subscriptions};
    use crate::fuzzing::Connection;
    use crate::store::deliveries::{self as rows, DeliveryRow, ListFilter};
    use crate::store::events;
    use crate::store::intents::IntentRow;
    use crate::store::subscriptions::SubscriptionRow;
    use crate::store::Tx;

    pub const SENDER: &str = "agent://test/sender";
    pub const HANDLER: &str = "agent://test/handler";
    pub const BOB: &str = "agent://test/bob";
    pub const CORRELATION: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";

    /// What an admin key may reach.
    pub fn admin() -> super::access::Access {
        super::access::Access::of(&super::auth::Principal {
            key_id: "k".into(),
            name: "admin".into(),
            role: Some(crate::model::KeyRole::Admin),
            agents: Vec::new(),
        })
    }

    /// The field a validation error names (panics on any other error).
    pub fn field_of(e: crate::Error) -> String {
        match e {
            crate::Error::Invalid { field, .. } => field,
            other => panic!("not a field error: {other:?}"),
        }
    }

    /// A fresh database with the whole schema (wrap it with `Tx::sqlite`).
    pub fn db() -> Connection {
        crate::fuzzing::memory_db().expect("an in-memory database")
    }

    /// Creates an intent from `SENDER` to `HANDLER`; `fields` add to or replace the body's.
    pub fn intent(tx: &Tx, fields: Value) -> IntentRow {
        let mut body = json!({
            "intent_type": "demo.task.v1",
            "correlation_id": CORRELATION,
            "to_agent": HANDLER,
            "payload": {},
        });
        for (k, v) in fields.as_object().into_iter().flatten() {
            body[k] = v.clone();
        }
        let req = requests::create_intent(&body, 64 * 1024).expect("a valid create");
        intents::create(tx, req, SENDER).expect("created").intent
    }

    /// A human task for `HANDLER` with `rules` (allowed_outcomes, required_comment, ...); its id.
    pub fn task(tx: &Tx, rules: Value) -> String {
        let mut spec = json!({"title": "approve the invoice"});
        for (k, v) in rules.as_object().into_iter().flatten() {
            spec[k] = v.clone();
        }
        intent(tx, json!({"human_task": spec})).intent_id
    }

    /// The intent as stored now.
    pub fn reload(tx: &Tx, intent_id: &str) -> IntentRow {
        intents::get(tx, intent_id).expect("the intent")
    }

    /// Registers `address` with a delivery mode (`http` ones push to `http://hooks.test/<n>`).
    pub fn agent(tx: &Tx, address: &str, mode: &str) {
        let mut body = json!({"address": address, "delivery_mode": mode});
        if mode == "http" {
            body["webhook_url"] = json!(format!("http://hooks.test/{}", address.len()));
        }
        let req = agents::register_request(&body).expect("a valid registration");
        agents::register(tx, req).expect("registered");
    }

    /// A subscription of `owner` to `callback_url`; `fields` add filters (`event_types`, ...).
    pub fn subscribe(tx: &Tx, owner: &str, callback_url: &str, fields: Value) -> SubscriptionRow {
        let mut body = json!({"callback_url": callback_url, "event_types": ["intent.*"]});
        for (k, v) in fields.as_object().into_iter().flatten() {
            body[k] = v.clone();
        }
        let req = subscriptions::upsert_request(&body).expect("a valid subscription");
        subscriptions::upsert(tx, owner, req, 100)
            .expect("subscribed")
            .0
    }

    /// An http handler's intent (at most `attempts` pushes) and the id of its one pending push.
    pub fn pushed(tx: &Tx, attempts: i64) -> (IntentRow, String) {
        agent(tx, HANDLER, "http");
        let i = intent(tx, json!({"max_delivery_attempts": attempts}));
        let d = deliveries(tx, Some(&i.intent_id)).remove(0);
        (i, d.delivery_id)
    }

    /// What attempt `n` came to: `verdict`, with a 200 when delivered (and the handler's
    /// `reply`), else a 503.
    pub fn outcome(n: i64, verdict: Verdict, reply: Option<Value>) -> Outcome {
        let status_code = Some(if verdict == Verdict::Delivered {
            200
        } else {
            503
        });
        Outcome {
            attempt: n,
            status_code,
            latency_ms: 1,
            error: None,
            response_excerpt: None,
            verdict,
            reply,
        }
    }

    /// Two retries after the first attempt (1 s, 2 s), a 5 s throttle floor.
    pub fn policy() -> RetryPolicy {
        RetryPolicy {
            schedule: vec![
                std::time::Duration::from_secs(1),
                std::time::Duration::from_secs(2),
            ],
            throttle_floor: std::time::Duration::from_secs(5),
            retry_after_cap: std::time::Duration::from_secs(60),
        }
    }

    /// The event types of an intent's history, oldest first.
    pub fn history(tx: &Tx, intent_id: &str) -> Vec<String> {
        events::list_for_intent(tx, intent_id, 0, 1000)
            .expect("events")
            .into_iter()
            .map(|e| e.event_type)
            .collect()
    }

    /// Every delivery (of one intent, when given), oldest first.
    pub fn deliveries(tx: &Tx, intent_id: Option<&str>) -> Vec<DeliveryRow> {
        let filter = ListFilter {
            intent_id: intent_id.map(str::to_string),
            limit: 1000,
            ..ListFilter::default()
        };
        let mut all: Vec<DeliveryRow> = rows::list(tx, &filter)
            .expect("deliveries")
            .into_iter()
            .map(|(_, d)| d)
            .collect();
        all.reverse();
        all
    }
}
