//! The decision page of a task email's magic link, part of the dashboard (`/ui/decide/{token}`):
//! the task and two buttons (approve, reject), an optional comment and, for a task with a
//! form, its fields as JSON. Served without a key (the token is the credential) as plain HTML
//! with no script; the page never sends its address on (no referrer) and is never cached.
//! A link used, expired or whose task ended gets a page that says exactly that (410).

use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde_json::{Map, Value};

use super::request::{self, Query};
use super::response::Body;
use super::{limits, Ctx};
use crate::service::email_links::{self, LinkState, LinkView};
use crate::Error;

type Result = std::result::Result<Response<Body>, Error>;

const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// `GET /ui/decide/{token}`.
pub async fn page(ctx: Ctx) -> Result {
    let token = ctx.param(0).to_string();
    let view = email_links::view(&ctx.state.store, token).await;
    Ok(match view {
        Ok(v) => render(&v, None),
        Err(e) => failure(&e),
    })
}

/// `POST /ui/decide/{token}` with the page's form (`outcome`, `comment`, `form`).
pub async fn decide(ctx: Ctx, body: Incoming) -> Result {
    let token = ctx.param(0).to_string();
    let raw =
        request::body_bytes(body, &ctx.headers, limits::SMALL_BODY_BYTES, ctx.deadline).await?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let fields = Query::parse(Some(&text))?;
    let outcome = fields.get("outcome").unwrap_or("").to_string();
    let mut form = match fields.get("form").map(str::trim).filter(|f| !f.is_empty()) {
        None => Map::new(),
        Some(f) => match serde_json::from_str::<Value>(f) {
            Ok(Value::Object(m)) => m,
            _ => return Ok(failure(&Error::invalid("form", "must be a JSON object"))),
        },
    };
    if let Some(c) = fields.get("comment").filter(|c| !c.trim().is_empty()) {
        form.insert("comment".into(), Value::String(c.to_string()));
    }
    let chosen = outcome.clone();
    let decided = email_links::decide(&ctx.state.store, token.clone(), outcome, form).await;
    match decided {
        Ok((true, v)) => {
            let main = format!(
                "<h1>{}</h1><p class=done>Recorded: {}. Thank you; this link is now used.</p>",
                esc(&v.title),
                esc(&chosen)
            );
            Ok(html(&esc(&v.title), &main))
        }
        Ok((false, v)) => Ok(render(&v, None)),
        // A refused form: the page again, with the reason; the link stays good.
        Err(e @ Error::Invalid { .. }) => match email_links::view(&ctx.state.store, token).await {
            Ok(v) => Ok(with_status(render(&v, Some(&e.to_string())), 422)),
            Err(e) => Ok(failure(&e)),
        },
        Err(e) => Ok(failure(&e)),
    }
}

fn with_status(mut r: Response<Body>, status: u16) -> Response<Body> {
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    r
}

fn render(v: &LinkView, problem: Option<&str>) -> Response<Body> {
    let title = esc(&v.title);
    let mut main = format!("<h1>{title}</h1>");
    if let Some(d) = &v.description {
        main.push_str(&format!("<p>{}</p>", esc(d)));
    }
    let status = match &v.state {
        LinkState::Open => {
            if let Some(p) = problem {
                main.push_str(&format!("<p class=problem>Not recorded: {}</p>", esc(p)));
            }
            let form = match &v.form_schema {
                Some(schema) => format!(
                    "<label>The task's form, as JSON (its schema: <code>{}</code>)\
                     <textarea name=form rows=5>{{}}</textarea></label>",
                    esc(&schema.to_string())
                ),
                None => String::new(),
            };
            main.push_str(&format!(
                "<form method=post>{form}<label>Comment (optional)\
                 <textarea name=comment rows=3></textarea></label>\
                 <button name=outcome value=approved>Approve</button> \
                 <button name=outcome value=rejected>Reject</button></form>\
                 <p class=note>For {}. This link works once, until {} (UTC).</p>",
                esc(&v.email),
                esc(&v.expires_at)
            ));
            200
        }
        LinkState::Used(at) => {
            main.push_str(&format!(
                "<p class=done>This link was used at {} (UTC): the decision is recorded. \
                 A link decides once.</p>",
                esc(at)
            ));
            410
        }
        LinkState::Expired(at) => {
            main.push_str(&format!(
                "<p class=problem>This link expired at {} (UTC). Ask for the task again, \
                 or decide it in the dashboard.</p>",
                esc(at)
            ));
            410
        }
        LinkState::Closed(status) => {
            main.push_str(&format!(
                "<p class=done>This task no longer waits for a decision (it is {status}).</p>"
            ));
            410
        }
    };
    with_status(html(&title, &main), status)
}

fn failure(e: &Error) -> Response<Body> {
    let (status, text) = match e {
        Error::NotFound { .. } => (
            404,
            "This link is not known. Check that it was copied whole.",
        ),
        Error::Invalid { .. } | Error::Malformed { .. } | Error::BadRequest { .. } => {
            (422, "The decision could not be read.")
        }
        _ => (500, "The decision could not be recorded; try again."),
    };
    let main = format!("<h1>Task</h1><p class=problem>{}</p>", esc(text));
    with_status(html("Task", &main), status)
}

fn html(title: &str, main: &str) -> Response<Body> {
    let page = format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8>\
         <meta name=viewport content=\"width=device-width\"><meta name=referrer content=no-referrer>\
         <title>{title} · axme</title><style>body{{font:16px system-ui,sans-serif;max-width:36em;\
         margin:2em auto;padding:0 1em}}label{{display:block;margin:1em 0}}textarea{{width:100%}}\
         button{{font-size:1em;padding:.4em 1.2em}}.problem{{color:#a00}}.note{{color:#666}}</style>\
         </head><body><main>{main}</main></body></html>"
    );
    let mut r = Response::new(Body::full(page));
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    r
}

/// HTML-escapes text.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
