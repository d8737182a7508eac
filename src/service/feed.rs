//! What the pull bindings hand out: the agent feed (submissions and terminal events of the
//! intents addressed to an agent, by global feed cursor), an intent's own events (by `seq`), and
//! the firehose of all events. Also the one rule of hand-over: the first time a submission is
//! handed to its handler, the intent becomes DELIVERED — once, however many listeners there are.

use crate::store::Tx;
use serde_json::json;

use super::effects::transition;
use super::history::Change;
use crate::model::Status;
use crate::store::events::{self, EventRow, FirehoseFilter};
use crate::store::intents::{self, IntentRow};
use crate::Error;

/// The most items one read of a feed returns.
pub const PAGE: usize = 200;

/// One item of an agent feed: the event that put it there and the intent as it is now.
#[derive(Debug, Clone)]
pub struct FeedItem {
    pub event: EventRow,
    pub intent: IntentRow,
}

/// A page of an agent feed after `after`. `scanned_to` is the cursor to continue from: it moves
/// past items a status filter left out, so a filtered reader never rereads them.
#[derive(Debug, Clone)]
pub struct FeedPage {
    pub items: Vec<FeedItem>,
    pub scanned_to: i64,
    /// True when the page was full and more may follow at once.
    pub more: bool,
}

/// The agent feed of `address` after the cursor `after`, optionally only items whose intent is
/// now in one of `statuses`.
pub fn agent_feed(
    conn: &Tx,
    address: &str,
    after: i64,
    limit: usize,
    statuses: Option<&[Status]>,
) -> Result<FeedPage, Error> {
    let rows = events::feed_for_agent(conn, address, after, limit)?;
    let more = rows.len() == limit;
    let scanned_to = rows.last().map_or(after, |e| e.event_id);
    let mut items = Vec::with_capacity(rows.len());
    for event in rows {
        let Some(intent) = intents::get(conn, &event.intent_id)? else {
            continue;
        };
        if statuses.is_some_and(|s| !s.contains(&intent.status)) {
            continue;
        }
        items.push(FeedItem { event, intent });
    }
    Ok(FeedPage {
        items,
        scanned_to,
        more,
    })
}

/// Marks handed-over intents DELIVERED: each one still SUBMITTED moves to DELIVERED with one
/// `intent.delivered` event; the others are left alone (another listener was first, or the
/// handler already moved it on). Returns the events appended.
pub fn mark_delivered(
    conn: &Tx,
    intent_ids: &[String],
    actor: &str,
    via: &str,
) -> Result<Vec<EventRow>, Error> {
    let mut appended = Vec::new();
    for id in intent_ids {
        let Some(mut intent) = intents::get(conn, id)? else {
            continue;
        };
        if intent.status != Status::Submitted {
            continue;
        }
        let mut change = Change::to(Status::Delivered, actor);
        change.details = json!({"via": via});
        let (event, _) = transition(conn, &mut intent, change)?;
        appended.push(event);
    }
    Ok(appended)
}

/// Events of all intents after the global cursor `after`, filtered.
pub fn firehose(
    conn: &Tx,
    after: i64,
    filter: &FirehoseFilter,
    limit: usize,
) -> Result<Vec<EventRow>, Error> {
    events::firehose(conn, after, filter, limit)
}

/// The newest event id (the end of the log), to tell a cursor from the future.
pub fn log_end(conn: &Tx) -> Result<i64, Error> {
    events::max_event_id(conn)
}
