//! The client toolkit of the streams bench, on raw sockets: requests, setting up intents on axme,
//! the committer, and SSE connections. An SSE connection understands HTTP/1.1 chunked framing and
//! the `id:` line of a message and nothing else; the committer is a blocking socket on a thread
//! of its own, so the moments it records never wait for the client runtime, busy with 1,000
//! subscribers.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::common::http::{connect, exchange_blocking, find, invalid};
use super::API_KEY;

/// Streams opened at once: enough to open 10,000 in seconds, few enough not to overflow the
/// server's accept backlog.
pub const OPENING: usize = 64;

pub fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("building the client runtime: {e}"))
}

/// A request with the admin key (the bare broadcaster ignores it).
pub fn request(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nx-api-key: {API_KEY}\r\n");
    match body {
        Some(b) => r.push_str(&format!(
            "content-type: application/json\r\ncontent-length: {}\r\n\r\n{b}",
            b.len()
        )),
        None => r.push_str("\r\n"),
    }
    r.into_bytes()
}

/// `later - earlier` in µs, negative when `later` came first.
pub fn signed_us(later: Instant, earlier: Instant) -> i64 {
    match later.checked_duration_since(earlier) {
        Some(d) => d.as_micros() as i64,
        None => -(earlier.duration_since(later).as_micros() as i64),
    }
}

/// The `q` quantile (0..=1) of sorted signed microseconds, in milliseconds.
pub fn quantile_ms(sorted_us: &[i64], q: f64) -> Option<f64> {
    let n = sorted_us.len();
    let rank = ((q * n as f64).ceil() as usize).clamp(1, n.max(1));
    Some(*sorted_us.get(rank - 1)? as f64 / 1000.0)
}

// --- Setting up intents on axme ---------------------------------------------------------------

/// An intent the bench commits progress to, IN_PROGRESS with `seq` events so far.
pub struct Intent {
    pub id: String,
    pub seq: i64,
}

/// One request on a fresh blocking connection; the status and the body.
fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<(u16, String), String> {
    let mut stream =
        std::net::TcpStream::connect(addr).map_err(|e| format!("connecting to {addr}: {e}"))?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut buf = BytesMut::new();
    let f = exchange_blocking(&mut stream, &request(addr, method, path, body), &mut buf)
        .map_err(|e| format!("{method} {path}: {e}"))?;
    Ok((
        f.status,
        String::from_utf8_lossy(&buf[f.body_at..f.len]).into_owned(),
    ))
}

/// A JSON request that must answer 200.
fn call_ok(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> Result<serde_json::Value, String> {
    let (status, text) = call(addr, method, path, Some(body))?;
    if status != 200 {
        return Err(format!("{method} {path} answered {status}: {text}"));
    }
    serde_json::from_str(&text).map_err(|e| format!("{method} {path}: {e}: {text}"))
}

/// Creates an intent and moves it to IN_PROGRESS, ready for progress commits.
pub fn intent(addr: SocketAddr, purpose: &str) -> Result<Intent, String> {
    let body = serde_json::json!({
        "intent_type": "bench.streams.v1",
        "correlation_id": uuid::Uuid::new_v4().to_string(),
        "to_agent": "agent://bench/worker",
        "from_agent": "agent://bench/observer",
        "payload": {"purpose": purpose},
    });
    let created = call_ok(addr, "POST", "/v1/intents", &body.to_string())?;
    let id = created["intent_id"]
        .as_str()
        .ok_or("a create without intent_id")?
        .to_string();
    let started = call_ok(
        addr,
        "POST",
        &format!("/v1/intents/{id}/progress"),
        r#"{"status":"IN_PROGRESS"}"#,
    )?;
    let seq = started["event"]["seq"]
        .as_i64()
        .ok_or("a progress answer without event.seq")?;
    Ok(Intent { id, seq })
}

/// The end of the event log (the newest event id), read from the firehose: a cursor from the
/// future gets an in-band `event: reset` that names it.
pub fn log_end(addr: SocketAddr) -> Result<i64, String> {
    let path = "/v1/events/stream?since=999999999999999";
    let mut stream =
        std::net::TcpStream::connect(addr).map_err(|e| format!("connecting to {addr}: {e}"))?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    stream
        .write_all(&request(addr, "GET", path, None))
        .map_err(|e| format!("{path}: {e}"))?;
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(at) = find(&got, b"event: reset\ndata: ") {
            let data = &got[at + 19..];
            if let Some(end) = find(data, b"\n") {
                let reset: serde_json::Value = serde_json::from_slice(&data[..end])
                    .map_err(|e| format!("{path}: reset: {e}"))?;
                return reset["latest"]
                    .as_i64()
                    .ok_or_else(|| format!("{path}: a reset without latest"));
            }
        }
        let n = stream
            .read(&mut chunk)
            .map_err(|e| format!("{path}: {e}"))?;
        if n == 0 {
            return Err(format!(
                "{path}: closed before the reset: {}",
                String::from_utf8_lossy(&got)
            ));
        }
        got.extend_from_slice(&chunk[..n]);
    }
}

/// `n` progress commits on `intent` (IN_PROGRESS now): WAITING, IN_PROGRESS, WAITING, ...
pub fn progress_requests(addr: SocketAddr, intent: &Intent, n: usize) -> Vec<Vec<u8>> {
    let path = format!("/v1/intents/{}/progress", intent.id);
    let waiting = r#"{"status":"WAITING","waiting_reason":"WAITING_FOR_TOOL"}"#;
    let working = r#"{"status":"IN_PROGRESS"}"#;
    (0..n)
        .map(|i| {
            request(
                addr,
                "POST",
                &path,
                Some(if i % 2 == 0 { waiting } else { working }),
            )
        })
        .collect()
}

/// `n` pokes of the bare broadcaster, each queuing `frame` (an SSE message axme sent, without its
/// blank line) to every stream, with the `id:` line renumbered 1, 2, ...
pub fn frame_pokes(addr: SocketAddr, frame: &str, n: usize) -> Vec<Vec<u8>> {
    let rest = frame.split_once('\n').map_or(frame, |(_, rest)| rest);
    (0..n)
        .map(|i| {
            request(
                addr,
                "POST",
                "/poke/stream",
                Some(&format!("id: {}\n{rest}\n\n", i + 1)),
            )
        })
        .collect()
}

/// `n` pokes of the bare broadcaster, each answering every parked poll with `body`.
pub fn answer_pokes(addr: SocketAddr, body: &str, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|_| request(addr, "POST", "/poke/poll", Some(body)))
        .collect()
}

// --- The committer ----------------------------------------------------------------------------

/// When a commit was written and when its 200 was read.
#[derive(Clone, Copy)]
pub struct Commit {
    pub sent: Instant,
    pub answered: Instant,
}

/// One keep-alive connection that sends commits, on a blocking socket.
pub struct Committer {
    stream: std::net::TcpStream,
    buf: BytesMut,
}

impl Committer {
    pub fn connect(addr: SocketAddr) -> Result<Committer, String> {
        let stream = std::net::TcpStream::connect(addr)
            .map_err(|e| format!("committer: connecting to {addr}: {e}"))?;
        stream
            .set_nodelay(true)
            .map_err(|e| format!("committer: TCP_NODELAY: {e}"))?;
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        Ok(Committer {
            stream,
            buf: BytesMut::with_capacity(8192),
        })
    }

    /// Sends one commit; an answer other than 200 is an error.
    pub fn commit(&mut self, req: &[u8]) -> Result<Commit, String> {
        let sent = Instant::now();
        let f = exchange_blocking(&mut self.stream, req, &mut self.buf)
            .map_err(|e| format!("commit: {e}"))?;
        let answered = Instant::now();
        let status = f.status;
        let body = String::from_utf8_lossy(&self.buf[f.body_at..f.len]).into_owned();
        self.buf.advance(f.len);
        if status != 200 {
            return Err(format!("commit answered {status}: {body}"));
        }
        Ok(Commit { sent, answered })
    }

    /// Sends `reqs` one every `interval` (or at once when late).
    pub fn paced(mut self, reqs: Vec<Vec<u8>>, interval: Duration) -> Vec<Result<Commit, String>> {
        let start = Instant::now();
        let mut out = Vec::with_capacity(reqs.len());
        for (i, req) in reqs.iter().enumerate() {
            let due = start + interval * i as u32;
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            out.push(self.commit(req));
        }
        out
    }
}

// --- SSE connections --------------------------------------------------------------------------

/// An open SSE response: the socket, bytes read but not yet de-chunked, and de-chunked text not
/// yet parsed into messages.
pub struct SseConn {
    pub stream: TcpStream,
    pub raw: BytesMut,
    text: Vec<u8>,
}

impl SseConn {
    /// Opens a stream and returns once its `200` head and its first message (`retry:`) arrived.
    pub async fn open(addr: SocketAddr, path: &str) -> Result<SseConn, String> {
        let what = |e: std::io::Error| format!("GET {path}: {e}");
        let mut stream = connect(addr).await?;
        stream
            .write_all(&request(addr, "GET", path, None))
            .await
            .map_err(what)?;
        let mut raw = BytesMut::with_capacity(2048);
        loop {
            if let Some(end) = find(&raw, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
                if !head.starts_with("http/1.1 200") {
                    let shown = String::from_utf8_lossy(&raw[..raw.len().min(400)]).into_owned();
                    return Err(format!("GET {path}: {shown}"));
                }
                if !head.contains("transfer-encoding: chunked") {
                    return Err(format!(
                        "GET {path}: an event stream that is not chunked: {head}"
                    ));
                }
                raw.advance(end + 4);
                break;
            }
            if stream.read_buf(&mut raw).await.map_err(what)? == 0 {
                return Err(format!("GET {path}: closed before the answer"));
            }
        }
        let mut conn = SseConn {
            stream,
            raw,
            text: Vec::new(),
        };
        loop {
            let mut seen = false;
            if !conn.messages(|_, _| seen = true).map_err(what)? {
                return Err(format!("GET {path}: the stream ended at once"));
            }
            if seen {
                return Ok(conn);
            }
            if conn.stream.read_buf(&mut conn.raw).await.map_err(what)? == 0 {
                return Err(format!("GET {path}: closed before the first message"));
            }
        }
    }

    /// Moves complete chunks from `raw` to `text`; `false` once the body ended.
    fn dechunk(&mut self) -> std::io::Result<bool> {
        loop {
            let Some(eol) = find(&self.raw, b"\r\n") else {
                return Ok(true);
            };
            let hex = self.raw[..eol]
                .split(|&b| b == b';')
                .next()
                .unwrap_or_default();
            let size = std::str::from_utf8(hex)
                .ok()
                .and_then(|h| usize::from_str_radix(h.trim(), 16).ok())
                .ok_or_else(|| invalid("bad chunk size"))?;
            if size == 0 {
                return Ok(false);
            }
            if self.raw.len() < eol + 2 + size + 2 {
                return Ok(true);
            }
            self.text
                .extend_from_slice(&self.raw[eol + 2..eol + 2 + size]);
            self.raw.advance(eol + 2 + size + 2);
        }
    }

    /// Calls `f` with the `id:` (if any) and the text of each complete message; `false` once the
    /// body ended.
    pub fn messages(&mut self, mut f: impl FnMut(Option<i64>, &[u8])) -> std::io::Result<bool> {
        let open = self.dechunk()?;
        let mut at = 0;
        while let Some(end) = find(&self.text[at..], b"\n\n") {
            let msg = &self.text[at..at + end];
            let id = msg.strip_prefix(b"id: ").and_then(|rest| {
                let digits = rest.split(|&b| b == b'\n').next()?;
                std::str::from_utf8(digits).ok()?.parse().ok()
            });
            f(id, msg);
            at += end + 2;
        }
        self.text.drain(..at);
        Ok(open)
    }
}

/// Opens a stream on every path, `OPENING` at a time; fails on the first that fails.
pub async fn open_all(addr: SocketAddr, paths: Vec<String>) -> Result<Vec<SseConn>, String> {
    let gate = Arc::new(Semaphore::new(OPENING));
    let mut opening = JoinSet::new();
    let mut conns = Vec::with_capacity(paths.len());
    for path in paths {
        let permit = gate
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| e.to_string())?;
        opening.spawn(async move {
            let conn =
                tokio::time::timeout(Duration::from_secs(20), SseConn::open(addr, &path)).await;
            drop(permit);
            conn.unwrap_or_else(|_| Err(format!("GET {path}: no first message within 20 s")))
        });
        while let Some(done) = opening.try_join_next() {
            conns.push(done.map_err(|e| e.to_string())??);
        }
    }
    while let Some(done) = opening.join_next().await {
        conns.push(done.map_err(|e| e.to_string())??);
    }
    Ok(conns)
}
