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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Status;
    use crate::service::inbox::{self, Decision};
    use crate::service::testing::{self, task, BOB, HANDLER};

    fn ids(views: &[ThreadView]) -> Vec<(String, String)> {
        views
            .iter()
            .map(|v| (v.thread.owner_agent.clone(), v.thread.role.clone()))
            .collect()
    }

    #[test]
    fn a_delegated_task_leaves_the_delegators_tasks_and_only_the_delegate_decides_it() {
        let conn = testing::db();
        let tx = Tx::sqlite(&conn);
        let id = task(&tx, json!({}));
        assert_eq!(
            ids(&tasks(&tx, Some(HANDLER)).expect("tasks")),
            [(HANDLER.into(), "task".into())]
        );
        let v = inbox::delegate(&tx, Some(HANDLER), &id, BOB, Some("yours")).expect("delegated");
        assert_eq!(
            (v.thread.role.as_str(), v.intent.to_agent.as_str()),
            ("delegated", BOB)
        );
        assert!(tasks(&tx, Some(HANDLER)).expect("tasks").is_empty());
        assert_eq!(
            ids(&tasks(&tx, None).expect("all tasks")),
            [(BOB.into(), "delegate".into())]
        );
        let e = inbox::decide(&tx, Some(HANDLER), false, &id, Decision::Approve, None)
            .expect_err("delegator");
        assert_eq!(e.code(), "forbidden");
        let v = inbox::reply(&tx, Some(BOB), &id, "on it").expect("reply");
        assert_eq!(
            (v.status(), v.messages.len(), v.unread()),
            ("pending", 2, false)
        );
        let d =
            inbox::decide(&tx, Some(BOB), false, &id, Decision::Reject, None).expect("rejected");
        assert_eq!(
            (d.view.status(), d.view.intent.status),
            ("done", Status::Failed)
        );
    }

    /// An operator (admin key) under the delegator's scope was refused like the delegator's own
    /// key, though the refusal itself says an admin decides a delegated task.
    #[test]
    fn r_an_operator_under_the_delegators_scope_decides_a_delegated_task() {
        let conn = testing::db();
        let tx = Tx::sqlite(&conn);
        let id = task(&tx, json!({}));
        inbox::delegate(&tx, Some(HANDLER), &id, BOB, None).expect("delegated");
        let d = inbox::decide(&tx, Some(HANDLER), true, &id, Decision::Approve, None)
            .expect("the operator decides");
        assert_eq!(
            (d.view.thread.owner_agent.as_str(), d.view.intent.status),
            (HANDLER, Status::Completed)
        );
    }

    #[test]
    fn listings_filter_by_status_and_changes_show_each_thread_once_at_its_latest_change() {
        let conn = testing::db();
        let tx = Tx::sqlite(&conn);
        testing::agent(&tx, HANDLER, "inbox");
        let first = testing::intent(&tx, json!({})).intent_id;
        let second = task(&tx, json!({}));
        let (all, more) = changes(&tx, Some(HANDLER), 0, 10).expect("changes");
        assert_eq!((all.len(), more), (2, false));
        let (page, more) = changes(&tx, Some(HANDLER), 0, 1).expect("page");
        assert_eq!(
            (page[0].1.thread.intent_id.as_str(), more),
            (first.as_str(), true)
        );
        inbox::read(&tx, Some(HANDLER), &first).expect("read");
        let (after, _) = changes(&tx, Some(HANDLER), all[1].0, 10).expect("after");
        assert_eq!((after.len(), after[0].1.unread()), (1, false));
        crate::service::intents::ack(&tx, &first, None, HANDLER, None).expect("ack");
        let (after, _) = changes(&tx, Some(HANDLER), all[1].0, 10).expect("after");
        assert_eq!(
            (after.len(), after[0].1.unread()),
            (1, true),
            "once, at its latest change"
        );
        assert_eq!(after[0].1.status(), "active");
        let pending = list(&tx, Some(HANDLER), Some("pending"), 10).expect("pending");
        assert_eq!(
            pending
                .iter()
                .map(|v| &v.intent.intent_id)
                .collect::<Vec<_>>(),
            [&second]
        );
        assert_eq!(list(&tx, Some(BOB), None, 10).expect("bob's").len(), 0);
        let e = find(&tx, Some(BOB), &first, false).expect_err("not bob's");
        assert_eq!(e.code(), "thread_not_found");
    }

    #[test]
    fn a_task_without_a_human_task_is_shown_from_the_payload_title_or_the_intent_type() {
        let conn = testing::db();
        let tx = Tx::sqlite(&conn);
        let titled = testing::intent(
            &tx,
            json!({"payload": {"title": "Pay", "description": "d"}}),
        );
        let spec = task_spec(&titled).expect("spec");
        assert_eq!(
            spec,
            json!({"title": "Pay", "task_type": "approval", "description": "d"})
        );
        let plain = testing::intent(&tx, json!({}));
        assert_eq!(task_spec(&plain).expect("spec")["title"], "demo.task.v1");
    }
}
