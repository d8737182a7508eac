//! The load generator: keep-alive HTTP/1.1 connections on raw tokio sockets creating intents
//! (`POST /v1/intents`) for one address, one task each on one current-thread runtime of its own
//! thread, so that its timestamps never wait for the server's runtime. Closed loop: a connection
//! sends its next create when its previous one was answered, and, with a window, only while
//! fewer than that many intents are created and not yet completed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::sync::Notify;

use super::common::http::{connect, exchange, find};
use super::common::{cpu_time, CreateTemplate};

/// The intent id of a create's answer (a UUID, 36 bytes).
pub type IntentId = [u8; 36];

/// Intents created and completed, shared with the observer that counts completions.
pub struct Gate {
    /// Most intents created and not yet completed; `u64::MAX` for none.
    pub window: u64,
    /// Creates sent and not failed.
    pub sent: AtomicU64,
    /// COMPLETED events seen by the observer.
    pub completed: AtomicU64,
    /// Notified by the observer after each completion it counted.
    pub moved: Notify,
    pub stop: AtomicBool,
}

impl Gate {
    pub fn new(window: u64) -> Gate {
        Gate {
            window,
            sent: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            moved: Notify::new(),
            stop: AtomicBool::new(false),
        }
    }

    /// Waits until fewer than `window` intents are outstanding, then takes a place; `false`
    /// once the load is stopped.
    async fn enter(&self) -> bool {
        loop {
            let moved = self.moved.notified();
            tokio::pin!(moved);
            moved.as_mut().enable();
            if self.stop.load(Ordering::Acquire) {
                return false;
            }
            let outstanding = self
                .sent
                .load(Ordering::Relaxed)
                .saturating_sub(self.completed.load(Ordering::Relaxed));
            if outstanding < self.window {
                self.sent.fetch_add(1, Ordering::Relaxed);
                return true;
            }
            let _ = tokio::time::timeout(Duration::from_millis(20), moved).await;
        }
    }
}

/// One create answered 200 in the measured period.
pub struct Created {
    pub intent: IntentId,
    /// When its 200 was read.
    pub at: Instant,
    /// How long the create took, µs.
    pub took_us: u32,
}

/// What a load run saw.
#[derive(Default)]
pub struct Tally {
    pub created: Vec<Created>,
    pub errors: BTreeMap<String, u64>,
    pub first_error: Option<String>,
    /// CPU of the load generator's thread over the measured period.
    pub cpu: Option<Duration>,
}

impl Tally {
    fn error(&mut self, kind: String, detail: &str) {
        if self.first_error.is_none() {
            self.first_error = Some(format!(
                "{kind}: {}",
                detail.chars().take(300).collect::<String>()
            ));
        }
        *self.errors.entry(kind).or_default() += 1;
    }

    fn merge(&mut self, o: Tally) {
        self.created.extend(o.created);
        for (kind, n) in o.errors {
            *self.errors.entry(kind).or_default() += n;
        }
        self.first_error = self.first_error.take().or(o.first_error);
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// Drives `connections` connections creating intents for `to_agent` until `window.end`; the
/// gate's window bounds the intents outstanding. Runs on a thread of its own.
pub fn run(
    addr: SocketAddr,
    to_agent: &str,
    connections: usize,
    window: Range<Instant>,
    gate: Arc<Gate>,
) -> Result<Tally, String> {
    let to_agent = to_agent.to_string();
    std::thread::Builder::new()
        .name("load".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("building the client runtime: {e}"))?;
            rt.block_on(async {
                let seed = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64);
                let tasks: Vec<_> = (0..connections)
                    .map(|i| {
                        let rng = seed ^ ((i as u64 + 1) << 48);
                        let template = CreateTemplate::new(addr, "bench.internal.v1", &to_agent);
                        tokio::spawn(drive(addr, template, rng, window.clone(), gate.clone()))
                    })
                    .collect();
                tokio::time::sleep_until(window.start.into()).await;
                let cpu0 = cpu_time("thread-self");
                tokio::time::sleep_until(window.end.into()).await;
                let cpu1 = cpu_time("thread-self");
                gate.stop.store(true, Ordering::Release);
                gate.moved.notify_waiters();
                let mut total = Tally::default();
                for t in tasks {
                    total.merge(t.await.map_err(|e| format!("connection task: {e}"))?);
                }
                total.cpu = Some(cpu1.zip(cpu0).map(|(b, a)| b.saturating_sub(a))).flatten();
                Ok(total)
            })
        })
        .map_err(|e| format!("starting the load thread: {e}"))?
        .join()
        .map_err(|_| "the load thread panicked".to_string())?
}

async fn drive(
    addr: SocketAddr,
    mut template: CreateTemplate,
    mut rng: u64,
    window: Range<Instant>,
    gate: Arc<Gate>,
) -> Tally {
    let mut tally = Tally::default();
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut stream = None;
    while Instant::now() < window.end && gate.enter().await {
        let conn = match stream.as_mut() {
            Some(s) => s,
            None => match connect(addr).await {
                Ok(s) => stream.insert(s),
                Err(e) => {
                    tally.error("connect failed".into(), &e);
                    gate.sent.fetch_sub(1, Ordering::Relaxed);
                    break;
                }
            },
        };
        let sent = Instant::now();
        let outcome = exchange(conn, template.next(&mut rng), &mut buf).await;
        let done = Instant::now();
        match outcome {
            Ok(resp) => {
                let body = &buf[resp.body_at..resp.len];
                let id = (resp.status == 200).then(|| intent_id(body)).flatten();
                match id {
                    Some(intent) => {
                        if window.contains(&done) {
                            let took_us =
                                u32::try_from((done - sent).as_micros()).unwrap_or(u32::MAX);
                            tally.created.push(Created {
                                intent,
                                at: done,
                                took_us,
                            });
                        }
                    }
                    None => {
                        gate.sent.fetch_sub(1, Ordering::Relaxed);
                        let text = String::from_utf8_lossy(body).into_owned();
                        tally.error(format!("HTTP {}", resp.status), &text);
                    }
                }
                buf.advance(resp.len);
                if resp.close {
                    stream = None;
                }
            }
            Err(e) => {
                gate.sent.fetch_sub(1, Ordering::Relaxed);
                tally.error(format!("I/O {:?}", e.kind()), &e.to_string());
                buf.clear();
                stream = None;
            }
        }
    }
    tally
}

/// The first `"intent_id":"…"` of a body.
pub fn intent_id(body: &[u8]) -> Option<IntentId> {
    let at = find(body, br#""intent_id":""#)? + 13;
    body.get(at..at + 36)?.try_into().ok()
}
