//! What the pull bindings hand out: the agent feed (submissions and terminal events of the
//! intents addressed to an agent, by global feed cursor), an intent's own events (by `seq`), and
//! the firehose of all events. Also the one rule of hand-over: the first time a submission is
//! handed to its handler, the intent becomes DELIVERED — once, however many listeners there are.
//!
//! An item shows its intent as the handler receives it: a submission handed over by the read
//! that returns it shows DELIVERED, never the SUBMITTED it was read as (AXME's agents act only on
//! DELIVERED, CREATED and IN_PROGRESS). Items whose intent is terminal are left out unless a
//! `status` filter names their status, as the AXME SDK documents for `listen()`.

use crate::store::{Store, Tx};
use serde_json::json;

use super::access::Access;
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

/// The agent feed of `address` after the cursor `after`: with `statuses`, only items whose
/// intent is in one of them; without, only items whose intent is not terminal. A submission that
/// this read hands over passes a filter naming SUBMITTED or DELIVERED (it is the first, and
/// shows the second).
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
        let handed_over = is_hand_over(&event, &intent);
        let passes = |status: Status| match statuses {
            Some(s) => s.contains(&status),
            None => !status.is_terminal(),
        };
        let shown = passes(intent.status) || (handed_over && passes(Status::Delivered));
        if !shown {
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

/// Whether handing this item out hands its intent over: a submission still SUBMITTED.
fn is_hand_over(event: &EventRow, intent: &IntentRow) -> bool {
    event.event_type == Status::Submitted.event_type() && intent.status == Status::Submitted
}

/// The intents a page hands over to their handler: its submissions still SUBMITTED.
pub fn handed_over(page: &FeedPage) -> Vec<String> {
    page.items
        .iter()
        .filter(|i| is_hand_over(&i.event, &i.intent))
        .map(|i| i.intent.intent_id.clone())
        .collect()
}

/// Marks handed-over intents DELIVERED: each one still SUBMITTED moves to DELIVERED with one
/// `intent.delivered` event; the others are left alone (another listener was first, or the
/// handler already moved it on). Returns every one of them as it is after the marking, which is
/// what the items that handed them over show.
pub fn mark_delivered(
    conn: &Tx,
    intent_ids: &[String],
    actor: &str,
    via: &str,
) -> Result<Vec<IntentRow>, Error> {
    let mut after = Vec::with_capacity(intent_ids.len());
    for id in intent_ids {
        let Some(mut intent) = intents::get(conn, id)? else {
            continue;
        };
        if intent.status == Status::Submitted {
            let mut change = Change::to(Status::Delivered, actor);
            change.details = json!({"via": via});
            transition(conn, &mut intent, change)?;
        }
        after.push(intent);
    }
    Ok(after)
}

/// Puts the intents as they are after a hand-over into the items of the page that handed them
/// over.
pub fn show_handed_over(page: &mut FeedPage, after: Vec<IntentRow>) {
    for intent in after {
        for item in page
            .items
            .iter_mut()
            .filter(|i| i.intent.intent_id == intent.intent_id)
        {
            item.intent = intent.clone();
        }
    }
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

// --- The reads and the hand-over of the pull bindings, each in its own read or transaction --

/// One page of the agent feed of `address` (see [`agent_feed`]), read at once.
pub async fn page(
    store: &Store,
    address: &str,
    after: i64,
    limit: usize,
    statuses: Option<&[Status]>,
) -> Result<FeedPage, Error> {
    let (address, statuses) = (address.to_string(), statuses.map(<[Status]>::to_vec));
    store
        .read(move |c| agent_feed(c, &address, after, limit, statuses.as_deref()))
        .await
}

/// Marks the submissions a page handed over DELIVERED (see [`mark_delivered`]), in one write.
pub async fn hand_over(
    store: &Store,
    intent_ids: Vec<String>,
    actor: &str,
    via: &'static str,
) -> Result<Vec<IntentRow>, Error> {
    let actor = actor.to_string();
    store
        .write(move |c| mark_delivered(c, &intent_ids, &actor, via))
        .await
}

/// One page of the firehose after `after` (see [`firehose`]), read at once.
pub async fn firehose_page(
    store: &Store,
    after: i64,
    filter: FirehoseFilter,
    limit: usize,
) -> Result<Vec<EventRow>, Error> {
    store
        .read(move |c| firehose(c, after, &filter, limit))
        .await
}

/// The end of the log (see [`log_end`]).
pub async fn end(store: &Store) -> Result<i64, Error> {
    store.read(log_end).await
}

/// Whether the caller may follow events with this filter (see `Access::observe`).
pub async fn may_follow(
    store: &Store,
    access: &Access,
    to_agent: Option<&str>,
    intent_id: Option<&str>,
) -> Result<(), Error> {
    if access.is_admin() {
        return Ok(());
    }
    let (access, to_agent, intent_id) = (
        access.clone(),
        to_agent.map(str::to_string),
        intent_id.map(str::to_string),
    );
    store
        .read(move |c| {
            access.observe(
                c,
                to_agent.as_deref(),
                intent_id.as_deref(),
                "following the events of",
                "following the event stream",
            )
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::testing::{self, HANDLER};

    #[test]
    fn a_feed_pages_by_cursor_and_a_status_filter_still_moves_the_cursor() {
        let conn = testing::db();
        let tx = Tx::sqlite(&conn);
        let ids: Vec<String> = (0..3)
            .map(|_| testing::intent(&tx, json!({})).intent_id)
            .collect();
        testing::intent(&tx, json!({"to_agent": "agent://test/other"}));
        let first = agent_feed(&tx, HANDLER, 0, 2, None).expect("page 1");
        let second = agent_feed(&tx, HANDLER, first.scanned_to, 2, None).expect("page 2");
        let seen: Vec<&str> = first
            .items
            .iter()
            .chain(&second.items)
            .map(|i| i.intent.intent_id.as_str())
            .collect();
        assert_eq!(seen, ids.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(first.more && !second.more);
        assert!(first
            .items
            .iter()
            .all(|i| i.event.event_type == "intent.submitted"));
        mark_delivered(&tx, &ids[..1], HANDLER, "poll").expect("handed over");
        let live = agent_feed(&tx, HANDLER, 0, 10, Some(&[Status::Submitted])).expect("filtered");
        assert_eq!(live.items.len(), 2);
        assert_eq!(
            live.scanned_to, second.scanned_to,
            "past the filtered-out item too"
        );
    }

    #[test]
    fn the_first_hand_over_delivers_an_intent_once_however_many_listeners() {
        let conn = testing::db();
        let tx = Tx::sqlite(&conn);
        let id = testing::intent(&tx, json!({})).intent_id;
        let mut page = agent_feed(&tx, HANDLER, 0, 10, None).expect("page");
        let ids = handed_over(&page);
        assert_eq!(ids, std::slice::from_ref(&id));
        let after = mark_delivered(&tx, &ids, HANDLER, "stream").expect("first");
        show_handed_over(&mut page, after);
        assert_eq!(
            page.items[0].intent.status,
            Status::Delivered,
            "shown as handed over"
        );
        let before = conn.total_changes();
        let again = [id.clone(), "no-such-intent".to_string()];
        let after = mark_delivered(&tx, &again, HANDLER, "poll").expect("again");
        assert_eq!((after.len(), conn.total_changes()), (1, before));
        let h = testing::history(&tx, &id);
        assert_eq!(
            h.iter().filter(|t| *t == "intent.delivered").count(),
            1,
            "{h:?}"
        );
        let later = agent_feed(&tx, HANDLER, 0, 10, None).expect("page");
        assert!(handed_over(&later).is_empty(), "handed over once");
    }
}
