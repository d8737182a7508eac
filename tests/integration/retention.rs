//! Retention: terminal intents last changed before the cutoff go, with their events, deliveries
//! and attempts, completions, leases and idempotency records; live intents, recent ones, and
//! ones with a pending push stay; the database is intact and no row points at a removed intent.
//!
//! The sweep is run in-process on the database the real server wrote, with the time it runs at
//! given as an argument (an injected clock), and then the server is started again on the file.
//! The last test runs the background sweep of the binary with a one-second retention.

use crate::claims_support;
use crate::common;
use crate::receiver;

use std::path::Path;
use std::time::Duration;

use axme::metrics::Counter;
use axme::service::retention;
use axme::store::{Store, StoreOptions};
use claims_support::{claim_one, register_inbox, token};
use common::*;
use receiver::{closed_port, eventually, register, Receiver, Reply};
use rusqlite::{params, Connection};
use serde_json::json;
use time::OffsetDateTime;

const KEEP: Duration = Duration::from_secs(3600);

/// Runs one sweep on the database at `data` as if it were `now`, `batch` intents per write.
fn sweep_at(data: &Path, now: OffsetDateTime, batch: usize) -> usize {
    sweep_during(data, now, batch, false)
}

/// A sweep while the server is (`stopping`) or is not shutting down.
fn sweep_during(data: &Path, now: OffsetDateTime, batch: usize, stopping: bool) -> usize {
    let store = Store::open(data, StoreOptions::default()).expect("open the store");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (_running, shutdown) = tokio::sync::watch::channel(stopping);
    let counted = Counter::default();
    let pruned = rt
        .block_on(retention::sweep(
            &store, now, KEEP, batch, &counted, &shutdown,
        ))
        .expect("sweep");
    store.shutdown();
    assert_eq!(counted.get(), pruned as u64);
    pruned
}

fn count(db: &Connection, sql: &str, arg: &str) -> i64 {
    db.query_row(sql, params![arg], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Every row of every table that belongs to intent `id`, table by table.
fn rows_of(db: &Connection, id: &str) -> [(&'static str, i64); 7] {
    [
        (
            "intents",
            count(db, "SELECT COUNT(*) FROM intents WHERE intent_id = ?1", id),
        ),
        (
            "events",
            count(db, "SELECT COUNT(*) FROM events WHERE intent_id = ?1", id),
        ),
        (
            "deliveries",
            count(
                db,
                "SELECT COUNT(*) FROM deliveries WHERE intent_id = ?1",
                id,
            ),
        ),
        (
            "delivery_attempts",
            count(
                db,
                "SELECT COUNT(*) FROM delivery_attempts WHERE delivery_id IN \
                 (SELECT delivery_id FROM deliveries WHERE intent_id = ?1)",
                id,
            ),
        ),
        (
            "completions",
            count(
                db,
                "SELECT COUNT(*) FROM completions WHERE intent_id = ?1",
                id,
            ),
        ),
        (
            "leases",
            count(db, "SELECT COUNT(*) FROM leases WHERE intent_id = ?1", id),
        ),
        (
            "idempotency_keys",
            count(
                db,
                "SELECT COUNT(*) FROM idempotency_keys WHERE intent_id = ?1 \
                 OR instr(endpoint, ?1) > 0 OR instr(CAST(response AS TEXT), ?1) > 0",
                id,
            ),
        ),
    ]
}

/// The database is intact and no row points at an intent (or a delivery) that is gone.
fn assert_consistent(db: &Connection) {
    let ok: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(ok, "ok");
    let orphans = [
        "SELECT COUNT(*) FROM events WHERE intent_id NOT IN (SELECT intent_id FROM intents)",
        "SELECT COUNT(*) FROM deliveries WHERE intent_id IS NOT NULL \
         AND intent_id NOT IN (SELECT intent_id FROM intents)",
        "SELECT COUNT(*) FROM delivery_attempts \
         WHERE delivery_id NOT IN (SELECT delivery_id FROM deliveries)",
        "SELECT COUNT(*) FROM completions WHERE intent_id NOT IN (SELECT intent_id FROM intents)",
        "SELECT COUNT(*) FROM leases WHERE intent_id NOT IN (SELECT intent_id FROM intents)",
        "SELECT COUNT(*) FROM idempotency_keys WHERE intent_id IS NOT NULL \
         AND intent_id NOT IN (SELECT intent_id FROM intents)",
    ];
    for sql in orphans {
        let n: i64 = db.query_row(sql, [], |r| r.get(0)).expect(sql);
        assert_eq!(n, 0, "{sql}");
    }
}

fn resolve(s: &Server, id: &str, body: serde_json::Value, key: Option<&str>) {
    let mut req = s.req("POST", &format!("/v1/intents/{id}/resolve"));
    if let Some(k) = key {
        req = req.set("idempotency-key", k);
    }
    let r = send(req, Some(body.to_string()));
    assert_eq!(r.status, 200, "{}", r.text);
}

#[test]
fn a_sweep_removes_expired_terminal_intents_with_their_rows_and_keeps_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("axme.db");
    let mut s = Server::start_on(
        &data,
        &["--retention", "off", "--push-retry-schedule", "1h"],
    );

    // Old and live: never removed, whatever its age.
    let live = s.create_intent("agent://retention/live");

    // Old, terminal, created under an Idempotency-Key, claimed (a lease), acked COMPLETED with
    // a reply_to (a completion).
    let worker = "agent://retention/inbox";
    register_inbox(&s, worker, json!({}));
    let mut body = intent_body(worker);
    body["reply_to"] = json!("agent://retention/requester");
    let r = send(
        s.req("POST", "/v1/intents")
            .set("idempotency-key", "retention-claimed"),
        Some(body.to_string()),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let claimed = r.json["intent_id"].as_str().expect("id").to_string();
    let c = claim_one(&s, worker, json!({}));
    let r = s.post(
        &format!("/v1/claims/{}/ack", token(&c)),
        &json!({"status": "COMPLETED", "result": {"done": true}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);

    // Old, terminal, pushed to a receiver (a delivery and its attempt), resolved under an
    // Idempotency-Key.
    let hook = Receiver::start(Reply::ok());
    register(&s, "agent://retention/hook", &hook.url(), json!({}));
    let pushed = s.create_intent("agent://retention/hook");
    hook.wait_hits(1);
    let pushed_delivery = eventually("the push to be delivered", || {
        let d = s.get(&format!("/v1/deliveries?intent_id={pushed}"));
        let first = d.json["deliveries"][0].clone();
        (first["status"] == "delivered").then_some(first)
    });
    resolve(
        &s,
        &pushed,
        json!({"status": "CANCELED", "reason": "done"}),
        Some("retention-resolve"),
    );

    // Old, terminal, but its push is still pending (the receiver is down; retry in an hour).
    let down = format!("http://127.0.0.1:{}/hook", closed_port());
    register(&s, "agent://retention/down", &down, json!({}));
    let pending = s.create_intent("agent://retention/down");
    eventually("the first attempt to fail", || {
        let d = s.get(&format!("/v1/deliveries?intent_id={pending}"));
        let first = d.json["deliveries"][0].clone();
        (first["attempts"].as_array().is_some_and(|a| a.len() == 1)).then_some(())
    });
    resolve(
        &s,
        &pending,
        json!({"status": "FAILED", "error": {"code": "x"}}),
        None,
    );

    // Old terminal intents beyond one batch.
    let plain: Vec<String> = (0..5)
        .map(|_| s.create_intent("agent://retention/plain"))
        .collect();
    for id in &plain {
        resolve(&s, id, json!({"status": "COMPLETED", "result": {}}), None);
    }

    // Everything above was last changed before `cutoff`; what follows, after it.
    std::thread::sleep(Duration::from_millis(5));
    let cutoff = OffsetDateTime::now_utc();
    std::thread::sleep(Duration::from_millis(5));
    let recent = s.create_intent("agent://retention/recent");
    resolve(
        &s,
        &recent,
        json!({"status": "COMPLETED", "result": {}}),
        None,
    );
    let newest = s.create_intent("agent://retention/newest");
    assert_eq!(s.terminate(), Some(0));

    let expired: Vec<&str> = [&claimed, &pushed]
        .into_iter()
        .chain(&plain)
        .map(String::as_str)
        .collect();
    let kept = [&live, &pending, &recent, &newest];
    let db = Connection::open(&data).expect("open");
    // The expired intents hold a row in every table the sweep clears.
    let mut held = [0i64; 7];
    for id in &expired {
        for (i, (_, n)) in rows_of(&db, id).iter().enumerate() {
            held[i] += n;
        }
    }
    let tables = rows_of(&db, &claimed).map(|(t, _)| t);
    assert!(held.iter().all(|n| *n > 0), "{tables:?}: {held:?}");
    let attempts: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM delivery_attempts WHERE delivery_id = ?1",
            [pushed_delivery["delivery_id"]
                .as_str()
                .expect("delivery_id")],
            |r| r.get(0),
        )
        .expect("attempts");
    assert_eq!(attempts, 1);
    let before: Vec<_> = kept.iter().map(|id| rows_of(&db, id)).collect();
    drop(db);

    // A server shutting down does not start a batch.
    let now = cutoff + KEEP;
    assert_eq!(sweep_during(&data, now, 2, true), 0);
    // Two intents per write: the sweep takes several batches.
    assert_eq!(sweep_at(&data, now, 2), expired.len());
    assert_eq!(sweep_at(&data, now, 2), 0, "a second sweep finds nothing");

    let db = Connection::open(&data).expect("open");
    for id in &expired {
        let rows = rows_of(&db, id);
        assert!(
            rows.iter().all(|(_, n)| *n == 0),
            "{id} left rows: {rows:?}"
        );
    }
    for (id, rows) in kept.iter().zip(&before) {
        assert_eq!(&rows_of(&db, id), rows, "{id} lost rows");
    }
    assert_consistent(&db);
    drop(db);

    // The server starts on the swept file and serves what is left.
    let s = Server::start_on(&data, &["--retention", "off"]);
    for id in &expired {
        assert_error(
            &s.get(&format!("/v1/intents/{id}")),
            404,
            "intent_not_found",
        );
    }
    for id in kept {
        let r = s.get(&format!("/v1/intents/{id}/events"));
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(!r.json["events"].as_array().expect("events").is_empty());
    }
    // The key of a removed intent's create went with it.
    let r = send(
        s.req("POST", "/v1/intents")
            .set("idempotency-key", "retention-claimed"),
        Some(body.to_string()),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_ne!(r.json["intent_id"], claimed.as_str());
    assert!(r.header("idempotent-replayed").is_none());
}

/// Event ids are `max + 1`: if the newest event went, the next one would take its id again
/// and a stream resuming from it would skip the new event. The newest event's intent stays.
#[test]
fn the_intent_of_the_newest_event_stays_until_a_newer_one_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("axme.db");
    let mut s = Server::start_on(&data, &["--retention", "off"]);
    let done = s.create_intent("agent://retention/last");
    resolve(
        &s,
        &done,
        json!({"status": "COMPLETED", "result": {}}),
        None,
    );
    let last_event: i64 = s.get(&format!("/v1/intents/{done}/events")).json["events"]
        .as_array()
        .and_then(|e| e.last().cloned())
        .and_then(|e| e["seq"].as_i64())
        .expect("events");
    assert_eq!(last_event, 3);
    assert_eq!(s.terminate(), Some(0));

    let far = OffsetDateTime::now_utc() + Duration::from_secs(10 * 86_400);
    assert_eq!(sweep_at(&data, far, 500), 0, "it holds the newest event");
    let db = Connection::open(&data).expect("open");
    let max_before: i64 = db
        .query_row("SELECT MAX(event_id) FROM events", [], |r| r.get(0))
        .expect("max");
    drop(db);

    let mut s = Server::start_on(&data, &["--retention", "off"]);
    let next = s.create_intent("agent://retention/next");
    assert_eq!(s.terminate(), Some(0));
    assert_eq!(sweep_at(&data, far, 500), 1, "now it may go");

    let db = Connection::open(&data).expect("open");
    let ids: Vec<i64> = db
        .prepare("SELECT event_id FROM events WHERE intent_id = ?1 ORDER BY seq")
        .and_then(|mut st| {
            st.query_map([&next], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<i64>>>()
        })
        .expect("events of the next intent");
    assert_eq!(ids.len(), 2);
    assert!(ids[0] > max_before, "{ids:?} after {max_before}");
    assert_eq!(rows_of(&db, &done).map(|(_, n)| n), [0; 7]);
    assert_consistent(&db);
}

#[test]
fn the_server_sweeps_in_the_background_with_the_configured_retention() {
    let s = Server::start_args(&["--retention", "1s"]);
    let old = s.create_intent("agent://retention/bg");
    resolve(&s, &old, json!({"status": "COMPLETED", "result": {}}), None);
    let live = s.create_intent("agent://retention/bg");
    let newest = s.create_intent("agent://retention/bg-newest");
    resolve(
        &s,
        &newest,
        json!({"status": "COMPLETED", "result": {}}),
        None,
    );

    eventually("the expired intent to be removed", || {
        (s.get(&format!("/v1/intents/{old}")).status == 404).then_some(())
    });
    assert_eq!(
        s.get(&format!("/v1/intents/{live}")).status,
        200,
        "live intents stay"
    );
    assert_eq!(
        s.get(&format!("/v1/intents/{newest}")).status,
        200,
        "it holds the newest event"
    );
    let metrics = s.get("/metrics").text;
    assert!(
        metrics.contains("\naxme_retention_pruned_intents_total 1\n"),
        "{metrics}"
    );
}
