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

use crate::store::Tx;
use serde_json::{json, Value};

use super::effects;
use super::history::{Change, Changed};
use super::inbox_view::{find, hidden_for, not_found, view, ThreadView};
use super::intents as ops;
use super::thread_hooks::{offer, open, TASK_ROLES};
use crate::clock;
use crate::model::{Status, WaitingReason};
use crate::store::intents::IntentRow;
use crate::store::threads::{self, MessageRow};
use crate::Error;

fn post(
    conn: &Tx,
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
    conn: &Tx,
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
pub fn read(conn: &Tx, owner: Option<&str>, thread_id: &str) -> Result<ThreadView, Error> {
    let t = find(conn, owner, thread_id, false)?;
    threads::set_read(conn, &t.owner_agent, thread_id, &clock::now_rfc3339())?;
    let t = threads::get(conn, &t.owner_agent, thread_id)?.ok_or_else(|| not_found(thread_id))?;
    view(conn, t)
}

/// `POST /v1/inbox/{id}/delegate`: hands the intent to another address. The intent is
/// re-addressed (`intent.transfer`), the new handler gets a thread (a task when the delegated
/// thread was one), and the delegation note is posted.
pub fn delegate(
    conn: &Tx,
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
    effects::note(
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
/// WAITING intent can be decided (409). A delegated task is decided by its delegate: the
/// delegator's own key is refused (403); the `operator` (an admin key, which may act for every
/// owner) decides it under any owner scope, and the decision is recorded as that owner's.
pub fn decide(
    conn: &Tx,
    owner: Option<&str>,
    operator: bool,
    thread_id: &str,
    decision: Decision,
    comment: Option<&str>,
) -> Result<Decided, Error> {
    let t = find(conn, owner, thread_id, true)?;
    if owner.is_some() && !operator && t.role == "delegated" {
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
    effects::transition(conn, &mut intent, change)?;
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
    conn: &Tx,
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
    // Every message is checked before any is changed: a refusal writes nothing.
    let foreign = chosen.iter().find(|m| m.author != me);
    if let (DeleteMode::Everyone, Some(m)) = (mode, foreign) {
        return Err(Error::Forbidden {
            reason: format!(
                "message {} was written by {}; only its author may delete it for everyone",
                m.message_id, m.author
            ),
        });
    }
    let now = clock::now_rfc3339();
    let mut deleted = Vec::with_capacity(chosen.len());
    for mut m in chosen {
        match mode {
            DeleteMode::Everyone => m.deleted_at = Some(now.clone()),
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
pub fn redrive(
    conn: &Tx,
    intent_id: &str,
    actor: &str,
    by: Option<&str>,
) -> Result<Changed, Error> {
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
    let mut details = json!({"redrive": true, "previous_attempts": previous});
    ops::vouch(&mut details, actor, by);
    let event = effects::redrive(conn, &mut intent, actor, details)?;
    Ok(Changed {
        intent,
        events: vec![event],
        completion: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::deliveries::{self, Verdict};
    use crate::service::testing::{self, pushed, task, BOB, HANDLER};

    #[test]
    fn a_decision_outside_the_tasks_rules_is_422_and_writes_nothing() {
        let conn = testing::db();
        let tx = Tx::sqlite(&conn);
        let id = task(
            &tx,
            json!({"allowed_outcomes": ["approved"], "required_comment": true}),
        );
        let before = conn.total_changes();
        let as_handler = |d, c| decide(&tx, Some(HANDLER), false, &id, d, c);
        let e = as_handler(Decision::Reject, Some("no")).expect_err("outcome");
        assert!(e.to_string().starts_with("decision:"), "{e}");
        let e = as_handler(Decision::Approve, Some(" ")).expect_err("comment");
        assert!(e.to_string().starts_with("comment:"), "{e}");
        assert_eq!(conn.total_changes(), before);
        let d = as_handler(Decision::Approve, Some("ok")).expect("approved");
        assert_eq!(
            (d.view.intent.status, d.view.messages.len()),
            (Status::Completed, 1)
        );
    }

    /// Broke: deleting for everyone a list whose later message was another's hid the earlier
    /// ones before answering 403, so the failed job had written and its whole batch rolled back.
    #[test]
    fn r_delete_for_everyone_with_anothers_message_is_403_and_writes_nothing() {
        let conn = testing::db();
        let tx = Tx::sqlite(&conn);
        let id = task(&tx, json!({}));
        delegate(&tx, Some(HANDLER), &id, BOB, None).expect("delegated");
        let mine = reply(&tx, Some(BOB), &id, "mine").expect("reply").messages;
        let ids: Vec<String> = mine.iter().rev().map(|m| m.message_id.clone()).collect();
        let before = conn.total_changes();
        let e = delete_messages(
            &tx,
            Some(BOB),
            &id,
            DeleteMode::Everyone,
            Some(ids.clone()),
            9,
        );
        assert_eq!(
            (e.expect_err("not all mine").code(), conn.total_changes()),
            ("forbidden", before)
        );
        let hidden = delete_messages(&tx, Some(BOB), &id, DeleteMode::OwnerOnly, Some(ids), 9);
        let (v, gone) = hidden.expect("hidden");
        assert_eq!((gone.len(), v.messages.len()), (2, 0));
    }

    #[test]
    fn only_an_intent_that_failed_delivery_is_redriven() {
        let conn = testing::db();
        let tx = Tx::sqlite(&conn);
        let (i, d) = pushed(&tx, 1);
        let before = conn.total_changes();
        let e = redrive(&tx, &i.intent_id, HANDLER, None).expect_err("live");
        assert_eq!((e.code(), conn.total_changes()), ("not_redrivable", before));
        let outcome = testing::outcome(1, Verdict::Permanent, None);
        deliveries::record(&tx, &d, outcome, &testing::policy()).expect("dead");
        let changed = redrive(&tx, &i.intent_id, HANDLER, None).expect("redriven");
        assert_eq!(
            (changed.intent.status, changed.intent.error),
            (Status::Submitted, None)
        );
        assert_eq!(
            testing::deliveries(&tx, Some(&i.intent_id)).len(),
            2,
            "a fresh push"
        );
    }
}
