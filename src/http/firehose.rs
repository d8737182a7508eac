//! The firehose over HTTP: every event of the log after a cursor, as SSE, optionally filtered by
//! intent, handler or correlation id (dashboards, `GET /v1/events/stream`).

use hyper::Response;
use serde::Serialize;

use super::response::Body;
use super::sse::{self, Fetched, Frame, Source, StreamOptions};
use super::streams::{log_cursor_check, start_cursor, wait_seconds};
use super::wire;
use super::{request, Ctx};
use crate::service::access::Access;
use crate::service::{feed, validate};
use crate::store::events::FirehoseFilter;
use crate::store::notify::Topic;
use crate::store::Store;
use crate::Error;

type Result<T = Response<Body>> = std::result::Result<T, Error>;

struct Firehose {
    filter: FirehoseFilter,
    shared: std::sync::Arc<sse::SharedReads<Fetched>>,
}

#[derive(Serialize)]
struct FirehoseEvent<'a> {
    #[serde(flatten)]
    event: wire::Event<'a>,
    event_id: i64,
}

impl Source for Firehose {
    async fn check_cursor(
        &mut self,
        store: &Store,
        cursor: i64,
    ) -> Result<Option<(serde_json::Value, i64)>> {
        log_cursor_check(store, cursor).await
    }

    async fn fetch(&mut self, store: &Store, cursor: i64) -> Result<Fetched> {
        let f = &self.filter;
        let key = format!(
            "firehose {:?} {:?} {:?} {cursor} {}",
            f.intent_id,
            f.to_agent,
            f.correlation_id,
            store.commit_generation()
        );
        let filter = self.filter.clone();
        self.shared
            .fetch(key, || read_firehose(store.clone(), filter, cursor))
            .await
    }

    fn topic(&self) -> Topic {
        match (&self.filter.intent_id, &self.filter.to_agent) {
            (Some(id), _) => Topic::Intent(id.clone()),
            (None, Some(agent)) => Topic::Agent(agent.clone()),
            (None, None) => Topic::All,
        }
    }
}

/// Every event after `cursor` that passes the filter, as frames.
async fn read_firehose(store: Store, filter: FirehoseFilter, cursor: i64) -> Result<Fetched> {
    {
        let rows = feed::firehose_page(&store, cursor, filter, feed::PAGE).await?;
        let frames = rows
            .iter()
            .map(|e| {
                let data = serde_json::to_string(&FirehoseEvent {
                    event: wire::Event::from_row(e)?,
                    event_id: e.event_id,
                })?;
                Ok(Frame::new(e.event_id, &e.event_type, &data, false))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Fetched {
            more: frames.len() == feed::PAGE,
            cursor,
            frames,
            finished: false,
        })
    }
}

/// `GET /v1/events/stream?since=&intent_id=&to_agent=&correlation_id=`.
pub async fn firehose_stream(ctx: Ctx) -> Result {
    let q = &ctx.query;
    let filter = FirehoseFilter {
        intent_id: q.get("intent_id").map(request::intent_id).transpose()?,
        to_agent: q
            .get("to_agent")
            .map(|a| validate::address("to_agent", a))
            .transpose()?,
        correlation_id: q
            .get("correlation_id")
            .map(|v| validate::uuid("correlation_id", v))
            .transpose()?,
    };
    // An agent key follows only its own agents' events, or one intent it may see.
    let access = Access::of(&ctx.principal);
    feed::may_follow(
        &ctx.state.store,
        &access,
        filter.to_agent.as_deref(),
        filter.intent_id.as_deref(),
    )
    .await?;
    let cursor = start_cursor(&ctx)?;
    let wait = wait_seconds(&ctx)?;
    sse::start(
        &ctx.state,
        Firehose {
            filter,
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
