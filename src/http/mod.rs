//! The HTTP layer: turns requests into calls of the service and results into AXME wire JSON.
//! It owns routing (`router`), request reading (`request`), wire types (`wire`) and the one
//! error-to-response conversion (`response`). It never runs SQL and never decides a lifecycle
//! rule; handlers only await the store's channels, so no tokio worker ever blocks on SQLite.

mod admin;
mod agents;
mod claims;
pub mod connections;
mod firehose;
pub(crate) mod inbox;
mod intents;
mod keys;
pub(crate) mod limits;
mod mcp;
mod media;
pub(crate) mod metrics;
mod openapi;
pub mod request;
pub(crate) mod response;
pub mod router;
mod scenarios;
mod schemas;
mod service_accounts;
pub(crate) mod sse;
pub(crate) mod stream_queue;
mod streams;
mod ui;
mod users;
mod webhooks;
pub(crate) mod wire;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response};
use serde_json::Value;

use self::request::Query;
use self::response::Body;
use self::router::{Auth, BodyLimit, Lookup};
use crate::service::auth::{Keys, Principal};
use crate::service::idempotency::Scope;
use crate::service::operator;
use crate::store::Store;
use crate::Error;

/// Size limits of request bodies.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The largest `payload` of an intent, in bytes of JSON.
    pub max_payload_bytes: usize,
    /// The largest request body: the payload limit plus room for the other fields.
    pub max_body_bytes: usize,
    /// How long a request's body may take to arrive after its head (408 after that).
    pub request_timeout: std::time::Duration,
    /// Requests one agent key may have in flight at once (429 past it).
    pub max_in_flight_per_key: usize,
    /// Active webhook subscriptions one owner may hold (429 past it; 0: no cap).
    pub max_subscriptions_per_owner: usize,
    /// Payload bytes the live intents of one agent key may hold (429 past it; 0: no quota).
    pub max_live_bytes_per_key: u64,
}

/// The default of `--max-live-bytes-per-key`: 1 GiB of live payloads per agent key.
pub const DEFAULT_LIVE_BYTES_PER_KEY: u64 = 1024 * 1024 * 1024;

impl Limits {
    pub fn for_payload(max_payload_bytes: usize) -> Limits {
        Limits {
            max_payload_bytes,
            max_body_bytes: max_payload_bytes + 64 * 1024,
            request_timeout: std::time::Duration::from_secs(30),
            max_in_flight_per_key: 256,
            max_subscriptions_per_owner: 100,
            max_live_bytes_per_key: DEFAULT_LIVE_BYTES_PER_KEY,
        }
    }
}

/// What every request handler shares.
pub struct AppState {
    pub store: Store,
    pub keys: Arc<Keys>,
    pub limits: Limits,
    pub streams: sse::StreamSettings,
    /// Store reads shared by streams woken by the same commit.
    pub shared_reads: Arc<sse::SharedReads<sse::Fetched>>,
    /// Event reads shared by long polls woken by the same commit.
    pub shared_events: Arc<sse::SharedReads<Vec<crate::store::events::EventRow>>>,
    pub gauges: sse::Gauges,
    /// Requests, push outcomes and the rest, recorded as they happen and read by `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// `/metrics` is served without an API key.
    pub metrics_public: bool,
    /// Retry policy of pushes (replays give deliveries a fresh budget from it).
    pub push_policy: crate::service::deliveries::RetryPolicy,
    /// Becomes `true` when the server shuts down; `server::Server::run` holds the sender.
    /// Streams and long polls end on it.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// Requests per second of each agent key.
    pub rate: limits::RateLimiter,
    /// Open streams of each agent key.
    pub per_key_streams: Arc<limits::PerKey>,
    /// Waiting long polls per agent key, under `streams.max_waiters_per_key`.
    pub per_key_waiters: Arc<limits::PerKey>,
    /// Requests in flight per agent key, under `limits.max_in_flight_per_key`.
    pub per_key_in_flight: Arc<limits::PerKey>,
    /// Open connections, under the connection cap.
    pub connections: connections::Connections,
    /// The server's public URL (`--public-url`), the base of invite and upload links; set once,
    /// from the bound address when the flag is not given (`server::Server::run`).
    pub public_url: std::sync::OnceLock<String>,
    /// Where uploads live, how large one may be, what all may hold.
    pub media: crate::service::media::MediaSettings,
}

impl AppState {
    /// The base of links this server hands out, without a trailing `/`.
    pub fn public_url(&self) -> &str {
        self.public_url
            .get()
            .map_or("http://127.0.0.1:8080", String::as_str)
    }
}

/// One request's context after routing and authentication.
pub struct Ctx {
    /// The routing table's row of this request.
    pub spec: &'static router::Spec,
    pub state: Arc<AppState>,
    pub principal: Arc<Principal>,
    pub params: Vec<String>,
    pub query: Query,
    pub headers: HeaderMap,
    /// Closes this request's connection (set by `server` on every connection).
    pub hangup: Option<connections::Hangup>,
    /// When the body must have arrived.
    pub deadline: request::Deadline,
}

impl Ctx {
    /// The `i`-th path parameter (the router guarantees it exists).
    pub fn param(&self, i: usize) -> &str {
        self.params.get(i).map(String::as_str).unwrap_or("")
    }

    /// The JSON body, within the route's size limit (only routes that carry an intent's payload,
    /// result or error get the large one) and nesting limit.
    pub async fn json(&self, body: Incoming) -> Result<Value, Error> {
        let limit = match self.spec.body {
            BodyLimit::Large => self.state.limits.max_body_bytes,
            BodyLimit::Small => limits::SMALL_BODY_BYTES.min(self.state.limits.max_body_bytes),
        };
        let v = request::json_body(body, &self.headers, limit, self.deadline).await?;
        if limits::depth(&v) > limits::MAX_JSON_DEPTH {
            return Err(Error::Malformed {
                reason: format!(
                    "the JSON nests deeper than {} levels",
                    limits::MAX_JSON_DEPTH
                ),
            });
        }
        Ok(v)
    }

    pub fn idempotency(&self, endpoint: String, body: &Value) -> Result<Option<Scope>, Error> {
        request::idempotency_scope(&self.headers, &self.principal, endpoint, body)
    }
}

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static X_TRACE_ID: HeaderName = HeaderName::from_static("x-trace-id");

/// The service function of every connection. Each request is counted and timed in the metrics
/// and logged in one line (never with its credential or body).
pub async fn handle(
    state: Arc<AppState>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let started = Instant::now();
    let request_id = id_header(req.headers(), &X_REQUEST_ID);
    let trace_id = id_header(req.headers(), &X_TRACE_ID);
    let matched = router::lookup(req.method().as_str(), req.uri().path());
    let route = match &matched {
        Lookup::Found(spec, _) => Some(spec.route as usize),
        _ => None,
    };
    let method = req.method().clone();
    let path = logged_path(route, req.uri().path());
    let metrics = state.metrics.clone();
    let mut resp = match dispatch(state, req, matched).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    let status = resp.status().as_u16();
    let elapsed = started.elapsed();
    metrics.http.observe(route, status, elapsed);
    tracing::info!(
        method = method.as_str(),
        route = metrics.http.name(route),
        path,
        status,
        latency_ms = elapsed.as_micros() as f64 / 1000.0,
        trace_id = trace_id.to_str().unwrap_or("-"),
        request_id = request_id.to_str().unwrap_or("-"),
        "request"
    );
    let h = resp.headers_mut();
    h.insert(X_REQUEST_ID.clone(), request_id);
    h.insert(X_TRACE_ID.clone(), trace_id);
    response::secure(h);
    Ok(resp)
}

/// The path as logged: a lease token (a claim's capability) is left out.
fn logged_path(route: Option<usize>, path: &str) -> String {
    use self::router::Route;
    let with_lease = [Route::AckClaim, Route::NackClaim, Route::ExtendClaim].map(|r| r as usize);
    match (route, path.strip_prefix("/v1/claims/")) {
        (Some(r), Some(rest)) if with_lease.contains(&r) => {
            let action = rest.rsplit('/').next().unwrap_or("");
            format!("/v1/claims/-/{action}")
        }
        _ => path.to_string(),
    }
}

/// The id a client sent in `name`, or a new UUID.
fn id_header(headers: &HeaderMap, name: &HeaderName) -> HeaderValue {
    headers
        .get(name)
        .filter(|v| !v.is_empty() && v.len() <= 200)
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
                .unwrap_or_else(|_| HeaderValue::from_static("unknown"))
        })
}

async fn dispatch(
    state: Arc<AppState>,
    req: Request<Incoming>,
    matched: Lookup,
) -> Result<Response<Body>, Error> {
    let deadline = request::Deadline {
        at: tokio::time::Instant::now() + state.limits.request_timeout,
        seconds: state.limits.request_timeout.as_secs(),
    };
    let (mut parts, body) = req.into_parts();
    let target = parts.uri.path_and_query().map_or(0, |pq| pq.as_str().len());
    if target > limits::MAX_URI_BYTES {
        return Err(Error::UriTooLong {
            limit: limits::MAX_URI_BYTES,
        });
    }
    // hyper bounds the head by its read buffer, which lets somewhat more through.
    if limits::head_bytes(&parts.method, target, &parts.headers) > limits::MAX_HEAD_BYTES {
        return Err(Error::HeadTooLarge {
            limit: limits::MAX_HEAD_BYTES,
        });
    }
    let (spec, params) = match matched {
        Lookup::Found(spec, params) => (spec, params),
        other => {
            // Authenticated before anything else is said, even "no such route".
            request::authenticate(&state.keys, &parts.headers)?;
            return Err(match other {
                Lookup::MethodNotAllowed(allow) => Error::MethodNotAllowed { allow },
                _ => Error::NotFound {
                    what: "route",
                    id: parts.uri.path().to_string(),
                },
            });
        }
    };
    let principal = match (spec.auth, state.metrics_public) {
        (Auth::Open, _) | (Auth::Scrape, true) => None,
        (Auth::Key | Auth::Scrape, _) => Some(request::authenticate(&state.keys, &parts.headers)?),
    };
    let quota = match &principal {
        Some(p) if !p.is_admin() && state.rate.enabled() => Some(state.rate.take(&p.key_id)?),
        _ => None,
    };
    let _in_flight = match &principal {
        Some(p) if !p.is_admin() => {
            let max = state.limits.max_in_flight_per_key;
            Some(
                state
                    .per_key_in_flight
                    .acquire(&p.key_id, max, "requests")
                    .map_err(|_| Error::TooMany {
                        reason: format!(
                            "this key already has {max} requests in flight, its limit \
                             (--max-in-flight-per-key); wait for one to finish"
                        ),
                    })?,
            )
        }
        _ => None,
    };
    let principal = principal.unwrap_or_else(|| Arc::new(Principal::anonymous()));
    let ctx = Ctx {
        spec,
        state,
        principal,
        params,
        query: Query::parse(parts.uri.query())?,
        headers: parts.headers,
        hangup: parts.extensions.remove::<connections::Hangup>(),
        deadline,
    };
    let mut resp = (spec.handler)(ctx, body).await?;
    if let Some(q) = quota {
        limits::quota_headers(resp.headers_mut(), q);
    }
    Ok(resp)
}

/// `GET /health` and `GET /v1/health` (AXME's Go and .NET SDKs): open to everyone; 503 when the
/// database cannot be read.
async fn health(ctx: Ctx) -> Result<Response<Body>, Error> {
    health_of(&ctx.state).await
}

/// The answer of `/health`, also given to connections past the cap (`connections`).
pub(crate) async fn health_of(state: &AppState) -> Result<Response<Body>, Error> {
    let schema_version = state.store.read(operator::schema_version).await?;
    response::ok(&wire::Health {
        ok: true,
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        schema_version,
    })
}

async fn capabilities(_ctx: Ctx) -> Result<Response<Body>, Error> {
    response::ok(&wire::Capabilities {
        ok: true,
        capabilities: vec![
            "intents.create",
            "intents.get",
            "intents.list",
            "intents.events",
            "intents.resolve",
            "intents.resume",
            "intents.ack",
            "intents.progress",
            "idempotency",
            "agents.registry",
            "bindings.stream",
            "bindings.poll",
            "bindings.http",
            "webhooks.subscriptions",
            "webhooks.events",
            "deliveries",
            "bindings.inbox",
            "inbox.claims",
            "inbox.threads",
            "inbox.redrive",
            "approvals",
            "tasks",
            "bindings.internal",
            "agents.internal.delay",
            "agents.internal.approval",
            "agents.internal.notify",
            "runtime.deadlines",
            "runtime.reminders",
            "runtime.escalation",
            "events.subscribe",
            "keys",
            "service_accounts",
            "intents.bulk_cancel",
            "admin.backup",
            "users",
            "invites",
            "media",
            "schemas",
            "mcp",
        ],
        supported_intent_types: vec!["intent.ask.v1", "intent.reply.v1"],
    })
}
