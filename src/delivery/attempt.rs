//! One push attempt: render the webhook body, sign it, POST it with ureq, and classify what came
//! back. Runs on a pool thread; touches no database.

use std::io::Read;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::sign;
use super::target::REFUSED;
use crate::http::wire;
use crate::service::deliveries::{Outcome, Prepared, Verdict, KIND_HANDLER};
use crate::{clock, Error};

/// The first bytes of a response kept on the attempt record.
const EXCERPT_BYTES: usize = 2048;
/// The most of a handler's reply read to look for a status.
const REPLY_BYTES: u64 = 64 * 1024;

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
    let body = if d.kind == KIND_HANDLER {
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
        handler: d.kind == KIND_HANDLER,
    })
}

/// Sends one attempt and says what it came to.
pub fn send(agent: &ureq::Agent, req: &Request) -> Outcome {
    let ts = clock::unix_seconds();
    let signature = sign::signature(&req.secrets, &req.delivery_id, ts, &req.body);
    let mut post = agent
        .post(&req.url)
        .set("content-type", "application/json")
        .set("webhook-id", &req.delivery_id)
        .set("webhook-timestamp", &ts.to_string())
        .set("webhook-signature", &signature);
    if let Some(current) = req.secrets.first() {
        post = post.set(
            "x-axme-signature",
            &sign::axme_signature(current, &req.body),
        );
    }
    let started = Instant::now();
    let result = post.send_bytes(&req.body);
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
    match result {
        Ok(resp) => {
            let status = resp.status();
            outcome.status_code = Some(status);
            let text = read_body(resp);
            outcome.latency_ms = started.elapsed().as_millis() as i64;
            if (200..300).contains(&status) {
                outcome.verdict = Verdict::Delivered;
                if req.handler {
                    outcome.reply = serde_json::from_str(&text).ok();
                }
            } else {
                outcome.error = Some(format!("HTTP {status}: redirects are not followed"));
            }
            outcome.response_excerpt = excerpt(&text);
        }
        Err(ureq::Error::Status(status, resp)) => {
            outcome.status_code = Some(status);
            let retry_after = resp.header("retry-after").and_then(parse_retry_after);
            let text = read_body(resp);
            outcome.latency_ms = started.elapsed().as_millis() as i64;
            outcome.response_excerpt = excerpt(&text);
            outcome.error = Some(format!("HTTP {status}"));
            outcome.verdict = match status {
                410 => Verdict::Gone,
                429 => Verdict::Retry {
                    retry_after,
                    throttled: true,
                },
                503 => Verdict::Retry {
                    retry_after,
                    throttled: false,
                },
                _ => Verdict::Retry {
                    retry_after: None,
                    throttled: false,
                },
            };
        }
        Err(ureq::Error::Transport(t)) => {
            outcome.latency_ms = started.elapsed().as_millis() as i64;
            let message = t.to_string();
            let timed_out = message.contains("timed out") || message.contains("Timeout");
            outcome.error = Some(message.clone());
            outcome.verdict = if message.contains(REFUSED) {
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

/// `Retry-After` as seconds or as an HTTP date.
fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc2822).ok()?;
    let wait = at - clock::now();
    Some(Duration::from_secs_f64(wait.as_seconds_f64().max(0.0)))
}

fn read_body(resp: ureq::Response) -> String {
    let mut buf = Vec::new();
    let _ = resp.into_reader().take(REPLY_BYTES).read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_as_seconds_or_as_a_date() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        let soon = clock::now() + time::Duration::seconds(30);
        let date = soon
            .format(&time::format_description::well_known::Rfc2822)
            .unwrap()
            .replace("+0000", "GMT");
        let d = parse_retry_after(&date).expect("a date");
        assert!((25..=31).contains(&d.as_secs()), "{d:?} from {date}");
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
