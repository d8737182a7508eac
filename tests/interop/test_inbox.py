"""The official AXME Python SDK's inbox methods against the real axme binary.

``list_inbox``, ``get_inbox_thread``, ``list_inbox_changes``, ``reply_inbox_thread``,
``approve_inbox_thread``, ``reject_inbox_thread``, ``delegate_inbox_thread``,
``delete_inbox_messages`` and ``decide_approval`` drive threads made the ways the server makes them:
an intent to an agent registered with ``delivery_mode: inbox`` (its handler's thread), an intent
with a ``human_task`` (its owner's and ``agent://`` assignees' tasks), and a completion sent to a
``reply_to`` address. Every response is validated against its AXP schema (``api.inbox.*``,
``api.approvals.*``, ``api.tasks.list``), and so is every request body the tests send. What the SDK
does not expose (registering an agent, claiming, ``/v1/me/tasks``) goes through plain httpx.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest
from axme_sdk import AxmeAuthError, AxmeClient, AxmeHttpError, AxmeValidationError

from conftest import AxmeServer

INTENT_TYPE = "interop.inbox.v1"
ERROR_CODE_RE = re.compile(r"^[a-z0-9_:.\-]{3,128}$")


# --------------------------------------------------------------------------------------------------
# helpers


def new_id() -> str:
    return str(uuid.uuid4())


def addr(name: str) -> str:
    return f"agent://interop-inbox/{name}-{new_id()[:8]}"


def headers(server: AxmeServer, owner: str | None = None) -> dict[str, str]:
    h = {"x-api-key": server.api_key}
    if owner is not None:
        h["x-owner-agent"] = owner
    return h


def register_inbox_agent(server: AxmeServer, http: httpx.Client, address: str) -> None:
    r = http.post("/v1/agents", json={"address": address, "delivery_mode": "inbox"}, headers=headers(server))
    assert r.status_code == 200, r.text


def create(client: AxmeClient, to: str, **extra: Any) -> str:
    body = {"intent_type": INTENT_TYPE, "to_agent": to, "payload": {"n": 1}, **extra}
    resp = client.create_intent(body, correlation_id=new_id())
    assert resp["ok"] is True
    return resp["intent_id"]


def create_task(client: AxmeClient, owner: str, **task: Any) -> str:
    intent_id = create(client, owner, human_task={"title": "Approve?", **task})
    assert client.get_intent(intent_id)["intent"]["status"] == "WAITING"
    return intent_id


def claim_and_complete(server: AxmeServer, http: httpx.Client, agent: str, intent_id: str, result: dict) -> None:
    bare = agent.removeprefix("agent://")
    r = http.post(f"/v1/agents/{bare}/inbox/claim", json={"lease_seconds": 60}, headers=headers(server))
    assert r.status_code == 200, r.text
    claims = r.json()["claims"]
    assert [c["intent"]["intent_id"] for c in claims] == [intent_id]
    token = claims[0]["lease_token"]
    r = http.post(f"/v1/claims/{token}/ack", json={"status": "COMPLETED", "result": result}, headers=headers(server))
    assert r.status_code == 200, r.text


def assert_error(exc: AxmeHttpError, status: int, code: str, field: str | None = None) -> None:
    """The HTTP status and the AXME error body, with its code and (for 4xx of a field) the field."""
    assert exc.status_code == status, exc
    body = exc.body
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), body
    err = body["error"]
    assert ERROR_CODE_RE.match(err["code"]), body
    assert isinstance(err.get("message"), str) and err["message"], body
    assert isinstance(err.get("details"), dict), body
    assert body.get("detail") == err["message"], body
    assert err["code"] == code, body
    if field is not None:
        assert err["details"].get("field") == field, body


def check_thread(thread: dict[str, Any], owner: str) -> None:
    """What the schemas leave open: the thread is the owner's, its timeline entries are unique."""
    assert thread["owner_agent"] == owner
    assert thread["thread_id"] == thread["intent_id"]
    ids = [e["event_id"] for e in thread["timeline"]]
    assert len(set(ids)) == len(ids), ids
    ats = [e["at"] for e in thread["timeline"]]
    assert ats == sorted(ats), ats


def messages(thread: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in thread["timeline"] if "message_id" in e]


def get_thread(client: AxmeClient, schema, thread_id: str, owner: str) -> dict[str, Any]:
    resp = client.get_inbox_thread(thread_id, owner_agent=owner)
    schema("api.inbox.thread.response.v1.json", resp)
    check_thread(resp["thread"], owner)
    return resp["thread"]


def my_tasks(server: AxmeServer, http: httpx.Client, schema, owner: str) -> list[str]:
    r = http.get("/v1/me/tasks", headers=headers(server, owner))
    assert r.status_code == 200, r.text
    schema("api.tasks.list.response.v1.json", r.json())
    return [t["intent_id"] for t in r.json()["tasks"]]


# --------------------------------------------------------------------------------------------------
# threads


def test_list_and_get_a_handler_thread(server: AxmeServer, client: AxmeClient, http: httpx.Client, schema) -> None:
    worker = addr("worker")
    register_inbox_agent(server, http, worker)
    intent_id = create(client, worker)

    listed = client.list_inbox(owner_agent=worker)
    schema("api.inbox.list.response.v1.json", listed)
    assert [t["thread_id"] for t in listed["threads"]] == [intent_id]
    thread = get_thread(client, schema, intent_id, worker)
    assert thread["status"] == "pending"
    assert thread["role"] == "handler"
    assert thread["to_agent"] == worker
    # The timeline holds every event of the intent, as the events API shows them.
    events = client.list_intent_events(intent_id)["events"]
    shown = [(e["seq"], e["event_type"], e["at"]) for e in thread["timeline"] if "seq" in e]
    assert shown == [(e["seq"], e["event_type"], e["at"]) for e in events]

    claim_and_complete(server, http, worker, intent_id, {"done": True})
    thread = get_thread(client, schema, intent_id, worker)
    assert thread["status"] == "done"
    assert thread["result"] == {"done": True}
    assert [e["event_type"] for e in thread["timeline"]][-1] == "intent.completed"


def test_a_thread_outside_the_owner_scope_is_404(server: AxmeServer, client: AxmeClient, http: httpx.Client) -> None:
    owner, other = addr("owner"), addr("other")
    intent_id = create_task(client, owner)
    with pytest.raises(AxmeHttpError) as exc:
        client.get_inbox_thread(intent_id, owner_agent=other)
    assert_error(exc.value, 404, "thread_not_found")
    with pytest.raises(AxmeHttpError) as exc:
        client.reply_inbox_thread(intent_id, message="hi", owner_agent=other)
    assert_error(exc.value, 404, "thread_not_found")
    assert client.list_inbox(owner_agent=other)["threads"] == []
    # Header and query naming two owners is a bad request.
    r = http.get(f"/v1/inbox/{intent_id}", params={"owner_agent": other}, headers=headers(server, owner))
    assert r.status_code == 400, r.text
    assert r.json()["error"]["details"]["field"] == "owner_agent"
    # The admin key without a scope sees every owner's threads.
    everyone = [t["thread_id"] for t in client.list_inbox()["threads"]]
    assert intent_id in everyone


def test_the_changes_feed_pages_with_cursors(client: AxmeClient, schema) -> None:
    owner = addr("feed")
    made = [create_task(client, owner, title=f"task {i}") for i in range(3)]

    page = client.list_inbox_changes(owner_agent=owner, limit=2)
    schema("api.inbox.changes.response.v1.json", page)
    assert [c["thread"]["thread_id"] for c in page["changes"]] == made[:2]
    assert page["has_more"] is True
    assert page["next_cursor"] == page["changes"][-1]["cursor"]
    rest = client.list_inbox_changes(owner_agent=owner, cursor=page["next_cursor"], limit=2)
    schema("api.inbox.changes.response.v1.json", rest)
    assert [c["thread"]["thread_id"] for c in rest["changes"]] == made[2:]
    assert rest["has_more"] is False
    end = rest["next_cursor"]

    # A reply moves its thread after the cursor; it shows once, at its latest state.
    client.reply_inbox_thread(made[0], message="bump", owner_agent=owner)
    after = client.list_inbox_changes(owner_agent=owner, cursor=end)
    schema("api.inbox.changes.response.v1.json", after)
    assert [c["thread"]["thread_id"] for c in after["changes"]] == [made[0]]
    assert [m["details"] for m in messages(after["changes"][0]["thread"])] == [{"message": "bump"}]
    whole = client.list_inbox_changes(owner_agent=owner)
    assert [c["thread"]["thread_id"] for c in whole["changes"]] == [made[1], made[2], made[0]]

    with pytest.raises(AxmeValidationError) as exc:
        client.list_inbox_changes(owner_agent=owner, cursor="not-a-cursor")
    assert_error(exc.value, 400, "bad_request", "cursor")


# --------------------------------------------------------------------------------------------------
# replies and messages


def test_reply_reaches_the_other_owner_and_deletes_for_self_or_both(
    server: AxmeServer, client: AxmeClient, http: httpx.Client, schema
) -> None:
    worker, requester = addr("worker"), addr("requester")
    register_inbox_agent(server, http, worker)
    intent_id = create(client, worker, reply_to=requester)
    claim_and_complete(server, http, worker, intent_id, {"answer": 42})

    body = {"message": "thanks!"}
    schema("api.inbox.reply.request.v1.json", body)
    resp = client.reply_inbox_thread(intent_id, message=body["message"], owner_agent=requester)
    schema("api.inbox.thread.response.v1.json", resp)
    check_thread(resp["thread"], requester)
    assert resp["thread"]["role"] == "reply_to"
    [thanks] = messages(resp["thread"])
    assert (thanks["event_type"], thanks["actor"], thanks["details"]) == ("inbox.reply", requester, body)
    seen = get_thread(client, schema, intent_id, worker)
    assert messages(seen) == [thanks]
    welcome = messages(client.reply_inbox_thread(intent_id, message="welcome", owner_agent=worker)["thread"])[-1]

    # Deleting someone else's message for everyone is forbidden and deletes nothing.
    payload = {"mode": "both", "message_ids": [thanks["message_id"]]}
    schema("api.inbox.messages.delete.request.v1.json", payload)
    with pytest.raises(AxmeAuthError) as exc:
        client.delete_inbox_messages(intent_id, payload, owner_agent=worker)
    assert_error(exc.value, 403, "forbidden")
    assert len(messages(get_thread(client, schema, intent_id, requester))) == 2

    # `self` hides it from this owner only.
    payload = {"mode": "self", "message_ids": [thanks["message_id"]]}
    resp = client.delete_inbox_messages(intent_id, payload, owner_agent=worker)
    schema("api.inbox.messages.delete.response.v1.json", resp)
    assert (resp["mode"], resp["deleted_count"], resp["message_ids"]) == ("self", 1, [thanks["message_id"]])
    assert [m["message_id"] for m in messages(resp["thread"])] == [welcome["message_id"]]
    assert len(messages(get_thread(client, schema, intent_id, requester))) == 2

    # `both` by the author deletes it for everyone.
    payload = {"mode": "both", "message_ids": [welcome["message_id"]]}
    schema("api.inbox.messages.delete.request.v1.json", payload)
    resp = client.delete_inbox_messages(intent_id, payload, owner_agent=worker)
    schema("api.inbox.messages.delete.response.v1.json", resp)
    assert resp["deleted_count"] == 1
    assert messages(get_thread(client, schema, intent_id, requester)) == [thanks]
    assert messages(get_thread(client, schema, intent_id, worker)) == []

    with pytest.raises(AxmeValidationError) as exc:
        client.delete_inbox_messages(intent_id, {"mode": "all"}, owner_agent=worker)
    assert_error(exc.value, 422, "schema_invalid", "mode")
    with pytest.raises(AxmeValidationError) as exc:
        client.reply_inbox_thread(intent_id, message="", owner_agent=worker)
    assert_error(exc.value, 422, "schema_invalid", "message")


def test_a_reply_with_an_idempotency_key_is_posted_once(client: AxmeClient, schema) -> None:
    owner = addr("keyed")
    intent_id = create_task(client, owner)
    key = new_id()
    first = client.reply_inbox_thread(intent_id, message="once", owner_agent=owner, idempotency_key=key)
    again = client.reply_inbox_thread(intent_id, message="once", owner_agent=owner, idempotency_key=key)
    schema("api.inbox.thread.response.v1.json", again)
    assert again == first
    assert len(messages(get_thread(client, schema, intent_id, owner))) == 1
    with pytest.raises(AxmeValidationError) as exc:
        client.reply_inbox_thread(intent_id, message="other", owner_agent=owner, idempotency_key=key)
    assert_error(exc.value, 409, "idempotency_conflict")


# --------------------------------------------------------------------------------------------------
# human tasks: approve, reject, delegate, decide


def test_approve_and_reject_an_inbox_thread(
    server: AxmeServer, client: AxmeClient, http: httpx.Client, schema
) -> None:
    owner = addr("approver")
    yes = create_task(client, owner, allowed_outcomes=["approve", "reject"])
    no = create_task(client, owner)
    assert my_tasks(server, http, schema, owner) == [yes, no]

    payload = {"comment": "looks right"}
    schema("api.inbox.decision.request.v1.json", payload)
    resp = client.approve_inbox_thread(yes, payload, owner_agent=owner)
    schema("api.inbox.thread.response.v1.json", resp)
    check_thread(resp["thread"], owner)
    assert resp["thread"]["status"] == "done"
    decision = {"decision": "approve", "decided_by": owner, "approval_id": yes, "comment": "looks right"}
    assert [m["details"] for m in messages(resp["thread"])] == [decision]
    intent = client.get_intent(yes)["intent"]
    assert (intent["status"], intent["result"]) == ("COMPLETED", decision)

    resp = client.reject_inbox_thread(no, {}, owner_agent=owner)
    schema("api.inbox.thread.response.v1.json", resp)
    intent = client.get_intent(no)["intent"]
    assert intent["status"] == "FAILED"
    assert intent["error"]["code"] == "rejected"
    assert my_tasks(server, http, schema, owner) == []

    # Decided once: a second decision is a conflict.
    with pytest.raises(AxmeValidationError) as exc:
        client.reject_inbox_thread(yes, {}, owner_agent=owner)
    assert_error(exc.value, 409, "intent_terminal")


def test_a_task_s_rules_hold_for_its_decisions(client: AxmeClient, schema) -> None:
    owner = addr("strict")
    intent_id = create_task(client, owner, allowed_outcomes=["approved"], required_comment=True)
    with pytest.raises(AxmeValidationError) as exc:
        client.reject_inbox_thread(intent_id, {"comment": "no"}, owner_agent=owner)
    assert_error(exc.value, 422, "schema_invalid", "decision")
    with pytest.raises(AxmeValidationError) as exc:
        client.approve_inbox_thread(intent_id, {}, owner_agent=owner)
    assert_error(exc.value, 422, "schema_invalid", "comment")
    assert get_thread(client, schema, intent_id, owner)["status"] == "pending"
    resp = client.approve_inbox_thread(intent_id, {"comment": "checked"}, owner_agent=owner)
    schema("api.inbox.thread.response.v1.json", resp)
    assert resp["thread"]["intent_status"] == "COMPLETED"


def test_delegate_hands_the_task_to_another_owner(
    server: AxmeServer, client: AxmeClient, http: httpx.Client, schema
) -> None:
    owner, delegate = addr("delegator"), addr("delegate")
    intent_id = create_task(client, owner)
    payload = {"delegate_to": delegate, "note": "you know this one"}
    schema("api.inbox.delegate.request.v1.json", payload)
    resp = client.delegate_inbox_thread(intent_id, payload, owner_agent=owner)
    schema("api.inbox.thread.response.v1.json", resp)
    check_thread(resp["thread"], owner)
    assert resp["thread"]["to_agent"] == delegate
    [note] = messages(resp["thread"])
    assert (note["event_type"], note["details"]) == ("inbox.delegation", payload)
    assert "intent.transfer" in [e["event_type"] for e in resp["thread"]["timeline"]]

    listed = client.list_inbox(owner_agent=delegate)
    schema("api.inbox.list.response.v1.json", listed)
    [thread] = listed["threads"]
    assert (thread["thread_id"], thread["role"], thread["status"]) == (intent_id, "delegate", "pending")
    assert my_tasks(server, http, schema, delegate) == [intent_id]
    resp = client.approve_inbox_thread(intent_id, {}, owner_agent=delegate)
    assert resp["thread"]["result"]["decided_by"] == delegate

    with pytest.raises(AxmeValidationError) as exc:
        client.delegate_inbox_thread(intent_id, {"delegate_to": addr("late")}, owner_agent=owner)
    assert_error(exc.value, 409, "intent_terminal")
    fresh = create_task(client, owner)
    with pytest.raises(AxmeValidationError) as exc:
        client.delegate_inbox_thread(fresh, {"note": "to whom?"}, owner_agent=owner)
    assert_error(exc.value, 422, "schema_invalid", "delegate_to")


def test_decide_approval(client: AxmeClient, schema) -> None:
    owner = addr("decider")
    yes, no = create_task(client, owner), create_task(client, owner)
    schema("api.approvals.decision.request.v1.json", {"decision": "approve", "comment": "fine"})
    resp = client.decide_approval(yes, decision="approve", comment="fine")
    schema("api.approvals.decision.response.v1.json", resp)
    assert resp["approval"]["approval_id"] == yes
    assert (resp["approval"]["decision"], resp["approval"]["comment"]) == ("approve", "fine")
    intent = client.get_intent(yes)["intent"]
    assert intent["status"] == "COMPLETED"
    assert intent["result"]["decided_by"] == owner

    resp = client.decide_approval(no, decision="reject")
    schema("api.approvals.decision.response.v1.json", resp)
    assert resp["approval"]["comment"] is None
    assert client.get_intent(no)["intent"]["error"]["code"] == "rejected"

    with pytest.raises(AxmeValidationError) as exc:
        client.decide_approval(yes, decision="approve")
    assert_error(exc.value, 409, "intent_terminal")
    with pytest.raises(AxmeValidationError) as exc:
        client.decide_approval(create_task(client, owner), decision="maybe")
    assert_error(exc.value, 422, "schema_invalid", "decision")
    with pytest.raises(AxmeHttpError) as exc:
        client.decide_approval(new_id(), decision="approve")
    assert_error(exc.value, 404, "thread_not_found")
