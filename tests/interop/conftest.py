"""Fixtures for the Python SDK interop suite.

The suite drives the real ``axme`` binary (``AXME_BIN``, default ``<repo>/target/debug/axme``) with the
official ``axme`` SDK from PyPI. Each test module gets its own server process on ``127.0.0.1:0`` with a
fresh database in a temporary directory (``server``); tests that need a pristine server use
``fresh_server``. Readiness is the ``listening on http://...`` line the server prints on stdout, never a
sleep. Responses are validated against the AXP JSON schemas in ``<repo>/../shared/axp-spec``.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from axme_sdk import AxmeClient, AxmeClientConfig

REPO = Path(__file__).resolve().parents[2]
SPEC_DIR = Path(os.environ.get("AXME_SPEC_DIR") or (REPO.parent / "shared" / "axp-spec")).resolve()
SCHEMA_DIR = SPEC_DIR / "schemas" / "public_api"
API_KEY = "axme_interop_admin_key_0123456789abcdef"
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


# --------------------------------------------------------------------------------------------------
# The server process


@dataclass
class AxmeServer:
    proc: subprocess.Popen
    base_url: str
    api_key: str
    data: Path
    stderr_path: Path
    stdout_lines: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.base_url + path

    def stderr_tail(self, n: int = 40) -> str:
        try:
            lines = self.stderr_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT_S)
        return self.proc.returncode


def axme_bin() -> Path:
    raw = os.environ.get("AXME_BIN")
    path = Path(raw) if raw else REPO / "target" / "debug" / "axme"
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"axme binary not found at {path} (set AXME_BIN, or run tests/interop/run.sh which builds it)",
            pytrace=False,
        )
    return path


def start_server(tmpdir: Path, extra: tuple[str, ...] = ()) -> AxmeServer:
    """Starts ``axme serve`` on a fresh database (with ``extra`` flags) and returns once it
    printed its listening line."""
    data = tmpdir / "axme.db"
    stderr_path = tmpdir / "axme.stderr.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AXME_")}
    env.setdefault("RUST_BACKTRACE", "1")
    cmd = [
        str(axme_bin()),
        "serve",
        "--data",
        str(data),
        "--listen",
        "127.0.0.1:0",
        "--api-key",
        API_KEY,
        *extra,
    ]
    with open(stderr_path, "wb") as stderr_file:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr_file,
            env=env,
            text=True,
            bufsize=1,
        )
    server = AxmeServer(proc=proc, base_url="", api_key=API_KEY, data=data, stderr_path=stderr_path)

    # One thread reads stdout for the whole life of the process so the pipe never fills up; the
    # lines before readiness are handed over through a queue so we can wait with a deadline.
    lines: queue.Queue[str | None] = queue.Queue()
    ready = threading.Event()

    def drain() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            server.stdout_lines.append(line)
            if not ready.is_set():
                lines.put(line)
        lines.put(None)

    threading.Thread(target=drain, name=f"axme-stdout-{proc.pid}", daemon=True).start()

    def give_up(why: str) -> None:
        code = server.stop()
        pytest.fail(
            f"axme serve never printed its listening line ({why}; exit code {code}).\n"
            f"command: {' '.join(cmd)}\nstdout:\n" + "\n".join(server.stdout_lines) +
            f"\nstderr (tail):\n{server.stderr_tail()}",
            pytrace=False,
        )

    deadline = time.monotonic() + READY_TIMEOUT_S
    marker = "listening on "
    while True:
        left = deadline - time.monotonic()
        try:
            if left <= 0:
                raise queue.Empty
            line = lines.get(timeout=left)
        except queue.Empty:
            give_up(f"timed out after {READY_TIMEOUT_S:.0f}s")
            raise AssertionError("unreachable")
        if line is None:
            give_up("its stdout closed")
        elif marker in line:
            url = line.split(marker, 1)[1].split()[0].rstrip("/")
            if not url.startswith("http://127.0.0.1:"):
                server.stop()
                pytest.fail(f"unexpected listening line from axme: {line!r}", pytrace=False)
            server.base_url = url
            ready.set()
            return server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AxmeServer]:
    """One axme server per test module (tests create their own intents, so they can share it)."""
    srv = start_server(tmp_path_factory.mktemp("axme"))
    yield srv
    srv.stop()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[AxmeServer]:
    """A server of its own for a test whose assertions depend on global state."""
    srv = start_server(tmp_path)
    yield srv
    srv.stop()


def make_client(srv: AxmeServer, *, api_key: str | None = None, **config: Any) -> AxmeClient:
    return AxmeClient(AxmeClientConfig(base_url=srv.base_url, api_key=api_key or srv.api_key, **config))


@pytest.fixture
def client(server: AxmeServer) -> Iterator[AxmeClient]:
    """The official SDK client, configured with the server's URL and admin key."""
    c = make_client(server)
    yield c
    c.close()


@pytest.fixture
def http(server: AxmeServer) -> Iterator[httpx.Client]:
    """A raw httpx client (no credentials) for things the SDK does not expose."""
    with httpx.Client(base_url=server.base_url, timeout=30.0) as c:
        yield c


# --------------------------------------------------------------------------------------------------
# JSON schema validation


# Top-level fields axme adds to an answer on purpose, beyond what its AXP schema (closed with
# additionalProperties: false) lists, each documented in README: GET /v1/intents/{id} repeats
# `payload` beside `intent`, because AXME's example agents read get_intent(id)["payload"].
# The check validates the answer without them, and requires each to be there.
ADDITIONS: dict[str, set[str]] = {
    "api.intents.get.response.v1.json": {"payload"},
}


class SchemaValidator:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.available = directory.is_dir()
        self._cache: dict[str, Any] = {}

    def __call__(self, name: str, instance: Any) -> None:
        """Validates ``instance`` against ``schemas/public_api/<name>`` (formats included)."""
        if not self.available:
            warnings.warn(f"schema validation skipped: {self.directory} not found", stacklevel=2)
            return
        import jsonschema

        validator = self._cache.get(name)
        if validator is None:
            path = self.directory / name
            assert path.is_file(), f"schema {path} does not exist"
            schema = json.loads(path.read_text())
            cls = jsonschema.validators.validator_for(schema)
            cls.check_schema(schema)
            validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
            self._cache[name] = validator
        added = ADDITIONS.get(name, set())
        if added and isinstance(instance, dict):
            missing = added - instance.keys()
            assert not missing, f"{name}: axme's documented additions {missing} are missing"
            instance = {k: v for k, v in instance.items() if k not in added}
        errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
        if errors:
            lines = [f"  at /{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:10]]
            pytest.fail(
                f"response does not match {name}:\n" + "\n".join(lines) +
                "\nresponse: " + json.dumps(instance, indent=1)[:4000],
                pytrace=False,
            )


_VALIDATOR = SchemaValidator(SCHEMA_DIR)


@pytest.fixture(scope="session")
def schema() -> SchemaValidator:
    return _VALIDATOR


def pytest_report_header(config: pytest.Config) -> list[str]:
    binary = os.environ.get("AXME_BIN") or str(REPO / "target" / "debug" / "axme")
    if _VALIDATOR.available:
        schemas = f"schemas: {SCHEMA_DIR}"
    else:
        schemas = f"schemas: NOT FOUND at {SCHEMA_DIR} -- schema validation is SKIPPED"
    return [f"axme binary: {binary}", schemas]


def pytest_configure(config: pytest.Config) -> None:
    # The date-time format is only checked when rfc3339-validator is importable; make a missing
    # install loud instead of silently weakening every schema check.
    if _VALIDATOR.available:
        import jsonschema

        checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
        missing = {"date-time", "uuid"} - set(checker.checkers)
        if missing:
            raise pytest.UsageError(f"jsonschema cannot check formats {sorted(missing)}: install requirements.txt")


# --------------------------------------------------------------------------------------------------
# A run in which nothing passed is a failed run (pytest already exits 5 when nothing is collected;
# this also catches "everything skipped" or "everything deselected").

_passed = 0


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    global _passed
    if report.when == "call" and report.passed:
        _passed += 1


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if exitstatus == 0 and _passed == 0 and not session.config.option.collectonly:
        session.exitstatus = pytest.ExitCode.NO_TESTS_COLLECTED
        tr = session.config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None:
            tr.write_line("interop: no test passed (all skipped or deselected) -- failing the run", red=True)
