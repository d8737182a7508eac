"""What AXME's own programs rely on, driven by the official SDK (and by plain HTTP where AXME's CLI
or agents do it that way): ``listen()`` yields DELIVERED items, ``get_intent`` has
``lifecycle_status``, service accounts and their keys (``create_service_account``,
``list_service_accounts``, ``get_service_account``, ``create_service_account_key``,
``revoke_service_account_key``, ``list_agents``, ``get_agent``), ``initiator://`` senders, ``/v1/health``,
the CLI's bulk cancel, and an http agent that verifies ``X-Axme-Signature`` with Python's ``hmac``
the way ``examples/delivery/http`` does. AXME-shaped responses are checked against the AXP schemas.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import httpx
import pytest
from axme_sdk import AxmeClient
from axme_sdk.exceptions import AxmeAuthError, AxmeHttpError

from conftest import AxmeServer, make_client

INTENT_TYPE = "interop.compat.v1"
ORG = "6f1c9a4e-1d2b-4c3d-8e9f-0a1b2c3d4e5f"
WORKSPACE = "7a2b3c4d-5e6f-4a1b-9c8d-7e6f5a4b3c2d"


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def send(client: AxmeClient, to_agent: str, **extra: Any) -> str:
    body = {"intent_type": INTENT_TYPE, "to_agent": to_agent, "payload": {"order_id": "o-1"}, **extra}
    return client.send_intent(body)


def first(items: Iterator[dict[str, Any]]) -> dict[str, Any]:
    got = next(items)
    close = getattr(items, "close", None)
    if close is not None:
        close()
    return got


def test_get_intent_and_listen_show_lifecycle_status_and_delivered(client: AxmeClient, schema) -> None:
    address = f"agent://interop/{unique('listener')}"
    intent_id = send(client, address)
    got = client.get_intent(intent_id)
    schema("api.intents.get.response.v1.json", got)
    assert got["intent"]["lifecycle_status"] == got["intent"]["status"] == "SUBMITTED"

    item = first(client.listen(address, wait_seconds=2, timeout_seconds=20))
    # What every AXME example agent checks before it acts.
    assert item["intent_id"] == intent_id
    assert item["status"] in ("DELIVERED", "CREATED", "IN_PROGRESS"), item
    assert item["status"] == item["lifecycle_status"] == "DELIVERED"
    assert client.get_intent(intent_id)["intent"]["lifecycle_status"] == "DELIVERED"


def test_an_initiator_sender_and_reply_to_are_accepted(client: AxmeClient, schema) -> None:
    intent_id = send(
        client,
        f"agent://interop/{unique('worker')}",
        from_agent="initiator://simple-request",
        reply_to="initiator://fire-and-forget",
    )
    intent = client.get_intent(intent_id)["intent"]
    assert intent["from_agent"] == "agent://admin", "derived from the (admin) key"
    assert intent["reply_to"] == "initiator://fire-and-forget"
    resolved = client.resolve_intent(intent_id, {"status": "COMPLETED", "result": {"ok": True}})
    schema("api.intents.resolve.response.v1.json", resolved)
    assert resolved["completion_delivery"]["reply_to"] == "initiator://fire-and-forget"


def test_v1_health_answers_like_health(server: AxmeServer, client: AxmeClient) -> None:
    v1 = httpx.get(server.url("/v1/health"), timeout=10.0)
    assert v1.status_code == 200, v1.text
    assert v1.json() == client.health()


def test_a_service_account_key_sees_only_its_agents_work(server: AxmeServer, client: AxmeClient, schema) -> None:
    name = unique("checker")
    created = client.create_service_account(
        {"org_id": ORG, "workspace_id": WORKSPACE, "name": name, "created_by_actor_id": "interop"}
    )
    schema("api.service_accounts.create.response.v1.json", created)
    sa = created["service_account"]
    sa_id = sa["service_account_id"]
    assert sa["agent_address"] == f"agent://{name}"

    got = client.get_service_account(sa_id)
    schema("api.service_accounts.get.response.v1.json", got)
    listed = client.list_service_accounts(org_id=ORG, workspace_id=WORKSPACE)
    schema("api.service_accounts.list.response.v1.json", listed)
    assert got["service_account"] in listed["service_accounts"]

    agents = client.list_agents(org_id=ORG, workspace_id=WORKSPACE)
    entry = next(a for a in agents["agents"] if a["address"] == f"agent://{name}")
    assert (entry["status"], entry["service_account_id"], entry["service_account_name"]) == ("active", sa_id, name)
    assert client.get_agent(f"agent://{name}")["agent"]["service_account_id"] == sa_id

    minted = client.create_service_account_key(sa_id, {"created_by_actor_id": "interop"})
    schema("api.service_accounts.keys.create.response.v1.json", minted)
    key = minted["key"]
    agent = make_client(server, api_key=key["token"])
    try:
        mine = send(client, name)  # the bare name is the same agent
        theirs = send(client, f"agent://interop/{unique('other')}")
        item = first(agent.listen(name, wait_seconds=2, timeout_seconds=20))
        assert (item["intent_id"], item["status"]) == (mine, "DELIVERED")
        assert agent.get_intent(mine)["intent"]["to_agent"] == f"agent://{name}"
        with pytest.raises(AxmeHttpError) as seen:
            agent.get_intent(theirs)
        assert seen.value.status_code == 404
        # Its own account only.
        assert [a["service_account_id"] for a in agent.list_service_accounts(org_id=ORG)["service_accounts"]] == [sa_id]

        revoked = client.revoke_service_account_key(sa_id, key["key_id"])
        schema("api.service_accounts.keys.revoke.response.v1.json", revoked)
        assert revoked["key"]["status"] == "revoked"
        with pytest.raises(AxmeAuthError):
            agent.get_intent(mine)
    finally:
        agent.close()


def test_bulk_cancel_as_axme_cli_sends_it(server: AxmeServer, client: AxmeClient) -> None:
    address = f"agent://interop/{unique('zombies')}"
    ids = [send(client, address) for _ in range(2)]
    headers = {"x-api-key": server.api_key}
    payload = {"older_than_hours": 0, "dry_run": True, "reason": "zombie cleanup via CLI", "limit": 500,
               "status_filter": ["SUBMITTED"]}
    preview = httpx.post(server.url("/v1/intents/bulk-cancel"), json=payload, headers=headers, timeout=30.0)
    assert preview.status_code == 200, preview.text
    assert set(ids) <= set(preview.json()["intent_ids"])
    assert preview.json()["would_cancel"] == len(preview.json()["intent_ids"])
    assert client.get_intent(ids[0])["intent"]["status"] == "SUBMITTED"
    done = httpx.post(server.url("/v1/intents/bulk-cancel"), json={**payload, "dry_run": False}, headers=headers,
                      timeout=30.0)
    assert done.status_code == 200, done.text
    assert done.json()["canceled"] >= 2
    assert [client.get_intent(i)["intent"]["lifecycle_status"] for i in ids] == ["CANCELED", "CANCELED"]


class AxmeHttpAgent:
    """An http agent as AXME's ``examples/delivery/http`` writes one: it answers 200 at once, checks
    ``X-Axme-Signature`` with ``hmac`` against its secret, and reads ``intent_id`` from the body."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.verified: list[str] = []
        self.rejected = 0
        self.arrived = threading.Condition()
        agent = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                expected = hmac.new(agent.secret.encode(), body, hashlib.sha256).hexdigest()
                received = self.headers.get("X-Axme-Signature", "").removeprefix("sha256=")
                ok = hmac.compare_digest(expected, received)
                self.send_response(200 if ok else 401)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"ack":true}')
                with agent.arrived:
                    if ok:
                        agent.verified.append(json.loads(body)["intent_id"])
                    else:
                        agent.rejected += 1
                    agent.arrived.notify_all()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/intent"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def wait(self, n: int) -> list[str]:
        deadline = time.monotonic() + 15
        with self.arrived:
            while len(self.verified) < n:
                left = deadline - time.monotonic()
                assert left > 0, f"verified {self.verified}, rejected {self.rejected}"
                self.arrived.wait(left)
            return list(self.verified)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_an_axme_http_agent_verifies_x_axme_signature(server: AxmeServer, client: AxmeClient) -> None:
    secret = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk="
    agent = AxmeHttpAgent(secret)
    try:
        address = f"agent://interop/{unique('http-order-processor')}"
        r = httpx.post(
            server.url("/v1/agents"),
            json={"address": address, "delivery_mode": "http", "callback_url": agent.url, "webhook_secret": secret},
            headers={"x-api-key": server.api_key},
            timeout=30.0,
        )
        assert r.status_code == 200, r.text
        intent_id = send(client, address)
        assert agent.wait(1) == [intent_id]
        assert agent.rejected == 0
        # The agent fetches the intent by the id it read, as the example does, and finishes it.
        assert client.get_intent(intent_id)["intent"]["payload"] == {"order_id": "o-1"}
        client.resolve_intent(intent_id, {"status": "COMPLETED", "result": {"tracking_id": "TRK-O-1"}})
        assert client.get_intent(intent_id)["intent"]["lifecycle_status"] == "COMPLETED"
    finally:
        agent.close()


def test_a_wrong_secret_does_not_verify(server: AxmeServer, client: AxmeClient) -> None:
    agent = AxmeHttpAgent("whsec_not-the-secret")
    try:
        address = f"agent://interop/{unique('forged')}"
        r = httpx.post(
            server.url("/v1/agents"),
            json={"address": address, "delivery_mode": "http", "callback_url": agent.url,
                  "max_delivery_attempts": 1},
            headers={"x-api-key": server.api_key},
            timeout=30.0,
        )
        assert r.status_code == 200, r.text
        send(client, address)
        deadline = time.monotonic() + 15
        with agent.arrived:
            while agent.rejected < 1:
                left = deadline - time.monotonic()
                assert left > 0, "no push arrived"
                agent.arrived.wait(left)
        assert agent.verified == []
    finally:
        agent.close()

