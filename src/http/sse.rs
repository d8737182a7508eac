//! Server-Sent Events and long polls, for every pull binding.
//!
//! A stream is a producer task feeding a bounded channel that the response body drains. The
//! task follows one rule to never skip a commit: **subscribe to its topic first, then read the
//! store**, then wait to be woken by a commit of that topic, and read again from its cursor.
//! Frames at or below the cursor are dropped, so replay and live never duplicate. It never polls
//! SQLite in a loop: between commits it sleeps.
//!
//! A stream's queue is bounded in bytes (`--stream-buffer-bytes`) and agent-feed pages in items
//! so that one page is about that budget too. A consumer that does not drain its queue within
//! the write deadline is cut off: what was queued is dropped and its connection closed (it
//! resumes from its cursor, losing nothing); memory never grows with a slow reader. Frames are
//! rendered once into shared buffers, so streams woken by one commit hold one copy. A keepalive comment
//! goes out after `keepalive` without a frame; `retry:` is sent once; a connection lives at most
//! `max_lifetime` (with jitter so reconnections do not come in waves); server shutdown ends
//! every stream with a retry hint.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::Response;
use serde_json::Value;
use tokio::sync::{watch, OnceCell};
use tokio::time::{sleep_until, Instant};

use super::connections::Hangup;
use super::response::Body;
use super::stream_queue::{self, Refused};
use super::AppState;
use crate::service::auth::Principal;
use crate::store::notify::{Subscription, Topic};
use crate::store::Store;
use crate::Error;

/// Tunables of streams and long polls (see `ServeConfig` for the flags).
#[derive(Debug, Clone)]
pub struct StreamSettings {
    pub keepalive: Duration,
    pub max_lifetime: Duration,
    pub write_deadline: Duration,
    /// Frames queued per connection before the producer waits (and, past the write deadline,
    /// gives up on the consumer).
    pub queue: usize,
    /// Bytes queued per connection before the producer waits, likewise.
    pub buffer_bytes: usize,
    pub retry_ms: u64,
    pub max_streams: usize,
    pub max_waiters: usize,
    /// Open streams one agent key may hold (admin keys: only the global cap).
    pub max_streams_per_key: usize,
    /// Long polls one agent key may have waiting at once (admin keys: only the global cap).
    pub max_waiters_per_key: usize,
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            keepalive: Duration::from_secs(15),
            max_lifetime: Duration::from_secs(30 * 60),
            write_deadline: Duration::from_secs(10),
            queue: 256,
            buffer_bytes: 1024 * 1024,
            retry_ms: 2000,
            max_streams: 10_000,
            max_waiters: 10_000,
            max_streams_per_key: 100,
            max_waiters_per_key: 100,
        }
    }
}

/// Counts of open streams and waiting long polls, for the caps (and, later, metrics).
#[derive(Debug, Default)]
pub struct Gauges {
    pub streams: Arc<AtomicUsize>,
    pub waiters: Arc<AtomicUsize>,
}

/// A place under a cap; releases it when dropped.
pub struct Slot(Arc<AtomicUsize>);

impl Slot {
    /// Takes a place if fewer than `max` are taken; otherwise 503 with `Retry-After`.
    pub fn acquire(counter: &Arc<AtomicUsize>, max: usize, what: &str) -> Result<Slot, Error> {
        let prev = counter.fetch_add(1, Ordering::AcqRel);
        if prev >= max {
            counter.fetch_sub(1, Ordering::AcqRel);
            return Err(Error::Unavailable {
                reason: format!("too many open {what} ({max}); retry shortly"),
            });
        }
        Ok(Slot(counter.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One SSE message, rendered once: every stream that sends it shares its buffer.
#[derive(Debug, Clone)]
pub struct Frame {
    pub id: i64,
    /// `id:`, `event:` and `data:` lines and the blank line that ends the message.
    pub text: Bytes,
    /// The stream ends after this frame (a terminal event on a per-intent stream).
    pub last: bool,
}

impl Frame {
    /// A message of `event` with `data` (JSON on one line).
    pub fn new(id: i64, event: &str, data: &str, last: bool) -> Frame {
        Frame {
            id,
            text: Bytes::from(format!("id: {id}\nevent: {event}\ndata: {data}\n\n")),
            last,
        }
    }
}

/// What a source read after a cursor.
#[derive(Debug, Default, Clone)]
pub struct Fetched {
    pub frames: Vec<Frame>,
    /// Where to continue from (past anything a filter left out).
    pub cursor: i64,
    /// A full page: read again at once.
    pub more: bool,
    /// Nothing will ever follow (e.g. the intent is terminal and everything was sent).
    pub finished: bool,
}

/// One read shared by every stream woken by the same commit for the same source and cursor:
/// with a thousand subscribers on one intent, a commit costs one store read and one rendering
/// of its frames, not a thousand. A flight is keyed by the commit generation its reader saw
/// after waking, so a reader only ever joins a read that started after the commit that woke
/// it, and can never miss what that commit wrote.
pub struct SharedReads<T> {
    /// Reads in progress by key; the first reader of a key runs it, the others await it.
    flights: std::sync::Mutex<HashMap<String, Flight<T>>>,
}

impl<T> Default for SharedReads<T> {
    fn default() -> Self {
        SharedReads {
            flights: Default::default(),
        }
    }
}

/// One shared read: set once by whoever runs it, awaited by the rest.
type Flight<T> = Arc<OnceCell<Result<Arc<T>, Error>>>;

impl<T: Clone> SharedReads<T> {
    /// Runs `read` for `key`, or joins the run already in progress for it.
    pub async fn fetch<Fut>(&self, key: String, read: impl FnOnce() -> Fut) -> Result<T, Error>
    where
        Fut: Future<Output = Result<T, Error>>,
    {
        let cell = self
            .flights
            .lock()
            .ok()
            .map(|mut f| f.entry(key.clone()).or_default().clone());
        let Some(cell) = cell else {
            return read().await;
        };
        let out = cell
            .get_or_init(|| async { read().await.map(Arc::new) })
            .await
            .clone();
        if let Ok(mut f) = self.flights.lock() {
            if f.get(&key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
                f.remove(&key);
            }
        }
        out.map(|f| (*f).clone())
    }
}

/// Where a stream's frames come from.
pub trait Source: Send + 'static {
    /// Checks a client's starting cursor. A cursor from the future (or from before what the
    /// store keeps) gets an in-band `event: reset` with this data, and the stream continues from
    /// the cursor returned.
    fn check_cursor(
        &mut self,
        store: &Store,
        cursor: i64,
    ) -> impl Future<Output = Result<Option<(Value, i64)>, Error>> + Send;

    /// Frames after `cursor`.
    fn fetch(
        &mut self,
        store: &Store,
        cursor: i64,
    ) -> impl Future<Output = Result<Fetched, Error>> + Send;

    /// The commits that may produce frames for this source.
    fn topic(&self) -> Topic;
}

/// How a stream ends when nothing happens.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// With `Some`, no frame for this long sends `event: stream.timeout` and ends the stream.
    pub wait: Option<Duration>,
    /// `wait` bounds the whole response, not only its idle time: the stream ends with
    /// `event: stream.timeout` once `wait` has passed since it opened, frames or not. The agent
    /// feed does so because AXME's TypeScript and Go SDKs read the stream to its end before they
    /// yield anything.
    pub wait_bounds_response: bool,
    /// The key the stream was opened with: once it is revoked, the stream ends.
    pub key_id: String,
    /// Whether the key's streams count against the per-key cap (agent keys).
    pub capped: bool,
    /// Closes the stream's connection when a slow reader is cut off.
    pub hangup: Option<Hangup>,
}

/// How often an open stream checks that its key is still live.
const KEY_CHECK: Duration = Duration::from_secs(2);

/// Starts a stream of `source` after `cursor` and returns the response that carries it.
pub fn start<S: Source>(
    state: &AppState,
    source: S,
    cursor: i64,
    opts: StreamOptions,
) -> Result<Response<Body>, Error> {
    let settings = &state.streams;
    let key_slot = if opts.capped {
        Some(state.per_key_streams.acquire(
            &opts.key_id,
            settings.max_streams_per_key,
            "streams",
        )?)
    } else {
        None
    };
    let slot = Slot::acquire(&state.gauges.streams, settings.max_streams, "streams")?;
    let (tx, rx) =
        stream_queue::channel(settings.buffer_bytes, settings.queue, opts.hangup.clone());
    let producer = Producer {
        tx,
        store: state.store.clone(),
        keys: state.keys.clone(),
        // Subscribed here, before the task reads anything: nothing committed from now on can
        // be missed.
        commits: state.store.subscribe(source.topic()),
        shutdown: state.shutdown.clone(),
        settings: settings.clone(),
    };
    tokio::spawn(producer.run(source, cursor, opts));
    let mut resp = Response::new(Body::Stream {
        chunks: rx,
        _slot: Box::new((slot, key_slot)),
    });
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(resp)
}

/// The task behind one stream.
struct Producer {
    /// Frames to the response body; the body (hyper) holds the receiver.
    tx: stream_queue::Sender,
    store: Store,
    keys: Arc<crate::service::auth::Keys>,
    commits: Subscription,
    /// Flips to true when the server shuts down; owned by `server::Server::run`.
    shutdown: watch::Receiver<bool>,
    settings: StreamSettings,
}

/// Why a producer stopped writing.
enum Stop {
    Done,
    Gone,
}

impl Producer {
    async fn run<S: Source>(mut self, mut source: S, mut cursor: i64, opts: StreamOptions) {
        if let Err(e) = self.serve(&mut source, &mut cursor, opts).await {
            tracing::warn!(error = %e, cursor, "stream ended by an error");
            let data = serde_json::json!({"code": e.code(), "message": e.to_string()});
            let _ = self.send(format!("event: error\ndata: {data}\n\n")).await;
        }
    }

    async fn serve<S: Source>(
        &mut self,
        source: &mut S,
        cursor: &mut i64,
        opts: StreamOptions,
    ) -> Result<(), Error> {
        let started = Instant::now();
        let lifetime_end = started + jittered(self.settings.max_lifetime);
        if let Stop::Gone = self
            .send(format!("retry: {}\n\n", self.settings.retry_ms))
            .await
        {
            return Ok(());
        }
        if let Some((data, from)) = source.check_cursor(&self.store, *cursor).await? {
            *cursor = from;
            if let Stop::Gone = self.send(format!("event: reset\ndata: {data}\n\n")).await {
                return Ok(());
            }
        }
        let mut idle_since = Instant::now();
        let response_end = opts
            .wait
            .filter(|_| opts.wait_bounds_response)
            .map(|w| started + w);
        let mut keepalive_at = idle_since + self.settings.keepalive;
        let mut key_check_at = Instant::now() + KEY_CHECK;
        loop {
            // A revoked key ends the stream within `KEY_CHECK`, busy or idle.
            if Instant::now() >= key_check_at {
                if !self.keys.is_live(&opts.key_id) {
                    let data = serde_json::json!({"code": "auth_failed", "message": "the API key of this stream was revoked"});
                    let _ = self.send(format!("event: error\ndata: {data}\n\n")).await;
                    return Ok(());
                }
                key_check_at = Instant::now() + KEY_CHECK;
            }
            // Replay (or catch up) to the end of what is committed.
            loop {
                let fetched = source.fetch(&self.store, *cursor).await?;
                let mut sent = false;
                for frame in fetched.frames {
                    if frame.id <= *cursor {
                        continue;
                    }
                    if response_end.is_some_and(|end| Instant::now() >= end) {
                        self.time_out().await;
                        return Ok(());
                    }
                    *cursor = frame.id;
                    if let Stop::Gone = self.send_bytes(frame.text).await {
                        return Ok(());
                    }
                    sent = true;
                    if frame.last {
                        return Ok(());
                    }
                }
                *cursor = (*cursor).max(fetched.cursor);
                if sent {
                    idle_since = Instant::now();
                    keepalive_at = idle_since + self.settings.keepalive;
                }
                if fetched.finished {
                    return Ok(());
                }
                if !fetched.more {
                    break;
                }
            }
            // Live: wait for a commit that concerns this stream.
            let wait_end = response_end.or(opts.wait.map(|w| idle_since + w));
            loop {
                tokio::select! {
                    _ = self.commits.changed() => break,
                    _ = sleep_until(key_check_at) => break,
                    _ = sleep_until(keepalive_at) => {
                        if let Stop::Gone = self.send(":\n\n".to_string()).await {
                            return Ok(());
                        }
                        keepalive_at = Instant::now() + self.settings.keepalive;
                    }
                    _ = sleep_until(wait_end.unwrap_or(lifetime_end)), if wait_end.is_some() => {
                        self.time_out().await;
                        return Ok(());
                    }
                    _ = sleep_until(lifetime_end) => return Ok(()),
                    _ = self.tx.closed() => return Ok(()),
                    _ = self.shutdown.changed() => {
                        let _ = self.send("retry: 1000\nevent: stream.shutdown\ndata: {}\n\n".to_string()).await;
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Ends the stream at its `wait_seconds`.
    async fn time_out(&self) {
        let _ = self
            .send("event: stream.timeout\ndata: {}\n\n".to_string())
            .await;
    }

    /// Queues one control message, waiting at most the write deadline for room.
    async fn send(&self, text: String) -> Stop {
        self.send_bytes(Bytes::from(text)).await
    }

    /// Queues one chunk, waiting at most the write deadline for room; past it the stream is cut
    /// off (its queue dropped, its connection closed).
    async fn send_bytes(&self, chunk: Bytes) -> Stop {
        match self.tx.send(chunk, self.settings.write_deadline).await {
            Ok(()) => Stop::Done,
            Err(Refused::Closed) => Stop::Gone,
            Err(Refused::CutOff) => {
                tracing::debug!("slow consumer cut off after the write deadline");
                Stop::Gone
            }
        }
    }
}

/// `d` minus up to 10%, so that connections opened together do not all expire together.
fn jittered(d: Duration) -> Duration {
    let r = (uuid::Uuid::new_v4().as_u128() % 1000) as u32;
    d.saturating_sub(d / 10 * r / 1000)
}

/// Waits (long poll) until `fetch` returns something after a commit of `topic` (or at
/// `recheck_at`, for what becomes available by the clock rather than by a commit), or until
/// `wait` has passed (then `None`). The subscription is taken before the first read, so a
/// commit between the read and the wait always wakes the waiter. A request that has to wait
/// takes a place under the global cap (503) and, for an agent key, under its own (429).
pub async fn long_poll<T, F, Fut>(
    state: &AppState,
    caller: &Principal,
    wait: Duration,
    topic: Topic,
    mut recheck_at: Option<Instant>,
    mut fetch: F,
) -> Result<Option<T>, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, Error>>,
{
    let commits = state.store.subscribe(topic);
    if let Some(found) = fetch().await? {
        return Ok(Some(found));
    }
    let _key_slot = if caller.is_admin() {
        None
    } else {
        Some(state.per_key_waiters.acquire(
            &caller.key_id,
            state.streams.max_waiters_per_key,
            "long polls",
        )?)
    };
    let _slot = Slot::acquire(
        &state.gauges.waiters,
        state.streams.max_waiters,
        "long polls",
    )?;
    let end = Instant::now() + wait;
    let mut shutdown = state.shutdown.clone();
    loop {
        tokio::select! {
            _ = commits.changed() => {
                if let Some(found) = fetch().await? {
                    return Ok(Some(found));
                }
            }
            _ = sleep_until(recheck_at.unwrap_or(end)), if recheck_at.is_some_and(|r| r < end) => {
                recheck_at = None;
                if let Some(found) = fetch().await? {
                    return Ok(Some(found));
                }
            }
            _ = sleep_until(end) => return Ok(None),
            _ = shutdown.changed() => return Ok(None),
        }
    }
}
