//! The routing table: one line per `(method, path pattern)`, readable in one screen. `*` matches
//! exactly one path segment; `**` matches one or more (an agent address such as
//! `team/billing/worker` sits in the path with its slashes, as the AXME SDK sends it). Matched
//! parts are handed to the handler, percent-decoded, in order. The first matching line wins, so
//! longer patterns stand above shorter ones. A path that matches no pattern is 404; one that
//! matches only with another method is 405 with `Allow`.

/// Every endpoint the server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Health,
    OpenApi,
    Capabilities,
    CreateIntent,
    ListIntents,
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
    Backup,
    Ui,
    UiAsset,
    Metrics,
}

#[rustfmt::skip]
const ROUTES: &[(&str, &str, Route)] = &[
    ("GET",    "/health",                          Route::Health),
    ("GET",    "/openapi.json",                    Route::OpenApi),
    ("GET",    "/v1/capabilities",                 Route::Capabilities),
    ("POST",   "/v1/intents",                      Route::CreateIntent),
    ("GET",    "/v1/intents",                      Route::ListIntents),
    ("GET",    "/v1/intents/*",                    Route::GetIntent),
    ("GET",    "/v1/intents/*/events",             Route::ListEvents),
    ("GET",    "/v1/intents/*/events/stream",      Route::IntentEventsStream),
    ("POST",   "/v1/intents/*/resolve",            Route::Resolve),
    ("POST",   "/v1/intents/*/resume",             Route::Resume),
    ("POST",   "/v1/intents/*/controls",           Route::Controls),
    ("POST",   "/v1/intents/*/policy",             Route::Policy),
    ("GET",    "/v1/intents/*/workflow",           Route::GetWorkflow),
    ("POST",   "/v1/scenarios/validate",           Route::ValidateScenario),
    ("POST",   "/v1/scenarios/apply",              Route::ApplyScenario),
    ("POST",   "/v1/intents/*/ack",                Route::Ack),
    ("POST",   "/v1/intents/*/progress",           Route::Progress),
    ("POST",   "/v1/intents/*/redrive",            Route::Redrive),
    ("POST",   "/v1/agents",                       Route::RegisterAgent),
    ("GET",    "/v1/agents",                       Route::ListAgents),
    ("POST",   "/v1/agents/**/inbox/claim",        Route::Claim),
    ("GET",    "/v1/agents/**/intents/stream",     Route::AgentFeedStream),
    ("GET",    "/v1/agents/**/intents",            Route::AgentFeed),
    ("GET",    "/v1/agents/**",                    Route::GetAgent),
    ("DELETE", "/v1/agents/**",                    Route::RetireAgent),
    ("GET",    "/v1/events/stream",                Route::Firehose),
    ("POST",   "/v1/webhooks/subscriptions",       Route::UpsertSubscription),
    ("GET",    "/v1/webhooks/subscriptions",       Route::ListSubscriptions),
    ("DELETE", "/v1/webhooks/subscriptions/*",     Route::DeleteSubscription),
    ("POST",   "/v1/webhooks/events",              Route::PublishEvent),
    ("POST",   "/v1/webhooks/events/*/replay",     Route::ReplayEvent),
    ("GET",    "/v1/deliveries",                   Route::ListDeliveries),
    ("GET",    "/v1/deliveries/*",                 Route::GetDelivery),
    ("POST",   "/v1/deliveries/*/replay",          Route::ReplayDelivery),
    ("POST",   "/v1/claims/*/ack",                 Route::AckClaim),
    ("POST",   "/v1/claims/*/nack",                Route::NackClaim),
    ("POST",   "/v1/claims/*/extend",              Route::ExtendClaim),
    ("GET",    "/v1/inbox",                        Route::ListInbox),
    ("GET",    "/v1/inbox/changes",                Route::InboxChanges),
    ("GET",    "/v1/inbox/*",                      Route::GetThread),
    ("POST",   "/v1/inbox/*/reply",                Route::ReplyThread),
    ("POST",   "/v1/inbox/*/delegate",             Route::DelegateThread),
    ("POST",   "/v1/inbox/*/approve",              Route::ApproveThread),
    ("POST",   "/v1/inbox/*/reject",               Route::RejectThread),
    ("POST",   "/v1/inbox/*/read",                 Route::ReadThread),
    ("POST",   "/v1/inbox/*/messages/delete",      Route::DeleteMessages),
    ("POST",   "/v1/approvals/*/decision",         Route::ApprovalDecision),
    ("GET",    "/v1/me/tasks",                     Route::MeTasks),
    ("POST",   "/v1/keys",                         Route::CreateKey),
    ("GET",    "/v1/keys",                         Route::ListKeys),
    ("POST",   "/v1/keys/*/revoke",                Route::RevokeKey),
    ("GET",    "/v1/admin/backup",                 Route::Backup),
    ("GET",    "/ui",                              Route::Ui),
    ("GET",    "/ui/*",                            Route::UiAsset),
    ("GET",    "/metrics",                         Route::Metrics),
];

/// What the table says about a request line.
#[derive(Debug, PartialEq, Eq)]
pub enum Matched {
    Found(Route, Vec<String>),
    MethodNotAllowed(Vec<&'static str>),
    NotFound,
}

/// Looks a request up in the table. `HEAD` is answered like `GET`.
pub fn route(method: &str, path: &str) -> Matched {
    let method = if method == "HEAD" { "GET" } else { method };
    let path = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    let mut allow = Vec::new();
    for (m, pattern, route) in ROUTES {
        if let Some(params) = match_path(pattern, path) {
            if *m == method {
                return Matched::Found(*route, params);
            }
            if !allow.contains(m) {
                allow.push(*m);
            }
        }
    }
    if allow.is_empty() {
        Matched::NotFound
    } else {
        Matched::MethodNotAllowed(allow)
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
        // A `**` pattern: the middle (at least one non-empty segment) is one parameter.
        let middle = &got[head.len()..got.len() - tail.len()];
        if middle.is_empty() || middle.iter().any(|g| g.is_empty()) {
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
    ROUTES.iter().map(|(_, _, r)| *r)
}

/// Every `(method, pattern)` of the table, for documentation and tests.
pub fn table() -> impl Iterator<Item = (&'static str, &'static str)> {
    ROUTES.iter().map(|(m, p, _)| (*m, *p))
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
