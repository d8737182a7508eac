//! Competing workers (SPEC.md, "inbox": "workers of one agent compete ... At-least-once: a crash
//! between claim and ack redelivers, never loses"). Eight threads claim batches of 1–5 from one
//! agent's 200 intents and ack them COMPLETED: each intent is processed exactly once. When some
//! workers "crash" (claim with a 1 s lease and never ack), what they held comes back with
//! attempt 2 once the lease ends, and others complete it; no intent is ever held by two live
//! leases.

use crate::claims_support;
use crate::common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use claims_support::*;
use common::*;
use serde_json::{json, Value};

const WORKERS: usize = 8;
const INTENTS: usize = 200;

/// One claimed intent as a worker saw it.
#[derive(Debug, Clone)]
struct Taken {
    worker: usize,
    id: String,
    attempt: i64,
    token: String,
    lease_expires_at: Value,
    /// Whether the worker completed it (false: it "crashed" holding it).
    acked: bool,
}

/// The batch size of a worker's `i`th claim: 1 to 5, varying between workers and claims.
fn batch(worker: usize, i: usize) -> usize {
    (worker + i) % 5 + 1
}

/// Creates the intents from four threads at once; returns their ids.
fn create_many(s: &Server, to: &str) -> Vec<String> {
    let makers: Vec<_> = (0..4)
        .map(|_| {
            let (remote, to) = (Remote::of(s), to.to_string());
            thread::spawn(move || create_n(&remote, &to, INTENTS / 4))
        })
        .collect();
    makers
        .into_iter()
        .flat_map(|m| m.join().expect("maker"))
        .collect()
}

fn complete(remote: &Remote, worker: usize, c: &Value) {
    let r = ack(
        remote,
        token(c),
        json!({"status": "COMPLETED", "result": {"worker": worker, "attempt": c["attempt"]}}),
    );
    assert_ok(&r);
    assert_eq!(r.json["intent"]["status"], "COMPLETED", "{}", r.text);
}

fn taken(worker: usize, c: &Value, acked: bool) -> Taken {
    Taken {
        worker,
        id: claimed_id(c).to_string(),
        attempt: c["attempt"].as_i64().expect("attempt"),
        token: token(c).to_string(),
        lease_expires_at: c["lease_expires_at"].clone(),
        acked,
    }
}

#[test]
fn competing_workers_process_every_intent_exactly_once() {
    let s = Server::start();
    let to = inbox("pool");
    let ids = create_many(&s, &to);
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (remote, to) = (Remote::of(&s), to.clone());
            thread::spawn(move || {
                let mut mine = Vec::new();
                for i in 0.. {
                    let body = json!({"max": batch(w, i), "lease_seconds": 60});
                    let got = claim(&remote, &to, body);
                    assert!(got.len() <= batch(w, i), "max respected: {got:?}");
                    if got.is_empty() {
                        break;
                    }
                    for c in &got {
                        assert_eq!(c["intent"]["status"], "DELIVERED");
                        complete(&remote, w, c);
                        mine.push(taken(w, c, true));
                    }
                }
                mine
            })
        })
        .collect();
    let all: Vec<Taken> = workers
        .into_iter()
        .flat_map(|w| w.join().expect("worker"))
        .collect();

    assert_eq!(all.len(), INTENTS, "one claim per intent");
    let claimed: HashSet<&str> = all.iter().map(|t| t.id.as_str()).collect();
    let created: HashSet<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(claimed, created, "every intent claimed, none twice");
    let tokens: HashSet<&str> = all.iter().map(|t| t.token.as_str()).collect();
    assert_eq!(tokens.len(), INTENTS, "a token per claim");
    assert!(all.iter().all(|t| t.attempt == 1), "no redelivery");
    let busy: HashSet<usize> = all.iter().map(|t| t.worker).collect();
    assert!(busy.len() > 1, "the workers competed: {busy:?}");

    for t in &all {
        let i = intent(&s, &t.id);
        assert_eq!(i["status"], "COMPLETED", "{i}");
        assert_eq!(i["result"]["worker"], t.worker, "{i}");
        assert_eq!(
            event_types(&s, &t.id),
            [
                "intent.created",
                "intent.submitted",
                "intent.delivered",
                "intent.completed"
            ],
            "{}",
            t.id
        );
    }
    assert!(claim(&s, &to, json!({"max": 100})).is_empty());
}

#[test]
fn work_held_by_crashed_workers_is_redelivered_and_completed_by_others() {
    let s = Server::start();
    let to = inbox("crashy");
    let ids = create_many(&s, &to);
    let completed = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(60);
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (remote, to, completed) = (Remote::of(&s), to.clone(), completed.clone());
            thread::spawn(move || {
                let mut mine = Vec::new();
                for i in 0.. {
                    if completed.load(Ordering::SeqCst) == INTENTS || Instant::now() > deadline {
                        break;
                    }
                    // Workers 0–3 "crash" holding their second batch: a short lease, no ack.
                    let crash = w < 4 && i == 1;
                    let lease = if crash { 1 } else { 60 };
                    let body =
                        json!({"max": batch(w, i), "lease_seconds": lease, "wait_seconds": 1});
                    for c in claim(&remote, &to, body) {
                        if !crash {
                            complete(&remote, w, &c);
                            completed.fetch_add(1, Ordering::SeqCst);
                        }
                        mine.push(taken(w, &c, !crash));
                    }
                }
                mine
            })
        })
        .collect();
    let all: Vec<Taken> = workers
        .into_iter()
        .flat_map(|w| w.join().expect("worker"))
        .collect();
    assert_eq!(
        completed.load(Ordering::SeqCst),
        INTENTS,
        "all done in time"
    );

    let mut by_intent: BTreeMap<&str, Vec<&Taken>> = BTreeMap::new();
    for t in &all {
        by_intent.entry(&t.id).or_default().push(t);
    }
    let created: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let claimed: HashSet<&str> = by_intent.keys().copied().collect();
    assert_eq!(claimed, created, "nothing lost");
    let abandoned: HashMap<&str, &Taken> = all
        .iter()
        .filter(|t| !t.acked)
        .map(|t| (t.id.as_str(), t))
        .collect();
    assert!(!abandoned.is_empty(), "some workers crashed holding work");

    for (id, takes) in &mut by_intent {
        takes.sort_by_key(|t| t.attempt);
        let attempts: Vec<i64> = takes.iter().map(|t| t.attempt).collect();
        let want: Vec<i64> = (1..=takes.len() as i64).collect();
        assert_eq!(attempts, want, "{id}: one claim per attempt");
        let acks = takes.iter().filter(|t| t.acked).count();
        assert_eq!(acks, 1, "{id}: completed exactly once: {takes:?}");
        assert!(takes.last().is_some_and(|t| t.acked), "{id}: {takes:?}");
        match abandoned.get(id) {
            None => assert_eq!(takes.len(), 1, "{id}: redelivered without a crash"),
            Some(crashed) => {
                assert_eq!(crashed.attempt, 1, "{id}");
                assert!(takes.len() >= 2, "{id}");
            }
        }

        let i = intent(&s, id);
        assert_eq!(i["status"], "COMPLETED", "{i}");
        let last = takes.last().expect("a claim");
        assert_eq!(i["result"]["worker"], last.worker, "{i}");
        assert_eq!(i["result"]["attempt"], last.attempt, "{i}");

        let delivered = events_of(&s, id, "intent.delivered");
        assert_eq!(delivered.len(), takes.len(), "{id}: a delivery per claim");
        let lapsed = events_of(&s, id, "intent.delivery_failed");
        assert_eq!(lapsed.len(), takes.len() - 1, "{id}");
        for (k, pair) in takes.windows(2).enumerate() {
            assert_eq!(lapsed[k]["details"]["reason"], "lease_expired", "{id}");
            assert_eq!(lapsed[k]["details"]["lease_token"], pair[0].token, "{id}");
            // Never two live leases: the next claim came after the previous lease ended.
            let next = parse_time(&delivered[k + 1]["at"]);
            assert!(
                next >= parse_time(&pair[0].lease_expires_at),
                "{id}: {takes:?}"
            );
        }
        assert_eq!(events_of(&s, id, "intent.completed").len(), 1, "{id}");
    }
}
