//! The built-in internal agents: runtime steps that need no external agent.
//!
//! - `agent://internal/delay`: WAITING_FOR_TIME, then COMPLETED after `payload.seconds`
//!   (0–2,592,000) with `{"waited_seconds": n}`; a durable timer, so a restart neither loses nor
//!   repeats it.
//! - `agent://internal/approval`: a task in the inbox of `payload.approver` (the intent's
//!   `human_task`, else one titled `payload.title`); WAITING_FOR_HUMAN until approved
//!   (COMPLETED with the decision) or rejected (FAILED, `rejected`).
//! - `agent://internal/notify`: one POST of `payload.body` (any JSON, default `{}`) to
//!   `payload.url`, signed per Standard Webhooks with `payload.secret` (`whsec_…`) when given;
//!   COMPLETED when the receiver answers 2xx. Other answers and network errors are retried with
//!   backoff up to the intent's `max_delivery_attempts` (default 5); `410 Gone` and addresses
//!   the push guard refuses fail at once.

use std::time::Duration;

use serde_json::{json, Value};

use super::internal::{Step, Work};
use crate::webhook::{self, Answer};

pub use crate::model::builtin::{APPROVAL, DELAY, NOTIFY};

/// The longest delay `agent://internal/delay` takes (30 days).
pub const MAX_DELAY_SECONDS: f64 = 2_592_000.0;

fn invalid(field: &str, reason: &str) -> Step {
    Step::failed(
        json!({"code": "invalid_payload", "message": format!("payload.{field} {reason}"),
               "details": {"field": format!("payload.{field}")}}),
        false,
    )
}

pub async fn delay(work: Work) -> Step {
    let Some(seconds) = work.payload.get("seconds").and_then(Value::as_f64) else {
        return invalid("seconds", "must be a number of seconds");
    };
    if !(0.0..=MAX_DELAY_SECONDS).contains(&seconds) {
        return invalid("seconds", "must be between 0 and 2592000");
    }
    Step::CompleteAfter {
        delay: Duration::from_secs_f64(seconds),
        result: json!({"waited_seconds": work.payload["seconds"]}),
    }
}

pub async fn approval(work: Work) -> Step {
    let Some(approver) = work.payload.get("approver").and_then(Value::as_str) else {
        return invalid("approver", "must name the address that decides");
    };
    if crate::service::validate::address("payload.approver", approver).is_err() {
        return invalid("approver", "is not a valid agent address");
    }
    let task = match (
        &work.human_task,
        work.payload.get("title").and_then(Value::as_str),
    ) {
        (Some(_), _) => None,
        (None, Some(title)) if !title.is_empty() && title.chars().count() <= 255 => {
            let mut t = json!({"title": title, "task_type": "approval"});
            if let Some(d) = work.payload.get("description").and_then(Value::as_str) {
                t["description"] = json!(d.chars().take(2000).collect::<String>());
            }
            Some(t)
        }
        (None, Some(_)) => return invalid("title", "must be 1 to 255 characters"),
        (None, None) => Some(json!({"title": work.intent_type, "task_type": "approval"})),
    };
    Step::AskHuman {
        owner: approver.to_string(),
        task,
    }
}

/// The notify agent, sending with `agent` (built with the push guard and timeouts).
pub fn notifier(agent: ureq::Agent) -> impl Fn(Work) -> NotifyFuture + Send + Sync + 'static {
    move |work: Work| {
        let agent = agent.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || notify(&agent, &work))
                .await
                .unwrap_or_else(|e| {
                    Step::failed(
                        json!({"code": "notify_failed", "message": e.to_string()}),
                        true,
                    )
                })
        }) as NotifyFuture
    }
}

pub type NotifyFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Step> + Send>>;

fn notify(agent: &ureq::Agent, work: &Work) -> Step {
    let Some(url) = work.payload.get("url").and_then(Value::as_str) else {
        return invalid("url", "must be the http(s) URL to notify");
    };
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return invalid("url", "must be an http:// or https:// URL");
    }
    let secret = work.payload.get("secret").and_then(Value::as_str);
    if secret.is_some_and(|s| !s.starts_with("whsec_")) {
        return invalid("secret", "must be a whsec_ secret");
    }
    let body = serde_json::to_vec(work.payload.get("body").unwrap_or(&json!({})))
        .unwrap_or_else(|_| b"{}".to_vec());
    let id = format!("msg_{}", work.intent_id.replace('-', ""));
    let secrets: Vec<String> = secret.map(str::to_string).into_iter().collect();
    let answer = webhook::post(
        agent,
        &webhook::Post {
            url,
            id: &id,
            secrets: &secrets,
            body: &body,
        },
    );
    match answer {
        Answer::Status {
            code, latency_ms, ..
        } if (200..300).contains(&code) => Step::Completed(json!({
            "delivered": true, "status_code": code, "url": url,
            "signed": secret.is_some(), "webhook_id": id, "latency_ms": latency_ms,
        })),
        Answer::Status { code, .. } if code < 400 => Step::failed(
            json!({"code": "notify_failed", "message": format!("HTTP {code}: redirects are not followed"), "status_code": code}),
            true,
        ),
        Answer::Status { code: 410, .. } => Step::failed(
            json!({"code": "notify_gone", "message": "the receiver answered 410 Gone", "status_code": 410}),
            false,
        ),
        Answer::Status { code, .. } => Step::failed(
            json!({"code": "notify_failed", "message": format!("HTTP {code}"), "status_code": code}),
            true,
        ),
        Answer::Transport {
            message, refused, ..
        } => Step::failed(
            json!({"code": if refused {"target_refused"} else {"notify_failed"}, "message": message}),
            !refused,
        ),
    }
}
