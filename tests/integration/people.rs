//! People and invites (`/v1/users/...`, `/v1/invites/...`): AXP success shapes, nicks unique
//! without regard to case, errors naming their field, what agent keys and user keys may reach,
//! invites accepted once without a key, their links on `--public-url`.

use crate::axp_support;
use crate::common;

use axp_support::assert_axp;
use common::*;
use serde_json::{json, Value};

fn with_key(s: &Server, key: &str, method: &str, path: &str, body: Option<&Value>) -> Resp {
    send(
        s.req_anon(method, path).set("x-api-key", key),
        body.map(Value::to_string),
    )
}

fn anon(s: &Server, method: &str, path: &str, body: Option<&Value>) -> Resp {
    send(s.req_anon(method, path), body.map(Value::to_string))
}

fn agent_key(s: &Server, name: &str, agents: &[&str]) -> String {
    let r = s.post(
        "/v1/keys",
        &json!({"name": name, "role": "agent", "agents": agents}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["api_key"].as_str().expect("api_key").to_string()
}

fn register(s: &Server, nick: &str) -> Value {
    let r = s.post("/v1/users/register-nick", &json!({"nick": nick}));
    assert_eq!(r.status, 200, "{}", r.text);
    r.json
}

#[test]
fn users_register_rename_and_update_in_the_axp_shapes() {
    let s = Server::start();
    let r = s.get("/v1/users/check-nick?nick=%40Alice");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_axp("api.users.check_nick.response.v1", &r.json);
    assert_eq!(
        (
            &r.json["nick"],
            &r.json["normalized_nick"],
            &r.json["available"]
        ),
        (&json!("@Alice"), &json!("alice"), &json!(true))
    );
    assert_eq!(r.json["public_address"], "alice@ax");
    // A nick asked for without its @ is answered with it (the AXP shape).
    let r = s.get("/v1/users/check-nick?nick=bob");
    assert_axp("api.users.check_nick.response.v1", &r.json);
    assert_eq!(r.json["nick"], "@bob");

    let r = s.post(
        "/v1/users/register-nick",
        &json!({"nick": "@Alice", "display_name": "Alice A.", "email": "alice@example.com"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_axp("api.users.register_nick.response.v1", &r.json);
    let owner = r.json["owner_agent"].as_str().unwrap().to_string();
    assert_eq!(owner, "agent://user/alice");
    assert_eq!(r.json["display_name"], "Alice A.");

    // Taken without regard to case or the @.
    let r = s.get("/v1/users/check-nick?nick=ALICE");
    assert_eq!(r.json["available"], false, "{}", r.text);
    let r = s.post("/v1/users/register-nick", &json!({"nick": "alice"}));
    assert_error(&r, 409, "nick_taken");

    let r = s.post(
        "/v1/users/rename-nick",
        &json!({"owner_agent": owner, "nick": "@ally"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_axp("api.users.rename_nick.response.v1", &r.json);
    assert_eq!(
        (&r.json["owner_agent"], &r.json["nick"]),
        (&json!(owner), &json!("@ally"))
    );
    // The old nick is free again; the owner address stays.
    assert_eq!(
        s.get("/v1/users/check-nick?nick=alice").json["available"],
        true
    );

    let r = s.post(
        "/v1/users/profile/update",
        &json!({"owner_agent": owner, "display_name": "Ally", "phone": "+1 555 0100"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_axp("api.users.profile.update.response.v1", &r.json);
    let r = s.get(&format!("/v1/users/profile?owner_agent={owner}"));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_axp("api.users.profile.get.response.v1", &r.json);
    assert_eq!(
        (
            &r.json["display_name"],
            &r.json["email"],
            &r.json["phone"],
            &r.json["nick"]
        ),
        (
            &json!("Ally"),
            &json!("alice@example.com"),
            &json!("+1 555 0100"),
            &json!("@ally")
        )
    );

    // A new user under a nick whose plain address an earlier nick took gets its own address.
    let again = register(&s, "@alice");
    assert_ne!(again["owner_agent"], json!(owner));
}

#[test]
fn users_errors_name_their_field() {
    let s = Server::start();
    let owner = register(&s, "@bob")["owner_agent"].clone();
    register(&s, "@carol");
    let cases = [
        ("/v1/users/register-nick", json!({}), 422, "nick"),
        (
            "/v1/users/register-nick",
            json!({"nick": "@b"}),
            422,
            "nick",
        ),
        (
            "/v1/users/register-nick",
            json!({"nick": "@b b b"}),
            422,
            "nick",
        ),
        (
            "/v1/users/register-nick",
            json!({"nick": "@dave", "email": "no"}),
            422,
            "email",
        ),
        (
            "/v1/users/register-nick",
            json!({"nick": "@dave", "org": 1}),
            422,
            "org",
        ),
        (
            "/v1/users/rename-nick",
            json!({"nick": "@dave"}),
            422,
            "owner_agent",
        ),
        (
            "/v1/users/rename-nick",
            json!({"owner_agent": owner}),
            422,
            "nick",
        ),
        (
            "/v1/users/profile/update",
            json!({"owner_agent": owner, "display_name": ""}),
            422,
            "display_name",
        ),
    ];
    for (path, body, status, field) in cases {
        let r = s.post(path, &body);
        assert_eq!(
            (r.status, r.field()),
            (status, field),
            "{path} {body}: {}",
            r.text
        );
        assert!(r.has_error_shape(), "{}", r.text);
    }
    let r = s.post(
        "/v1/users/rename-nick",
        &json!({"owner_agent": owner, "nick": "@Carol"}),
    );
    assert_error(&r, 409, "nick_taken");
    let r = s.get("/v1/users/profile?owner_agent=agent://user/nobody");
    assert_error(&r, 404, "user_not_found");
    let r = s.get("/v1/users/profile");
    assert_eq!((r.status, r.field()), (400, "owner_agent"), "{}", r.text);
    let r = s.get("/v1/users/check-nick?nick=x");
    assert_eq!((r.status, r.field()), (422, "nick"), "{}", r.text);
}

#[test]
fn an_agent_key_registers_its_own_address_and_reaches_only_its_own_profile() {
    let s = Server::start();
    let key = agent_key(&s, "dana", &["team/dana"]);
    let r = with_key(
        &s,
        &key,
        "POST",
        "/v1/users/register-nick",
        Some(&json!({"nick": "@dana"})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["owner_agent"], "agent://team/dana");
    let r = with_key(
        &s,
        &key,
        "POST",
        "/v1/users/register-nick",
        Some(&json!({"nick": "@dana2"})),
    );
    assert_error(&r, 409, "user_exists");

    let other = register(&s, "@erin")["owner_agent"]
        .as_str()
        .unwrap()
        .to_string();
    let r = with_key(
        &s,
        &key,
        "GET",
        &format!("/v1/users/profile?owner_agent={other}"),
        None,
    );
    assert_error(&r, 403, "forbidden");
    let body = json!({"owner_agent": other, "nick": "@stolen"});
    let r = with_key(&s, &key, "POST", "/v1/users/rename-nick", Some(&body));
    assert_error(&r, 403, "forbidden");
    assert_eq!(
        s.get("/v1/users/check-nick?nick=stolen").json["available"],
        true
    );
    let r = with_key(
        &s,
        &key,
        "GET",
        "/v1/users/profile?owner_agent=team/dana",
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text);
}

fn invite(s: &Server, key: Option<&str>, owner: &str) -> Resp {
    let body = json!({"owner_agent": owner, "recipient_hint": "New teammate", "ttl_seconds": 3600});
    match key {
        Some(k) => with_key(s, k, "POST", "/v1/invites/create", Some(&body)),
        None => s.post("/v1/invites/create", &body),
    }
}

#[test]
fn an_invite_becomes_a_user_with_a_key_that_sees_their_tasks_once() {
    let s = Server::start();
    let r = invite(&s, None, "agent://team/lead");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_axp("api.invites.create.response.v1", &r.json);
    let token = r.json["token"].as_str().unwrap().to_string();
    assert_eq!(
        r.json["invite_url"],
        json!(s.url(&format!("/v1/invites/{token}")))
    );

    // The token is the credential: no key needed to look or accept.
    let r = anon(&s, "GET", &format!("/v1/invites/{token}"), None);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_axp("api.invites.get.response.v1", &r.json);
    assert_eq!(
        (&r.json["status"], &r.json["owner_agent"]),
        (&json!("pending"), &json!("agent://team/lead"))
    );

    let accept = format!("/v1/invites/{token}/accept");
    let r = anon(
        &s,
        "POST",
        &accept,
        Some(&json!({"nick": "@Newcomer", "display_name": "New"})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let mut shape = r.json.clone();
    let api_key = shape["api_key"].as_str().unwrap().to_string();
    shape.as_object_mut().unwrap().remove("api_key");
    shape.as_object_mut().unwrap().remove("key_id");
    assert_axp("api.invites.accept.response.v1", &shape);
    let owner = r.json["owner_agent"].as_str().unwrap().to_string();
    assert_eq!(r.json["invite_owner_agent"], "agent://team/lead");

    // Once.
    let r = anon(&s, "POST", &accept, Some(&json!({"nick": "@second"})));
    assert_error(&r, 409, "invite_already_accepted");
    let r = anon(&s, "GET", &format!("/v1/invites/{token}"), None);
    assert_axp("api.invites.get.response.v1", &r.json);
    assert_eq!(
        (
            &r.json["status"],
            &r.json["nick"],
            &r.json["accepted_owner_agent"]
        ),
        (&json!("accepted"), &json!("@Newcomer"), &json!(owner))
    );

    // The user's key sees their own profile and task, and approves it; another key does not.
    let r = with_key(
        &s,
        &api_key,
        "GET",
        &format!("/v1/users/profile?owner_agent={owner}"),
        None,
    );
    assert_eq!(
        (r.status, &r.json["display_name"]),
        (200, &json!("New")),
        "{}",
        r.text
    );
    let mut body = intent_body(&owner);
    body["human_task"] = json!({"title": "Review", "task_type": "approval"});
    let r = s.post("/v1/intents", &body);
    assert_eq!(r.status, 200, "{}", r.text);
    let intent_id = r.json["intent_id"].as_str().unwrap().to_string();
    let r = with_key(&s, &api_key, "GET", "/v1/me/tasks", None);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json["tasks"][0]["intent_id"],
        json!(intent_id),
        "{}",
        r.text
    );
    let stranger = agent_key(&s, "stranger", &["team/stranger"]);
    let r = with_key(
        &s,
        &stranger,
        "GET",
        &format!("/v1/intents/{intent_id}"),
        None,
    );
    assert_error(&r, 404, "intent_not_found");
    let decision = json!({"decision": "approve", "comment": "ok"});
    let path = format!("/v1/approvals/{intent_id}/decision");
    assert_eq!(
        with_key(&s, &stranger, "POST", &path, Some(&decision)).status / 100,
        4
    );
    let r = with_key(&s, &api_key, "POST", &path, Some(&decision));
    assert_eq!(r.status, 200, "{}", r.text);
}

#[test]
fn invites_refuse_unknown_tokens_bad_fields_and_foreign_owners() {
    let s = Server::start();
    let r = anon(
        &s,
        "GET",
        "/v1/invites/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        None,
    );
    assert_error(&r, 404, "invite_not_found");
    let r = anon(
        &s,
        "POST",
        "/v1/invites/short/accept",
        Some(&json!({"nick": "@x_y"})),
    );
    assert_error(&r, 404, "invite_not_found");
    // Creating one still needs a key.
    let r = anon(
        &s,
        "POST",
        "/v1/invites/create",
        Some(&json!({"owner_agent": "a/b"})),
    );
    assert_error(&r, 401, "auth_failed");
    for (body, field) in [
        (json!({}), "owner_agent"),
        (
            json!({"owner_agent": "a/b", "ttl_seconds": 10}),
            "ttl_seconds",
        ),
        (json!({"owner_agent": "a/b", "recipient": "x"}), "recipient"),
        // The AXP bound of an owner address, 255 characters with its agent://.
        (json!({"owner_agent": "o".repeat(248)}), "owner_agent"),
    ] {
        let r = s.post("/v1/invites/create", &body);
        assert_eq!((r.status, r.field()), (422, field), "{body}: {}", r.text);
    }
    let token = invite(&s, None, "a/b").json["token"]
        .as_str()
        .unwrap()
        .to_string();
    let accept = format!("/v1/invites/{token}/accept");
    let r = anon(&s, "POST", &accept, Some(&json!({"nick": "@a"})));
    assert_eq!((r.status, r.field()), (422, "nick"), "{}", r.text);
    register(&s, "@taken");
    let r = anon(&s, "POST", &accept, Some(&json!({"nick": "@TAKEN"})));
    assert_error(&r, 409, "nick_taken");
    // A refused accept leaves the invite pending.
    let r = anon(&s, "GET", &format!("/v1/invites/{token}"), None);
    assert_eq!(r.json["status"], "pending");

    let r = send(
        s.req("POST", "/v1/invites/create")
            .set("idempotency-key", "k1"),
        Some(json!({"owner_agent": "a/b"}).to_string()),
    );
    assert_eq!(
        (r.status, r.field()),
        (400, "Idempotency-Key"),
        "{}",
        r.text
    );
    let key = agent_key(&s, "fay", &["team/fay"]);
    assert_eq!(invite(&s, Some(&key), "team/fay").status, 200);
    assert_error(&invite(&s, Some(&key), "team/boss"), 403, "forbidden");
}

#[test]
fn invite_links_use_the_public_url() {
    let s = Server::start_args(&["--public-url", "https://axme.example.com/"]);
    let r = invite(&s, None, "a/b");
    assert_eq!(r.status, 200, "{}", r.text);
    let token = r.json["token"].as_str().unwrap();
    assert_eq!(
        r.json["invite_url"],
        json!(format!("https://axme.example.com/v1/invites/{token}"))
    );
}

#[test]
fn capabilities_name_the_new_families() {
    let s = Server::start();
    let caps = s.get("/v1/capabilities").json["capabilities"].clone();
    for c in ["users", "invites", "media", "schemas", "mcp"] {
        assert!(
            caps.as_array().unwrap().contains(&json!(c)),
            "{c} missing from {caps}"
        );
    }
}

#[test]
fn a_browser_opening_an_invite_url_is_sent_to_the_dashboards_accept_page() {
    let s = Server::start();
    let r = invite(&s, None, "agent://team/lead");
    let token = r.json["token"].as_str().unwrap().to_string();
    let url = format!("/v1/invites/{token}");
    let browser = ureq::AgentBuilder::new().redirects(0).build();
    let open = |path: &str| {
        send(
            browser
                .get(&s.url(path))
                .set("accept", "text/html,application/xhtml+xml,*/*;q=0.8"),
            None,
        )
    };
    let r = open(&url);
    assert_eq!(r.status, 303, "{}", r.text);
    assert_eq!(
        r.header("location"),
        Some(format!("/ui/#/invite/{token}").as_str())
    );
    // The page tells a used or unknown token apart; a malformed one is 404 at once.
    assert_eq!(open("/v1/invites/short").status, 404);
    // A client still gets the invite itself.
    let r = send(
        s.req_anon("GET", &url).set("accept", "application/json"),
        None,
    );
    assert_eq!((r.status, &r.json["status"]), (200, &json!("pending")));
}
