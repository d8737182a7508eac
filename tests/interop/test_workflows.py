"""Scenario bundles and workflows driven by the official Python SDK, as AXME documents them.

A bundle is applied with ``apply_scenario``; an agent process ``listen()``s on its address, reads
each step intent with ``get_intent`` and reports its result with ``resume_intent(intent_id,
{"action": "complete", ...})``, as AXME's example agents do; a human signs off through
``resume_intent`` with ``task_result`` or through the inbox API; a step past its deadline times
the workflow out; a failed step takes its ``on_failure`` route. The initiator follows the
workflow's intent with ``wait_for``.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import httpx
import pytest
from axme_sdk import AxmeClient

from conftest import AxmeServer, make_client

ACTIONABLE = {"CREATED", "DELIVERED", "ACKNOWLEDGED", "IN_PROGRESS", "WAITING"}


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def bundle(agent: str, *, human: bool = True, deadline: int = 60, **step: Any) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [
        {"step_id": "check", "tool_id": "tool.agent.task.v1", "assigned_to": "checker",
         "step_deadline_seconds": deadline, **step},
    ]
    if human:
        steps.append({"step_id": "approval", "tool_id": "tool.approval.human_signoff",
                      "assigned_to": "operator", "requires_approval": True,
                      "human_task": {"title": "Deploy api-gateway?"}})
    return {
        "scenario_id": "interop.workflow.v1",
        "agents": [{"role": "checker", "address": agent, "delivery_mode": "stream",
                    "create_if_missing": True}],
        "humans": [{"role": "operator", "display_name": "Ops"}],
        "workflow": {"steps": steps},
        "intent": {"type": "intent.deployment.approval.v1",
                   "payload": {"service": "api-gateway", "environment": "staging"}},
    }


class Agent(threading.Thread):
    """An agent as AXME's examples write one: listen, read the intent, resume with a result."""

    def __init__(self, client: AxmeClient, address: str, result: dict[str, Any], count: int = 1):
        super().__init__(daemon=True)
        self.client, self.address, self.result, self.count = client, address, result, count
        self.handled: list[str] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for delivery in self.client.listen(self.address, since=0, wait_seconds=2, timeout_seconds=30):
                intent_id = delivery["intent_id"]
                intent = self.client.get_intent(intent_id)["intent"]
                status = (intent.get("lifecycle_status") or intent.get("status") or "").upper()
                if status not in ACTIONABLE:
                    continue
                payload = intent["payload"].get("parent_payload") or intent["payload"]
                body = dict(self.result, seen_service=payload.get("service"))
                resp = self.client.resume_intent(intent_id, body, owner_agent=self.address)
                assert resp["applied"] is True
                self.handled.append(intent_id)
                if len(self.handled) >= self.count:
                    return
        except BaseException as e:  # reported by the test
            self.error = e


def wait_status(client: AxmeClient, intent_id: str, status: str, reason: str | None = None) -> dict[str, Any]:
    for event in client.observe(intent_id, wait_seconds=2, timeout_seconds=30):
        if event.get("status") == status and (reason is None or event.get("waiting_reason") == reason):
            return event
    raise AssertionError(f"{intent_id} never became {status}")


def running_step(http: httpx.Client, server: AxmeServer, intent_id: str, step_id: str) -> str:
    r = http.get(f"/v1/intents/{intent_id}/workflow", headers={"x-api-key": server.api_key})
    r.raise_for_status()
    runs = [x for x in r.json()["workflow"]["runs"] if x["step_id"] == step_id and x["status"] == "running"]
    assert runs, r.text
    return runs[-1]["step_intent_id"]


def test_apply_scenario_listen_resume_then_human_signoff_through_resume(client: AxmeClient) -> None:
    agent = name("checker")
    applied = client.apply_scenario(bundle(agent))
    assert applied["ok"] is True and applied["compile_id"]
    assert applied["agents_provisioned"] == [f"agent://{agent}"]
    worker = Agent(client, agent, {"action": "complete", "passed": True})
    worker.start()
    intent_id = applied["intent_id"]
    waiting = wait_status(client, intent_id, "WAITING", "WAITING_FOR_HUMAN")
    worker.join(timeout=30)
    assert worker.error is None and len(worker.handled) == 1
    assert waiting["details"]["step_id"] == "approval"
    resp = client.resume_intent(intent_id, {"task_result": {"outcome": "approved", "comment": "ship it"}})
    assert resp["applied"] is True and resp["policy_generation"] == 1
    final = client.wait_for(intent_id, wait_seconds=2, timeout_seconds=30)
    assert final["status"] == "COMPLETED"
    intent = client.get_intent(intent_id)["intent"]
    assert intent["result"]["steps"]["check"] == {"action": "complete", "passed": True,
                                                   "seen_service": "api-gateway"}
    assert intent["result"]["steps"]["approval"]["outcome"] == "approved"
    events = client.list_intent_events(intent_id)["events"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    steps = [(e["details"].get("step_id"), e["details"].get("step_status")) for e in events
             if e["details"].get("step_status")]
    assert steps == [("check", "started"), ("check", "completed"),
                     ("approval", "started"), ("approval", "completed")]


def test_human_signoff_through_the_inbox_api(
    client: AxmeClient, http: httpx.Client, server: AxmeServer
) -> None:
    agent = name("checker")
    intent_id = client.apply_scenario(bundle(agent))["intent_id"]
    worker = Agent(client, agent, {"action": "complete"})
    worker.start()
    wait_status(client, intent_id, "WAITING", "WAITING_FOR_HUMAN")
    task = running_step(http, server, intent_id, "approval")
    owner = "agent://human/operator"
    tasks = client.list_inbox(owner_agent=owner)
    assert task in [t["thread_id"] for t in tasks["threads"]], tasks
    client.approve_inbox_thread(task, {"comment": "fine"}, owner_agent=owner)
    assert client.wait_for(intent_id, wait_seconds=2, timeout_seconds=30)["status"] == "COMPLETED"


def test_a_step_past_its_deadline_times_the_workflow_out(client: AxmeClient) -> None:
    intent_id = client.apply_scenario(bundle(name("absent"), human=False, deadline=1))["intent_id"]
    final = client.wait_for(intent_id, wait_seconds=2, timeout_seconds=30)
    assert final["status"] == "TIMED_OUT"
    assert client.get_intent(intent_id)["intent"]["error"]["code"] == "step_timeout"


def test_a_failed_step_takes_its_on_failure_route(client: AxmeClient, http: httpx.Client,
                                                  server: AxmeServer) -> None:
    agent = name("checker")
    b = bundle(agent, human=True, on_failure="notify", on_success="approval")
    b["workflow"]["steps"].append({"step_id": "notify", "tool_id": "tool.internal.escalation",
                                   "escalate_to": "operator"})
    intent_id = client.apply_scenario(b)["intent_id"]
    worker = Agent(client, agent, {"action": "fail", "passed": False, "reason": "production"})
    worker.start()
    final = client.wait_for(intent_id, wait_seconds=2, timeout_seconds=30)
    worker.join(timeout=30)
    assert worker.error is None
    assert final["status"] == "COMPLETED"
    events = client.list_intent_events(intent_id)["events"]
    ran = [e["details"]["step_id"] for e in events if e["details"].get("step_status") == "started"]
    assert ran == ["check", "notify"]
    assert any(e["event_type"] == "intent.escalated" for e in events)


def test_validate_scenario_names_every_problem_and_apply_is_idempotent(client: AxmeClient) -> None:
    bad = bundle(name("c"))
    bad["workflow"]["steps"][0]["assigned_to"] = "ghost"
    bad["intent"]["type"] = "nope"
    report = client.validate_scenario(bad)
    assert report["valid"] is False
    paths = {e["path"] for e in report["error_details"]}
    assert {"workflow.steps[0].assigned_to", "intent.type"} <= paths, report
    assert all(isinstance(e, str) and ": " in e for e in report["errors"])
    good = bundle(name("c"))
    assert client.validate_scenario(good)["valid"] is True
    key = str(uuid.uuid4())
    first = client.apply_scenario(good, idempotency_key=key)
    again = client.apply_scenario(good, idempotency_key=key)
    assert again["intent_id"] == first["intent_id"] and again["idempotent"] is True


def test_a_human_bound_to_a_user_signs_off_with_the_users_own_key(client: AxmeClient, server: AxmeServer) -> None:
    """``humans[].contact`` naming a user's ``@nick`` sends the sign-off to that user's inbox: the
    key the user got from ``accept_invite`` lists the task and approves it."""
    invite = client.create_invite({"owner_agent": "agent://interop/lead"})
    nick = f"@rev{uuid.uuid4().hex[:8]}"
    user = client.accept_invite(invite["token"], {"nick": nick})
    agent = name("checker")
    b = bundle(agent)
    b["humans"] = [{"role": "operator", "contact": nick}]
    applied = client.apply_scenario(b)
    assert applied["humans"] == [{"role": "operator", "address": user["owner_agent"]}], applied
    worker = Agent(client, agent, {"action": "complete"})
    worker.start()
    intent_id = applied["intent_id"]
    wait_status(client, intent_id, "WAITING", "WAITING_FOR_HUMAN")
    person = make_client(server, api_key=user["api_key"])
    try:
        threads = person.list_inbox()["threads"]
        pending = [t for t in threads if t["status"] == "pending"]
        assert len(pending) == 1, threads
        person.approve_inbox_thread(pending[0]["thread_id"], {"comment": "ship it"})
    finally:
        person.close()
    assert client.wait_for(intent_id, wait_seconds=2, timeout_seconds=30)["status"] == "COMPLETED"
