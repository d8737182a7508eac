//! One push attempt: render the webhook body, send it with `webhook::post` (signed), and say what
//! the answer means for the delivery. Runs on a pool thread; touches no database.

use serde::Serialize;

use crate::http::wire;
use crate::model::DeliveryKind;
use crate::service::deliveries::{Outcome, Verdict};
use crate::service::push_targets::Prepared;
use crate::webhook::{self, Answer};
use crate::{clock, Error};

/// The first bytes of a response kept on the attempt record.
const EXCERPT_BYTES: usize = 2048;

/// A rendered, ready-to-send push.
#[derive(Debug, Clone)]
pub struct Request {
    pub delivery_id: String,
    pub attempt: i64,
    pub url: String,
    pub body: Vec<u8>,
    pub secrets: Vec<String>,
    pub handler: bool,
}

#[derive(Serialize)]
struct DeliveryRef<'a> {
    delivery_id: &'a str,
    attempt: i64,
}

#[derive(Serialize)]
struct HandlerData<'a> {
    intent: wire::Intent<'a>,
    delivery: DeliveryRef<'a>,
}

#[derive(Serialize)]
struct ObserverData<'a> {
    event: wire::Event<'a>,
    intent: wire::Intent<'a>,
}

/// A push body. `intent_id` is AXME's: its http agents read the intent id at the top.
#[derive(Serialize)]
struct Envelope<'a, D: Serialize> {
    #[serde(skip_serializing_if = "Option::is_none")]
    intent_id: Option<&'a str>,
    #[serde(rename = "type")]
    kind: &'a str,
    timestamp: String,
    data: D,
}

#[derive(Serialize)]
struct PublishedData<'a> {
    event_id: &'a str,
    owner_agent: &'a str,
    source: &'a str,
    payload: &'a serde_json::value::RawValue,
}

/// Renders the body of the next attempt of a prepared delivery.
pub fn render(p: &Prepared) -> Result<Request, Error> {
    let d = &p.delivery;
    let attempt = d.attempts + 1;
    let timestamp = clock::now_rfc3339();
    if let Some(e) = &p.webhook_event {
        let body = serde_json::to_vec(&Envelope {
            intent_id: None,
            kind: &d.event_type,
            timestamp,
            data: PublishedData {
                event_id: &e.event_id,
                owner_agent: &e.owner_agent,
                source: &e.source,
                payload: serde_json::from_str(&e.payload)?,
            },
        })?;
        return Ok(Request {
            delivery_id: d.delivery_id.clone(),
            attempt,
            url: p.url.clone(),
            body,
            secrets: p.secrets.clone(),
            handler: false,
        });
    }
    let intent = p
        .intent
        .as_ref()
        .ok_or_else(|| Error::internal("the delivery's intent is gone"))?;
    let body = if d.kind == DeliveryKind::Handler {
        serde_json::to_vec(&Envelope {
            intent_id: Some(&intent.intent_id),
            kind: &d.event_type,
            timestamp,
            data: HandlerData {
                intent: wire::Intent::from_row(intent)?,
                delivery: DeliveryRef {
                    delivery_id: &d.delivery_id,
                    attempt,
                },
            },
        })?
    } else {
        let event = p
            .event
            .as_ref()
            .ok_or_else(|| Error::internal("the delivery's event is gone"))?;
        serde_json::to_vec(&Envelope {
            intent_id: Some(&intent.intent_id),
            kind: &d.event_type,
            timestamp,
            data: ObserverData {
                event: wire::Event::from_row(event)?,
                intent: wire::Intent::from_row(intent)?,
            },
        })?
    };
    Ok(Request {
        delivery_id: d.delivery_id.clone(),
        attempt,
        url: p.url.clone(),
        body,
        secrets: p.secrets.clone(),
        handler: d.kind == DeliveryKind::Handler,
    })
}

/// Sends one attempt and says what it came to.
pub fn send(agent: &ureq::Agent, req: &Request) -> Outcome {
    let answer = webhook::post(
        agent,
        &webhook::Post {
            url: &req.url,
            id: &req.delivery_id,
            secrets: &req.secrets,
            body: &req.body,
        },
    );
    let mut outcome = Outcome {
        attempt: req.attempt,
        status_code: None,
        latency_ms: 0,
        error: None,
        response_excerpt: None,
        verdict: Verdict::Retry {
            retry_after: None,
            throttled: false,
        },
        reply: None,
    };
    match answer {
        Answer::Status {
            code,
            retry_after,
            body,
            latency_ms,
        } => {
            outcome.status_code = Some(code);
            outcome.latency_ms = latency_ms;
            outcome.response_excerpt = excerpt(&body);
            if (200..300).contains(&code) {
                outcome.verdict = Verdict::Delivered;
                if req.handler {
                    outcome.reply = serde_json::from_str(&body).ok();
                }
            } else if code < 400 {
                outcome.error = Some(format!("HTTP {code}: redirects are not followed"));
            } else {
                outcome.error = Some(format!("HTTP {code}"));
                outcome.verdict = match code {
                    410 => Verdict::Gone,
                    429 => Verdict::Retry {
                        retry_after,
                        throttled: true,
                    },
                    _ => Verdict::Retry {
                        retry_after,
                        throttled: false,
                    },
                };
            }
        }
        Answer::Transport {
            message,
            refused,
            timed_out,
            latency_ms,
        } => {
            outcome.latency_ms = latency_ms;
            outcome.error = Some(message);
            outcome.verdict = if refused {
                Verdict::Permanent
            } else {
                Verdict::Retry {
                    retry_after: None,
                    throttled: timed_out,
                }
            };
        }
    }
    outcome
}

fn excerpt(text: &str) -> Option<String> {
    if text.is_empty() {
        return None;
    }
    let mut end = text.len().min(EXCERPT_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Some(text[..end].to_string())
}
