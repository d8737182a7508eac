//! The MCP server at `POST /mcp`: JSON-RPC 2.0 over the MCP streamable HTTP transport, every
//! answer a plain JSON body (never an SSE stream), without sessions. It speaks protocol
//! versions 2024-11-05 through 2025-11-25 through the `initialize` handshake (settling on the
//! client's version when it is one of them, else the newest) and 2026-07-28 per request
//! (`server/discover`, the version in `MCP-Protocol-Version` and `_meta`, results marked
//! `resultType: complete`), and answers `initialize`, `server/discover`, `ping`, `tools/list`,
//! `tools/call`, `resources/list`, `resources/templates/list` and `prompts/list`;
//! notifications and client responses are taken with 202 and no body. A batch (a JSON array)
//! is answered with an array of the answers to its requests.
//!
//! It is authenticated like every API route (`x-api-key` or `Authorization: Bearer`, before
//! this module runs), and a tool call reaches exactly what its key reaches over REST: the
//! tools (`tools`) call the same service functions as the REST handlers. Protocol faults are
//! JSON-RPC errors; a tool that fails (bad arguments, a 404, a 409) is a result with
//! `isError: true`, so the model reading it can correct itself. No `Origin` check: the
//! transport carries no cookie or ambient credential, so a page that is not given a key can
//! do nothing with it.

mod tools;

use hyper::body::Incoming;
use hyper::{Response, StatusCode};
use serde_json::{json, Value};

use super::response::{self, Body};
use super::Ctx;
use crate::Error;

type Result = std::result::Result<Response<Body>, Error>;

/// Protocol versions negotiated with `initialize`, oldest first; the last is offered to newer
/// clients.
pub const HANDSHAKE_VERSIONS: &[&str] = &["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];

/// Protocol versions without a handshake: the client names the version on every request
/// (`MCP-Protocol-Version` and `_meta`), and learns the server's with `server/discover`.
pub const MODERN_VERSIONS: &[&str] = &["2026-07-28"];

/// The reserved `_meta` keys of the per-request envelope.
const PROTOCOL_VERSION_META: &str = "io.modelcontextprotocol/protocolVersion";
const SERVER_INFO_META: &str = "io.modelcontextprotocol/serverInfo";

/// The JSON-RPC error of a protocol version this server does not speak.
const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;

fn supported(v: &str) -> bool {
    HANDSHAKE_VERSIONS.contains(&v) || MODERN_VERSIONS.contains(&v)
}

fn all_versions() -> Vec<&'static str> {
    HANDSHAKE_VERSIONS
        .iter()
        .chain(MODERN_VERSIONS)
        .copied()
        .collect()
}

/// JSON-RPC error codes.
const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = -32602;

/// A JSON-RPC error, to be answered for the request's id.
struct RpcError {
    code: i64,
    message: String,
    data: Option<Value>,
}

fn rpc_error(code: i64, message: impl Into<String>) -> RpcError {
    RpcError {
        code,
        message: message.into(),
        data: None,
    }
}

fn unsupported_version(v: &str) -> RpcError {
    RpcError {
        code: UNSUPPORTED_PROTOCOL_VERSION,
        message: format!(
            "protocol version {v:?} is not supported; supported: {}",
            all_versions().join(", ")
        ),
        data: Some(json!({"supported": all_versions(), "requested": v})),
    }
}

fn error_body(id: Value, e: RpcError) -> Value {
    let mut error = json!({"code": e.code, "message": e.message});
    if let Some(d) = e.data {
        error["data"] = d;
    }
    json!({"jsonrpc": "2.0", "id": id, "error": error})
}

fn json_response(status: StatusCode, v: &Value) -> Response<Body> {
    response::json_bytes(status, v.to_string().into_bytes())
}

fn accepted() -> Response<Body> {
    let mut r = Response::new(Body::full(bytes::Bytes::new()));
    *r.status_mut() = StatusCode::ACCEPTED;
    r
}

/// `POST /mcp`.
pub async fn handle(ctx: Ctx, body: Incoming) -> Result {
    let header = ctx
        .headers
        .get("mcp-protocol-version")
        .map(|v| v.to_str().unwrap_or("").to_string());
    if let Some(v) = header.as_deref().filter(|v| !supported(v)) {
        let e = unsupported_version(v);
        return Ok(json_response(
            StatusCode::BAD_REQUEST,
            &error_body(Value::Null, e),
        ));
    }
    let modern = header
        .as_deref()
        .is_some_and(|v| MODERN_VERSIONS.contains(&v));
    let message = match ctx.json(body).await {
        Ok(v) => v,
        Err(Error::Malformed { reason }) => {
            let e = rpc_error(PARSE_ERROR, format!("parse error: {reason}"));
            return Ok(json_response(
                StatusCode::BAD_REQUEST,
                &error_body(Value::Null, e),
            ));
        }
        Err(e) => return Err(e),
    };
    match message {
        Value::Array(batch) if batch.is_empty() => {
            let e = rpc_error(INVALID_REQUEST, "an empty batch");
            Ok(json_response(
                StatusCode::BAD_REQUEST,
                &error_body(Value::Null, e),
            ))
        }
        Value::Array(batch) => {
            let mut answers = Vec::new();
            for m in batch {
                if let Some(a) = answer(&ctx, m, modern).await {
                    answers.push(a);
                }
            }
            if answers.is_empty() {
                Ok(accepted())
            } else {
                Ok(json_response(StatusCode::OK, &Value::Array(answers)))
            }
        }
        m => match answer(&ctx, m, modern).await {
            Some(a) => Ok(json_response(StatusCode::OK, &a)),
            None => Ok(accepted()),
        },
    }
}

/// The answer to one message; `None` for a notification or a client's response.
async fn answer(ctx: &Ctx, m: Value, modern_header: bool) -> Option<Value> {
    let Value::Object(obj) = m else {
        return Some(error_body(
            Value::Null,
            rpc_error(INVALID_REQUEST, "a JSON-RPC message is an object"),
        ));
    };
    let id = obj.get("id").cloned();
    let Some(method) = obj.get("method").and_then(Value::as_str) else {
        if obj.contains_key("result") || obj.contains_key("error") {
            return None; // a response to a request of ours; we send none
        }
        return Some(error_body(
            id.unwrap_or(Value::Null),
            rpc_error(INVALID_REQUEST, "method: is required"),
        ));
    };
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Some(error_body(
            id.unwrap_or(Value::Null),
            rpc_error(INVALID_REQUEST, "jsonrpc: must be \"2.0\""),
        ));
    }
    let Some(id) = id else {
        return None; // a notification (notifications/initialized, cancelled, ...)
    };
    if !(id.is_string() || id.is_number()) {
        return Some(error_body(
            Value::Null,
            rpc_error(INVALID_REQUEST, "id: must be a string or a number"),
        ));
    }
    let params = obj.get("params").cloned().unwrap_or_else(|| json!({}));
    let asked = params["_meta"][PROTOCOL_VERSION_META].as_str();
    if let Some(v) = asked.filter(|v| !supported(v)) {
        return Some(error_body(id, unsupported_version(v)));
    }
    let modern = modern_header || asked.is_some_and(|v| MODERN_VERSIONS.contains(&v));
    let listing = matches!(
        method,
        "tools/list" | "resources/list" | "resources/templates/list" | "prompts/list"
    );
    let result = match method {
        "initialize" => Ok(initialize(&params)),
        "server/discover" => Ok(discover()),
        "ping" => Ok(json!({})),
        "tools/list" => Ok(json!({"tools": tools::list()})),
        "tools/call" => call(ctx, &params).await,
        "resources/list" => Ok(json!({"resources": []})),
        "resources/templates/list" => Ok(json!({"resourceTemplates": []})),
        "prompts/list" => Ok(json!({"prompts": []})),
        other => Err(rpc_error(
            METHOD_NOT_FOUND,
            format!("method not found: {other}"),
        )),
    };
    Some(match result {
        Ok(mut r) => {
            if modern || method == "server/discover" {
                // The per-request era: every result says it is complete, listings may not be
                // cached, and the server names itself.
                r["resultType"] = json!("complete");
                r["_meta"] = json!({ SERVER_INFO_META: server_info() });
                if listing {
                    r["ttlMs"] = json!(0);
                    r["cacheScope"] = json!("private");
                }
            }
            json!({"jsonrpc": "2.0", "id": id, "result": r})
        }
        Err(e) => error_body(id, e),
    })
}

fn server_info() -> Value {
    json!({"name": "axme", "version": env!("CARGO_PKG_VERSION")})
}

fn capabilities() -> Value {
    json!({"tools": {"listChanged": false}, "resources": {}, "prompts": {}})
}

const INSTRUCTIONS: &str = "Tools of an axme intent server: send intents to agents \
    (axme.intents_send), follow them (axme.intents_get, axme.intents_log, axme.intents_watch), \
    and decide human tasks (axme.tasks_list, axme.tasks_approve, axme.tasks_reject). Every call \
    acts with the API key this connection was opened with.";

/// `server/discover`: every version this server speaks, and what it offers.
fn discover() -> Value {
    json!({
        "supportedVersions": all_versions(),
        "capabilities": capabilities(),
        "serverInfo": server_info(),
        "instructions": INSTRUCTIONS,
        "ttlMs": 0,
        "cacheScope": "private",
    })
}

/// `initialize`: the client's version when it is one of the handshake versions, else the
/// newest of them.
fn initialize(params: &Value) -> Value {
    let asked = params.get("protocolVersion").and_then(Value::as_str);
    let version = asked
        .filter(|v| HANDSHAKE_VERSIONS.contains(v))
        .or(HANDSHAKE_VERSIONS.last().copied())
        .unwrap_or("2024-11-05");
    json!({
        "protocolVersion": version,
        "capabilities": capabilities(),
        "serverInfo": server_info(),
        "instructions": INSTRUCTIONS,
    })
}

/// `tools/call {name, arguments}`: an unknown tool is a protocol error; everything that goes
/// wrong inside a known tool is an `isError` result.
async fn call(ctx: &Ctx, params: &Value) -> std::result::Result<Value, RpcError> {
    let name = params
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| rpc_error(INVALID_PARAMS, "params.name: is required"))?;
    let tool = tools::find(name)
        .ok_or_else(|| rpc_error(INVALID_PARAMS, format!("unknown tool: {name}")))?;
    let arguments = match params.get("arguments") {
        None | Some(Value::Null) => json!({}),
        Some(a @ Value::Object(_)) => a.clone(),
        Some(_) => {
            return Err(rpc_error(
                INVALID_PARAMS,
                "params.arguments: must be an object",
            ))
        }
    };
    let outcome = match tools::check_arguments(tool, &arguments) {
        Ok(()) => tools::run(ctx, tool, &arguments).await,
        Err(e) => Err(e),
    };
    Ok(match outcome {
        Ok(data) => json!({
            "ok": true,
            "tool": name,
            "status": "completed",
            "content": [{"type": "text", "text": data.to_string()}],
            "structuredContent": data,
            "isError": false
        }),
        Err(e) => {
            let body = response::error_body(&e);
            json!({
                "ok": false,
                "tool": name,
                "status": "error",
                "content": [{"type": "text", "text": format!("{} ({}): {e}", e.code(), e.status().as_u16())}],
                "structuredContent": body,
                "isError": true
            })
        }
    })
}
