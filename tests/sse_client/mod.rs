//! A small blocking Server-Sent Events client for the integration tests, over a plain
//! `std::net::TcpStream`: it sends one raw HTTP/1.1 GET, reads the status line and headers, then
//! decodes the chunked body into SSE blocks (the lines up to a blank line). It tells a response
//! the server ended (the last, empty chunk) from a connection that was cut (EOF or reset
//! mid-body). Every read has a timeout and every stream a deadline, so a stream that stalls (or
//! only sends keepalives) fails the test instead of hanging it. Below it, the few calls the
//! binding tests share (a crate that uses this module declares `mod common;` too).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{agent, send, Resp, Server, ADMIN_KEY};

/// The longest a test waits for the next bytes of a stream (less than the default keepalive).
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest a test reads one stream.
pub const STREAM_DEADLINE: Duration = Duration::from_secs(60);

/// One SSE block: the fields of the lines before a blank line. A block of only `:` lines is a
/// comment (a keepalive).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Block {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: Option<String>,
    pub retry: Option<u64>,
    pub comment: bool,
}

impl Block {
    /// The `id:` as a number (panics when there is none: the caller expected an event).
    pub fn seq(&self) -> i64 {
        let id = self
            .id
            .as_deref()
            .unwrap_or_else(|| panic!("no id in {self:?}"));
        id.parse()
            .unwrap_or_else(|_| panic!("id is not a number in {self:?}"))
    }

    pub fn event(&self) -> &str {
        self.event.as_deref().unwrap_or("")
    }

    /// The `data:` parsed as JSON.
    pub fn json(&self) -> Value {
        let data = self
            .data
            .as_deref()
            .unwrap_or_else(|| panic!("no data in {self:?}"));
        serde_json::from_str(data).unwrap_or_else(|e| panic!("data is not JSON ({e}): {data}"))
    }

    /// A block that carries an event with an id (an intent event, not a control message).
    pub fn is_event(&self) -> bool {
        self.id.is_some() && self.event.is_some()
    }
}

/// How a stream's body ended.
#[derive(Debug, Clone, PartialEq)]
pub enum End {
    /// The server ended the response (the last chunk arrived).
    Clean,
    /// The connection closed or was reset before the last chunk.
    Cut(String),
}

/// An open SSE response (or the error response that came instead).
pub struct Sse {
    reader: BufReader<TcpStream>,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The body of a response that is not an event stream (an error).
    pub body: String,
    chunk_left: usize,
    after_chunk: bool,
    deadline: Instant,
    pub end: Option<End>,
}

impl Sse {
    /// Sends `GET path` to `base` (`http://host:port`) with the given headers.
    pub fn open(base: &str, path: &str, headers: &[(&str, &str)]) -> Sse {
        let host = base.trim_start_matches("http://").trim_end_matches('/');
        let stream = TcpStream::connect(host).unwrap_or_else(|e| panic!("connect {host}: {e}"));
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .expect("timeout");
        stream.set_nodelay(true).expect("nodelay");
        let mut req =
            format!("GET {path} HTTP/1.1\r\nhost: {host}\r\naccept: text/event-stream\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        (&stream).write_all(req.as_bytes()).expect("send request");
        let mut sse = Sse {
            reader: BufReader::with_capacity(64 * 1024, stream),
            status: 0,
            headers: Vec::new(),
            body: String::new(),
            chunk_left: 0,
            after_chunk: false,
            deadline: Instant::now() + STREAM_DEADLINE,
            end: None,
        };
        sse.read_head();
        sse
    }

    fn read_head(&mut self) {
        let status_line = self.raw_line().expect("status line");
        self.status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        loop {
            let line = self.raw_line().expect("header line");
            if line.is_empty() {
                break;
            }
            let (k, v) = line.split_once(':').expect("header");
            self.headers
                .push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
        if self.header("transfer-encoding") != Some("chunked") {
            let len: usize = self
                .header("content-length")
                .map_or(0, |l| l.parse().expect("length"));
            let mut body = vec![0; len];
            self.reader.read_exact(&mut body).expect("body");
            self.body = String::from_utf8_lossy(&body).into_owned();
            self.end = Some(End::Clean);
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body of an error response as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// One line of the head or of a chunk header, without its CRLF.
    fn raw_line(&mut self) -> io::Result<String> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }

    /// One line of the decoded body; `Ok(None)` when the last chunk arrived.
    fn body_line(&mut self) -> io::Result<Option<String>> {
        let mut line = Vec::new();
        loop {
            if self.chunk_left == 0 {
                if self.after_chunk {
                    self.raw_line()?;
                    self.after_chunk = false;
                }
                let size = self.raw_line()?;
                let size = usize::from_str_radix(size.trim(), 16)
                    .map_err(|_| io::Error::other(format!("bad chunk size {size:?}")))?;
                if size == 0 {
                    self.raw_line()?;
                    return Ok(None);
                }
                self.chunk_left = size;
            }
            let buf = self.reader.fill_buf()?;
            if buf.is_empty() {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let n = buf.len().min(self.chunk_left);
            let (take, done) = match buf[..n].iter().position(|b| *b == b'\n') {
                Some(i) => (i + 1, true),
                None => (n, false),
            };
            line.extend_from_slice(&buf[..take]);
            self.reader.consume(take);
            self.chunk_left -= take;
            self.after_chunk = self.chunk_left == 0;
            if done {
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(Some(String::from_utf8(line).expect("UTF-8")));
            }
        }
    }

    /// The next block, or `None` once the body ended (see `end`). A read that times out panics.
    pub fn next(&mut self) -> Option<Block> {
        if self.end.is_some() {
            return None;
        }
        assert!(
            Instant::now() < self.deadline,
            "stream still open after {STREAM_DEADLINE:?}"
        );
        let mut block = Block::default();
        let mut any = false;
        loop {
            let line = match self.body_line() {
                Ok(Some(l)) => l,
                Ok(None) => {
                    self.end = Some(End::Clean);
                    return None;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    panic!("no stream data for {READ_TIMEOUT:?}")
                }
                Err(e) => {
                    self.end = Some(End::Cut(e.to_string()));
                    return None;
                }
            };
            if line.is_empty() {
                if any {
                    return Some(block);
                }
                continue;
            }
            any = true;
            let (field, value) = line.split_once(':').unwrap_or((&line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value).to_string();
            match field {
                "" => block.comment = true,
                "id" => block.id = Some(value),
                "event" => block.event = Some(value),
                "retry" => block.retry = Some(value.parse().expect("retry")),
                "data" => {
                    block.data = Some(match block.data.take() {
                        Some(d) => format!("{d}\n{value}"),
                        None => value,
                    })
                }
                other => panic!("unknown SSE field {other:?} in {line:?}"),
            }
        }
    }

    /// Every block until the body ends.
    pub fn rest(&mut self) -> Vec<Block> {
        std::iter::from_fn(|| self.next()).collect()
    }

    /// The next `n` events (blocks with an id), skipping keepalives; panics if the stream ends
    /// first or sends anything else.
    pub fn events(&mut self, n: usize) -> Vec<Block> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            match self.next() {
                Some(b) if b.is_event() => out.push(b),
                Some(b) if b.comment && b.event.is_none() => {}
                Some(b) => panic!("expected an event, got {b:?} after {out:?}"),
                None => panic!("stream ended ({:?}) after {out:?}", self.end),
            }
        }
        out
    }

    /// The `retry:` block every stream starts with.
    pub fn expect_retry(&mut self) {
        let first = self.next().expect("a first block");
        assert_eq!(
            first,
            Block {
                retry: Some(2000),
                ..Block::default()
            }
        );
    }
}

/// `(id, event)` of each event block, for compact assertions.
pub fn ids_and_types(blocks: &[Block]) -> Vec<(i64, String)> {
    blocks
        .iter()
        .filter(|b| b.is_event())
        .map(|b| (b.seq(), b.event().to_string()))
        .collect()
}

// --- Helpers the binding tests share ---------------------------------------------------------

/// Opens a stream on `s` with the admin key and any extra headers.
pub fn open(s: &Server, path: &str, extra: &[(&str, &str)]) -> Sse {
    let mut headers = vec![("x-api-key", ADMIN_KEY)];
    headers.extend_from_slice(extra);
    Sse::open(&s.base, path, &headers)
}

/// A POST with the admin key to a server known only by its base URL (for writer threads).
pub fn post_to(base: &str, path: &str, body: Value) -> Resp {
    let req = agent()
        .post(&format!("{base}{path}"))
        .set("x-api-key", ADMIN_KEY);
    send(req, Some(body.to_string()))
}

/// Reports progress: IN_PROGRESS, or WAITING (for a tool).
pub fn progress(base: &str, id: &str, status: &str) {
    let body = match status {
        "WAITING" => json!({"status": "WAITING", "waiting_reason": "WAITING_FOR_TOOL"}),
        _ => json!({"status": status}),
    };
    let r = post_to(base, &format!("/v1/intents/{id}/progress"), body);
    assert_eq!(r.status, 200, "progress {status}: {}", r.text);
}

/// Resolves an intent to COMPLETED (with a result) or to FAILED/CANCELED (with a reason).
pub fn resolve(base: &str, id: &str, status: &str) {
    let body = match status {
        "COMPLETED" => json!({"status": status, "result": {"done": true}}),
        _ => json!({"status": status, "reason": "not needed"}),
    };
    let r = post_to(base, &format!("/v1/intents/{id}/resolve"), body);
    assert_eq!(r.status, 200, "resolve {status}: {}", r.text);
}

/// A commit "after the subscriber connected" must reach a stream that is already waiting,
/// not one still replaying; this gives the server ample time to get there.
pub fn settle() {
    std::thread::sleep(Duration::from_millis(200));
}
