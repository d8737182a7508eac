//! One signed webhook POST, shared by the push binding (`delivery`) and the built-in notify
//! agent (`runtime::builtin`): Standard Webhooks signing and AXME's signature beside it (`sign`), the guard on where a POST may
//! go (`target`), and the classification of what came back. It knows nothing of intents,
//! deliveries or the store; its callers decide what an answer means for them.

pub mod sign;
pub mod target;

use std::io::Read;
use std::time::{Duration, Instant};

use crate::clock;

/// The most bytes of a receiver's answer that are read.
const REPLY_BYTES: u64 = 64 * 1024;

/// One POST to make.
pub struct Post<'a> {
    pub url: &'a str,
    /// The `webhook-id` (stable across retries of the same message).
    pub id: &'a str,
    /// Secrets to sign with (`whsec_…`); none sends no `webhook-signature`.
    pub secrets: &'a [String],
    pub body: &'a [u8],
}

/// What the receiver (or the network) answered.
#[derive(Debug)]
pub enum Answer {
    /// An HTTP answer: its status, `Retry-After` when one was sent with a 429/503, and the
    /// first bytes of its body.
    Status {
        code: u16,
        retry_after: Option<Duration>,
        body: String,
        latency_ms: i64,
    },
    /// No HTTP answer: the connection failed, timed out, or the target guard refused it.
    Transport {
        message: String,
        /// The guard refused the address: retrying can never help.
        refused: bool,
        timed_out: bool,
        latency_ms: i64,
    },
}

/// Signs and sends one POST with `content-type: application/json`, the Standard Webhooks
/// headers and AXME's `X-Axme-Signature`, on `agent` (whose resolver is a [`target::GuardedResolver`]). Redirects are not
/// followed (the agent is built without them).
pub fn post(agent: &ureq::Agent, p: &Post<'_>) -> Answer {
    let ts = clock::unix_seconds();
    let mut req = agent
        .post(p.url)
        .set("content-type", "application/json")
        .set("webhook-id", p.id)
        .set("webhook-timestamp", &ts.to_string());
    if !p.secrets.is_empty() {
        req = req.set(
            "webhook-signature",
            &sign::signature(p.secrets, p.id, ts, p.body),
        );
    }
    // AXME's own format beside it, for AXME's http agents: the current secret only.
    if let Some(current) = p.secrets.first() {
        req = req.set("x-axme-signature", &sign::axme_signature(current, p.body));
    }
    let started = Instant::now();
    let result = req.send_bytes(p.body);
    let elapsed = |s: Instant| s.elapsed().as_millis() as i64;
    match result {
        Ok(resp) => {
            let code = resp.status();
            let body = read_body(resp);
            Answer::Status {
                code,
                retry_after: None,
                body,
                latency_ms: elapsed(started),
            }
        }
        Err(ureq::Error::Status(code, resp)) => {
            let retry_after = match code {
                429 | 503 => resp.header("retry-after").and_then(parse_retry_after),
                _ => None,
            };
            let body = read_body(resp);
            Answer::Status {
                code,
                retry_after,
                body,
                latency_ms: elapsed(started),
            }
        }
        Err(ureq::Error::Transport(t)) => {
            let message = t.to_string();
            Answer::Transport {
                refused: message.contains(target::REFUSED),
                timed_out: message.contains("timed out") || message.contains("Timeout"),
                message,
                latency_ms: elapsed(started),
            }
        }
    }
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
