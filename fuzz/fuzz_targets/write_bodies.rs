//! Arbitrary bytes as the JSON body of every other write endpoint: resolve, resume, ack,
//! progress, claims (claim, ack, nack, extend), agents, keys, webhook subscriptions and
//! published events, and the inbox actions (reply, read, delegate, approve/reject, message
//! deletion, the approvals decision). No reader panics; a rejection names its field; and what a
//! reader accepts keeps the rules its endpoint documents (the status-dependent required fields,
//! the bounds of every knob, normalized addresses, known event types, signing secrets in the
//! `whsec_` form).
#![no_main]

use axme::fuzzing;
use axme::model::Status;
use axme::service::keys::KeyRole;
use axme::service::subscriptions::{self, AXME_EVENT_TYPES, INTENT_EVENT_TYPES};
use axme::service::validate::{ADDRESS_MAX, ADDRESS_MIN};
use axme::service::{agents, claims, keys, requests, resume};
use axme::Error;
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// An answer is a value, or an error of a reader's kinds that names its field.
fn answered<T>(r: Result<T, Error>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            match &e {
                Error::Invalid { field, .. } => assert!(!field.is_empty(), "no field named: {e}"),
                Error::Malformed { .. } => {}
                other => panic!("a body reader answered {other:?}"),
            }
            None
        }
    }
}

fn is_address(a: &str) -> bool {
    a.starts_with("agent://")
        && a.len() > "agent://".len()
        && (ADDRESS_MIN..=ADDRESS_MAX).contains(&a.len())
        && !a.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

fn intents(v: &Value) {
    if let Some(r) = answered(requests::resolve(v)) {
        match r.status {
            Status::Completed => assert!(r.result.is_some()),
            Status::Failed => assert!(r.error.is_some()),
            Status::Canceled => assert!(r.reason.is_some()),
            other => panic!("resolve to {other}"),
        }
        assert!(r
            .actor
            .as_deref()
            .is_none_or(|a| (3..=255).contains(&chars(a))));
    }
    if let Some(r) = answered(resume::request(v)) {
        if let Some(tr) = &r.task_result {
            assert!(tr
                .get("comment")
                .and_then(Value::as_str)
                .is_none_or(|c| chars(c) <= 4000));
        }
    }
    if let Some(actor) = answered(requests::ack(v)) {
        assert!(actor.is_none_or(|a| (3..=255).contains(&chars(&a))));
    }
    if let Some(p) = answered(requests::progress(v)) {
        assert!(matches!(p.status, Status::InProgress | Status::Waiting));
        assert_eq!(p.status == Status::Waiting, p.waiting_reason.is_some());
    }
}

fn claim_bodies(v: &Value) {
    if let Some(c) = answered(claims::claim_request(v)) {
        assert!((1..=100).contains(&c.max));
        assert!(c.lease_seconds.is_none_or(|s| (1..=43_200).contains(&s)));
        assert!(c.wait_seconds.is_none_or(|s| s <= 60));
    }
    if let Some(a) = answered(claims::ack_request(v)) {
        assert!(matches!(
            a.status,
            Status::Acknowledged | Status::InProgress | Status::Completed | Status::Failed
        ));
    }
    if let Some(n) = answered(claims::nack_request(v)) {
        assert!(n.delay_seconds.is_none_or(|s| (0..=43_200).contains(&s)));
        match &n.error {
            None | Some(Value::Object(_)) => {}
            Some(Value::String(s)) => assert!(chars(s) <= 2000),
            Some(other) => panic!("nack error {other}"),
        }
    }
    if let Some(s) = answered(claims::extend_request(v)) {
        assert!((1..=43_200).contains(&s));
    }
}

fn registry(v: &Value) {
    if let Some(a) = answered(agents::register_request(v)) {
        assert!(is_address(&a.address), "{:?}", a.address);
        if a.mode == agents::DeliveryMode::Http {
            assert!(a.webhook_url.is_some());
        }
        if let Some(url) = &a.webhook_url {
            assert!(agents::check_url("again", url).is_ok());
        }
        if let Some(secret) = &a.webhook_secret {
            let bytes = secret
                .strip_prefix("whsec_")
                .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                .expect("a whsec_ secret");
            assert!((24..=64).contains(&bytes.len()));
        }
    }
    if let Some(k) = answered(keys::create_request(v)) {
        assert!((1..=64).contains(&chars(&k.name)));
        assert!(
            k.agents.windows(2).all(|w| w[0] < w[1]),
            "sorted, no duplicates"
        );
        assert!(k.agents.iter().all(|a| is_address(a)));
        assert_eq!(k.role == KeyRole::Agent, !k.agents.is_empty());
    }
}

fn webhooks(v: &Value) {
    if let Some(s) = answered(subscriptions::upsert_request(v)) {
        assert!(agents::check_url("again", &s.callback_url).is_ok());
        assert!((1..=32).contains(&s.event_types.len()));
        for t in &s.event_types {
            let t = t.as_str();
            assert!(AXME_EVENT_TYPES.contains(&t) || INTENT_EVENT_TYPES.contains(&t));
        }
        if let Some(secret) = &s.secret {
            let b64 = secret.strip_prefix("whsec_").expect("a whsec_ secret");
            assert!(base64::engine::general_purpose::STANDARD
                .decode(b64)
                .is_ok());
            // The hint is the end of the secret as its owner knows it.
            let given = v["secret"].as_str().expect("a secret was given");
            let hint = subscriptions::secret_hint(secret);
            assert!(hint.len() <= 4 && (given.ends_with(&hint) || secret.ends_with(&hint)));
        }
        assert!(s.to_agent.as_deref().is_none_or(is_address));
        for id in [&s.intent_id, &s.correlation_id].into_iter().flatten() {
            assert_eq!(id, &id.to_ascii_lowercase());
            assert_eq!(id.len(), 36);
        }
    }
    if let Some(p) = answered(subscriptions::publish_request(v)) {
        assert!(AXME_EVENT_TYPES.contains(&p.event_type.as_str()));
        assert!((2..=100).contains(&chars(&p.source)));
        assert!(serde_json::from_str::<Value>(&p.payload).is_ok_and(|p| p.is_object()));
    }
}

fn inbox(v: &Value) {
    if let Some(m) = answered(fuzzing::reply_body(v)) {
        assert!((1..=5000).contains(&chars(&m)));
    }
    answered(fuzzing::read_body(v));
    if let Some((to, note)) = answered(fuzzing::delegate_body(v)) {
        assert!(is_address(&to));
        assert!(note.is_none_or(|n| chars(&n) <= 2000));
    }
    if let Some(c) = answered(fuzzing::comment_body(v, 2000)) {
        assert!(c.is_none_or(|c| chars(&c) <= 2000));
    }
    if let Some((_, ids, limit)) = answered(fuzzing::delete_messages_body(v)) {
        assert!((1..=100).contains(&limit));
        if let Some(ids) = ids {
            assert!((1..=100).contains(&ids.len()));
            assert!(ids.iter().all(|i| (1..=200).contains(&chars(i))));
        }
    }
    if let Some((_, c)) = answered(fuzzing::decision_body(v)) {
        assert!(c.is_none_or(|c| chars(&c) <= 1000));
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    intents(&v);
    claim_bodies(&v);
    registry(&v);
    webhooks(&v);
    inbox(&v);
});
