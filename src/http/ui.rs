//! The web dashboard: the static files of `assets/`, compiled into the binary, served at `GET /ui`
//! (the page) and `GET /ui/{file}` (its script, styles and icon). They hold no data and are served
//! without an API key; the page asks for one and sends it with every API call it makes, so the
//! API itself stays behind its key. This module never touches the store.
//!
//! Every file goes out with a strong `ETag` (a hash of its bytes) and `cache-control: no-cache`:
//! a browser keeps its copy and revalidates it with `If-None-Match` (a 304 with no body), so a new
//! binary's files are picked up at once. A strict `content-security-policy` allows scripts,
//! styles and connections to this origin only and no inline code, so the page cannot be made to
//! run anything it did not ship with.

use std::sync::OnceLock;

use hyper::header::{
    HeaderMap, HeaderValue, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG,
    IF_NONE_MATCH, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use hyper::{Response, StatusCode};

use super::response::Body;
use crate::Error;

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

/// The page's own name: `GET /ui` serves it.
const INDEX: &str = "index.html";

const ASSETS: &[Asset] = &[
    Asset {
        name: INDEX,
        content_type: "text/html; charset=utf-8",
        bytes: include_bytes!("../../assets/index.html"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/app.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../assets/app.css"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        bytes: include_bytes!("../../assets/favicon.svg"),
    },
];

/// Same origin only, no inline script or style, no plugins, no framing, no `<base>` games.
pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'; object-src 'none'";

/// The entity tag of each asset, in the order of `ASSETS`: the first 128 bits of its SHA-256.
fn etags() -> &'static [String] {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let digest = ring::digest::digest(&ring::digest::SHA256, a.bytes);
                let hex: String = digest.as_ref()[..16]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                format!("\"{hex}\"")
            })
            .collect()
    })
}

/// Whether an `If-None-Match` header names `etag` (or is `*`). Weak tags compare by their value,
/// as RFC 9110 asks for this header.
fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim())
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

/// `GET /ui` (no path parameter: the page) and `GET /ui/{file}`: the asset, a 304 when the
/// client's copy is current, or 404 for a name that is not one of the dashboard's files.
/// The routing table's handler of `/ui` and `/ui/{file}`.
pub async fn serve_ctx(ctx: super::Ctx) -> Result<Response<Body>, Error> {
    serve(&ctx.params, &ctx.headers)
}

pub fn serve(params: &[String], headers: &HeaderMap) -> Result<Response<Body>, Error> {
    let name = params.first().map_or(INDEX, String::as_str);
    let Some(i) = ASSETS.iter().position(|a| a.name == name) else {
        return Err(Error::NotFound {
            what: "dashboard file",
            id: name.to_string(),
        });
    };
    let asset = &ASSETS[i];
    let etag = &etags()[i];
    let mut resp = if not_modified(headers, etag) {
        let mut r = Response::new(Body::Full(None));
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        Response::new(Body::full(asset.bytes))
    };
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(ETAG, v);
    }
    h.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY_VALUE),
    );
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_a_distinct_quoted_etag() {
        let tags = etags();
        assert_eq!(tags.len(), ASSETS.len());
        for t in tags {
            assert!(
                t.len() == 34 && t.starts_with('"') && t.ends_with('"'),
                "{t}"
            );
        }
        let mut unique = tags.to_vec();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), tags.len());
    }

    #[test]
    fn if_none_match_lists_and_weak_tags() {
        let tag = "\"abc\"";
        let mut h = HeaderMap::new();
        assert!(!not_modified(&h, tag));
        h.insert(IF_NONE_MATCH, HeaderValue::from_static("\"x\", W/\"abc\""));
        assert!(not_modified(&h, tag));
        h.insert(IF_NONE_MATCH, HeaderValue::from_static("\"abcd\""));
        assert!(!not_modified(&h, tag));
        h.insert(IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(not_modified(&h, tag));
    }
}
