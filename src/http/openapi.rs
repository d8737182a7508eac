//! `GET /openapi.json`: the OpenAPI 3.1 document of every route, `assets/openapi.json`, embedded
//! in the binary. Open like `/health`: a client needs it before it has a key. It is a static
//! file kept in step with the routing table by `tests/openapi.rs`; nothing here generates or
//! rewrites it.

use bytes::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::Response;

use super::response::Body;

/// The document, as written in `assets/openapi.json`.
pub const DOCUMENT: &str = include_str!("../../assets/openapi.json");

/// The document as a 200 `application/json` response (served from the binary, never copied).
/// The routing table's handler of `GET /openapi.json`.
pub async fn serve(_ctx: super::Ctx) -> Result<Response<Body>, crate::Error> {
    Ok(document())
}

pub fn document() -> Response<Body> {
    let mut resp = Response::new(Body::full(Bytes::from_static(DOCUMENT.as_bytes())));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}
