//! Task emails, the sending side: a human step with `human_task.notify_email` owes its
//! assignee a mail (queued in the transaction that opens the task, so none is lost and none is
//! sent from inside a request), and each reminder of the task owes another. The mail carries a
//! magic link to the decision page: a fresh token per mail (32 random bytes), stored only as
//! its SHA-256, good once, until the step's deadline or 7 days, whichever comes first. The
//! runtime's mail task takes due mails here, sends them outside any transaction, and records
//! the outcome; a mail that fails is retried with backoff, at most `MAX_ATTEMPTS` times.

use base64::Engine;
use serde_json::Value;

use super::auth;
use crate::clock;
use crate::model::{Status, WaitingReason};
use crate::store::intents::{self, IntentRow};
use crate::store::mail::{self, LinkRow};
use crate::store::Tx;
use crate::Error;

/// Attempts of one mail before it is given up on.
pub const MAX_ATTEMPTS: i64 = 10;
/// The longest life of a magic link.
pub const LINK_TTL_SECONDS: i64 = 7 * 86_400;
/// The path of the decision page; the token follows it.
pub const DECIDE_PATH: &str = "/ui/decide/";

/// Queues the mail a task (`kind` "task") or its reminder (`kind` "reminder") owes `to`.
pub fn queue(conn: &Tx, intent: &IntentRow, to: &str, kind: &str) -> Result<(), Error> {
    let now = clock::now_rfc3339();
    mail::insert(conn, &intent.intent_id, to, kind, clock::now_ms(), &now)
}

/// The address a task's mails go to, if it has one.
pub fn recipient(human_task: Option<&str>) -> Option<String> {
    let task: Value = serde_json::from_str(human_task?).ok()?;
    task.get("notify_email")?.as_str().map(str::to_string)
}

/// One mail ready for the relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub id: i64,
    pub to: String,
    pub subject: String,
    pub text: String,
}

/// Takes the due mails: counts the attempt (the next one is due after a backoff, should this
/// one never be recorded), makes each its link, and renders it. A mail whose task was decided
/// meanwhile is ended unsent.
pub fn take_due(conn: &Tx, public_url: &str, limit: usize) -> Result<Vec<Outgoing>, Error> {
    let now_ms = clock::now_ms();
    let now = clock::now();
    let mut out = Vec::new();
    for m in mail::due(conn, now_ms, MAX_ATTEMPTS, limit)? {
        mail::attempt(conn, m.id, now_ms + backoff_ms(m.attempts))?;
        let waiting = |i: &IntentRow| {
            i.status == Status::Waiting && i.waiting_reason == Some(WaitingReason::Human)
        };
        let Some(intent) = intents::get(conn, &m.intent_id)?.filter(waiting) else {
            let why = "the task was no longer waiting";
            mail::finish(conn, m.id, &clock::format(now), Some(why))?;
            continue;
        };
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(auth::random_32()?);
        let ttl = now + time::Duration::seconds(LINK_TTL_SECONDS);
        let expires = match intent.deadline_at.as_deref().and_then(clock::parse) {
            Some(d) if d < ttl => d,
            _ => ttl,
        };
        mail::insert_link(
            conn,
            &LinkRow {
                token_hash: auth::hash_key(&token).to_vec(),
                intent_id: intent.intent_id.clone(),
                email: m.to_addr.clone(),
                created_at: clock::format(now),
                expires_at: clock::format(expires),
                used_at: None,
            },
        )?;
        let link = format!("{public_url}{DECIDE_PATH}{token}");
        let (subject, text) = render(&intent, &m.kind, &link, &clock::format(expires));
        out.push(Outgoing {
            id: m.id,
            to: m.to_addr,
            subject,
            text,
        });
    }
    Ok(out)
}

/// 5 s, doubling with each attempt, at most an hour.
fn backoff_ms(attempts: i64) -> i64 {
    (5_000i64 << attempts.clamp(0, 10)).min(3_600_000)
}

/// The relay took the mail.
pub fn sent(conn: &Tx, id: i64) -> Result<(), Error> {
    mail::finish(conn, id, &clock::now_rfc3339(), None)
}

/// The relay refused the mail or could not be reached; the next attempt is already due later.
pub fn failed(conn: &Tx, id: i64, error: &str) -> Result<(), Error> {
    mail::failed(conn, id, error)
}

fn render(intent: &IntentRow, kind: &str, link: &str, expires: &str) -> (String, String) {
    let task: Value = intent
        .human_task
        .as_deref()
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or(Value::Null);
    let title = task["title"].as_str().unwrap_or("A task waits for you");
    let subject = match kind {
        "reminder" => format!("Reminder: {title}"),
        _ => title.to_string(),
    };
    let mut text = format!("{title}\n\n");
    if let Some(d) = task["description"].as_str() {
        text.push_str(&format!("{d}\n\n"));
    }
    text.push_str(&format!(
        "Approve or reject it here (no key needed):\n{link}\n\n\
         The link works once, until {expires}.\nTask {}\n",
        intent.intent_id
    ));
    (subject, text)
}
