"""Firestore that does not answer: every endpoint answers 503 within the deadline, not minutes later.

A Firestore emulator of the test's own (the session's is shared) is frozen with
SIGSTOP — connections are accepted, nothing answers — or killed, under a real
functions-framework server with ``FIRESTORE_DEADLINE_SECONDS=3``. ``update``,
``heartbeat``, ``next``, ``/status``, ``/metrics`` and ``/maintain`` must each answer 503 with a
JSON error naming the deadline within the deadline plus a few seconds (the client
library alone would wait up to 300 s); after SIGCONT the next call succeeds.
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from local.emulator import FirestoreEmulator, free_port
from local.stack import start_functions, stop_process

pytestmark = pytest.mark.fault

ROOT = Path(__file__).resolve().parents[2]

#: The test's deadline, and how much later than it an answer may come (HTTP, process, retries).
DEADLINE = 3.0
SLACK = 4.0


def call(
    base: str,
    method: str,
    path: str,
    params: dict[str, str] | None = None,
) -> tuple[int, Any, float]:
    """Return status, body (JSON if it is) and seconds of one request; give up after 15 s."""
    url = f"{base}{path}?{urllib.parse.urlencode(params or {})}"
    data = b"" if method == "POST" else None
    start = time.monotonic()
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, data=data, method=method), timeout=DEADLINE + SLACK + 9
        ) as r:
            status, text = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read()
    elapsed = time.monotonic() - start
    try:
        body: Any = json.loads(text)
    except ValueError:
        body = text.decode()
    return status, body, elapsed


@pytest.fixture
def own_emulator() -> Iterator[FirestoreEmulator]:
    """A Firestore emulator of this test alone, started as the session's is."""
    (ROOT / ".pytest_cache").mkdir(exist_ok=True)
    emulator = FirestoreEmulator(
        log_path=ROOT / ".pytest_cache" / "firestore-emulator-deadline.log"
    )
    emulator.start()
    try:
        yield emulator
    finally:
        if emulator._proc is not None and emulator._proc.poll() is None:
            os.kill(emulator._proc.pid, signal.SIGCONT)
        emulator.stop()


@pytest.fixture
def server(
    own_emulator: FirestoreEmulator,
    gcs_url: str,
    tmp_path: Path,
) -> Iterator[tuple[str, str, str]]:
    """A functions server on ``own_emulator`` with a 3 s deadline; (base URL, a job in parsing,
    the project)."""
    from local.gcs_emulator import client, seed
    from local.workload import archive_names, config_yaml
    from shared.model import utcnow

    today = utcnow().date()
    start = today - timedelta(days=2)
    bucket = f"archive-{uuid.uuid4().hex[:8]}"
    config = tmp_path / "gardener.yml"
    config.write_text(config_yaml(bucket, start))
    seed(client(gcs_url), bucket, archive_names(start, today))
    port = free_port()
    project = f"demo-{uuid.uuid4().hex[:12]}"
    proc = start_functions(
        port,
        {
            "FIRESTORE_EMULATOR_HOST": own_emulator.host,
            "GOOGLE_CLOUD_PROJECT": project,
            "FIRESTORE_DEADLINE_SECONDS": str(DEADLINE),
            "HEARTBEAT_COALESCE_SECONDS": "0",
            "GARDENER_CONFIG": str(config),
            "STORAGE_EMULATOR_HOST": gcs_url,
        },
        quiet=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        status, body, _ = call(base, "POST", "/v2/job/next")
        assert status == 200, body
        key = body["ID"]
        status, body, _ = call(base, "POST", "/v2/job/update", {"id": key, "state": "parsing"})
        assert status == 200, body
        yield base, key, project
    finally:
        stop_process(proc)


def calls(key: str) -> dict[str, Callable[[str], tuple[int, Any, float]]]:
    """One request to each endpoint a parser or a dashboard calls."""
    return {
        "update": lambda b: call(
            b, "POST", "/v2/job/update", {"id": key, "state": "parsing", "detail": "archive 7"}
        ),
        "state change": lambda b: call(
            b, "POST", "/v2/job/update", {"id": key, "state": "postProcessing"}
        ),
        "heartbeat": lambda b: call(b, "POST", "/v2/job/heartbeat", {"id": key}),
        "next": lambda b: call(b, "POST", "/v2/job/next"),
        "status": lambda b: call(b, "GET", "/status", {"format": "json"}),
        "metrics": lambda b: call(b, "GET", "/metrics"),
        "maintain": lambda b: call(b, "POST", "/maintain"),  # no request budget: per call
    }


#: The error of a call that got no answer in time.
NO_ANSWER = f"Firestore did not answer within {DEADLINE:g} s"


def assert_fast_503(name: str, answer: tuple[int, Any, float], *messages: str) -> None:
    """A JSON 503 within the deadline plus the slack, its error starting with one of ``messages``."""
    status, body, elapsed = answer
    print(f"{name}: {status} in {elapsed:.2f} s")
    assert elapsed < DEADLINE + SLACK, f"{name}: answered after {elapsed:.1f} s"
    assert status == 503, f"{name}: {status} {body}"
    assert isinstance(body, dict) and body["status"] == 503, f"{name}: {body}"
    assert body["error"].startswith(messages), f"{name}: {body}"


@pytest.mark.timeout(120)
def test_a_frozen_firestore_answers_503_within_the_deadline_then_recovers(
    own_emulator: FirestoreEmulator,
    server: tuple[str, str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from shared.errors import StoreUnavailable
    from shared.store import DeadlineClient, JobStore, budget
    from shared.store.deadline import ROLLBACK_GRACE

    base, key, project = server
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", own_emulator.host)
    assert own_emulator._proc is not None
    store = JobStore(DeadlineClient(project=project, deadline=DEADLINE))
    store.get(key)  # connected
    os.kill(own_emulator._proc.pid, signal.SIGSTOP)
    try:
        for name, request in calls(key).items():
            assert_fast_503(name, request(base), NO_ANSWER)
        # A state change's transaction (begin, read, commit, rollback), straight on the store.
        start = time.monotonic()
        with budget(DEADLINE), pytest.raises(StoreUnavailable, match=NO_ANSWER):
            store.transact(key, lambda record: record)
        assert time.monotonic() - start < DEADLINE + ROLLBACK_GRACE + 0.5
    finally:
        os.kill(own_emulator._proc.pid, signal.SIGCONT)
    # Still parsing: the state change that got no answer wrote nothing.
    status, body, elapsed = calls(key)["update"](base)
    assert status == 200 and elapsed < DEADLINE + SLACK, (status, body, elapsed)
    assert body["Previous"] == "parsing", body
    status, body, _ = call(base, "GET", "/status", {"format": "json"})
    assert status == 200, body


@pytest.mark.timeout(120)
def test_a_stopped_firestore_answers_503_within_the_deadline(
    own_emulator: FirestoreEmulator,
    server: tuple[str, str, str],
) -> None:
    base, key, _ = server
    assert own_emulator._proc is not None
    own_emulator._proc.kill()
    own_emulator._proc.wait()
    for name, request in calls(key).items():
        # Refused connections are retried until the deadline; the error says why.
        assert_fast_503(name, request(base), NO_ANSWER, "Firestore unavailable: ")


def test_a_spent_budget_refuses_every_call_but_a_rollback() -> None:
    from shared.errors import StoreUnavailable
    from shared.store.deadline import ROLLBACK_GRACE, DeadlineInterceptor, _Details, budget

    interceptor = DeadlineInterceptor(20.0)

    def details(method: str) -> _Details:
        return _Details(f"/google.firestore.v1.Firestore/{method}", 60.0, None, None, None, None)

    with budget(0.0):
        with pytest.raises(StoreUnavailable, match="0 s allowance for Firestore"):
            interceptor._bound(details("Commit"), 20.0)
        bounded, _, binding = interceptor._bound(details("Rollback"), 20.0)
        assert bounded.timeout == ROLLBACK_GRACE and binding
    with budget(5.0):
        bounded, message, binding = interceptor._bound(details("Commit"), 20.0)
        assert bounded.timeout is not None
        assert 4.0 < bounded.timeout <= 5.0 and binding and message.endswith("within 5 s")
    bounded, message, binding = interceptor._bound(details("Commit"), 20.0)
    assert bounded.timeout == 20.0 and binding and message.endswith("within 20 s")
