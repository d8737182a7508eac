//! The minimal-schema ceiling: the same logical writes as axme's (an intent and its events; for
//! a full inbox cycle also the lease and the claim and ack transitions) into tables that hold
//! only what a primary key needs, one B-tree each (`WITHOUT ROWID`, no secondary index), with the
//! same bytes of content per row, on a connection opened by the crate (`store::open_connection`:
//! the same PRAGMAs, WAL, `synchronous=FULL`), the same batching and the same write-ahead log
//! management as the server's store (no auto-checkpoint on the writing connection, the crate's
//! checkpointer thread, a log restart between transactions). It is the most this disk can give
//! any design of these writes: what axme's own schema costs on top of it is the distance between
//! this row and the "raw SQLite" one.
//!
//! Nothing here is axme's schema; the tables exist only in the bench's temporary database.
//! Which intents a claim takes comes from memory (the ones the previous transaction created), as
//! a design with a queue in memory would do. `create` uses [`creates`], `claims` [`cycles`].

#![allow(dead_code)]

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use axme::store::wal::{self, Checkpointer};
use axme::store::{open_connection, Durability};
use rusqlite::{params, Connection, Transaction, TransactionBehavior};

use super::common::{cpu_time, machine_busy, FROM_AGENT, PAYLOAD};

const SCHEMA: &str = "
CREATE TABLE intents (id TEXT PRIMARY KEY, state TEXT NOT NULL, body TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE events (intent_id TEXT NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (intent_id, seq)) WITHOUT ROWID;
CREATE TABLE leases (token TEXT PRIMARY KEY, intent_id TEXT NOT NULL, state TEXT NOT NULL)
    WITHOUT ROWID;
";

/// What one minimal-schema run measured.
pub struct Measured {
    /// Creates (for [`creates`]) or full cycles acked (for [`cycles`]) in the measured period.
    pub count: u64,
    pub elapsed: Duration,
    /// Durations of the measured transactions, sorted (µs).
    pub txn_us: Vec<u32>,
    pub cpu: Option<Duration>,
    pub machine_cpu: Option<Duration>,
}

impl Measured {
    pub fn per_sec(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64()
    }
}

fn err<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> String {
    move |e| format!("minimal schema: {what}: {e}")
}

/// Creates (an intent and its `created` and `submitted` events), `batch` per transaction.
pub fn creates(
    path: &Path,
    batch: usize,
    warmup: Duration,
    measure: Duration,
    to_agent: &str,
) -> Result<Measured, String> {
    let mut step = |tx: &Transaction<'_>| -> Result<u64, String> {
        for _ in 0..batch {
            create(tx, to_agent)?;
        }
        Ok(batch as u64)
    };
    measured(path, warmup, measure, &mut step)
}

/// Full cycles, `batch` per transaction as a pipeline in its steady state: each transaction acks
/// (COMPLETED: the intent's state and result, an event, the lease marked) what the previous one
/// claimed, claims (DELIVERED: the intent's state, an event, a lease) what the previous one
/// created, and creates a batch. Counts the acks.
pub fn cycles(
    path: &Path,
    batch: usize,
    warmup: Duration,
    measure: Duration,
    to_agent: &str,
) -> Result<Measured, String> {
    let mut created: Vec<String> = Vec::new();
    let mut claimed: Vec<(String, String)> = Vec::new();
    let mut step = |tx: &Transaction<'_>| -> Result<u64, String> {
        let acked = claimed.len() as u64;
        for (token, id) in std::mem::take(&mut claimed) {
            ack(tx, &token, &id)?;
        }
        for id in std::mem::take(&mut created) {
            claimed.push((claim(tx, &id)?, id));
        }
        for _ in 0..batch {
            created.push(create(tx, to_agent)?);
        }
        Ok(acked)
    };
    measured(path, warmup, measure, &mut step)
}

/// Opens the database, then commits `step` in transactions through the warm-up and the
/// measured period.
fn measured(
    path: &Path,
    warmup: Duration,
    measure: Duration,
    step: &mut dyn FnMut(&Transaction<'_>) -> Result<u64, String>,
) -> Result<Measured, String> {
    let mut conn = open_connection(path, Durability::Full, false).map_err(err("open"))?;
    conn.execute_batch(SCHEMA).map_err(err("schema"))?;
    conn.pragma_update(None, "wal_autocheckpoint", 0)
        .map_err(err("wal_autocheckpoint"))?;
    let checkpointer = Checkpointer::start(path, Durability::Full).map_err(err("checkpointer"))?;
    let due = &checkpointer.restart_due;
    until(&mut conn, Instant::now() + warmup, due, step)?;
    let (t0, cpu0, machine0) = (Instant::now(), cpu_time("self"), machine_busy());
    let (count, mut txn_us) = until(&mut conn, t0 + measure, due, step)?;
    let (elapsed, cpu1, machine1) = (t0.elapsed(), cpu_time("self"), machine_busy());
    drop(checkpointer);
    txn_us.sort_unstable();
    let used = |a: Option<Duration>, b: Option<Duration>| Some(b?.saturating_sub(a?));
    Ok(Measured {
        count,
        elapsed,
        txn_us,
        cpu: used(cpu0, cpu1),
        machine_cpu: used(machine0, machine1),
    })
}

fn until(
    conn: &mut Connection,
    deadline: Instant,
    restart_due: &AtomicBool,
    step: &mut dyn FnMut(&Transaction<'_>) -> Result<u64, String>,
) -> Result<(u64, Vec<u32>), String> {
    let (mut count, mut txn_us) = (0, Vec::new());
    while Instant::now() < deadline {
        let began = Instant::now();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err("begin"))?;
        let n = step(&tx)?;
        tx.commit().map_err(err("commit"))?;
        count += n;
        txn_us.push(u32::try_from(began.elapsed().as_micros()).unwrap_or(u32::MAX));
        wal::restart_if_due(conn, restart_due);
    }
    Ok((count, txn_us))
}

/// One intent (its id time-ordered, as axme's) with the content of a create, and its two events;
/// returns its id.
fn create(tx: &Transaction<'_>, to_agent: &str) -> Result<String, String> {
    let id = uuid::Uuid::now_v7().to_string();
    let at = axme::clock::now_rfc3339();
    let body = format!(
        r#"{{"intent_type":"bench.v1","correlation_id":"{}","from_agent":"{FROM_AGENT}","to_agent":"{to_agent}","payload":{PAYLOAD},"created_at":"{at}"}}"#,
        uuid::Uuid::new_v4()
    );
    tx.prepare_cached("INSERT INTO intents (id, state, body) VALUES (?1, 'SUBMITTED', ?2)")
        .and_then(|mut s| s.execute(params![id, body]))
        .map_err(err("insert intent"))?;
    event(
        tx,
        &id,
        1,
        &format!(r#"{{"type":"intent.created","at":"{at}"}}"#),
    )?;
    event(
        tx,
        &id,
        2,
        &format!(r#"{{"type":"intent.submitted","at":"{at}"}}"#),
    )?;
    Ok(id)
}

/// The DELIVERED step: the state, an event, a lease; returns the lease token.
fn claim(tx: &Transaction<'_>, id: &str) -> Result<String, String> {
    let now_ms = axme::clock::now_ms();
    let token = format!("lease_{now_ms:012x}{}", uuid::Uuid::new_v4().simple());
    set_state(tx, id, "DELIVERED")?;
    let at = axme::clock::now_rfc3339();
    event(
        tx,
        id,
        3,
        &format!(r#"{{"type":"intent.delivered","at":"{at}","attempt":1}}"#),
    )?;
    tx.prepare_cached("INSERT INTO leases (token, intent_id, state) VALUES (?1, ?2, 'active')")
        .and_then(|mut s| s.execute(params![token, id]))
        .map_err(err("insert lease"))?;
    Ok(token)
}

/// The COMPLETED step: the state and the result, an event, the lease marked acked.
fn ack(tx: &Transaction<'_>, token: &str, id: &str) -> Result<(), String> {
    let result = r#"{"ok":true,"worker":0}"#;
    tx.prepare_cached("UPDATE intents SET state = 'COMPLETED', body = body || ?2 WHERE id = ?1")
        .and_then(|mut s| s.execute(params![id, result]))
        .map_err(err("complete intent"))?;
    let at = axme::clock::now_rfc3339();
    let details = format!(
        r#"{{"type":"intent.completed","at":"{at}","lease_token":"{token}","result":{result}}}"#
    );
    event(tx, id, 4, &details)?;
    tx.prepare_cached("UPDATE leases SET state = 'acked' WHERE token = ?1")
        .and_then(|mut s| s.execute(params![token]))
        .map_err(err("ack lease"))?;
    Ok(())
}

fn set_state(tx: &Transaction<'_>, id: &str, state: &str) -> Result<(), String> {
    tx.prepare_cached("UPDATE intents SET state = ?2 WHERE id = ?1")
        .and_then(|mut s| s.execute(params![id, state]))
        .map_err(err("update intent"))?;
    Ok(())
}

fn event(tx: &Transaction<'_>, id: &str, seq: i64, body: &str) -> Result<(), String> {
    tx.prepare_cached("INSERT INTO events (intent_id, seq, body) VALUES (?1, ?2, ?3)")
        .and_then(|mut s| s.execute(params![id, seq, body]))
        .map_err(err("insert event"))?;
    Ok(())
}
