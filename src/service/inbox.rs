//! The inbox: owner-scoped threads over intents, for people and for the agents that act for them.
//!
//! A thread is one intent as seen by one owner. Owners come from the intent itself: the handler
//! of an intent to an `inbox` agent (`handler`), the handler and the `agent://` assignees of an
//! intent with a `human_task` (`task`), the `reply_to` address once the completion is stored
//! (`reply_to`), the approver of `agent://internal/approval` (`approver`), and whoever a thread is
//! delegated to (`delegate`). Its timeline is the intent's events with the messages posted on the
//! intent (replies, delegation notes, decisions). Every change of the intent or its messages
//! bumps the thread in the `/v1/inbox/changes` feed and is offered to the owner's webhook
//! subscriptions as `inbox.thread_created`, `inbox.thread_updated` and `inbox.reply_received`.
//!
//! Human tasks: an intent with a `human_task` waits as WAITING_FOR_HUMAN from its creation;
//! `approve` completes it with the decision as its result, `reject` fails it with `rejected`, and
//! `resume` (AXME) lets the handler continue it. The task's `allowed_outcomes` and
//! `required_comment` hold for the decisions as for `resume`.

use rusqlite::Connection;
use serde_json::{json, Value};

use super::intents::{self as ops, Change};
use super::subscriptions;
use crate::clock;
use crate::model::{Status, WaitingReason};
use crate::store::agents;
use crate::store::events::{self, EventRow};
use crate::store::intents::IntentRow;
use crate::store::threads::{self, MessageRow, ThreadRow};
use crate::Error;

/// The roles under which a thread is a task of its owner (listed by `/v1/me/tasks`,
/// decided by approve / reject).
const TASK_ROLES: &[&str] = &["task", "approver", "delegate"];

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

fn thread_status(t: &ThreadRow, i: &IntentRow) -> &'static str {
    let waits_for_owner = if TASK_ROLES.contains(&t.role.as_str()) {
        i.waiting_reason == Some(WaitingReason::Human)
    } else {
        t.role == "handler" && i.status == Status::Submitted
    };
    if i.status.is_terminal() {
        "done"
    } else if waits_for_owner {
        "pending"
    } else {
        "active"
    }
}

/// Reads a thread with its timeline.
pub fn view(conn: &Connection, thread: ThreadRow) -> Result<ThreadView, Error> {
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

fn hidden_for(m: &MessageRow, owner: &str) -> bool {
    serde_json::from_str::<Vec<String>>(&m.hidden_for)
        .unwrap_or_default()
        .iter()
        .any(|o| o == owner)
}

fn not_found(thread_id: &str) -> Error {
    Error::NotFound {
        what: "thread",
        id: thread_id.to_string(),
    }
}

/// The thread an action names: the owner's own when an owner scope is given (404 outside it);
/// without one (an admin key), the intent's task thread when `task` is asked for, else its
/// first thread.
pub fn find(
    conn: &Connection,
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
    conn: &Connection,
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
    conn: &Connection,
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
pub fn tasks(conn: &Connection, owner: Option<&str>) -> Result<Vec<ThreadView>, Error> {
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

/// Opens `owner`'s thread on `intent` and offers `inbox.thread_created` to the owner's
/// subscriptions. An existing thread is only touched.
pub fn open(conn: &Connection, intent: &IntentRow, owner: &str, role: &str) -> Result<(), Error> {
    let created = threads::open(conn, owner, &intent.intent_id, role, &clock::now_rfc3339())?;
    let kind = if created {
        "inbox.thread_created"
    } else {
        "inbox.thread_updated"
    };
    if let Some(t) = threads::get(conn, owner, &intent.intent_id)? {
        offer(conn, &t, intent, kind, None)?;
    }
    Ok(())
}

/// Runs after every event appended to an intent: its threads change. Cheap when the intent
/// has none (one index probe).
pub fn on_event(conn: &Connection, intent: &IntentRow, event: &EventRow) -> Result<(), Error> {
    let owners = threads::touch_intent(conn, &intent.intent_id, &event.at)?;
    for owner in owners {
        if let Some(t) = threads::get(conn, &owner, &intent.intent_id)? {
            offer(
                conn,
                &t,
                intent,
                "inbox.thread_updated",
                Some(json!({"event_type": event.event_type, "seq": event.seq})),
            )?;
        }
    }
    Ok(())
}

/// Opens the threads a new intent has: its handler's when the handler is an `inbox` agent or
/// the intent carries a human task, and the task's `agent://` assignees'.
pub fn on_create(conn: &Connection, intent: &IntentRow) -> Result<(), Error> {
    if intent.to_agent == crate::runtime::builtin::APPROVAL {
        // The approval agent opens the task in the approver's inbox when it takes the intent.
        return Ok(());
    }
    if let Some(task) = &intent.human_task {
        open(conn, intent, &intent.to_agent, "task")?;
        let task: Value = serde_json::from_str(task)?;
        for a in task["assignees"].as_array().into_iter().flatten() {
            if let Some(addr) = a.as_str().filter(|s| s.starts_with("agent://")) {
                if addr != intent.to_agent {
                    open(conn, intent, addr, "task")?;
                }
            }
        }
    } else if agents::get(conn, &intent.to_agent)?.is_some_and(|a| a.delivery_mode == "inbox") {
        open(conn, intent, &intent.to_agent, "handler")?;
    }
    Ok(())
}

/// Offers a thread change to the owner's webhook subscriptions that want `kind`.
fn offer(
    conn: &Connection,
    t: &ThreadRow,
    intent: &IntentRow,
    kind: &str,
    extra: Option<Value>,
) -> Result<(), Error> {
    let mut payload = json!({
        "thread_id": t.intent_id,
        "intent_id": t.intent_id,
        "owner_agent": t.owner_agent,
        "role": t.role,
        "status": thread_status(t, intent),
        "intent_status": intent.status.as_str(),
        "from_agent": intent.from_agent,
        "to_agent": intent.to_agent,
        "updated_at": t.updated_at,
    });
    if let Some(Value::Object(extra)) = extra {
        for (k, v) in extra {
            payload[k] = v;
        }
    }
    subscriptions::emit(conn, &t.owner_agent, kind, "axme/inbox", &payload)?;
    Ok(())
}

fn post(
    conn: &Connection,
    intent: &IntentRow,
    kind: &str,
    author: &str,
    body: Value,
) -> Result<MessageRow, Error> {
    let m = MessageRow {
        message_id: uuid::Uuid::now_v7().to_string(),
        intent_id: intent.intent_id.clone(),
        kind: kind.to_string(),
        author: author.to_string(),
        body: serde_json::to_string(&body)?,
        hidden_for: "[]".to_string(),
        deleted_at: None,
        at: clock::now_rfc3339(),
    };
    threads::insert_message(conn, &m)?;
    Ok(m)
}

/// `POST /v1/inbox/{id}/reply`: posts a message on the conversation; every other owner of the
/// intent gets `inbox.reply_received`.
pub fn reply(
    conn: &Connection,
    owner: Option<&str>,
    thread_id: &str,
    message: &str,
) -> Result<ThreadView, Error> {
    let t = find(conn, owner, thread_id, false)?;
    let intent = ops::get(conn, thread_id)?;
    let m = post(
        conn,
        &intent,
        "reply",
        &t.owner_agent,
        json!({"message": message}),
    )?;
    let owners = threads::touch_intent(conn, thread_id, &m.at)?;
    for o in owners {
        let Some(other) = threads::get(conn, &o, thread_id)? else {
            continue;
        };
        let extra = json!({"message_id": m.message_id, "author": m.author, "message": message});
        offer(conn, &other, &intent, "inbox.thread_updated", None)?;
        if o != t.owner_agent {
            offer(conn, &other, &intent, "inbox.reply_received", Some(extra))?;
        }
    }
    // The author has read what they wrote.
    threads::set_read(conn, &t.owner_agent, thread_id, &m.at)?;
    let t = threads::get(conn, &t.owner_agent, thread_id)?.ok_or_else(|| not_found(thread_id))?;
    view(conn, t)
}

/// `POST /v1/inbox/{id}/read`.
pub fn read(conn: &Connection, owner: Option<&str>, thread_id: &str) -> Result<ThreadView, Error> {
    let t = find(conn, owner, thread_id, false)?;
    threads::set_read(conn, &t.owner_agent, thread_id, &clock::now_rfc3339())?;
    let t = threads::get(conn, &t.owner_agent, thread_id)?.ok_or_else(|| not_found(thread_id))?;
    view(conn, t)
}

/// `POST /v1/inbox/{id}/delegate`: hands the intent to another address. The intent is
/// re-addressed (`intent.transfer`), the new handler gets a thread (a task when the delegated
/// thread was one), and the delegation note is posted.
pub fn delegate(
    conn: &Connection,
    owner: Option<&str>,
    thread_id: &str,
    delegate_to: &str,
    note: Option<&str>,
) -> Result<ThreadView, Error> {
    let t = find(conn, owner, thread_id, true)?;
    let mut intent = ops::get(conn, thread_id)?;
    if intent.status.is_terminal() {
        return Err(Error::conflict(
            "intent_terminal",
            format!("the intent is {} and cannot be delegated", intent.status),
        ));
    }
    if delegate_to == t.owner_agent {
        return Err(Error::invalid(
            "delegate_to",
            "names the thread's own owner; delegate to someone else",
        ));
    }
    let from = intent.to_agent.clone();
    intent.to_agent = delegate_to.to_string();
    let mut details = json!({"from": from, "to": delegate_to, "delegated_by": t.owner_agent});
    if let Some(n) = note {
        details["note"] = json!(n);
    }
    let mut body = json!({"delegate_to": delegate_to});
    if let Some(n) = note {
        body["note"] = json!(n);
    }
    post(conn, &intent, "delegation", &t.owner_agent, body)?;
    ops::note(
        conn,
        &mut intent,
        crate::model::event_type::TRANSFER,
        &t.owner_agent,
        details,
    )?;
    let role = if TASK_ROLES.contains(&t.role.as_str()) {
        "delegate"
    } else {
        "handler"
    };
    open(conn, &intent, delegate_to, role)?;
    if TASK_ROLES.contains(&t.role.as_str()) {
        // The task is handed off: it leaves the delegator's tasks, and only the delegate (or
        // an admin) decides it now. The delegator keeps the thread and its history.
        threads::set_role(conn, &t.owner_agent, thread_id, "delegated")?;
    }
    let t = threads::get(conn, &t.owner_agent, thread_id)?.ok_or_else(|| not_found(thread_id))?;
    view(conn, t)
}

/// An approve or reject decision on a human task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Reject,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Reject => "reject",
        }
    }

    /// The spellings a task's `allowed_outcomes` may use for this decision.
    fn outcomes(self) -> [&'static str; 2] {
        match self {
            Decision::Approve => ["approve", "approved"],
            Decision::Reject => ["reject", "rejected"],
        }
    }
}

/// What a decision wrote.
#[derive(Debug, Clone)]
pub struct Decided {
    pub view: ThreadView,
    pub decision: Decision,
    pub comment: Option<String>,
    pub decided_at: String,
}

/// Approves or rejects a waiting human task: approve completes the intent with the decision as
/// its result; reject fails it with code `rejected`. The task's rules hold (422), and only a
/// WAITING intent can be decided (409).
pub fn decide(
    conn: &Connection,
    owner: Option<&str>,
    thread_id: &str,
    decision: Decision,
    comment: Option<&str>,
) -> Result<Decided, Error> {
    let t = find(conn, owner, thread_id, true)?;
    if owner.is_some() && t.role == "delegated" {
        return Err(Error::Forbidden {
            reason: format!(
                "{} delegated this task; only the delegate (or an admin) decides it now",
                t.owner_agent
            ),
        });
    }
    let mut intent = ops::get(conn, thread_id)?;
    if intent.status != Status::Waiting {
        return Err(Error::conflict(
            if intent.status.is_terminal() {
                "intent_terminal"
            } else {
                "invalid_transition"
            },
            format!(
                "only a WAITING task can be decided; this intent is {}",
                intent.status
            ),
        ));
    }
    if intent.waiting_reason != Some(WaitingReason::Human) {
        // Waiting for a tool, an agent or time is its handler's business, not a decision's.
        return Err(Error::conflict(
            "invalid_transition",
            format!(
                "only a task waiting for a person can be decided; this intent is {}",
                intent
                    .waiting_reason
                    .map(|w| w.as_str())
                    .unwrap_or("WAITING")
            ),
        ));
    }
    if let Some(task) = &intent.human_task {
        let task: Value = serde_json::from_str(task)?;
        if let Some(allowed) = task["allowed_outcomes"].as_array() {
            let ok = allowed
                .iter()
                .any(|a| a.as_str().is_some_and(|a| decision.outcomes().contains(&a)));
            if !ok {
                let list: Vec<&str> = allowed.iter().filter_map(Value::as_str).collect();
                return Err(Error::invalid(
                    "decision",
                    format!(
                        "{} is not an allowed outcome of this task ({})",
                        decision.as_str(),
                        list.join(", ")
                    ),
                ));
            }
        }
        if task["required_comment"].as_bool() == Some(true)
            && comment.is_none_or(|c| c.trim().is_empty())
        {
            return Err(Error::invalid("comment", "is required by this task"));
        }
    }
    let decider = t.owner_agent.clone();
    let mut record =
        json!({"decision": decision.as_str(), "decided_by": decider, "approval_id": thread_id});
    if let Some(c) = comment {
        record["comment"] = json!(c);
    }
    let m = post(conn, &intent, "decision", &decider, record.clone())?;
    let change = match decision {
        Decision::Approve => {
            let mut c = Change::to(Status::Completed, &decider);
            c.details = json!({"result": record});
            c.result = Some(record);
            c
        }
        Decision::Reject => {
            let error = json!({
                "code": "rejected",
                "message": comment.unwrap_or("the task was rejected"),
                "details": record,
            });
            let mut c = Change::to(Status::Failed, &decider);
            c.details = json!({"error": error});
            c.error = Some(error);
            c
        }
    };
    ops::transition(conn, &mut intent, change)?;
    let t = threads::get(conn, &t.owner_agent, thread_id)?.ok_or_else(|| not_found(thread_id))?;
    Ok(Decided {
        view: view(conn, t)?,
        decision,
        comment: comment.map(str::to_string),
        decided_at: m.at,
    })
}

/// How `messages/delete` deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteMode {
    /// Hidden from this owner's thread only.
    OwnerOnly,
    /// Deleted for every owner; only the author may.
    Everyone,
}

/// `POST /v1/inbox/{id}/messages/delete`: the named messages, or the owner's `limit` newest
/// ones. Intent events are never deleted; only posted messages are.
pub fn delete_messages(
    conn: &Connection,
    owner: Option<&str>,
    thread_id: &str,
    mode: DeleteMode,
    ids: Option<Vec<String>>,
    limit: usize,
) -> Result<(ThreadView, Vec<String>), Error> {
    let t = find(conn, owner, thread_id, false)?;
    let me = t.owner_agent.clone();
    let visible: Vec<MessageRow> = threads::messages(conn, thread_id)?
        .into_iter()
        .filter(|m| m.deleted_at.is_none() && !hidden_for(m, &me))
        .collect();
    let chosen: Vec<MessageRow> = match ids {
        Some(ids) => {
            // An id named twice is one message: deleted and counted once.
            let mut named = std::collections::HashSet::new();
            ids.iter()
                .filter(|id| named.insert(id.as_str()))
                .map(|id| {
                    visible
                        .iter()
                        .find(|m| m.message_id == *id)
                        .cloned()
                        .ok_or_else(|| Error::NotFound {
                            what: "message",
                            id: id.clone(),
                        })
                })
                .collect::<Result<_, _>>()?
        }
        None => visible
            .iter()
            .rev()
            .filter(|m| mode == DeleteMode::OwnerOnly || m.author == me)
            .take(limit)
            .cloned()
            .collect(),
    };
    let now = clock::now_rfc3339();
    let mut deleted = Vec::with_capacity(chosen.len());
    for mut m in chosen {
        match mode {
            DeleteMode::Everyone => {
                if m.author != me {
                    return Err(Error::Forbidden {
                        reason: format!(
                            "message {} was written by {}; only its author may delete it for everyone",
                            m.message_id, m.author
                        ),
                    });
                }
                m.deleted_at = Some(now.clone());
            }
            DeleteMode::OwnerOnly => {
                let mut hidden: Vec<String> = serde_json::from_str(&m.hidden_for)?;
                hidden.push(me.clone());
                m.hidden_for = serde_json::to_string(&hidden)?;
            }
        }
        threads::update_message_visibility(conn, &m)?;
        deleted.push(m.message_id);
    }
    if !deleted.is_empty() {
        match mode {
            DeleteMode::Everyone => {
                threads::touch_intent(conn, thread_id, &now)?;
            }
            DeleteMode::OwnerOnly => {
                threads::open(conn, &me, thread_id, &t.role, &now)?;
            }
        }
    }
    let t = threads::get(conn, &me, thread_id)?.ok_or_else(|| not_found(thread_id))?;
    Ok((view(conn, t)?, deleted))
}

/// Puts an intent that FAILED because it could not be delivered (`delivery_failed`: attempts
/// exhausted by leases or pushes) back in its handler's queue: SUBMITTED again with a fresh
/// attempt budget (`intent.submitted`, details `redrive: true`). This is the one way out of a
/// terminal status, and only for that failure.
pub fn redrive(conn: &Connection, intent_id: &str, actor: &str) -> Result<ops::Changed, Error> {
    let mut intent = ops::get(conn, intent_id)?;
    let code = intent
        .error
        .as_deref()
        .and_then(|e| serde_json::from_str::<Value>(e).ok())
        .and_then(|e| e["code"].as_str().map(str::to_string));
    if intent.status != Status::Failed || code.as_deref() != Some("delivery_failed") {
        return Err(Error::conflict(
            "not_redrivable",
            format!(
                "only an intent that FAILED with delivery_failed can be redriven; this one is {}{}",
                intent.status,
                code.map(|c| format!(" ({c})")).unwrap_or_default()
            ),
        ));
    }
    let previous = intent.delivery_attempt;
    intent.delivery_attempt = 0;
    intent.error = None;
    let event = ops::redrive_transition(
        conn,
        &mut intent,
        actor,
        json!({"redrive": true, "previous_attempts": previous}),
    )?;
    Ok(ops::Changed {
        intent,
        events: vec![event],
        completion: None,
    })
}
