//! Inbox-claim bugs found by the claim tests, one test per bug, each named after what broke.
//! Each test pins one of them: it is named `r_<what broke>` and its `/// Broke:` line says how.

use crate::claims_support;

use std::time::Instant;

use claims_support::*;
use serde_json::json;

/// Broke: a long-polling claim is woken only by commits, and a nack delay ending commits
/// nothing, so the waiting worker sat out its whole wait beside a claimable intent.
#[test]
fn r_nack_delay_end_wakes_a_waiting_claim() {
    let (s, to, id) = with_one_intent("nack-wake");
    let c = claim_one(&s, &to, json!({}));
    let t0 = Instant::now();
    assert_ok(&nack(&s, token(&c), json!({"delay_seconds": 1})));
    let got = claim(&s, &to, json!({"wait_seconds": 4}));
    let took = t0.elapsed().as_secs_f64();
    assert_eq!(
        got.len(),
        1,
        "claimable after 1 s, got nothing in 4 s: {got:?}"
    );
    assert_eq!(claimed_id(&got[0]), id);
    assert_eq!(got[0]["attempt"], 2);
    assert!(took < 3.0, "answered after {took:.3}s");
}

/// Broke: `nack` refused a string `error` ("error: must be an object") although
/// `nack_request` means to take a string too: `obj_opt` rejects before the string fallback.
#[test]
fn r_nack_takes_a_string_error() {
    let (s, to, id) = with_one_intent("nack-string");
    let c = claim_one(&s, &to, json!({}));
    let r = nack(&s, token(&c), json!({"delay_seconds": 0, "error": "busy"}));
    assert_ok(&r);
    let failed = events_of(&s, &id, "intent.delivery_failed");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["details"]["error"], "busy");
}
