//! The internal binding for observers: a program that embeds the server follows lifecycle events
//! in-process, in commit order, from any position of the event log, without HTTP. It is woken by
//! the same commit notifications as the SSE firehose and reads what is new from its cursor, so it
//! never misses or reorders an event, however slowly it consumes.

use std::collections::VecDeque;

use crate::store::events::{self, EventRow, FirehoseFilter};
use crate::store::notify::{Subscription, Topic};
use crate::store::Store;
use crate::Error;

/// Where a subscription starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum From {
    /// Every event ever written (that is still retained).
    Beginning,
    /// Only events committed after the subscription is made.
    Now,
    /// Events after this event-log position (an `EventRow::event_id`).
    After(i64),
}

/// A live, ordered stream of lifecycle events.
pub struct Events {
    store: Store,
    wake: Subscription,
    filter: FirehoseFilter,
    cursor: i64,
    buffer: VecDeque<EventRow>,
}

impl Events {
    /// Subscribes to the events that pass `filter` (intent, handler, correlation; `None` = any).
    pub async fn subscribe(
        store: Store,
        from: From,
        filter: FirehoseFilter,
    ) -> Result<Events, Error> {
        let wake = store.subscribe(Topic::All);
        let cursor = match from {
            From::Beginning => 0,
            From::After(id) => id,
            From::Now => store.read(events::max_event_id).await?,
        };
        Ok(Events {
            store,
            wake,
            filter,
            cursor,
            buffer: VecDeque::new(),
        })
    }

    /// The next event, waiting for one to be committed if none is pending. Errors only when the
    /// store cannot be read.
    pub async fn next(&mut self) -> Result<EventRow, Error> {
        loop {
            if let Some(e) = self.buffer.pop_front() {
                self.cursor = e.event_id;
                return Ok(e);
            }
            let (after, filter) = (self.cursor, self.filter.clone());
            let page = self
                .store
                .read(move |c| events::firehose(c, after, &filter, 512))
                .await?;
            if page.is_empty() {
                self.wake.changed().await;
            } else {
                self.buffer.extend(page);
            }
        }
    }

    /// The position of the last event returned.
    pub fn cursor(&self) -> i64 {
        self.cursor
    }
}
