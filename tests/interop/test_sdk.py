"""The official AXME Python SDK (PyPI ``axme`` 0.2.0) against the real axme binary.

Every test talks to a live ``axme serve`` (see conftest.py) through ``axme_sdk.AxmeClient``, or through
plain httpx for what the SDK does not expose (Bearer auth, trace headers, the extension endpoints), and
asserts concrete values: statuses, sequence numbers, error codes and fields, and the AXP JSON schemas.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from axme_sdk import (
    AxmeAuthError,
    AxmeClient,
    AxmeClientConfig,
    AxmeHttpError,
    AxmeValidationError,
)

from conftest import AxmeServer, make_client, start_server

TO_AGENT = "agent://interop/worker"
FROM_AGENT = "agent://interop/client"
REPLY_TO = "agent://interop/requester"
INTENT_TYPE = "interop.task.v1"
ERROR_CODE_RE = re.compile(r"^[a-z0-9_:.\-]{3,128}$")
TERMINAL = {"COMPLETED", "FAILED", "CANCELED", "TIMED_OUT"}


# --------------------------------------------------------------------------------------------------
# helpers


def new_id() -> str:
    return str(uuid.uuid4())


def intent_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "intent_type": INTENT_TYPE,
        "to_agent": TO_AGENT,
        "from_agent": FROM_AGENT,
        "payload": {"task": "summarize", "n": 3, "tags": ["a", "b"]},
    }
    body.update(overrides)
    return body


def create(client: AxmeClient, **overrides: Any) -> str:
    resp = client.create_intent(intent_body(**overrides), correlation_id=new_id())
    assert resp["ok"] is True
    assert resp["status"] == "SUBMITTED"
    return resp["intent_id"]


def assert_uuid(value: Any) -> None:
    assert isinstance(value, str), value
    assert str(uuid.UUID(value)) == value.lower(), f"not a canonical UUID: {value!r}"


def assert_utc(value: Any) -> datetime:
    assert isinstance(value, str), value
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() == timedelta(0), f"timestamp is not UTC: {value!r}"
    return parsed


def assert_error_body(body: Any, *, code: str | None = None, field: str | None = None) -> dict[str, Any]:
    """The AXME error body: {"error":{"code","message","details":{}},"detail":"..."}."""
    assert isinstance(body, dict), f"error body is not a JSON object: {body!r}"
    err = body.get("error")
    assert isinstance(err, dict), f"no error object in {body!r}"
    assert isinstance(err.get("code"), str) and ERROR_CODE_RE.match(err["code"]), f"bad error.code in {body!r}"
    assert isinstance(err.get("message"), str) and err["message"], f"empty error.message in {body!r}"
    assert isinstance(err.get("details"), dict), f"error.details is not an object in {body!r}"
    assert isinstance(body.get("detail"), str) and body["detail"], f"no top-level detail string in {body!r}"
    assert "ok" not in body or body["ok"] is False, body
    if code is not None:
        assert err["code"] == code, f"expected error.code {code!r}, got {body!r}"
    if field is not None:
        assert err["details"].get("field") == field, f"expected error.details.field {field!r}, got {body!r}"
    return err


def events_of(client: AxmeClient, intent_id: str, **kw: Any) -> list[dict[str, Any]]:
    resp = client.list_intent_events(intent_id, **kw)
    assert resp["ok"] is True
    assert isinstance(resp["events"], list)
    return resp["events"]


def status_of(client: AxmeClient, intent_id: str) -> str:
    return client.get_intent(intent_id)["intent"]["status"]


def api_headers(server: AxmeServer) -> dict[str, str]:
    return {"x-api-key": server.api_key}


# --------------------------------------------------------------------------------------------------
# health and capabilities


def test_schemas_present(schema) -> None:
    if not schema.available:
        pytest.skip(f"AXP schemas not found at {schema.directory}: schema validation is skipped in this run")
    assert (schema.directory / "api.intents.create.response.v1.json").is_file()


def test_health(client: AxmeClient) -> None:
    health = client.health()
    assert isinstance(health, dict)
    assert health["ok"] is True


def test_capabilities(client: AxmeClient, schema) -> None:
    caps = client.get_capabilities()
    schema("api.capabilities.get.response.v1.json", caps)
    assert caps["ok"] is True
    assert len(caps["capabilities"]) >= 1
    assert all(t.startswith("intent.") and t.endswith(".v1") for t in caps["supported_intent_types"])


# --------------------------------------------------------------------------------------------------
# create / get / events


def test_create_get_and_events(client: AxmeClient, schema) -> None:
    cid = new_id()
    payload = {"task": "summarize", "doc": {"title": "Q3", "pages": 12}, "unicode": "héllo ✓"}
    created = client.create_intent(
        {"intent_type": INTENT_TYPE, "to_agent": TO_AGENT, "from_agent": FROM_AGENT, "payload": payload},
        correlation_id=cid,
    )
    schema("api.intents.create.response.v1.json", created)
    assert created["ok"] is True
    assert created["status"] == "SUBMITTED"
    assert_uuid(created["intent_id"])
    created_at = assert_utc(created["created_at"])
    assert abs(datetime.now(created_at.tzinfo) - created_at) < timedelta(minutes=5)
    intent_id = created["intent_id"]

    got = client.get_intent(intent_id)
    schema("api.intents.get.response.v1.json", got)
    intent = got["intent"]
    assert intent["intent_id"] == intent_id
    assert intent["status"] == "SUBMITTED"
    assert intent["intent_type"] == INTENT_TYPE
    assert intent["correlation_id"] == cid
    assert intent["to_agent"] == TO_AGENT
    assert isinstance(intent["from_agent"], str) and intent["from_agent"]
    assert intent["payload"] == payload
    assert assert_utc(intent["created_at"]) == created_at

    listed = client.list_intent_events(intent_id)
    schema("api.intents.events.list.response.v1.json", listed)
    events = listed["events"]
    assert [e["seq"] for e in events] == [1, 2]
    assert [e["event_type"] for e in events] == ["intent.created", "intent.submitted"]
    assert [e["status"] for e in events] == ["CREATED", "SUBMITTED"]
    assert all(e["intent_id"] == intent_id for e in events)
    ats = [assert_utc(e["at"]) for e in events]
    assert ats == sorted(ats)

    after_1 = client.list_intent_events(intent_id, since=1)
    schema("api.intents.events.list.response.v1.json", after_1)
    assert [(e["seq"], e["event_type"]) for e in after_1["events"]] == [(2, "intent.submitted")]
    assert events_of(client, intent_id, since=2) == []


def test_send_intent_returns_id(client: AxmeClient) -> None:
    intent_id = client.send_intent(intent_body())
    assert_uuid(intent_id)
    assert status_of(client, intent_id) == "SUBMITTED"


def test_from_agent_is_optional(client: AxmeClient, schema) -> None:
    body = intent_body()
    del body["from_agent"]
    created = client.create_intent(body, correlation_id=new_id())
    got = client.get_intent(created["intent_id"])
    schema("api.intents.get.response.v1.json", got)
    assert isinstance(got["intent"]["from_agent"], str) and got["intent"]["from_agent"]


def test_get_unknown_intent_is_404(client: AxmeClient) -> None:
    with pytest.raises(AxmeHttpError) as exc:
        client.get_intent(new_id())
    assert exc.value.status_code == 404
    assert_error_body(exc.value.body)


def test_created_ids_are_distinct(client: AxmeClient) -> None:
    ids = {create(client) for _ in range(5)}
    assert len(ids) == 5


# --------------------------------------------------------------------------------------------------
# idempotency


def test_idempotent_create_same_body_returns_original(client: AxmeClient, schema) -> None:
    key = f"interop-{new_id()}"
    cid = new_id()
    body = intent_body(payload={"order": 17})
    first = client.create_intent(body, correlation_id=cid, idempotency_key=key)
    second = client.create_intent(body, correlation_id=cid, idempotency_key=key)
    schema("api.intents.create.response.v1.json", second)
    assert second["intent_id"] == first["intent_id"]
    assert second["status"] == first["status"] == "SUBMITTED"
    assert assert_utc(second["created_at"]) == assert_utc(first["created_at"])
    # the replay created nothing: still exactly the two creation events
    assert [e["seq"] for e in events_of(client, first["intent_id"])] == [1, 2]

    # a different key is a different request, even with the same body
    other = client.create_intent(body, correlation_id=cid, idempotency_key=f"interop-{new_id()}")
    assert other["intent_id"] != first["intent_id"]


def test_idempotency_key_reused_with_other_payload_is_409(client: AxmeClient) -> None:
    key = f"interop-{new_id()}"
    cid = new_id()
    first = client.create_intent(intent_body(payload={"order": 1}), correlation_id=cid, idempotency_key=key)
    with pytest.raises(AxmeValidationError) as exc:
        client.create_intent(intent_body(payload={"order": 2}), correlation_id=cid, idempotency_key=key)
    assert exc.value.status_code == 409
    assert_error_body(exc.value.body)
    # nothing changed
    intent = client.get_intent(first["intent_id"])["intent"]
    assert intent["payload"] == {"order": 1}
    assert [e["seq"] for e in events_of(client, first["intent_id"])] == [1, 2]


def test_idempotent_resolve_replays_the_original_result(client: AxmeClient) -> None:
    intent_id = create(client)
    key = f"interop-{new_id()}"
    body = {"status": "COMPLETED", "result": {"answer": 1}}
    first = client.resolve_intent(intent_id, body, idempotency_key=key)
    second = client.resolve_intent(intent_id, body, idempotency_key=key)
    assert second["event"]["seq"] == first["event"]["seq"] == 3
    assert second["event"]["event_type"] == "intent.completed"
    assert [e["seq"] for e in events_of(client, intent_id)] == [1, 2, 3]


# --------------------------------------------------------------------------------------------------
# resolve


def test_resolve_completed_without_reply_to(client: AxmeClient, schema) -> None:
    intent_id = create(client)
    resolved = client.resolve_intent(intent_id, {"status": "COMPLETED", "result": {"answer": 42}})
    schema("api.intents.resolve.response.v1.json", resolved)
    assert resolved["ok"] is True
    assert resolved["intent"]["intent_id"] == intent_id
    assert resolved["intent"]["status"] == "COMPLETED"
    event = resolved["event"]
    assert event["intent_id"] == intent_id
    assert event["seq"] == 3
    assert event["event_type"] == "intent.completed"
    assert event["status"] == "COMPLETED"
    assert resolved["completion_delivery"]["delivered"] is False

    got = client.get_intent(intent_id)
    schema("api.intents.get.response.v1.json", got)
    assert got["intent"]["status"] == "COMPLETED"
    events = events_of(client, intent_id)
    assert [(e["seq"], e["event_type"], e["status"]) for e in events] == [
        (1, "intent.created", "CREATED"),
        (2, "intent.submitted", "SUBMITTED"),
        (3, "intent.completed", "COMPLETED"),
    ]


def test_resolve_with_reply_to_delivers_completion(client: AxmeClient, schema) -> None:
    intent_id = create(client, reply_to=REPLY_TO)
    assert client.get_intent(intent_id)["intent"]["reply_to"] == REPLY_TO
    resolved = client.resolve_intent(intent_id, {"status": "COMPLETED", "result": {"ok": "yes"}})
    schema("api.intents.resolve.response.v1.json", resolved)
    delivery = resolved["completion_delivery"]
    assert delivery["delivered"] is True
    assert delivery["reply_to"] == REPLY_TO
    assert delivery["thread_id"] == intent_id


def test_resolve_twice_is_409_and_changes_nothing(client: AxmeClient) -> None:
    intent_id = create(client)
    client.resolve_intent(intent_id, {"status": "COMPLETED", "result": {"n": 1}})
    for again in (
        {"status": "COMPLETED", "result": {"n": 2}},
        {"status": "CANCELED", "reason": "too late"},
        {"status": "FAILED", "error": {"code": "boom"}},
    ):
        with pytest.raises(AxmeValidationError) as exc:
            client.resolve_intent(intent_id, again)
        assert exc.value.status_code == 409, again
        assert_error_body(exc.value.body)
    assert status_of(client, intent_id) == "COMPLETED"
    assert [e["seq"] for e in events_of(client, intent_id)] == [1, 2, 3]


@pytest.mark.parametrize(
    ("status", "missing", "value", "event_type"),
    [
        ("FAILED", "error", {"code": "tool_crashed", "message": "the tool crashed"}, "intent.failed"),
        ("CANCELED", "reason", "the requester changed their mind", "intent.canceled"),
    ],
)
def test_resolve_requires_error_or_reason(
    client: AxmeClient, schema, status: str, missing: str, value: Any, event_type: str
) -> None:
    intent_id = create(client)
    with pytest.raises(AxmeValidationError) as exc:
        client.resolve_intent(intent_id, {"status": status})
    assert exc.value.status_code == 422
    assert_error_body(exc.value.body, field=missing)
    assert status_of(client, intent_id) == "SUBMITTED"
    assert [e["seq"] for e in events_of(client, intent_id)] == [1, 2]

    resolved = client.resolve_intent(intent_id, {"status": status, missing: value})
    schema("api.intents.resolve.response.v1.json", resolved)
    assert resolved["intent"]["status"] == status
    assert resolved["event"]["event_type"] == event_type
    assert resolved["event"]["status"] == status
    assert resolved["event"]["seq"] == 3
    assert status_of(client, intent_id) == status


def test_resolve_unknown_status_is_422(client: AxmeClient) -> None:
    intent_id = create(client)
    with pytest.raises(AxmeValidationError) as exc:
        client.resolve_intent(intent_id, {"status": "DONE", "result": {}})
    assert exc.value.status_code == 422
    assert_error_body(exc.value.body, field="status")
    assert status_of(client, intent_id) == "SUBMITTED"


# --------------------------------------------------------------------------------------------------
# wait_for (stream, with the SDK's fallback to polling /events)


def test_wait_for_returns_terminal_event_resolved_meanwhile(server: AxmeServer, client: AxmeClient) -> None:
    intent_id = create(client)

    # A second SDK client whose transport tells us when wait_for has sent its first request, so the
    # intent is resolved while wait_for is observing (whether through the stream or by polling).
    observing = threading.Event()

    def on_request(request: httpx.Request) -> None:
        if request.url.path.startswith(f"/v1/intents/{intent_id}/events"):
            observing.set()

    transport = httpx.Client(
        base_url=server.base_url,
        timeout=15.0,
        headers={"x-api-key": server.api_key, "Content-Type": "application/json"},
        event_hooks={"request": [on_request]},
    )
    watcher = AxmeClient(AxmeClientConfig(base_url=server.base_url, api_key=server.api_key), http_client=transport)
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["event"] = watcher.wait_for(
                intent_id, timeout_seconds=40, wait_seconds=10, poll_interval_seconds=0.2
            )
        except BaseException as e:  # noqa: BLE001 - reported in the main thread
            outcome["error"] = e

    thread = threading.Thread(target=run, name="wait_for", daemon=True)
    thread.start()
    try:
        assert observing.wait(timeout=15), "wait_for never requested the intent's events"
        assert thread.is_alive(), f"wait_for returned before the intent was resolved: {outcome!r}"
        started = time.monotonic()
        client.resolve_intent(intent_id, {"status": "COMPLETED", "result": {"from": "main thread"}})
        thread.join(timeout=45)
        assert not thread.is_alive(), "wait_for did not return after the intent was resolved"
    finally:
        thread.join(timeout=1)
        transport.close()
    if "error" in outcome:
        raise outcome["error"]
    event = outcome["event"]
    assert event["intent_id"] == intent_id
    assert event["event_type"] == "intent.completed"
    assert event["status"] == "COMPLETED"
    assert event["seq"] == 3
    # delivered within one stream window (10 s) plus one poll, not after the 40 s timeout
    assert time.monotonic() - started < 25


def test_wait_for_already_resolved_returns_immediately(client: AxmeClient) -> None:
    intent_id = create(client)
    client.resolve_intent(intent_id, {"status": "CANCELED", "reason": "not needed"})
    t0 = time.monotonic()
    event = client.wait_for(intent_id, timeout_seconds=20, poll_interval_seconds=0.2)
    assert time.monotonic() - t0 < 5
    assert event["intent_id"] == intent_id
    assert event["event_type"] == "intent.canceled"
    assert event["status"] == "CANCELED"
    assert event["seq"] == 3


def test_observe_yields_whole_history_in_order(client: AxmeClient) -> None:
    intent_id = create(client)
    client.resolve_intent(intent_id, {"status": "COMPLETED", "result": {}})
    seen = list(client.observe(intent_id, timeout_seconds=20, poll_interval_seconds=0.2))
    assert [(e["seq"], e["event_type"]) for e in seen] == [
        (1, "intent.created"),
        (2, "intent.submitted"),
        (3, "intent.completed"),
    ]


# --------------------------------------------------------------------------------------------------
# auth and trace headers


def test_wrong_api_key_is_401(server: AxmeServer) -> None:
    bad = make_client(server, api_key="definitely-not-the-key")
    try:
        with pytest.raises(AxmeAuthError) as exc:
            bad.create_intent(intent_body(), correlation_id=new_id())
        assert exc.value.status_code == 401
        assert_error_body(exc.value.body, code="auth_failed")
        with pytest.raises(AxmeAuthError) as exc:
            bad.get_intent(new_id())
        assert exc.value.status_code == 401
    finally:
        bad.close()


def test_missing_api_key_is_401(http: httpx.Client) -> None:
    r = http.post("/v1/intents", json={**intent_body(), "correlation_id": new_id()})
    assert r.status_code == 401, r.text
    assert_error_body(r.json(), code="auth_failed")


def test_bearer_token_is_accepted(server: AxmeServer, http: httpx.Client, schema) -> None:
    bearer = {"Authorization": f"Bearer {server.api_key}"}
    r = http.post("/v1/intents", json={**intent_body(), "correlation_id": new_id()}, headers=bearer)
    assert r.status_code == 200, r.text
    schema("api.intents.create.response.v1.json", r.json())
    intent_id = r.json()["intent_id"]
    r = http.get(f"/v1/intents/{intent_id}", headers=bearer)
    assert r.status_code == 200, r.text
    assert r.json()["intent"]["intent_id"] == intent_id

    r = http.get(f"/v1/intents/{intent_id}", headers={"Authorization": "Bearer wrong-key"})
    assert r.status_code == 401, r.text
    assert_error_body(r.json())


def test_trace_and_request_ids_are_echoed(server: AxmeServer, http: httpx.Client) -> None:
    trace, request_id = new_id(), f"interop-req-{new_id()}"
    r = http.get("/v1/capabilities", headers={**api_headers(server), "X-Trace-Id": trace, "x-request-id": request_id})
    assert r.status_code == 200, r.text
    assert r.headers.get("x-trace-id") == trace
    assert r.headers.get("x-request-id") == request_id

    # generated when absent, and a new one per request
    generated = []
    for _ in range(2):
        r = http.get("/v1/capabilities", headers=api_headers(server))
        assert r.status_code == 200, r.text
        assert r.headers.get("x-trace-id"), dict(r.headers)
        assert r.headers.get("x-request-id"), dict(r.headers)
        generated.append(r.headers["x-request-id"])
    assert generated[0] != generated[1]


def test_trace_id_is_echoed_on_errors(server: AxmeServer, client: AxmeClient, http: httpx.Client) -> None:
    trace = new_id()
    with pytest.raises(AxmeValidationError) as exc:
        client.create_intent(intent_body(intent_type="Bad Type"), correlation_id=new_id(), trace_id=trace)
    assert exc.value.trace_id == trace
    assert exc.value.request_id

    r = http.get(f"/v1/intents/{new_id()}", headers={"X-Trace-Id": trace})
    assert r.status_code == 401
    assert r.headers.get("x-trace-id") == trace
    assert r.headers.get("x-request-id")


# --------------------------------------------------------------------------------------------------
# validation


def _without(key: str) -> dict[str, Any]:
    body = intent_body()
    del body[key]
    return body


@pytest.mark.parametrize(
    ("field", "body", "correlation_id"),
    [
        ("intent_type", intent_body(intent_type="Not A Type"), None),
        ("intent_type", intent_body(intent_type="interop.task"), None),
        ("correlation_id", intent_body(), "not-a-uuid"),
        ("to_agent", _without("to_agent"), None),
        ("intent_type", _without("intent_type"), None),
        ("payload", intent_body(payload=["not", "an", "object"]), None),
        ("payload", intent_body(payload="text"), None),
        ("payload", _without("payload"), None),
    ],
    ids=[
        "intent_type-pattern",
        "intent_type-no-version",
        "correlation_id-not-uuid",
        "to_agent-missing",
        "intent_type-missing",
        "payload-array",
        "payload-string",
        "payload-missing",
    ],
)
def test_invalid_create_is_422_naming_the_field(
    client: AxmeClient, field: str, body: dict[str, Any], correlation_id: str | None
) -> None:
    with pytest.raises(AxmeValidationError) as exc:
        client.create_intent(body, correlation_id=correlation_id or new_id())
    assert exc.value.status_code == 422, exc.value.body
    assert_error_body(exc.value.body, code="schema_invalid", field=field)


def test_payload_over_128_kib_is_413(client: AxmeClient) -> None:
    # just under the limit is fine...
    ok = client.create_intent(intent_body(payload={"blob": "x" * (120 * 1024)}), correlation_id=new_id())
    assert ok["status"] == "SUBMITTED"
    assert len(client.get_intent(ok["intent_id"])["intent"]["payload"]["blob"]) == 120 * 1024
    # ...just over it is not
    with pytest.raises(AxmeValidationError) as exc:
        client.create_intent(intent_body(payload={"blob": "x" * (128 * 1024 + 1)}), correlation_id=new_id())
    assert exc.value.status_code == 413
    assert_error_body(exc.value.body)


def test_malformed_json_is_400(server: AxmeServer, http: httpx.Client) -> None:
    r = http.post(
        "/v1/intents",
        content=b'{"intent_type": "interop.task.v1", ',
        headers={**api_headers(server), "content-type": "application/json"},
    )
    assert r.status_code == 400, r.text
    assert_error_body(r.json())


# --------------------------------------------------------------------------------------------------
# resume and the extension endpoints (ack, progress)


def test_resume_non_waiting_is_409(client: AxmeClient) -> None:
    intent_id = create(client)
    with pytest.raises(AxmeValidationError) as exc:
        client.resume_intent(intent_id, {"reason": "nothing to resume"})
    assert exc.value.status_code == 409
    assert_error_body(exc.value.body)
    assert status_of(client, intent_id) == "SUBMITTED"
    assert [e["seq"] for e in events_of(client, intent_id)] == [1, 2]

    client.resolve_intent(intent_id, {"status": "COMPLETED", "result": {}})
    with pytest.raises(AxmeValidationError) as exc:
        client.resume_intent(intent_id, {})
    assert exc.value.status_code == 409
    assert status_of(client, intent_id) == "COMPLETED"


def test_ack_progress_resume_resolve_lifecycle(server: AxmeServer, client: AxmeClient, schema) -> None:
    intent_id = create(client)
    h = api_headers(server)
    with httpx.Client(base_url=server.base_url, timeout=30.0, headers=h) as http:
        r = http.post(f"/v1/intents/{intent_id}/ack", json={"actor": "agent://interop/worker"})
        assert r.status_code == 200, r.text
        assert r.json()["ok"] is True
        assert status_of(client, intent_id) == "ACKNOWLEDGED"

        # WAITING needs a waiting_reason
        r = http.post(f"/v1/intents/{intent_id}/progress", json={"status": "WAITING"})
        assert r.status_code == 422, r.text
        assert_error_body(r.json(), field="waiting_reason")
        assert status_of(client, intent_id) == "ACKNOWLEDGED"

        r = http.post(
            f"/v1/intents/{intent_id}/progress",
            json={"status": "WAITING", "waiting_reason": "WAITING_FOR_HUMAN"},
        )
        assert r.status_code == 200, r.text
        assert r.json()["ok"] is True

    waiting = client.get_intent(intent_id)
    schema("api.intents.get.response.v1.json", waiting)
    assert waiting["intent"]["status"] == "WAITING"

    resumed = client.resume_intent(intent_id, {"reason": "the human said yes"})
    assert resumed["ok"] is True
    assert status_of(client, intent_id) == "IN_PROGRESS"

    resolved = client.resolve_intent(
        intent_id, {"status": "COMPLETED", "result": {"approved": True}, "actor": "agent://interop/worker"}
    )
    schema("api.intents.resolve.response.v1.json", resolved)

    listed = client.list_intent_events(intent_id)
    schema("api.intents.events.list.response.v1.json", listed)
    events = listed["events"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), "seq must be 1..n without gaps"
    # The lifecycle table has no SUBMITTED -> ACKNOWLEDGED move, so acking a SUBMITTED intent may pass
    # through DELIVERED first (one event per change); nothing else may appear.
    delivered = [("intent.delivered", "DELIVERED")] if events[2]["event_type"] == "intent.delivered" else []
    assert [(e["event_type"], e["status"]) for e in events] == [
        ("intent.created", "CREATED"),
        ("intent.submitted", "SUBMITTED"),
        *delivered,
        ("intent.acknowledged", "ACKNOWLEDGED"),
        ("intent.waiting", "WAITING"),
        ("intent.in_progress", "IN_PROGRESS"),
        ("intent.completed", "COMPLETED"),
    ]
    by_type = {e["event_type"]: e for e in events}
    assert by_type["intent.acknowledged"]["actor"] == "agent://interop/worker"
    assert by_type["intent.completed"]["actor"] == "agent://interop/worker"
    waiting_event = by_type["intent.waiting"]
    assert waiting_event["waiting_reason"] == "WAITING_FOR_HUMAN"
    assert resolved["event"]["seq"] == len(events) == 6 + len(delivered)
    ats = [assert_utc(e["at"]) for e in events]
    assert ats == sorted(ats)
    assert resolved["event"]["seq"] == events[-1]["seq"]


def test_progress_on_terminal_intent_is_409(server: AxmeServer, client: AxmeClient) -> None:
    intent_id = create(client)
    client.resolve_intent(intent_id, {"status": "COMPLETED", "result": {}})
    r = httpx.post(
        server.url(f"/v1/intents/{intent_id}/progress"),
        json={"status": "IN_PROGRESS"},
        headers=api_headers(server),
        timeout=30.0,
    )
    assert r.status_code == 409, r.text
    assert_error_body(r.json())
    assert [e["seq"] for e in events_of(client, intent_id)] == [1, 2, 3]


def test_every_success_body_has_ok_true(client: AxmeClient) -> None:
    intent_id = create(client)
    for body in (
        client.health(),
        client.get_capabilities(),
        client.get_intent(intent_id),
        client.list_intent_events(intent_id),
    ):
        assert body["ok"] is True, json.dumps(body)[:500]


# --------------------------------------------------------------------------------------------------
# durability through the SDK


def test_acknowledged_intent_survives_kill_9(fresh_server: AxmeServer) -> None:
    before = make_client(fresh_server)
    try:
        cid = new_id()
        created = before.create_intent(intent_body(payload={"durable": True}), correlation_id=cid)
        resolved_id = create(before)
        before.resolve_intent(resolved_id, {"status": "COMPLETED", "result": {"kept": 1}})
    finally:
        before.close()
    fresh_server.proc.kill()  # SIGKILL: no graceful shutdown, no checkpoint
    fresh_server.proc.wait(timeout=10)

    restarted = start_server(fresh_server.data.parent)
    after = make_client(restarted)
    try:
        intent = after.get_intent(created["intent_id"])["intent"]
        assert intent["status"] == "SUBMITTED"
        assert intent["correlation_id"] == cid
        assert intent["payload"] == {"durable": True}
        assert [e["seq"] for e in events_of(after, created["intent_id"])] == [1, 2]
        assert status_of(after, resolved_id) == "COMPLETED"
        assert [e["event_type"] for e in events_of(after, resolved_id)][-1] == "intent.completed"
    finally:
        after.close()
        restarted.stop()
