//! Building responses: JSON success bodies, and the one conversion from [`Error`] to an HTTP
//! status and the AXME error body
//! `{"error":{"code","message","details"},"detail"}`. Handlers return `Result` and never build
//! error responses themselves.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use hyper::header::{HeaderValue, ALLOW, CONNECTION, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Response, StatusCode};
use serde::Serialize;
use serde_json::json;
use tokio::sync::mpsc;

use super::stream_queue;
use crate::service::idempotency::Rendered;
use crate::Error;

/// A response body: a whole buffer, or a stream of chunks (Server-Sent Events) fed by a
/// producer task through a queue bounded in bytes (`stream_queue`).
pub enum Body {
    Full(Option<Bytes>),
    /// The producer task holds the sender; when the client goes away hyper drops this body, the
    /// receiver closes, and the producer sees it. `_slot` releases the connection's place in
    /// the stream cap when dropped.
    Stream {
        chunks: stream_queue::Receiver,
        _slot: Box<dyn Send + Sync>,
    },
    /// A download (the backup) fed from a blocking thread through a small channel.
    Download(mpsc::Receiver<Bytes>),
}

impl Body {
    pub fn full(b: impl Into<Bytes>) -> Body {
        Body::Full(Some(b.into()))
    }
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
            Body::Stream { chunks, .. } => {
                chunks.poll_recv(cx).map(|c| c.map(|b| Ok(Frame::data(b))))
            }
            Body::Download(chunks) => chunks.poll_recv(cx).map(|c| c.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Body::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Body::Full(None) => SizeHint::with_exact(0),
            Body::Stream { .. } | Body::Download(_) => SizeHint::default(),
        }
    }
}

/// Headers every response carries: no content sniffing (a JSON answer that reflects input is
/// never rendered as HTML).
pub fn secure(h: &mut hyper::HeaderMap) {
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
}

/// A JSON response with the given status.
pub fn json_bytes(status: StatusCode, body: Vec<u8>) -> Response<Body> {
    let mut resp = Response::new(Body::full(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// A 200 JSON response of a wire value.
pub fn ok<T: Serialize>(value: &T) -> Result<Response<Body>, Error> {
    Ok(json_bytes(StatusCode::OK, serde_json::to_vec(value)?))
}

/// Renders a wire value as a 200 for storing (idempotency) and sending.
pub fn render<T: Serialize>(value: &T) -> Result<Rendered, Error> {
    Ok(Rendered {
        status: 200,
        body: serde_json::to_vec(value)?,
        replayed: false,
    })
}

/// Turns a rendered (possibly replayed) response into a hyper response.
pub fn from_rendered(r: Rendered) -> Response<Body> {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK);
    let mut resp = json_bytes(status, r.body);
    if r.replayed {
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    resp
}

impl Error {
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Malformed { .. } | Error::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Error::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Error::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Error::Forbidden { .. } => StatusCode::FORBIDDEN,
            Error::NotFound { .. } => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Error::Conflict { .. } => StatusCode::CONFLICT,
            Error::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::RateLimited { .. } | Error::TooMany { .. } | Error::QuotaExceeded { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Error::UriTooLong { .. } => StatusCode::URI_TOO_LONG,
            Error::RequestTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Error::HeadTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Error::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The AXME error response for this error.
    pub fn into_response(self) -> Response<Body> {
        let status = self.status();
        if let Error::Internal { reason } = &self {
            tracing::error!(%reason, "internal error");
        }
        let body = error_body(&self);
        let mut resp = json_bytes(status, body.to_string().into_bytes());
        if let Error::MethodNotAllowed { allow } = &self {
            if let Ok(v) = HeaderValue::from_str(&allow.join(", ")) {
                resp.headers_mut().insert(ALLOW, v);
            }
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
        match &self {
            Error::RateLimited { limit, retry_after } => {
                let h = resp.headers_mut();
                h.insert(RETRY_AFTER, HeaderValue::from(*retry_after));
                h.insert("x-ratelimit-limit", HeaderValue::from(*limit));
                h.insert("x-ratelimit-remaining", HeaderValue::from(0u64));
                h.insert("x-ratelimit-reset", HeaderValue::from(*retry_after));
            }
            Error::TooMany { .. } | Error::QuotaExceeded { .. } => {
                resp.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from_static("5"));
            }
            // The rest of the body may still come; the connection cannot be reused.
            Error::RequestTimeout { .. } => {
                resp.headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        resp
    }
}

/// The AXME error body of an error: `{"error": {code, message, details}, "detail"}` (also the
/// `structuredContent` of a failed MCP tool call).
pub fn error_body(e: &Error) -> serde_json::Value {
    let details = match e {
        Error::Invalid { field, reason, .. } | Error::BadRequest { field, reason } => {
            json!({"field": field, "reason": reason})
        }
        Error::TooLarge { field, limit } => json!({"field": field, "limit_bytes": limit}),
        Error::RateLimited { limit, retry_after } => {
            json!({"limit_per_second": limit, "retry_after_seconds": retry_after})
        }
        Error::NotFound { what, id } => json!({"resource": what, "id": id}),
        Error::RequestTimeout { seconds } => json!({"limit_seconds": seconds}),
        Error::QuotaExceeded {
            limit, value, flag, ..
        } => json!({"limit": limit, "value": value, "flag": flag}),
        _ => json!({}),
    };
    let message = e.to_string();
    json!({
        "error": {"code": e.code(), "message": message, "details": details},
        "detail": message,
    })
}
