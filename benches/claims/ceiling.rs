//! The in-process ceilings of the full inbox cycle, measured on a database of their own opened
//! the way the server's store opens its own (`store::open_connection`, the migrations, WAL,
//! `synchronous=FULL`, no auto-checkpoint on the writing connection, the crate's checkpointer
//! thread and the log restart between transactions), with no HTTP, JSON parsing or queueing:
//!
//! - **raw SQLite**: the statements of a cycle through the crate's store functions, in the order
//!   the server runs them, and nothing else. A create: the intent row (born SUBMITTED), its
//!   `intent.created` and `intent.submitted` events, the agent's inbox thread (its next
//!   `change_id`, then the insert). A claim of up to `claim_max`: the claimable ids; per intent
//!   the row read, the `intent.delivered` event, the row update, the thread touched (its owners,
//!   the next `change_id`, the update), `available_at_ms` cleared, the lease inserted. An ack:
//!   the lease and the intent read, the `intent.completed` event, the row update, the thread
//!   touched, the lease marked acked. Left out: the reads the domain adds around them (the
//!   agent's row three times, the active webhook subscriptions three times, the thread read back
//!   for inbox webhooks) and the lifecycle check.
//! - **domain in-process**: the same cycle through the domain functions the HTTP handlers call
//!   (`service::intents::create`, `service::claims::claim`, `service::claims::ack`), so
//!   everything the server does for a cycle except HTTP, JSON and the writer's queue.
//!
//! Both commit `Params::sqlite_batch` cycles per transaction, as a pipeline in its steady state:
//! each transaction creates a batch, claims the batch the previous one created, and acks the
//! batch the one before claimed. A cycle counts when its ack commits.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use axme::model::{Status, ThreadRole};
use axme::service::agents::{self, DeliveryMode, RegisterAgent};
use axme::service::claims::{self, AckRequest, ClaimRequest};
use axme::service::intents as ops;
use axme::service::requests::CreateIntent;
use axme::store::events::{self, EventRow};
use axme::store::intents::{self, IntentRow};
use axme::store::leases::{self, LeaseRow};
use axme::store::wal::{self, Checkpointer};
use axme::store::{migrations, open_connection, threads, Durability, Tx};
use rusqlite::{Connection, TransactionBehavior};
use serde_json::json;

use super::common::{cpu_time, machine_busy};
use super::{Params, AGENT, INTENT_TYPE, PAYLOAD};

/// The admin key's address, the actor of claims and acks.
const ACTOR: &str = "agent://admin";

/// What one ceiling measured.
pub struct Ceiling {
    pub cycles: u64,
    pub elapsed: Duration,
    /// Durations of the measured transactions, sorted (µs).
    pub txn_us: Vec<u32>,
    pub cpu: Option<Duration>,
    pub machine_cpu: Option<Duration>,
}

impl Ceiling {
    pub fn per_sec(&self) -> f64 {
        self.cycles as f64 / self.elapsed.as_secs_f64()
    }
}

/// Which statements a cycle runs.
#[derive(Clone, Copy)]
pub enum Kind {
    Raw,
    Domain,
}

fn err<E: std::fmt::Debug>(what: &'static str) -> impl Fn(E) -> String {
    move |e| format!("ceiling: {what}: {e:?}")
}

/// Runs the pipeline through the warm-up, then the measured period.
pub fn run(path: &Path, kind: Kind, p: &Params) -> Result<Ceiling, String> {
    let mut conn = open_connection(path, Durability::Full, false).map_err(err("open"))?;
    migrations::migrate(&mut conn).map_err(err("migrate"))?;
    conn.pragma_update(None, "wal_autocheckpoint", 0)
        .map_err(err("wal_autocheckpoint"))?;
    agents::register(
        &Tx::sqlite(&conn),
        RegisterAgent {
            address: AGENT.into(),
            mode: DeliveryMode::Inbox,
            display_name: None,
            webhook_url: None,
            webhook_secret: None,
            lease_seconds: None,
            max_delivery_attempts: None,
        },
    )
    .map_err(err("register the agent"))?;
    let checkpointer = Checkpointer::start(path, Durability::Full).map_err(err("checkpointer"))?;
    let mut pipe = Pipeline {
        kind,
        batch: p.sqlite_batch,
        claim_max: p.claim_max,
        to_ack: Vec::new(),
        acked: 0,
    };
    let due = &checkpointer.restart_due;
    pipe.until(&mut conn, Instant::now() + p.warmup, due)?;
    let (acked0, t0, cpu0, machine0) =
        (pipe.acked, Instant::now(), cpu_time("self"), machine_busy());
    let mut txn_us = pipe.until(&mut conn, t0 + p.measure, due)?;
    let (elapsed, cpu1, machine1) = (t0.elapsed(), cpu_time("self"), machine_busy());
    drop(checkpointer);
    txn_us.sort_unstable();
    let used = |a: Option<Duration>, b: Option<Duration>| Some(b?.saturating_sub(a?));
    Ok(Ceiling {
        cycles: pipe.acked - acked0,
        elapsed,
        txn_us,
        cpu: used(cpu0, cpu1),
        machine_cpu: used(machine0, machine1),
    })
}

struct Pipeline {
    kind: Kind,
    batch: usize,
    claim_max: usize,
    /// Lease tokens claimed by the previous transaction.
    to_ack: Vec<String>,
    acked: u64,
}

impl Pipeline {
    /// Commits transactions until `deadline`; returns how long each took, in µs.
    fn until(
        &mut self,
        conn: &mut Connection,
        deadline: Instant,
        restart_due: &AtomicBool,
    ) -> Result<Vec<u32>, String> {
        let mut txn_us = Vec::new();
        while Instant::now() < deadline {
            let began = Instant::now();
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(err("begin"))?;
            let acks = std::mem::take(&mut self.to_ack);
            for token in &acks {
                self.ack(&Tx::sqlite(&tx), token)?;
            }
            // What the previous transaction created is claimable now.
            let mut claimed = Vec::with_capacity(self.batch);
            while claimed.len() < self.batch {
                let got = self.claim(&Tx::sqlite(&tx))?;
                if got.is_empty() {
                    break;
                }
                claimed.extend(got);
            }
            for _ in 0..self.batch {
                self.create(&Tx::sqlite(&tx))?;
            }
            tx.commit().map_err(err("commit"))?;
            self.acked += acks.len() as u64;
            self.to_ack = claimed;
            txn_us.push(u32::try_from(began.elapsed().as_micros()).unwrap_or(u32::MAX));
            // Between transactions, as the server's writer does.
            wal::restart_if_due(conn, restart_due);
        }
        Ok(txn_us)
    }

    fn create(&self, conn: &Tx) -> Result<(), String> {
        let correlation_id = uuid::Uuid::new_v4().to_string();
        match self.kind {
            Kind::Domain => {
                let req = CreateIntent {
                    intent_type: INTENT_TYPE.into(),
                    correlation_id,
                    from_agent: Some("agent://bench/client".into()),
                    to_agent: AGENT.into(),
                    reply_to: None,
                    payload: PAYLOAD.into(),
                    deadline_at: None,
                    remind_after_seconds: None,
                    remind_interval_seconds: None,
                    max_reminders: None,
                    escalate_to: None,
                    max_delivery_attempts: None,
                    human_task: None,
                };
                ops::create(conn, req, ACTOR).map_err(err("create"))?;
            }
            Kind::Raw => raw_create(conn, correlation_id).map_err(err("create"))?,
        }
        Ok(())
    }

    /// One claim of up to `claim_max`; the lease tokens it took.
    fn claim(&self, conn: &Tx) -> Result<Vec<String>, String> {
        let req = ClaimRequest {
            max: self.claim_max,
            lease_seconds: Some(60),
            wait_seconds: None,
        };
        match self.kind {
            Kind::Domain => Ok(claims::claim(conn, AGENT, req, ACTOR)
                .map_err(err("claim"))?
                .into_iter()
                .map(|c| c.lease.lease_token)
                .collect()),
            Kind::Raw => raw_claim(conn, self.claim_max).map_err(err("claim")),
        }
    }

    fn ack(&self, conn: &Tx, token: &str) -> Result<(), String> {
        let result = json!({"ok": true, "worker": 0});
        match self.kind {
            Kind::Domain => {
                let req = AckRequest {
                    status: Status::Completed,
                    result: Some(result),
                    error: None,
                    waiting_reason: None,
                };
                claims::ack(conn, token, req, ACTOR).map_err(err("ack"))?;
            }
            Kind::Raw => raw_ack(conn, token, &result.to_string()).map_err(err("ack"))?,
        }
        Ok(())
    }
}

fn event(i: &IntentRow, actor: &str, at: &str, details: String) -> EventRow {
    EventRow {
        event_id: 0,
        intent_id: i.intent_id.clone(),
        seq: i.last_seq,
        event_type: i.status.event_type().into(),
        status: i.status,
        waiting_reason: None,
        handler: Some(i.to_agent.clone()),
        actor: actor.into(),
        at: at.into(),
        details,
    }
}

fn raw_create(conn: &Tx, correlation_id: String) -> Result<(), axme::Error> {
    let now = axme::clock::now_rfc3339();
    let mut i = IntentRow {
        correlation_id,
        ..super::common::submitted_intent(INTENT_TYPE, AGENT, &now)
    };
    intents::insert(conn, &i)?;
    let mut created = event(&i, "agent://bench/client", &now, String::new());
    created.seq = 1;
    created.status = Status::Created;
    created.event_type = Status::Created.event_type().into();
    created.details = format!(r#"{{"intent_type":"{INTENT_TYPE}"}}"#);
    events::append(conn, &created)?;
    i.last_seq = 2;
    events::append(conn, &event(&i, "agent://bench/client", &now, "{}".into()))?;
    threads::open(conn, AGENT, &i.intent_id, ThreadRole::Handler, &now)?;
    Ok(())
}

fn raw_claim(conn: &Tx, max: usize) -> Result<Vec<String>, axme::Error> {
    let now_ms = axme::clock::now_ms();
    let mut tokens = Vec::new();
    for id in leases::claimable(conn, AGENT, now_ms, max)? {
        let Some(mut i) = intents::get(conn, &id)? else {
            continue;
        };
        let at = axme::clock::now_rfc3339();
        i.delivery_attempt += 1;
        i.status = Status::Delivered;
        i.last_seq += 1;
        i.updated_at = at.clone();
        let details = format!(r#"{{"via":"inbox","attempt":{}}}"#, i.delivery_attempt);
        events::append(conn, &event(&i, ACTOR, &at, details))?;
        intents::update_state(conn, &i)?;
        threads::touch_intent(conn, &id, &at)?;
        leases::set_available_at(conn, &id, None)?;
        // As `service::claims::claim` makes them: time-ordered, then random.
        let token = format!("lease_{now_ms:012x}{}", uuid::Uuid::new_v4().simple());
        leases::insert(
            conn,
            &LeaseRow {
                lease_token: token.clone(),
                intent_id: id,
                agent_address: AGENT.into(),
                attempt: i.delivery_attempt,
                expires_at_ms: now_ms + 60_000,
                state: "active".into(),
                created_at: at,
            },
        )?;
        tokens.push(token);
    }
    Ok(tokens)
}

fn raw_ack(conn: &Tx, token: &str, result: &str) -> Result<(), axme::Error> {
    let lease = leases::get(conn, token)?.ok_or_else(|| axme::Error::internal("no lease"))?;
    let mut i =
        intents::get(conn, &lease.intent_id)?.ok_or_else(|| axme::Error::internal("no intent"))?;
    let at = axme::clock::now_rfc3339();
    i.status = Status::Completed;
    i.result = Some(result.into());
    i.last_seq += 1;
    i.updated_at = at.clone();
    let details = format!(r#"{{"lease_token":"{token}","result":{result}}}"#);
    events::append(conn, &event(&i, ACTOR, &at, details))?;
    intents::update_state(conn, &i)?;
    threads::touch_intent(conn, &i.intent_id, &at)?;
    leases::set_state(conn, token, "acked", lease.expires_at_ms)?;
    Ok(())
}
