//! What the scheduler has taken from the outbox and not yet recorded: the attempts on workers,
//! per endpoint and per owner, and the outcomes being written. Only the scheduler loop holds
//! these; they are never shared with the workers or the writer.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tokio::task::JoinSet;

use crate::service::deliveries::{self as domain, Outcome, RetryPolicy};
use crate::store::Store;

/// An attempt that came back from a worker, or a delivery that cannot be attempted at all.
pub struct Finished {
    /// The delivery's rowid: what the flight counts.
    pub rowid: i64,
    pub delivery_id: String,
    pub endpoint: String,
    /// Who owns the target (see `fair`): whose share of the workers the attempt took.
    pub owner: String,
    pub outcome: Outcome,
    pub place: Place,
}

/// Deliveries taken from the outbox and not yet recorded.
#[derive(Default)]
pub struct Flight {
    /// By endpoint; an endpoint with nothing taken is not in the map.
    per_endpoint: HashMap<String, Load>,
    /// Attempts on a worker now, all endpoints together.
    sending: usize,
    /// Attempts on a worker now, by owner; an owner with none is not in the map.
    per_owner: HashMap<String, usize>,
}

#[derive(Default)]
struct Load {
    /// The places taken at the endpoint: attempts on a worker, and failed attempts whose
    /// outcome is not committed yet. What `--push-endpoint-concurrency` limits.
    places: usize,
    /// The rowids of the deliveries taken and not yet recorded (on a worker, or their outcome
    /// being written). They are still pending in the outbox, so reads of due work skip them
    /// until their outcome is committed (or its recording failed, and then they are attempted
    /// again).
    unsettled: HashSet<i64>,
}

/// What a delivery leaves behind once its attempt ended: whether it still holds its place at
/// its endpoint until its outcome is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// A delivered attempt, or none at all: the place is free already.
    Freed,
    /// A failed attempt: the endpoint gets no attempt in its place until what the failure
    /// teaches (410 disables the endpoint; a timeout or an error backs off) is committed.
    Held,
}

impl Flight {
    /// Attempts on workers now.
    pub fn sending(&self) -> usize {
        self.sending
    }

    /// Attempts of `owner` on workers now.
    pub fn owner_sending(&self, owner: &str) -> usize {
        self.per_owner.get(owner).copied().unwrap_or(0)
    }

    /// Every owner with attempts on workers, and how many.
    pub fn owners(&self) -> HashMap<String, usize> {
        self.per_owner.clone()
    }

    /// How many more deliveries to `endpoint` may be taken now: within its places, and with no
    /// more than `per_endpoint` outcomes waiting to be recorded on top of them, so that a
    /// stalled writer holds dispatch back instead of piling up unrecorded attempts.
    pub fn room(&self, endpoint: &str, per_endpoint: usize) -> usize {
        self.per_endpoint.get(endpoint).map_or(per_endpoint, |l| {
            per_endpoint
                .saturating_sub(l.places)
                .min((2 * per_endpoint).saturating_sub(l.unsettled.len()))
        })
    }

    /// Every endpoint with deliveries taken: its room and the rowids that reads must skip.
    pub fn busy(&self, per_endpoint: usize) -> HashMap<String, (usize, HashSet<i64>)> {
        self.per_endpoint
            .iter()
            .map(|(e, l)| (e.clone(), (self.room(e, per_endpoint), l.unsettled.clone())))
            .collect()
    }

    /// A delivery handed to a worker.
    pub fn sent(&mut self, rowid: i64, endpoint: &str, owner: &str) {
        self.sending += 1;
        *self.per_owner.entry(owner.to_string()).or_default() += 1;
        let l = self.per_endpoint.entry(endpoint.to_string()).or_default();
        l.places += 1;
        l.unsettled.insert(rowid);
    }

    /// A delivery taken to be recorded without an attempt (it cannot be sent).
    pub fn taken(&mut self, rowid: i64, endpoint: &str) {
        let l = self.per_endpoint.entry(endpoint.to_string()).or_default();
        l.unsettled.insert(rowid);
    }

    /// An attempt came back from its worker; its outcome is not recorded yet.
    pub fn attempt_ended(&mut self, endpoint: &str, owner: &str, place: Place) {
        self.sending = self.sending.saturating_sub(1);
        if let Some(n) = self.per_owner.get_mut(owner) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_owner.remove(owner);
            }
        }
        if place == Place::Freed {
            if let Some(l) = self.per_endpoint.get_mut(endpoint) {
                l.places = l.places.saturating_sub(1);
            }
        }
    }

    /// A delivery's outcome was committed, or its recording failed.
    pub fn settled(&mut self, rowid: i64, endpoint: &str, place: Place) {
        if let Some(l) = self.per_endpoint.get_mut(endpoint) {
            if l.unsettled.remove(&rowid) && place == Place::Held {
                l.places = l.places.saturating_sub(1);
            }
            if l.unsettled.is_empty() {
                self.per_endpoint.remove(endpoint);
            }
        }
    }
}

/// Records outcomes while the scheduler goes on dispatching: each call of `start` becomes one
/// write job (one transaction for all its outcomes), awaited on a task of its own.
pub struct Recorder {
    store: Store,
    policy: Arc<RetryPolicy>,
    metrics: Arc<crate::metrics::Metrics>,
    /// The record jobs being written; each ends when its commit (or failure) is known, and
    /// says whether it committed.
    jobs: JoinSet<bool>,
    /// The deliveries (rowid, endpoint, place) each job records, by task: settled when the job
    /// ends, however it ends.
    settles: HashMap<tokio::task::Id, Vec<(i64, String, Place)>>,
}

impl Recorder {
    pub fn new(
        store: Store,
        policy: RetryPolicy,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Recorder {
        Recorder {
            store,
            policy: Arc::new(policy),
            metrics,
            jobs: JoinSet::new(),
            settles: HashMap::new(),
        }
    }

    /// Starts recording `finished` in one write job.
    pub fn start(&mut self, finished: Vec<Finished>) {
        if finished.is_empty() {
            return;
        }
        let mut settle = Vec::with_capacity(finished.len());
        let mut outcomes = Vec::with_capacity(finished.len());
        for f in finished {
            settle.push((f.rowid, f.endpoint, f.place));
            outcomes.push((f.delivery_id, f.outcome));
        }
        let (store, policy, metrics) = (
            self.store.clone(),
            self.policy.clone(),
            self.metrics.clone(),
        );
        let n = outcomes.len();
        let task = self.jobs.spawn(async move {
            let written = store
                .write(move |c| domain::record_all(c, outcomes, &policy))
                .await;
            match written {
                Ok(recorded) => {
                    for (id, r) in recorded {
                        match r {
                            Ok((_, settled)) => super::count(&metrics, settled),
                            Err(e) => {
                                tracing::error!(delivery_id = %id, error = %e, "recording a push attempt failed")
                            }
                        }
                    }
                    true
                }
                Err(e) => {
                    tracing::error!(
                        error = %e,
                        attempts = n,
                        "recording push attempts failed; they will be attempted again"
                    );
                    false
                }
            }
        });
        self.settles.insert(task.id(), settle);
    }

    /// The deliveries of the next record job to end, and whether it committed (if not, they
    /// are still pending and due again); `None` when no job is running.
    pub async fn next_settled(&mut self) -> Option<(Vec<(i64, String, Place)>, bool)> {
        let (id, committed) = match self.jobs.join_next_with_id().await? {
            Ok(ended) => ended,
            Err(e) => (e.id(), false),
        };
        Some((self.settles.remove(&id).unwrap_or_default(), committed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivered_attempt_frees_its_place_a_failed_one_when_recorded() {
        let mut f = Flight::default();
        let ep = "http://a";
        f.sent(1, ep, "o");
        f.sent(2, ep, "o");
        f.taken(3, ep);
        assert_eq!(
            (f.room(ep, 3), f.sending(), f.owner_sending("o")),
            (1, 2, 2)
        );
        f.attempt_ended(ep, "o", Place::Freed);
        f.attempt_ended(ep, "o", Place::Held);
        assert_eq!(
            (f.room(ep, 3), f.sending(), f.owner_sending("o")),
            (2, 0, 0)
        );
        assert!(f.owners().is_empty());
        // All three are skipped by reads until their outcomes are committed.
        let (room, skip) = &f.busy(3)[ep];
        assert_eq!((*room, skip.len()), (2, 3));
        f.settled(2, ep, Place::Held);
        assert_eq!(f.room(ep, 3), 3);
        f.settled(1, ep, Place::Freed);
        f.settled(3, ep, Place::Freed);
        assert!(f.busy(3).is_empty());
        assert_eq!(f.room(ep, 3), 3);
        assert_eq!(f.room("http://b", 3), 3);
    }

    #[test]
    fn unrecorded_outcomes_of_an_endpoint_are_bounded() {
        let mut f = Flight::default();
        let ep = "http://a";
        for rowid in 0..4 {
            f.sent(rowid, ep, "o");
            f.attempt_ended(ep, "o", Place::Freed);
        }
        // No attempt in flight, but four outcomes wait to be recorded: twice the limit.
        assert_eq!(f.room(ep, 2), 0);
        f.settled(0, ep, Place::Freed);
        assert_eq!(f.room(ep, 2), 1);
    }
}
