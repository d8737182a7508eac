//! The two endpoints the pushes go to, and how the bench talks to them.
//!
//! - **The receiver** is this binary re-executed with [`ARG`]: a bare hyper HTTP/1.1 server set
//!   up like `axme serve` (`common::serve_bare`) that takes each webhook's arrival time (the
//!   wall clock, `CLOCK_REALTIME`, which the bench process reads too) as soon as hyper hands it
//!   the request, reads the body, finds the first `"intent_id":"…"` in it and answers `200` with
//!   an empty body at once. It lives in its own process so that its CPU is counted apart from the
//!   load generator's. Paths under `/__bench/` are the bench's: the number of webhooks so far,
//!   the arrivals since the last call (draining them), and the first webhook with its signature
//!   headers.
//! - **The black hole** runs on a thread of the bench: it accepts connections, reads whatever
//!   comes and never answers, like an endpoint that hangs. It counts the connections it holds.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};

use super::{common, now_ns};

/// The hidden argument that turns this binary into the receiver.
pub const ARG: &str = "--axme-bench-push-receiver";
/// An intent id: a hyphenated UUID.
pub type IntentId = [u8; 36];

/// One webhook as the receiver saw it.
#[derive(Clone, Copy)]
pub struct Arrival {
    /// The first `intent_id` in the body (zeros if there was none).
    pub intent: IntentId,
    /// When hyper handed the request over, Unix ns.
    pub at_ns: i64,
}

/// The first webhook received, kept to check its signature and to build the ceiling's requests.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Sample {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub user_agent: String,
    pub body: String,
}

#[derive(Default)]
struct State {
    arrivals: Mutex<Vec<Arrival>>,
    count: AtomicU64,
    sample: Mutex<Option<Sample>>,
}

/// Serves until killed or until the parent closes our stdin.
pub fn serve() -> Result<(), String> {
    let state = Arc::new(State::default());
    common::serve_bare(move |req| handle(state.clone(), req))
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let at_ns = now_ns();
    if let Some(control) = req.uri().path().strip_prefix("/__bench/") {
        let body = match control {
            "count" => state.count.load(Ordering::Relaxed).to_string(),
            "arrivals" => arrivals_text(&state),
            "sample" => {
                let sample = state.sample.lock().map(|s| s.clone()).unwrap_or_default();
                serde_json::to_string(&sample.unwrap_or_default()).unwrap_or_default()
            }
            _ => String::new(),
        };
        return Ok(Response::new(Full::new(Bytes::from(body))));
    }
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let wants_sample = state.sample.lock().is_ok_and(|s| s.is_none());
    let headers = wants_sample.then(|| {
        [
            header("webhook-id"),
            header("webhook-timestamp"),
            header("webhook-signature"),
            header("user-agent"),
        ]
    });
    let body = req.into_body().collect().await?.to_bytes();
    let mut intent = [0u8; 36];
    if let Some(at) = find(&body, br#""intent_id":""#) {
        if let Some(id) = body.get(at + 13..at + 13 + 36) {
            intent.copy_from_slice(id);
        }
    }
    if let Ok(mut arrivals) = state.arrivals.lock() {
        arrivals.push(Arrival { intent, at_ns });
    }
    state.count.fetch_add(1, Ordering::Relaxed);
    if let Some([id, timestamp, signature, user_agent]) = headers {
        if let Ok(mut sample) = state.sample.lock() {
            sample.get_or_insert(Sample {
                id,
                timestamp,
                signature,
                user_agent,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
    }
    Ok(Response::new(Full::new(Bytes::new())))
}

/// Takes the arrivals so far, one `INTENT_ID AT_NS` line each.
fn arrivals_text(state: &State) -> String {
    let taken = state
        .arrivals
        .lock()
        .map(|mut a| std::mem::take(&mut *a))
        .unwrap_or_default();
    let mut out = String::with_capacity(taken.len() * 58);
    for a in taken {
        out.push_str(&String::from_utf8_lossy(&a.intent));
        out.push(' ');
        out.push_str(&a.at_ns.to_string());
        out.push('\n');
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The bench's side of the receiver's `/__bench/` paths.
pub mod control {
    use super::*;

    /// The body of `GET /__bench/{what}` from the receiver, on a fresh connection.
    pub fn get(receiver: SocketAddr, what: &str) -> Result<String, String> {
        let mut stream = std::net::TcpStream::connect(receiver)
            .map_err(|e| format!("connecting to the receiver: {e}"))?;
        let req = format!("GET /__bench/{what} HTTP/1.1\r\nhost: {receiver}\r\n\r\n");
        let mut buf = bytes::BytesMut::new();
        let resp = common::http::exchange_blocking(&mut stream, req.as_bytes(), &mut buf)
            .map_err(|e| format!("asking the receiver for {what}: {e}"))?;
        Ok(String::from_utf8_lossy(&buf[resp.body_at..resp.len]).into_owned())
    }

    /// Webhooks received so far.
    pub fn count(receiver: SocketAddr) -> Result<u64, String> {
        get(receiver, "count")?
            .trim()
            .parse()
            .map_err(|e| format!("the receiver's count: {e}"))
    }

    /// The arrivals since the last call.
    pub fn arrivals(receiver: SocketAddr) -> Result<Vec<Arrival>, String> {
        let text = get(receiver, "arrivals")?;
        text.lines()
            .map(|line| {
                let bad = || format!("a bad arrival line: {line:?}");
                let (id, at) = line.split_once(' ').ok_or_else(bad)?;
                let intent: IntentId = id.as_bytes().try_into().map_err(|_| bad())?;
                let at_ns = at.parse().map_err(|_| bad())?;
                Ok(Arrival { intent, at_ns })
            })
            .collect()
    }

    pub fn sample(receiver: SocketAddr) -> Result<Sample, String> {
        serde_json::from_str(&get(receiver, "sample")?).map_err(|e| format!("the sample: {e}"))
    }
}

/// An endpoint that accepts connections and never answers.
pub struct BlackHole {
    pub addr: SocketAddr,
    /// Connections open now.
    pub open: Arc<AtomicUsize>,
    /// Connections the sender gave up on (closed), so far.
    pub closed: Arc<AtomicU64>,
}

impl BlackHole {
    /// Starts it on a thread of its own, for the life of the process.
    pub fn start() -> Result<BlackHole, String> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .map_err(|e| format!("binding the black hole: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("the black hole's address: {e}"))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("the black hole's listener: {e}"))?;
        let (open, closed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicU64::new(0)));
        let (o, c) = (open.clone(), closed.clone());
        std::thread::Builder::new()
            .name("black-hole".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                if let Ok(rt) = rt {
                    rt.block_on(swallow(listener, o, c));
                }
            })
            .map_err(|e| format!("starting the black hole: {e}"))?;
        Ok(BlackHole { addr, open, closed })
    }
}

async fn swallow(listener: std::net::TcpListener, open: Arc<AtomicUsize>, closed: Arc<AtomicU64>) {
    use tokio::io::AsyncReadExt;
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let (open, closed) = (open.clone(), closed.clone());
        open.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
            open.fetch_sub(1, Ordering::Relaxed);
            closed.fetch_add(1, Ordering::Relaxed);
        });
    }
}
