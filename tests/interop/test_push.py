"""Push signatures checked by an independent verifier: the ``standardwebhooks`` package from PyPI.

A small ``http.server`` receiver in a thread records every push (raw body bytes and headers). The
handler push of an ``http`` agent and the observer pushes of webhook subscriptions (created through
the official SDK's ``upsert_webhook_subscription`` / ``publish_webhook_event``) must verify with
``standardwebhooks.Webhook(secret).verify(body, headers)``; a tampered body, id or timestamp, or the
wrong secret, must not. AXME-shaped responses are checked against the AXP schemas too.
"""

from __future__ import annotations

import base64
import os
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import httpx
import pytest
from axme_sdk import AxmeClient
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from conftest import AxmeServer

WAIT_S = 15.0


class Receiver:
    """Answers every POST with 200 and records ``(body bytes, headers)``."""

    def __init__(self) -> None:
        self.hits: list[tuple[bytes, dict[str, str]]] = []
        self.arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()
                with receiver.arrived:
                    receiver.hits.append((body, headers))
                    receiver.arrived.notify_all()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def wait(self, n: int) -> list[tuple[bytes, dict[str, str]]]:
        deadline = time.monotonic() + WAIT_S
        with self.arrived:
            while len(self.hits) < n:
                left = deadline - time.monotonic()
                assert left > 0, f"the receiver got {len(self.hits)} push(es), expected {n}"
                self.arrived.wait(left)
            return list(self.hits)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def admin(server: AxmeServer) -> dict[str, str]:
    return {"x-api-key": server.api_key}


def create_intent(client: AxmeClient, to_agent: str) -> str:
    body = {"intent_type": "interop.push.v1", "to_agent": to_agent, "payload": {"n": 1}}
    resp = client.create_intent(body, correlation_id=str(uuid.uuid4()))
    assert resp["ok"] is True, resp
    return resp["intent_id"]


def assert_refused(secret: str | bytes, body: bytes, headers: dict[str, str]) -> None:
    """The genuine push verifies; every tampered variant of it does not."""
    wh = Webhook(secret)
    wh.verify(body, headers)
    tampered_body = body.replace(b'"', b"'", 1)
    assert tampered_body != body
    variants = [
        (tampered_body, headers),
        (body + b" ", headers),
        (body, {**headers, "webhook-id": headers["webhook-id"] + "x"}),
        (body, {**headers, "webhook-timestamp": str(int(headers["webhook-timestamp"]) + 1)}),
    ]
    for data, hdrs in variants:
        with pytest.raises(WebhookVerificationError):
            wh.verify(data, hdrs)
    with pytest.raises(WebhookVerificationError):
        Webhook(base64.b64encode(os.urandom(32)).decode()).verify(body, headers)


def wait_status(client: AxmeClient, intent_id: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_S
    while True:
        intent = client.get_intent(intent_id)["intent"]
        if intent["status"] == status:
            return intent
        assert time.monotonic() < deadline, f"intent stayed {intent['status']}, expected {status}"
        time.sleep(0.05)


def test_a_handler_push_verifies_with_standardwebhooks(
    server: AxmeServer, client: AxmeClient, receiver: Receiver
) -> None:
    address = f"agent://interop/push-{uuid.uuid4().hex[:8]}"
    r = httpx.post(
        server.url("/v1/agents"),
        json={"address": address, "delivery_mode": "http", "webhook_url": receiver.url},
        headers=admin(server),
        timeout=30.0,
    )
    assert r.status_code == 200, r.text
    secret = r.json()["agent"]["webhook_secret"]
    assert secret.startswith("whsec_")

    intent_id = create_intent(client, address)
    body, headers = receiver.wait(1)[0]
    assert headers["content-type"] == "application/json"
    assert headers["webhook-signature"].startswith("v1,")
    payload = Webhook(secret).verify(body, headers)
    assert payload["type"] == "intent.submitted"
    assert payload["data"]["intent"]["intent_id"] == intent_id
    assert payload["data"]["delivery"] == {"delivery_id": headers["webhook-id"], "attempt": 1}
    assert_refused(secret, body, headers)
    wait_status(client, intent_id, "DELIVERED")


def test_an_observer_push_verifies_with_standardwebhooks(
    server: AxmeServer, client: AxmeClient, receiver: Receiver
) -> None:
    address = f"agent://interop/observed-{uuid.uuid4().hex[:8]}"
    resp = client.upsert_webhook_subscription(
        {"callback_url": receiver.url, "event_types": ["intent.created"], "to_agent": address}
    )
    sub = resp["subscription"]
    secret = sub["secret"]
    assert secret.startswith("whsec_") and sub["secret_hint"] == secret[-4:]

    intent_id = create_intent(client, address)
    body, headers = receiver.wait(1)[0]
    payload = Webhook(secret).verify(body, headers)
    assert payload["type"] == "intent.created"
    assert payload["data"]["event"]["event_type"] == "intent.created"
    assert payload["data"]["event"]["intent_id"] == intent_id
    assert payload["data"]["intent"]["intent_id"] == intent_id
    assert_refused(secret, body, headers)
    client.delete_webhook_subscription(sub["subscription_id"])


def test_a_plain_subscription_secret_is_the_raw_hmac_key(
    server: AxmeServer, client: AxmeClient, receiver: Receiver, schema: Any
) -> None:
    plain = "interop-plain-secret-" + uuid.uuid4().hex[:8]
    resp = client.upsert_webhook_subscription(
        {"callback_url": receiver.url, "event_types": ["intent.submitted"], "secret": plain}
    )
    schema("api.webhooks.subscriptions.response.v1.json", resp)
    create_intent(client, "agent://interop/plain-secret")
    body, headers = receiver.wait(1)[0]
    Webhook(plain.encode()).verify(body, headers)
    assert_refused(plain.encode(), body, headers)
    schema(
        "api.webhooks.subscriptions.delete.response.v1.json",
        client.delete_webhook_subscription(resp["subscription"]["subscription_id"]),
    )


def test_a_published_event_and_its_replay_verify(
    server: AxmeServer, client: AxmeClient, receiver: Receiver, schema: Any
) -> None:
    key = os.urandom(32)
    secret = "whsec_" + base64.b64encode(key).decode()
    sub = client.upsert_webhook_subscription(
        {"callback_url": receiver.url, "event_types": ["inbox.reply_received"], "secret": secret}
    )
    schema("api.webhooks.subscriptions.response.v1.json", sub)
    published = client.publish_webhook_event(
        {"event_type": "inbox.reply_received", "source": "interop", "payload": {"text": "hé"}}
    )
    schema("api.webhooks.events.response.v1.json", published)
    assert published["queued_deliveries"] == 1
    body, headers = receiver.wait(1)[0]
    payload = Webhook(secret).verify(body, headers)
    assert payload["type"] == "inbox.reply_received"
    assert payload["data"]["payload"] == {"text": "hé"}
    assert_refused(key, body, headers)

    # Replay re-sends deliveries that are no longer pending: wait for the first to be delivered.
    deadline = time.monotonic() + WAIT_S
    while True:
        r = httpx.get(server.url(f"/v1/deliveries/{headers['webhook-id']}"), headers=admin(server), timeout=30.0)
        assert r.status_code == 200, r.text
        if r.json()["delivery"]["status"] == "delivered":
            break
        assert time.monotonic() < deadline, r.text
        time.sleep(0.05)
    replayed = client.replay_webhook_event(published["event_id"])
    assert (replayed["queued_deliveries"], replayed["pending"], replayed["delivered"]) == (1, 1, 0)
    schema("api.webhooks.events.replay.response.v1.json", replayed)
    body2, headers2 = receiver.wait(2)[1]
    assert headers2["webhook-id"] == headers["webhook-id"]
    Webhook(secret).verify(body2, headers2)
    client.delete_webhook_subscription(sub["subscription"]["subscription_id"])
