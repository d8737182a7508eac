//! Leases across a restart (SPEC.md, "Inbox claims", and "Timers are durable: a restart neither
//! loses nor double-fires them"): a lease outstanding at shutdown still expires afterwards and
//! its intent is redelivered; one that ran out while the server was down fires at startup,
//! once; a lease still live after the restart (or extended before it) can be acked.

use crate::claims_support;
use crate::common;

use std::thread;
use std::time::Duration;

use claims_support::*;
use common::*;
use serde_json::json;

#[test]
fn leases_outstanding_at_shutdown_still_expire_or_can_be_acked_after_a_restart() {
    let mut s = Server::start();
    let to = inbox("restart");
    let short = s.create_intent(&to);
    let long = s.create_intent(&to);
    let extended = s.create_intent(&to);
    let lapsing = claim_one(&s, &to, json!({"lease_seconds": 2}));
    let held = claim_one(&s, &to, json!({"lease_seconds": 60}));
    let stretched = claim_one(&s, &to, json!({"lease_seconds": 1}));
    assert_ok(&extend(&s, token(&stretched), 60));
    assert_eq!(claimed_id(&lapsing), short);
    assert_eq!(claimed_id(&held), long);
    assert_eq!(claimed_id(&stretched), extended);
    assert_eq!(s.terminate(), Some(0), "graceful shutdown");

    let s2 = Server::start_on(&s.data, &[]);
    wait_status(&s2, &short, "SUBMITTED");
    let failed = events_of(&s2, &short, "intent.delivery_failed");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["details"]["reason"], "lease_expired");
    assert_eq!(failed[0]["details"]["lease_token"], token(&lapsing));
    assert_lease_lost(&ack(&s2, token(&lapsing), json!({})));

    let r = ack(
        &s2,
        token(&held),
        json!({"status": "COMPLETED", "result": {"ok": 1}}),
    );
    assert_ok(&r);
    assert_eq!(intent(&s2, &long)["status"], "COMPLETED");
    assert_eq!(intent(&s2, &long)["result"], json!({"ok": 1}));

    // Its first second is long gone; the extension was kept across the restart.
    assert_eq!(intent(&s2, &extended)["status"], "DELIVERED");
    assert!(events_of(&s2, &extended, "intent.delivery_failed").is_empty());
    assert_ok(&ack(&s2, token(&stretched), json!({"status": "COMPLETED"})));

    let again = claim_one(&s2, &to, json!({}));
    assert_eq!(claimed_id(&again), short);
    assert_eq!(again["attempt"], 2);
}

#[test]
fn a_lease_that_ran_out_during_a_crash_fires_once_at_startup() {
    let mut s = Server::start();
    let to = inbox("crash");
    let id = s.create_intent(&to);
    let c = claim_one(&s, &to, json!({"lease_seconds": 1}));
    s.kill();
    // Past the lease's end while nothing runs (a window of time the server must not see).
    let left = secs_from_now(&c["lease_expires_at"]);
    thread::sleep(Duration::from_secs_f64(left.max(0.0) + 0.05));

    let mut s2 = Server::start_on(&s.data, &[]);
    wait_status(&s2, &id, "SUBMITTED");
    assert_lease_lost(&extend(&s2, token(&c), 30));
    let n = events(&s2, &id).len();
    assert_eq!(events_of(&s2, &id, "intent.delivery_failed").len(), 1);
    assert_eq!(s2.terminate(), Some(0));

    let s3 = Server::start_on(&s.data, &[]);
    // A round of the lease timer would fire it again if it could: a timer due a second after
    // the start has fired, so that round has run.
    crate::runtime_timers::timers_caught_up(&s3, 1);
    assert_eq!(events(&s3, &id).len(), n, "not fired twice");
    assert_eq!(intent(&s3, &id)["status"], "SUBMITTED");
    let again = claim_one(&s3, &to, json!({}));
    assert_eq!(again["attempt"], 2);
}
