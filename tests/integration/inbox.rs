//! The inbox (SPEC.md, "inbox" binding; AXME's `/v1/inbox`, `/v1/approvals`, `/v1/me/tasks`): a
//! thread is one intent as seen by one owner — the handler of an `inbox` agent, the owner and
//! `agent://` assignees of a human task, the `reply_to` address once the intent is terminal, a
//! delegate. Threads are scoped by `x-owner-agent` / `owner_agent`; their timeline is the
//! intent's events with the replies, delegation notes and decisions posted on it. Every
//! response is checked against its AXP shape (see `inbox_support`). Human tasks and their
//! decisions: `inbox_tasks.rs`; webhooks and restarts: `inbox_events.rs`.

use crate::claims_support;
use crate::common;
use crate::inbox_support;

use claims_support::{claim_one, claimed_id, intent, token};
use common::*;
use inbox_support::*;
use serde_json::{json, Value};

#[test]
fn an_inbox_agent_s_intent_is_its_handler_s_thread_pending_then_active_then_done() {
    let s = Server::start();
    let a = addr("handler");
    register_inbox_agent(&s, &a);
    let from = addr("sender");
    let id = create(
        &s,
        &a,
        json!({"from_agent": from, "payload": {"invoice": 7}}),
    );
    // An agent that does not pull its work has no thread.
    let pushed = addr("unregistered");
    let other = s.create_intent(&pushed);
    assert!(list(&s, Some(&pushed), "").is_empty());
    assert_error(
        &get_as(&s, None, &format!("/v1/inbox/{other}")),
        404,
        "thread_not_found",
    );

    let t = thread(&s, Some(&a), &id);
    assert_eq!(t["thread_id"], id.as_str());
    assert_eq!(t["owner_agent"], a.as_str());
    assert_eq!(t["role"], "handler");
    assert_eq!(t["status"], "pending");
    assert_eq!(t["unread"], true);
    assert_eq!(t["from_agent"], from.as_str());
    assert_eq!(t["to_agent"], a.as_str());
    assert_eq!(t["intent_type"], "demo.task.v1");
    assert_eq!(t["intent_status"], "SUBMITTED");
    assert_eq!(t["payload"], json!({"invoice": 7}));
    let seqs: Vec<(i64, &str)> = t["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["seq"].as_i64().unwrap(),
                e["event_type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(seqs, [(1, "intent.created"), (2, "intent.submitted")]);
    assert!(assert_timeline_has_every_event(&s, &t).is_empty());
    assert_eq!(ids(&list(&s, Some(&a), "")), [id.as_str()]);
    assert_eq!(ids(&list(&s, Some(&a), "status=pending")), [id.as_str()]);

    let c = claim_one(&s, &a, json!({"lease_seconds": 60}));
    assert_eq!(claimed_id(&c), id);
    let t = thread(&s, Some(&a), &id);
    assert_eq!(
        (t["status"].as_str(), t["intent_status"].as_str()),
        (Some("active"), Some("DELIVERED"))
    );
    assert_timeline_has_every_event(&s, &t);
    assert!(list(&s, Some(&a), "status=pending").is_empty());
    assert_eq!(ids(&list(&s, Some(&a), "status=active")), [id.as_str()]);

    let r = claims_support::ack(
        &s,
        token(&c),
        json!({"status": "COMPLETED", "result": {"paid": true}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let t = thread(&s, Some(&a), &id);
    assert_eq!(t["status"], "done");
    assert_eq!(t["intent_status"], "COMPLETED");
    assert_eq!(t["result"], json!({"paid": true}));
    assert_timeline_has_every_event(&s, &t);
    assert!(list(&s, Some(&a), "status=active").is_empty());
    assert_eq!(ids(&list(&s, Some(&a), "status=done")), [id]);
}

#[test]
fn inbox_listing_filters_by_status_orders_by_latest_change_and_honours_limit() {
    let s = Server::start();
    let a = addr("lister");
    register_inbox_agent(&s, &a);
    let ids_made: Vec<String> = (0..4).map(|_| create(&s, &a, json!({}))).collect();
    // Newest change first.
    let mut newest_first = ids_made.clone();
    newest_first.reverse();
    assert_eq!(ids(&list(&s, Some(&a), "")), newest_first);
    assert_eq!(ids(&list(&s, Some(&a), "limit=2")), newest_first[..2]);

    // The oldest is claimed (active), then the next is claimed and completed (done).
    claim_one(&s, &a, json!({"lease_seconds": 60}));
    claim_and_complete(&s, &a, &ids_made[1], json!({}));
    assert_eq!(
        ids(&list(&s, Some(&a), "status=active")),
        [ids_made[0].as_str()]
    );
    assert_eq!(
        ids(&list(&s, Some(&a), "status=done")),
        [ids_made[1].as_str()]
    );
    assert_eq!(
        ids(&list(&s, Some(&a), "status=pending")),
        [ids_made[3].clone(), ids_made[2].clone()]
    );
    assert_eq!(
        ids(&list(&s, Some(&a), "status=pending&limit=1")),
        [ids_made[3].as_str()]
    );
    // The most recent change leads: the completed one, then the claimed one.
    assert_eq!(
        ids(&list(&s, Some(&a), "limit=2")),
        [ids_made[1].clone(), ids_made[0].clone()]
    );

    for bad in ["status=open", "status=all", "status=PENDING"] {
        assert_invalid_field(&get_as(&s, Some(&a), &format!("/v1/inbox?{bad}")), "status");
    }
    for bad in ["limit=0", "limit=201", "limit=x"] {
        assert_invalid_field(&get_as(&s, Some(&a), &format!("/v1/inbox?{bad}")), "limit");
    }
}

#[test]
fn owner_scope_hides_other_owners_threads_and_conflicting_scopes_are_400() {
    let s = Server::start();
    let (a, b) = (addr("alice"), addr("bob"));
    let ta = create_task(&s, &a, json!({"title": "for alice"}));
    let tb = create_task(&s, &b, json!({"title": "for bob"}));

    assert_eq!(ids(&list(&s, Some(&a), "")), [ta.as_str()]);
    assert_eq!(ids(&list(&s, Some(&b), "")), [tb.as_str()]);
    // The query parameter is the same scope as the header, and a bare address is an agent's.
    let r = s.get(&format!("/v1/inbox?owner_agent={a}"));
    assert_eq!(
        ids(r.json["threads"].as_array().unwrap()),
        [ta.as_str()],
        "{}",
        r.text
    );
    let bare = get_as(&s, Some(a.strip_prefix("agent://").unwrap()), "/v1/inbox");
    assert_eq!(
        ids(bare.json["threads"].as_array().unwrap()),
        [ta.as_str()],
        "{}",
        bare.text
    );
    let t = check_thread_response(&get_as(
        &s,
        Some(&a),
        &format!("/v1/inbox/{ta}?owner_agent={a}"),
    ));
    assert_eq!(t["owner_agent"], a.as_str());
    // The admin without a scope sees every owner's threads.
    let mut all = ids(&list(&s, None, ""));
    all.sort();
    let mut want = vec![ta.clone(), tb.clone()];
    want.sort();
    assert_eq!(all, want);
    assert_eq!(thread(&s, None, &ta)["owner_agent"], a.as_str());

    // Outside the scope a thread does not exist, for reads and for every action.
    let before = (snapshot(&s, &ta), list(&s, Some(&a), ""));
    let outside = [
        ("GET", format!("/v1/inbox/{ta}"), Value::Null),
        (
            "POST",
            format!("/v1/inbox/{ta}/reply"),
            json!({"message": "hi"}),
        ),
        ("POST", format!("/v1/inbox/{ta}/read"), json!({})),
        (
            "POST",
            format!("/v1/inbox/{ta}/delegate"),
            json!({"delegate_to": "agent://x/y"}),
        ),
        ("POST", format!("/v1/inbox/{ta}/approve"), json!({})),
        ("POST", format!("/v1/inbox/{ta}/reject"), json!({})),
        (
            "POST",
            format!("/v1/inbox/{ta}/messages/delete"),
            json!({"mode": "self"}),
        ),
        (
            "POST",
            format!("/v1/approvals/{ta}/decision"),
            json!({"decision": "approve"}),
        ),
    ];
    for (method, path, body) in &outside {
        let body = (!body.is_null()).then(|| body.to_string());
        let r = send(req_as(&s, Some(&b), method, path), body.clone());
        assert_error(&r, 404, "thread_not_found");
        let r = send(s.req(method, &format!("{path}?owner_agent={b}")), body);
        assert_error(&r, 404, "thread_not_found");
    }
    assert_eq!((snapshot(&s, &ta), list(&s, Some(&a), "")), before);
    for missing in [uuid(), "nope".to_string()] {
        assert_error(
            &get_as(&s, Some(&a), &format!("/v1/inbox/{missing}")),
            404,
            "thread_not_found",
        );
        assert_error(
            &get_as(&s, None, &format!("/v1/inbox/{missing}")),
            404,
            "thread_not_found",
        );
    }

    // Two scopes that disagree are 400, wherever a scope is read.
    let conflicting = [
        ("GET", "/v1/inbox".to_string()),
        ("GET", "/v1/inbox/changes".to_string()),
        ("GET", format!("/v1/inbox/{ta}")),
        ("GET", "/v1/me/tasks".to_string()),
        ("POST", format!("/v1/inbox/{ta}/reply")),
        ("POST", format!("/v1/inbox/{ta}/approve")),
        ("POST", format!("/v1/approvals/{ta}/decision")),
    ];
    for (method, path) in &conflicting {
        let body =
            (*method == "POST").then(|| json!({"message": "x", "decision": "approve"}).to_string());
        let r = send(
            req_as(&s, Some(&a), method, &format!("{path}?owner_agent={b}")),
            body,
        );
        assert_error(&r, 400, "bad_request");
        assert_eq!(r.field(), "owner_agent", "{}", r.text);
    }
    assert_eq!(intent(&s, &ta)["status"], "WAITING");
    // A scope that is not an address is refused, naming where it came from.
    let r = get_as(&s, Some("https://example.com/a"), "/v1/inbox");
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(
        (r.code(), r.field()),
        ("invalid_agent_address", "x-owner-agent")
    );
    let r = s.get("/v1/inbox?owner_agent=ftp://a/b");
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(
        (r.code(), r.field()),
        ("invalid_agent_address", "owner_agent")
    );
}

#[test]
fn a_reply_reaches_the_other_owner_and_messages_delete_for_self_or_both() {
    let s = Server::start();
    let (worker, requester) = (addr("worker"), addr("requester"));
    register_inbox_agent(&s, &worker);
    let id = create(&s, &worker, json!({"reply_to": requester}));
    // The reply_to address gets its thread only once the intent is terminal.
    assert!(list(&s, Some(&requester), "").is_empty());
    claim_and_complete(&s, &worker, &id, json!({"answer": 42}));
    let r = thread(&s, Some(&requester), &id);
    assert_eq!(r["role"], "reply_to");
    assert_eq!(r["status"], "done");
    assert_eq!(r["result"], json!({"answer": 42}));
    assert_timeline_has_every_event(&s, &r);

    let t = reply(&s, Some(&requester), &id, "thanks!");
    let mine = messages(&t);
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["event_type"], "inbox.reply");
    assert_eq!(mine[0]["actor"], requester.as_str());
    assert_eq!(mine[0]["details"], json!({"message": "thanks!"}));
    let theirs = assert_timeline_has_every_event(&s, &thread(&s, Some(&worker), &id));
    assert_eq!(theirs, mine, "the handler sees the reply as posted");
    let t = reply(&s, Some(&worker), &id, "you are welcome");
    let both = message_ids(&t);
    assert_eq!(both.len(), 2);
    assert_eq!(message_ids(&thread(&s, Some(&requester), &id)), both);
    let (thanks, welcome) = (both[0].clone(), both[1].clone());

    // Only the author may delete a message for everyone; a refused delete deletes nothing,
    // not even the caller's own message named with it.
    for ids in [json!([thanks]), json!([welcome, thanks])] {
        let r = post_as(
            &s,
            Some(&worker),
            &format!("/v1/inbox/{id}/messages/delete"),
            &json!({"mode": "both", "message_ids": ids}),
        );
        assert_error(&r, 403, "forbidden");
        assert_eq!(message_ids(&thread(&s, Some(&worker), &id)), both);
        assert_eq!(message_ids(&thread(&s, Some(&requester), &id)), both);
    }

    // `self` hides a message (anyone's) from this owner only.
    let d = delete_messages(
        &s,
        Some(&worker),
        &id,
        json!({"mode": "self", "message_ids": [thanks]}),
    );
    assert_eq!(d["message_ids"], json!([thanks]));
    assert_eq!(message_ids(&d["thread"]), [welcome.as_str()]);
    assert_eq!(
        message_ids(&thread(&s, Some(&worker), &id)),
        [welcome.as_str()]
    );
    assert_eq!(message_ids(&thread(&s, Some(&requester), &id)), both);
    // A hidden message cannot be named again by that owner.
    let r = post_as(
        &s,
        Some(&worker),
        &format!("/v1/inbox/{id}/messages/delete"),
        &json!({"mode": "self", "message_ids": [thanks]}),
    );
    assert_error(&r, 404, "not_found");

    // `both` by the author deletes it for everyone; without ids it takes the author's newest.
    let d = delete_messages(&s, Some(&worker), &id, json!({"mode": "both"}));
    assert_eq!(d["message_ids"], json!([welcome]));
    assert!(message_ids(&d["thread"]).is_empty());
    assert_eq!(
        message_ids(&thread(&s, Some(&requester), &id)),
        [thanks.as_str()]
    );
    let d = delete_messages(
        &s,
        Some(&requester),
        &id,
        json!({"mode": "both", "message_ids": [thanks]}),
    );
    assert_eq!(d["deleted_count"], 1);
    assert!(message_ids(&thread(&s, Some(&requester), &id)).is_empty());
    // Nothing left: a delete without ids deletes nothing.
    let d = delete_messages(
        &s,
        Some(&requester),
        &id,
        json!({"mode": "self", "limit": 5}),
    );
    assert_eq!(
        (d["deleted_count"].as_i64(), d["message_ids"].clone()),
        (Some(0), json!([]))
    );
    // Events are never deleted.
    assert_timeline_has_every_event(&s, &thread(&s, Some(&requester), &id));

    let path = format!("/v1/inbox/{id}/messages/delete");
    for (body, field) in [
        (json!({}), "mode"),
        (json!({"mode": "all"}), "mode"),
        (json!({"mode": "self", "limit": 0}), "limit"),
        (json!({"mode": "self", "limit": 101}), "limit"),
        (json!({"mode": "self", "message_ids": []}), "message_ids"),
        (json!({"mode": "self", "message_ids": "x"}), "message_ids"),
        (json!({"mode": "self", "everything": true}), "everything"),
    ] {
        assert_invalid_field(&post_as(&s, Some(&worker), &path, &body), field);
    }
    let r = post_as(
        &s,
        Some(&worker),
        &path,
        &json!({"mode": "self", "message_ids": [uuid()]}),
    );
    assert_error(&r, 404, "not_found");
    for (body, field) in [
        (json!({}), "message"),
        (json!({"message": ""}), "message"),
        (json!({"message": "x".repeat(5001)}), "message"),
        (json!({"message": "hi", "to": "x"}), "to"),
    ] {
        assert_invalid_field(
            &post_as(&s, Some(&worker), &format!("/v1/inbox/{id}/reply"), &body),
            field,
        );
    }
}

#[test]
fn the_same_idempotency_key_replays_a_reply_once() {
    let s = Server::start();
    let owner = addr("keyed");
    let id = create_task(&s, &owner, json!({"title": "Talk"}));
    let path = format!("/v1/inbox/{id}/reply");
    let send_keyed = |key: &str, owner: &str, body: Value| {
        send(
            req_as(&s, Some(owner), "POST", &path).set("Idempotency-Key", key),
            Some(body.to_string()),
        )
    };
    let first = send_keyed("k-1", &owner, json!({"message": "once"}));
    let t = check_thread_response(&first);
    assert_eq!(first.header("idempotent-replayed"), None);
    assert_eq!(messages(&t).len(), 1);
    let again = send_keyed("k-1", &owner, json!({"message": "once"}));
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.json, first.json, "the stored response comes back");
    assert_eq!(
        messages(&thread(&s, Some(&owner), &id)).len(),
        1,
        "posted once"
    );
    let other = send_keyed("k-1", &owner, json!({"message": "twice"}));
    assert_error(&other, 409, "idempotency_conflict");
    assert_eq!(messages(&thread(&s, Some(&owner), &id)).len(), 1);
    // Another key posts again.
    check_thread_response(&send_keyed("k-2", &owner, json!({"message": "once"})));
    assert_eq!(messages(&thread(&s, Some(&owner), &id)).len(), 2);
}

#[test]
fn an_idempotency_key_reused_by_another_owner_does_not_replay_the_first_owner_s_thread() {
    // Regression: keys were scoped to the credential and path only, so a second owner using
    // the same key and body got the first owner's thread back (and posted nothing).
    let s = Server::start();
    let (a, b) = (addr("first"), addr("second"));
    let id = create_task(&s, &a, json!({"title": "Shared", "assignees": [b]}));
    let path = format!("/v1/inbox/{id}/reply");
    let keyed = |owner: &str| {
        send(
            req_as(&s, Some(owner), "POST", &path).set("Idempotency-Key", "same"),
            Some(json!({"message": "hello"}).to_string()),
        )
    };
    let first = check_thread_response(&keyed(&a));
    assert_eq!(first["owner_agent"], a.as_str());
    let r = keyed(&b);
    let second = check_thread_response(&r);
    assert_eq!(second["owner_agent"], b.as_str(), "{}", r.text);
    assert_eq!(r.header("idempotent-replayed"), None);
    let t = thread(&s, Some(&a), &id);
    let authors: Vec<Value> = messages(&t).iter().map(|m| m["actor"].clone()).collect();
    assert_eq!(authors, [json!(a), json!(b)]);
}

#[test]
fn read_marks_a_thread_read_until_it_changes_again() {
    let s = Server::start();
    let (a, b) = (addr("reader"), addr("writer"));
    let id = create_task(&s, &a, json!({"title": "Chat", "assignees": [b]}));
    assert_eq!(thread(&s, Some(&a), &id)["unread"], true);
    assert!(thread(&s, Some(&a), &id).get("read_at").is_none());
    let t = act(&s, Some(&a), &id, "read", json!({}));
    assert_eq!(t["unread"], false);
    let read_at = t["read_at"].clone();
    claims_support::parse_time(&read_at);
    // An empty body reads too.
    let r = send(
        req_as(&s, Some(&a), "POST", &format!("/v1/inbox/{id}/read")),
        None,
    );
    assert_eq!(check_thread_response(&r)["unread"], false);
    assert_eq!(
        thread(&s, Some(&b), &id)["unread"],
        true,
        "read is per owner"
    );
    // Someone else's reply makes it unread again; one's own too is a change.
    reply(&s, Some(&b), &id, "ping");
    assert_eq!(thread(&s, Some(&a), &id)["unread"], true);
    act(&s, Some(&a), &id, "read", json!({}));
    assert_eq!(thread(&s, Some(&a), &id)["unread"], false);
    assert_invalid_field(
        &post_as(
            &s,
            Some(&a),
            &format!("/v1/inbox/{id}/read"),
            &json!({"all": true}),
        ),
        "all",
    );
}

/// The `c_<n>` number of a cursor.
fn cursor_no(c: &Value) -> i64 {
    c.as_str()
        .and_then(|c| c.strip_prefix("c_"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a c_<n> cursor: {c}"))
}

/// Reads the whole feed from `cursor`, `limit` at a time; returns the thread ids in order and
/// the last cursor.
fn drain_feed(
    s: &Server,
    owner: Option<&str>,
    mut cursor: Option<String>,
    limit: usize,
) -> (Vec<String>, Option<String>) {
    let mut seen = Vec::new();
    loop {
        let page = changes(s, owner, cursor.as_deref(), limit);
        let list = page["changes"].as_array().unwrap();
        assert!(list.len() <= limit);
        for c in list {
            seen.push(c["thread"]["thread_id"].as_str().unwrap().to_string());
        }
        if let Some(last) = list.last() {
            assert_eq!(page["next_cursor"], last["cursor"]);
        }
        cursor = page["next_cursor"].as_str().map(str::to_string);
        if page["has_more"] == false {
            return (seen, cursor);
        }
        assert_eq!(list.len(), limit, "a page with more to come is full");
    }
}

#[test]
fn the_changes_feed_pages_with_cursors_and_shows_a_thread_once_at_its_latest_change() {
    let s = Server::start();
    let (a, b) = (addr("feed-a"), addr("feed-b"));
    register_inbox_agent(&s, &a);
    let empty = changes(&s, Some(&a), None, 10);
    assert_eq!(empty["changes"], json!([]));
    assert_eq!(
        (empty["has_more"].clone(), empty["next_cursor"].clone()),
        (json!(false), Value::Null)
    );

    let made: Vec<String> = (0..5).map(|_| create(&s, &a, json!({}))).collect();
    let theirs = create_task(&s, &b, json!({"title": "b's"}));

    let p1 = changes(&s, Some(&a), None, 2);
    let p1c = p1["changes"].as_array().unwrap();
    assert_eq!(p1["has_more"], true);
    assert_eq!(
        ids(&p1c.iter().map(|c| c["thread"].clone()).collect::<Vec<_>>()),
        made[..2]
    );
    assert!(cursor_no(&p1c[0]["cursor"]) < cursor_no(&p1c[1]["cursor"]));
    assert_eq!(p1["next_cursor"], p1c[1]["cursor"]);
    let p2 = changes(&s, Some(&a), p1["next_cursor"].as_str(), 2);
    assert_eq!(p2["has_more"], true);
    let p3 = changes(&s, Some(&a), p2["next_cursor"].as_str(), 2);
    assert_eq!(p3["has_more"], false);
    assert_eq!(p3["changes"].as_array().unwrap().len(), 1);
    let end = p3["next_cursor"].as_str().unwrap().to_string();
    let p4 = changes(&s, Some(&a), Some(&end), 2);
    assert_eq!(p4["changes"], json!([]));
    assert_eq!(
        (p4["has_more"].clone(), p4["next_cursor"].clone()),
        (json!(false), json!(end))
    );
    let (all, last) = drain_feed(&s, Some(&a), None, 2);
    assert_eq!(all, made);
    assert_eq!(last.as_deref(), Some(end.as_str()));

    // A change moves a thread to the end of the feed; it appears once, at its latest state.
    reply(&s, Some(&a), &made[1], "bump");
    claim_one(&s, &a, json!({"lease_seconds": 60}));
    let (all, _) = drain_feed(&s, Some(&a), None, 2);
    assert_eq!(all, [2, 3, 4, 1, 0].map(|i| made[i].clone()));
    let after = changes(&s, Some(&a), Some(&end), 50);
    let moved: Vec<&Value> = after["changes"].as_array().unwrap().iter().collect();
    assert_eq!(
        moved.len(),
        2,
        "only what changed after the cursor: {after}"
    );
    assert_eq!(moved[0]["thread"]["thread_id"], made[1].as_str());
    assert_eq!(messages(&moved[0]["thread"]).len(), 1);
    assert_eq!(moved[1]["thread"]["thread_id"], made[0].as_str());
    assert_eq!(moved[1]["thread"]["status"], "active");

    // Scopes: b's feed holds only b's thread; the admin's holds everyone's.
    let (bs, _) = drain_feed(&s, Some(&b), None, 10);
    assert_eq!(bs, [theirs.as_str()]);
    let (everyone, _) = drain_feed(&s, None, None, 4);
    assert_eq!(everyone.len(), 6);
    assert!(everyone.contains(&theirs));

    for bad in ["abc", "c_", "c_x", "c_-1", "7", "c_1.5"] {
        let r = get_as(&s, Some(&a), &format!("/v1/inbox/changes?cursor={bad}"));
        assert_error(&r, 400, "bad_request");
        assert_eq!(r.field(), "cursor", "{}", r.text);
    }
    for bad in ["0", "201", "many"] {
        assert_invalid_field(
            &get_as(&s, Some(&a), &format!("/v1/inbox/changes?limit={bad}")),
            "limit",
        );
    }
}

#[test]
fn a_message_named_twice_in_one_delete_is_deleted_and_counted_once() {
    // Regression: each repetition of an id was deleted again and counted, so the response said
    // two messages were deleted (and listed the id twice) when one was.
    let s = Server::start();
    let owner = addr("twice");
    let id = create_task(&s, &owner, json!({"title": "t"}));
    for text in ["hide me", "delete me", "keep me"] {
        reply(&s, Some(&owner), &id, text);
    }
    let posted = message_ids(&thread(&s, Some(&owner), &id));
    for (mode, m) in [("self", &posted[0]), ("both", &posted[1])] {
        let d = delete_messages(
            &s,
            Some(&owner),
            &id,
            json!({"mode": mode, "message_ids": [m, m]}),
        );
        assert_eq!(d["deleted_count"], 1, "{d}");
        assert_eq!(d["message_ids"], json!([m]));
    }
    assert_eq!(
        message_ids(&thread(&s, Some(&owner), &id)),
        [posted[2].as_str()]
    );
}
