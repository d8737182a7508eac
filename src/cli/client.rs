//! The HTTP side of the client: requests with the API key, the server's answers turned into
//! JSON or into one clear [`Failure`] line, and Server-Sent Events read line by line from a
//! response body, followed across reconnects (`Last-Event-ID`) on a thread of their own.

use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use super::{Conn, Failure};

/// How long a connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a plain request may take in all.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a stream or download may stay silent before it is reopened (servers send a
/// keepalive every 15 s by default).
const STREAM_READ_TIMEOUT: Duration = Duration::from_secs(90);
/// Pause before reopening a stream that ended or broke.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);
/// Failed reopenings in a row after which a followed stream gives up.
const MAX_RECONNECTS: u32 = 30;

/// A client of one server with one credential. Cheap to clone (the agents share their pools).
#[derive(Clone)]
pub struct Client {
    base: String,
    api_key: Option<String>,
    /// Plain requests.
    agent: ureq::Agent,
    /// Streams and downloads: no overall deadline, only a read timeout.
    long: ureq::Agent,
}

impl Client {
    pub fn new(conn: &Conn) -> Result<Client, Failure> {
        Self::with_timeout(conn, REQUEST_TIMEOUT)
    }

    /// A client whose plain requests give up after `timeout`.
    pub fn with_timeout(conn: &Conn, timeout: Duration) -> Result<Client, Failure> {
        let base = conn.server.trim_end_matches('/').to_string();
        let rest = base
            .strip_prefix("http://")
            .or_else(|| base.strip_prefix("https://"));
        if rest.is_none_or(|r| r.is_empty()) {
            return Err(Failure::new(format!(
                "--server must be an http:// or https:// URL, not {:?}",
                conn.server
            )));
        }
        Ok(Client {
            base,
            api_key: conn.api_key.clone().filter(|k| !k.is_empty()),
            agent: ureq::AgentBuilder::new()
                .timeout_connect(CONNECT_TIMEOUT.min(timeout))
                .timeout(timeout)
                .build(),
            long: ureq::AgentBuilder::new()
                .timeout_connect(CONNECT_TIMEOUT)
                .timeout_read(STREAM_READ_TIMEOUT)
                .build(),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn with_key(&self, req: ureq::Request) -> ureq::Request {
        match &self.api_key {
            Some(k) => req.set("x-api-key", k),
            None => req,
        }
    }

    /// A plain request to `path` (which starts with `/`), with the API key.
    pub fn request(&self, method: &str, path: &str) -> ureq::Request {
        self.with_key(self.agent.request(method, &format!("{}{path}", self.base)))
    }

    /// A request whose answer is read for a long time (a stream, a download).
    pub fn long_request(&self, method: &str, path: &str) -> ureq::Request {
        self.with_key(self.long.request(method, &format!("{}{path}", self.base)))
    }

    pub fn get(&self, path: &str) -> Result<Value, Failure> {
        self.call(self.request("GET", path), None)
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<Value, Failure> {
        self.call(self.request("POST", path), Some(body))
    }

    pub fn delete(&self, path: &str) -> Result<Value, Failure> {
        self.call(self.request("DELETE", path), None)
    }

    /// Sends a request and reads its JSON answer; every non-2xx is a [`Failure`].
    pub fn call(&self, req: ureq::Request, body: Option<&Value>) -> Result<Value, Failure> {
        let resp = self.open(req, body)?;
        let text = resp
            .into_string()
            .map_err(|e| Failure::new(format!("the answer of {} broke off: {e}", self.base)))?;
        serde_json::from_str(&text).map_err(|e| {
            Failure::new(format!(
                "the server at {} did not answer with JSON ({e}): {}",
                self.base,
                excerpt(&text)
            ))
        })
    }

    /// Sends a request and returns the response if it is a 2xx.
    pub fn open(
        &self,
        req: ureq::Request,
        body: Option<&Value>,
    ) -> Result<ureq::Response, Failure> {
        let sent = match body {
            Some(b) => req
                .set("content-type", "application/json")
                .send_string(&b.to_string()),
            None => req.call(),
        };
        sent.map_err(|e| self.failure(e))
    }

    /// One line saying what went wrong, in terms of what the person can do about it.
    pub fn failure(&self, e: ureq::Error) -> Failure {
        match e {
            ureq::Error::Transport(t) => Failure::new(format!(
                "cannot reach the server at {}: {}",
                self.base,
                transport_reason(&t)
            )),
            ureq::Error::Status(status, resp) => {
                let text = resp.into_string().unwrap_or_default();
                let (code, message) = error_body(&text);
                let said = match code {
                    Some(code) => format!("{status} {code}: {message}"),
                    None => format!("{status}: {message}"),
                };
                if status == 401 {
                    let hint = match self.api_key {
                        None => "no API key was given: set --api-key or AXME_API_KEY",
                        Some(_) => {
                            "the server refused the API key; check --api-key or AXME_API_KEY"
                        }
                    };
                    Failure::new(format!("{hint} ({said})"))
                } else {
                    Failure::new(said)
                }
            }
        }
    }
}

/// The reason of a transport error without the URL that ureq puts in front of it.
fn transport_reason(t: &ureq::Transport) -> String {
    let mut reason = t.kind().to_string();
    if let Some(m) = t.message() {
        reason.push_str(": ");
        reason.push_str(m);
    }
    if let Some(source) = std::error::Error::source(t) {
        reason.push_str(": ");
        reason.push_str(&source.to_string());
    }
    reason
}

/// The code and message of an AXME error body, or the start of whatever else came back.
fn error_body(text: &str) -> (Option<String>, String) {
    let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let code = v["error"]["code"].as_str().map(str::to_string);
    let message = v["error"]["message"]
        .as_str()
        .or_else(|| v["detail"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| excerpt(text));
    (code, message)
}

fn excerpt(text: &str) -> String {
    let t = text.trim();
    if t.is_empty() {
        return "(empty body)".into();
    }
    super::term::truncate(t, 200)
}

/// Percent-encodes one path segment (an agent address keeps its slashes this way too).
pub fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-encodes a query value.
pub fn query_value(s: &str) -> String {
    segment(s)
}

/// One Server-Sent Events message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
}

/// Reads SSE messages from a body, line by line.
pub struct Sse<R> {
    lines: R,
}

impl<R: BufRead> Sse<R> {
    pub fn new(lines: R) -> Sse<R> {
        Sse { lines }
    }

    /// The next message with data; `None` when the body ends.
    pub fn next_message(&mut self) -> std::io::Result<Option<Message>> {
        let (mut id, mut event, mut data) = (None, None::<String>, None::<String>);
        let mut line = String::new();
        loop {
            line.clear();
            if self.lines.read_line(&mut line)? == 0 {
                return Ok(None);
            }
            let l = line.trim_end_matches(['\n', '\r']);
            if l.is_empty() {
                if let Some(data) = data.take() {
                    return Ok(Some(Message {
                        id: id.take(),
                        event: event.take().unwrap_or_else(|| "message".into()),
                        data,
                    }));
                }
                (id, event) = (None, None);
                continue;
            }
            if l.starts_with(':') {
                continue;
            }
            let (field, value) = l.split_once(':').unwrap_or((l, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => id = Some(value.to_string()),
                "event" => event = Some(value.to_string()),
                "data" => match &mut data {
                    Some(d) => {
                        d.push('\n');
                        d.push_str(value);
                    }
                    None => data = Some(value.to_string()),
                },
                _ => {}
            }
        }
    }
}

/// What a followed stream hands to its reader.
pub enum Feed {
    Message(Message),
    /// The connection broke and is being reopened (the reason, for a status line).
    Reconnecting(String),
    /// The stream cannot be followed any more.
    Failed(Failure),
}

/// Follows the SSE resource at `path` on a thread of its own: reads its messages, reopens it
/// with `Last-Event-ID` when the server ends it (lifetime, restart) or the connection breaks,
/// and stops when the receiver is dropped. A 4xx/5xx, or a server that cannot be reached at
/// first or for [`MAX_RECONNECTS`] tries in a row, ends it with [`Feed::Failed`].
pub fn follow(client: Client, path: String) -> mpsc::Receiver<Feed> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut last_id: Option<String> = None;
        let mut connected_once = false;
        let mut failures = 0u32;
        loop {
            let mut req = client
                .long_request("GET", &path)
                .set("accept", "text/event-stream");
            if let Some(id) = &last_id {
                req = req.set("last-event-id", id);
            }
            let why = match req.call() {
                Ok(resp) => {
                    connected_once = true;
                    let mut sse = Sse::new(BufReader::new(resp.into_reader()));
                    loop {
                        match sse.next_message() {
                            Ok(Some(m)) => {
                                failures = 0;
                                if let Some(id) = &m.id {
                                    last_id = Some(id.clone());
                                }
                                if tx.send(Feed::Message(m)).is_err() {
                                    return;
                                }
                            }
                            Ok(None) => break "the server ended the stream".to_string(),
                            Err(e) => break format!("the stream broke: {e}"),
                        }
                    }
                }
                Err(e @ ureq::Error::Status(..)) => {
                    let _ = tx.send(Feed::Failed(client.failure(e)));
                    return;
                }
                Err(e) => {
                    failures += 1;
                    let failure = client.failure(e);
                    if !connected_once || failures > MAX_RECONNECTS {
                        let _ = tx.send(Feed::Failed(failure));
                        return;
                    }
                    failure.message
                }
            };
            if tx.send(Feed::Reconnecting(why)).is_err() {
                return;
            }
            std::thread::sleep(RECONNECT_DELAY);
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(text: &str) -> Vec<Message> {
        let mut sse = Sse::new(text.as_bytes());
        let mut out = Vec::new();
        while let Some(m) = sse.next_message().unwrap() {
            out.push(m);
        }
        out
    }

    #[test]
    fn reads_messages_and_skips_comments_and_retry_blocks() {
        let got = messages(
            "retry: 2000\n\n:\n\nid: 3\nevent: intent.created\ndata: {\"a\":1}\n\n\
             data: one\ndata: two\r\n\r\nevent: stream.timeout\ndata: {}\n\nid: 9\ndata: cut",
        );
        assert_eq!(
            got,
            vec![
                Message {
                    id: Some("3".into()),
                    event: "intent.created".into(),
                    data: "{\"a\":1}".into()
                },
                Message {
                    id: None,
                    event: "message".into(),
                    data: "one\ntwo".into()
                },
                Message {
                    id: None,
                    event: "stream.timeout".into(),
                    data: "{}".into()
                },
            ],
            "a message without its closing blank line is not dispatched"
        );
    }

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(segment("agent://team/a b"), "agent%3A%2F%2Fteam%2Fa%20b");
        assert_eq!(segment("abc-1.2_~"), "abc-1.2_~");
    }

    #[test]
    fn error_bodies_give_code_and_message() {
        let (code, msg) = error_body(
            r#"{"error":{"code":"agent_not_found","message":"agent not found: x","details":{}},"detail":"agent not found: x"}"#,
        );
        assert_eq!(
            (code.as_deref(), msg.as_str()),
            (Some("agent_not_found"), "agent not found: x")
        );
        let (code, msg) = error_body("<html>bad gateway</html>");
        assert_eq!((code, msg.as_str()), (None, "<html>bad gateway</html>"));
    }
}
