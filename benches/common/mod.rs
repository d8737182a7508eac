//! What the benches share: starting and stopping server child processes, CPU accounting from
//! `/proc`, exact percentiles, the minimal HTTP/1.1 client of the raw-socket load generators, the
//! scaffolding of the bare hyper servers that the ceilings run on, and small pieces of the printed
//! tables. Each bench includes it with `mod common;` and uses only part of it. It never touches
//! anything but its own child processes and sockets.

#![allow(dead_code)]

use std::future::Future;
use std::io::{self, BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use axme::model::Status;
use axme::store::intents::IntentRow;

/// The admin key the benches start their servers with.
pub const API_KEY: &str = "axme_bench_admin_key_0123456789abcdef";
/// About 200 bytes of payload, shaped like real work: every bench's creates carry it.
pub const PAYLOAD: &str = r#"{"job":"render-report","tenant":"acme-corp","priority":3,"attempt":1,"items":[{"sku":"A-1001","qty":2},{"sku":"B-2002","qty":1},{"sku":"C-3003","qty":5}],"note":"nightly batch, region eu-west, retry on failure"}"#;
/// The sender of the benches' creates.
pub const FROM_AGENT: &str = "agent://bench/client";

/// Reads a run's knobs from `AXME_BENCH_*` variables. Run with `--bench` (`cargo bench`) it is a
/// full run: each knob is its variable, or the default when that is unset or not a positive
/// number. Run without (as a test) it is a smoke run: short times and small counts whose figures
/// mean nothing.
pub struct Knobs {
    pub full: bool,
}

impl Knobs {
    pub fn from_args() -> Knobs {
        Knobs {
            full: std::env::args().any(|a| a == "--bench"),
        }
    }

    /// The variable `name` as a positive finite number, or `default`.
    pub fn num(&self, name: &str, default: f64) -> f64 {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| *v > 0.0 && v.is_finite())
            .unwrap_or(default)
    }

    /// [`Knobs::num`] in a full run, `smoke` in a smoke run.
    pub fn pick(&self, name: &str, bench: f64, smoke: f64) -> f64 {
        if self.full {
            self.num(name, bench)
        } else {
            smoke
        }
    }

    /// Seconds: [`Knobs::pick`] as a duration.
    pub fn secs(&self, name: &str, bench: f64, smoke: f64) -> Duration {
        Duration::from_secs_f64(self.pick(name, bench, smoke))
    }

    /// A count of at least 1; in a smoke run at most `smoke`.
    pub fn count(&self, name: &str, bench: f64, smoke: f64) -> usize {
        let n = self.num(name, bench) as usize;
        if self.full {
            n.max(1)
        } else {
            n.clamp(1, smoke as usize)
        }
    }
}

/// `axme serve` of `program` on `db`, on 127.0.0.1:0 with [`API_KEY`]; the `AXME_*` variables
/// that would say otherwise are removed from its environment.
pub fn serve_command(program: &std::ffi::OsStr, db: &std::path::Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.arg("serve")
        .arg("--data")
        .arg(db)
        .args(["--listen", "127.0.0.1:0", "--api-key", API_KEY])
        .env_remove("AXME_API_KEY")
        .env_remove("AXME_LISTEN")
        .env_remove("AXME_DATA");
    cmd
}

/// [`serve_command`] of the axme binary of this build.
pub fn axme_serve(db: &std::path::Path) -> Command {
    serve_command(env!("CARGO_BIN_EXE_axme").as_ref(), db)
}

/// One API call with the admin key; a non-2xx answer is an error carrying its body.
pub fn api_call(
    method: &str,
    url: &str,
    body: Option<&serde_json::Value>,
) -> Result<serde_json::Value, String> {
    let req = ureq::request(method, url)
        .set("x-api-key", API_KEY)
        .timeout(Duration::from_secs(10));
    let resp = match body {
        Some(b) => req
            .set("content-type", "application/json")
            .send_string(&b.to_string()),
        None => req.call(),
    };
    let text = match resp {
        Ok(r) => r.into_string(),
        Err(ureq::Error::Status(code, r)) => {
            let text = r.into_string().unwrap_or_default();
            return Err(format!("{method} {url} answered {code}: {text}"));
        }
        Err(e) => return Err(format!("{method} {url}: {e}")),
    };
    let text = text.map_err(|e| format!("{method} {url}: reading the answer: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("{method} {url} answered {text}: {e}"))
}

/// Failures seen in a measurement, by kind; any makes the run invalid.
#[derive(Default)]
pub struct Errors {
    pub by_kind: std::collections::BTreeMap<String, u64>,
    /// The first one, with detail.
    pub first: Option<String>,
}

impl Errors {
    pub fn add(&mut self, kind: &str, detail: &str) {
        if self.first.is_none() {
            let detail: String = detail.chars().take(300).collect();
            self.first = Some(format!("{kind}: {detail}"));
        }
        *self.by_kind.entry(kind.to_string()).or_default() += 1;
    }

    pub fn merge(&mut self, other: Errors) {
        for (kind, n) in other.by_kind {
            *self.by_kind.entry(kind).or_default() += n;
        }
        self.first = self.first.take().or(other.first);
    }

    pub fn count(&self) -> u64 {
        self.by_kind.values().sum()
    }
}

/// An intent row as a create writes it: SUBMITTED with its `created` and `submitted` events and
/// no attempt yet, from [`FROM_AGENT`] with [`PAYLOAD`], with fresh ids, at `at`.
pub fn submitted_intent(intent_type: &str, to_agent: &str, at: &str) -> IntentRow {
    IntentRow {
        id: 0,
        intent_id: uuid::Uuid::now_v7().to_string(),
        intent_type: intent_type.into(),
        correlation_id: uuid::Uuid::new_v4().to_string(),
        from_agent: FROM_AGENT.into(),
        to_agent: to_agent.into(),
        reply_to: None,
        payload: PAYLOAD.into(),
        status: Status::Submitted,
        waiting_reason: None,
        result: None,
        error: None,
        deadline_at: None,
        remind_after_seconds: None,
        remind_interval_seconds: None,
        max_reminders: None,
        remind_count: 0,
        escalate_to: None,
        max_delivery_attempts: None,
        delivery_attempt: 0,
        human_task: None,
        last_seq: 2,
        created_at: at.into(),
        updated_at: at.into(),
    }
}

/// The `POST /v1/intents` a load connection sends, built once; each send writes a fresh random
/// `correlation_id` over the placeholder, in place.
#[derive(Clone)]
pub struct CreateTemplate {
    bytes: Vec<u8>,
    uuid_at: usize,
    /// The length of the JSON body.
    pub body_len: usize,
}

impl CreateTemplate {
    /// A create of `intent_type` from [`FROM_AGENT`] to `to_agent` with [`PAYLOAD`], to the server
    /// at `addr` with [`API_KEY`].
    pub fn new(addr: SocketAddr, intent_type: &str, to_agent: &str) -> CreateTemplate {
        let placeholder = "00000000-0000-4000-8000-000000000000";
        let body = format!(
            r#"{{"intent_type":"{intent_type}","correlation_id":"{placeholder}","to_agent":"{to_agent}","from_agent":"{FROM_AGENT}","payload":{PAYLOAD}}}"#
        );
        let head = format!(
            "POST /v1/intents HTTP/1.1\r\nhost: {addr}\r\nx-api-key: {API_KEY}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        let uuid_at = head.len() + body.find(placeholder).unwrap_or(0);
        CreateTemplate {
            bytes: [head.as_bytes(), body.as_bytes()].concat(),
            uuid_at,
            body_len: body.len(),
        }
    }

    /// The length of the whole request.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Writes a random version-4 UUID over the placeholder.
    pub fn next(&mut self, rng: &mut u64) -> &[u8] {
        let bits = (u128::from(splitmix64(rng)) << 64) | u128::from(splitmix64(rng));
        let uuid = uuid::Builder::from_random_bytes(bits.to_be_bytes()).into_uuid();
        uuid.hyphenated()
            .encode_lower(&mut self.bytes[self.uuid_at..self.uuid_at + 36]);
        &self.bytes
    }
}

/// A cheap source of distinct UUIDs, without a syscall per request.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A server child process; dropping it kills the process (also when unwinding from a panic).
pub struct ChildServer {
    pub child: Child,
    name: &'static str,
    pub addr: SocketAddr,
}

impl ChildServer {
    /// Starts the command and waits for its `listening on http://ADDR` line on stdout.
    pub fn spawn(cmd: &mut Command, name: &'static str) -> Result<ChildServer, String> {
        // stdin is a pipe nobody writes: the bare server exits when it closes, so even a
        // SIGKILLed bench leaves no orphan behind.
        let child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {name}: {e}"))?;
        let mut server = ChildServer {
            child,
            name,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let stdout = server
            .child
            .stdout
            .take()
            .ok_or(format!("{name}: no stdout pipe"))?;
        let (tx, rx) = mpsc::channel();
        // Drains stdout for the child's whole life so the pipe never fills up.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        loop {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .map_err(|_| format!("{name} exited or never printed its listening line"))?;
            if let Some(rest) = line.split("listening on http://").nth(1) {
                let addr = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .trim_end_matches('/');
                server.addr = addr
                    .parse()
                    .map_err(|e| format!("{name}: bad listening address {addr:?}: {e}"))?;
                return Ok(server);
            }
        }
    }

    /// Asks for a graceful exit (SIGTERM, through `kill(1)` to stay free of unsafe code), waits
    /// up to 10 s, then kills.
    pub fn stop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        eprintln!("[bench] {} ignored SIGTERM for 10 s; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// CPU time (user + system) a process has used so far, from `/proc/PID/stat` (`"self"` works).
pub fn cpu_time(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // utime and stime are fields 14 and 15, i.e. the 12th and 13th after the `(comm)` field.
    let mut fields = stat.get(stat.rfind(')')? + 2..)?.split(' ').skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    // USER_HZ is 100 on every Linux this bench is meant for.
    Some(Duration::from_millis((utime + stime) * 10))
}

/// Busy time of all CPUs together so far (everything but idle and iowait), from `/proc/stat`.
pub fn machine_busy() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let busy: u64 = fields
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| v)
        .sum();
    Some(Duration::from_millis(busy * 10))
}

/// The `q` quantile (0..=1) of sorted microseconds, in milliseconds.
pub fn quantile_ms(sorted_us: &[u32], q: f64) -> Option<f64> {
    let n = sorted_us.len();
    let rank = ((q * n as f64).ceil() as usize).clamp(1, n.max(1));
    Some(f64::from(*sorted_us.get(rank - 1)?) / 1000.0)
}

pub mod http {
    //! A minimal keep-alive HTTP/1.1 client on raw tokio sockets. It knows `Content-Length` and
    //! chunked framing and nothing else of HTTP.

    use super::*;
    use bytes::BytesMut;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    pub async fn connect(addr: SocketAddr) -> Result<TcpStream, String> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connecting to {addr}: {e}"))?;
        stream
            .set_nodelay(true)
            .map_err(|e| format!("TCP_NODELAY: {e}"))?;
        Ok(stream)
    }

    /// Writes the request and reads until `buf` starts with one complete answer (which the caller
    /// then advances past).
    pub async fn exchange(
        stream: &mut TcpStream,
        req: &[u8],
        buf: &mut BytesMut,
    ) -> io::Result<Framing> {
        stream.write_all(req).await?;
        loop {
            if let Some(framing) = parse(buf)? {
                return Ok(framing);
            }
            if stream.read_buf(buf).await? == 0 {
                let msg = "the server closed the connection";
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, msg));
            }
        }
    }

    /// Where one answer lies at the start of a buffer.
    pub struct Framing {
        pub status: u16,
        /// Where the body starts (still chunk-framed if the answer is chunked).
        pub body_at: usize,
        /// Bytes of the whole answer.
        pub len: usize,
        /// The server said `connection: close`.
        pub close: bool,
    }

    pub fn invalid(msg: &str) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
    }

    /// Parses the status line and the framing headers; `None` while the answer is incomplete.
    pub fn parse(buf: &[u8]) -> io::Result<Option<Framing>> {
        let Some(head_end) = find(buf, b"\r\n\r\n") else {
            if buf.len() > 64 * 1024 {
                return Err(invalid("response head over 64 KiB"));
            }
            return Ok(None);
        };
        let mut lines = buf[..head_end].split(|&b| b == b'\n');
        let status = lines
            .next()
            .and_then(|l| {
                l.strip_prefix(b"HTTP/1.1 ")
                    .or_else(|| l.strip_prefix(b"HTTP/1.0 "))
            })
            .and_then(|rest| {
                std::str::from_utf8(rest.get(..3)?)
                    .ok()?
                    .parse::<u16>()
                    .ok()
            })
            .ok_or_else(|| invalid("bad status line"))?;
        let (mut content_length, mut chunked, mut close) = (None, false, false);
        for line in lines {
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
            if name.eq_ignore_ascii_case(b"content-length") {
                let n = std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.parse::<usize>().ok());
                content_length = Some(n.ok_or_else(|| invalid("bad content-length"))?);
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                chunked = value.eq_ignore_ascii_case(b"chunked");
            } else if name.eq_ignore_ascii_case(b"connection") {
                close = value.eq_ignore_ascii_case(b"close");
            }
        }
        let body_at = head_end + 4;
        let len = match (chunked, content_length) {
            (true, _) => match chunked_len(&buf[body_at..])? {
                Some(n) => body_at + n,
                None => return Ok(None),
            },
            (false, Some(n)) => body_at + n,
            (false, None) if status == 204 || status == 304 => body_at,
            (false, None) => return Err(invalid("an answer without content-length or chunks")),
        };
        Ok((buf.len() >= len).then_some(Framing {
            status,
            body_at,
            len,
            close,
        }))
    }

    /// The length of a complete chunked body with its framing; `None` while incomplete.
    fn chunked_len(buf: &[u8]) -> io::Result<Option<usize>> {
        let mut at = 0;
        loop {
            let Some(eol) = find(&buf[at..], b"\r\n") else {
                return Ok(None);
            };
            let hex = buf[at..at + eol]
                .split(|&b| b == b';')
                .next()
                .unwrap_or_default();
            let size = std::str::from_utf8(hex)
                .ok()
                .and_then(|h| usize::from_str_radix(h.trim(), 16).ok())
                .ok_or_else(|| invalid("bad chunk size"))?;
            at += eol + 2;
            if size == 0 {
                // An empty line ends the body, after trailers if there are any.
                return Ok(match buf.get(at..at + 2) {
                    None => None,
                    Some(b"\r\n") => Some(at + 2),
                    Some(_) => find(&buf[at..], b"\r\n\r\n").map(|e| at + e + 4),
                });
            }
            if buf.len() < at + size + 2 {
                return Ok(None);
            }
            at += size + 2;
        }
    }

    pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
        haystack.windows(needle.len()).position(|w| w == needle)
    }
    /// [`exchange`] on a blocking socket, for a thread of its own whose timestamps must not wait
    /// for a busy async runtime.
    pub fn exchange_blocking(
        stream: &mut std::net::TcpStream,
        req: &[u8],
        buf: &mut BytesMut,
    ) -> io::Result<Framing> {
        use std::io::{Read, Write};
        stream.write_all(req)?;
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if let Some(framing) = parse(buf)? {
                return Ok(framing);
            }
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                let msg = "the server closed the connection";
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, msg));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// Runs a bare hyper HTTP/1.1 server answering with `handler`, in this process, until killed or
/// until the parent closes our stdin: the ceilings of the benches. It is set up like `axme serve`
/// (HTTP/1.1 keep-alive connections with a 30 s header read timeout, `TCP_NODELAY`, a 2-worker
/// multi-thread runtime) and prints the same `listening on http://ADDR` line.
pub fn serve_bare<F, Fut, B>(handler: F) -> Result<(), String>
where
    F: Fn(hyper::Request<hyper::body::Incoming>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<hyper::Response<B>, hyper::Error>> + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioIo, TokioTimer};

    std::thread::spawn(|| {
        let _ = io::copy(&mut io::stdin(), &mut io::sink());
        std::process::exit(0);
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("building the runtime: {e}"))?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("binding: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("local address: {e}"))?;
        println!("listening on http://{addr}");
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    eprintln!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let handler = handler.clone();
            tokio::spawn(async move {
                // The same connection settings as `axme serve`.
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(30))
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service_fn(handler));
                let _ = conn.await;
            });
        }
    })
}

/// `v` rounded, with thousands separators: `12,345`.
pub fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// CPUs, CPU model and kernel, for the heading of a table.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("unknown CPU", str::trim);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpus} CPUs (nproc), {model}, Linux {}", kernel.trim())
}

/// The time of the run, to the minute.
pub fn now() -> String {
    let now = time::OffsetDateTime::now_utc();
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    now.format(&format).unwrap_or_default()
}

/// The 1-minute load average now: the machine may be shared.
pub fn loadavg() -> String {
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    loadavg.split(' ').next().unwrap_or("?").to_string()
}

/// Under a CPU table: the measurements during which other work took CPU, if any.
pub fn write_disturbed(w: &mut String, disturbed: &[impl AsRef<str>]) {
    use std::fmt::Write;
    if !disturbed.is_empty() {
        let names: Vec<&str> = disturbed.iter().map(AsRef::as_ref).collect();
        let _ = writeln!(
            w,
            "!!!!! other work took CPU during: {}; those figures are suspect, rerun on a quiet machine",
            names.join(", ")
        );
    }
}

/// After the checks: a measurement that saw errors, loudly, with the count of each kind and the
/// first one in full; nothing when it saw none.
pub fn write_errors(
    w: &mut String,
    name: &str,
    by_kind: &std::collections::BTreeMap<String, u64>,
    first: Option<&str>,
) {
    use std::fmt::Write;
    let n: u64 = by_kind.values().sum();
    if n > 0 {
        let _ = writeln!(w, "\n!!!!! {name}: {n} ERRORS; THIS RUN IS NOT VALID !!!!!");
        for (kind, n) in by_kind {
            let _ = writeln!(w, "    {n:>9}  {kind}");
        }
        let _ = writeln!(w, "    first: {}", first.unwrap_or("?"));
    }
}

/// The report without the trailing blanks of empty right-aligned cells.
pub fn trim_lines(w: &str) -> String {
    w.lines().map(str::trim_end).collect::<Vec<_>>().join("\n")
}
