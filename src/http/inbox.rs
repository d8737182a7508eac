//! Handlers of the AXME inbox family (`/v1/inbox...`, `/v1/approvals/{id}/decision`,
//! `/v1/me/tasks`) and of the redrive extension. The owner scope comes from `x-owner-agent` or
//! `owner_agent`; without one an admin key sees every owner's threads.

use hyper::body::Incoming;
use hyper::Response;
use serde::Serialize;
use serde_json::Value;

use super::request;
use super::response::{self, from_rendered, Body};
use super::wire;
use super::Ctx;
use crate::service::idempotency::{write_once, Rendered};
use crate::service::inbox::{self, Decided, Decision, DeleteMode};
use crate::service::inbox_view::{self, ThreadView};
use crate::service::validate::{self, Fields};
use crate::Error;

type Result = std::result::Result<Response<Body>, Error>;

#[derive(Serialize)]
struct ThreadEnvelope<'a> {
    ok: bool,
    thread: wire::Thread<'a>,
}

#[derive(Serialize)]
struct ThreadList<'a> {
    ok: bool,
    threads: Vec<wire::Thread<'a>>,
}

#[derive(Serialize)]
struct Change<'a> {
    cursor: String,
    thread: wire::Thread<'a>,
}

#[derive(Serialize)]
struct Changes<'a> {
    ok: bool,
    changes: Vec<Change<'a>>,
    next_cursor: Option<String>,
    has_more: bool,
}

#[derive(Serialize)]
struct Tasks<'a> {
    ok: bool,
    tasks: Vec<wire::Task<'a>>,
}

#[derive(Serialize)]
struct Deleted<'a> {
    ok: bool,
    thread: wire::Thread<'a>,
    mode: &'static str,
    deleted_count: usize,
    message_ids: &'a [String],
}

#[derive(Serialize)]
struct Approval<'a> {
    approval_id: &'a str,
    decision: &'static str,
    comment: Option<&'a str>,
    decided_at: &'a str,
}

#[derive(Serialize)]
struct ApprovalEnvelope<'a> {
    ok: bool,
    approval: Approval<'a>,
}

/// The owner scope, checked against the key: an agent key acts only as one of its addresses
/// (its first when none is given); an admin key without a scope sees every owner.
fn owner(ctx: &Ctx) -> std::result::Result<Option<String>, Error> {
    crate::service::access::Access::of(&ctx.principal)
        .owner_scope(request::owner_agent(&ctx.headers, &ctx.query)?)
}

/// The idempotency endpoint of a write: its path under the owner scope, so that one key sent
/// for two owners is two requests (each acts on, and answers with, its own owner's thread).
fn endpoint(path: String, owner: Option<&str>) -> String {
    match owner {
        Some(o) => format!("{path}?owner_agent={o}"),
        None => path,
    }
}

fn render_thread(v: &ThreadView) -> std::result::Result<Rendered, Error> {
    response::render(&ThreadEnvelope {
        ok: true,
        thread: wire::Thread::from_view(v)?,
    })
}

/// The cursor of the changes feed: `c_<change id>`.
fn parse_cursor(raw: Option<&str>) -> std::result::Result<i64, Error> {
    match raw {
        None | Some("") => Ok(0),
        Some(c) => c
            .strip_prefix("c_")
            .and_then(|n| n.parse::<i64>().ok())
            .filter(|n| *n >= 0)
            .ok_or_else(|| Error::BadRequest {
                field: "cursor".into(),
                reason: "is not a cursor this server gave out (expected c_<number>)".into(),
            }),
    }
}

/// `GET /v1/inbox?status=&limit=`.
pub async fn list(ctx: Ctx) -> Result {
    let owner = owner(&ctx)?;
    let status = match ctx.query.get("status") {
        None => None,
        Some(s @ ("pending" | "active" | "done")) => Some(s.to_string()),
        Some(_) => {
            return Err(Error::invalid(
                "status",
                "must be one of pending, active, done",
            ))
        }
    };
    let limit = ctx
        .query
        .int("limit", 1, inbox_view::LIST_MAX as i64)?
        .unwrap_or(50) as usize;
    let views = ctx
        .state
        .store
        .read(move |c| inbox_view::list(c, owner.as_deref(), status.as_deref(), limit))
        .await?;
    response::ok(&ThreadList {
        ok: true,
        threads: views
            .iter()
            .map(wire::Thread::from_view)
            .collect::<std::result::Result<_, _>>()?,
    })
}

/// `GET /v1/inbox/changes?cursor=&limit=`.
pub async fn changes(ctx: Ctx) -> Result {
    let owner = owner(&ctx)?;
    let after = parse_cursor(ctx.query.get("cursor"))?;
    let limit = ctx
        .query
        .int("limit", 1, inbox_view::LIST_MAX as i64)?
        .unwrap_or(50) as usize;
    let (rows, more) = ctx
        .state
        .store
        .read(move |c| inbox_view::changes(c, owner.as_deref(), after, limit))
        .await?;
    let next_cursor = match rows.last() {
        Some((id, _)) => Some(format!("c_{id}")),
        None if after > 0 => Some(format!("c_{after}")),
        None => None,
    };
    response::ok(&Changes {
        ok: true,
        changes: rows
            .iter()
            .map(|(id, v)| {
                Ok(Change {
                    cursor: format!("c_{id}"),
                    thread: wire::Thread::from_view(v)?,
                })
            })
            .collect::<std::result::Result<_, Error>>()?,
        next_cursor,
        has_more: more,
    })
}

/// `GET /v1/inbox/{thread_id}`.
pub async fn get(ctx: Ctx) -> Result {
    let owner = owner(&ctx)?;
    let id = thread_id(&ctx)?;
    let v = ctx
        .state
        .store
        .read(move |c| {
            let t = inbox_view::find(c, owner.as_deref(), &id, false)?;
            inbox_view::view(c, t)
        })
        .await?;
    Ok(from_rendered(render_thread(&v)?))
}

fn thread_id(ctx: &Ctx) -> std::result::Result<String, Error> {
    validate::uuid("thread_id", ctx.param(0)).map_err(|_| Error::NotFound {
        what: "thread",
        id: ctx.param(0).to_string(),
    })
}

/// The shared path of every thread action: parse, scope, idempotency, one write.
async fn act<T: Send + 'static>(
    ctx: Ctx,
    body: Incoming,
    action: &str,
    parse: impl FnOnce(&Value) -> std::result::Result<T, Error>,
    run: impl FnOnce(&crate::store::Tx, Option<&str>, &str, T) -> std::result::Result<ThreadView, Error>
        + Send
        + 'static,
) -> Result {
    let id = thread_id(&ctx)?;
    let owner = owner(&ctx)?;
    let body = match ctx.json(body).await? {
        Value::Null => Value::Object(Default::default()),
        b => b,
    };
    let input = parse(&body)?;
    let scope = ctx.idempotency(
        endpoint(format!("POST /v1/inbox/{id}/{action}"), owner.as_deref()),
        &body,
    )?;
    let rendered = write_once(
        &ctx.state.store,
        scope,
        move |c| run(c, owner.as_deref(), &id, input),
        render_thread,
    )
    .await?;
    Ok(from_rendered(rendered))
}

/// `POST /v1/inbox/{id}/reply {message}`.
pub async fn reply(ctx: Ctx, body: Incoming) -> Result {
    act(ctx, body, "reply", reply_body, |c, owner, id, message| {
        inbox::reply(c, owner, id, &message)
    })
    .await
}

/// `POST /v1/inbox/{id}/read {}`.
pub async fn read(ctx: Ctx, body: Incoming) -> Result {
    act(ctx, body, "read", read_body, |c, owner, id, ()| {
        inbox::read(c, owner, id)
    })
    .await
}

/// `POST /v1/inbox/{id}/delegate {delegate_to, note?}`.
pub async fn delegate(ctx: Ctx, body: Incoming) -> Result {
    act(
        ctx,
        body,
        "delegate",
        delegate_body,
        |c, owner, id, (to, note)| inbox::delegate(c, owner, id, &to, note.as_deref()),
    )
    .await
}

// The body readers of the thread actions and of the approvals decision stand apart from their
// handlers so that the fuzz targets reach them (`crate::fuzzing`); `http::inbox` is private, so
// `pub` here means the crate and that module only.

/// `{message}` of a reply.
pub fn reply_body(b: &Value) -> std::result::Result<String, Error> {
    let f = Fields::body(b)?;
    f.deny_unknown(&["message"])?;
    Ok(f.str_req("message", 1, 5000)?.to_string())
}

/// `{}` of a read.
pub fn read_body(b: &Value) -> std::result::Result<(), Error> {
    let f = Fields::body(b)?;
    f.deny_unknown(&[])
}

/// `{delegate_to, note?}` of a delegation.
pub fn delegate_body(b: &Value) -> std::result::Result<(String, Option<String>), Error> {
    let f = Fields::body(b)?;
    f.deny_unknown(&["delegate_to", "note"])?;
    let to = f.address_req("delegate_to")?;
    let note = f.str_opt("note", 0, 2000)?.map(str::to_string);
    Ok((to, note))
}

/// `{comment?}` of an approve or reject, the comment at most `max` characters.
pub fn comment_body(b: &Value, max: usize) -> std::result::Result<Option<String>, Error> {
    let f = Fields::body(b)?;
    f.deny_unknown(&["comment"])?;
    Ok(f.str_opt("comment", 0, max)?.map(str::to_string))
}

/// `{mode, message_ids?, limit?}` of a message deletion.
pub fn delete_messages_body(
    b: &Value,
) -> std::result::Result<(DeleteMode, Option<Vec<String>>, usize), Error> {
    let f = Fields::body(b)?;
    f.deny_unknown(&["mode", "message_ids", "limit"])?;
    let mode = match f.str_req("mode", 1, 10)? {
        "self" => DeleteMode::OwnerOnly,
        "both" => DeleteMode::Everyone,
        _ => return Err(Error::invalid("mode", "must be self or both")),
    };
    let ids = f
        .str_array_opt("message_ids", (1, 100), (1, 200))?
        .map(|v| v.into_iter().map(str::to_string).collect::<Vec<_>>());
    let limit = f.int_opt("limit", 1, 100)?.unwrap_or(1) as usize;
    Ok((mode, ids, limit))
}

/// `{decision, comment?}` of `POST /v1/approvals/{id}/decision`.
pub fn decision_body(b: &Value) -> std::result::Result<(Decision, Option<String>), Error> {
    let f = Fields::body(b)?;
    f.deny_unknown(&["decision", "comment"])?;
    let decision = match f.str_req("decision", 1, 10)? {
        "approve" => Decision::Approve,
        "reject" => Decision::Reject,
        _ => return Err(Error::invalid("decision", "must be approve or reject")),
    };
    let comment = f.str_opt("comment", 0, 1000)?.map(str::to_string);
    Ok((decision, comment))
}

/// Whether the caller is the operator (an admin key), who decides a task its scope's owner
/// delegated (`inbox::decide`).
fn operator(ctx: &Ctx) -> bool {
    crate::service::access::Access::of(&ctx.principal).is_admin()
}

/// `POST /v1/inbox/{id}/approve {comment?}`.
pub async fn approve(ctx: Ctx, body: Incoming) -> Result {
    let operator = operator(&ctx);
    act(
        ctx,
        body,
        "approve",
        |b| comment_body(b, 2000),
        move |c, owner, id, comment| {
            inbox::decide(
                c,
                owner,
                operator,
                id,
                Decision::Approve,
                comment.as_deref(),
            )
            .map(|d| d.view)
        },
    )
    .await
}

/// `POST /v1/inbox/{id}/reject {comment?}`.
pub async fn reject(ctx: Ctx, body: Incoming) -> Result {
    let operator = operator(&ctx);
    act(
        ctx,
        body,
        "reject",
        |b| comment_body(b, 2000),
        move |c, owner, id, comment| {
            inbox::decide(c, owner, operator, id, Decision::Reject, comment.as_deref())
                .map(|d| d.view)
        },
    )
    .await
}

/// `POST /v1/inbox/{id}/messages/delete {mode, message_ids?, limit?}`.
pub async fn delete_messages(ctx: Ctx, body: Incoming) -> Result {
    let id = thread_id(&ctx)?;
    let owner = owner(&ctx)?;
    let body = ctx.json(body).await?;
    let (mode, ids, limit) = delete_messages_body(&body)?;
    let scope = ctx.idempotency(
        endpoint(
            format!("POST /v1/inbox/{id}/messages/delete"),
            owner.as_deref(),
        ),
        &body,
    )?;
    let rendered = write_once(
        &ctx.state.store,
        scope,
        move |c| inbox::delete_messages(c, owner.as_deref(), &id, mode, ids, limit),
        move |(view, deleted)| {
            response::render(&Deleted {
                ok: true,
                thread: wire::Thread::from_view(view)?,
                mode: match mode {
                    DeleteMode::OwnerOnly => "self",
                    DeleteMode::Everyone => "both",
                },
                deleted_count: deleted.len(),
                message_ids: deleted,
            })
        },
    )
    .await?;
    Ok(from_rendered(rendered))
}

/// `POST /v1/approvals/{approval_id}/decision {decision, comment?}`: the approval id is the
/// intent id of the task.
pub async fn decision(ctx: Ctx, body: Incoming) -> Result {
    let id = validate::uuid("approval_id", ctx.param(0)).map_err(|_| Error::NotFound {
        what: "approval",
        id: ctx.param(0).to_string(),
    })?;
    let owner = owner(&ctx)?;
    let operator = operator(&ctx);
    let body = ctx.json(body).await?;
    let (decision, comment) = decision_body(&body)?;
    let scope = ctx.idempotency(
        endpoint(
            format!("POST /v1/approvals/{id}/decision"),
            owner.as_deref(),
        ),
        &body,
    )?;
    let rendered = write_once(
        &ctx.state.store,
        scope,
        move |c| {
            inbox::decide(
                c,
                owner.as_deref(),
                operator,
                &id,
                decision,
                comment.as_deref(),
            )
        },
        |d: &Decided| {
            response::render(&ApprovalEnvelope {
                ok: true,
                approval: Approval {
                    approval_id: &d.view.intent.intent_id,
                    decision: d.decision.as_str(),
                    comment: d.comment.as_deref(),
                    decided_at: &d.decided_at,
                },
            })
        },
    )
    .await?;
    Ok(from_rendered(rendered))
}

/// `GET /v1/me/tasks`: pending human tasks of the owner scope (every owner's, deduplicated,
/// for an admin without one).
pub async fn tasks(ctx: Ctx) -> Result {
    let owner = owner(&ctx)?;
    let all = owner.is_none();
    let mut views = ctx
        .state
        .store
        .read(move |c| inbox_view::tasks(c, owner.as_deref()))
        .await?;
    if all {
        let mut seen = std::collections::HashSet::new();
        views.retain(|v| seen.insert(v.intent.intent_id.clone()));
    }
    let tasks = views
        .iter()
        .map(|v| {
            Ok(wire::Task {
                intent_id: &v.intent.intent_id,
                intent_type: &v.intent.intent_type,
                status: "WAITING",
                from_agent: &v.intent.from_agent,
                assigned_at: &v.thread.created_at,
                due_at: v.intent.deadline_at.as_deref(),
                human_task: inbox_view::task_spec(&v.intent)?,
            })
        })
        .collect::<std::result::Result<_, Error>>()?;
    response::ok(&Tasks { ok: true, tasks })
}
