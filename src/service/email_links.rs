//! Task emails, the deciding side: the magic link's page and its one decision. The token is
//! the credential (the routes take no key): it is looked up by its SHA-256, and a decision
//! marks it used in the transaction that applies the decision, so it decides once. A link
//! used, expired or whose task is no longer waiting says which, and decides nothing.

use serde_json::{json, Map, Value};

use super::{auth, resume};
use crate::clock;
use crate::model::{Status, WaitingReason};
use crate::store::intents;
use crate::store::mail::{self, LinkRow};
use crate::store::{Store, Tx};
use crate::Error;

/// Where a link stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    /// It may decide the task.
    Open,
    /// It decided the task at this time.
    Used(String),
    /// Its time ran out at this time.
    Expired(String),
    /// The task was decided or ended otherwise; its intent's status.
    Closed(&'static str),
}

/// What the decision page shows.
#[derive(Debug, Clone)]
pub struct LinkView {
    pub state: LinkState,
    pub intent_id: String,
    pub email: String,
    pub expires_at: String,
    pub title: String,
    pub description: Option<String>,
    /// The task's form (`form_schema`), when it has one.
    pub form_schema: Option<Value>,
}

fn find(conn: &Tx, token: &str) -> Result<LinkRow, Error> {
    let not_found = || Error::NotFound {
        what: "link",
        id: token.chars().take(6).collect::<String>() + "…",
    };
    if token.is_empty() || token.len() > 100 {
        return Err(not_found());
    }
    mail::link(conn, &auth::hash_key(token))?.ok_or_else(not_found)
}

/// The page of a link, in a read of its own.
pub async fn view(store: &Store, token: String) -> Result<LinkView, Error> {
    store.read(move |c| view_in(c, &token)).await
}

/// The page of a link.
fn view_in(conn: &Tx, token: &str) -> Result<LinkView, Error> {
    let link = find(conn, token)?;
    let intent = intents::get(conn, &link.intent_id)?.ok_or_else(|| Error::NotFound {
        what: "intent",
        id: link.intent_id.clone(),
    })?;
    let task: Value = intent
        .human_task
        .as_deref()
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or(Value::Null);
    let expired = clock::parse(&link.expires_at).is_none_or(|t| t <= clock::now());
    let waiting =
        intent.status == Status::Waiting && intent.waiting_reason == Some(WaitingReason::Human);
    let state = match (&link.used_at, expired, waiting) {
        (Some(at), _, _) => LinkState::Used(at.clone()),
        (None, true, _) => LinkState::Expired(link.expires_at.clone()),
        (None, false, false) => LinkState::Closed(intent.status.as_str()),
        (None, false, true) => LinkState::Open,
    };
    Ok(LinkView {
        state,
        intent_id: link.intent_id,
        email: link.email,
        expires_at: link.expires_at,
        title: task["title"].as_str().unwrap_or("Task").to_string(),
        description: task["description"].as_str().map(str::to_string),
        form_schema: task.get("form_schema").filter(|f| f.is_object()).cloned(),
    })
}

/// Decides the link's task with `outcome` and the form's fields (checked against the task's
/// `form_schema` and `allowed_outcomes` as any `task_result` is), as `mailto:<address>`, and
/// answers whether it did with the page after. A link that may not decide answers its page
/// unchanged; a refused form is the resume's 422, and the link stays unused.
pub async fn decide(
    store: &Store,
    token: String,
    outcome: String,
    form: Map<String, Value>,
) -> Result<(bool, LinkView), Error> {
    store
        .write(move |c| decide_in(c, &token, &outcome, form))
        .await
}

fn decide_in(
    conn: &Tx,
    token: &str,
    outcome: &str,
    form: Map<String, Value>,
) -> Result<(bool, LinkView), Error> {
    let page = view_in(conn, token)?;
    if page.state != LinkState::Open {
        return Ok((false, page));
    }
    let mut task_result = form;
    task_result.insert("outcome".into(), json!(outcome));
    let req = resume::request(&json!({ "task_result": task_result }))?;
    let by = format!("mailto:{}", page.email);
    resume::resume(conn, &page.intent_id, req, &by, None)?;
    if !mail::use_link(conn, &auth::hash_key(token), &clock::now_rfc3339())? {
        return Err(Error::conflict("link_used", "the link was used meanwhile"));
    }
    Ok((true, view_in(conn, token)?))
}
