//! Commit notifications: who is waiting for what, and waking exactly them after a commit.
//!
//! A stream or long poll subscribes to a [`Topic`] (one intent, one agent's feed, or every
//! event) *before* it reads the store. After each `COMMIT` the writer thread calls
//! [`Hub::publish`] with the events that commit made visible, and the hub wakes the subscribers
//! of the intents and agents those events concern — nobody else. Each subscription has its own
//! `Notify`, which keeps a wake-up that arrives while its owner is busy reading, so none is ever
//! lost, and many commits in a row coalesce into one wake-up.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::events::Committed;

thread_local! {
    /// Events appended by the current transaction of this thread, when it is the writer thread
    /// (`collect_on_this_thread` was called); `None` on every other thread. The writer publishes
    /// them after `COMMIT` and forgets them after a rollback.
    static APPENDED: RefCell<Option<Vec<Committed>>> = const { RefCell::new(None) };
}

thread_local! {
    /// Whether the current transaction of this thread wrote a delivery (writer thread only).
    static DELIVERIES_WRITTEN: Cell<bool> = const { Cell::new(false) };
}

/// Makes this thread record the events it appends (called once, by the writer thread).
pub(super) fn collect_on_this_thread() {
    APPENDED.with(|a| *a.borrow_mut() = Some(Vec::new()));
}

/// Notes that a delivery was written or changed (the push scheduler wants to know).
pub(super) fn record_delivery() {
    DELIVERIES_WRITTEN.with(|d| d.set(true));
}

/// Whether a delivery was written since the last call.
pub(super) fn take_delivery_flag() -> bool {
    DELIVERIES_WRITTEN.with(|d| d.replace(false))
}

/// Records an appended event (a no-op outside the writer thread).
pub(super) fn record(event: Committed) {
    APPENDED.with(|a| {
        if let Some(v) = a.borrow_mut().as_mut() {
            v.push(event);
        }
    });
}

/// Takes the events recorded since the last call.
pub(super) fn take_recorded() -> Vec<Committed> {
    APPENDED.with(|a| {
        a.borrow_mut()
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    })
}

/// What a subscriber waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topic {
    /// Any new event of this intent.
    Intent(String),
    /// Any new event handled by this agent address (its feed).
    Agent(String),
    /// Any new event at all.
    All,
}

type Subscribers = HashMap<u64, Arc<Notify>>;

#[derive(Default)]
struct Topics {
    intents: HashMap<String, Subscribers>,
    agents: HashMap<String, Subscribers>,
    all: Subscribers,
}

/// The registry of subscriptions. Shared by the store (which publishes) and by everything that
/// subscribes.
#[derive(Default)]
pub struct Hub {
    /// Locked briefly by `subscribe`, by a subscription's drop, and by the writer's `publish`.
    topics: Mutex<Topics>,
    next_id: AtomicU64,
    /// Fired by the writer after a commit that wrote deliveries; the push scheduler waits on it.
    deliveries: Notify,
    /// Counts publishes; raised before anyone is woken, so a subscriber that reads it after
    /// waking knows every commit up to that number is visible.
    generation: AtomicU64,
}

impl Hub {
    /// Subscribes to a topic. Wake-ups start at once: subscribe first, then read.
    pub fn subscribe(self: &Arc<Self>, topic: Topic) -> Subscription {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let notify = Arc::new(Notify::new());
        if let Ok(mut t) = self.topics.lock() {
            let subs = match &topic {
                Topic::Intent(k) => t.intents.entry(k.clone()).or_default(),
                Topic::Agent(k) => t.agents.entry(k.clone()).or_default(),
                Topic::All => &mut t.all,
            };
            subs.insert(id, notify.clone());
        }
        Subscription {
            hub: self.clone(),
            topic,
            id,
            notify,
        }
    }

    /// Wakes the subscribers of everything `events` concern. Called by the writer thread after
    /// `COMMIT`, so a woken subscriber always finds the events in the store.
    pub fn publish(&self, events: &[Committed]) {
        if events.is_empty() {
            return;
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
        let mut wake: Vec<Arc<Notify>> = Vec::new();
        if let Ok(t) = self.topics.lock() {
            wake.extend(t.all.values().cloned());
            for e in events {
                if let Some(subs) = t.intents.get(&e.intent_id) {
                    wake.extend(subs.values().cloned());
                }
                if let Some(subs) = e.handler.as_ref().and_then(|h| t.agents.get(h)) {
                    wake.extend(subs.values().cloned());
                }
            }
        }
        for n in wake {
            // A permit is kept if the subscriber is not waiting right now; repeats coalesce.
            n.notify_one();
        }
    }

    /// How many commits have been published. Readers woken by the same commit see the same
    /// number, which lets them share one read of the store (see `http::streams`).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Wakes the push scheduler (after a commit that wrote deliveries).
    pub fn publish_deliveries(&self) {
        self.deliveries.notify_one();
    }

    /// Resolves after a commit that wrote deliveries (at once if one happened since last time).
    pub async fn deliveries_changed(&self) {
        self.deliveries.notified().await;
    }

    /// How many subscriptions are open.
    pub fn subscriptions(&self) -> usize {
        self.topics.lock().map_or(0, |t| {
            t.all.len()
                + t.intents.values().map(HashMap::len).sum::<usize>()
                + t.agents.values().map(HashMap::len).sum::<usize>()
        })
    }

    fn unsubscribe(&self, topic: &Topic, id: u64) {
        let Ok(mut t) = self.topics.lock() else {
            return;
        };
        let remove_from = |map: &mut HashMap<String, Subscribers>, key: &str| {
            if let Some(subs) = map.get_mut(key) {
                subs.remove(&id);
                if subs.is_empty() {
                    map.remove(key);
                }
            }
        };
        match topic {
            Topic::Intent(k) => remove_from(&mut t.intents, k),
            Topic::Agent(k) => remove_from(&mut t.agents, k),
            Topic::All => {
                t.all.remove(&id);
            }
        }
    }
}

/// One subscriber's place in the hub; leaves it when dropped.
pub struct Subscription {
    hub: Arc<Hub>,
    topic: Topic,
    id: u64,
    notify: Arc<Notify>,
}

impl Subscription {
    /// Resolves after a commit concerning the topic (at once if one happened since the last
    /// call, or since subscribing).
    pub async fn changed(&self) {
        self.notify.notified().await;
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.unsubscribe(&self.topic, self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn committed(intent: &str, handler: &str) -> Committed {
        Committed {
            event_id: 1,
            intent_id: intent.into(),
            seq: 1,
            event_type: "intent.submitted".into(),
            handler: Some(handler.into()),
        }
    }

    async fn woken(s: &Subscription) -> bool {
        tokio::time::timeout(Duration::from_millis(50), s.changed())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn wakes_only_the_subscribers_a_commit_concerns() {
        let hub = Arc::new(Hub::default());
        let a = hub.subscribe(Topic::Intent("a".into()));
        let b = hub.subscribe(Topic::Intent("b".into()));
        let w = hub.subscribe(Topic::Agent("agent://w".into()));
        let all = hub.subscribe(Topic::All);
        hub.publish(&[committed("a", "agent://w")]);
        assert!(woken(&a).await);
        assert!(!woken(&b).await);
        assert!(woken(&w).await);
        assert!(woken(&all).await);
    }

    #[tokio::test]
    async fn a_commit_before_the_wait_is_not_lost_and_repeats_coalesce() {
        let hub = Arc::new(Hub::default());
        let a = hub.subscribe(Topic::Intent("a".into()));
        hub.publish(&[committed("a", "x")]);
        hub.publish(&[committed("a", "x")]);
        assert!(woken(&a).await, "the stored wake-up");
        assert!(!woken(&a).await, "two commits, one wake-up");
    }

    #[tokio::test]
    async fn dropping_a_subscription_leaves_the_hub() {
        let hub = Arc::new(Hub::default());
        let a = hub.subscribe(Topic::Intent("a".into()));
        let _b = hub.subscribe(Topic::All);
        assert_eq!(hub.subscriptions(), 2);
        drop(a);
        assert_eq!(hub.subscriptions(), 1);
    }
}
