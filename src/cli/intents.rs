//! `axme send`, `axme watch`, `axme listen`: intents going out, an intent's timeline followed
//! live (`/v1/intents/{id}/events/stream`), and an agent's feed printed as it arrives
//! (`/v1/agents/{address}/intents/stream`).

use std::io::Read;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::client::{self, segment, Client, Feed};
use super::term::{self, Spinner};
use super::{exit, Failure, ListenArgs, SendArgs, WatchArgs};

/// How often a waiting command redraws its spinner and checks its deadline.
const TICK: Duration = Duration::from_millis(125);

const TERMINAL: [&str; 4] = ["COMPLETED", "FAILED", "CANCELED", "TIMED_OUT"];

pub fn send(a: SendArgs) -> Result<(), Failure> {
    let client = Client::new(&a.conn)?;
    let payload = read_payload(&a.payload)?;
    let correlation_id = a
        .correlation_id
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let mut body = json!({
        "intent_type": a.intent_type,
        "correlation_id": correlation_id,
        "to_agent": a.to,
        "payload": payload,
    });
    if let Some(from) = a.from {
        body["from_agent"] = Value::String(from);
    }
    let created = client.post("/v1/intents", &body)?;
    let id = created["intent_id"]
        .as_str()
        .ok_or_else(|| {
            Failure::new(format!(
                "the server answered without an intent_id: {created}"
            ))
        })?
        .to_string();
    let json = a.conn.json;
    if !a.wait {
        if json {
            term::print_json(&created);
        } else {
            println!(
                "intent {id} {} (to {}, correlation {correlation_id})",
                term::field(&created, "status"),
                a.to
            );
        }
        return Ok(());
    }
    if !json {
        println!(
            "intent {id} sent to {} (correlation {correlation_id})",
            a.to
        );
    }
    let deadline = a.timeout.map(|s| Instant::now() + Duration::from_secs(s));
    let status = follow_intent(&client, &id, Printing::Lines(!json), deadline)?;
    let intent = client.get(&format!("/v1/intents/{}", segment(&id)))?;
    if json {
        term::print_json(&intent);
    } else {
        print_outcome(&intent["intent"]);
    }
    ended(&id, &status)
}

pub fn watch(a: WatchArgs) -> Result<(), Failure> {
    let client = Client::new(&a.conn)?;
    let id = a.intent_id;
    let status = if a.conn.json {
        follow_intent(&client, &id, Printing::Json, None)?
    } else {
        let status = follow_intent(&client, &id, Printing::Lines(true), None)?;
        let intent = client.get(&format!("/v1/intents/{}", segment(&id)))?;
        print_outcome(&intent["intent"]);
        status
    };
    ended(&id, &status)
}

/// How a followed intent's events are shown.
#[derive(Clone, Copy)]
enum Printing {
    /// Timeline lines (or nothing, with `false`).
    Lines(bool),
    /// Each event's JSON on a line of its own.
    Json,
}

/// Follows an intent's events until it is terminal and returns its final status; gives up with
/// exit code 4 at `deadline`.
fn follow_intent(
    client: &Client,
    id: &str,
    printing: Printing,
    deadline: Option<Instant>,
) -> Result<String, Failure> {
    let feed = client::follow(
        client.clone(),
        format!("/v1/intents/{}/events/stream", segment(id)),
    );
    let mut spinner = Spinner::new();
    let mut status = String::from("SUBMITTED");
    let mut label = format!("waiting for {id}");
    let started = Instant::now();
    let mut header = matches!(printing, Printing::Lines(true));
    loop {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            spinner.clear();
            return Err(Failure {
                code: exit::TIMEOUT,
                message: format!(
                    "intent {id} is still {status} after {} s; follow it with: axme watch {id}",
                    started.elapsed().as_secs()
                ),
            });
        }
        match next(&feed)? {
            None => spinner.tick(&format!("{label} · {status}")),
            Some(Feed::Reconnecting(why)) => label = format!("reconnecting ({why})"),
            Some(Feed::Failed(f)) => return Err(f),
            Some(Feed::Message(m)) => {
                label = format!("waiting for {id}");
                if m.event == "error" {
                    return Err(stream_error(&m.data));
                }
                if m.event.starts_with("stream.") || m.event == "reset" {
                    continue;
                }
                let event: Value = serde_json::from_str(&m.data).map_err(|e| {
                    Failure::new(format!("the server sent an event that is not JSON: {e}"))
                })?;
                spinner.clear();
                if std::mem::take(&mut header) {
                    println!("{}", term::timeline_header());
                }
                match printing {
                    Printing::Lines(true) => println!("{}", term::timeline_line(&event)),
                    Printing::Lines(false) => {}
                    Printing::Json => println!("{event}"),
                }
                status = term::field(&event, "status");
                if TERMINAL.contains(&status.as_str()) {
                    return Ok(status);
                }
            }
        }
    }
}

/// The next thing from a followed stream, or `None` after a tick without one.
fn next(feed: &Receiver<Feed>) -> Result<Option<Feed>, Failure> {
    match feed.recv_timeout(TICK) {
        Ok(f) => Ok(Some(f)),
        Err(RecvTimeoutError::Timeout) => Ok(None),
        Err(RecvTimeoutError::Disconnected) => {
            Err(Failure::new("the event stream stopped unexpectedly"))
        }
    }
}

/// An `event: error` the server sent before ending a stream.
fn stream_error(data: &str) -> Failure {
    let v: Value = serde_json::from_str(data).unwrap_or(Value::Null);
    Failure::new(format!(
        "the server ended the stream with an error: {} {}",
        term::field(&v, "code"),
        term::field(&v, "message")
    ))
}

/// The final status as an exit: 0 for COMPLETED, 3 otherwise.
fn ended(id: &str, status: &str) -> Result<(), Failure> {
    if status == "COMPLETED" {
        Ok(())
    } else {
        Err(Failure {
            code: exit::NOT_COMPLETED,
            message: format!("intent {id} ended {status}"),
        })
    }
}

/// The end of a timeline: the status and the result or error.
fn print_outcome(intent: &Value) {
    println!("{}", term::field(intent, "status"));
    for name in ["result", "error"] {
        if !intent[name].is_null() {
            let text = serde_json::to_string_pretty(&intent[name])
                .unwrap_or_else(|_| intent[name].to_string());
            println!("{name}: {text}");
        }
    }
}

/// `--payload`: a JSON object given inline, as `@FILE`, or as `@-` (stdin).
fn read_payload(arg: &str) -> Result<Value, Failure> {
    let text = match arg.strip_prefix('@') {
        Some("-") => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| Failure::new(format!("--payload @-: cannot read stdin: {e}")))?;
            s
        }
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| Failure::new(format!("--payload @{path}: {e}")))?,
        None => arg.to_string(),
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(Failure::new("--payload must be a JSON object")),
        Err(e) => Err(Failure::new(format!("--payload is not valid JSON: {e}"))),
    }
}

pub fn listen(a: ListenArgs) -> Result<(), Failure> {
    let client = Client::new(&a.conn)?;
    let limit = if a.once { Some(1) } else { a.count };
    if limit == Some(0) {
        return Ok(());
    }
    let mut path = format!(
        "/v1/agents/{}/intents/stream?since={}",
        segment(&a.address),
        a.since
    );
    if let Some(s) = &a.status {
        path.push_str(&format!("&status={}", client::query_value(s)));
    }
    let feed = client::follow(client.clone(), path);
    let json = a.conn.json;
    let widths = [8, 18, 36, 24, 24, 12];
    if !json {
        let heads = ["SEQ", "EVENT", "INTENT_ID", "TYPE", "FROM", "STATUS"];
        let mut head = String::new();
        for (h, w) in heads.iter().zip(widths) {
            head.push_str(&term::pad(h, w));
            head.push_str("  ");
        }
        println!("{head}PAYLOAD");
    }
    let mut spinner = Spinner::new();
    let mut label = format!("listening on {}", a.address);
    let mut seen = 0u64;
    loop {
        match next(&feed)? {
            None => spinner.tick(&label),
            Some(Feed::Reconnecting(why)) => label = format!("reconnecting ({why})"),
            Some(Feed::Failed(f)) => return Err(f),
            Some(Feed::Message(m)) => {
                label = format!("listening on {}", a.address);
                match m.event.as_str() {
                    "error" => return Err(stream_error(&m.data)),
                    "reset" => {
                        spinner.clear();
                        eprintln!("axme: the cursor was past the end of the log; continuing from the end ({})", m.data);
                        continue;
                    }
                    e if e.starts_with("stream.") => continue,
                    _ => {}
                }
                let item: Value = serde_json::from_str(&m.data).map_err(|e| {
                    Failure::new(format!("the server sent an item that is not JSON: {e}"))
                })?;
                spinner.clear();
                if json {
                    println!("{item}");
                } else {
                    let cells = [
                        term::field(&item, "seq"),
                        term::field(&item, "event_type"),
                        term::field(&item, "intent_id"),
                        term::field(&item, "intent_type"),
                        term::field(&item, "from_agent"),
                        term::field(&item, "status"),
                    ];
                    let mut line = String::new();
                    for (c, w) in cells.iter().zip(widths) {
                        line.push_str(&term::pad(c, w));
                        line.push_str("  ");
                    }
                    line.push_str(&term::compact(&item["payload"], 80));
                    println!("{}", line.trim_end());
                }
                seen += 1;
                if limit.is_some_and(|n| seen >= n) {
                    return Ok(());
                }
            }
        }
    }
}
