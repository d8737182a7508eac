//! The bench's setup calls to axme, blocking through ureq: registering the two `http` agents,
//! then one delivery checked end to end (it arrived, its signature verifies with the agent's
//! secret, axme recorded it and moved the intent to DELIVERED).

use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use super::common::api_call as call;
use super::load::{FROM_AGENT, INTENT_TYPE, PAYLOAD};
use super::receiver::{control, Sample};
use super::{Servers, DEAD_AGENT, HEALTHY_AGENT, WEBHOOK_SECRET};

/// What the first delivery showed.
pub struct Preflight {
    pub sample: Sample,
    pub signature_ok: bool,
    /// The intent's status once the attempt was recorded.
    pub intent_status: String,
    /// The delivery's status and its recorded attempts.
    pub delivery_status: String,
    pub attempts: usize,
}

/// Registers the agents and checks one delivery.
pub fn preflight(s: &Servers) -> Result<Preflight, String> {
    let axme = format!("http://{}", s.axme.addr);
    let receiver = s.receiver.addr;
    for (address, target) in [(HEALTHY_AGENT, receiver), (DEAD_AGENT, s.black_hole.addr)] {
        let agent = json!({
            "address": address,
            "delivery_mode": "http",
            "webhook_url": format!("http://{target}/hook"),
            "webhook_secret": WEBHOOK_SECRET,
        });
        call("POST", &format!("{axme}/v1/agents"), Some(&agent))?;
    }

    let before = control::count(receiver)?;
    let payload: Value = serde_json::from_str(PAYLOAD).map_err(|e| e.to_string())?;
    let intent = json!({
        "intent_type": INTENT_TYPE,
        "correlation_id": uuid::Uuid::new_v4().to_string(),
        "to_agent": HEALTHY_AGENT,
        "from_agent": FROM_AGENT,
        "payload": payload,
    });
    let created = call("POST", &format!("{axme}/v1/intents"), Some(&intent))?;
    let id = created["intent_id"]
        .as_str()
        .ok_or(format!("the first create answered {created}"))?
        .to_string();
    wait_for("the first webhook", || {
        Ok(control::count(receiver)? > before)
    })?;
    let sample = control::sample(receiver)?;

    // The attempt is recorded after the receiver answered.
    let mut intent_status = String::new();
    wait_for("the first delivery to be recorded", || {
        let got = call("GET", &format!("{axme}/v1/intents/{id}"), None)?;
        let intent = got.get("intent").unwrap_or(&got);
        intent_status = intent["status"].as_str().unwrap_or("?").to_string();
        Ok(intent_status == "DELIVERED")
    })?;
    let listed = call("GET", &format!("{axme}/v1/deliveries?intent_id={id}"), None)?;
    let delivery = &listed["deliveries"][0];
    Ok(Preflight {
        signature_ok: verify(&sample),
        intent_status,
        delivery_status: delivery["status"].as_str().unwrap_or("?").to_string(),
        attempts: delivery["attempts"].as_array().map_or(0, Vec::len),
        sample,
    })
}

/// Makes the dead agent an owner with slow endpoints: it subscribes to its own intents' events
/// at each of the slow black holes (phase 7).
pub fn subscribe_slow_owner(s: &Servers) -> Result<(), String> {
    let axme = format!("http://{}", s.axme.addr);
    let owner = DEAD_AGENT.replace(':', "%3A").replace('/', "%2F");
    for hole in &s.slow {
        let sub = json!({
            "callback_url": format!("http://{}/hook", hole.addr),
            "event_types": ["intent.*"],
            "to_agent": DEAD_AGENT,
        });
        let url = format!("{axme}/v1/webhooks/subscriptions?owner_agent={owner}");
        call("POST", &url, Some(&sub))?;
    }
    Ok(())
}

/// Whether the `webhook-signature` holds the Standard Webhooks signature of the sample made
/// with the agent's secret.
fn verify(sample: &Sample) -> bool {
    let b64 = base64::engine::general_purpose::STANDARD;
    let Some(key) = WEBHOOK_SECRET
        .strip_prefix("whsec_")
        .and_then(|k| b64.decode(k).ok())
    else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    let signed = format!("{}.{}.{}", sample.id, sample.timestamp, sample.body);
    let expected = b64.encode(ring::hmac::sign(&key, signed.as_bytes()).as_ref());
    let expected = format!("v1,{expected}");
    sample.signature.split(' ').any(|s| s == expected)
}

/// Polls `done` every 5 ms for up to 10 s.
fn wait_for(what: &str, mut done: impl FnMut() -> Result<bool, String>) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done()? {
        if Instant::now() > deadline {
            return Err(format!("waited 10 s for {what}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}
