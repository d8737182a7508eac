"""An MCP host against axme: the official MCP Python SDK (PyPI ``mcp``) over the streamable HTTP
transport, authenticated with an API key as a Bearer token. It initializes, lists the tools,
sends an intent and reads it back, approves a human task, and gets a bad argument back as a tool
error (``isError``), not as a protocol failure."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from conftest import AxmeServer


async def with_session(server: AxmeServer, key: str, body) -> Any:
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx2.AsyncClient(headers=headers, timeout=30.0) as http:
        async with streamable_http_client(server.url("/mcp"), http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                return await body(session, init)


def run(server: AxmeServer, body, key: str | None = None) -> Any:
    return asyncio.run(with_session(server, key or server.api_key, body))


def test_an_mcp_host_initializes_and_lists_the_tools(server: AxmeServer) -> None:
    async def body(session: ClientSession, init) -> Any:
        tools = await session.list_tools()
        await session.send_ping()
        return init, tools

    init, tools = run(server, body)
    assert init.server_info.name == "axme"
    assert init.protocol_version in ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
    names = {t.name for t in tools.tools}
    for want in ("axme.intents_send", "axme.intents_get", "axme.tasks_approve", "axme.check_nick"):
        assert want in names
    assert all(t.input_schema["type"] == "object" for t in tools.tools)


def test_an_mcp_host_sends_an_intent_and_reads_it_back(server: AxmeServer) -> None:
    async def body(session: ClientSession, _init) -> Any:
        sent = await session.call_tool(
            "axme.intents_send",
            {"to_agent": "agent://interop/mcp-worker", "intent_type": "interop.task.v1", "payload": {"n": 7}},
        )
        assert not sent.is_error, sent
        intent_id = sent.structured_content["intent_id"]
        got = await session.call_tool("axme.intents_get", {"intent_id": intent_id})
        log = await session.call_tool("axme.intents_log", {"intent_id": intent_id})
        return intent_id, got, log

    intent_id, got, log = run(server, body)
    assert got.structured_content["intent"]["payload"] == {"n": 7}
    assert got.content[0].type == "text" and intent_id in got.content[0].text
    assert [e["event_type"] for e in log.structured_content["events"]] == ["intent.created", "intent.submitted"]
    # The REST API sees the same intent.
    r = httpx.get(server.url(f"/v1/intents/{intent_id}"), headers={"x-api-key": server.api_key})
    assert r.json()["intent"]["status"] == "SUBMITTED"


def test_an_mcp_host_approves_a_task_with_a_user_key(server: AxmeServer) -> None:
    owner = f"agent://interop/approver-{uuid.uuid4().hex[:6]}"
    admin = {"x-api-key": server.api_key}
    key = httpx.post(server.url("/v1/keys"), headers=admin, json={"name": "approver", "role": "agent", "agents": [owner]}).json()["api_key"]
    created = httpx.post(
        server.url("/v1/intents"),
        headers=admin,
        json={
            "intent_type": "interop.approval.v1",
            "correlation_id": str(uuid.uuid4()),
            "to_agent": owner,
            "payload": {"amount": 10},
            "human_task": {"title": "Approve the refund", "task_type": "approval"},
        },
    ).json()
    intent_id = created["intent_id"]

    async def body(session: ClientSession, _init) -> Any:
        tasks = await session.call_tool("axme.tasks_list", {})
        decided = await session.call_tool("axme.tasks_approve", {"intent_id": intent_id, "comment": "ok"})
        return tasks, decided

    tasks, decided = run(server, body, key)
    assert intent_id in {t["intent_id"] for t in tasks.structured_content["tasks"]}
    assert not decided.is_error and decided.structured_content["intent_status"] == "COMPLETED"


def test_a_bad_argument_is_a_tool_error(server: AxmeServer) -> None:
    async def body(session: ClientSession, _init) -> Any:
        wrong_type = await session.call_tool("axme.intents_get", {"intent_id": 42})
        unknown = await session.call_tool("axme.intents_get", {"intent_id": str(uuid.uuid4())})
        return wrong_type, unknown

    wrong_type, unknown = run(server, body)
    assert wrong_type.is_error and "intent_id" in wrong_type.content[0].text
    assert unknown.is_error and unknown.structured_content["error"]["code"] == "intent_not_found"


def test_a_current_mcp_client_negotiates_the_per_request_protocol(server: AxmeServer) -> None:
    """The SDK's default ``Client`` probes ``server/discover`` and, finding 2026-07-28, speaks it
    on every request (no ``initialize``)."""
    from mcp import Client

    async def body() -> Any:
        headers = {"Authorization": f"Bearer {server.api_key}"}
        async with httpx2.AsyncClient(headers=headers, timeout=30.0) as http:
            async with Client(streamable_http_client(server.url("/mcp"), http_client=http)) as client:
                tools = await client.list_tools()
                sent = await client.call_tool(
                    "axme.intents_send", {"to_agent": "agent://interop/modern", "payload": {"m": 1}}
                )
                bad = await client.call_tool("axme.intents_get", {"intent_id": "nope"})
                return client.protocol_version, tools, sent, bad

    version, tools, sent, bad = asyncio.run(body())
    assert version == "2026-07-28"
    assert "axme.intents_send" in {t.name for t in tools.tools}
    assert not sent.is_error and sent.structured_content["status"] == "SUBMITTED"
    assert bad.is_error


def test_an_mcp_host_validates_and_applies_a_scenario_bundle(server: AxmeServer) -> None:
    """``axme.scenarios_apply`` is ``POST /v1/scenarios/apply``: the same bundle under the same
    idempotency key answers the first intent, and a broken bundle is a tool error naming its path."""
    agent = f"agent://interop/mcp-checker-{uuid.uuid4().hex[:6]}"
    bundle = {
        "scenario_id": "interop.mcp.scenario.v1",
        "agents": [{"role": "checker", "address": agent, "delivery_mode": "stream", "create_if_missing": True}],
        "workflow": {"steps": [{"step_id": "check", "tool_id": "tool.agent.task.v1", "assigned_to": "checker"}]},
        "intent": {"type": "intent.mcp.check.v1", "payload": {"service": "api"}},
    }
    broken = {**bundle, "intent": {"type": "nope", "payload": {}}}
    key = str(uuid.uuid4())

    async def body(session: ClientSession, _init) -> Any:
        report = await session.call_tool("axme.scenarios_validate", {"bundle": broken})
        first = await session.call_tool("axme.scenarios_apply", {"bundle": bundle, "idempotency_key": key})
        again = await session.call_tool("axme.scenarios_apply", {"bundle": bundle, "idempotency_key": key})
        refused = await session.call_tool("axme.scenarios_apply", {"bundle": broken})
        return report, first, again, refused

    report, first, again, refused = run(server, body)
    assert report.structured_content["valid"] is False
    assert "intent.type" in {e["path"] for e in report.structured_content["error_details"]}
    assert not first.is_error, first
    intent_id = first.structured_content["intent_id"]
    assert first.structured_content["idempotent"] is False
    assert again.structured_content["intent_id"] == intent_id and again.structured_content["idempotent"] is True
    assert refused.is_error and "intent.type" in refused.content[0].text
    # The REST API sees the applied workflow.
    r = httpx.get(server.url(f"/v1/intents/{intent_id}/workflow"), headers={"x-api-key": server.api_key})
    assert r.status_code == 200 and r.json()["workflow"]["current_step"] == "check", r.text
