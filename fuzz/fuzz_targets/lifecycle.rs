//! Arbitrary sequences of operations on one intent, run by the real service functions on an
//! in-memory database (each input in a transaction rolled back after it): resolve, progress,
//! ack, resume, inbox claims (claim, ack, nack, extend), redrive, deadlines, human-task
//! decisions, and bare status changes through `transition`. The first byte shapes the intent (human task, reply_to, a passed deadline, its
//! attempt budget); each later byte is one operation, the next byte its argument. After every
//! operation:
//! - a refused operation wrote nothing at all (the writer would otherwise have to roll back
//!   its whole batch) and its error is one of the expected kinds, never an internal one;
//! - resolve, progress and a bare status change succeed exactly when SPEC.md's table (written
//!   out here independently of `service::lifecycle`) allows the move, and redrive exactly when
//!   the intent FAILED with `delivery_failed`;
//! - the history is whole: `seq` 1, 2, 3 … without gaps, every status change legal or the
//!   documented redrive (which follows a `delivery_failed` failure), each status event carrying
//!   its status, WAITING always with a reason and only it, and the intent's status and
//!   `last_seq` those of its last event. So a terminal intent stays terminal but for redrive.
#![no_main]

use axme::fuzzing::{self, Connection, Tx};
use axme::model::{Status, WaitingReason};
use axme::service::claims::{self, AckRequest, ClaimRequest, NackRequest};
use axme::service::effects::transition;
use axme::service::history::Change;
use axme::service::inbox::{self, Decision};
use axme::service::intents;
use axme::service::{requests, resume};
use axme::store::events::EventRow;
use axme::store::intents::IntentRow;
use axme::Error;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

const AGENT: &str = "agent://fuzz/worker";
const CALLER: &str = "agent://fuzz/caller";

/// SPEC.md's legal moves ("Intents and their lifecycle").
fn legal(from: Status, to: Status) -> bool {
    use Status::*;
    let table: &[(Status, &[Status])] = &[
        (Created, &[Submitted]),
        (
            Submitted,
            &[
                Delivered, InProgress, Waiting, Completed, Failed, Canceled, TimedOut,
            ],
        ),
        (
            Delivered,
            &[
                Acknowledged,
                InProgress,
                Waiting,
                Completed,
                Failed,
                Canceled,
                TimedOut,
                Submitted,
            ],
        ),
        (
            Acknowledged,
            &[InProgress, Waiting, Completed, Failed, Canceled, TimedOut],
        ),
        (
            InProgress,
            &[Waiting, Completed, Failed, Canceled, TimedOut],
        ),
        (
            Waiting,
            &[InProgress, Completed, Failed, Canceled, TimedOut],
        ),
    ];
    table.iter().any(|(f, tos)| *f == from && tos.contains(&to))
}

fn error_code(json_text: Option<&str>) -> Option<String> {
    let v: Value = serde_json::from_str(json_text?).ok()?;
    v.get("code")?.as_str().map(str::to_string)
}

/// The bytes of the input, one at a time; zeros once they run out.
struct Bytes<'a>(std::slice::Iter<'a, u8>);

impl Bytes<'_> {
    fn next(&mut self) -> u8 {
        self.0.next().copied().unwrap_or(0)
    }
}

fn pick<T: Copy>(items: &[T], b: u8) -> T {
    items[b as usize % items.len()]
}

fn read(conn: &Tx, id: &str) -> (IntentRow, Vec<EventRow>) {
    let intent = intents::get(conn, id).expect("the intent exists");
    let events = intents::events_since(conn, id, 0).expect("its events");
    (intent, events)
}

/// The whole-history invariants (see the module comment).
fn check_history(intent: &IntentRow, events: &[EventRow]) {
    let mut status = Status::Created;
    let mut last_failure: Option<String> = None;
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.seq, i as i64 + 1, "seq gap in {events:#?}");
        assert_eq!(
            e.waiting_reason.is_some(),
            e.status == Status::Waiting,
            "waiting reason of event {}",
            e.seq
        );
        let named = Status::ALL
            .into_iter()
            .find(|s| s.event_type() == e.event_type);
        if i == 0 {
            assert_eq!((named, e.status), (Some(Status::Created), Status::Created));
            continue;
        }
        if let Some(s) = named {
            assert_eq!(
                s, e.status,
                "event {} {} carries {}",
                e.seq, e.event_type, e.status
            );
        }
        if e.status != status {
            assert_eq!(
                named,
                Some(e.status),
                "status {status} -> {} by a {} event",
                e.status,
                e.event_type
            );
            let details: Value = serde_json::from_str(&e.details).expect("details are JSON");
            let redrive = status == Status::Failed
                && e.status == Status::Submitted
                && details["redrive"] == json!(true);
            assert!(
                legal(status, e.status) || redrive,
                "illegal move {status} -> {} at seq {}",
                e.status,
                e.seq
            );
            if redrive {
                assert_eq!(
                    last_failure.as_deref(),
                    Some("delivery_failed"),
                    "redrive of an intent that did not fail delivery"
                );
            }
            if e.status == Status::Failed {
                last_failure = details["error"]["code"].as_str().map(str::to_string);
            }
            status = e.status;
        }
    }
    assert_eq!(
        intent.status, status,
        "the intent is not its last event's status"
    );
    assert_eq!(intent.last_seq, events.len() as i64);
    assert_eq!(
        intent.waiting_reason.is_some(),
        intent.status == Status::Waiting
    );
}

/// The intent the first byte asks for, read by the create-intent reader like a request.
fn create(conn: &Tx, shape: u8) -> IntentRow {
    let mut body = json!({
        "intent_type": "fuzz.lifecycle.v1",
        "correlation_id": "0f8fad5b-d9cb-469f-a165-70867728950e",
        "to_agent": AGENT,
        "payload": {"n": shape},
        "max_delivery_attempts": 1 + (shape >> 5) as i64 % 4,
    });
    if shape & 1 != 0 {
        let mut task = json!({"title": "decide"});
        if shape & 8 != 0 {
            task["allowed_outcomes"] = json!(["approve", "reject"]);
        }
        if shape & 16 != 0 {
            task["required_comment"] = json!(true);
        }
        body["human_task"] = task;
    }
    if shape & 2 != 0 {
        body["reply_to"] = json!(CALLER);
    }
    if shape & 4 != 0 {
        body["deadline_at"] = json!("2000-01-01T00:00:00Z");
    }
    let req = requests::create_intent(&body, 1024).expect("a valid create");
    intents::create(conn, req, CALLER).expect("created").intent
}

/// What an operation is expected to do, where the table alone decides.
enum Expect {
    /// Succeeds exactly when the move is legal.
    Move(Status),
    /// Succeeds exactly when the intent FAILED with `delivery_failed`.
    Redrive,
    /// Decided by more than the table (leases, tasks, deadlines): only the invariants hold.
    Free,
}

thread_local! {
    /// One migrated in-memory database; each input runs in a transaction rolled back after it
    /// (as the writer runs operations inside `BEGIN IMMEDIATE`), so every input starts from the
    /// same empty database and a failing input replays alone.
    static DB: Connection = fuzzing::memory_db().expect("an in-memory database");
}

fuzz_target!(|data: &[u8]| {
    DB.with(|conn| {
        conn.execute_batch("BEGIN IMMEDIATE").expect("begin");
        run(&Tx::sqlite(conn), data);
        conn.execute_batch("ROLLBACK").expect("rollback");
    })
});

fn run(conn: &Tx, data: &[u8]) {
    let mut input = Bytes(data.iter());
    let intent = create(conn, input.next());
    let id = intent.intent_id.clone();
    let (_, events) = read(conn, &id);
    check_history(&intent, &events);
    let mut tokens: Vec<String> = Vec::new();

    for _ in 0..64 {
        if input.0.as_slice().is_empty() {
            break;
        }
        let (before, _) = read(conn, &id);
        let changes = conn.total_changes();
        let op = input.next();
        let arg = input.next();
        let token = if tokens.is_empty() {
            "lease_none".to_string()
        } else {
            tokens[arg as usize % tokens.len()].clone()
        };
        let (expect, result): (Expect, Result<(), Error>) = match op % 15 {
            0..=2 => {
                let b = match op % 15 {
                    0 => json!({"status": "COMPLETED", "result": {"ok": true}}),
                    1 => json!({"status": "FAILED", "error": {"code": "boom"}}),
                    _ => json!({"status": "CANCELED", "reason": "enough"}),
                };
                let req = requests::resolve(&b).expect("a valid resolve");
                let to = req.status;
                (
                    Expect::Move(to),
                    intents::resolve(conn, &id, req, CALLER, None).map(drop),
                )
            }
            3 | 4 => {
                let b = if op % 15 == 3 {
                    json!({"status": "IN_PROGRESS"})
                } else {
                    let reason = pick(&WaitingReason::ALL, arg);
                    json!({"status": "WAITING", "waiting_reason": reason.as_str()})
                };
                let req = requests::progress(&b).expect("a valid progress");
                let to = req.status;
                (
                    Expect::Move(to),
                    intents::progress(conn, &id, req, AGENT, Some(AGENT)).map(drop),
                )
            }
            5 => (
                Expect::Free,
                intents::ack(conn, &id, None, AGENT, Some(AGENT)).map(drop),
            ),
            6 => {
                let outcome = pick(&["approve", "reject", "maybe"], arg);
                let mut b = json!({"task_result": {"outcome": outcome}});
                if arg & 4 != 0 {
                    b["task_result"]["comment"] = json!("why");
                }
                let req = resume::request(&b).expect("a valid resume");
                (
                    Expect::Free,
                    resume::resume(conn, &id, req, AGENT, Some(AGENT)).map(drop),
                )
            }
            7 => {
                let req = ClaimRequest {
                    max: 1,
                    lease_seconds: Some(600),
                    wait_seconds: None,
                };
                let claimed = claims::claim(conn, AGENT, req, AGENT);
                if let Ok(c) = &claimed {
                    tokens.extend(c.iter().map(|c| c.lease.lease_token.clone()));
                }
                (Expect::Free, claimed.map(drop))
            }
            8 => {
                let status = pick(
                    &[
                        Status::Acknowledged,
                        Status::InProgress,
                        Status::Completed,
                        Status::Failed,
                    ],
                    arg >> 3,
                );
                let req = AckRequest {
                    status,
                    result: None,
                    error: None,
                    waiting_reason: None,
                };
                (
                    Expect::Free,
                    claims::ack(conn, &token, req, AGENT).map(drop),
                )
            }
            9 => {
                let req = NackRequest {
                    delay_seconds: Some(0),
                    error: None,
                };
                (
                    Expect::Free,
                    claims::nack(conn, &token, req, AGENT).map(drop),
                )
            }
            10 => (Expect::Free, claims::extend(conn, &token, 600).map(drop)),
            11 => (
                Expect::Redrive,
                inbox::redrive(conn, &id, CALLER, None).map(drop),
            ),
            12 => (Expect::Free, intents::time_out_due(conn, 10).map(drop)),
            13 => {
                let decision = pick(&[Decision::Approve, Decision::Reject], arg);
                let comment = (arg & 2 != 0).then_some("because");
                (
                    Expect::Free,
                    inbox::decide(conn, None, true, &id, decision, comment).map(drop),
                )
            }
            _ => {
                let to = pick(&Status::ALL, arg);
                let mut intent = before.clone();
                let mut change = Change::to(to, AGENT);
                if to == Status::Waiting {
                    change.waiting_reason = Some(pick(&WaitingReason::ALL, arg >> 4));
                }
                (
                    Expect::Move(to),
                    transition(conn, &mut intent, change).map(drop),
                )
            }
        };

        let (after, events) = read(conn, &id);
        match &result {
            Ok(()) => {}
            Err(e) => {
                assert!(
                    matches!(
                        e,
                        Error::Conflict { .. }
                            | Error::Invalid { .. }
                            | Error::NotFound { .. }
                            | Error::Forbidden { .. }
                    ),
                    "op {op}: unexpected error {e:?}"
                );
                assert_eq!(
                    conn.total_changes(),
                    changes,
                    "op {op} was refused ({e}) after writing"
                );
                assert_eq!(
                    after, before,
                    "op {op} was refused ({e}) but changed the intent"
                );
            }
        }
        match expect {
            Expect::Move(to) => assert_eq!(
                result.is_ok(),
                legal(before.status, to),
                "op {op}: {} -> {to} answered {result:?}",
                before.status
            ),
            Expect::Redrive => assert_eq!(
                result.is_ok(),
                before.status == Status::Failed
                    && error_code(before.error.as_deref()).as_deref() == Some("delivery_failed"),
                "redrive of {} ({:?}) answered {result:?}",
                before.status,
                before.error
            ),
            Expect::Free => {}
        }
        check_history(&after, &events);
    }
}
