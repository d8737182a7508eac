//! The routing table: one row per route — method, path pattern, name, who may call it, how large
//! a body it takes, and its handler — readable in one screen. `*` matches
//! exactly one path segment; `**` matches one or more (an agent address such as
//! `team/billing/worker` sits in the path with its slashes, as the AXME SDK sends it). Matched
//! parts are handed to the handler, percent-decoded, in order. An address typed with its scheme
//! (`/v1/agents/agent://team/w/intents`) keeps it: the empty segment after `agent:` is the
//! scheme's `//`. The first matching line wins, so
//! longer patterns stand above shorter ones. A path that matches no pattern is 404; one that
//! matches only with another method is 405 with `Allow`.

use std::future::Future;
use std::pin::Pin;

use hyper::body::Incoming;
use hyper::Response;

use super::response::Body;
use super::{
    admin, agents, claims, email, firehose, inbox, intents, keys, mcp, media, metrics, openapi,
    scenarios, schemas, service_accounts, streams, ui, users, webhooks, Ctx,
};
use crate::Error;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// Anyone, without a key (`/health`, the API description, the dashboard's files: none of
    /// them holds data).
    Open,
    /// Any valid key; the handler asks `service::access` what the key may reach.
    Key,
    /// `/metrics`: an admin key, or anyone with `--metrics-public`.
    Scrape,
}

/// How large a JSON body a route reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLimit {
    /// The small limit (`limits::SMALL_BODY_BYTES`): requests that carry no payload.
    Small,
    /// `--max-payload-bytes`: requests that carry an intent's payload, result or error.
    Large,
}

/// What a handler returns.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Response<Body>, Error>> + Send>>;

/// A route's handler: the request context and its (unread) body.
pub type Handler = fn(Ctx, Incoming) -> HandlerFuture;

/// One row of the routing table.
pub struct Spec {
    pub method: &'static str,
    pub pattern: &'static str,
    pub route: Route,
    pub auth: Auth,
    pub body: BodyLimit,
    pub handler: Handler,
}

const fn row(
    method: &'static str,
    pattern: &'static str,
    route: Route,
    auth: Auth,
    body: BodyLimit,
    handler: Handler,
) -> Spec {
    Spec {
        method,
        pattern,
        route,
        auth,
        body,
        handler,
    }
}

/// A handler that reads the request body.
macro_rules! body {
    ($f:path) => {
        |c, b| Box::pin($f(c, b))
    };
}

/// A handler that takes no body.
macro_rules! plain {
    ($f:path) => {
        |c, _| Box::pin($f(c))
    };
}

/// Every endpoint the server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Health,
    HealthV1,
    OpenApi,
    Capabilities,
    CreateIntent,
    ListIntents,
    BulkCancel,
    GetIntent,
    ListEvents,
    IntentEventsStream,
    Resolve,
    Resume,
    Controls,
    Policy,
    GetWorkflow,
    ValidateScenario,
    ApplyScenario,
    Ack,
    Progress,
    RegisterAgent,
    ListAgents,
    GetAgent,
    RetireAgent,
    AgentFeed,
    AgentFeedStream,
    Firehose,
    UpsertSubscription,
    ListSubscriptions,
    DeleteSubscription,
    PublishEvent,
    ReplayEvent,
    ListDeliveries,
    GetDelivery,
    ReplayDelivery,
    Claim,
    AckClaim,
    NackClaim,
    ExtendClaim,
    Redrive,
    ListInbox,
    InboxChanges,
    GetThread,
    ReplyThread,
    DelegateThread,
    ApproveThread,
    RejectThread,
    ReadThread,
    DeleteMessages,
    ApprovalDecision,
    MeTasks,
    CreateKey,
    ListKeys,
    RevokeKey,
    CreateServiceAccount,
    ListServiceAccounts,
    GetServiceAccount,
    DeleteServiceAccount,
    CreateServiceAccountKey,
    RevokeServiceAccountKey,
    Backup,
    Ui,
    DecidePage,
    Decide,
    UiAsset,
    Metrics,
    CheckNick,
    RegisterNick,
    RenameNick,
    UserProfile,
    UpdateProfile,
    CreateInvite,
    GetInvite,
    AcceptInvite,
    UpsertSchema,
    GetSchema,
    Mcp,
    CreateUpload,
    FinalizeUpload,
    GetUpload,
    PutUpload,
    DownloadUpload,
}

use Auth::{Key, Open, Scrape};
use BodyLimit::{Large, Small};
use Route::*;

/// The routing table: one row per route, in matching order.
#[rustfmt::skip]
const ROUTES: &[Spec] = &[
    row("GET",   "/health",                              Health,                  Open,  Small, plain!(super::health)),
    row("GET",   "/v1/health",                           HealthV1,                Open,  Small, plain!(super::health)),
    row("GET",   "/openapi.json",                        OpenApi,                 Open,  Small, plain!(openapi::serve)),
    row("GET",   "/v1/capabilities",                     Capabilities,            Key,   Small, plain!(super::capabilities)),
    row("POST",  "/v1/intents",                          CreateIntent,            Key,   Large, body!(intents::create)),
    row("GET",   "/v1/intents",                          ListIntents,             Key,   Small, plain!(intents::list)),
    row("POST",  "/v1/intents/bulk-cancel",              BulkCancel,              Key,   Small, body!(intents::bulk_cancel)),
    row("GET",   "/v1/intents/*",                        GetIntent,               Key,   Small, plain!(intents::get)),
    row("GET",   "/v1/intents/*/events",                 ListEvents,              Key,   Small, plain!(streams::intent_events)),
    row("GET",   "/v1/intents/*/events/stream",          IntentEventsStream,      Key,   Small, plain!(streams::intent_events_stream)),
    row("POST",  "/v1/intents/*/resolve",                Resolve,                 Key,   Large, body!(intents::resolve)),
    row("POST",  "/v1/intents/*/resume",                 Resume,                  Key,   Large, body!(intents::resume)),
    row("POST",  "/v1/intents/*/controls",               Controls,                Key,   Small, body!(intents::controls)),
    row("POST",  "/v1/intents/*/policy",                 Policy,                  Key,   Small, body!(intents::policy)),
    row("GET",   "/v1/intents/*/workflow",               GetWorkflow,             Key,   Small, plain!(scenarios::workflow)),
    row("POST",  "/v1/scenarios/validate",               ValidateScenario,        Key,   Large, body!(scenarios::validate)),
    row("POST",  "/v1/scenarios/apply",                  ApplyScenario,           Key,   Large, body!(scenarios::apply)),
    row("POST",  "/v1/intents/*/ack",                    Ack,                     Key,   Small, body!(intents::ack)),
    row("POST",  "/v1/intents/*/progress",               Progress,                Key,   Large, body!(intents::progress)),
    row("POST",  "/v1/intents/*/redrive",                Redrive,                 Key,   Small, body!(intents::redrive)),
    row("POST",  "/v1/agents",                           RegisterAgent,           Key,   Small, body!(agents::register)),
    row("GET",   "/v1/agents",                           ListAgents,              Key,   Small, plain!(agents::list)),
    row("POST",  "/v1/agents/**/inbox/claim",            Claim,                   Key,   Small, body!(claims::claim)),
    row("GET",   "/v1/agents/**/intents/stream",         AgentFeedStream,         Key,   Small, plain!(streams::agent_feed_stream)),
    row("GET",   "/v1/agents/**/intents",                AgentFeed,               Key,   Small, plain!(streams::agent_feed_poll)),
    row("GET",   "/v1/agents/**",                        GetAgent,                Key,   Small, plain!(agents::get)),
    row("DELETE","/v1/agents/**",                        RetireAgent,             Key,   Small, plain!(agents::retire)),
    row("GET",   "/v1/events/stream",                    Firehose,                Key,   Small, plain!(firehose::firehose_stream)),
    row("POST",  "/v1/webhooks/subscriptions",           UpsertSubscription,      Key,   Small, body!(webhooks::upsert_subscription)),
    row("GET",   "/v1/webhooks/subscriptions",           ListSubscriptions,       Key,   Small, plain!(webhooks::list_subscriptions)),
    row("DELETE","/v1/webhooks/subscriptions/*",         DeleteSubscription,      Key,   Small, plain!(webhooks::delete_subscription)),
    row("POST",  "/v1/webhooks/events",                  PublishEvent,            Key,   Large, body!(webhooks::publish_event)),
    row("POST",  "/v1/webhooks/events/*/replay",         ReplayEvent,             Key,   Small, plain!(webhooks::replay_event)),
    row("GET",   "/v1/deliveries",                       ListDeliveries,          Key,   Small, plain!(webhooks::list_deliveries)),
    row("GET",   "/v1/deliveries/*",                     GetDelivery,             Key,   Small, plain!(webhooks::get_delivery)),
    row("POST",  "/v1/deliveries/*/replay",              ReplayDelivery,          Key,   Small, plain!(webhooks::replay_delivery)),
    row("POST",  "/v1/claims/*/ack",                     AckClaim,                Key,   Large, body!(claims::ack)),
    row("POST",  "/v1/claims/*/nack",                    NackClaim,               Key,   Large, body!(claims::nack)),
    row("POST",  "/v1/claims/*/extend",                  ExtendClaim,             Key,   Small, body!(claims::extend)),
    row("GET",   "/v1/inbox",                            ListInbox,               Key,   Small, plain!(inbox::list)),
    row("GET",   "/v1/inbox/changes",                    InboxChanges,            Key,   Small, plain!(inbox::changes)),
    row("GET",   "/v1/inbox/*",                          GetThread,               Key,   Small, plain!(inbox::get)),
    row("POST",  "/v1/inbox/*/reply",                    ReplyThread,             Key,   Small, body!(inbox::reply)),
    row("POST",  "/v1/inbox/*/delegate",                 DelegateThread,          Key,   Small, body!(inbox::delegate)),
    row("POST",  "/v1/inbox/*/approve",                  ApproveThread,           Key,   Small, body!(inbox::approve)),
    row("POST",  "/v1/inbox/*/reject",                   RejectThread,            Key,   Small, body!(inbox::reject)),
    row("POST",  "/v1/inbox/*/read",                     ReadThread,              Key,   Small, body!(inbox::read)),
    row("POST",  "/v1/inbox/*/messages/delete",          DeleteMessages,          Key,   Small, body!(inbox::delete_messages)),
    row("POST",  "/v1/approvals/*/decision",             ApprovalDecision,        Key,   Small, body!(inbox::decision)),
    row("GET",   "/v1/me/tasks",                         MeTasks,                 Key,   Small, plain!(inbox::tasks)),
    row("POST",  "/v1/keys",                             CreateKey,               Key,   Small, body!(keys::create)),
    row("GET",   "/v1/keys",                             ListKeys,                Key,   Small, plain!(keys::list)),
    row("POST",  "/v1/keys/*/revoke",                    RevokeKey,               Key,   Small, plain!(keys::revoke)),
    row("POST",  "/v1/service-accounts",                 CreateServiceAccount,    Key,   Small, body!(service_accounts::create)),
    row("GET",   "/v1/service-accounts",                 ListServiceAccounts,     Key,   Small, plain!(service_accounts::list)),
    row("GET",   "/v1/service-accounts/*",               GetServiceAccount,       Key,   Small, plain!(service_accounts::get)),
    row("DELETE","/v1/service-accounts/*",               DeleteServiceAccount,    Key,   Small, plain!(service_accounts::delete)),
    row("POST",  "/v1/service-accounts/*/keys",          CreateServiceAccountKey, Key,   Small, body!(service_accounts::create_key)),
    row("POST",  "/v1/service-accounts/*/keys/*/revoke", RevokeServiceAccountKey, Key,   Small, plain!(service_accounts::revoke_key)),
    row("GET",   "/v1/admin/backup",                     Backup,                  Key,   Small, plain!(admin::backup)),
    row("GET",   "/ui",                                  Ui,                      Open,  Small, plain!(ui::serve_ctx)),
    // A task email's magic link: the token is the credential.
    row("GET",   "/ui/decide/*",                         DecidePage,              Open,  Small, plain!(email::page)),
    row("POST",  "/ui/decide/*",                         Decide,                  Open,  Small, body!(email::decide)),
    row("GET",   "/ui/*",                                UiAsset,                 Open,  Small, plain!(ui::serve_ctx)),
    row("GET",   "/metrics",                             Metrics,                 Scrape, Small, plain!(metrics::serve_scrape)),
    row("GET",   "/v1/users/check-nick",                 CheckNick,               Key,   Small, plain!(users::check_nick)),
    row("POST",  "/v1/users/register-nick",              RegisterNick,            Key,   Small, body!(users::register_nick)),
    row("POST",  "/v1/users/rename-nick",                RenameNick,              Key,   Small, body!(users::rename_nick)),
    row("GET",   "/v1/users/profile",                    UserProfile,             Key,   Small, plain!(users::profile)),
    row("POST",  "/v1/users/profile/update",             UpdateProfile,           Key,   Small, body!(users::update_profile)),
    row("POST",  "/v1/invites/create",                   CreateInvite,            Key,   Small, body!(users::create_invite)),
    // The invite token is the credential of these two: the newcomer has no key yet.
    row("GET",   "/v1/invites/*",                        GetInvite,               Open,  Small, plain!(users::get_invite)),
    row("POST",  "/v1/invites/*/accept",                 AcceptInvite,            Open,  Small, body!(users::accept_invite)),
    row("POST",  "/v1/schemas",                          UpsertSchema,            Key,   Small, body!(schemas::upsert)),
    row("GET",   "/v1/schemas/*",                        GetSchema,               Key,   Small, plain!(schemas::get)),
    row("POST",  "/mcp",                                 Mcp,                     Key,   Large, body!(mcp::handle)),
    row("POST",  "/v1/media/create-upload",              CreateUpload,            Key,   Small, body!(media::create)),
    row("POST",  "/v1/media/finalize-upload",            FinalizeUpload,          Key,   Small, body!(media::finalize)),
    row("GET",   "/v1/media/*",                          GetUpload,               Key,   Small, plain!(media::get)),
    // The bytes are streamed to a file, not read as JSON: the upload's declared size bounds them.
    row("PUT",   "/v1/media/*/content",                  PutUpload,               Key,   Small, body!(media::put)),
    row("GET",   "/v1/media/*/content",                  DownloadUpload,          Key,   Small, plain!(media::download)),
];

/// What the table says about a request line.
#[derive(Debug, PartialEq, Eq)]
pub enum Matched {
    Found(Route, Vec<String>),
    MethodNotAllowed(Vec<&'static str>),
    NotFound,
}

/// What the table says about a request line, with the matched row.
pub enum Lookup {
    Found(&'static Spec, Vec<String>),
    MethodNotAllowed(Vec<&'static str>),
    NotFound,
}

/// Looks a request up in the table. `HEAD` is answered like `GET`.
pub fn lookup(method: &str, path: &str) -> Lookup {
    let method = if method == "HEAD" { "GET" } else { method };
    let path = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    let mut allow = Vec::new();
    for spec in ROUTES {
        if let Some(params) = match_path(spec.pattern, path) {
            if spec.method == method {
                return Lookup::Found(spec, params);
            }
            if !allow.contains(&spec.method) {
                allow.push(spec.method);
            }
        }
    }
    if allow.is_empty() {
        Lookup::NotFound
    } else {
        Lookup::MethodNotAllowed(allow)
    }
}

/// [`lookup`], naming the route.
pub fn route(method: &str, path: &str) -> Matched {
    match lookup(method, path) {
        Lookup::Found(spec, params) => Matched::Found(spec.route, params),
        Lookup::MethodNotAllowed(allow) => Matched::MethodNotAllowed(allow),
        Lookup::NotFound => Matched::NotFound,
    }
}

fn match_path(pattern: &str, path: &str) -> Option<Vec<String>> {
    let want: Vec<&str> = pattern.split('/').collect();
    let got: Vec<&str> = path.split('/').collect();
    let mut params = Vec::new();
    let (head, tail) = match want.iter().position(|w| *w == "**") {
        Some(i) => (&want[..i], &want[i + 1..]),
        None if want.len() == got.len() => (&want[..], &[][..]),
        None => return None,
    };
    if got.len() < head.len() + tail.len() {
        return None;
    }
    let segment = |w: &str, g: &str, params: &mut Vec<String>| -> Option<()> {
        if w == "*" {
            if g.is_empty() {
                return None;
            }
            params.push(percent_decode(g)?);
        } else if w != g {
            return None;
        }
        Some(())
    };
    for (w, g) in head.iter().zip(&got) {
        segment(w, g, &mut params)?;
    }
    if head.len() < want.len() {
        // A `**` pattern: the middle (at least one non-empty segment) is one parameter. Its only
        // empty segment may be the `//` of a scheme typed in the path (`agent://a/b`).
        let middle = &got[head.len()..got.len() - tail.len()];
        let scheme = middle.len() > 2 && middle[0].ends_with(':') && middle[1].is_empty();
        let empty_at = |i: usize| middle[i].is_empty() && !(scheme && i == 1);
        if middle.is_empty() || (0..middle.len()).any(empty_at) {
            return None;
        }
        let decoded = middle
            .iter()
            .map(|g| percent_decode(g))
            .collect::<Option<Vec<_>>>()?;
        params.push(decoded.join("/"));
        for (w, g) in tail.iter().zip(&got[got.len() - tail.len()..]) {
            segment(w, g, &mut params)?;
        }
    }
    Some(params)
}

/// Decodes `%XX` escapes (and, in query strings, `+` as space when `plus_is_space`). `None` if
/// an escape is malformed or the result is not UTF-8.
pub fn percent_decode_with(s: &str, plus_is_space: bool) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                // Two hex digits, nothing else: `u8::from_str_radix` would also take `+e`.
                let hex = b.get(i + 1..i + 3)?;
                let digit = |c: u8| (c as char).to_digit(16);
                out.push((digit(hex[0])? * 16 + digit(hex[1])?) as u8);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn percent_decode(s: &str) -> Option<String> {
    percent_decode_with(s, false)
}

/// Every route of the table, in table order (metrics number them by `route as usize`).
pub fn routes() -> impl Iterator<Item = Route> {
    ROUTES.iter().map(|s| s.route)
}

/// Every `(method, pattern)` of the table, for documentation and tests.
pub fn table() -> impl Iterator<Item = (&'static str, &'static str)> {
    ROUTES.iter().map(|s| (s.method, s.pattern))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_routes_and_their_parameters() {
        assert_eq!(
            route("GET", "/health"),
            Matched::Found(Route::Health, vec![])
        );
        assert_eq!(
            route("POST", "/v1/intents/abc/resolve"),
            Matched::Found(Route::Resolve, vec!["abc".into()])
        );
        assert_eq!(
            route("GET", "/v1/intents/a%2Fb/"),
            Matched::Found(Route::GetIntent, vec!["a/b".into()])
        );
    }

    #[test]
    fn double_star_takes_an_address_with_its_slashes() {
        assert_eq!(
            route("GET", "/v1/agents/team/billing/worker"),
            Matched::Found(Route::GetAgent, vec!["team/billing/worker".into()])
        );
        assert_eq!(
            route("GET", "/v1/agents/agent%3A%2F%2Fteam%2Fw"),
            Matched::Found(Route::GetAgent, vec!["agent://team/w".into()])
        );
        assert_eq!(route("GET", "/v1/agents/a//b"), Matched::NotFound);
    }

    #[test]
    fn an_address_typed_with_its_scheme_keeps_it() {
        assert_eq!(
            route("GET", "/v1/agents/agent://team/w/intents/stream"),
            Matched::Found(Route::AgentFeedStream, vec!["agent://team/w".into()])
        );
        assert_eq!(
            route("GET", "/v1/agents/agent://checker"),
            Matched::Found(Route::GetAgent, vec!["agent://checker".into()])
        );
        for bad in [
            "/v1/agents/agent://",
            "/v1/agents/agent:///a",
            "/v1/agents/a://b//c",
        ] {
            assert_eq!(route("GET", bad), Matched::NotFound, "{bad}");
        }
    }

    #[test]
    fn bulk_cancel_is_not_an_intent_id() {
        assert_eq!(
            route("POST", "/v1/intents/bulk-cancel"),
            Matched::Found(Route::BulkCancel, vec![])
        );
        assert_eq!(
            route("GET", "/v1/health"),
            Matched::Found(Route::HealthV1, vec![])
        );
    }

    #[test]
    fn unknown_paths_are_404_and_wrong_methods_405() {
        assert_eq!(route("GET", "/v1/nope"), Matched::NotFound);
        assert_eq!(route("GET", "/v1/intents//events"), Matched::NotFound);
        assert_eq!(
            route("DELETE", "/v1/intents"),
            Matched::MethodNotAllowed(vec!["POST", "GET"])
        );
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(
            percent_decode_with("a%3A%2F%2Fb+c", true).unwrap(),
            "a://b c"
        );
        assert_eq!(percent_decode_with("a+b", false).unwrap(), "a+b");
        assert!(percent_decode_with("%zz", false).is_none());
        assert!(percent_decode_with("%4", false).is_none());
    }

    /// Regression (found by the `router` fuzz target): `%+e` decoded to the control byte 0x0E,
    /// because the two hex digits went through `u8::from_str_radix`, which accepts a sign.
    #[test]
    fn a_percent_escape_with_a_sign_is_malformed() {
        for bad in ["%+e", "%+0", "a%+Fb", "%-1", "% 1", "%é"] {
            assert_eq!(percent_decode_with(bad, false), None, "{bad:?}");
            assert_eq!(percent_decode_with(bad, true), None, "{bad:?}");
        }
        assert_eq!(route("GET", "/v1/intents/%+e"), Matched::NotFound);
        assert_eq!(percent_decode_with("%0e%E9", false), None, "not UTF-8");
        assert_eq!(
            percent_decode_with("%0e%c3%A9", false).as_deref(),
            Some("\u{e}é")
        );
    }
}
