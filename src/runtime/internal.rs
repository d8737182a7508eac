//! The internal binding: Rust handlers in the same process.
//!
//! A program registers a [`Handler`] for an address with [`crate::server::Server::handle`]; the
//! runtime then works that address's queue exactly as an inbox worker would, without the network:
//! it claims intents under a lease (they become DELIVERED, attempt + 1), calls the handler, and
//! records the [`Step`] it returns through the same lifecycle, retries and audit trail as every
//! other binding. A retryable failure or a panic gives the claim back with exponential backoff;
//! once `max_delivery_attempts` are used up the intent FAILS with `delivery_failed`. A crash
//! between claim and result loses nothing: the lease expires and the intent is handed over again.
//!
//! ```no_run
//! use axme::runtime::internal::{Step, Work};
//! use serde_json::json;
//!
//! # async fn run(mut server: axme::server::Server) -> Result<(), axme::Error> {
//! server.handle("agent://billing/invoicer", |work: Work| async move {
//!     let amount = work.payload["amount"].as_i64().unwrap_or(0);
//!     if amount <= 0 {
//!         return Step::failed(json!({"code": "bad_amount"}), false);
//!     }
//!     Step::Completed(json!({"invoice": format!("INV-{}", work.intent_id)}))
//! })?;
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::{mpsc, watch, Semaphore};

use crate::model::{Status, WaitingReason};
use crate::service::claims::{self, AckRequest, ClaimRequest, NackRequest};
use crate::service::{schedule, thread_hooks};
use crate::store::intents::IntentRow;
use crate::store::notify::Topic;
use crate::store::Store;
use crate::{clock, Error};

/// One hand-over of an intent to a handler.
#[derive(Debug, Clone)]
pub struct Work {
    pub intent_id: String,
    pub intent_type: String,
    pub correlation_id: String,
    pub from_agent: String,
    pub to_agent: String,
    pub reply_to: Option<String>,
    pub payload: Value,
    pub human_task: Option<Value>,
    /// 1 on the first hand-over, 2 on the first retry, ...
    pub attempt: i64,
    pub created_at: String,
}

impl Work {
    fn from_row(i: &IntentRow) -> Work {
        let parse = |s: &str| serde_json::from_str(s).unwrap_or(Value::Null);
        Work {
            intent_id: i.intent_id.clone(),
            intent_type: i.intent_type.clone(),
            correlation_id: i.correlation_id.clone(),
            from_agent: i.from_agent.clone(),
            to_agent: i.to_agent.clone(),
            reply_to: i.reply_to.clone(),
            payload: parse(&i.payload),
            human_task: i.human_task.as_deref().map(parse),
            attempt: i.delivery_attempt,
            created_at: i.created_at.clone(),
        }
    }
}

/// What a handler did with an intent: the next step of its lifecycle.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// COMPLETED with this result (a JSON object; anything else is wrapped as `{"value": ...}`).
    Completed(Value),
    /// Not done: with `retryable`, the intent is handed over again later (exponential backoff,
    /// up to `max_delivery_attempts`); without, it is FAILED with this error.
    Failed { error: Value, retryable: bool },
    /// WAITING for a reason (the handler or someone else continues it later through the API).
    Waiting(WaitingReason),
    /// IN_PROGRESS: the handler took it and finishes it later through the API.
    InProgress,
    /// WAITING_FOR_TIME now, COMPLETED with `result` after `delay` (a durable timer).
    CompleteAfter { delay: Duration, result: Value },
    /// WAITING_FOR_HUMAN: a task in `owner`'s inbox, decided with approve / reject. `task` (a
    /// human task spec) is used when the intent has none.
    AskHuman { owner: String, task: Option<Value> },
}

impl Step {
    pub fn failed(error: Value, retryable: bool) -> Step {
        Step::Failed { error, retryable }
    }
}

/// A boxed handler future.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Step> + Send + 'static>>;

/// An in-process agent. Any `Fn(Work) -> impl Future<Output = Step>` is one.
pub trait Handler: Send + Sync + 'static {
    fn call(&self, work: Work) -> HandlerFuture;
}

impl<F, Fut> Handler for F
where
    F: Fn(Work) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Step> + Send + 'static,
{
    fn call(&self, work: Work) -> HandlerFuture {
        Box::pin(self(work))
    }
}

/// How the runtime works one address's queue.
#[derive(Debug, Clone, Copy)]
pub struct HandlerOptions {
    /// Handler calls in flight at once.
    pub concurrency: usize,
    /// The lease of each hand-over: a handler still running after it loses the intent to the
    /// next attempt.
    pub lease_seconds: i64,
}

impl Default for HandlerOptions {
    fn default() -> HandlerOptions {
        HandlerOptions {
            concurrency: 64,
            lease_seconds: 300,
        }
    }
}

/// The handlers of a server, by address.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: HashMap<String, (Arc<dyn Handler>, HandlerOptions)>,
    /// Calls in flight for one sender (`from_agent`) at most, by address, so one sender's slow
    /// work leaves calls to the others (the built-in notify's); the rest take their queue
    /// oldest first.
    per_sender: HashMap<String, usize>,
}

impl Registry {
    /// Registers a handler; the address is normalized (`agent://` added) and must be new.
    pub fn insert(
        &mut self,
        address: &str,
        handler: Arc<dyn Handler>,
        opts: HandlerOptions,
    ) -> Result<String, Error> {
        let address = crate::service::validate::address("address", address)?;
        if opts.concurrency == 0 || opts.lease_seconds < 1 {
            return Err(Error::invalid(
                "options",
                "concurrency and lease_seconds must be at least 1",
            ));
        }
        if self.handlers.contains_key(&address) {
            return Err(Error::conflict(
                "handler_exists",
                format!("a handler for {address} is already registered"),
            ));
        }
        self.handlers.insert(address.clone(), (handler, opts));
        Ok(address)
    }

    /// Shares a registered handler's calls among senders: at most `n` in flight for one.
    pub(crate) fn share_per_sender(&mut self, address: &str, n: usize) {
        self.per_sender.insert(address.to_string(), n.max(1));
    }

    /// The registered addresses, sorted.
    pub fn addresses(&self) -> Vec<String> {
        let mut a: Vec<String> = self.handlers.keys().cloned().collect();
        a.sort();
        a
    }
}

/// What a finished call settles.
struct Finished {
    token: String,
    intent_id: String,
    actor: String,
    /// The step, or the panic message of a handler that panicked.
    step: Result<Step, String>,
}

/// Works every registered address's queue until `shutdown` flips.
pub async fn run(store: Store, registry: Registry, shutdown: watch::Receiver<bool>) {
    let mut tasks = Vec::new();
    for (address, (handler, opts)) in registry.handlers {
        let per_sender = registry.per_sender.get(&address).copied().unwrap_or(0);
        tasks.push(tokio::spawn(work_queue(
            store.clone(),
            address,
            handler,
            (opts, per_sender),
            shutdown.clone(),
        )));
    }
    for t in tasks {
        let _ = t.await;
    }
}

async fn work_queue(
    store: Store,
    address: String,
    handler: Arc<dyn Handler>,
    (opts, per_sender): (HandlerOptions, usize),
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(opts.concurrency));
    // Calls in flight by sender (with `per_sender`), and a wake-up when one ends.
    let senders: Arc<Mutex<HashMap<String, usize>>> = Default::default();
    let freed = Arc::new(tokio::sync::Notify::new());
    let (done_tx, done_rx) = mpsc::unbounded_channel::<Finished>();
    let settler = tokio::spawn(settle_loop(store.clone(), done_rx));
    loop {
        if *shutdown.borrow() {
            break;
        }
        // Subscribed before looking, so a submission committed meanwhile still wakes us.
        let wake = store.subscribe(Topic::Agent(address.clone()));
        let free = slots.available_permits();
        if free == 0 {
            tokio::select! {
                p = slots.clone().acquire_owned() => drop(p),
                _ = shutdown.changed() => {}
            }
            continue;
        }
        let req = ClaimRequest {
            max: free.min(100),
            lease_seconds: Some(opts.lease_seconds),
            wait_seconds: None,
        };
        let claimer = address.clone();
        let in_flight = lock(&senders).clone();
        let claimed = store
            .write(move |c| match per_sender {
                0 => claims::claim(c, &claimer, req, &claimer),
                n => claims::claim_shared(c, &claimer, req, &in_flight, n),
            })
            .await;
        let claimed = match claimed {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(%address, error = %e, "claiming for an internal handler failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        if claimed.is_empty() {
            let a = address.clone();
            let next = store
                .read(move |c| claims::next_available_ms(c, &a))
                .await
                .ok()
                .flatten();
            let sleep = next.map_or(Duration::from_secs(1), |at| {
                Duration::from_millis((at - clock::now_ms()).clamp(1, 1000) as u64)
            });
            tokio::select! {
                _ = wake.changed() => {}
                _ = tokio::time::sleep(sleep) => {}
                _ = freed.notified() => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        for claim in claimed {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                break;
            };
            let work = Work::from_row(&claim.intent);
            let sender = work.from_agent.clone();
            *lock(&senders).entry(sender.clone()).or_default() += 1;
            let (senders, freed) = (senders.clone(), freed.clone());
            let call = handler.call(work);
            let done = done_tx.clone();
            let (token, intent_id, actor) = (
                claim.lease.lease_token,
                claim.intent.intent_id,
                address.clone(),
            );
            tokio::spawn(async move {
                // A separate task, so a panic in the handler is caught here as a JoinError.
                let step = tokio::spawn(call).await.map_err(panic_message);
                let _ = done.send(Finished {
                    token,
                    intent_id,
                    actor,
                    step,
                });
                drop(permit);
                let mut by_sender = lock(&senders);
                if let Some(n) = by_sender.get_mut(&sender) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        by_sender.remove(&sender);
                    }
                }
                drop(by_sender);
                freed.notify_one();
            });
        }
    }
    drop(done_tx);
    // Calls in flight finish and are recorded; a call that never ends keeps its lease until it
    // expires and the intent is handed over again after the restart.
    let _ = tokio::time::timeout(Duration::from_secs(10), settler).await;
}

/// The calls-in-flight map, also after a panic while it was held (it holds only counts).
fn lock(m: &Mutex<HashMap<String, usize>>) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn panic_message(e: tokio::task::JoinError) -> String {
    if !e.is_panic() {
        return "the handler was cancelled".into();
    }
    let p = e.into_panic();
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "the handler panicked".into())
}

/// Records finished calls, many per transaction.
async fn settle_loop(store: Store, mut rx: mpsc::UnboundedReceiver<Finished>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < 256 {
            match rx.try_recv() {
                Ok(f) => batch.push(f),
                Err(_) => break,
            }
        }
        let result = store
            .write(move |c| {
                for f in &batch {
                    if let Err(e) = settle(c, f) {
                        // A lease lost to expiry (the handler ran too long) is the common case:
                        // the intent is already back in the queue.
                        tracing::warn!(intent_id = %f.intent_id, error = %e, "an internal handler's result was not recorded");
                    }
                }
                Ok(())
            })
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "recording internal handler results failed; their leases will expire and the intents be handed over again");
        }
    }
}

fn ack(status: Status) -> AckRequest {
    AckRequest {
        status,
        result: None,
        error: None,
        waiting_reason: None,
    }
}

fn settle(c: &crate::store::Tx, f: &Finished) -> Result<(), Error> {
    let step = match &f.step {
        Ok(s) => s.clone(),
        Err(panic) => {
            let error = json!({"code": "handler_panicked", "message": panic});
            claims::nack(
                c,
                &f.token,
                NackRequest {
                    delay_seconds: None,
                    error: Some(error),
                },
                &f.actor,
            )?;
            return Ok(());
        }
    };
    match step {
        Step::Completed(result) => {
            let mut a = ack(Status::Completed);
            a.result = Some(match result {
                Value::Object(_) => result,
                other => json!({"value": other}),
            });
            claims::ack(c, &f.token, a, &f.actor)?;
        }
        Step::Failed {
            error,
            retryable: false,
        } => {
            let mut a = ack(Status::Failed);
            a.error = Some(as_error(error));
            claims::ack(c, &f.token, a, &f.actor)?;
        }
        Step::Failed {
            error,
            retryable: true,
        } => {
            let req = NackRequest {
                delay_seconds: None,
                error: Some(as_error(error)),
            };
            claims::nack(c, &f.token, req, &f.actor)?;
        }
        Step::InProgress => {
            claims::ack(c, &f.token, ack(Status::InProgress), &f.actor)?;
        }
        Step::Waiting(reason) => {
            let mut a = ack(Status::Waiting);
            a.waiting_reason = Some(reason);
            claims::ack(c, &f.token, a, &f.actor)?;
        }
        Step::CompleteAfter { delay, result } => {
            let mut a = ack(Status::Waiting);
            a.waiting_reason = Some(WaitingReason::Time);
            let changed = claims::ack(c, &f.token, a, &f.actor)?;
            let due = clock::now_ms() + delay.as_millis() as i64;
            schedule::complete_at(c, &changed.intent.intent_id, due, &result)?;
        }
        Step::AskHuman { owner, task } => {
            // A mistake in what the handler asked for would be asked again on every attempt:
            // the intent FAILS at once, naming it.
            let checked = crate::service::validate::address("owner", &owner).and_then(|owner| {
                let task = match task {
                    None => None,
                    Some(Value::Object(t)) => Some(crate::service::requests::human_task(&t)?),
                    Some(_) => return Err(Error::invalid("human_task", "must be an object")),
                };
                Ok((owner, task))
            });
            let (owner, task) = match checked {
                Ok(ok) => ok,
                Err(e) => {
                    let field = match &e {
                        Error::Invalid { field, .. } => field.clone(),
                        _ => "owner".to_string(),
                    };
                    let mut a = ack(Status::Failed);
                    a.error = Some(json!({
                        "code": e.code(),
                        "message": format!("the handler asked a person for something invalid: {e}"),
                        "details": {"field": field},
                    }));
                    claims::ack(c, &f.token, a, &f.actor)?;
                    return Ok(());
                }
            };
            let mut a = ack(Status::Waiting);
            a.waiting_reason = Some(WaitingReason::Human);
            let changed = claims::ack(c, &f.token, a, &f.actor)?;
            if let Some(task) = task {
                let task: Value = serde_json::from_str(&task)?;
                crate::store::intents::set_human_task_if_absent(c, &f.intent_id, &task)?;
            }
            thread_hooks::open(c, &changed.intent, &owner, "approver")?;
        }
    }
    Ok(())
}

/// An error as an AXME error object (`code`, `message`).
fn as_error(e: Value) -> Value {
    match e {
        Value::Object(_) => e,
        Value::String(s) => json!({"code": "handler_failed", "message": s}),
        other => json!({"code": "handler_failed", "details": other}),
    }
}
