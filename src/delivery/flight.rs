//! What the scheduler has taken from the outbox and not yet recorded: the attempts on workers,
//! per endpoint, and the outcomes being written. Only the scheduler loop holds these; they are
//! never shared with the workers or the writer.

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
    pub outcome: Outcome,
}

/// Deliveries taken from the outbox and not yet recorded.
#[derive(Default)]
pub struct Flight {
    /// By endpoint, the rowids of the deliveries taken and not yet recorded (on a worker, or
    /// their outcome being written). They are still pending in the outbox, so reads of due work
    /// skip them until their outcome is committed (or its recording failed, and then they are
    /// attempted again). An endpoint without any is not in the map.
    per_endpoint: HashMap<String, HashSet<i64>>,
    /// Attempts on a worker now, all endpoints together.
    sending: usize,
}

impl Flight {
    /// Attempts on workers now.
    pub fn sending(&self) -> usize {
        self.sending
    }

    /// How many more deliveries to `endpoint` may be taken now. An attempt keeps its place at
    /// its endpoint until its outcome is committed, so no more than `per_endpoint` deliveries to
    /// one endpoint are ever between their read and their record (and a stalled writer holds
    /// dispatch back instead of piling up unrecorded attempts).
    pub fn room(&self, endpoint: &str, per_endpoint: usize) -> usize {
        self.per_endpoint
            .get(endpoint)
            .map_or(per_endpoint, |taken| {
                per_endpoint.saturating_sub(taken.len())
            })
    }

    /// Every endpoint with deliveries taken: its room and the rowids that reads must skip.
    pub fn busy(&self, per_endpoint: usize) -> HashMap<String, (usize, HashSet<i64>)> {
        self.per_endpoint
            .iter()
            .map(|(e, taken)| (e.clone(), (self.room(e, per_endpoint), taken.clone())))
            .collect()
    }

    /// A delivery handed to a worker.
    pub fn sent(&mut self, rowid: i64, endpoint: &str) {
        self.sending += 1;
        self.taken(rowid, endpoint);
    }

    /// A delivery taken to be recorded without an attempt (it cannot be sent).
    pub fn taken(&mut self, rowid: i64, endpoint: &str) {
        self.per_endpoint
            .entry(endpoint.to_string())
            .or_default()
            .insert(rowid);
    }

    /// An attempt came back from its worker (its outcome is not recorded yet).
    pub fn attempt_ended(&mut self) {
        self.sending = self.sending.saturating_sub(1);
    }

    /// A delivery's outcome was committed, or its recording failed.
    pub fn settled(&mut self, rowid: i64, endpoint: &str) {
        if let Some(taken) = self.per_endpoint.get_mut(endpoint) {
            taken.remove(&rowid);
            if taken.is_empty() {
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
    /// The record jobs being written; each ends when its commit (or failure) is known.
    jobs: JoinSet<()>,
    /// The deliveries (rowid, endpoint) each job records, by task: settled when the job ends,
    /// however it ends.
    settles: HashMap<tokio::task::Id, Vec<(i64, String)>>,
}

impl Recorder {
    pub fn new(store: Store, policy: RetryPolicy) -> Recorder {
        Recorder {
            store,
            policy: Arc::new(policy),
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
            settle.push((f.rowid, f.endpoint));
            outcomes.push((f.delivery_id, f.outcome));
        }
        let (store, policy) = (self.store.clone(), self.policy.clone());
        let n = outcomes.len();
        let task = self.jobs.spawn(async move {
            let written = store
                .write(move |c| domain::record_all(c, outcomes, &policy))
                .await;
            match written {
                Ok(recorded) => {
                    for (id, r) in recorded {
                        if let Err(e) = r {
                            tracing::error!(delivery_id = %id, error = %e, "recording a push attempt failed");
                        }
                    }
                }
                Err(e) => tracing::error!(
                    error = %e,
                    attempts = n,
                    "recording push attempts failed; they will be attempted again"
                ),
            }
        });
        self.settles.insert(task.id(), settle);
    }

    /// The deliveries of the next record job to end; `None` when none is running.
    pub async fn next_settled(&mut self) -> Option<Vec<(i64, String)>> {
        let id = match self.jobs.join_next_with_id().await? {
            Ok((id, ())) => id,
            Err(e) => e.id(),
        };
        Some(self.settles.remove(&id).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_keeps_its_place_until_its_outcome_is_recorded() {
        let mut f = Flight::default();
        let ep = "http://a";
        f.sent(1, ep);
        f.taken(2, ep);
        assert_eq!((f.room(ep, 3), f.sending()), (1, 1));
        f.attempt_ended();
        // The worker is free, the endpoint's place is not: the outcome is not committed yet.
        assert_eq!((f.room(ep, 3), f.sending()), (1, 0));
        let (room, skip) = &f.busy(3)[ep];
        assert_eq!((*room, skip.len()), (1, 2));
        assert!(skip.contains(&1) && skip.contains(&2));
        f.settled(1, ep);
        assert_eq!(f.room(ep, 3), 2);
        f.settled(2, ep);
        assert!(f.busy(3).is_empty());
        assert_eq!(f.room("http://b", 3), 3);
    }
}
