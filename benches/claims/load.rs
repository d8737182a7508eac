//! The HTTP load of the full inbox cycle: producers creating intents for the inbox agent, and
//! competing workers claiming and acknowledging them.
//!
//! - **Producers**: `Params::producers` keep-alive connections, one task each on one
//!   current-thread runtime (thread `producers`), each sending `POST /v1/intents` as soon as its
//!   previous create was answered, as long as fewer than `Params::window` intents are created
//!   and not yet acknowledged. The window keeps the queue from growing without bound while
//!   leaving the workers always something to claim (a claim that finds nothing waits in a long
//!   poll, and the table shows how many did).
//! - **Workers**: `Params::workers` threads, each a current-thread runtime with one keep-alive
//!   connection for its claims and `Params::ack_connections` for its acks. A worker claims
//!   (`{max, lease_seconds, wait_seconds}`), acknowledges everything it got as COMPLETED over its
//!   ack connections at once, and claims again once every ack was answered.
//!
//! A request counts when its answer arrives within the measured period: the cycles are the
//! acks answered 200 in it. Any other answer, or a broken connection, is an error.

use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::common::http::{connect, exchange, find};
use super::common::{cpu_time, machine_busy, CreateTemplate, Errors};
use super::{Params, AGENT, API_KEY, INTENT_TYPE};

/// What one run of the load measured.
#[derive(Default)]
pub struct Load {
    pub secs: f64,
    /// Acks answered 200 in the measured period.
    pub cycles: u64,
    /// Creates answered 200 in the measured period.
    pub created: u64,
    /// Claims answered in the measured period, the intents they handed out, and how many of
    /// them handed out nothing (they waited in a long poll until `wait_seconds` ran out).
    pub claims: u64,
    pub claimed: u64,
    pub empty_claims: u64,
    /// Answer times (µs, sorted) of the requests answered in the measured period.
    pub claim_us: Vec<u32>,
    pub ack_us: Vec<u32>,
    pub create_us: Vec<u32>,
    pub errors: Errors,
    pub server_cpu: Option<Duration>,
    pub bench_cpu: Option<Duration>,
    pub machine_cpu: Option<Duration>,
}

impl Load {
    pub fn per_sec(&self) -> f64 {
        self.cycles as f64 / self.secs
    }
}

/// What one thread saw; merged at the end.
#[derive(Default)]
struct Tally {
    cycles: u64,
    created: u64,
    claims: u64,
    claimed: u64,
    empty_claims: u64,
    claim_us: Vec<u32>,
    ack_us: Vec<u32>,
    create_us: Vec<u32>,
    errors: Errors,
}

impl Tally {
    fn merge(&mut self, o: Tally) {
        self.cycles += o.cycles;
        self.created += o.created;
        self.claims += o.claims;
        self.claimed += o.claimed;
        self.empty_claims += o.empty_claims;
        self.claim_us.extend(o.claim_us);
        self.ack_us.extend(o.ack_us);
        self.create_us.extend(o.create_us);
        self.errors.merge(o.errors);
    }
}

/// Counters the producers and the workers share.
struct Shared {
    /// Creates sent and not failed.
    created: AtomicU64,
    /// Acks answered 200.
    acked: AtomicU64,
    /// Notified by the workers after their acks: room for the producers.
    room: Notify,
    stop_workers: AtomicBool,
    stop_producers: AtomicBool,
}

/// One keep-alive connection and its read buffer; reconnects after a failure.
struct Conn {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    buf: BytesMut,
}

impl Conn {
    fn new(addr: SocketAddr) -> Conn {
        Conn {
            addr,
            stream: None,
            buf: BytesMut::with_capacity(64 * 1024),
        }
    }

    /// Sends `req`; on a 200 returns the body. Anything else is an error (and the connection is
    /// dropped after an I/O failure).
    async fn call(&mut self, req: &[u8]) -> Result<Vec<u8>, (String, String)> {
        if self.stream.is_none() {
            let s = connect(self.addr)
                .await
                .map_err(|e| ("connect failed".to_string(), e))?;
            self.stream = Some(s);
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(("connect failed".into(), String::new()));
        };
        match exchange(stream, req, &mut self.buf).await {
            Ok(resp) => {
                let body = self.buf[resp.body_at..resp.len].to_vec();
                self.buf.advance(resp.len);
                if resp.close {
                    self.stream = None;
                }
                if resp.status == 200 {
                    Ok(body)
                } else {
                    let text = String::from_utf8_lossy(&body).into_owned();
                    Err((format!("HTTP {}", resp.status), text))
                }
            }
            Err(e) => {
                self.buf.clear();
                self.stream = None;
                Err((format!("I/O {:?}", e.kind()), e.to_string()))
            }
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("building a client runtime: {e}"))
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// Runs the load against `addr` through the warm-up and the measured period; `server_pid` is
/// the process whose CPU time is reported.
pub fn run(addr: SocketAddr, server_pid: u32, p: &Params) -> Result<Load, String> {
    let shared = Arc::new(Shared {
        created: AtomicU64::new(0),
        acked: AtomicU64::new(0),
        room: Notify::new(),
        stop_workers: AtomicBool::new(false),
        stop_producers: AtomicBool::new(false),
    });
    let start = Instant::now() + p.warmup;
    let window = start..start + p.measure;

    let producers = {
        let (shared, window, p) = (shared.clone(), window.clone(), p.clone());
        std::thread::Builder::new()
            .name("producers".into())
            .spawn(move || produce(addr, &shared, window, &p))
            .map_err(|e| format!("starting the producers: {e}"))?
    };
    let mut workers = Vec::new();
    for w in 0..p.workers {
        let (shared, window, p) = (shared.clone(), window.clone(), p.clone());
        let worker = std::thread::Builder::new()
            .name(format!("worker-{w}"))
            .spawn(move || work(addr, w, &shared, window, &p))
            .map_err(|e| format!("starting worker {w}: {e}"))?;
        workers.push(worker);
    }

    let pid = server_pid.to_string();
    std::thread::sleep(window.start.saturating_duration_since(Instant::now()));
    let (server0, bench0, machine0) = (cpu_time(&pid), cpu_time("self"), machine_busy());
    std::thread::sleep(window.end.saturating_duration_since(Instant::now()));
    let (server1, bench1, machine1) = (cpu_time(&pid), cpu_time("self"), machine_busy());

    // Workers finish the batch in hand; producers go on meanwhile, so that no claim is left
    // waiting for an intent.
    shared.stop_workers.store(true, Ordering::Release);
    let mut total = Tally::default();
    for w in workers {
        total.merge(w.join().map_err(|_| "a worker panicked".to_string())??);
    }
    shared.stop_producers.store(true, Ordering::Release);
    shared.room.notify_waiters();
    total.merge(
        producers
            .join()
            .map_err(|_| "the producers panicked".to_string())??,
    );

    for v in [&mut total.claim_us, &mut total.ack_us, &mut total.create_us] {
        v.sort_unstable();
    }
    let used = |a: Option<Duration>, b: Option<Duration>| Some(b?.saturating_sub(a?));
    Ok(Load {
        secs: p.measure.as_secs_f64(),
        cycles: total.cycles,
        created: total.created,
        claims: total.claims,
        claimed: total.claimed,
        empty_claims: total.empty_claims,
        claim_us: total.claim_us,
        ack_us: total.ack_us,
        create_us: total.create_us,
        errors: total.errors,
        server_cpu: used(server0, server1),
        bench_cpu: used(bench0, bench1),
        machine_cpu: used(machine0, machine1),
    })
}

/// The producers' thread: one task per connection, closed loop under the window.
fn produce(
    addr: SocketAddr,
    shared: &Arc<Shared>,
    window: Range<Instant>,
    p: &Params,
) -> Result<Tally, String> {
    runtime()?.block_on(async {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        let tasks: Vec<_> = (0..p.producers)
            .map(|i| {
                let rng = seed ^ ((i as u64 + 1) << 48);
                let (shared, window, limit) = (shared.clone(), window.clone(), p.window);
                tokio::spawn(async move {
                    let mut conn = Conn::new(addr);
                    let mut template = CreateTemplate::new(addr, INTENT_TYPE, AGENT);
                    let mut rng = rng;
                    let mut tally = Tally::default();
                    loop {
                        // Registered before looking, so an ack meanwhile still wakes us.
                        let room = shared.room.notified();
                        tokio::pin!(room);
                        room.as_mut().enable();
                        if shared.stop_producers.load(Ordering::Acquire) {
                            break;
                        }
                        let outstanding = shared
                            .created
                            .load(Ordering::Relaxed)
                            .saturating_sub(shared.acked.load(Ordering::Relaxed));
                        if outstanding >= limit {
                            let _ = tokio::time::timeout(Duration::from_millis(20), room).await;
                            continue;
                        }
                        shared.created.fetch_add(1, Ordering::Relaxed);
                        let sent = Instant::now();
                        match conn.call(template.next(&mut rng)).await {
                            Ok(_) => {
                                let done = Instant::now();
                                if window.contains(&done) {
                                    tally.created += 1;
                                    tally.create_us.push(micros(done - sent));
                                }
                            }
                            Err((kind, detail)) => {
                                shared.created.fetch_sub(1, Ordering::Relaxed);
                                tally.errors.add(&format!("create: {kind}"), &detail);
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                        }
                    }
                    tally
                })
            })
            .collect();
        let mut total = Tally::default();
        for t in tasks {
            total.merge(t.await.map_err(|e| format!("producer task: {e}"))?);
        }
        Ok(total)
    })
}

/// One worker: claim, ack all of it at once, again, until told to stop.
fn work(
    addr: SocketAddr,
    index: usize,
    shared: &Arc<Shared>,
    window: Range<Instant>,
    p: &Params,
) -> Result<Tally, String> {
    runtime()?.block_on(async {
        let claim = claim_request(addr, p);
        let mut claimer = Conn::new(addr);
        let mut ackers: Vec<Option<Conn>> = (0..p.ack_connections)
            .map(|_| Some(Conn::new(addr)))
            .collect();
        let mut tally = Tally::default();
        while !shared.stop_workers.load(Ordering::Acquire) {
            let sent = Instant::now();
            let body = match claimer.call(&claim).await {
                Ok(body) => body,
                Err((kind, detail)) => {
                    tally.errors.add(&format!("claim: {kind}"), &detail);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let done = Instant::now();
            let tokens = lease_tokens(&body);
            if window.contains(&done) {
                tally.claims += 1;
                tally.claimed += tokens.len() as u64;
                tally.empty_claims += u64::from(tokens.is_empty());
                tally.claim_us.push(micros(done - sent));
            }
            // Every ack connection takes every n-th token; they all run at once.
            let n = ackers.len();
            let mut running = Vec::new();
            for (k, slot) in ackers.iter_mut().enumerate() {
                let mine: Vec<String> = tokens.iter().skip(k).step_by(n).cloned().collect();
                if mine.is_empty() {
                    continue;
                }
                let Some(conn) = slot.take() else { continue };
                let (shared, window) = (shared.clone(), window.clone());
                let handle = tokio::spawn(ack_all(conn, mine, index, shared, window));
                running.push((k, handle));
            }
            for (k, handle) in running {
                let (conn, t) = handle.await.map_err(|e| format!("ack task: {e}"))?;
                ackers[k] = Some(conn);
                tally.merge(t);
            }
        }
        Ok(tally)
    })
}

/// Acks `tokens` one after the other on `conn`.
async fn ack_all(
    mut conn: Conn,
    tokens: Vec<String>,
    worker: usize,
    shared: Arc<Shared>,
    window: Range<Instant>,
) -> (Conn, Tally) {
    let mut tally = Tally::default();
    for token in tokens {
        let body = format!(r#"{{"status":"COMPLETED","result":{{"ok":true,"worker":{worker}}}}}"#);
        let req = format!(
            "POST /v1/claims/{token}/ack HTTP/1.1\r\nhost: {}\r\nx-api-key: {API_KEY}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            conn.addr,
            body.len()
        );
        let sent = Instant::now();
        match conn.call(req.as_bytes()).await {
            Ok(_) => {
                let done = Instant::now();
                shared.acked.fetch_add(1, Ordering::Relaxed);
                if window.contains(&done) {
                    tally.cycles += 1;
                    tally.ack_us.push(micros(done - sent));
                }
            }
            Err((kind, detail)) => tally.errors.add(&format!("ack: {kind}"), &detail),
        }
    }
    shared.room.notify_waiters();
    (conn, tally)
}

/// The claim every worker sends.
fn claim_request(addr: SocketAddr, p: &Params) -> Vec<u8> {
    let body = format!(
        r#"{{"max":{},"lease_seconds":{},"wait_seconds":{}}}"#,
        p.claim_max, p.lease_seconds, p.wait_seconds
    );
    let path = AGENT.trim_start_matches("agent://");
    format!(
        "POST /v1/agents/{path}/inbox/claim HTTP/1.1\r\nhost: {addr}\r\nx-api-key: {API_KEY}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Every `"lease_token":"…"` of a claim answer.
pub fn lease_tokens(body: &[u8]) -> Vec<String> {
    let key = br#""lease_token":""#;
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(i) = find(&body[at..], key) {
        let from = at + i + key.len();
        let Some(len) = body[from..].iter().position(|&b| b == b'"') else {
            break;
        };
        out.push(String::from_utf8_lossy(&body[from..from + len]).into_owned());
        at = from + len;
    }
    out
}
