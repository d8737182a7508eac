//! Long-polling claims (SPEC.md, "Inbox claims": `wait_seconds`): a claim on an empty queue is
//! held until work arrives — a new intent, or one a lapsed lease puts back — and answers
//! `claims: []` when the wait ends. Bounds are coarse: "promptly" means well under the wait.

use crate::claims_support;
use crate::common;

use std::thread;
use std::time::{Duration, Instant};

use claims_support::*;
use common::*;
use serde_json::json;

#[test]
fn a_waiting_claim_returns_as_soon_as_an_intent_arrives() {
    let s = Server::start();
    let to = inbox("wait");
    let remote = Remote::of(&s);
    let target = to.clone();
    let t0 = Instant::now();
    let producer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(300));
        create_with(&remote, &target, json!({}))
    });
    let got = claim(&s, &to, json!({"wait_seconds": 5, "lease_seconds": 10}));
    let took = t0.elapsed().as_secs_f64();
    let id = producer.join().expect("producer");
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(claimed_id(&got[0]), id);
    assert_eq!(got[0]["attempt"], 1);
    assert_eq!(got[0]["intent"]["status"], "DELIVERED");
    assert_lease_about(&got[0], 10.0);
    assert!(took >= 0.25, "answered after {took:.3}s, before the intent");
    assert!(took < 3.0, "answered after {took:.3}s of a 5 s wait");
    assert_eq!(intent(&s, &id)["status"], "DELIVERED");
}

#[test]
fn a_waiting_claim_answers_empty_when_the_wait_ends() {
    let s = Server::start();
    let to = inbox("idle");
    // Work for someone else does not wake it.
    let other = inbox("busy");
    let remote = Remote::of(&s);
    let producer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(200));
        create_with(&remote, &other, json!({}))
    });
    let t0 = Instant::now();
    let got = claim(&s, &to, json!({"wait_seconds": 1}));
    let took = t0.elapsed().as_secs_f64();
    let theirs = producer.join().expect("producer");
    assert!(got.is_empty(), "{got:?}");
    assert!((0.9..3.0).contains(&took), "answered after {took:.3}s");
    assert_eq!(intent(&s, &theirs)["status"], "SUBMITTED");
}

#[test]
fn wait_seconds_zero_answers_at_once() {
    let s = Server::start();
    let to = inbox("nowait");
    let t0 = Instant::now();
    assert!(claim(&s, &to, json!({"wait_seconds": 0})).is_empty());
    assert!(
        t0.elapsed() < Duration::from_millis(900),
        "{:?}",
        t0.elapsed()
    );
}

#[test]
fn a_waiting_claim_is_woken_by_a_lapsed_lease() {
    let (s, to, id) = with_one_intent("redelivery");
    let t0 = Instant::now();
    let first = claim_one(&s, &to, json!({"lease_seconds": 1}));
    let got = claim(&s, &to, json!({"wait_seconds": 8, "lease_seconds": 30}));
    let took = t0.elapsed().as_secs_f64();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(claimed_id(&got[0]), id);
    assert_eq!(got[0]["attempt"], 2);
    assert_ne!(token(&got[0]), token(&first));
    assert!((0.95..5.0).contains(&took), "redelivered after {took:.3}s");
}

#[test]
fn several_waiting_workers_each_get_different_work() {
    let s = Server::start();
    let to = inbox("waiters");
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let remote = Remote::of(&s);
            let to = to.clone();
            thread::spawn(move || claim(&remote, &to, json!({"wait_seconds": 10})))
        })
        .collect();
    // Give the workers a moment to start waiting; correctness does not depend on it.
    thread::sleep(Duration::from_millis(300));
    let ids = create_n(&s, &to, 3);
    let mut got: Vec<String> = workers
        .into_iter()
        .flat_map(|w| w.join().expect("worker"))
        .map(|c| claimed_id(&c).to_string())
        .collect();
    got.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(got, want, "each intent to exactly one waiting worker");
}
