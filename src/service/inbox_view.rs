//! Threads as an owner sees them: a thread with its intent, timeline and visible messages, the
//! owner's listings (`/v1/inbox`, `/v1/inbox/changes`, `/v1/me/tasks`), and the thread an action
//! names. Reads only; the actions are in `inbox`.

use serde_json::{json, Value};

use super::intents as ops;
use super::thread_hooks::{thread_status, TASK_ROLES};
use crate::store::events::{self, EventRow};
use crate::store::intents::IntentRow;
use crate::store::threads::{self, MessageRow, ThreadRow};
use crate::store::Tx;
use crate::Error;

/// The most threads one listing returns.
pub const LIST_MAX: usize = 200;

/// A thread with everything its wire form shows.
#[derive(Debug, Clone)]
pub struct ThreadView {
    pub thread: ThreadRow,
    pub intent: IntentRow,
    pub events: Vec<EventRow>,
    /// Messages visible to the thread's owner, oldest first.
    pub messages: Vec<MessageRow>,
}

impl ThreadView {
    /// `pending` (waiting for this owner), `active` or `done` (the intent is terminal).
    pub fn status(&self) -> &'static str {
        thread_status(&self.thread, &self.intent)
    }

    pub fn unread(&self) -> bool {
        self.thread
            .read_at
            .as_ref()
            .is_none_or(|r| *r < self.thread.updated_at)
    }
}

/// Reads a thread with its timeline.
pub fn view(conn: &Tx, thread: ThreadRow) -> Result<ThreadView, Error> {
    let intent = ops::get(conn, &thread.intent_id)?;
    let events = events::list_for_intent(conn, &thread.intent_id, 0, ops::EVENTS_PAGE_MAX)?;
    let messages = threads::messages(conn, &thread.intent_id)?
        .into_iter()
        .filter(|m| m.deleted_at.is_none() && !hidden_for(m, &thread.owner_agent))
        .collect();
    Ok(ThreadView {
        thread,
        intent,
        events,
        messages,
    })
}

pub fn hidden_for(m: &MessageRow, owner: &str) -> bool {
    serde_json::from_str::<Vec<String>>(&m.hidden_for)
        .unwrap_or_default()
        .iter()
        .any(|o| o == owner)
}

pub fn not_found(thread_id: &str) -> Error {
    Error::NotFound {
        what: "thread",
        id: thread_id.to_string(),
    }
}

/// The thread an action names: the owner's own when an owner scope is given (404 outside it);
/// without one (an admin key), the intent's task thread when `task` is asked for, else its
/// first thread.
pub fn find(
    conn: &Tx,
    owner: Option<&str>,
    thread_id: &str,
    task: bool,
) -> Result<ThreadRow, Error> {
    match owner {
        Some(o) => threads::get(conn, o, thread_id)?.ok_or_else(|| not_found(thread_id)),
        None => {
            let all = threads::for_intent(conn, thread_id)?;
            let pick = if task {
                all.iter()
                    .rposition(|t| TASK_ROLES.contains(&t.role.as_str()))
                    .map(|i| all[i].clone())
            } else {
                None
            };
            pick.or_else(|| all.into_iter().next())
                .ok_or_else(|| not_found(thread_id))
        }
    }
}

/// `GET /v1/inbox`: the owner's threads (or everyone's, for an admin without a scope), most
/// recently changed first, optionally only those with a thread status.
pub fn list(
    conn: &Tx,
    owner: Option<&str>,
    status: Option<&str>,
    limit: usize,
) -> Result<Vec<ThreadView>, Error> {
    let mut out = Vec::new();
    // Read in growing batches until `limit` threads pass the status filter or none are left.
    let mut want = limit;
    loop {
        let rows = threads::latest(conn, owner, want)?;
        let exhausted = rows.len() < want;
        out.clear();
        for t in rows {
            let v = view(conn, t)?;
            if status.is_none_or(|s| s == v.status()) {
                out.push(v);
                if out.len() == limit {
                    return Ok(out);
                }
            }
        }
        if exhausted || want >= 100 * limit {
            return Ok(out);
        }
        want *= 4;
    }
}

/// `GET /v1/inbox/changes`: threads changed after `cursor`, oldest change first, each at its
/// latest state, with the cursor of each and whether more follow.
pub fn changes(
    conn: &Tx,
    owner: Option<&str>,
    cursor: i64,
    limit: usize,
) -> Result<(Vec<(i64, ThreadView)>, bool), Error> {
    let mut rows = threads::changed_after(conn, owner, cursor, limit + 1)?;
    let more = rows.len() > limit;
    rows.truncate(limit);
    let mut out = Vec::with_capacity(rows.len());
    for t in rows {
        out.push((t.change_id, view(conn, t)?));
    }
    Ok((out, more))
}

/// `GET /v1/me/tasks`: threads of the owner whose intent waits for a person.
pub fn tasks(conn: &Tx, owner: Option<&str>) -> Result<Vec<ThreadView>, Error> {
    threads::pending_tasks(conn, owner, LIST_MAX)?
        .into_iter()
        .map(|t| view(conn, t))
        .collect()
}

/// The human task a task thread shows: the intent's `human_task`, else one made of the
/// payload's `title` (an approval asked for through `agent://internal/approval`), else of the
/// intent type.
pub fn task_spec(intent: &IntentRow) -> Result<Value, Error> {
    if let Some(t) = &intent.human_task {
        return Ok(serde_json::from_str(t)?);
    }
    let payload: Value = serde_json::from_str(&intent.payload)?;
    let title = payload["title"]
        .as_str()
        .filter(|t| !t.is_empty())
        .map(|t| t.chars().take(255).collect::<String>())
        .unwrap_or_else(|| intent.intent_type.clone());
    let mut spec = json!({"title": title, "task_type": "approval"});
    if let Some(d) = payload["description"].as_str() {
        spec["description"] = json!(d.chars().take(2000).collect::<String>());
    }
    Ok(spec)
}
