//! Connections: the cap on how many are open at once, and how each is served.
//!
//! Under the cap a connection gets the API (its head within 10 s, keep-alive, the hang-up a
//! stream fires when it cuts a slow reader off). Past the cap a connection is answered at once
//! and closed: `GET /health` still answers, every other request gets 503 with `Retry-After`,
//! and one that sends no head within [`OVER_CAP_HEAD_TIMEOUT`] is closed. So clients holding
//! idle or half-sent connections cannot lock out `/health` or the operator, and the cap, kept
//! below the open-file limit, leaves descriptors for the database and for pushes.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONNECTION};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::response::Body;
use super::{limits, AppState};
use crate::Error;

/// Asks one connection's task (in `server`) to close its socket. The task waits on it beside
/// the connection; a stream's producer fires it when it cuts a slow reader off.
#[derive(Debug, Clone, Default)]
pub struct Hangup(Arc<Notify>);

impl Hangup {
    /// Asks for the connection to be closed (remembered if its task is not waiting yet).
    pub fn hang_up(&self) {
        self.0.notify_one();
    }

    /// Resolves once [`Hangup::hang_up`] was called.
    pub async fn requested(&self) {
        self.0.notified().await
    }
}

/// How long a connection past the cap may take to send its request head.
pub const OVER_CAP_HEAD_TIMEOUT: Duration = Duration::from_millis(500);

/// The count of open connections and its cap.
#[derive(Debug)]
pub struct Connections {
    open: Arc<AtomicUsize>,
    max: usize,
}

/// A connection's place under the cap; released when its task ends.
struct Place(Arc<AtomicUsize>);

impl Drop for Place {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Connections {
    pub fn new(max: usize) -> Connections {
        Connections {
            open: Arc::default(),
            max: max.max(1),
        }
    }

    /// Connections served now (those past the cap not counted).
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    pub fn max(&self) -> usize {
        self.max
    }

    fn admit(&self) -> Option<Place> {
        let prev = self.open.fetch_add(1, Ordering::AcqRel);
        if prev >= self.max {
            self.open.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Place(self.open.clone()))
    }
}

/// The cap for an open-file limit of `nofile`: at most `wanted`, and at most three quarters of
/// the limit, so that connections past the cap can still be answered and the database and the
/// push workers still get descriptors.
pub fn cap(wanted: usize, nofile: Option<u64>) -> usize {
    let room = nofile.map_or(usize::MAX, |n| {
        usize::try_from(n).unwrap_or(usize::MAX).saturating_mul(3) / 4
    });
    wanted.min(room).max(1)
}

/// Serves one accepted connection on its own task.
pub fn serve(state: &Arc<AppState>, stream: TcpStream, graceful: &GracefulShutdown) {
    let _ = stream.set_nodelay(true);
    let Some(place) = state.connections.admit() else {
        return refuse(state.clone(), stream);
    };
    let state = state.clone();
    // A stream that cuts off a slow reader closes the connection through this.
    let hangup = Hangup::default();
    let for_requests = hangup.clone();
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits::HEADER_READ_TIMEOUT)
        .max_buf_size(limits::MAX_HEAD_BYTES)
        .keep_alive(true)
        .serve_connection(
            TokioIo::new(stream),
            service_fn(move |mut req| {
                req.extensions_mut().insert(for_requests.clone());
                super::handle(state.clone(), req)
            }),
        );
    let conn = graceful.watch(conn);
    tokio::spawn(async move {
        let _place = place;
        tokio::select! {
            ended = conn => if let Err(e) = ended {
                tracing::debug!(error = %e, "connection ended with an error");
            },
            _ = hangup.requested() => {
                tracing::debug!("connection closed: its stream's reader was cut off");
            }
        }
    });
}

/// A connection past the cap: one request answered (`/health`, or 503), then closed.
fn refuse(state: Arc<AppState>, stream: TcpStream) {
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(OVER_CAP_HEAD_TIMEOUT)
        .max_buf_size(limits::MAX_HEAD_BYTES)
        .keep_alive(false)
        .serve_connection(
            TokioIo::new(stream),
            service_fn(move |req| over_cap(state.clone(), req)),
        );
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "connection past the cap ended with an error");
        }
    });
}

async fn over_cap(
    state: Arc<AppState>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let mut resp = if req.method() == Method::GET && req.uri().path() == "/health" {
        super::health_of(&state)
            .await
            .unwrap_or_else(Error::into_response)
    } else {
        tracing::debug!("request refused: too many open connections");
        Error::Unavailable {
            reason: format!(
                "the server holds {} connections, its limit (--max-connections); retry shortly",
                state.connections.max()
            ),
        }
        .into_response()
    };
    resp.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    super::response::secure(resp.headers_mut());
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_stays_below_the_open_file_limit() {
        assert_eq!(cap(10_000, Some(1024)), 768);
        assert_eq!(cap(10_000, Some(1 << 20)), 10_000);
        assert_eq!(cap(10_000, None), 10_000);
        assert_eq!(cap(0, Some(1024)), 1);
    }

    #[test]
    fn places_are_given_back() {
        let c = Connections::new(2);
        let a = c.admit().expect("first");
        let _b = c.admit().expect("second");
        assert!(c.admit().is_none());
        drop(a);
        assert!(c.admit().is_some());
    }
}
