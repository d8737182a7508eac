"""Task emails through a real SMTP server (aiosmtpd, started here): a human step with
``notify_email`` mails its assignee; the mail's magic link opens the decision page without a
key, decides the step once (the workflow completes, decided by ``mailto:``), and a second use
is refused with a page that says so.
"""

from __future__ import annotations

import queue
import re
import socket
import time
from email import message_from_bytes
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from aiosmtpd.controller import Controller

from conftest import AxmeServer, make_client, start_server


class Collect:
    """An aiosmtpd handler that keeps every message it is given."""

    def __init__(self) -> None:
        self.mails: queue.Queue[Any] = queue.Queue()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.mails.put((envelope.rcpt_tos, message_from_bytes(envelope.content)))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp() -> Iterator[tuple[Collect, int]]:
    handler = Collect()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@pytest.fixture
def mail_server(tmp_path: Path, smtp: tuple[Collect, int]) -> Iterator[AxmeServer]:
    _, port = smtp
    srv = start_server(tmp_path, ("--smtp-url", f"smtp://127.0.0.1:{port}",
                                  "--smtp-from", "axme@interop.test"))
    try:
        yield srv
    finally:
        srv.stop()


def test_a_task_email_link_decides_the_step_once(mail_server: AxmeServer,
                                                 smtp: tuple[Collect, int]) -> None:
    handler, _ = smtp
    client = make_client(mail_server)
    applied = client.apply_scenario({
        "scenario_id": "interop.email.v1",
        "humans": [{"role": "ops", "display_name": "Ops"}],
        "workflow": {"steps": [{
            "step_id": "signoff", "tool_id": "tool.approval.human_signoff", "assigned_to": "ops",
            "human_task": {"title": "Release 2.0?", "notify_email": "ops@interop.test"}}]},
        "intent": {"type": "intent.interop.email.v1", "payload": {"release": "2.0"}},
    })
    intent_id = applied["intent_id"]

    rcpts, msg = handler.mails.get(timeout=20)
    assert rcpts == ["ops@interop.test"]
    assert msg["From"] == "axme@interop.test"
    assert msg["Subject"] == "Release 2.0?"
    body = msg.get_payload(decode=True).decode()
    links = re.findall(r"http://\S+/ui/decide/[A-Za-z0-9_-]+", body)
    assert len(links) == 1, body
    link = links[0]
    assert link.startswith(mail_server.base_url)

    with httpx.Client(timeout=10) as anon:
        page = anon.get(link)
        assert page.status_code == 200
        assert "Release 2.0?" in page.text
        done = anon.post(link, data={"outcome": "approved", "comment": "ship it"})
        assert done.status_code == 200, done.text
        assert "Recorded: approved" in done.text
        again = anon.post(link, data={"outcome": "rejected"})
        assert again.status_code == 410
        assert "was used at" in again.text

    deadline = time.monotonic() + 20
    while True:
        intent = client.get_intent(intent_id)["intent"]
        if intent["status"] not in {"WAITING", "IN_PROGRESS"}:
            break
        assert time.monotonic() < deadline, intent
        time.sleep(0.2)
    assert intent["status"] == "COMPLETED", intent
    step = intent["result"]["steps"]["signoff"]
    assert step["outcome"] == "approved", intent
    assert step["decided_by"] == "mailto:ops@interop.test", intent
    assert step["task_result"]["comment"] == "ship it", intent
