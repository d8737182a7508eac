//! The load generator of the axme phases: keep-alive connections on raw tokio sockets creating
//! intents (`POST /v1/intents`) addressed to the healthy agent, either closed loop under a
//! window of intents created and not yet received, or open loop at a fixed rate; and, in the
//! isolation phase, a few more connections creating intents for the dead agent at a steady
//! rate. After the measured period it waits until every intent to the healthy agent has been
//! received, then matches the receiver's arrivals with the creates.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::common::http::{connect, exchange, find};
use super::common::CreateTemplate;
use super::receiver::{control, IntentId};
use super::{now_ns, CpuMark, Dead, Errors, Params, Phase, Servers};
use super::{DEAD_AGENT, HEALTHY_AGENT, PUSH_TIMEOUT_SECS};

pub use super::api::preflight;

pub use super::common::{FROM_AGENT, PAYLOAD};
pub const INTENT_TYPE: &str = "bench.push.v1";
/// Connections creating intents for the dead agent.
const DEAD_CONNECTIONS: usize = 4;
/// How often the receiver's count is read to move the window.
const POLL_EVERY: Duration = Duration::from_millis(2);
/// An open-loop send later than this behind its schedule counts as late.
const LATE: Duration = Duration::from_millis(10);

/// How creates are paced.
#[derive(Clone, Copy)]
pub enum Pace {
    /// Each connection sends its next create when its previous one was answered and fewer
    /// than `window` intents are created and not yet received.
    Closed { window: u64 },
    /// Creates at `rate` per second, spread evenly over the connections.
    Open { rate: f64 },
}

/// The first `"intent_id":"…"` of a body.
pub fn intent_id(body: &[u8]) -> Option<IntentId> {
    let at = find(body, br#""intent_id":""#)? + 13;
    body.get(at..at + 36)?.try_into().ok()
}

/// Intents created and received, shared by the connection tasks and the poller. The runtime has
/// one thread, so checking and taking a place are never interleaved.
struct Gate {
    window: u64,
    /// Creates sent to the healthy agent and not failed.
    sent: AtomicU64,
    /// Webhooks the receiver got since the phase began; set by the poller.
    arrived: AtomicU64,
    /// Notified by the poller after each reading.
    moved: Notify,
}

impl Gate {
    /// Waits until fewer than `window` intents are outstanding, then takes a place.
    async fn enter(&self) {
        loop {
            let moved = self.moved.notified();
            tokio::pin!(moved);
            moved.as_mut().enable();
            let outstanding = self
                .sent
                .load(Ordering::Relaxed)
                .saturating_sub(self.arrived.load(Ordering::Relaxed));
            if outstanding < self.window {
                self.sent.fetch_add(1, Ordering::Relaxed);
                return;
            }
            moved.await;
        }
    }

    /// Gives a place back after a create that failed.
    fn leave(&self) {
        self.sent.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An intent created by the load generator.
struct Created {
    intent: IntentId,
    /// When its 200 was read, Unix ns.
    t200_ns: i64,
    /// How long the create took, µs.
    service_us: u32,
}

/// What one connection task saw.
#[derive(Default)]
struct Tally {
    created: Vec<Created>,
    errors: Errors,
    late: u64,
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("building the client runtime: {e}"))
}

/// Runs one axme phase: warm-up, measured period, then the drain.
pub fn run(
    s: &Servers,
    name: &str,
    pace: Pace,
    dead_rate: Option<f64>,
    p: &Params,
) -> Result<Phase, String> {
    let receiver = s.receiver.addr;
    // Forget what earlier phases left, so that the window and the matching start from here.
    control::arrivals(receiver)?;
    let base = control::count(receiver)?;
    // With a dead endpoint, let its first attempts time out before measuring, so the period
    // sees it in its steady state (all its places held, some timing out).
    let warmup = match dead_rate {
        Some(_) => p.warmup.max(Duration::from_secs(PUSH_TIMEOUT_SECS + 1)),
        None => p.warmup,
    };
    let (axme, pids) = (s.axme.addr, s.pids());
    let (window, rate) = match pace {
        Pace::Closed { window } => (window, None),
        Pace::Open { rate } => (u64::MAX, Some(rate)),
    };
    let gate = Arc::new(Gate {
        window,
        sent: AtomicU64::new(0),
        arrived: AtomicU64::new(0),
        moved: Notify::new(),
    });
    let black_hole = (s.black_hole.open.clone(), s.black_hole.closed.clone());

    let (healthy, dead, measured) = runtime()?.block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        let poller = tokio::spawn(poll(receiver, base, gate.clone(), stop.clone()));
        let begin = Instant::now();
        let (start, end) = (begin + warmup, begin + warmup + p.measure);
        let seed = now_ns() as u64;
        let mut tasks = Vec::new();
        for i in 0..p.connections {
            let stream = connect(axme).await?;
            let pacing = rate.map(|r| {
                let every = Duration::from_secs_f64(p.connections as f64 / r);
                (begin + Duration::from_secs_f64(i as f64 / r), every)
            });
            let template = CreateTemplate::new(axme, INTENT_TYPE, HEALTHY_AGENT);
            let rng = seed ^ ((i as u64 + 1) << 48);
            let g = Some(gate.clone()).filter(|_| rate.is_none());
            tasks.push(tokio::spawn(drive(
                axme, stream, template, rng, end, g, pacing,
            )));
        }
        let mut dead_tasks = Vec::new();
        for i in 0..dead_rate.map_or(0, |_| DEAD_CONNECTIONS) {
            let stream = connect(axme).await?;
            let r = dead_rate.unwrap_or(1.0);
            let every = Duration::from_secs_f64(DEAD_CONNECTIONS as f64 / r);
            let first = begin + Duration::from_secs_f64(i as f64 / r);
            let template = CreateTemplate::new(axme, INTENT_TYPE, DEAD_AGENT);
            let rng = seed ^ ((i as u64 + 1001) << 48);
            let conn = drive(axme, stream, template, rng, end, None, Some((first, every)));
            dead_tasks.push(tokio::spawn(conn));
        }

        // CPU and the black hole's connections over the measured period only.
        tokio::time::sleep_until(start.into()).await;
        let (mark0, rt0, closed0) = (
            CpuMark::now(pids),
            now_ns(),
            black_hole.1.load(Ordering::Relaxed),
        );
        let mut held = Vec::new();
        while Instant::now() + Duration::from_millis(100) <= end {
            held.push(black_hole.0.load(Ordering::Relaxed) as f64);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep_until(end.into()).await;
        let (mark1, rt1, closed1) = (
            CpuMark::now(pids),
            now_ns(),
            black_hole.1.load(Ordering::Relaxed),
        );

        let mut healthy = Tally::default();
        for t in tasks {
            merge(
                &mut healthy,
                t.await.map_err(|e| format!("connection task: {e}"))?,
            );
        }
        let mut dead = Tally::default();
        for t in dead_tasks {
            merge(
                &mut dead,
                t.await.map_err(|e| format!("connection task: {e}"))?,
            );
        }
        // Every intent created for the healthy agent should arrive; wait for the last ones.
        let deadline = Instant::now() + p.drain;
        let total = healthy.created.len() as u64;
        while gate.arrived.load(Ordering::Relaxed) < total && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.store(true, Ordering::Relaxed);
        poller.await.map_err(|e| format!("poller task: {e}"))??;
        let held = held.iter().sum::<f64>() / held.len().max(1) as f64;
        Ok::<_, String>((
            healthy,
            dead,
            (mark0.until(&mark1), rt0..rt1, held, closed1 - closed0),
        ))
    })?;
    let (cpu, period, held, timed_out) = measured;
    let secs = (period.end - period.start) as f64 / 1e9;

    // Match arrivals with creates.
    let mut first_arrival: HashMap<IntentId, i64> = HashMap::new();
    let (mut received, mut duplicates) = (0, 0);
    for a in control::arrivals(receiver)? {
        received += u64::from(period.contains(&a.at_ns));
        match first_arrival.entry(a.intent) {
            Entry::Vacant(v) => {
                v.insert(a.at_ns);
            }
            Entry::Occupied(mut o) => {
                duplicates += 1;
                let at = o.get_mut();
                *at = (*at).min(a.at_ns);
            }
        }
    }
    let in_period: Vec<&Created> = healthy
        .created
        .iter()
        .filter(|c| period.contains(&c.t200_ns))
        .collect();
    let mut latencies_us: Vec<i64> = in_period
        .iter()
        .filter_map(|c| Some((first_arrival.get(&c.intent)? - c.t200_ns) / 1000))
        .collect();
    latencies_us.sort_unstable();
    let mut service_us: Vec<u32> = in_period.iter().map(|c| c.service_us).collect();
    service_us.sort_unstable();
    let mut errors = healthy.errors;
    let dead = dead_rate.map(|_| {
        errors.merge(dead.errors);
        Dead {
            created_per_sec: dead.created.len() as f64 / (warmup + p.measure).as_secs_f64(),
            held,
            timed_out,
        }
    });
    Ok(Phase {
        name: name.to_string(),
        secs,
        received,
        created: Some(in_period.len() as u64),
        offered: rate,
        late: (healthy.late, healthy.created.len() as u64),
        lost: (in_period.len() - latencies_us.len()) as u64,
        latencies_us,
        duplicates,
        service_us,
        errors,
        cpu,
        dead,
    })
}

fn merge(into: &mut Tally, other: Tally) {
    into.created.extend(other.created);
    into.errors.merge(other.errors);
    into.late += other.late;
}

/// Reads the receiver's count every `POLL_EVERY` on a keep-alive connection and moves the gate.
async fn poll(
    receiver: SocketAddr,
    base: u64,
    gate: Arc<Gate>,
    stop: Arc<AtomicBool>,
) -> Result<(), String> {
    let mut stream = connect(receiver).await?;
    let req = format!("GET /__bench/count HTTP/1.1\r\nhost: {receiver}\r\n\r\n");
    let mut buf = BytesMut::with_capacity(1024);
    while !stop.load(Ordering::Relaxed) {
        let resp = exchange(&mut stream, req.as_bytes(), &mut buf)
            .await
            .map_err(|e| format!("reading the receiver's count: {e}"))?;
        let count: u64 = std::str::from_utf8(&buf[resp.body_at..resp.len])
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .ok_or("the receiver's count is not a number")?;
        buf.advance(resp.len);
        gate.arrived
            .store(count.saturating_sub(base), Ordering::Relaxed);
        gate.moved.notify_waiters();
        tokio::time::sleep(POLL_EVERY).await;
    }
    Ok(())
}

/// One connection: sends creates until `end`, paced by the gate (closed loop) or by its
/// schedule (`pacing`: first send, then one every so often).
async fn drive(
    addr: SocketAddr,
    stream: TcpStream,
    mut template: CreateTemplate,
    mut rng: u64,
    end: Instant,
    gate: Option<Arc<Gate>>,
    pacing: Option<(Instant, Duration)>,
) -> Tally {
    let mut tally = Tally::default();
    let mut buf = BytesMut::with_capacity(8192);
    let mut stream = Some(stream);
    let mut due = pacing.map(|(first, _)| first);
    loop {
        match (due, pacing) {
            (Some(at), Some((_, every))) => {
                if at >= end {
                    break;
                }
                tokio::time::sleep_until(at.into()).await;
                tally.late += u64::from(Instant::now() > at + LATE);
                due = Some(at + every);
            }
            _ if Instant::now() >= end => break,
            _ => {}
        }
        if let Some(g) = &gate {
            if tokio::time::timeout_at(end.into(), g.enter())
                .await
                .is_err()
            {
                break;
            }
        }
        let s = match stream.as_mut() {
            Some(s) => s,
            None => match connect(addr).await {
                Ok(s) => stream.insert(s),
                Err(e) => {
                    tally.errors.add("connect", &e);
                    if let Some(g) = &gate {
                        g.leave();
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let began = Instant::now();
        match exchange(s, template.next(&mut rng), &mut buf).await {
            Ok(resp) => {
                let body = &buf[resp.body_at..resp.len];
                match (resp.status, intent_id(body)) {
                    (200, Some(intent)) => tally.created.push(Created {
                        intent,
                        t200_ns: now_ns(),
                        service_us: u32::try_from(began.elapsed().as_micros()).unwrap_or(u32::MAX),
                    }),
                    (status, _) => {
                        let body = String::from_utf8_lossy(body);
                        tally.errors.add(&format!("create: HTTP {status}"), &body);
                        if let Some(g) = &gate {
                            g.leave();
                        }
                    }
                }
                buf.advance(resp.len);
                if resp.close {
                    stream = None;
                }
            }
            Err(e) => {
                tally
                    .errors
                    .add(&format!("create: I/O {:?}", e.kind()), &e.to_string());
                if let Some(g) = &gate {
                    g.leave();
                }
                buf.clear();
                stream = None;
            }
        }
    }
    tally
}
