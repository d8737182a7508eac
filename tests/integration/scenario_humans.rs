//! `humans[]` of a scenario bundle bound to users: a human whose `contact` names a user's
//! `@nick` or `user_id` carries that user's inbox address, so the user's own key sees the
//! step's task and decides it. A contact naming no user is refused at its path; any other
//! contact (an e-mail address) keeps the role's own address.

use crate::common;
use crate::workflow_support;

use common::*;
use serde_json::{json, Value};
use workflow_support::*;

/// A user made by accepting an invite: `(user_id, owner address, api key)`.
fn user(s: &Server, nick: &str) -> (String, String, String) {
    let r = s.post(
        "/v1/invites/create",
        &json!({"owner_agent": "agent://team/lead"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let token = r.json["token"].as_str().unwrap();
    let r = send(
        s.req_anon("POST", &format!("/v1/invites/{token}/accept")),
        Some(json!({ "nick": nick }).to_string()),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let field = |k: &str| r.json[k].as_str().unwrap().to_string();
    (field("user_id"), field("owner_agent"), field("api_key"))
}

/// A workflow of one human sign-off by the role `reviewer`, whose entry is `contact`.
fn signoff(contact: &str) -> Value {
    json!({
        "scenario_id": "test.signoff.v1",
        "humans": [{"role": "reviewer", "contact": contact, "display_name": "Reviewer"}],
        "workflow": {"steps": [
            {"step_id": "review", "tool_id": "tool.approval.human_signoff",
             "assigned_to": "reviewer", "requires_approval": true,
             "human_task": {"title": "Ship it?"}}
        ]},
        "intent": {"type": "intent.release.review.v1", "payload": {"version": "2.0"}}
    })
}

fn with_key(s: &Server, key: &str, method: &str, path: &str, body: Option<Value>) -> Resp {
    send(
        s.req_anon(method, path)
            .set("authorization", &format!("Bearer {key}")),
        body.map(|b| b.to_string()),
    )
}

#[test]
fn a_human_naming_a_users_nick_gets_the_task_in_that_users_inbox() {
    let s = Server::start();
    let (_, owner, key) = user(&s, "@Reviewer");
    let applied = apply(&s, &signoff("@reviewer"));
    assert_eq!(applied["pending_with"], owner.as_str(), "{applied}");
    assert_eq!(
        applied["humans"],
        json!([{"role": "reviewer", "address": owner}])
    );
    let id = applied["intent_id"].as_str().unwrap();

    // The user's own key sees the task and decides it; the workflow ends with it.
    let r = with_key(&s, &key, "GET", "/v1/me/tasks", None);
    assert_eq!(r.status, 200, "{}", r.text);
    let tasks = r.json["tasks"].as_array().unwrap().clone();
    assert_eq!(tasks.len(), 1, "{}", r.text);
    let step = tasks[0]["intent_id"].as_str().unwrap();
    assert_eq!(step, step_intent(&s, id, "review"));
    let r = with_key(
        &s,
        &key,
        "POST",
        &format!("/v1/inbox/{step}/approve"),
        Some(json!({"comment": "ship"})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["thread"]["result"]["decided_by"], owner.as_str());
    wait_status(&s, id, "COMPLETED", None);
}

#[test]
fn a_human_naming_a_user_id_is_bound_and_an_email_keeps_the_roles_address() {
    let s = Server::start();
    let (user_id, owner, _) = user(&s, "@byid");
    let applied = apply(&s, &signoff(&user_id));
    assert_eq!(applied["pending_with"], owner.as_str(), "{applied}");
    let applied = apply(&s, &signoff("ops@example.com"));
    assert_eq!(
        applied["pending_with"], "agent://human/reviewer",
        "{applied}"
    );
}

#[test]
fn a_human_naming_no_user_is_refused_at_its_contact_and_nothing_is_written() {
    let s = Server::start();
    for contact in ["@nobody", "0f8fad5b-d9cb-469f-a165-70867728950e"] {
        let bundle = signoff(contact);
        let r = s.post("/v1/scenarios/validate", &bundle);
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json["valid"], false, "{}", r.text);
        assert_eq!(
            r.json["error_details"][0]["path"], "humans[0].contact",
            "{}",
            r.text
        );
        let r = s.post("/v1/scenarios/apply", &bundle);
        assert_error(&r, 422, "schema_invalid");
        assert_eq!(r.field(), "humans[0].contact", "{}", r.text);
    }
    let r = s.get("/v1/intents?limit=10");
    assert_eq!(r.json["intents"], json!([]), "{}", r.text);
}
