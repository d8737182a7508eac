//! A scripted webhook receiver for the push tests, and the helpers that read what the server did
//! with a push. The receiver is a `std::net::TcpListener` on `127.0.0.1` served by plain threads:
//! it reads one HTTP/1.1 request per connection (request line, headers, `Content-Length` body),
//! records it with its arrival time, answers from its script (status, headers, body, or a delay
//! long enough to force the server's push timeout) and closes the connection. Dropping it stops
//! the accept loop and cuts short any delay still running, so a test never waits on a hang.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;

use crate::common::Server;

/// The longest a test waits for something the server does in the background.
pub const WAIT: Duration = Duration::from_secs(15);

/// One scripted answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Held this long before answering (cut short when the receiver is dropped).
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: String::new(),
            delay: Duration::ZERO,
        }
    }

    pub fn ok() -> Reply {
        Reply::status(200)
    }

    /// A JSON body with `content-type: application/json`.
    pub fn json(status: u16, body: Value) -> Reply {
        Reply::status(status)
            .header("content-type", "application/json")
            .body(&body.to_string())
    }

    /// A 200 that comes only after `delay`: longer than the push timeout, it is a hang.
    pub fn hang(delay: Duration) -> Reply {
        Reply {
            delay,
            ..Reply::ok()
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn body(mut self, body: &str) -> Reply {
        self.body = body.into();
        self
    }
}

/// A request the receiver got.
#[derive(Debug, Clone)]
pub struct Hit {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// When the whole request had been read.
    pub at: Instant,
}

impl Hit {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `webhook-id` header (panics when it is missing).
    pub fn id(&self) -> &str {
        self.header("webhook-id").expect("webhook-id header")
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the push body is JSON")
    }
}

struct Script {
    next: VecDeque<Reply>,
    default: Reply,
}

struct Shared {
    script: Mutex<Script>,
    hits: Mutex<Vec<Hit>>,
    arrived: Condvar,
    stop: AtomicBool,
}

pub struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Receiver {
    /// A receiver on a free port that answers every request with `default`.
    pub fn start(default: Reply) -> Receiver {
        Self::serve(
            TcpListener::bind("127.0.0.1:0").expect("bind receiver"),
            default,
        )
    }

    /// A receiver on a given port (one that was closed until now).
    pub fn start_on(port: u16, default: Reply) -> Receiver {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("cannot bind the receiver again on port {port}: {e}"));
        Self::serve(listener, default)
    }

    fn serve(listener: TcpListener, default: Reply) -> Receiver {
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            script: Mutex::new(Script {
                next: VecDeque::new(),
                default,
            }),
            hits: Mutex::new(Vec::new()),
            arrived: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let s = s.clone();
                thread::spawn(move || handle(conn, &s));
            }
        });
        Receiver { addr, shared }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The URL to register as a webhook.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Answers the next requests with these, in order, before falling back to the default.
    pub fn then(&self, replies: impl IntoIterator<Item = Reply>) {
        let mut script = self.shared.script.lock().expect("script");
        script.next.extend(replies);
    }

    /// Changes the answer given once the scripted ones are used up.
    pub fn set_default(&self, reply: Reply) {
        self.shared.script.lock().expect("script").default = reply;
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.shared.hits.lock().expect("hits").clone()
    }

    /// Waits until at least `n` requests arrived and returns them all.
    pub fn wait_hits(&self, n: usize) -> Vec<Hit> {
        self.wait_hits_for(n, WAIT)
    }

    pub fn wait_hits_for(&self, n: usize, timeout: Duration) -> Vec<Hit> {
        let deadline = Instant::now() + timeout;
        let mut hits = self.shared.hits.lock().expect("hits");
        while hits.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "the receiver got {} request(s) within {timeout:?}, expected {n}",
                hits.len()
            );
            hits = self
                .shared
                .arrived
                .wait_timeout(hits, left)
                .expect("hits")
                .0;
        }
        hits.clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag and lets go of the port.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

fn handle(conn: TcpStream, shared: &Shared) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let Some(hit) = read_request(&conn) else {
        return;
    };
    if shared.stop.load(Ordering::SeqCst) {
        return;
    }
    let reply = {
        let mut script = shared.script.lock().expect("script");
        let default = script.default.clone();
        script.next.pop_front().unwrap_or(default)
    };
    {
        let mut hits = shared.hits.lock().expect("hits");
        hits.push(hit);
        shared.arrived.notify_all();
    }
    let until = Instant::now() + reply.delay;
    while Instant::now() < until {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        thread::sleep(Duration::from_millis(20).min(until - Instant::now()));
    }
    let mut out = format!(
        "HTTP/1.1 {} X\r\ncontent-length: {}\r\nconnection: close\r\n",
        reply.status,
        reply.body.len()
    );
    for (k, v) in &reply.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(&reply.body);
    let mut conn = conn;
    let _ = conn.write_all(out.as_bytes());
    let _ = conn.flush();
}

fn read_request(conn: &TcpStream) -> Option<Hit> {
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
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
    Some(Hit {
        method,
        path,
        headers,
        body,
        at: Instant::now(),
    })
}

/// A port nothing listens on (bound, then closed): connections to it are refused.
pub fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

// --- Signatures ----------------------------------------------------------------------------

/// The key a `whsec_` secret stands for.
pub fn key_of(secret: &str) -> Vec<u8> {
    let b64 = secret.strip_prefix("whsec_").expect("a whsec_ secret");
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64 key")
}

/// `v1,` + base64 HMAC-SHA256(key, "{id}.{ts}.{body}"), computed here independently of the crate.
pub fn expected_signature(key: &[u8], id: &str, ts: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    let mut msg = format!("{id}.{ts}.").into_bytes();
    msg.extend_from_slice(body);
    let tag = ring::hmac::sign(&key, &msg);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
    )
}

/// Checks a push's Standard Webhooks headers against `key`: one of the space-separated
/// signatures matches, and the timestamp is within a minute of now.
pub fn assert_signed(hit: &Hit, key: &[u8]) {
    let id = hit.id();
    let ts = hit.header("webhook-timestamp").expect("webhook-timestamp");
    let ts_num: i64 = ts.parse().expect("numeric webhook-timestamp");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    assert!((ts_num - now).abs() <= 60, "timestamp {ts} vs now {now}");
    let header = hit.header("webhook-signature").expect("webhook-signature");
    let want = expected_signature(key, id, ts, &hit.body);
    assert!(
        header.split(' ').any(|s| s == want),
        "signature {header:?} does not match the expected {want:?}"
    );
}

// --- Reading what the server did -----------------------------------------------------------

/// Polls `f` until it returns `Some`, or fails with `what` after `WAIT`.
pub fn eventually<T>(what: &str, f: impl FnMut() -> Option<T>) -> T {
    crate::common::poll_until(WAIT, what, f)
}

/// Waits until no delivery is pending, so that what a receiver got is all it will get.
pub fn settle(s: &Server) {
    eventually("no pending delivery", || {
        let r = s.get("/v1/deliveries?status=pending");
        r.json["deliveries"]
            .as_array()
            .is_some_and(|d| d.is_empty())
            .then_some(())
    });
}

/// Registers an http agent and returns the response's `agent`.
pub fn register(s: &Server, address: &str, url: &str, extra: Value) -> Value {
    let mut body = serde_json::json!({
        "address": address,
        "delivery_mode": "http",
        "webhook_url": url,
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let r = s.post("/v1/agents", &body);
    assert_eq!(r.status, 200, "register {address}: {}", r.text);
    r.json["agent"].clone()
}

/// Registers an http agent without a secret and returns the generated one.
pub fn register_http(s: &Server, address: &str, url: &str, extra: Value) -> String {
    let agent = register(s, address, url, extra);
    agent["webhook_secret"]
        .as_str()
        .expect("a generated webhook_secret")
        .to_string()
}

pub fn intent(s: &Server, id: &str) -> Value {
    let r = s.get(&format!("/v1/intents/{id}"));
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["intent"].clone()
}

pub fn wait_intent_status(s: &Server, id: &str, status: &str) -> Value {
    eventually(&format!("intent {id} to be {status}"), || {
        let i = intent(s, id);
        (i["status"] == status).then_some(i)
    })
}

pub fn events(s: &Server, id: &str) -> Vec<Value> {
    let r = s.get(&format!("/v1/intents/{id}/events"));
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["events"].as_array().expect("events").clone()
}

pub fn event_types(s: &Server, id: &str) -> Vec<String> {
    events(s, id)
        .iter()
        .map(|e| e["event_type"].as_str().expect("event_type").to_string())
        .collect()
}

pub fn delivery(s: &Server, id: &str) -> Value {
    let r = s.get(&format!("/v1/deliveries/{id}"));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["ok"], true);
    r.json["delivery"].clone()
}

pub fn deliveries_of(s: &Server, intent_id: &str) -> Vec<Value> {
    let r = s.get(&format!("/v1/deliveries?intent_id={intent_id}"));
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["deliveries"].as_array().expect("deliveries").clone()
}

/// Waits until the delivery is no longer pending and is `status`.
pub fn wait_delivery(s: &Server, id: &str, status: &str) -> Value {
    eventually(&format!("delivery {id} to be {status}"), || {
        let d = delivery(s, id);
        (d["status"] == status).then_some(d)
    })
}

/// The attempts of a delivery.
pub fn attempts(d: &Value) -> Vec<Value> {
    d["attempts"].as_array().expect("attempts").clone()
}

/// A fresh agent address for one test.
pub fn address(name: &str) -> String {
    format!("agent://push/{name}-{}", &crate::common::uuid()[..8])
}
