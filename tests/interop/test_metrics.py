"""``GET /metrics`` read by an independent parser: ``prometheus_client.parser`` from PyPI.

After some work through the official SDK (creates, a 404) and plain HTTP (an inbox agent and a
claim), the exposition must parse with ``text_string_to_metric_families`` into the families the
README names, each with its ``# HELP`` and ``# TYPE`` (a sample outside its declared family would
come back as an ``untyped`` family), histograms with ascending ``le`` buckets whose counts never
fall and whose ``+Inf`` bucket equals ``_count``, and values that match the work done.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

import httpx
from axme_sdk import AxmeClient
from prometheus_client.parser import text_string_to_metric_families

from conftest import AxmeServer, make_client

EXPECTED = {
    "axme_http_requests": "counter",
    "axme_http_request_duration_seconds": "histogram",
    "axme_events_written": "counter",
    "axme_store_commit_batch_size": "histogram",
    "axme_store_commit_duration_seconds": "histogram",
    "axme_store_transaction_duration_seconds": "histogram",
    "axme_store_failed_batches": "counter",
    "axme_push_attempts": "counter",
    "axme_retention_pruned_intents": "counter",
    "axme_intents": "gauge",
    "axme_deliveries_pending": "gauge",
    "axme_claim_queue_depth": "gauge",
    "axme_streams_open": "gauge",
    "axme_long_polls_waiting": "gauge",
}

STATUSES = [
    "CREATED", "SUBMITTED", "DELIVERED", "ACKNOWLEDGED", "IN_PROGRESS", "WAITING",
    "COMPLETED", "FAILED", "CANCELED", "TIMED_OUT",
]


def scrape(server: AxmeServer) -> dict[str, Any]:
    r = httpx.get(server.url("/metrics"), headers={"x-api-key": server.api_key}, timeout=30.0)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    families = {}
    for family in text_string_to_metric_families(r.text):
        assert family.name not in families, f"family {family.name} appears twice"
        families[family.name] = family
    return families


def value(family: Any, sample_name: str, **labels: str) -> float:
    found = [s.value for s in family.samples if s.name == sample_name and s.labels == labels]
    assert len(found) == 1, f"{sample_name}{labels}: {family.samples}"
    return found[0]


def check_histogram(family: Any) -> int:
    """Checks every series of a histogram; returns how many series it has."""
    series: dict[tuple, list[tuple[float, float]]] = {}
    counts: dict[tuple, float] = {}
    for s in family.samples:
        rest = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
        if s.name.endswith("_bucket"):
            series.setdefault(rest, []).append((float(s.labels["le"]), s.value))
        elif s.name.endswith("_count"):
            counts[rest] = s.value
    assert series.keys() == counts.keys(), family.samples
    for key, buckets in series.items():
        bounds = [le for le, _ in buckets]
        assert bounds == sorted(bounds) and bounds[-1] == math.inf, (family.name, key, bounds)
        values = [v for _, v in buckets]
        assert values == sorted(values), (family.name, key, values)
        assert values[-1] == counts[key], (family.name, key)
    return len(series)


def test_metrics_need_the_key(server: AxmeServer) -> None:
    r = httpx.get(server.url("/metrics"), timeout=30.0)
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "auth_failed"


def test_an_independent_parser_reads_every_family(fresh_server: AxmeServer) -> None:
    client: AxmeClient = make_client(fresh_server)
    headers = {"x-api-key": fresh_server.api_key}
    inbox = f"agent://interop/metrics-{uuid.uuid4().hex[:8]}"
    r = httpx.post(fresh_server.url("/v1/agents"), json={"address": inbox, "delivery_mode": "inbox"},
                   headers=headers, timeout=30.0)
    assert r.status_code == 200, r.text
    for _ in range(3):
        body = {"intent_type": "interop.metrics.v1", "to_agent": inbox, "payload": {"n": 1}}
        client.create_intent(body, correlation_id=str(uuid.uuid4()))
    missing = httpx.get(fresh_server.url(f"/v1/intents/{uuid.uuid4()}"), headers=headers, timeout=30.0)
    assert missing.status_code == 404
    bare = inbox.removeprefix("agent://")
    r = httpx.post(fresh_server.url(f"/v1/agents/{bare}/inbox/claim"), json={"max": 1},
                   headers=headers, timeout=30.0)
    assert r.status_code == 200 and len(r.json()["claims"]) == 1, r.text
    client.close()

    families = scrape(fresh_server)
    untyped = [name for name, f in families.items() if f.type == "untyped"]
    assert not untyped, f"samples outside a declared family: {untyped}"
    for name, kind in EXPECTED.items():
        assert name in families, f"{name} missing; got {sorted(families)}"
        assert families[name].type == kind, (name, families[name].type)
        assert families[name].documentation, f"{name} has no HELP"

    requests = families["axme_http_requests"]
    assert value(requests, "axme_http_requests_total", route="CreateIntent", status="200") == 3
    assert value(requests, "axme_http_requests_total", route="GetIntent", status="404") == 1
    assert value(requests, "axme_http_requests_total", route="Claim", status="200") == 1
    for s in requests.samples:
        assert set(s.labels) == {"route", "status"}, s

    for name, kind in EXPECTED.items():
        if kind == "histogram":
            assert check_histogram(families[name]) >= 1, name
    latency = families["axme_http_request_duration_seconds"]
    assert value(latency, "axme_http_request_duration_seconds_count", route="CreateIntent") == 3

    intents = families["axme_intents"]
    assert sorted(s.labels["status"] for s in intents.samples) == sorted(STATUSES)
    assert value(intents, "axme_intents", status="SUBMITTED") == 2
    assert value(intents, "axme_intents", status="DELIVERED") == 1
    # intent.created + intent.submitted per create, intent.delivered for the claim.
    assert value(families["axme_events_written"], "axme_events_written_total") == 7
    assert value(families["axme_claim_queue_depth"], "axme_claim_queue_depth", agent=inbox) == 2
    pushes = families["axme_push_attempts"]
    assert sorted(s.labels["outcome"] for s in pushes.samples) == \
        ["dead_lettered", "delivered", "retry", "skipped"]
    assert value(families["axme_deliveries_pending"], "axme_deliveries_pending") == 0
    assert value(families["axme_streams_open"], "axme_streams_open") == 0
    assert value(families["axme_long_polls_waiting"], "axme_long_polls_waiting") == 0
