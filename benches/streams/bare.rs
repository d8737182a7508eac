//! The ceiling of the streams bench: a minimal broadcaster on bare hyper, in its own process, set
//! up like `axme serve` (see `common::serve_bare`). It keeps what an SSE server cannot do without
//! (a bounded queue per stream drained by the response body, as axme has) and nothing else:
//!
//! - `GET .../stream` opens an SSE response (`retry:` first) and registers its queue;
//! - `POST /poke/stream` queues the request body, as is, to every open stream, then answers 200;
//! - `GET /poll` parks until the next `POST /poke/poll`, then answers with that request's body.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, watch};

/// The hidden argument that turns the bench binary into the broadcaster.
pub const ARG: &str = "--axme-bench-bare-broadcaster";
/// Frames queued per stream, as `axme serve` does by default.
const QUEUE: usize = 256;

/// The open streams and the parked polls.
struct Hub {
    /// One queue per open stream; its response body holds the receiver.
    streams: Mutex<Vec<mpsc::Sender<Bytes>>>,
    /// Parked polls hold receivers and answer with the next value sent.
    polls: watch::Sender<Bytes>,
}

/// Serves until killed or until the parent closes our stdin.
pub fn serve() -> Result<(), String> {
    let hub = Arc::new(Hub {
        streams: Mutex::new(Vec::new()),
        polls: watch::channel(Bytes::new()).0,
    });
    super::common::serve_bare(move |req| answer(hub.clone(), req))
}

/// A whole body, or a stream of chunks from a queue.
enum Body {
    Full(Option<Bytes>),
    Stream(mpsc::Receiver<Bytes>),
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Body::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Body::Stream(rx) => rx.poll_recv(cx).map(|c| c.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Body::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Body::Full(None) => SizeHint::with_exact(0),
            Body::Stream(_) => SizeHint::default(),
        }
    }
}

fn respond(status: StatusCode, content_type: &'static str, body: Body) -> Response<Body> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

fn json(text: String) -> Response<Body> {
    respond(
        StatusCode::OK,
        "application/json",
        Body::Full(Some(text.into())),
    )
}

async fn answer(hub: Arc<Hub>, req: Request<Incoming>) -> Result<Response<Body>, hyper::Error> {
    let path = req.uri().path().to_string();
    match (req.method().clone(), path.as_str()) {
        (Method::GET, p) if p.ends_with("/stream") => {
            let (tx, rx) = mpsc::channel(QUEUE);
            let _ = tx.try_send(Bytes::from_static(b"retry: 2000\n\n"));
            if let Ok(mut streams) = hub.streams.lock() {
                streams.push(tx);
            }
            let mut resp = respond(StatusCode::OK, "text/event-stream", Body::Stream(rx));
            resp.headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            Ok(resp)
        }
        (Method::GET, "/poll") => {
            let mut poked = hub.polls.subscribe();
            if poked.changed().await.is_err() {
                return Ok(respond(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    Body::Full(None),
                ));
            }
            let body = poked.borrow_and_update().clone();
            Ok(respond(
                StatusCode::OK,
                "application/json",
                Body::Full(Some(body)),
            ))
        }
        (Method::POST, "/poke/stream") => {
            let frame = req.into_body().collect().await?.to_bytes();
            let mut open = 0;
            if let Ok(mut streams) = hub.streams.lock() {
                // A full queue drops the frame; a closed one leaves the list.
                streams.retain(|tx| {
                    !matches!(tx.try_send(frame.clone()), Err(TrySendError::Closed(_)))
                });
                open = streams.len();
            }
            Ok(json(format!(r#"{{"ok":true,"streams":{open}}}"#)))
        }
        (Method::POST, "/poke/poll") => {
            let body = req.into_body().collect().await?.to_bytes();
            let parked = hub.polls.receiver_count();
            hub.polls.send_replace(body);
            Ok(json(format!(r#"{{"ok":true,"polls":{parked}}}"#)))
        }
        _ => Ok(respond(
            StatusCode::NOT_FOUND,
            "text/plain",
            Body::Full(None),
        )),
    }
}
