"""The official SDK's streaming calls (``observe``, ``wait_for``, ``listen``) against the real server.

``observe`` and ``wait_for`` read ``GET /v1/intents/{id}/events/stream``; ``listen`` reads the agent
feed ``GET /v1/agents/{address}/intents/stream`` and reconnects with ``since`` after each
``stream.timeout``. Each test checks the exact events or intents yielded, in order, and that the SDK got
them from the stream rather than from its fallback to polling.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
import uuid
from typing import Any, Iterator

import httpx
import pytest
from axme_sdk import AxmeClient, AxmeClientConfig

from conftest import AxmeServer

INTENT_TYPE = "interop.stream.v1"


def new_address(name: str) -> str:
    return f"agent://interop/{name}-{uuid.uuid4().hex[:8]}"


def create(client: AxmeClient, to_agent: str = "agent://interop/observed") -> str:
    body = {"intent_type": INTENT_TYPE, "to_agent": to_agent, "payload": {"n": 1}}
    resp = client.create_intent(body, correlation_id=str(uuid.uuid4()))
    assert resp["ok"] is True and resp["status"] == "SUBMITTED", resp
    return resp["intent_id"]


def progress(server: AxmeServer, intent_id: str, status: str) -> None:
    body: dict[str, Any] = {"status": status}
    if status == "WAITING":
        body["waiting_reason"] = "WAITING_FOR_TOOL"
    r = httpx.post(
        server.url(f"/v1/intents/{intent_id}/progress"),
        json=body,
        headers={"x-api-key": server.api_key},
        timeout=30.0,
    )
    assert r.status_code == 200, r.text


class Recording:
    """An SDK client whose transport records the path of every request it sends."""

    def __init__(self, server: AxmeServer) -> None:
        self.paths: list[str] = []
        self.sent = threading.Event()
        self.http = httpx.Client(
            base_url=server.base_url,
            timeout=30.0,
            headers={"x-api-key": server.api_key, "Content-Type": "application/json"},
            event_hooks={"request": [self._on_request]},
        )
        self.client = AxmeClient(
            AxmeClientConfig(base_url=server.base_url, api_key=server.api_key), http_client=self.http
        )

    def _on_request(self, request: httpx.Request) -> None:
        self.paths.append(request.url.path)
        self.sent.set()

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def recording(server: AxmeServer) -> Iterator[Recording]:
    r = Recording(server)
    yield r
    r.close()


def test_observe_yields_history_then_live_events_and_ends_at_the_terminal_event(
    server: AxmeServer, client: AxmeClient, recording: Recording, schema
) -> None:
    intent_id = create(client)
    observed = recording.client.observe(intent_id, wait_seconds=10, timeout_seconds=30)
    history = [next(observed), next(observed)]
    assert [(e["seq"], e["event_type"]) for e in history] == [(1, "intent.created"), (2, "intent.submitted")]

    # The stream is open (it just replayed the history): what follows is committed live.
    progress(server, intent_id, "IN_PROGRESS")
    progress(server, intent_id, "WAITING")
    client.resolve_intent(intent_id, {"status": "COMPLETED", "result": {"answer": 42}})
    live = list(observed)  # ends by itself after the terminal event

    seen = history + live
    assert seen == client.list_intent_events(intent_id)["events"]
    assert [(e["seq"], e["event_type"]) for e in live] == [
        (3, "intent.in_progress"),
        (4, "intent.waiting"),
        (5, "intent.completed"),
    ]
    schema("api.intents.events.list.response.v1.json", {"ok": True, "events": seen})
    assert recording.paths == [f"/v1/intents/{intent_id}/events/stream"], "one stream, no polling"


def test_observe_resumes_after_since(client: AxmeClient, recording: Recording) -> None:
    intent_id = create(client)
    client.resolve_intent(intent_id, {"status": "CANCELED", "reason": "not needed"})
    seen = list(recording.client.observe(intent_id, since=2, timeout_seconds=20))
    assert [(e["seq"], e["event_type"], e["status"]) for e in seen] == [(3, "intent.canceled", "CANCELED")]
    assert recording.paths == [f"/v1/intents/{intent_id}/events/stream"]


def test_wait_for_returns_the_terminal_event_from_the_live_stream(
    server: AxmeServer, client: AxmeClient, recording: Recording
) -> None:
    intent_id = create(client)
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["event"] = recording.client.wait_for(intent_id, wait_seconds=10, timeout_seconds=30)
        except BaseException as e:  # noqa: BLE001 - reported in the main thread
            outcome["error"] = e

    thread = threading.Thread(target=run, name="wait_for", daemon=True)
    thread.start()
    try:
        assert recording.sent.wait(timeout=15), "wait_for never opened the stream"
        progress(server, intent_id, "IN_PROGRESS")
        progress(server, intent_id, "WAITING")
        assert thread.is_alive(), f"wait_for returned before the terminal event: {outcome!r}"
        client.resolve_intent(intent_id, {"status": "FAILED", "error": {"code": "boom", "message": "no"}})
        thread.join(timeout=25)
        assert not thread.is_alive(), "wait_for did not return after the terminal event"
    finally:
        thread.join(timeout=1)
    if "error" in outcome:
        raise outcome["error"]
    event = outcome["event"]
    assert event == client.list_intent_events(intent_id)["events"][-1]
    assert (event["seq"], event["event_type"], event["status"]) == (5, "intent.failed", "FAILED")
    assert recording.paths == [f"/v1/intents/{intent_id}/events/stream"], "one stream, no polling"


def take(items: Iterator[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    got = list(itertools.islice(items, n))
    close = getattr(items, "close", None)
    if close is not None:
        close()  # ends the generator, closing its stream
    return got


def test_listen_yields_intents_sent_to_the_address_and_resumes_with_since(
    client: AxmeClient, recording: Recording
) -> None:
    address = new_address("listen")
    ids = [create(client, address) for _ in range(3)]
    create(client, new_address("someone-else"))

    first = take(recording.client.listen(address, wait_seconds=2, timeout_seconds=20), 3)
    assert [i["intent_id"] for i in first] == ids
    assert [i["event_type"] for i in first] == ["intent.submitted"] * 3
    assert all(i["to_agent"] == address for i in first)
    seqs = [i["seq"] for i in first]
    assert all(isinstance(s, int) for s in seqs) and seqs == sorted(set(seqs)), seqs
    # Handed over: the items say DELIVERED (what AXME's agents act on), and so do the intents.
    assert [(i["status"], i["lifecycle_status"]) for i in first] == [("DELIVERED", "DELIVERED")] * 3
    assert [client.get_intent(i)["intent"]["status"] for i in ids] == ["DELIVERED"] * 3

    client.resolve_intent(ids[0], {"status": "COMPLETED", "result": {}})
    later = create(client, address)
    # Terminal items are left out unless a status filter asks for them, as the SDK documents.
    resumed = take(recording.client.listen(address, since=seqs[-1], wait_seconds=2, timeout_seconds=20), 1)
    assert [(i["intent_id"], i["event_type"], i["status"]) for i in resumed] == [
        (later, "intent.submitted", "DELIVERED"),
    ]
    ended = take(
        recording.client.listen(address, since=seqs[-1], status="COMPLETED", wait_seconds=2, timeout_seconds=20), 1
    )
    assert [(i["intent_id"], i["event_type"]) for i in ended] == [(ids[0], "intent.completed")]
    assert seqs[-1] < ended[0]["seq"] < resumed[0]["seq"]
    assert all(p == f"/v1/agents/{address.removeprefix('agent://')}/intents/stream" for p in recording.paths)


def test_listen_picks_up_intents_sent_across_its_reconnections(client: AxmeClient, recording: Recording) -> None:
    address = new_address("later")
    got: queue.Queue[dict[str, Any] | BaseException] = queue.Queue()

    def run() -> None:
        try:
            for item in recording.client.listen(address, wait_seconds=1, timeout_seconds=30):
                got.put(item)
        except BaseException as e:  # noqa: BLE001 - TimeoutError ends the thread when the test is done
            got.put(e)

    threading.Thread(target=run, name="listen", daemon=True).start()
    assert recording.sent.wait(timeout=15), "listen never opened the stream"
    # Each wait is longer than the 1 s stream window, so listen has reconnected (with since) in between.
    time.sleep(1.5)
    first = create(client, address)
    time.sleep(1.5)
    second = create(client, address)
    items = [got.get(timeout=15) for _ in range(2)]
    assert all(isinstance(i, dict) for i in items), items
    assert [(i["intent_id"], i["event_type"]) for i in items] == [
        (first, "intent.submitted"),
        (second, "intent.submitted"),
    ]
    assert items[0]["seq"] < items[1]["seq"]
    assert len(recording.paths) >= 3, f"expected reconnections, saw {recording.paths}"
    assert got.empty(), "nothing else arrived"


def test_listen_times_out_when_nothing_arrives(recording: Recording) -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        take(recording.client.listen(new_address("quiet"), wait_seconds=1, timeout_seconds=2), 1)
    assert 1.5 < time.monotonic() - started < 15
