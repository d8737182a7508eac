//! Crash durability under mixed load: client threads create intents for an inbox agent, a push
//! agent and a plain pull agent; claim, ack, nack and extend inbox leases; and walk the pull
//! agent's intents through progress, resume, ack and resolve. The server is SIGKILLed at a random
//! point, restarted on the same file, and checked, several rounds in a row:
//!
//! - every create that got a 200 exists, and nothing that was not committed appears;
//! - every acknowledged ack or move left its status, and no intent is in a status earlier than an
//!   acknowledged write put it in (a write whose answer the kill cut off may or may not be there);
//! - every intent's events are seq 1..=n without gaps, start with `intent.created`,
//!   `intent.submitted`, follow only legal moves, and end in the intent's status;
//! - every lease held at the kill is still owed: after it runs out the intent is claimable again
//!   (and is claimed), or FAILED with `delivery_failed` once out of attempts, never stuck in
//!   DELIVERED;
//! - every push intent is still owed: after the restart it reaches the receiver run by this test
//!   and is DELIVERED (or COMPLETED, when the receiver answers so), under one `webhook-id` however
//!   often it was sent; no intent that was never committed is ever pushed;
//! - after the last round, `PRAGMA integrity_check` is `ok` and every intent's `last_seq` is the
//!   number of its events.
//!
//! Kill delays and the choice of operations come from a PRNG seeded by `AXME_CRASH_SEED` (printed
//! on every run; set it to replay a run's schedule). Thread interleaving is the operating
//! system's and cannot be replayed.

use crate::common;
use crate::crash_support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crash_support::{agent, base_seed, excerpt, fail_if_any, gap_free_from_creation, Rng};
use serde_json::{json, Value};

const ROUNDS: usize = 7;
const CLIENTS: usize = 6;
/// Threads that read the database back after a restart.
const READERS: usize = 6;
/// Attempts an inbox intent gets from its agent; a third of them ask for `FEW_ATTEMPTS`.
const INBOX_ATTEMPTS: i64 = 6;
const FEW_ATTEMPTS: i64 = 2;
/// Attempts of a push: the receiver answers 200 at the latest on the second one.
const PUSH_ATTEMPTS: i64 = 1000;
/// How long after a restart a lease held at the kill (at most 2 s long) may take to run out
/// before its intent counts as lost.
const LEASE_DEADLINE: Duration = Duration::from_secs(20);
/// How long after a restart the pushes still owed may take to arrive.
const PUSH_DEADLINE: Duration = Duration::from_secs(30);
/// Flags of every start: quick push retries, so an owed push arrives soon after a restart.
const FLAGS: &[&str] = &[
    "--push-retry-schedule",
    "100ms,200ms,300ms",
    "--push-timeout",
    "5",
    "--push-endpoint-concurrency",
    "8",
];
/// A round's kill waits for at least this many acknowledged writes (a slow machine makes the
/// random delay too short for some).
const MIN_ACKED: usize = 60;
const TERMINAL: [&str; 4] = ["COMPLETED", "FAILED", "CANCELED", "TIMED_OUT"];

/// Wall-clock milliseconds: the clock the server's leases run on.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

// --- The receiver of the push agent -------------------------------------------------------------

/// A push the receiver got.
#[derive(Clone, Debug)]
struct Hit {
    webhook_id: String,
    intent_id: String,
}

/// A webhook endpoint on `127.0.0.1`: one request per connection, recorded before it is answered.
/// The first push of a `webhook-id` gets a 500 one time in five and a slow 200 one time in ten;
/// every later one a quick 200. An intent whose payload says `"reply": "COMPLETED"` is completed
/// in the answer.
struct Receiver {
    addr: SocketAddr,
    hits: Arc<Mutex<Vec<Hit>>>,
    stop: Arc<AtomicBool>,
}

impl Receiver {
    fn start(seed: u64) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the receiver");
        let addr = listener.local_addr().expect("receiver address");
        let hits = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, s) = (hits.clone(), stop.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let h = h.clone();
                thread::spawn(move || answer(conn, &h, seed));
            }
        });
        Receiver { addr, hits, stop }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().expect("hits").clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

/// FNV-1a, to turn a webhook id into a seed.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn answer(conn: TcpStream, hits: &Mutex<Vec<Hit>>, seed: u64) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let Some((webhook_id, body)) = read_request(&conn) else {
        return;
    };
    let push: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let intent = &push["data"]["intent"];
    let (status, delay) = {
        let mut hits = hits.lock().expect("hits");
        let first = !hits.iter().any(|h| h.webhook_id == webhook_id);
        let roll = Rng(seed ^ fnv(&webhook_id)).below(20);
        hits.push(Hit {
            webhook_id,
            intent_id: intent["intent_id"].as_str().unwrap_or("").to_string(),
        });
        match (first, roll) {
            (true, 0..=3) => (500, 0),
            (true, 4..=5) => (200, 100 + 50 * roll),
            _ => (200, 0),
        }
    };
    thread::sleep(Duration::from_millis(delay));
    let reply = match (status, intent["payload"]["reply"].as_str()) {
        (200, Some("COMPLETED")) => {
            json!({"status": "COMPLETED", "result": {"by": "receiver"}}).to_string()
        }
        _ => String::new(),
    };
    let out = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{reply}",
        reply.len()
    );
    let mut conn = conn;
    let _ = conn.write_all(out.as_bytes());
    let _ = conn.flush();
}

/// Reads one HTTP/1.1 request: its `webhook-id` header and its `content-length` body.
fn read_request(conn: &TcpStream) -> Option<(String, Vec<u8>)> {
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    // A connection closed before its request was whole (the server was killed) is no push.
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let len = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    let webhook_id = headers.into_iter().find(|(k, _)| k == "webhook-id");
    Some((webhook_id.map(|(_, v)| v).unwrap_or_default(), body))
}

// --- What the clients know ------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// To an inbox agent: claimed, acked, nacked, extended by the clients.
    Inbox,
    /// To an http agent whose webhook is the test's receiver.
    Push,
    /// To an unregistered (pull) agent: moved on by progress, resume, ack and resolve.
    Life,
}

/// The three agents of a run.
struct Agents {
    inbox: String,
    push: String,
    life: String,
}

impl Agents {
    fn of(&self, kind: Kind) -> &str {
        match kind {
            Kind::Inbox => &self.inbox,
            Kind::Push => &self.push,
            Kind::Life => &self.life,
        }
    }
}

/// The address as it goes in a path.
fn bare(address: &str) -> &str {
    address.strip_prefix("agent://").unwrap_or(address)
}

/// What became of a create, as far as the client knows and, after a restart, the server says.
#[derive(Clone, Debug, PartialEq)]
enum Created {
    /// 200 with a body: must exist from now on, with this id.
    Acked(String),
    /// 200 whose body the kill cut off: committed, id not known yet.
    AckedNoBody,
    /// Transport error or 5xx: may or may not have been committed.
    Unknown,
    /// A 4xx: must never exist.
    Rejected(u16),
    /// Unknown, then seen after a restart: must stay.
    Present(String),
    /// Unknown, then not seen after a restart: must never appear.
    Absent,
}

impl Created {
    fn id(&self) -> Option<&str> {
        match self {
            Created::Acked(id) | Created::Present(id) => Some(id),
            _ => None,
        }
    }
}

/// One intent some client asked for, by its correlation id.
#[derive(Clone, Debug)]
struct Tracked {
    kind: Kind,
    round: usize,
    created: Created,
    /// Inbox: the attempts it gets.
    max_attempts: i64,
    /// Push: the receiver completes it.
    completes: bool,
    /// Inbox: a claim returned it (so it was committed).
    claimed: bool,
    /// Inbox: the status an acknowledged claim ack put it in.
    acked: Option<String>,
    /// Inbox: the status of an ack whose answer the kill cut off.
    maybe_acked: Option<String>,
    /// Life: the status its last acknowledged move put it in.
    status: String,
    /// Life: the status of a move whose answer the kill cut off.
    maybe_status: Option<String>,
}

type Ledger = HashMap<String, Tracked>;

/// What a client learned in a round, merged into the ledger after the kill.
enum Note {
    Created(String, Tracked),
    Claimed(String),
    Acked {
        cid: String,
        status: String,
        sure: bool,
    },
    Moved {
        cid: String,
        status: String,
        sure: bool,
    },
}

// --- Clients ----------------------------------------------------------------------------------

/// What a write came back with.
enum Outcome {
    /// 2xx with its body.
    Done(Value),
    /// 2xx whose body the kill cut off: committed.
    DoneNoBody,
    /// A 4xx: nothing changed.
    Refused(u16, Value),
    /// Transport error or 5xx: may or may not have been committed.
    Unknown,
}

/// A lease a client holds, and when it ends at the earliest.
struct Held {
    token: String,
    cid: String,
    ends_ms: i64,
}

/// A pull-agent intent a client moves on (one owner per intent, so its moves are sequential).
struct Owned {
    cid: String,
    id: String,
    status: String,
}

/// What the clients of a round share.
struct Round<'a> {
    base: &'a str,
    agents: &'a Agents,
    round: usize,
    seed: u64,
    /// Set just before the SIGKILL: from then on a failed request is expected.
    killed: AtomicBool,
    /// Writes that got a 2xx.
    acked: AtomicUsize,
}

struct Client<'a> {
    a: ureq::Agent,
    r: &'a Round<'a>,
    thread: usize,
    rng: Rng,
    stopped: bool,
    notes: Vec<Note>,
    problems: Vec<String>,
    counts: BTreeMap<String, usize>,
    held: Vec<Held>,
    owned: Vec<Owned>,
}

impl Client<'_> {
    fn count(&mut self, what: &str, outcome: &Outcome) {
        let how = match outcome {
            Outcome::Done(_) | Outcome::DoneNoBody => "ok",
            Outcome::Refused(409, _) => "409",
            Outcome::Refused(..) => "4xx",
            Outcome::Unknown => "unknown",
        };
        *self.counts.entry(format!("{what} {how}")).or_default() += 1;
    }

    fn post(&mut self, what: &str, path: &str, body: &Value) -> Outcome {
        let result = self
            .a
            .post(&format!("{}{path}", self.r.base))
            .set("x-api-key", common::ADMIN_KEY)
            .set("content-type", "application/json")
            .send_string(&body.to_string());
        let reply = match result {
            Ok(r) | Err(ureq::Error::Status(_, r)) => {
                let status = r.status();
                Ok((status, r.into_string().ok()))
            }
            Err(e) => Err(e.to_string()),
        };
        let alive = !self.r.killed.load(Ordering::SeqCst);
        let outcome = match reply {
            Ok((s @ 200..=299, Some(text))) => match serde_json::from_str::<Value>(&text) {
                Ok(v) if v["ok"] == json!(true) => Outcome::Done(v),
                _ => {
                    self.problems
                        .push(format!("{what} {path}: {s} with a bad body: {text}"));
                    Outcome::DoneNoBody
                }
            },
            Ok((200..=299, None)) => Outcome::DoneNoBody,
            Ok((s @ 400..=499, text)) => Outcome::Refused(
                s,
                text.and_then(|t| serde_json::from_str(&t).ok())
                    .unwrap_or(Value::Null),
            ),
            Ok((s, text)) => {
                // 503 is how a server may shed load; any other 5xx is a defect (often
                // SQLITE_BUSY leaking out).
                if alive && s != 503 {
                    let text = text.unwrap_or_default();
                    self.problems.push(format!("{what} {path}: {s} {text}"));
                }
                Outcome::Unknown
            }
            Err(e) => {
                if alive {
                    self.problems.push(format!(
                        "{what} {path}: transport error before the kill: {e}"
                    ));
                }
                Outcome::Unknown
            }
        };
        match outcome {
            Outcome::Unknown if !alive => self.stopped = true,
            Outcome::Done(_) | Outcome::DoneNoBody => {
                self.r.acked.fetch_add(1, Ordering::SeqCst);
            }
            _ => {}
        }
        self.count(what, &outcome);
        outcome
    }

    /// One step of the mix.
    fn step(&mut self, i: usize) {
        match self.rng.below(100) {
            0..=17 => self.create(Kind::Inbox, i),
            18..=29 => self.create(Kind::Push, i),
            30..=37 => self.create(Kind::Life, i),
            38..=53 => self.claim(),
            54..=77 if !self.held.is_empty() => self.settle_lease(),
            54..=77 => self.claim(),
            _ if !self.owned.is_empty() => self.move_on(),
            _ => self.create(Kind::Life, i),
        }
    }

    fn create(&mut self, kind: Kind, i: usize) {
        let cid = common::uuid();
        let few = kind == Kind::Inbox && self.rng.below(3) == 0;
        let completes = kind == Kind::Push && self.rng.below(3) == 0;
        let mut body = json!({
            "intent_type": format!("crashmix.{kind:?}.v1").to_lowercase(),
            "correlation_id": cid,
            "to_agent": self.r.agents.of(kind),
            "payload": {
                "round": self.r.round, "thread": self.thread, "i": i,
                "reply": if completes { "COMPLETED" } else { "ok" },
            },
        });
        if few {
            body["max_delivery_attempts"] = json!(FEW_ATTEMPTS);
        }
        let what = format!("create {kind:?}").to_lowercase();
        let created = match self.post(&what, "/v1/intents", &body) {
            Outcome::Done(v) => {
                let id = v["intent_id"].as_str().unwrap_or("").to_string();
                if id.is_empty() || v["status"] != "SUBMITTED" {
                    self.problems
                        .push(format!("create {cid}: 200 with a bad body: {v}"));
                }
                if kind == Kind::Life {
                    self.owned.push(Owned {
                        cid: cid.clone(),
                        id: id.clone(),
                        status: "SUBMITTED".into(),
                    });
                }
                Created::Acked(id)
            }
            Outcome::DoneNoBody => Created::AckedNoBody,
            Outcome::Refused(s, v) => {
                self.problems.push(format!("create {cid}: {s} {v}"));
                Created::Rejected(s)
            }
            Outcome::Unknown => Created::Unknown,
        };
        let tracked = Tracked {
            kind,
            round: self.r.round,
            created,
            max_attempts: if few { FEW_ATTEMPTS } else { INBOX_ATTEMPTS },
            completes,
            claimed: false,
            acked: None,
            maybe_acked: None,
            status: "SUBMITTED".into(),
            maybe_status: None,
        };
        self.notes.push(Note::Created(cid, tracked));
    }

    fn claim(&mut self) {
        let lease_seconds = 1 + self.rng.below(2) as i64;
        let body = json!({"max": 1 + self.rng.below(3), "lease_seconds": lease_seconds,
                          "wait_seconds": 0});
        let path = format!("/v1/agents/{}/inbox/claim", bare(&self.r.agents.inbox));
        let sent = now_ms();
        let Outcome::Done(v) = self.post("claim", &path, &body) else {
            return;
        };
        for c in v["claims"].as_array().cloned().unwrap_or_default() {
            let intent = &c["intent"];
            let cid = intent["correlation_id"].as_str().unwrap_or("").to_string();
            let token = c["lease_token"].as_str().unwrap_or("").to_string();
            if intent["status"] != "DELIVERED"
                || intent["to_agent"] != self.r.agents.inbox.as_str()
                || c["attempt"] != intent["delivery_attempt"]
                || token.is_empty()
            {
                self.problems.push(format!("a bad claim: {}", excerpt(&c)));
            }
            self.notes.push(Note::Claimed(cid.clone()));
            self.held.push(Held {
                token,
                cid,
                ends_ms: sent + lease_seconds * 1000,
            });
        }
    }

    /// Acks, nacks or extends one of the leases this client holds.
    fn settle_lease(&mut self) {
        let k = self.rng.below(self.held.len() as u64) as usize;
        let held = self.held.swap_remove(k);
        let roll = self.rng.below(100);
        let sent = now_ms();
        let (what, body, acking) = if roll < 55 {
            let status = *self
                .rng
                .pick(&["ACKNOWLEDGED", "IN_PROGRESS", "COMPLETED", "FAILED"]);
            let body = match status {
                "COMPLETED" => json!({"status": status, "result": {"by": "worker"}}),
                "FAILED" => json!({"status": status, "error": {"code": "worker_failed"}}),
                _ => json!({"status": status}),
            };
            ("ack", body, Some(status))
        } else if roll < 85 {
            ("nack", json!({"delay_seconds": self.rng.below(2)}), None)
        } else {
            let seconds = 1 + self.rng.below(2) as i64;
            ("extend", json!({"lease_seconds": seconds}), None)
        };
        let path = format!("/v1/claims/{}/{what}", held.token);
        let outcome = self.post(what, &path, &body);
        let cid = held.cid.clone();
        let sure = !matches!(outcome, Outcome::Unknown);
        match outcome {
            Outcome::Done(v) => {
                let status = v["intent"]["status"].as_str().unwrap_or("");
                let fine = match (what, acking) {
                    ("ack", Some(want)) => status == want,
                    ("nack", _) => status == "SUBMITTED" || status == "FAILED",
                    _ => status == "DELIVERED",
                };
                if !fine {
                    self.problems.push(format!(
                        "{what} {body} of {cid}: the intent is {status}: {}",
                        excerpt(&v)
                    ));
                }
                if what == "extend" {
                    let seconds = body["lease_seconds"].as_i64().unwrap_or(1);
                    self.held.push(Held {
                        ends_ms: sent + seconds * 1000,
                        ..held
                    });
                }
            }
            Outcome::DoneNoBody => {}
            Outcome::Refused(409, v) if v["error"]["code"] == "lease_lost" => {
                // The server's clock had passed the lease's end when it answered, so ours has.
                let now = now_ms();
                if now < held.ends_ms {
                    self.problems.push(format!(
                        "{what} of {cid}: lease_lost {} ms before the lease's end",
                        held.ends_ms - now
                    ));
                }
                return;
            }
            Outcome::Refused(s, v) => {
                self.problems
                    .push(format!("{what} {body} of {cid}: {s} {}", excerpt(&v)));
                return;
            }
            Outcome::Unknown => {}
        }
        if let Some(status) = acking {
            self.notes.push(Note::Acked {
                cid,
                status: status.into(),
                sure,
            });
        }
    }

    /// A legal move of one of this client's pull-agent intents; on a terminal one, a resolve that
    /// must be refused.
    fn move_on(&mut self) {
        let k = self.rng.below(self.owned.len() as u64) as usize;
        let (id, from) = (self.owned[k].id.clone(), self.owned[k].status.clone());
        if TERMINAL.contains(&from.as_str()) {
            let body = json!({"status": "COMPLETED", "result": {"late": true}});
            let path = format!("/v1/intents/{id}/resolve");
            match self.post("resolve terminal", &path, &body) {
                Outcome::Refused(409, _) | Outcome::Unknown => {}
                Outcome::Done(v) => self.problems.push(format!(
                    "a {from} intent {id} was resolved again: {}",
                    excerpt(&v)
                )),
                Outcome::DoneNoBody => self
                    .problems
                    .push(format!("a {from} intent {id} was resolved again")),
                Outcome::Refused(s, v) => self.problems.push(format!(
                    "resolving the {from} intent {id}: {s} {}",
                    excerpt(&v)
                )),
            }
            self.owned.swap_remove(k);
            return;
        }
        let resolve = self.rng.below(4) == 0;
        let mut moves: Vec<(&str, Value, &str)> = Vec::new();
        if resolve {
            moves.push((
                "resolve",
                json!({"status": "COMPLETED", "result": {"v": 1}}),
                "COMPLETED",
            ));
            moves.push((
                "resolve",
                json!({"status": "FAILED", "error": {"code": "x"}}),
                "FAILED",
            ));
            moves.push((
                "resolve",
                json!({"status": "CANCELED", "reason": "stop"}),
                "CANCELED",
            ));
        } else {
            if from != "IN_PROGRESS" {
                moves.push(("progress", json!({"status": "IN_PROGRESS"}), "IN_PROGRESS"));
            }
            if from != "WAITING" {
                let reason = *self.rng.pick(&["WAITING_FOR_TOOL", "WAITING_FOR_AGENT"]);
                moves.push((
                    "progress",
                    json!({"status": "WAITING", "waiting_reason": reason}),
                    "WAITING",
                ));
            } else {
                moves.push(("resume", json!({"reason": "go on"}), "IN_PROGRESS"));
            }
            if from == "SUBMITTED" {
                moves.push(("ack", json!({}), "ACKNOWLEDGED"));
            }
        }
        let (what, body, to) = self.rng.pick(&moves).clone();
        let path = format!("/v1/intents/{id}/{what}");
        let outcome = self.post(what, &path, &body);
        let cid = self.owned[k].cid.clone();
        let sure = match &outcome {
            Outcome::Done(v) => {
                if v["intent"]["status"] != to {
                    self.problems.push(format!(
                        "{what} {body} of {id} ({from}) answered {}",
                        excerpt(&v["intent"])
                    ));
                }
                true
            }
            Outcome::DoneNoBody => true,
            Outcome::Refused(s, v) => {
                self.problems.push(format!(
                    "{what} {body} of {id} ({from}): {s} {}",
                    excerpt(v)
                ));
                return;
            }
            Outcome::Unknown => false,
        };
        if sure {
            self.owned[k].status = to.to_string();
        }
        self.notes.push(Note::Moved {
            cid,
            status: to.to_string(),
            sure,
        });
    }
}

struct Report {
    notes: Vec<Note>,
    problems: Vec<String>,
    counts: BTreeMap<String, usize>,
}

/// One client: a mix of writes until the server dies under it.
fn client(r: &Round, thread: usize, owned: Vec<Owned>) -> Report {
    let mut c = Client {
        a: agent(),
        r,
        thread,
        rng: Rng(r.seed ^ ((thread as u64 + 1) << 32)),
        stopped: false,
        notes: Vec::new(),
        problems: Vec::new(),
        counts: BTreeMap::new(),
        held: Vec::new(),
        owned,
    };
    for i in 0.. {
        c.step(i);
        if c.stopped {
            break;
        }
    }
    Report {
        notes: c.notes,
        problems: c.problems,
        counts: c.counts,
    }
}

/// Runs `CLIENTS` clients against `server`, SIGKILLs it after `delay`, and merges what they
/// learned into the ledger.
fn load_and_kill(
    server: &mut common::Server,
    agents: &Agents,
    round: usize,
    seed: u64,
    delay: Duration,
    ledger: &mut Ledger,
) -> Vec<String> {
    // Each pull-agent intent still moving (or ended last round) goes to one client.
    let mut movable: Vec<Owned> = ledger
        .iter()
        .filter(|(_, t)| t.kind == Kind::Life)
        .filter(|(_, t)| !TERMINAL.contains(&t.status.as_str()) || t.round + 1 == round)
        .filter_map(|(cid, t)| {
            Some(Owned {
                cid: cid.clone(),
                id: t.created.id()?.to_string(),
                status: t.status.clone(),
            })
        })
        .collect();
    movable.sort_by(|a, b| a.cid.cmp(&b.cid));
    let mut shares: Vec<Vec<Owned>> = (0..CLIENTS).map(|_| Vec::new()).collect();
    for (k, o) in movable.into_iter().enumerate() {
        shares[k % CLIENTS].push(o);
    }

    let base = server.base.clone();
    let r = Round {
        base: &base,
        agents,
        round,
        seed,
        killed: AtomicBool::new(false),
        acked: AtomicUsize::new(0),
    };
    let started = Instant::now();
    let reports: Vec<Report> = thread::scope(|s| {
        let r = &r;
        let clients: Vec<_> = shares
            .into_iter()
            .enumerate()
            .map(|(t, owned)| s.spawn(move || client(r, t, owned)))
            .collect();
        thread::sleep(delay);
        while r.acked.load(Ordering::SeqCst) < MIN_ACKED
            && started.elapsed() < Duration::from_secs(20)
        {
            thread::sleep(Duration::from_millis(10));
        }
        r.killed.store(true, Ordering::SeqCst);
        server.kill();
        clients
            .into_iter()
            .map(|h| h.join().expect("client thread"))
            .collect()
    });

    let mut problems = Vec::new();
    let mut counts = BTreeMap::<String, usize>::new();
    let mut rest = Vec::new();
    for r in reports {
        problems.extend(r.problems);
        for (k, n) in r.counts {
            *counts.entry(k).or_default() += n;
        }
        for note in r.notes {
            match note {
                Note::Created(cid, t) => {
                    assert!(ledger.insert(cid, t).is_none(), "uuid collision");
                }
                other => rest.push(other),
            }
        }
    }
    for note in rest {
        let cid = match &note {
            Note::Claimed(cid) | Note::Acked { cid, .. } | Note::Moved { cid, .. } => cid.clone(),
            Note::Created(..) => continue,
        };
        let Some(t) = ledger.get_mut(&cid) else {
            problems.push(format!("a claim returned {cid}, which no client created"));
            continue;
        };
        match note {
            Note::Claimed(_) => t.claimed = true,
            Note::Acked { status, sure, .. } if sure => {
                if let Some(before) = &t.acked {
                    problems.push(format!("{cid} acked twice: {before}, then {status}"));
                }
                t.acked = Some(status);
            }
            Note::Acked { status, .. } => t.maybe_acked = Some(status),
            Note::Moved { status, sure, .. } if sure => {
                t.status = status;
                t.maybe_status = None;
            }
            Note::Moved { status, .. } => t.maybe_status = Some(status),
            Note::Created(..) => {}
        }
    }
    let shown: Vec<String> = counts.iter().map(|(k, n)| format!("{k} {n}")).collect();
    let acked = r.acked.into_inner();
    eprintln!(
        "round {round}: killed after {} ms, {acked} writes acknowledged: {}",
        started.elapsed().as_millis(),
        shown.join(", ")
    );
    if acked < MIN_ACKED {
        problems.push(format!(
            "round {round}: {acked} writes acknowledged in {} ms",
            started.elapsed().as_millis()
        ));
    }
    problems
}

// --- Reading back -----------------------------------------------------------------------------

fn get(a: &ureq::Agent, base: &str, path: &str) -> Result<Value, String> {
    let result = a
        .get(&format!("{base}{path}"))
        .set("x-api-key", common::ADMIN_KEY)
        .call();
    let resp = match result {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(format!("GET {path}: {e}")),
    };
    let status = resp.status();
    let v: Value = resp
        .into_string()
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    if status != 200 || v["ok"] != json!(true) {
        return Err(format!("GET {path} -> {status} {}", excerpt(&v)));
    }
    Ok(v)
}

fn post(a: &ureq::Agent, base: &str, path: &str, body: &Value) -> Result<Value, String> {
    let result = a
        .post(&format!("{base}{path}"))
        .set("x-api-key", common::ADMIN_KEY)
        .set("content-type", "application/json")
        .send_string(&body.to_string());
    let resp = match result {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(format!("POST {path}: {e}")),
    };
    let status = resp.status();
    let v: Value = resp
        .into_string()
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    if status != 200 || v["ok"] != json!(true) {
        return Err(format!("POST {path} {body} -> {status} {}", excerpt(&v)));
    }
    Ok(v)
}

/// Runs `f` over `items` on `READERS` threads, each with its own keep-alive agent.
fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&ureq::Agent, &T) -> R + Sync) -> Vec<R> {
    let chunk = items.len().div_ceil(READERS).max(1);
    thread::scope(|s| {
        let f = &f;
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|c| s.spawn(move || c.iter().map(|t| f(&agent(), t)).collect::<Vec<R>>()))
            .collect();
        let results = handles
            .into_iter()
            .map(|h| h.join().expect("reader thread"));
        results.flatten().collect()
    })
}

/// Every intent the server lists, following `next_cursor` to the end.
fn list_all(base: &str) -> Result<Vec<Value>, String> {
    let (a, mut all, mut path) = (agent(), Vec::new(), "/v1/intents?limit=200".to_string());
    for _ in 0..10_000 {
        let page = get(&a, base, &path)?;
        let items = page["intents"]
            .as_array()
            .ok_or_else(|| format!("no intents: {}", excerpt(&page)))?;
        all.extend(items.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) if !c.is_empty() && !items.is_empty() => {
                path = format!("/v1/intents?limit=200&cursor={c}");
            }
            Some(c) if !c.is_empty() => return Err(format!("empty page, next_cursor {c}")),
            _ => return Ok(all),
        }
    }
    Err("the listing never ended".into())
}

/// The status an event type sets, for the types that set one.
fn status_set_by(event_type: &str) -> Option<&'static str> {
    Some(match event_type {
        "intent.created" => "CREATED",
        "intent.submitted" => "SUBMITTED",
        "intent.delivered" => "DELIVERED",
        "intent.acknowledged" => "ACKNOWLEDGED",
        "intent.in_progress" => "IN_PROGRESS",
        "intent.waiting" => "WAITING",
        "intent.completed" => "COMPLETED",
        "intent.failed" => "FAILED",
        "intent.canceled" => "CANCELED",
        "intent.timed_out" => "TIMED_OUT",
        _ => return None,
    })
}

/// The lifecycle's legal moves (README.md, "The lifecycle").
fn legal(from: &str, to: &str) -> bool {
    let terminal = TERMINAL.contains(&to);
    match from {
        "CREATED" => to == "SUBMITTED",
        "SUBMITTED" => terminal || ["DELIVERED", "IN_PROGRESS", "WAITING"].contains(&to),
        "DELIVERED" => {
            terminal || ["ACKNOWLEDGED", "IN_PROGRESS", "WAITING", "SUBMITTED"].contains(&to)
        }
        "ACKNOWLEDGED" => terminal || ["IN_PROGRESS", "WAITING"].contains(&to),
        "IN_PROGRESS" => terminal || to == "WAITING",
        "WAITING" => terminal || to == "IN_PROGRESS",
        _ => false,
    }
}

/// All events of `intent`, paged through with `since` up to its `last_seq`.
fn events_of(a: &ureq::Agent, base: &str, intent: &Value) -> Result<Vec<Value>, String> {
    let id = intent["intent_id"].as_str().unwrap_or("");
    let last = intent["last_seq"].as_i64().ok_or("no last_seq")?;
    let mut all: Vec<Value> = Vec::new();
    while (all.len() as i64) < last {
        let since = all.len();
        let page = get(a, base, &format!("/v1/intents/{id}/events?since={since}"))?;
        let events = page["events"].as_array().ok_or("events is not an array")?;
        if events.is_empty() {
            return Err(format!("events end at seq {since}, last_seq is {last}"));
        }
        all.extend(events.iter().cloned());
    }
    Ok(all)
}

/// Events 1..=n without gaps or duplicates, `intent.created` then `intent.submitted`, each
/// status change a legal move made by the matching event type, each other event keeping the
/// status; the last event's status and waiting reason are the intent's.
fn check_events(intent: &Value, events: &[Value]) -> Result<(), String> {
    let id = intent["intent_id"].as_str().unwrap_or("");
    if events.len() as i64 != intent["last_seq"].as_i64().unwrap_or(-1) {
        return Err(format!(
            "{} events, last_seq {}",
            events.len(),
            intent["last_seq"]
        ));
    }
    gap_free_from_creation(id, events)?;
    for pair in events.windows(2) {
        let (before, e) = (pair[0]["status"].as_str().unwrap_or(""), &pair[1]);
        let ty = e["event_type"].as_str().unwrap_or("");
        let status = e["status"].as_str().unwrap_or("");
        let fine = match status_set_by(ty) {
            Some(s) => s == status && legal(before, s),
            None => status == before,
        };
        if !fine {
            return Err(format!(
                "event {} {ty} moves {before} -> {status}",
                e["seq"]
            ));
        }
    }
    let last = &events[events.len() - 1];
    if last["status"] != intent["status"] || last["waiting_reason"] != intent["waiting_reason"] {
        return Err(format!(
            "intent is {} {} but its last event {} {}",
            intent["status"], intent["waiting_reason"], last["status"], last["waiting_reason"]
        ));
    }
    Ok(())
}

/// What a restart's check leaves for the next step: the inbox intents that must be claimable.
struct Verified {
    problems: Vec<String>,
    claimable: HashSet<String>,
}

/// Reads everything back after a restart and checks it against the ledger; settles what the
/// clients could not know.
fn verify(
    base: &str,
    ledger: &mut Ledger,
    agents: &Agents,
    rx: &Receiver,
    label: &str,
) -> Verified {
    let started = Instant::now();
    let mut problems = Vec::new();
    let listed = match list_all(base) {
        Ok(l) => l,
        Err(e) => {
            return Verified {
                problems: vec![format!("listing: {e}")],
                claimable: HashSet::new(),
            }
        }
    };

    // Creates: acknowledged ones are there, nothing uncommitted or foreign is.
    let mut by_cid: HashMap<String, Value> = HashMap::new();
    for intent in &listed {
        let cid = intent["correlation_id"].as_str().unwrap_or("").to_string();
        match ledger.get(&cid) {
            None => problems.push(format!("a foreign intent: {}", excerpt(intent))),
            Some(t) if intent["to_agent"] != agents.of(t.kind) => problems.push(format!(
                "{cid} went to the wrong agent: {}",
                excerpt(intent)
            )),
            Some(_) => {}
        }
        if by_cid.insert(cid.clone(), intent.clone()).is_some() {
            problems.push(format!("one request {cid}, two intents"));
        }
    }
    let (mut new_present, mut new_absent) = (0, 0);
    for (cid, t) in ledger.iter_mut() {
        let found = by_cid
            .get(cid)
            .map(|i| i["intent_id"].as_str().unwrap_or(""));
        match (&t.created, found) {
            (Created::Acked(id) | Created::Present(id), Some(f)) if id != f => {
                problems.push(format!("{cid} was {id}, is listed as {f}"))
            }
            (Created::Acked(_) | Created::Present(_) | Created::AckedNoBody, None) => problems
                .push(format!(
                    "LOST: round {} {:?} create {cid} ({:?}) is not listed",
                    t.round, t.kind, t.created
                )),
            (Created::AckedNoBody | Created::Unknown, Some(f)) => {
                new_present += usize::from(t.created == Created::Unknown);
                t.created = Created::Present(f.to_string());
            }
            (Created::Unknown, None) => {
                new_absent += 1;
                t.created = Created::Absent;
            }
            (Created::Absent | Created::Rejected(_), Some(f)) => problems.push(format!(
                "round {} create {cid} ({:?}) appeared as {f}",
                t.round, t.created
            )),
            _ => {}
        }
        if t.claimed && found.is_none() {
            problems.push(format!("LOST: {cid} was claimed and is not listed"));
        }
    }
    let present = |kind: Kind, ledger: &Ledger| -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = ledger
            .iter()
            .filter(|(cid, t)| t.kind == kind && by_cid.contains_key(*cid))
            .filter_map(|(cid, t)| Some((cid.clone(), t.created.id()?.to_string())))
            .collect();
        v.sort();
        v
    };
    let read = |a: &ureq::Agent, id: &str| -> Result<Value, String> {
        get(a, base, &format!("/v1/intents/{id}")).map(|v| v["intent"].clone())
    };

    // Inbox: every lease held at the kill runs out; then each intent is where its acknowledged
    // ack put it, or owed again (claimable), or FAILED out of attempts.
    let inbox = present(Kind::Inbox, ledger);
    let mut now: HashMap<String, Value> = HashMap::new();
    for (cid, id) in &inbox {
        now.insert(id.clone(), by_cid[cid].clone());
    }
    let lease_wait = Instant::now();
    loop {
        let held: Vec<String> = inbox
            .iter()
            .filter(|(cid, id)| now[id]["status"] == "DELIVERED" && ledger[cid].acked.is_none())
            .map(|(_, id)| id.clone())
            .collect();
        if held.is_empty() {
            break;
        }
        if lease_wait.elapsed() > LEASE_DEADLINE {
            for id in &held {
                problems.push(format!(
                    "inbox intent {id} is still DELIVERED {LEASE_DEADLINE:?} after the restart: \
                     its lease is not owed"
                ));
            }
            break;
        }
        thread::sleep(Duration::from_millis(100));
        for (id, r) in held.iter().zip(par_map(&held, |a, id| read(a, id))) {
            match r {
                Ok(v) => drop(now.insert(id.clone(), v)),
                Err(e) => problems.push(e),
            }
        }
    }
    let lease_ms = lease_wait.elapsed().as_millis();
    let ids: Vec<String> = inbox.iter().map(|(_, id)| id.clone()).collect();
    for (id, r) in ids.iter().zip(par_map(&ids, |a, id| read(a, id))) {
        match r {
            Ok(v) => drop(now.insert(id.clone(), v)),
            Err(e) => problems.push(e),
        }
    }
    let mut claimable = HashSet::new();
    let (mut settled_acks, mut owed, mut dead) = (0, 0, 0);
    for (cid, id) in &inbox {
        let t = ledger.get_mut(cid).expect("from the ledger");
        let i = &now[id];
        let status = i["status"].as_str().unwrap_or("");
        let attempt = i["delivery_attempt"].as_i64().unwrap_or(-1);
        if let Some(acked) = &t.acked {
            if status != acked {
                problems.push(format!(
                    "inbox {id}: acked {acked}, but is {status}: {}",
                    excerpt(i)
                ));
            }
            continue;
        }
        if t.maybe_acked.as_deref() == Some(status) {
            t.acked = t.maybe_acked.take();
            settled_acks += 1;
            continue;
        }
        t.maybe_acked = None;
        match status {
            "SUBMITTED" if attempt < t.max_attempts => {
                owed += 1;
                claimable.insert(id.clone());
            }
            "FAILED" if i["error"]["code"] == "delivery_failed" && attempt >= t.max_attempts => {
                dead += 1
            }
            _ => problems.push(format!(
                "inbox {id} (attempts {}): not acked, {status} after attempt {attempt}: {}",
                t.max_attempts,
                excerpt(i)
            )),
        }
    }

    // Pull agent: each intent is where its last acknowledged move put it (or where a move whose
    // answer was cut off did).
    let mut life_moves = 0;
    for (cid, id) in present(Kind::Life, ledger) {
        let t = ledger.get_mut(&cid).expect("from the ledger");
        let i = &by_cid[&cid];
        let status = i["status"].as_str().unwrap_or("").to_string();
        if status == t.status {
            t.maybe_status = None;
        } else if t.maybe_status.as_deref() == Some(&status) {
            t.status = status;
            t.maybe_status = None;
            life_moves += 1;
        } else {
            problems.push(format!(
                "{id}: the last acknowledged move put it in {} (maybe then {:?}), it is {status}",
                t.status, t.maybe_status
            ));
        }
    }

    // Push: every intent reaches the receiver and ends DELIVERED (or COMPLETED by the answer).
    let pushes = present(Kind::Push, ledger);
    let push_wait = Instant::now();
    let mut pending: Vec<(String, String)> = pushes.clone();
    loop {
        let ids: Vec<String> = pending.iter().map(|(_, id)| id.clone()).collect();
        let states = par_map(&ids, |a, id| read(a, id));
        // Read after the states: a push is recorded before it is answered, so an intent that
        // has its answer's status has its hit in here.
        let hits = rx.hits();
        let seen: HashSet<&str> = hits.iter().map(|h| h.intent_id.as_str()).collect();
        let mut still = Vec::new();
        for ((cid, id), r) in pending.iter().zip(states) {
            let want = if ledger[cid].completes {
                "COMPLETED"
            } else {
                "DELIVERED"
            };
            match r {
                Ok(i) if i["status"] == want && seen.contains(id.as_str()) => {}
                Ok(i) if TERMINAL.contains(&i["status"].as_str().unwrap_or("")) => {
                    problems.push(format!("push {id} ended {}: {}", i["status"], excerpt(&i)))
                }
                Ok(_) => still.push((cid.clone(), id.clone())),
                Err(e) => problems.push(e),
            }
        }
        pending = still;
        if pending.is_empty() {
            break;
        }
        if push_wait.elapsed() > PUSH_DEADLINE {
            for (_, id) in &pending {
                problems.push(format!(
                    "push {id} not delivered {PUSH_DEADLINE:?} after the restart: not owed"
                ));
            }
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    let push_ms = push_wait.elapsed().as_millis();
    let hits = rx.hits();
    let mut hit_ids: HashMap<&str, Vec<&str>> = HashMap::new();
    for h in &hits {
        hit_ids
            .entry(h.intent_id.as_str())
            .or_default()
            .push(h.webhook_id.as_str());
    }
    let push_ids: HashSet<&str> = pushes.iter().map(|(_, id)| id.as_str()).collect();
    for h in &hits {
        if !push_ids.contains(h.intent_id.as_str()) {
            problems.push(format!(
                "the receiver got {} (webhook-id {}), which is not a committed push intent",
                h.intent_id, h.webhook_id
            ));
        }
    }
    let deliveries = par_map(&pushes, |a, (_, id)| {
        get(a, base, &format!("/v1/deliveries?intent_id={id}"))
    });
    let mut resent = 0;
    for ((_, id), r) in pushes.iter().zip(deliveries) {
        let list = match r {
            Ok(v) => v["deliveries"].as_array().cloned().unwrap_or_default(),
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        let handler: Vec<&Value> = list.iter().filter(|d| d["kind"] == "handler").collect();
        let [d] = handler[..] else {
            problems.push(format!("push {id}: {} handler deliveries", handler.len()));
            continue;
        };
        let did = d["delivery_id"].as_str().unwrap_or("");
        if d["status"] != "delivered" {
            problems.push(format!("push {id}: delivery {}", excerpt(d)));
        }
        let got = hit_ids.get(id.as_str()).cloned().unwrap_or_default();
        if got.iter().any(|w| *w != did) {
            problems.push(format!(
                "push {id}: delivery {did}, but the receiver saw webhook-ids {got:?}"
            ));
        }
        let answered = d["attempts"].as_array().map_or(0, Vec::len);
        resent += usize::from(got.len() > answered);
    }

    // Events of every intent there is.
    let all: Vec<String> = listed
        .iter()
        .filter_map(|i| i["intent_id"].as_str().map(str::to_string))
        .collect();
    let checked = par_map(&all, |a, id| -> Result<(), String> {
        let intent = read(a, id)?;
        let events = events_of(a, base, &intent).map_err(|e| format!("{id}: {e}"))?;
        check_events(&intent, &events).map_err(|e| format!("{id}: {e}"))
    });
    problems.extend(checked.into_iter().filter_map(Result::err));

    eprintln!(
        "{label}: {} intents ({new_present} committed without a 200, {new_absent} unanswered \
         creates not committed); inbox: {} ({settled_acks} cut-off acks committed, {owed} owed, \
         {dead} out of attempts; leases ran out in {lease_ms} ms); pull: {} ({life_moves} \
         cut-off moves committed); push: {} delivered in {push_ms} ms, {} hits, {resent} sent \
         more often than recorded; {} problem(s) in {} ms",
        listed.len(),
        inbox.len(),
        present(Kind::Life, ledger).len(),
        pushes.len(),
        hits.len(),
        problems.len(),
        started.elapsed().as_millis()
    );
    Verified {
        problems,
        claimable,
    }
}

/// Claims everything the inbox owes: exactly the intents found claimable. Half of them are
/// completed, the rest stay held under a 2 s lease that runs out during the next round.
fn drain(
    base: &str,
    ledger: &mut Ledger,
    agents: &Agents,
    claimable: &HashSet<String>,
    rng: &mut Rng,
) -> Vec<String> {
    let (a, started) = (agent(), Instant::now());
    let path = format!("/v1/agents/{}/inbox/claim", bare(&agents.inbox));
    let mut problems = Vec::new();
    let mut got: BTreeMap<String, (String, String)> = BTreeMap::new();
    // A nack's delay (at most 1 s here) may still hold some back.
    while got.len() < claimable.len() && started.elapsed() < Duration::from_secs(5) {
        let page = match post(&a, base, &path, &json!({"max": 100, "lease_seconds": 2})) {
            Ok(v) => v["claims"].as_array().cloned().unwrap_or_default(),
            Err(e) => return vec![e],
        };
        if page.is_empty() {
            thread::sleep(Duration::from_millis(100));
        }
        for c in page {
            let id = c["intent"]["intent_id"].as_str().unwrap_or("").to_string();
            let cid = c["intent"]["correlation_id"].as_str().unwrap_or("");
            let token = c["lease_token"].as_str().unwrap_or("").to_string();
            if !claimable.contains(&id) {
                problems.push(format!("claimed {id}, which was not owed: {}", excerpt(&c)));
            }
            if got.insert(id.clone(), (cid.to_string(), token)).is_some() {
                problems.push(format!("{id} claimed twice under live leases"));
            }
        }
    }
    for id in claimable {
        if !got.contains_key(id) {
            problems.push(format!("{id} is SUBMITTED but could not be claimed"));
        }
    }
    let mut completed = 0;
    for (id, (cid, token)) in &got {
        if rng.below(2) == 0 {
            continue;
        }
        let body = json!({"status": "COMPLETED", "result": {"by": "drain"}});
        match post(&a, base, &format!("/v1/claims/{token}/ack"), &body) {
            Ok(_) => {
                completed += 1;
                if let Some(t) = ledger.get_mut(cid) {
                    t.acked = Some("COMPLETED".into());
                }
            }
            Err(e) => problems.push(format!("{id}: {e}")),
        }
    }
    eprintln!(
        "  drained the inbox: {} claimed, {completed} completed, {} left held",
        got.len(),
        got.len() - completed
    );
    problems
}

/// The file after the last kill: SQLite finds it whole, and every intent's `last_seq` is the
/// number of its events and their highest `seq`.
fn check_file(data: &std::path::Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(data).expect("open the database");
    let mut problems = Vec::new();
    let mut stmt = conn.prepare("PRAGMA integrity_check").expect("prepare");
    let rows: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .expect("integrity_check")
        .collect::<Result<_, _>>()
        .expect("integrity_check rows");
    if rows != ["ok"] {
        problems.push(format!("integrity_check: {rows:?}"));
    }
    let mismatched: i64 = conn
        .query_row(
            "SELECT count(*) FROM intents i WHERE i.last_seq != \
             (SELECT count(*) FROM events e WHERE e.intent_id = i.intent_id) \
             OR i.last_seq != (SELECT coalesce(max(seq), 0) FROM events e \
             WHERE e.intent_id = i.intent_id)",
            [],
            |r| r.get(0),
        )
        .expect("last_seq query");
    if mismatched != 0 {
        problems.push(format!(
            "{mismatched} intent(s) whose last_seq is not their event count"
        ));
    }
    let intents: i64 = conn
        .query_row("SELECT count(*) FROM intents", [], |r| r.get(0))
        .expect("count");
    eprintln!("the file: integrity_check {rows:?}, {intents} intents, {mismatched} mismatched");
    problems
}

#[test]
fn acknowledged_writes_leases_and_pushes_survive_sigkill_under_mixed_load() {
    let started = Instant::now();
    let seed = base_seed();
    eprintln!("AXME_CRASH_SEED={seed:#x} (set it to replay this schedule)");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("axme.db");
    let rx = Receiver::start(seed);
    let tag = &common::uuid()[..8];
    let agents = Agents {
        inbox: format!("agent://crashmix/inbox-{tag}"),
        push: format!("agent://crashmix/push-{tag}"),
        life: format!("agent://crashmix/life-{tag}"),
    };
    let mut ledger = Ledger::new();
    let mut rng = Rng(seed);
    for round in 0..=ROUNDS {
        // Odd rounds run with `--durability normal`, which still promises to survive a crash
        // of the process.
        let mut flags = FLAGS.to_vec();
        if round % 2 == 1 {
            flags.extend(["--durability", "normal"]);
        }
        let mut server = common::Server::start_on(&data, &flags);
        if round == 0 {
            let a = agent();
            let register = |body: Value| {
                post(&a, &server.base, "/v1/agents", &body).expect("register an agent");
            };
            register(json!({"address": agents.inbox, "delivery_mode": "inbox",
                            "lease_seconds": 2, "max_delivery_attempts": INBOX_ATTEMPTS}));
            register(json!({"address": agents.push, "delivery_mode": "http",
                            "webhook_url": rx.url(), "max_delivery_attempts": PUSH_ATTEMPTS}));
        } else {
            let label = format!("restart after round {}", round - 1);
            let v = verify(&server.base, &mut ledger, &agents, &rx, &label);
            fail_if_any(v.problems, seed, &label);
            if round < ROUNDS {
                let problems = drain(&server.base, &mut ledger, &agents, &v.claimable, &mut rng);
                fail_if_any(problems, seed, &label);
            }
        }
        if round == ROUNDS {
            server.kill();
            break;
        }
        let round_seed = seed ^ (round as u64 + 1).wrapping_mul(0x2545_f491_4f6c_dd1d);
        let delay = Duration::from_millis(300 + Rng(round_seed).below(1200));
        eprintln!(
            "round {round}: durability {}",
            if round % 2 == 1 { "normal" } else { "full" }
        );
        let problems = load_and_kill(&mut server, &agents, round, round_seed, delay, &mut ledger);
        fail_if_any(problems, seed, &format!("round {round}"));
    }
    fail_if_any(check_file(&data), seed, "the file after the last kill");
    eprintln!(
        "mixed crash test: {ROUNDS} rounds in {} ms",
        started.elapsed().as_millis()
    );
}
