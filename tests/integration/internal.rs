//! The internal binding as a library: a program opens a `Server`, registers in-process handlers
//! with `handle` / `handle_with`, follows events with `events`, and serves the HTTP API on its own
//! listener. Every test here embeds a server in a tokio runtime of its own (fresh database in a
//! temporary directory, `127.0.0.1:0`) and talks to it over HTTP as any client would; what the
//! handlers saw is recorded by the handlers themselves.

use crate::common;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axme::config::ServeConfig;
use axme::model::WaitingReason;
use axme::runtime::internal::{Handler, HandlerOptions, Step, Work};
use axme::runtime::observe::{Events, From as Start};
use axme::server::Server;
use axme::store::events::{EventRow, FirehoseFilter};
use common::{assert_error, send, uuid, Resp};
use serde_json::{json, Value};
use tokio::runtime::Runtime;

const KEY: &str = "axme_internal_test_key_0123456789abcdef";
/// The longest a test waits for something the server does in the background.
const WAIT: Duration = Duration::from_secs(20);

// --- An embedded server ----------------------------------------------------------------------

/// A `Server` embedded in this test's own tokio runtime, serving on `127.0.0.1:0`.
struct Embedded {
    rt: Runtime,
    base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    serving: Option<tokio::task::JoinHandle<Result<(), axme::Error>>>,
    dir: Option<tempfile::TempDir>,
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn config(dir: &tempfile::TempDir) -> ServeConfig {
    let mut config = ServeConfig::new(dir.path().join("axme.db"));
    config.api_key = Some(KEY.to_string());
    config.shutdown_grace_seconds = 5;
    config
}

impl Embedded {
    /// A server on a fresh database; `setup` registers handlers (and may subscribe to events)
    /// before it runs.
    fn start<T>(setup: impl FnOnce(&mut Server, &Runtime) -> T) -> (Embedded, T) {
        Self::start_in(tempfile::tempdir().expect("tempdir"), setup)
    }

    /// A server on the database in `dir` (which may already exist).
    fn start_in<T>(
        dir: tempfile::TempDir,
        setup: impl FnOnce(&mut Server, &Runtime) -> T,
    ) -> (Embedded, T) {
        let rt = runtime();
        let mut server = rt.block_on(Server::open(&config(&dir))).expect("open");
        let extra = setup(&mut server, &rt);
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let serving = rt.spawn(server.run(listener, async {
            let _ = rx.await;
        }));
        let e = Embedded {
            rt,
            base,
            stop: Some(tx),
            serving: Some(serving),
            dir: Some(dir),
        };
        (e, extra)
    }

    /// Shuts the server down gracefully and hands back its directory.
    fn stop(mut self) -> tempfile::TempDir {
        self.shutdown();
        self.dir.take().expect("dir")
    }

    fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(serving) = self.serving.take() {
            let ended = self.rt.block_on(serving);
            if !std::thread::panicking() {
                ended.expect("run task").expect("run ended with an error");
            }
        }
    }

    fn req(&self, method: &str, path: &str) -> ureq::Request {
        common::agent()
            .request(method, &format!("{}{}", self.base, path))
            .set("x-api-key", KEY)
    }

    fn get(&self, path: &str) -> Resp {
        send(self.req("GET", path), None)
    }

    fn post(&self, path: &str, body: &Value) -> Resp {
        send(self.req("POST", path), Some(body.to_string()))
    }

    fn get_as(&self, owner: &str, path: &str) -> Resp {
        send(self.req("GET", path).set("x-owner-agent", owner), None)
    }

    fn post_as(&self, owner: &str, path: &str, body: &Value) -> Resp {
        send(
            self.req("POST", path).set("x-owner-agent", owner),
            Some(body.to_string()),
        )
    }

    /// Creates an intent to `to` with `payload` and extra top-level fields; returns its id.
    fn create(&self, to: &str, payload: Value, extra: Value) -> String {
        let mut body = json!({
            "intent_type": "intent.test.internal.v1",
            "correlation_id": uuid(),
            "to_agent": to,
            "payload": payload,
        });
        for (k, v) in extra.as_object().expect("extra is an object") {
            body[k] = v.clone();
        }
        let r = self.post("/v1/intents", &body);
        assert_eq!(r.status, 200, "create: {}", r.text);
        r.json["intent_id"].as_str().expect("intent_id").to_string()
    }

    fn intent(&self, id: &str) -> Value {
        let r = self.get(&format!("/v1/intents/{id}"));
        assert_eq!(r.status, 200, "{}", r.text);
        r.json["intent"].clone()
    }

    fn events(&self, id: &str) -> Vec<Value> {
        let r = self.get(&format!("/v1/intents/{id}/events"));
        assert_eq!(r.status, 200, "{}", r.text);
        r.json["events"].as_array().expect("events").clone()
    }

    fn event_types(&self, id: &str) -> Vec<String> {
        self.events(id)
            .iter()
            .map(|e| e["event_type"].as_str().expect("event_type").to_string())
            .collect()
    }

    /// Waits until the intent is `status` and returns it.
    fn wait_status(&self, id: &str, status: &str) -> Value {
        wait_until(&format!("intent {id} to be {status}"), || {
            let i = self.intent(id);
            (i["status"] == status).then_some(i)
        })
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Polls `f` until it returns `Some`, or fails naming `what` after `WAIT`.
fn wait_until<T>(what: &str, f: impl FnMut() -> Option<T>) -> T {
    common::poll_until(WAIT, what, f)
}

/// A fresh handler address for one test.
fn address(name: &str) -> String {
    format!("agent://lib/{name}-{}", &uuid()[..8])
}

/// A setup for [`Embedded::start`] that registers `handler` at `addr`.
fn register(
    addr: &str,
    opts: HandlerOptions,
    handler: impl Handler,
) -> impl FnOnce(&mut Server, &Runtime) {
    let addr = addr.to_string();
    move |server, _| {
        server
            .handle_with(&addr, handler, opts)
            .map(|_| ())
            .expect("handle")
    }
}

/// A server with one handler at a fresh address named after `name`; returns both.
fn serve_with(name: &str, opts: HandlerOptions, handler: impl Handler) -> (Embedded, String) {
    let addr = address(name);
    let (srv, ()) = Embedded::start(register(&addr, opts, handler));
    (srv, addr)
}

/// [`serve_with`] with the default concurrency and lease.
fn serve(name: &str, handler: impl Handler) -> (Embedded, String) {
    serve_with(name, HandlerOptions::default(), handler)
}

/// A one-second lease, so that a hand-over that is not settled comes back quickly.
const SHORT_LEASE: HandlerOptions = HandlerOptions {
    concurrency: 4,
    lease_seconds: 1,
};

/// Records every `Work` a handler was given.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Work>>>);

impl Seen {
    fn push(&self, w: &Work) {
        self.0.lock().expect("seen").push(w.clone());
    }

    fn all(&self) -> Vec<Work> {
        self.0.lock().expect("seen").clone()
    }

    fn attempts(&self) -> Vec<i64> {
        self.all().iter().map(|w| w.attempt).collect()
    }
}

fn millis(rfc3339: &str) -> i128 {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{rfc3339} is not RFC 3339: {e}"))
        .unix_timestamp_nanos()
        / 1_000_000
}

fn of_type<'a>(events: &'a [Value], event_type: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["event_type"] == event_type)
        .collect()
}

// --- Steps -----------------------------------------------------------------------------------

#[test]
fn a_completed_step_completes_the_intent_with_the_handler_as_actor() {
    let seen = Seen::default();
    let s2 = seen.clone();
    let addr = address("ok");
    let bare = addr.trim_start_matches("agent://").to_string();
    let (srv, registered) = Embedded::start(|server, _| {
        // A bare address is read as agent://...
        server
            .handle(&bare, move |w: Work| {
                let s = s2.clone();
                async move {
                    s.push(&w);
                    Step::Completed(json!({"echo": w.payload["n"], "attempt": w.attempt}))
                }
            })
            .expect("handle")
    });
    assert_eq!(registered, addr);

    let id = srv.create(&addr, json!({"n": 7}), json!({}));
    let done = srv.wait_status(&id, "COMPLETED");
    assert_eq!(done["result"], json!({"echo": 7, "attempt": 1}));
    assert_eq!(done["delivery_attempt"], 1);
    assert_eq!(
        srv.event_types(&id),
        [
            "intent.created",
            "intent.submitted",
            "intent.delivered",
            "intent.completed"
        ]
    );
    let events = srv.events(&id);
    let delivered = of_type(&events, "intent.delivered")[0];
    assert_eq!(delivered["details"]["via"], "internal", "{delivered}");
    assert_eq!(delivered["details"]["attempt"], 1);
    assert_eq!(delivered["actor"], addr.as_str());
    let completed = of_type(&events, "intent.completed")[0];
    assert_eq!(completed["actor"], addr.as_str(), "{completed}");
    assert_eq!(completed["details"]["result"], done["result"]);

    // The handler saw the intent as it was submitted.
    let work = seen.all();
    assert_eq!(work.len(), 1);
    let w = &work[0];
    assert_eq!(w.intent_id, id);
    assert_eq!(w.intent_type, "intent.test.internal.v1");
    assert_eq!(w.correlation_id, done["correlation_id"].as_str().unwrap());
    assert_eq!(w.from_agent, done["from_agent"].as_str().unwrap());
    assert_eq!(w.to_agent, addr);
    assert_eq!(w.reply_to, None);
    assert_eq!(w.payload, json!({"n": 7}));
    assert_eq!(w.human_task, None);
    assert_eq!(w.attempt, 1);
    assert_eq!(w.created_at, done["created_at"].as_str().unwrap());
}

#[test]
fn a_result_that_is_not_an_object_is_wrapped_as_value() {
    let (srv, addr) = serve("wrap", |w: Work| async move {
        Step::Completed(w.payload["give"].clone())
    });
    for give in [
        json!("hi"),
        json!(42),
        json!([1, "two"]),
        json!(null),
        json!(true),
    ] {
        let id = srv.create(&addr, json!({ "give": give }), json!({}));
        let done = srv.wait_status(&id, "COMPLETED");
        assert_eq!(done["result"], json!({ "value": give }), "{done}");
    }
    // An object is kept as it is.
    let id = srv.create(&addr, json!({"give": {"value": 1, "x": 2}}), json!({}));
    assert_eq!(
        srv.wait_status(&id, "COMPLETED")["result"],
        json!({"value": 1, "x": 2})
    );
}

#[test]
fn a_failure_that_is_not_retryable_fails_the_intent_at_once() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c2 = calls.clone();
    let (srv, addr) = serve("fail", move |w: Work| {
        c2.fetch_add(1, Ordering::SeqCst);
        async move {
            match w.payload["as"].as_str() {
                Some("text") => Step::failed(json!("the amount is missing"), false),
                _ => Step::failed(
                    json!({"code": "bad_amount", "message": "amount must be positive"}),
                    false,
                ),
            }
        }
    });
    let id = srv.create(&addr, json!({"amount": -1}), json!({}));
    let failed = srv.wait_status(&id, "FAILED");
    assert_eq!(
        failed["error"],
        json!({"code": "bad_amount", "message": "amount must be positive"})
    );
    assert_eq!(failed["delivery_attempt"], 1);
    assert_eq!(calls.load(Ordering::SeqCst), 1, "not retried");
    let events = srv.events(&id);
    let last = events.last().expect("events");
    assert_eq!(last["event_type"], "intent.failed");
    assert_eq!(last["actor"], addr.as_str());
    assert!(of_type(&events, "intent.delivery_failed").is_empty());

    // An error given as a string becomes an AXME error object.
    let id = srv.create(&addr, json!({"as": "text"}), json!({}));
    let failed = srv.wait_status(&id, "FAILED");
    assert_eq!(
        failed["error"],
        json!({"code": "handler_failed", "message": "the amount is missing"})
    );
}

#[test]
fn a_retryable_failure_is_handed_over_again_until_it_succeeds() {
    let seen = Seen::default();
    let s2 = seen.clone();
    let (srv, addr) = serve("flaky", move |w: Work| {
        s2.push(&w);
        async move {
            if w.attempt < 3 {
                Step::failed(json!({"code": "busy", "message": "try later"}), true)
            } else {
                Step::Completed(json!({"on_attempt": w.attempt}))
            }
        }
    });
    let id = srv.create(&addr, json!({}), json!({"max_delivery_attempts": 5}));
    let done = srv.wait_status(&id, "COMPLETED");
    assert_eq!(done["result"], json!({"on_attempt": 3}));
    assert_eq!(done["delivery_attempt"], 3);
    assert_eq!(seen.attempts(), [1, 2, 3]);
    assert!(seen.all().iter().all(|w| w.intent_id == id));
    assert_eq!(
        srv.event_types(&id),
        [
            "intent.created",
            "intent.submitted",
            "intent.delivered",
            "intent.delivery_failed",
            "intent.submitted",
            "intent.delivered",
            "intent.delivery_failed",
            "intent.submitted",
            "intent.delivered",
            "intent.completed"
        ]
    );
    let events = srv.events(&id);
    let failures = of_type(&events, "intent.delivery_failed");
    for (n, f) in failures.iter().enumerate() {
        assert_eq!(f["details"]["attempt"], n as i64 + 1, "{f}");
        assert_eq!(f["details"]["error"]["code"], "busy", "{f}");
        assert_eq!(f["actor"], addr.as_str());
    }
}

#[test]
fn used_up_attempts_fail_with_delivery_failed_and_a_redrive_hands_it_over_again() {
    let seen = Seen::default();
    let s2 = seen.clone();
    let failing = Arc::new(AtomicBool::new(true));
    let f2 = failing.clone();
    let (srv, addr) = serve("down", move |w: Work| {
        s2.push(&w);
        let fail = f2.load(Ordering::SeqCst);
        async move {
            if fail {
                Step::failed(json!({"code": "downstream_down"}), true)
            } else {
                Step::Completed(json!({"attempt": w.attempt}))
            }
        }
    });
    let id = srv.create(&addr, json!({}), json!({"max_delivery_attempts": 2}));
    let failed = srv.wait_status(&id, "FAILED");
    assert_eq!(failed["error"]["code"], "delivery_failed", "{failed}");
    assert_eq!(failed["delivery_attempt"], 2);
    assert_eq!(seen.attempts(), [1, 2]);
    let events = srv.events(&id);
    assert_eq!(of_type(&events, "intent.delivery_failed").len(), 2);
    assert_eq!(events.last().unwrap()["event_type"], "intent.failed");

    // The downstream is back: a redrive hands the intent to the handler again, from attempt 1.
    failing.store(false, Ordering::SeqCst);
    let r = srv.post(&format!("/v1/intents/{id}/redrive"), &json!({}));
    assert_eq!(r.status, 200, "{}", r.text);
    let done = srv.wait_status(&id, "COMPLETED");
    assert_eq!(done["result"], json!({"attempt": 1}));
    assert_eq!(seen.attempts(), [1, 2, 1]);
    let events = srv.events(&id);
    let last = events.last().unwrap();
    assert_eq!(last["event_type"], "intent.completed");
    assert_eq!(last["actor"], addr.as_str());

    // A completed intent is not redriven.
    let r = srv.post(&format!("/v1/intents/{id}/redrive"), &json!({}));
    assert_error(&r, 409, "not_redrivable");
}

#[test]
fn a_handler_that_panics_is_a_failed_attempt_and_is_retried() {
    let seen = Seen::default();
    let s2 = seen.clone();
    let (srv, addr) = serve("panics", move |w: Work| {
        s2.push(&w);
        async move {
            if w.attempt == 1 {
                panic!("boom at attempt {}", w.attempt);
            }
            Step::Completed(json!({"survived": true}))
        }
    });
    let id = srv.create(&addr, json!({}), json!({"max_delivery_attempts": 3}));
    let done = srv.wait_status(&id, "COMPLETED");
    assert_eq!(done["result"], json!({"survived": true}));
    assert_eq!(seen.attempts(), [1, 2]);
    let events = srv.events(&id);
    let failures = of_type(&events, "intent.delivery_failed");
    assert_eq!(failures.len(), 1, "{events:?}");
    assert_eq!(
        failures[0]["details"]["error"],
        json!({"code": "handler_panicked", "message": "boom at attempt 1"})
    );
    assert_eq!(failures[0]["details"]["attempt"], 1);

    // The server keeps working after the panic.
    let id = srv.create(&addr, json!({}), json!({}));
    srv.wait_status(&id, "COMPLETED");
}

#[test]
fn waiting_and_in_progress_leave_the_intent_to_be_continued_through_the_api() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c2 = calls.clone();
    let (srv, addr) = serve_with("later", SHORT_LEASE, move |w: Work| {
        c2.fetch_add(1, Ordering::SeqCst);
        async move {
            match w.payload["step"].as_str() {
                Some("wait") => Step::Waiting(WaitingReason::Tool),
                _ => Step::InProgress,
            }
        }
    });
    let waiting = srv.create(&addr, json!({"step": "wait"}), json!({}));
    let running = srv.create(&addr, json!({"step": "run"}), json!({}));
    let w = srv.wait_status(&waiting, "WAITING");
    assert_eq!(w["waiting_reason"], "WAITING_FOR_TOOL", "{w}");
    srv.wait_status(&running, "IN_PROGRESS");
    let ev = srv.events(&waiting);
    let last = ev.last().unwrap();
    assert_eq!(last["event_type"], "intent.waiting");
    assert_eq!(last["waiting_reason"], "WAITING_FOR_TOOL");
    assert_eq!(last["actor"], addr.as_str());
    assert_eq!(
        srv.events(&running).last().unwrap()["event_type"],
        "intent.in_progress"
    );

    // The claim was settled: its 1 s lease passing does not hand the intents over again. A
    // reminder due a second from now has fired, so the lease timer's round past it has run.
    let sentinel = srv.create(
        &address("sentinel"),
        json!({}),
        json!({"remind_after_seconds": 1}),
    );
    wait_until("the sentinel's reminder", || {
        (srv.intent(&sentinel)["remind_count"] == 1).then_some(())
    });
    assert_eq!(srv.intent(&waiting)["status"], "WAITING");
    assert_eq!(srv.intent(&running)["status"], "IN_PROGRESS");
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    // Someone continues them through the API.
    let r = srv.post(
        &format!("/v1/intents/{running}/resolve"),
        &json!({"status": "COMPLETED", "result": {"finished": "later"}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(srv.intent(&running)["result"], json!({"finished": "later"}));
    let r = srv.post(
        &format!("/v1/intents/{waiting}/resolve"),
        &json!({"status": "COMPLETED", "result": {}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
}

#[test]
fn complete_after_waits_for_time_then_completes() {
    let (srv, addr) = serve("timer", |_w: Work| async move {
        Step::CompleteAfter {
            delay: Duration::from_secs(1),
            result: json!({"done": true}),
        }
    });
    let id = srv.create(&addr, json!({}), json!({}));
    let done = srv.wait_status(&id, "COMPLETED");
    assert_eq!(done["result"], json!({"done": true}));
    let events = srv.events(&id);
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "intent.created",
            "intent.submitted",
            "intent.delivered",
            "intent.waiting",
            "intent.completed"
        ]
    );
    let waiting = &events[3];
    assert_eq!(waiting["waiting_reason"], "WAITING_FOR_TIME", "{waiting}");
    assert_eq!(waiting["actor"], addr.as_str());
    let completed = &events[4];
    assert_eq!(completed["actor"], "axme/runtime", "{completed}");
    assert_eq!(completed["details"]["result"], json!({"done": true}));
    // Not before it was due.
    let waited =
        millis(completed["at"].as_str().unwrap()) - millis(waiting["at"].as_str().unwrap());
    assert!(
        waited >= 990,
        "completed {waited} ms after it started waiting"
    );
}

#[test]
fn ask_human_puts_a_task_in_the_owners_inbox_until_it_is_decided() {
    let boss = address("boss");
    let other = address("other");
    let b = boss.clone();
    let (srv, addr) = serve("asks", move |w: Work| {
        let owner = b.clone();
        async move {
            let task = (w.payload["own_task"] == true).then(|| {
                json!({"title": "Approve the spend", "task_type": "approval",
                               "description": "500 EUR for a conference"})
            });
            Step::AskHuman { owner, task }
        }
    });
    let with_task = srv.create(&addr, json!({"own_task": true}), json!({}));
    let from_payload = srv.create(&addr, json!({"title": "Sign the contract"}), json!({}));
    for id in [&with_task, &from_payload] {
        let w = srv.wait_status(id, "WAITING");
        assert_eq!(w["waiting_reason"], "WAITING_FOR_HUMAN", "{w}");
        assert_eq!(w["pending_with"]["type"], "human", "{w}");
    }
    assert_eq!(
        srv.intent(&with_task)["human_task"]["title"],
        "Approve the spend"
    );

    // Both are tasks of the owner, and of nobody else.
    let r = srv.get_as(&boss, "/v1/me/tasks");
    assert_eq!(r.status, 200, "{}", r.text);
    let tasks: BTreeMap<String, Value> = r.json["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| (t["intent_id"].as_str().unwrap().to_string(), t.clone()))
        .collect();
    assert_eq!(tasks.len(), 2, "{}", r.text);
    assert_eq!(
        tasks[&with_task]["human_task"]["title"],
        "Approve the spend"
    );
    assert_eq!(
        tasks[&from_payload]["human_task"]["title"],
        "Sign the contract"
    );
    let r = srv.get_as(&other, "/v1/me/tasks");
    assert_eq!(r.json["tasks"], json!([]), "{}", r.text);

    // Approve one, reject the other.
    let r = srv.post_as(
        &boss,
        &format!("/v1/inbox/{with_task}/approve"),
        &json!({"comment": "fine"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let done = srv.wait_status(&with_task, "COMPLETED");
    assert_eq!(done["result"]["decision"], "approve", "{done}");
    assert_eq!(done["result"]["decided_by"], boss.as_str());
    assert_eq!(done["result"]["comment"], "fine");
    let r = srv.post_as(
        &boss,
        &format!("/v1/inbox/{from_payload}/reject"),
        &json!({"comment": "not now"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let failed = srv.wait_status(&from_payload, "FAILED");
    assert_eq!(failed["error"]["code"], "rejected", "{failed}");
    let r = srv.get_as(&boss, "/v1/me/tasks");
    assert_eq!(r.json["tasks"], json!([]), "{}", r.text);
}

#[test]
fn ask_human_with_an_owner_that_is_not_an_address_fails_the_intent_naming_the_owner() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c2 = calls.clone();
    let (srv, addr) = serve_with("bad-owner", SHORT_LEASE, move |_w: Work| {
        c2.fetch_add(1, Ordering::SeqCst);
        async move {
            Step::AskHuman {
                owner: "https://example.com/boss".into(),
                task: None,
            }
        }
    });
    let id = srv.create(&addr, json!({}), json!({"max_delivery_attempts": 3}));
    let failed = srv.wait_status(&id, "FAILED");
    let events = srv.events(&id);
    // Not left DELIVERED until its lease runs out, again and again, with the reason lost.
    assert_eq!(
        failed["error"]["code"], "invalid_agent_address",
        "{failed}\n{events:#?}"
    );
    assert_eq!(failed["error"]["details"]["field"], "owner", "{failed}");
    assert_eq!(failed["delivery_attempt"], 1);
    assert!(
        of_type(&events, "intent.delivery_failed").is_empty(),
        "{events:#?}"
    );
    assert_eq!(events.last().unwrap()["actor"], addr.as_str());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn ask_human_with_a_task_that_is_not_a_human_task_is_refused() {
    let boss = address("boss");
    let b = boss.clone();
    let (srv, addr) = serve("bad-task", move |_w: Work| {
        let owner = b.clone();
        async move {
            Step::AskHuman {
                owner,
                task: Some(json!("approve this, please")),
            }
        }
    });
    let id = srv.create(&addr, json!({}), json!({}));
    let settled = wait_until("the step to be recorded", || {
        let i = srv.intent(&id);
        (i["status"] != "SUBMITTED" && i["status"] != "DELIVERED").then_some(i)
    });
    // The intent FAILS at once, naming the field, and never shows a human_task that is not one.
    assert_eq!(settled["status"], "FAILED", "{settled}");
    assert_eq!(
        settled["error"]["details"]["field"], "human_task",
        "{settled}"
    );
    assert!(settled["human_task"].is_null(), "{settled}");
    let r = srv.get_as(&boss, "/v1/me/tasks");
    for t in r.json["tasks"].as_array().expect("tasks") {
        assert!(t["human_task"]["title"].is_string(), "{}", r.text);
    }
}

#[test]
fn a_handler_that_outlives_its_lease_loses_the_intent_to_the_next_attempt() {
    let seen = Seen::default();
    let s2 = seen.clone();
    let first_done = Arc::new(AtomicBool::new(false));
    let second_called = Arc::new(AtomicBool::new(false));
    let (d2, c2) = (first_done.clone(), second_called.clone());
    let (srv, addr) = serve_with("slow", SHORT_LEASE, move |w: Work| {
        s2.push(&w);
        let (done, second) = (d2.clone(), c2.clone());
        async move {
            if w.attempt == 1 {
                // Outlives its lease: returns only once the next attempt has been handed out
                // (at most 30 s, so a broken expiry fails the test instead of hanging it).
                for _ in 0..1500 {
                    if second.load(Ordering::SeqCst) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                done.store(true, Ordering::SeqCst);
                return Step::Completed(json!({"by": "first"}));
            }
            second.store(true, Ordering::SeqCst);
            Step::Completed(json!({"by": "second"}))
        }
    });
    let id = srv.create(&addr, json!({}), json!({}));
    let done = srv.wait_status(&id, "COMPLETED");
    assert_eq!(done["result"], json!({"by": "second"}));
    wait_until("the first call to end", || {
        first_done.load(Ordering::SeqCst).then_some(())
    });
    // The late result of the first call is not recorded.
    std::thread::sleep(Duration::from_millis(300));
    let events = srv.events(&id);
    assert_eq!(of_type(&events, "intent.completed").len(), 1, "{events:?}");
    let expired = of_type(&events, "intent.delivery_failed");
    assert_eq!(expired.len(), 1, "{events:?}");
    assert_eq!(expired[0]["details"]["reason"], "lease_expired");
    assert_eq!(srv.intent(&id)["result"], json!({"by": "second"}));
    assert_eq!(seen.attempts(), [1, 2]);
}

#[test]
fn an_intent_escalated_to_a_handler_is_handed_to_it() {
    let seen = Seen::default();
    let s2 = seen.clone();
    let (srv, addr) = serve("escalation", move |w: Work| {
        s2.push(&w);
        async move { Step::Completed(json!({"taken_over": true})) }
    });
    let nobody = address("nobody");
    let id = srv.create(
        &nobody,
        json!({}),
        json!({"remind_after_seconds": 1, "escalate_to": addr}),
    );
    let done = srv.wait_status(&id, "COMPLETED");
    assert_eq!(done["result"], json!({"taken_over": true}));
    assert_eq!(done["to_agent"], addr.as_str());
    let work = seen.all();
    assert_eq!(work.len(), 1);
    assert_eq!(work[0].to_agent, addr);
    let types = srv.event_types(&id);
    let at = types
        .iter()
        .position(|t| t == "intent.transfer")
        .expect("transfer");
    assert_eq!(
        types[at - 2..],
        [
            "intent.reminder",
            "intent.escalated",
            "intent.transfer",
            "intent.delivered",
            "intent.completed"
        ][..]
    );
}

#[test]
fn a_call_in_flight_at_a_graceful_stop_is_recorded_and_not_repeated() {
    let started = Arc::new(AtomicBool::new(false));
    let s2 = started.clone();
    let (srv, addr) = serve("in-flight", move |_w: Work| {
        let started = s2.clone();
        async move {
            started.store(true, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(800)).await;
            Step::Completed(json!({"finished": "during the stop"}))
        }
    });
    let id = srv.create(&addr, json!({}), json!({}));
    wait_until("the handler to start", || {
        started.load(Ordering::SeqCst).then_some(())
    });
    let dir = srv.stop();

    // Started again on the same database: the result is there, and nothing is handed over again.
    let calls = Arc::new(AtomicUsize::new(0));
    let c2 = calls.clone();
    let (srv, ()) = Embedded::start_in(
        dir,
        register(&addr, HandlerOptions::default(), move |_w: Work| {
            c2.fetch_add(1, Ordering::SeqCst);
            async move { Step::Completed(json!({"finished": "after the restart"})) }
        }),
    );
    let i = srv.intent(&id);
    assert_eq!(i["status"], "COMPLETED", "{i}");
    assert_eq!(i["result"], json!({"finished": "during the stop"}));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[test]
fn a_handler_never_runs_more_calls_at_once_than_its_concurrency() {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (f2, m2) = (in_flight.clone(), most.clone());
    let opts = HandlerOptions {
        concurrency: 1,
        lease_seconds: 60,
    };
    let (srv, addr) = serve_with("one-at-a-time", opts, move |_w: Work| {
        let (f, m) = (f2.clone(), m2.clone());
        async move {
            let now = f.fetch_add(1, Ordering::SeqCst) + 1;
            m.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            f.fetch_sub(1, Ordering::SeqCst);
            Step::Completed(json!({}))
        }
    });
    let ids: Vec<String> = (0..6)
        .map(|_| srv.create(&addr, json!({}), json!({})))
        .collect();
    for id in &ids {
        srv.wait_status(id, "COMPLETED");
    }
    assert_eq!(most.load(Ordering::SeqCst), 1);
}

// --- Registration ----------------------------------------------------------------------------

#[test]
fn registering_twice_or_a_bad_address_or_bad_options_is_an_error() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = rt.block_on(Server::open(&config(&dir))).expect("open");
    let ok = |_w: Work| async move { Step::Completed(json!({})) };

    assert_eq!(
        server.handle("agent://lib/dup", ok).expect("first"),
        "agent://lib/dup"
    );
    for again in ["agent://lib/dup", "lib/dup"] {
        let e = server.handle(again, ok).expect_err("a second handler");
        assert_eq!(e.code(), "handler_exists", "{again}: {e}");
    }
    // The built-in agents are taken too.
    for builtin in [
        "agent://internal/delay",
        "agent://internal/approval",
        "agent://internal/notify",
    ] {
        let e = server.handle(builtin, ok).expect_err(builtin);
        assert_eq!(e.code(), "handler_exists", "{builtin}: {e}");
    }
    for bad in [
        "",
        "agent://",
        "http://lib/x",
        "lib/has space",
        "lib/tab\there",
    ] {
        let e = server.handle(bad, ok).expect_err(bad);
        assert_eq!(e.code(), "invalid_agent_address", "{bad:?}: {e}");
    }
    for opts in [
        HandlerOptions {
            concurrency: 0,
            lease_seconds: 30,
        },
        HandlerOptions {
            concurrency: 1,
            lease_seconds: 0,
        },
    ] {
        let e = server
            .handle_with("agent://lib/opts", ok, opts)
            .expect_err("bad options");
        assert_eq!(e.code(), "schema_invalid", "{opts:?}: {e}");
    }
    // Nothing of the refused registrations stuck.
    assert_eq!(
        server.internal_addresses(),
        [
            "agent://internal/approval",
            "agent://internal/delay",
            "agent://internal/notify",
            "agent://lib/dup"
        ]
    );
}

#[test]
fn agents_and_capabilities_show_the_internal_binding() {
    let (srv, addr) = serve(
        "listed",
        |_w: Work| async move { Step::Completed(json!({})) },
    );
    let r = srv.get("/v1/agents");
    assert_eq!(r.status, 200, "{}", r.text);
    let modes: BTreeMap<String, String> = r.json["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .map(|a| {
            (
                a["address"].as_str().unwrap().to_string(),
                a["delivery_mode"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for internal in [
        addr.as_str(),
        "agent://internal/delay",
        "agent://internal/approval",
        "agent://internal/notify",
    ] {
        assert_eq!(
            modes.get(internal).map(String::as_str),
            Some("internal"),
            "{internal} in {}",
            r.text
        );
    }

    let r = srv.get("/v1/capabilities");
    assert_eq!(r.status, 200, "{}", r.text);
    let caps: HashSet<&str> = r.json["capabilities"]
        .as_array()
        .expect("capabilities")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for want in [
        "bindings.internal",
        "agents.internal.delay",
        "agents.internal.approval",
        "agents.internal.notify",
        "events.subscribe",
    ] {
        assert!(caps.contains(want), "{want} missing from {}", r.text);
    }
}

// --- In-process events -----------------------------------------------------------------------

/// Reads `n` events from `events`, then checks that no further one comes.
fn take(rt: &Runtime, events: &mut Events, n: usize) -> Vec<EventRow> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let e = rt
            .block_on(async { tokio::time::timeout(WAIT, events.next()).await })
            .unwrap_or_else(|_| panic!("only {} of {n} events came", out.len()))
            .expect("next event");
        out.push(e);
    }
    let extra = rt
        .block_on(async { tokio::time::timeout(Duration::from_millis(300), events.next()).await });
    if let Ok(e) = extra {
        panic!("an event more than the {n} expected: {e:?}");
    }
    out
}

/// `(intent_id, seq, event_type, status)` of every event of these intents, as the API lists
/// them, in the order of `ids`.
fn api_events(srv: &Embedded, ids: &[String]) -> BTreeMap<String, Vec<(i64, String, String)>> {
    ids.iter()
        .map(|id| {
            let list = srv
                .events(id)
                .iter()
                .map(|e| {
                    (
                        e["seq"].as_i64().unwrap(),
                        e["event_type"].as_str().unwrap().to_string(),
                        e["status"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            (id.clone(), list)
        })
        .collect()
}

/// Checks a stream of events: commit order (event ids increase) and, per intent, exactly the
/// events the API lists for it, in order, none missing.
fn assert_complete(
    got: &[EventRow],
    want: &BTreeMap<String, Vec<(i64, String, String)>>,
    what: &str,
) {
    for pair in got.windows(2) {
        assert!(
            pair[0].event_id < pair[1].event_id,
            "{what}: out of order: {} then {}",
            pair[0].event_id,
            pair[1].event_id
        );
    }
    let mut per_intent: BTreeMap<String, Vec<(i64, String, String)>> = BTreeMap::new();
    for e in got {
        per_intent.entry(e.intent_id.clone()).or_default().push((
            e.seq,
            e.event_type.clone(),
            e.status.as_str().to_string(),
        ));
    }
    assert_eq!(&per_intent, want, "{what}");
    for (id, list) in want {
        let seqs: Vec<i64> = list.iter().map(|(s, _, _)| *s).collect();
        let expected: Vec<i64> = (1..=list.len() as i64).collect();
        assert_eq!(seqs, expected, "{what}: gaps in the events of {id}");
    }
}

#[test]
fn events_follow_the_log_in_commit_order_from_any_position() {
    let obs = address("obs");
    let other = address("obs-other");
    let handler = |w: Work| async move { Step::Completed(json!({"n": w.payload["n"]})) };

    // A first run leaves some history.
    let (srv, ()) = Embedded::start(register(&obs, HandlerOptions::default(), handler));
    let before: Vec<String> = (0..3)
        .map(|n| srv.create(&obs, json!({ "n": n }), json!({})))
        .collect();
    for id in &before {
        srv.wait_status(id, "COMPLETED");
    }
    let history = api_events(&srv, &before);
    let history_len: usize = history.values().map(Vec::len).sum();
    let dir = srv.stop();

    // The second run subscribes from the beginning, from now, after a position, and filtered.
    let (o, x) = (obs.clone(), other.clone());
    let (srv, mut subs) = Embedded::start_in(dir, move |server, rt| {
        server
            .handle(&o, handler)
            .expect("handle again after a restart");
        server.handle(&x, handler).expect("handle");
        let sub = |from, filter| rt.block_on(server.events(from, filter)).expect("events");
        let only_other = FirehoseFilter {
            to_agent: Some(x.clone()),
            ..FirehoseFilter::default()
        };
        vec![
            sub(Start::Beginning, FirehoseFilter::default()),
            sub(Start::Now, FirehoseFilter::default()),
            sub(Start::After(5), FirehoseFilter::default()),
            sub(Start::Beginning, only_other),
        ]
    });
    let only_other = subs.pop().unwrap();
    let after_5 = subs.pop().unwrap();
    let mut now = subs.pop().unwrap();
    let beginning = subs.pop().unwrap();

    // One subscriber follows live while intents are submitted from several threads at once.
    let live = srv.rt.spawn(async move {
        let mut got = Vec::new();
        loop {
            match tokio::time::timeout(Duration::from_secs(3), now.next()).await {
                Ok(e) => got.push(e.expect("next")),
                Err(_) => return got,
            }
        }
    });
    let created: Vec<(String, bool)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let srv = &srv;
                let (obs, other) = (&obs, &other);
                scope.spawn(move || {
                    (0..5)
                        .map(|n| {
                            let to_other = (t + n) % 3 == 0;
                            let to = if to_other { other } else { obs };
                            (srv.create(to, json!({ "n": n }), json!({})), to_other)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("thread"))
            .collect()
    });
    for (id, _) in &created {
        srv.wait_status(id, "COMPLETED");
    }
    let new_ids: Vec<String> = created.iter().map(|(id, _)| id.clone()).collect();
    let other_ids: Vec<String> = created
        .iter()
        .filter(|(_, o)| *o)
        .map(|(id, _)| id.clone())
        .collect();
    let fresh = api_events(&srv, &new_ids);
    let fresh_len: usize = fresh.values().map(Vec::len).sum();
    let mut all = history.clone();
    all.extend(fresh.clone());

    // From the beginning: everything, history included, read long after it was written.
    let mut beginning = beginning;
    let got = take(&srv.rt, &mut beginning, history_len + fresh_len);
    assert_complete(&got, &all, "from the beginning");
    assert_eq!(beginning.cursor(), got.last().unwrap().event_id);

    // From now: exactly what the second run wrote, followed live.
    let live = srv.rt.block_on(live).expect("live task");
    assert_complete(&live, &fresh, "from now (live)");
    assert!(live[0].event_id > got[history_len - 1].event_id);

    // After a position: the same log from there on.
    let mut after_5 = after_5;
    let tail: Vec<EventRow> = got.iter().filter(|e| e.event_id > 5).cloned().collect();
    let got_after = take(&srv.rt, &mut after_5, tail.len());
    assert_eq!(
        got_after.iter().map(|e| e.event_id).collect::<Vec<_>>(),
        tail.iter().map(|e| e.event_id).collect::<Vec<_>>()
    );
    assert!(got_after[0].event_id > 5);

    // Filtered: only the intents to the other address, all of their events.
    let mut only_other = only_other;
    let want_other = api_events(&srv, &other_ids);
    let n: usize = want_other.values().map(Vec::len).sum();
    assert!(n > 0);
    let got_other = take(&srv.rt, &mut only_other, n);
    assert_complete(&got_other, &want_other, "filtered by to_agent");
}

// --- The example -----------------------------------------------------------------------------

#[test]
fn the_internal_agent_example_runs_to_completion() {
    // Tests run from target/<profile>/deps/; examples are built into target/<profile>/examples/.
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>");
    let example = profile_dir.join("examples").join("internal_agent");
    assert!(
        example.is_file(),
        "the example binary {} is missing: build it with `cargo build --example internal_agent` \
         (a plain `cargo test` builds examples too)",
        example.display()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(&example)
        .arg(dir.path())
        .env_remove("AXME_API_KEY")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run the example");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the example exited with {}:\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("done: COMPLETED"), "{stdout}");
    assert!(
        dir.path().join("internal-example.db").exists(),
        "the example keeps its database in the directory it was given"
    );
}

/// A workflow step assigned to an agent with an in-process handler runs through that handler;
/// its result completes the step and the workflow.
#[test]
fn a_workflow_step_of_an_internal_agent_runs_through_its_handler() {
    let addr = address("step");
    let a2 = addr.clone();
    let (srv, _) = Embedded::start(|server, _| {
        server
            .handle(&a2, |w: Work| async move {
                Step::Completed(
                    json!({"doubled": w.payload["parent_payload"]["n"].as_i64().map(|n| n * 2)}),
                )
            })
            .expect("handle")
    });
    let bundle = json!({
        "scenario_id": "internal.step.v1",
        "agents": [{"role": "calc", "address": addr, "delivery_mode": "internal"}],
        "workflow": {"steps": [{"step_id": "double", "tool_id": "tool.agent.task.v1",
                                "assigned_to": "calc"}]},
        "intent": {"type": "intent.demo.internal.v1", "payload": {"n": 21}}
    });
    let r = srv.post("/v1/scenarios/apply", &bundle);
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.json["intent_id"].as_str().expect("intent_id").to_string();
    let done = srv.wait_status(&id, "COMPLETED");
    assert_eq!(
        done["result"]["steps"]["double"],
        json!({"doubled": 42}),
        "{done}"
    );
}
