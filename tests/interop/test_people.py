"""The official Python SDK's calls for people, invites, media, payload schemas and its MCP
helpers, against the real axme binary, with the AXP schemas of every answer."""

from __future__ import annotations

import hashlib
import uuid

import httpx
import pytest
from axme_sdk import AxmeClient, AxmeClientConfig, AxmeHttpError

from conftest import AxmeServer

SEMANTIC_TYPE = "interop.calendar.schedule.v1"


def fresh_nick() -> str:
    return f"@interop_{uuid.uuid4().hex[:10]}"


def test_users_register_check_rename_and_profile(client: AxmeClient, schema) -> None:
    nick = fresh_nick()
    checked = client.check_nick(nick)
    schema("api.users.check_nick.response.v1.json", checked)
    assert checked["available"] is True and checked["normalized_nick"] == nick[1:]

    user = client.register_nick({"nick": nick, "display_name": "Interop User"})
    schema("api.users.register_nick.response.v1.json", user)
    owner = user["owner_agent"]
    assert client.check_nick(nick.upper())["available"] is False

    renamed_to = fresh_nick()
    renamed = client.rename_nick({"owner_agent": owner, "nick": renamed_to})
    schema("api.users.rename_nick.response.v1.json", renamed)
    assert (renamed["owner_agent"], renamed["nick"]) == (owner, renamed_to)

    profile = client.get_user_profile(owner)
    schema("api.users.profile.get.response.v1.json", profile)
    updated = client.update_user_profile({"owner_agent": owner, "display_name": "Updated", "email": "u@example.com"})
    schema("api.users.profile.update.response.v1.json", updated)
    assert client.get_user_profile(owner)["display_name"] == "Updated"

    with pytest.raises(AxmeHttpError) as e:
        client.register_nick({"nick": renamed_to})
    assert e.value.status_code == 409


def test_invites_create_get_and_accept_once(server: AxmeServer, client: AxmeClient, schema) -> None:
    created = client.create_invite({"owner_agent": "agent://interop/lead", "recipient_hint": "Newcomer", "ttl_seconds": 3600})
    schema("api.invites.create.response.v1.json", created)
    token = created["token"]
    assert created["invite_url"] == f"{server.base_url}/v1/invites/{token}"
    got = client.get_invite(token)
    schema("api.invites.get.response.v1.json", got)
    assert got["status"] == "pending"

    nick = fresh_nick()
    accepted = client.accept_invite(token, {"nick": nick, "display_name": "New Person"})
    api_key = accepted.pop("api_key")
    accepted.pop("key_id")
    schema("api.invites.accept.response.v1.json", accepted)
    assert client.get_invite(token)["status"] == "accepted"
    with pytest.raises(AxmeHttpError) as e:
        client.accept_invite(token, {"nick": fresh_nick()})
    assert e.value.status_code == 409

    # The newcomer's key is theirs: their profile, nobody else's.
    newcomer = AxmeClient(AxmeClientConfig(base_url=server.base_url, api_key=api_key))
    try:
        assert newcomer.get_user_profile(accepted["owner_agent"])["nick"] == nick
        with pytest.raises(AxmeHttpError) as e:
            newcomer.get_user_profile("agent://interop/lead")
        assert e.value.status_code in (403, 404)
    finally:
        newcomer.close()


def test_media_upload_put_finalize_and_get(server: AxmeServer, client: AxmeClient, schema) -> None:
    data = b"%PDF-1.4 interop " * 100
    created = client.create_media_upload(
        {"owner_agent": "agent://interop/docs", "filename": "contract.pdf", "mime_type": "application/pdf", "size_bytes": len(data)}
    )
    schema("api.media.create_upload.response.v1.json", created)
    upload_id = created["upload_id"]
    put = httpx.put(
        created["upload_url"],
        content=data,
        headers={"x-api-key": server.api_key, "content-type": "application/pdf"},
    )
    assert put.status_code == 200, put.text
    digest = hashlib.sha256(data).hexdigest()
    finalized = client.finalize_media_upload({"upload_id": upload_id, "size_bytes": len(data), "sha256": digest})
    schema("api.media.finalize_upload.response.v1.json", finalized)
    got = client.get_media_upload(upload_id)
    schema("api.media.get.response.v1.json", got)
    assert got["upload"]["status"] == "ready" and got["upload"]["sha256"] == digest
    download = httpx.get(got["upload"]["download_url"], headers={"x-api-key": server.api_key})
    assert download.content == data


def test_schemas_upsert_get_and_enforce(client: AxmeClient, schema) -> None:
    body = {
        "semantic_type": SEMANTIC_TYPE,
        "schema_json": {"type": "object", "required": ["date"], "properties": {"date": {"type": "string"}}},
        "compatibility_mode": "strict",
    }
    upserted = client.upsert_schema(body)
    schema("api.schemas.upsert.response.v1.json", upserted)
    got = client.get_schema(SEMANTIC_TYPE)
    schema("api.schemas.get.response.v1.json", got)
    assert got["schema"]["schema_hash"] == upserted["schema"]["schema_hash"]

    intent = {"intent_type": SEMANTIC_TYPE, "to_agent": "agent://interop/calendar"}
    assert client.create_intent({**intent, "payload": {"date": "2026-12-08"}}, correlation_id=str(uuid.uuid4()))["intent_id"]
    with pytest.raises(AxmeHttpError) as e:
        client.create_intent({**intent, "payload": {"when": "soon"}}, correlation_id=str(uuid.uuid4()))
    assert e.value.status_code == 422


def test_the_sdk_mcp_helpers(client: AxmeClient) -> None:
    init = client.mcp_initialize()
    assert init["protocolVersion"] == "2024-11-05"
    tools = client.mcp_list_tools()["tools"]
    assert "axme.intents_send" in {t["name"] for t in tools}
    checked = client.mcp_call_tool("axme.check_nick", arguments={"nick": "@interop_mcp"})
    assert (checked["tool"], checked["status"], checked["isError"]) == ("axme.check_nick", "completed", False)
    sent = client.mcp_call_tool(
        "axme.intents_send",
        arguments={"to_agent": "agent://interop/mcp", "payload": {"n": 1}},
        owner_agent="agent://interop/mcp-owner",
        idempotency_key=f"mcp-{uuid.uuid4()}",
    )
    intent_id = sent["structuredContent"]["intent_id"]
    assert client.get_intent(intent_id)["intent"]["to_agent"] == "agent://interop/mcp"
