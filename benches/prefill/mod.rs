//! Filling a database that the server created with a million rows' worth of history, fast: the
//! rows a finished inbox cycle leaves behind (`benches/claims.rs`), or intents WAITING for a
//! durable delay with their timer (`benches/timers.rs`). The rows go in through the crate's own
//! store functions (so the schema is the server's migrations, and no SQL is copied here) on a
//! connection of our own, set up for a bulk load: no journal, no fsync, a large page cache, big
//! transactions. The server must be stopped meanwhile; it switches the file back to WAL when it
//! opens it again. It never touches any other file.

#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

use axme::model::{Status, WaitingReason};
use axme::store::events::{self, EventRow};
use axme::store::intents::{self, IntentRow};
use axme::store::leases::{self, LeaseRow};
use axme::store::Tx;
use axme::store::{threads, timers};
use rusqlite::Connection;

/// Intents per bulk transaction.
const CHUNK: u64 = 20_000;

/// What a fill wrote and how long it took.
pub struct Filled {
    pub intents: u64,
    pub events: u64,
    pub elapsed: Duration,
    /// The database file's size afterwards.
    pub bytes: u64,
}

/// The admin key's address: the actor of the claims and acks the server would have recorded.
const ADMIN: &str = "agent://admin";

fn err<E: std::fmt::Debug>(what: &'static str) -> impl Fn(E) -> String {
    move |e| format!("prefill: {what}: {e:?}")
}

/// Opens `path` (already created and migrated by the server, which is stopped) for a bulk load.
fn open_bulk(path: &Path) -> Result<Connection, String> {
    let conn = Connection::open(path).map_err(err("open"))?;
    // Leaving WAL needs the only connection; the server, when it opens the file again, turns WAL
    // back on itself.
    for pragma in [
        "PRAGMA journal_mode = OFF",
        "PRAGMA synchronous = OFF",
        "PRAGMA cache_size = -1000000",
        "PRAGMA temp_store = MEMORY",
    ] {
        conn.query_row(pragma, [], |_| Ok(()))
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(()),
                e => Err(e),
            })
            .map_err(err("pragma"))?;
    }
    Ok(conn)
}

/// Runs `one(conn, i)` for `i` in `0..n`, `CHUNK` per transaction, then hands the file back in
/// WAL mode.
fn bulk(
    path: &Path,
    n: u64,
    mut one: impl FnMut(&Tx, u64) -> Result<u64, axme::Error>,
) -> Result<Filled, String> {
    let began = Instant::now();
    let mut conn = open_bulk(path)?;
    let mut events = 0;
    let mut i = 0;
    while i < n {
        let tx = conn.transaction().map_err(err("begin"))?;
        let end = (i + CHUNK).min(n);
        for k in i..end {
            events += one(&Tx::sqlite(&tx), k).map_err(err("insert"))?;
        }
        tx.commit().map_err(err("commit"))?;
        i = end;
    }
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(err("back to WAL"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(format!("prefill: the file stayed in journal mode {mode}"));
    }
    drop(conn);
    Ok(Filled {
        intents: n,
        events,
        elapsed: began.elapsed(),
        bytes: std::fs::metadata(path).map_or(0, |m| m.len()),
    })
}

fn intent(to_agent: &str, status: Status, at: &str) -> IntentRow {
    IntentRow {
        status,
        delivery_attempt: 1,
        last_seq: 4,
        ..super::common::submitted_intent("bench.prefill.v1", to_agent, at)
    }
}

/// Appends the intent's four events: created, submitted, delivered (`via`), and `last`.
fn history(
    conn: &Tx,
    i: &IntentRow,
    via: &str,
    last: (Status, Option<WaitingReason>, String),
) -> Result<u64, axme::Error> {
    let at = &i.created_at;
    let steps = [
        (
            Status::Created,
            None,
            i.from_agent.as_str(),
            format!(r#"{{"intent_type":"{}"}}"#, i.intent_type),
        ),
        (Status::Submitted, None, &i.from_agent, "{}".into()),
        (
            Status::Delivered,
            None,
            ADMIN,
            format!(r#"{{"via":"{via}","attempt":1}}"#),
        ),
        (last.0, last.1, ADMIN, last.2),
    ];
    for (seq, (status, waiting_reason, actor, details)) in steps.into_iter().enumerate() {
        events::append(
            conn,
            &EventRow {
                event_id: 0,
                intent_id: i.intent_id.clone(),
                seq: seq as i64 + 1,
                event_type: status.event_type().into(),
                status,
                waiting_reason,
                handler: Some(i.to_agent.clone()),
                actor: actor.into(),
                at: at.clone(),
                details,
            },
        )?;
    }
    Ok(4)
}

/// A lease token as `service::claims::claim` makes them: the millisecond, then random.
fn lease_token() -> String {
    let ms = axme::clock::now().unix_timestamp_nanos() / 1_000_000;
    format!("lease_{ms:012x}{}", uuid::Uuid::new_v4().simple())
}

fn acked_lease(conn: &Tx, i: &IntentRow, token: &str, at: &str) -> Result<(), axme::Error> {
    leases::insert(
        conn,
        &LeaseRow {
            lease_token: token.into(),
            intent_id: i.intent_id.clone(),
            agent_address: i.to_agent.clone(),
            attempt: 1,
            expires_at_ms: 0,
            state: "acked".into(),
            created_at: at.into(),
        },
    )
}

/// `n` intents to the inbox agent `agent` as a full cycle leaves them: COMPLETED with a result,
/// four events (created, submitted, delivered via inbox, completed), the agent's inbox thread,
/// and the acked lease.
pub fn completed_cycles(path: &Path, agent: &str, n: u64) -> Result<Filled, String> {
    let at = axme::clock::now_rfc3339();
    let result = r#"{"ok":true,"worker":0}"#;
    bulk(path, n, |conn, _| {
        let mut i = intent(agent, Status::Completed, &at);
        i.result = Some(result.into());
        intents::insert(conn, &i)?;
        let token = lease_token();
        let done = format!(r#"{{"lease_token":"{token}","result":{result}}}"#);
        let n = history(conn, &i, "inbox", (Status::Completed, None, done))?;
        threads::open(
            conn,
            agent,
            &i.intent_id,
            axme::model::ThreadRole::Handler,
            &at,
        )?;
        acked_lease(conn, &i, &token, &at)?;
        Ok(n)
    })
}

/// `n` intents as `agent://internal/delay` leaves them while it waits: WAITING_FOR_TIME after
/// four events (created, submitted, delivered via internal, waiting) and the acked lease.
/// Returns their ids, oldest first; their timers come with [`delay_timers`].
pub fn waiting_delays(path: &Path, n: u64) -> Result<(Filled, Vec<String>), String> {
    let at = axme::clock::now_rfc3339();
    let agent = axme::runtime::builtin::DELAY;
    let mut ids = Vec::with_capacity(n as usize);
    let filled = bulk(path, n, |conn, _| {
        let mut i = intent(agent, Status::Waiting, &at);
        i.waiting_reason = Some(WaitingReason::Time);
        intents::insert(conn, &i)?;
        let token = lease_token();
        let waiting = format!(r#"{{"lease_token":"{token}"}}"#);
        let last = (Status::Waiting, Some(WaitingReason::Time), waiting);
        let n = history(conn, &i, "internal", last)?;
        acked_lease(conn, &i, &token, &at)?;
        ids.push(i.intent_id);
        Ok(n)
    })?;
    Ok((filled, ids))
}

/// The delay's `complete` timer of each intent in `ids`, the `k`-th due at `due_ms(k)`, with a
/// result that carries that due time as `bench_due_ms` (so the COMPLETED event tells how late it
/// fired).
pub fn delay_timers(
    path: &Path,
    ids: &[String],
    due_ms: impl Fn(u64) -> i64,
) -> Result<Duration, String> {
    let filled = bulk(path, ids.len() as u64, |conn, k| {
        let due = due_ms(k);
        let data = format!(r#"{{"result":{{"waited_seconds":60,"bench_due_ms":{due}}}}}"#);
        timers::insert(
            conn,
            &ids[k as usize],
            axme::model::TimerKind::Complete,
            due,
            &data,
        )?;
        Ok(0)
    })?;
    Ok(filled.elapsed)
}
