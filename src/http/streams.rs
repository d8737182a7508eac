//! The pull bindings over HTTP: an intent's events as SSE and long poll (observers), and the
//! agent feed as SSE and long poll (handlers). The firehose of all events is `firehose`.

use std::time::Duration;

use hyper::header::HeaderMap;
use hyper::Response;
use serde::Serialize;
use serde_json::json;

use super::response::{self, Body};
use super::sse::{self, Fetched, Frame, Source, StreamOptions};
use super::wire;
use super::{request, Ctx};
use crate::model::Status;
use crate::service::access::Access;
use crate::service::{agents, feed, intents};
use crate::store::events::EventRow;
use crate::store::notify::Topic;
use crate::store::Store;
use crate::Error;

type Result<T = Response<Body>> = std::result::Result<T, Error>;

/// `wait_seconds` of a stream or long poll: 1–60.
pub(super) fn wait_seconds(ctx: &Ctx) -> Result<Option<Duration>> {
    Ok(ctx
        .query
        .int("wait_seconds", 1, 60)?
        .map(|s| Duration::from_secs(s as u64)))
}

/// The starting cursor: `Last-Event-ID` overrides `since`.
pub(super) fn start_cursor(ctx: &Ctx) -> Result<i64> {
    if let Some(v) = last_event_id(&ctx.headers)? {
        return Ok(v);
    }
    Ok(ctx.query.int("since", 0, i64::MAX)?.unwrap_or(0))
}

fn last_event_id(headers: &HeaderMap) -> Result<Option<i64>> {
    let Some(v) = headers.get("last-event-id") else {
        return Ok(None);
    };
    v.to_str()
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .filter(|n| *n >= 0)
        .map(Some)
        .ok_or_else(|| Error::BadRequest {
            field: "Last-Event-ID".into(),
            reason: "must be a non-negative integer cursor".into(),
        })
}

pub(super) fn event_json(e: &EventRow) -> Result<String> {
    Ok(serde_json::to_string(&wire::Event::from_row(e)?)?)
}

// --- Observers: one intent's events -------------------------------------------------------

struct IntentEvents {
    intent_id: String,
    shared: std::sync::Arc<sse::SharedReads<Fetched>>,
}

impl Source for IntentEvents {
    async fn check_cursor(
        &mut self,
        store: &Store,
        cursor: i64,
    ) -> Result<Option<(serde_json::Value, i64)>> {
        let intent = intents::current(store, &self.intent_id).await?;
        Ok((cursor > intent.last_seq).then(|| {
            (
                json!({"reason": "cursor_ahead", "since": cursor, "latest": intent.last_seq}),
                intent.last_seq,
            )
        }))
    }

    async fn fetch(&mut self, store: &Store, cursor: i64) -> Result<Fetched> {
        let key = format!(
            "intent {} {cursor} {}",
            self.intent_id,
            store.commit_generation()
        );
        let id = self.intent_id.clone();
        self.shared
            .fetch(key, || read_intent_events(store.clone(), id, cursor))
            .await
    }

    fn topic(&self) -> Topic {
        Topic::Intent(self.intent_id.clone())
    }
}

/// An intent's events after `cursor`, as frames.
async fn read_intent_events(store: Store, id: String, cursor: i64) -> Result<Fetched> {
    {
        let (terminal, rows) = intents::stream_page(&store, &id, cursor).await?;
        let frames = rows
            .iter()
            .map(|e| {
                Ok(Frame::new(
                    e.seq,
                    &e.event_type,
                    &event_json(e)?,
                    e.status.is_terminal(),
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Fetched {
            more: frames.len() == intents::EVENTS_PAGE_MAX,
            cursor,
            frames,
            finished: terminal,
        })
    }
}

/// `GET /v1/intents/{id}/events/stream?since=&wait_seconds=`.
pub async fn intent_events_stream(ctx: Ctx) -> Result {
    let id = request::intent_id(ctx.param(0))?;
    let cursor = start_cursor(&ctx)?;
    let wait = wait_seconds(&ctx)?;
    let access = Access::of(&ctx.principal);
    intents::read(&ctx.state.store, &access, &id).await?;
    sse::start(
        &ctx.state,
        IntentEvents {
            intent_id: id,
            shared: ctx.state.shared_reads.clone(),
        },
        cursor,
        StreamOptions {
            wait,
            key_id: ctx.principal.key_id.clone(),
            capped: !ctx.principal.is_admin(),
            hangup: ctx.hangup.clone(),
            wait_bounds_response: false,
        },
    )
}

/// `GET /v1/intents/{id}/events?since=&wait_seconds=`: a page of events, held up to
/// `wait_seconds` when there is none yet.
pub async fn intent_events(ctx: Ctx) -> Result {
    let id = request::intent_id(ctx.param(0))?;
    let since = ctx.query.int("since", 0, i64::MAX)?.unwrap_or(0);
    let access = Access::of(&ctx.principal);
    if !access.is_admin() {
        intents::read(&ctx.state.store, &access, &id).await?;
    }
    // Long polls woken by the same commit share one read (see `sse::SharedReads`).
    let shared = ctx.state.shared_events.clone();
    let read = |store: Store, id: String| {
        let shared = shared.clone();
        async move {
            let key = format!("{id} {since} {}", store.commit_generation());
            let rows = shared
                .fetch(
                    key,
                    || async move { intents::events(&store, &id, since).await },
                )
                .await?;
            Ok((!rows.is_empty()).then_some(rows))
        }
    };
    let rows = match wait_seconds(&ctx)? {
        None => read(ctx.state.store.clone(), id).await?.unwrap_or_default(),
        Some(wait) => {
            let store = ctx.state.store.clone();
            let found = sse::long_poll(
                &ctx.state,
                &ctx.principal,
                wait,
                Topic::Intent(id.clone()),
                None,
                || read(store.clone(), id.clone()),
            )
            .await?;
            found.unwrap_or_default()
        }
    };
    response::ok(&wire::EventList {
        ok: true,
        events: wire::Event::list(&rows)?,
    })
}

// --- Handlers: the agent feed ----------------------------------------------------------------

/// An agent feed item: the intent as it is now, with the feed cursor and the event that put it
/// in the feed.
#[derive(Serialize)]
struct FeedItem<'a> {
    #[serde(flatten)]
    intent: wire::Intent<'a>,
    seq: i64,
    event_type: &'a str,
}

fn feed_item_json(item: &feed::FeedItem) -> Result<String> {
    Ok(serde_json::to_string(&FeedItem {
        intent: wire::Intent::from_row(&item.intent)?,
        seq: item.event.event_id,
        event_type: &item.event.event_type,
    })?)
}

/// `status=A,B`: only items whose intent is now in one of these statuses.
fn status_filter(ctx: &Ctx) -> Result<Option<Vec<Status>>> {
    let Some(raw) = ctx.query.get("status") else {
        return Ok(None);
    };
    raw.split(',')
        .map(|s| {
            Status::parse(s.trim()).ok_or_else(|| {
                Error::invalid(
                    "status",
                    format!("unknown status {s:?}; use e.g. SUBMITTED,DELIVERED"),
                )
            })
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

struct AgentFeed {
    address: String,
    statuses: Option<Vec<Status>>,
    actor: String,
    via: &'static str,
    /// Items a stream reads at once: about one stream buffer of the largest intents, so that a
    /// page held by a stalled stream weighs no more than its queue.
    stream_page: usize,
}

impl AgentFeed {
    async fn page(&self, store: &Store, cursor: i64, limit: usize) -> Result<feed::FeedPage> {
        feed::page(
            store,
            &self.address,
            cursor,
            limit,
            self.statuses.as_deref(),
        )
        .await
    }

    /// The first hand-over of a submission marks its intent DELIVERED, and the items show it as
    /// it is after that. A failed marking leaves the items as read (the intents stay SUBMITTED,
    /// and the next read hands them over again).
    async fn hand_over(&self, store: &Store, page: &mut feed::FeedPage) {
        let submitted = feed::handed_over(page);
        if submitted.is_empty() {
            return;
        }
        match feed::hand_over(store, submitted, &self.actor, self.via).await {
            Ok(after) => feed::show_handed_over(page, after),
            Err(e) => tracing::warn!(error = %e, "marking handed-over intents DELIVERED failed"),
        }
    }
}

/// A global-log cursor beyond the end of the log gets a reset to the end.
pub(super) async fn log_cursor_check(
    store: &Store,
    cursor: i64,
) -> Result<Option<(serde_json::Value, i64)>> {
    let end = feed::end(store).await?;
    Ok((cursor > end).then(|| {
        (
            json!({"reason": "cursor_ahead", "since": cursor, "latest": end}),
            end,
        )
    }))
}

impl Source for AgentFeed {
    async fn check_cursor(
        &mut self,
        store: &Store,
        cursor: i64,
    ) -> Result<Option<(serde_json::Value, i64)>> {
        log_cursor_check(store, cursor).await
    }

    async fn fetch(&mut self, store: &Store, cursor: i64) -> Result<Fetched> {
        let mut page = self.page(store, cursor, self.stream_page).await?;
        // Marked before the items go out, so no handler sees an intent it was handed that
        // does not yet say DELIVERED.
        self.hand_over(store, &mut page).await;
        let frames = page
            .items
            .iter()
            .map(|item| {
                Ok(Frame::new(
                    item.event.event_id,
                    &item.event.event_type,
                    &feed_item_json(item)?,
                    false,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Fetched {
            frames,
            cursor: page.scanned_to,
            more: page.more,
            finished: false,
        })
    }

    fn topic(&self) -> Topic {
        Topic::Agent(self.address.clone())
    }
}

fn agent_feed(ctx: &Ctx, via: &'static str) -> Result<AgentFeed> {
    Ok(AgentFeed {
        address: {
            let address = agents::path_address(ctx.param(0))?;
            Access::of(&ctx.principal).require(&address, "reading the feed of")?;
            address
        },
        statuses: status_filter(ctx)?,
        actor: ctx.principal.address(),
        via,
        stream_page: (ctx.state.streams.buffer_bytes / ctx.state.limits.max_payload_bytes.max(1))
            .clamp(1, feed::PAGE),
    })
}

/// `GET /v1/agents/{address}/intents/stream?since=&wait_seconds=&status=`.
pub async fn agent_feed_stream(ctx: Ctx) -> Result {
    let source = agent_feed(&ctx, "stream")?;
    let cursor = start_cursor(&ctx)?;
    let wait = wait_seconds(&ctx)?;
    sse::start(
        &ctx.state,
        source,
        cursor,
        StreamOptions {
            wait,
            key_id: ctx.principal.key_id.clone(),
            capped: !ctx.principal.is_admin(),
            hangup: ctx.hangup.clone(),
            wait_bounds_response: true,
        },
    )
}

#[derive(Serialize)]
struct FeedPoll {
    ok: bool,
    intents: Vec<Box<serde_json::value::RawValue>>,
    next_since: i64,
}

/// `GET /v1/agents/{address}/intents?since=&limit=&wait_seconds=&status=`.
pub async fn agent_feed_poll(ctx: Ctx) -> Result {
    let source = agent_feed(&ctx, "poll")?;
    let since = ctx.query.int("since", 0, i64::MAX)?.unwrap_or(0);
    let limit = ctx.query.int("limit", 1, feed::PAGE as i64)?.unwrap_or(100) as usize;
    let store = ctx.state.store.clone();
    let scanned = std::sync::atomic::AtomicI64::new(since);
    let read = || async {
        let page = source.page(&store, since, limit).await?;
        scanned.store(page.scanned_to, std::sync::atomic::Ordering::Relaxed);
        Ok((!page.items.is_empty()).then_some(page))
    };
    let page = match wait_seconds(&ctx)? {
        None => read().await?,
        Some(wait) => {
            sse::long_poll(&ctx.state, &ctx.principal, wait, source.topic(), None, read).await?
        }
    };
    let Some(mut page) = page else {
        return response::ok(&FeedPoll {
            ok: true,
            intents: Vec::new(),
            next_since: scanned.load(std::sync::atomic::Ordering::Relaxed),
        });
    };
    source.hand_over(&store, &mut page).await;
    let items = page
        .items
        .iter()
        .map(|i| {
            Ok(serde_json::value::RawValue::from_string(feed_item_json(
                i,
            )?)?)
        })
        .collect::<Result<Vec<_>>>()?;
    response::ok(&FeedPoll {
        ok: true,
        intents: items,
        next_since: page.scanned_to,
    })
}
