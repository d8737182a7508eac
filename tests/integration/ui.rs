//! The web dashboard's files: served at `/ui` and `/ui/{file}` without a key, with their content
//! types, a strict content security policy, an ETag that answers 304, a 404 for any other name;
//! and the API they call still wants its key.

use crate::common;

use common::*;

fn get_anon(s: &Server, path: &str) -> Resp {
    send(s.req_anon("GET", path), None)
}

#[test]
fn the_page_and_its_files_are_served_without_a_key() {
    let s = Server::start();
    for (path, content_type, needle) in [
        (
            "/ui",
            "text/html; charset=utf-8",
            "<script src=\"/ui/app.js\"",
        ),
        ("/ui/", "text/html; charset=utf-8", "id=\"login-form\""),
        ("/ui/index.html", "text/html; charset=utf-8", "<title>"),
        (
            "/ui/app.js",
            "text/javascript; charset=utf-8",
            "/v1/events/stream",
        ),
        (
            "/ui/app.css",
            "text/css; charset=utf-8",
            "prefers-color-scheme",
        ),
        ("/ui/favicon.svg", "image/svg+xml", "<svg"),
    ] {
        let r = get_anon(&s, path);
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        assert_eq!(r.header("content-type"), Some(content_type), "{path}");
        assert!(r.text.contains(needle), "{path} lacks {needle:?}");
        let csp = r.header("content-security-policy").unwrap_or("");
        assert!(csp.contains("default-src 'self'"), "{path}: {csp:?}");
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(r.header("cache-control"), Some("no-cache"), "{path}");
        assert!(
            r.header("etag").is_some_and(|e| e.starts_with('"')),
            "{path}"
        );
    }
}

#[test]
fn the_page_has_no_inline_script_or_style_for_the_policy_to_block() {
    let s = Server::start();
    let html = get_anon(&s, "/ui").text;
    assert!(!html.contains("<script>") && !html.contains(" style="));
    assert!(!html.contains("onclick=") && !html.contains("<style"));
    for src in ["/ui/app.js", "/ui/app.css", "/ui/favicon.svg"] {
        assert!(html.contains(src), "the page does not load {src}");
    }
}

#[test]
fn a_matching_etag_answers_304_and_another_the_file() {
    let s = Server::start();
    let first = get_anon(&s, "/ui/app.js");
    let etag = first.header("etag").expect("etag").to_string();
    let r = send(
        s.req_anon("GET", "/ui/app.js")
            .set("if-none-match", &format!("\"other\", {etag}")),
        None,
    );
    assert_eq!(r.status, 304);
    assert!(r.text.is_empty());
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    let r = send(
        s.req_anon("GET", "/ui/app.js")
            .set("if-none-match", "\"stale\""),
        None,
    );
    assert_eq!((r.status, r.text.len()), (200, first.text.len()));
    let css = get_anon(&s, "/ui/app.css");
    assert_ne!(css.header("etag"), Some(etag.as_str()));
}

#[test]
fn unknown_dashboard_files_are_404() {
    let s = Server::start();
    for path in ["/ui/nope.js", "/ui/..%2Fsrc%2Fmain.rs", "/ui/APP.JS"] {
        let r = get_anon(&s, path);
        assert_error(&r, 404, "not_found");
    }
    let r = send(s.req_anon("POST", "/ui"), Some("{}".into()));
    assert_error(&r, 401, "auth_failed");
}

#[test]
fn the_api_the_page_calls_still_needs_the_key() {
    let s = Server::start();
    for path in [
        "/v1/intents?limit=1",
        "/v1/events/stream",
        "/v1/agents",
        "/v1/deliveries",
        "/v1/capabilities",
    ] {
        assert_error(&get_anon(&s, path), 401, "auth_failed");
    }
    let r = send(
        s.req_anon("GET", "/v1/intents?limit=1")
            .set("x-api-key", "axme_wrong_key"),
        None,
    );
    assert_error(&r, 401, "auth_failed");
    assert_eq!(s.get("/v1/intents?limit=1").status, 200);
}
