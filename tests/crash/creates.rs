//! Crash durability: clients create intents concurrently, the server is killed with SIGKILL
//! mid-load and restarted on the same database file, several rounds in a row. After every
//! restart, every intent that got a 200 is there with its fields and gap-free events, every intent
//! present is whole (fields some client sent, events 1..=n starting with `intent.created`,
//! `intent.submitted`), and an `Idempotency-Key` still answers with the original intent.
//!
//! Kill delays, idempotency keys and payload sizes come from a PRNG seeded by `AXME_CRASH_SEED`
//! (printed on every run; set it to replay a run's schedule). Thread interleaving is the
//! operating system's and cannot be replayed.

use crate::common;
use crate::crash_support;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crash_support::{agent, base_seed, excerpt, fail_if_any, gap_free_from_creation, Rng};
use serde_json::{json, Value};

const ROUNDS: usize = 5;
const CLIENTS: usize = 16;
/// Threads that read the database back after a restart.
const READERS: usize = 8;
/// How many acknowledged keyed requests of a round are re-sent after the restart (every
/// unacknowledged keyed one is).
const IDEMPOTENCY_SAMPLE: usize = 64;

/// What became of one create request, as far as the client knows and, after a restart, as far
/// as the server says.
#[derive(Clone, Debug, PartialEq)]
enum State {
    /// 200 with a body: must exist from now on, with this id.
    Acked {
        intent_id: String,
        created_at: String,
    },
    /// 200 status line, body cut off by the kill: committed, id not known yet.
    AckedNoBody,
    /// Transport error or 5xx: may or may not have been committed.
    Unknown,
    /// A 4xx: must never exist.
    Rejected(u16),
    /// Unknown, then seen after a restart: must stay.
    Present { intent_id: String },
    /// Unknown, then not seen after a restart: must never appear.
    Absent,
}

/// One create request a client sent.
#[derive(Clone, Debug)]
struct Sent {
    /// The exact body, so an idempotent re-send is byte-for-byte the same.
    body: String,
    value: Value,
    key: Option<String>,
    round: usize,
    state: State,
    idempotency_checked: bool,
}

/// Every create request ever sent, by correlation id (each request has its own).
type Ledger = HashMap<String, Sent>;

/// A reply whose body may have been lost to the kill (`body_complete` false, `json` null).
struct Reply {
    status: u16,
    json: Value,
    body_complete: bool,
}

/// Like `common::send`, but a transport error is a value (the server is being killed), not a
/// panic, and the agent keeps its connections alive.
fn call(a: &ureq::Agent, url: &str, post: Option<(&str, Option<&str>)>) -> Result<Reply, String> {
    let req = a.request(if post.is_some() { "POST" } else { "GET" }, url);
    let req = req.set("x-api-key", common::ADMIN_KEY);
    let result = match post {
        Some((body, key)) => {
            let req = req.set("content-type", "application/json");
            match key {
                Some(k) => req.set("Idempotency-Key", k).send_string(body),
                None => req.send_string(body),
            }
        }
        None => req.call(),
    };
    let resp = match result {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(e.to_string()),
    };
    let status = resp.status();
    let text = resp.into_string();
    Ok(Reply {
        status,
        body_complete: text.is_ok(),
        json: text
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null),
    })
}

fn get(a: &ureq::Agent, base: &str, path: &str) -> Result<Value, String> {
    let r = call(a, &format!("{base}{path}"), None)?;
    if r.status != 200 || r.json["ok"] != json!(true) {
        return Err(format!("GET {path} -> {} {}", r.status, excerpt(&r.json)));
    }
    Ok(r.json)
}

/// Runs `f` over `items` on `READERS` threads, each with its own keep-alive agent.
fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&ureq::Agent, &T) -> R + Sync) -> Vec<R> {
    let chunk = items.len().div_ceil(READERS).max(1);
    std::thread::scope(|s| {
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

/// A create body that says who sent it; the padding repeats the correlation id, so a torn or
/// mixed-up payload cannot pass for a whole one.
fn create_body(round: usize, thread: usize, i: usize, rng: &mut Rng) -> (String, Value) {
    let cid = common::uuid();
    let pad_len = match rng.below(25) {
        0 => 16 * 1024 + rng.below(80 * 1024),
        _ => rng.below(600),
    };
    let pad: String = cid.chars().cycle().take(pad_len as usize).collect();
    let value = json!({
        "intent_type": format!("crash.r{round}.v1"),
        "correlation_id": cid,
        "to_agent": format!("agent://crash/t{thread}"),
        "payload": {
            "round": round, "thread": thread, "i": i, "cid": cid,
            "note": "ünïcødé ✓ \"quoted\" \\ back",
            "nested": {"a": [1, 2, 3], "b": null, "f": 1.5},
            "pad": pad,
        },
    });
    (cid, value)
}

/// One client: creates intents until the server dies under it. Returns what it sent and what
/// went wrong while the server was alive.
fn client(
    base: &str,
    round: usize,
    thread: usize,
    seed: u64,
    killed: &AtomicBool,
) -> (Vec<(String, Sent)>, Vec<String>) {
    let (a, url) = (agent(), format!("{base}/v1/intents"));
    let mut rng = Rng(seed ^ ((thread as u64 + 1) << 32));
    let (mut sent, mut problems) = (Vec::new(), Vec::new());
    for i in 0.. {
        let (cid, value) = create_body(round, thread, i, &mut rng);
        let key = (rng.below(10) < 3).then(common::uuid);
        let body = value.to_string();
        let reply = call(&a, &url, Some((&body, key.as_deref())));
        let alive = !killed.load(Ordering::SeqCst);
        let state = match reply {
            Ok(r) if r.status == 200 && r.body_complete => {
                let field = |f: &str| r.json[f].as_str().unwrap_or("").to_string();
                let (id, at) = (field("intent_id"), field("created_at"));
                if r.json["ok"] != json!(true)
                    || id.is_empty()
                    || at.is_empty()
                    || r.json["status"] != "SUBMITTED"
                {
                    problems.push(format!("create {cid}: 200 with a bad body: {}", r.json));
                }
                State::Acked {
                    intent_id: id,
                    created_at: at,
                }
            }
            Ok(r) if r.status == 200 => State::AckedNoBody,
            Ok(r) => {
                // 429 and 503 are how a server may shed load; any other error on a valid body
                // is a defect (a 500 under concurrency is often SQLITE_BUSY leaking out).
                if alive && r.status != 429 && r.status != 503 {
                    problems.push(format!("create {cid}: {} {}", r.status, r.json));
                }
                if r.status >= 500 {
                    State::Unknown
                } else {
                    State::Rejected(r.status)
                }
            }
            Err(e) => {
                if alive {
                    problems.push(format!(
                        "create {cid}: transport error before the kill: {e}"
                    ));
                }
                State::Unknown
            }
        };
        let done = !alive && state == State::Unknown;
        sent.push((
            cid,
            Sent {
                body,
                value,
                key,
                round,
                state,
                idempotency_checked: false,
            },
        ));
        if done {
            break;
        }
    }
    (sent, problems)
}

/// Starts `CLIENTS` clients against `server`, SIGKILLs it after `delay` while they are sending,
/// and adds what they sent to the ledger.
fn load_and_kill(
    server: &mut common::Server,
    round: usize,
    seed: u64,
    delay: Duration,
    ledger: &mut Ledger,
) -> Vec<String> {
    let killed = AtomicBool::new(false);
    let base = server.base.clone();
    let reports: Vec<_> = std::thread::scope(|s| {
        let (base, killed) = (&base, &killed);
        let clients: Vec<_> = (0..CLIENTS)
            .map(|t| s.spawn(move || client(base, round, t, seed, killed)))
            .collect();
        std::thread::sleep(delay);
        killed.store(true, Ordering::SeqCst);
        server.kill();
        clients
            .into_iter()
            .map(|h| h.join().expect("client thread"))
            .collect()
    });
    let mut problems = Vec::new();
    let mut count = HashMap::<&str, usize>::new();
    for (sent, client_problems) in reports {
        problems.extend(client_problems);
        for (cid, sent) in sent {
            let kind = match (&sent.state, &sent.key) {
                (State::Acked { .. }, Some(_)) => "acknowledged with an Idempotency-Key",
                (State::Acked { .. }, None) => "acknowledged without",
                (State::AckedNoBody, _) => "200 without a body",
                (State::Unknown, _) => "unknown",
                _ => "rejected",
            };
            *count.entry(kind).or_default() += 1;
            assert!(ledger.insert(cid, sent).is_none(), "uuid collision");
        }
    }
    let mut counts: Vec<_> = count.iter().map(|(k, n)| format!("{k} {n}")).collect();
    counts.sort();
    println!(
        "round {round}: killed after {} ms: {}",
        delay.as_millis(),
        counts.join(", ")
    );
    if !count.keys().any(|k| k.starts_with("acknowledged")) {
        problems.push(format!(
            "round {round}: nothing acknowledged in {} ms",
            delay.as_millis()
        ));
    }
    problems
}

/// `intent` has the fields the client sent.
fn same_fields(intent: &Value, sent: &Value) -> Result<(), String> {
    for f in ["to_agent", "intent_type", "correlation_id", "payload"] {
        if intent[f] != sent[f] {
            return Err(format!(
                "{f} is {} but {} was sent",
                excerpt(&intent[f]),
                excerpt(&sent[f])
            ));
        }
    }
    Ok(())
}

/// Events 1..=n without gaps, starting with `intent.created`, `intent.submitted`; the intent's
/// status is that of its last status-bearing event.
fn check_events(id: &str, status: &Value, events: &Value) -> Result<(), String> {
    let events = events.as_array().ok_or("events is not an array")?;
    gap_free_from_creation(id, events)?;
    let last = events
        .iter()
        .rev()
        .map(|e| &e["status"])
        .find(|s| s.is_string());
    if last != Some(status) {
        return Err(format!(
            "intent status {status} but last event status {last:?}"
        ));
    }
    Ok(())
}

/// Every intent the server lists, following `next_cursor` to the end.
fn list_all(base: &str) -> Result<Vec<Value>, String> {
    let (a, mut all, mut path) = (agent(), Vec::new(), "/v1/intents?limit=200".to_string());
    for _ in 0..10_000 {
        let page = get(&a, base, &path)?;
        let items = page["intents"]
            .as_array()
            .ok_or_else(|| format!("no intents: {}", excerpt(&page)))?;
        if items.len() > 200 {
            return Err(format!("a page of {} with limit=200", items.len()));
        }
        all.extend(items.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) if !c.is_empty() && items.is_empty() => {
                return Err(format!("empty page, next_cursor {c}"))
            }
            Some(c) if !c.is_empty() => {
                let enc: String = c
                    .bytes()
                    .map(|b| match b {
                        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                            (b as char).to_string()
                        }
                        _ => format!("%{b:02X}"),
                    })
                    .collect();
                path = format!("/v1/intents?limit=200&cursor={enc}");
            }
            _ => return Ok(all),
        }
    }
    Err("the listing never ended".into())
}

/// Reads everything back after a restart and checks it against the ledger; settles `Unknown`
/// and `AckedNoBody` requests into `Present` or `Absent`.
fn verify(base: &str, ledger: &mut Ledger, label: &str) -> Vec<String> {
    let started = Instant::now();
    let listed = match list_all(base) {
        Ok(l) => l,
        Err(e) => return vec![format!("listing: {e}")],
    };
    let mut problems = Vec::new();
    let mut by_cid: HashMap<String, String> = HashMap::new();
    let mut ids = HashSet::new();
    for intent in &listed {
        let id = intent["intent_id"].as_str().unwrap_or("").to_string();
        let cid = intent["correlation_id"].as_str().unwrap_or("").to_string();
        match ledger.get(&cid) {
            None => problems.push(format!(
                "half-written or foreign intent: {}",
                excerpt(intent)
            )),
            Some(sent) => {
                if let Err(e) = same_fields(intent, &sent.value) {
                    problems.push(format!("listed intent {id}: {e}"));
                }
            }
        }
        if !ids.insert(id.clone()) {
            problems.push(format!("intent {id} listed twice"));
        }
        if let Some(other) = by_cid.insert(cid.clone(), id.clone()) {
            problems.push(format!("one request {cid}, two intents {other} and {id}"));
        }
    }

    // Settle what the clients could not know; note what must exist but is not listed.
    let (mut acked, mut new_present, mut new_absent) = (0, 0, 0);
    let mut unlisted = Vec::new();
    for (cid, sent) in ledger.iter_mut() {
        let found = by_cid.get(cid).cloned();
        match (&sent.state, found) {
            (State::Acked { intent_id, .. } | State::Present { intent_id }, Some(id)) => {
                if *intent_id != id {
                    problems.push(format!("request {cid} was {intent_id}, is listed as {id}"));
                }
                acked += usize::from(matches!(sent.state, State::Acked { .. }));
            }
            (State::Acked { intent_id, .. } | State::Present { intent_id }, None) => {
                unlisted.push(intent_id.clone())
            }
            (State::AckedNoBody, None) => problems.push(format!(
                "LOST: round {} request {cid} got a 200 (body cut off) and is not listed",
                sent.round
            )),
            (State::Unknown | State::AckedNoBody, Some(id)) => {
                new_present += usize::from(sent.state == State::Unknown);
                sent.state = State::Present { intent_id: id };
            }
            (State::Unknown, None) => {
                new_absent += 1;
                sent.state = State::Absent;
            }
            (State::Absent | State::Rejected(_), Some(id)) => problems.push(format!(
                "round {} request {cid} ({:?}) appeared as {id}",
                sent.round, sent.state
            )),
            (State::Absent | State::Rejected(_), None) => {}
        }
    }

    // Every listed intent read on its own with its events, and every acknowledged one that the
    // listing missed: lost (404) or only missing from the listing.
    let mut targets: Vec<(String, bool)> = ids.into_iter().map(|id| (id, true)).collect();
    targets.extend(unlisted.into_iter().map(|id| (id, false)));
    let by_id: HashMap<&str, &Sent> = ledger
        .values()
        .filter_map(|s| match &s.state {
            State::Acked { intent_id, .. } | State::Present { intent_id } => {
                Some((intent_id.as_str(), s))
            }
            _ => None,
        })
        .collect();
    let results = par_map(&targets, |a, (id, listed)| -> Result<(), String> {
        let sent = by_id.get(id.as_str());
        let got = get(a, base, &format!("/v1/intents/{id}"));
        let one = match (got, listed) {
            (Ok(one), _) => one["intent"].clone(),
            (Err(e), false) => {
                return Err(format!(
                    "LOST: {id} (request {} of round {}, {:?}): {e}",
                    sent.map_or(&Value::Null, |s| &s.value["correlation_id"]),
                    sent.map_or(0, |s| s.round),
                    sent.map(|s| &s.state),
                ))
            }
            (Err(e), true) => return Err(format!("listed intent {id}: {e}")),
        };
        if !listed {
            return Err(format!(
                "acknowledged intent {id} is readable but missing from the listing"
            ));
        }
        if one["intent_id"] != json!(id) {
            return Err(format!("GET /v1/intents/{id} returned {}", excerpt(&one)));
        }
        if let Some(sent) = sent {
            same_fields(&one, &sent.value).map_err(|e| format!("GET /v1/intents/{id}: {e}"))?;
            if let State::Acked { created_at, .. } = &sent.state {
                if one["created_at"] != json!(created_at) {
                    return Err(format!(
                        "{id}: created_at {} but the 200 said {created_at}",
                        one["created_at"]
                    ));
                }
            }
        }
        let events = get(a, base, &format!("/v1/intents/{id}/events"))?;
        check_events(id, &one["status"], &events["events"]).map_err(|e| format!("intent {id}: {e}"))
    });
    problems.extend(results.into_iter().filter_map(Result::err));
    let present = ledger
        .values()
        .filter(|s| matches!(s.state, State::Present { .. }))
        .count();
    println!(
        "{label}: {} intents listed and read back: {acked} acknowledged, {present} committed \
         without a 200 ({new_present} new); {new_absent} unacknowledged requests not committed; \
         {} problem(s) ({} ms)",
        listed.len(),
        problems.len(),
        started.elapsed().as_millis()
    );
    problems
}

/// After a restart, keyed requests of `round` are re-sent with the same key and body: an
/// acknowledged or committed one answers with its intent, an uncommitted one is created now
/// (and then answers the same); the same key with another body is 409.
fn check_idempotency(base: &str, ledger: &mut Ledger, round: usize) -> Vec<String> {
    let mut picked: Vec<(String, Sent)> = ledger
        .iter()
        .filter(|(_, s)| s.round == round && s.key.is_some() && !s.idempotency_checked)
        .map(|(c, s)| (c.clone(), s.clone()))
        .collect();
    // Keys are random, so sorting by key samples the acknowledged ones at random.
    picked.sort_by(|a, b| a.1.key.cmp(&b.1.key));
    let mut acked = 0;
    picked.retain(|(_, s)| {
        !matches!(s.state, State::Acked { .. }) || {
            acked += 1;
            acked <= IDEMPOTENCY_SAMPLE
        }
    });

    let results = par_map(&picked, |a, (cid, sent)| -> Result<State, String> {
        let url = format!("{base}/v1/intents");
        let resend = |body: &str| -> Result<(u16, String, String), String> {
            let r = call(a, &url, Some((body, sent.key.as_deref())))?;
            let field = |f: &str| r.json[f].as_str().unwrap_or("").to_string();
            Ok((r.status, field("intent_id"), field("created_at")))
        };
        let (status, id, at) = resend(&sent.body)?;
        if status != 200 || id.is_empty() {
            return Err(format!("{cid}: re-sent with the same key -> {status}"));
        }
        let state = match &sent.state {
            State::Acked {
                intent_id,
                created_at,
            } if (intent_id, created_at) != (&id, &at) => {
                return Err(format!("{cid}: acknowledged as {intent_id} at {created_at}, re-sent with the same key after the crash -> {id} at {at}"));
            }
            State::Present { intent_id } if *intent_id != id => {
                return Err(format!("{cid}: committed as {intent_id} without a 200, re-sent with the same key -> a new intent {id} (the key was not committed with the intent)"));
            }
            State::Acked { .. } | State::Present { .. } => sent.state.clone(),
            State::Absent => match resend(&sent.body)? {
                (200, again, again_at) if (&again, &again_at) == (&id, &at) => State::Acked {
                    intent_id: id,
                    created_at: at,
                },
                (s, again, _) => {
                    return Err(format!(
                        "{cid}: re-send created {id}, another re-send -> {s} {again}"
                    ))
                }
            },
            other => return Err(format!("{cid}: unexpected state {other:?}")),
        };
        let mut other = sent.value.clone();
        other["payload"]["tampered"] = json!(true);
        match resend(&other.to_string())? {
            (409, _, _) => Ok(state),
            (s, id, _) => Err(format!(
                "{cid}: same key, another body -> {s} {id} (want 409)"
            )),
        }
    });

    let (mut problems, mut same, mut created) = (Vec::new(), 0, 0);
    for ((cid, before), result) in picked.iter().zip(results) {
        match result {
            Ok(state) => {
                if before.state == State::Absent {
                    created += 1
                } else {
                    same += 1
                }
                let entry = ledger.get_mut(cid).expect("picked from the ledger");
                entry.state = state;
                entry.idempotency_checked = true;
            }
            Err(e) => problems.push(e),
        }
    }
    println!(
        "round {round} idempotency after restart: {same} keyed requests answered with their \
         intent, {created} uncommitted ones created on re-send, {} problem(s)",
        problems.len()
    );
    problems
}

#[test]
fn acknowledged_intents_survive_sigkill_and_none_is_half_written() {
    let started = Instant::now();
    let seed = base_seed();
    println!("AXME_CRASH_SEED={seed:#x} (set it to replay this schedule)");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("axme.db");
    let mut ledger = Ledger::new();
    for round in 0..=ROUNDS {
        // Odd rounds run with `--durability normal`, which still promises to survive a crash
        // of the process (only power loss may cost it the last commits).
        let flags: &[&str] = match round % 2 {
            1 => &["--durability", "normal"],
            _ => &[],
        };
        let mut server = common::Server::start_on(&data, flags);
        if round > 0 {
            let label = format!("restart after round {}", round - 1);
            fail_if_any(verify(&server.base, &mut ledger, &label), seed, &label);
            fail_if_any(
                check_idempotency(&server.base, &mut ledger, round - 1),
                seed,
                &label,
            );
        }
        if round == ROUNDS {
            // What the idempotency check created must be listed and whole too.
            fail_if_any(
                verify(&server.base, &mut ledger, "final read"),
                seed,
                "final read",
            );
            break;
        }
        let round_seed = seed ^ (round as u64 + 1).wrapping_mul(0x2545_f491_4f6c_dd1d);
        let delay = Duration::from_millis(100 + Rng(round_seed).below(500));
        let durability = flags.last().unwrap_or(&"full (the default)");
        println!("round {round}: durability {durability}");
        let problems = load_and_kill(&mut server, round, round_seed, delay, &mut ledger);
        fail_if_any(problems, seed, &format!("round {round}"));
    }
    println!(
        "crash test: {ROUNDS} rounds in {} ms",
        started.elapsed().as_millis()
    );
}
