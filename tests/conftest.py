"""Fixtures of the layers on the emulators (integration and acceptance): one Firestore
and one GCS emulator per session, a fresh project per test, a movable clock, the
tracker, an HTTP client of the router, a function server.

An emulator is started when the first test needs it and stopped when the
session ends, unless ``FIRESTORE_EMULATOR_HOST`` / ``STORAGE_EMULATOR_HOST``
already point at running ones. Each test gets its own ``demo-<uuid>`` project,
so tests never see each other's documents. Each layer's own fixtures are in its
``conftest.py``: the BigQuery emulator in ``tests/integration``; ``tests/unit``
refuses the emulators.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from local.clock import FakeClock  # noqa: E402
from local.emulator import free_port, running  # noqa: E402
from local.stack import start_functions, stop_process  # noqa: E402


@pytest.fixture(scope="session")
def emulator_host() -> Iterator[str]:
    """Host:port of a running Firestore emulator (started here if none is configured)."""
    with running(ROOT / ".pytest_cache" / "firestore-emulator.log") as (host, _):
        yield host


@pytest.fixture(scope="session")
def gcs_url() -> Iterator[str]:
    """URL of a running GCS emulator (a memory one started here if none is configured)."""
    url = os.environ.get("STORAGE_EMULATOR_HOST")
    if url:
        yield url
        return
    from local.gcs_emulator import GcsEmulator

    (ROOT / ".pytest_cache").mkdir(exist_ok=True)
    emulator = GcsEmulator(log_path=ROOT / ".pytest_cache" / "gcs-emulator.log").start()
    os.environ["STORAGE_EMULATOR_HOST"] = emulator.url
    try:
        yield emulator.url
    finally:
        emulator.stop()
        os.environ.pop("STORAGE_EMULATOR_HOST", None)


@pytest.fixture
def gcs_client(gcs_url: str):
    """A storage client bound to the GCS emulator."""
    from local.gcs_emulator import client

    return client(gcs_url)


@pytest.fixture
def project(emulator_host: str) -> str:
    """A project of its own for this test."""
    return f"demo-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def firestore_client(project: str):
    """A Firestore client on this test's project."""
    from google.cloud import firestore

    return firestore.Client(project=project)


@pytest.fixture
def store(firestore_client):
    """A job store on this test's project."""
    from shared.store import JobStore

    return JobStore(firestore_client)


@pytest.fixture
def clock() -> FakeClock:
    """A clock at 2026-11-27 12:00 UTC that moves only when told."""
    return FakeClock()


@pytest.fixture
def tracker(store, clock):
    """A tracker on this test's store and clock, its hot path always writing the job document.

    The fake clock does not move the wall clock the write interval is measured
    by; the progress shards have tests of their own (``test_hot_job.py``).
    """
    from datetime import timedelta

    from shared.tracker import Tracker

    return Tracker(store, clock=clock, job_write_interval=timedelta(0))


@pytest.fixture
def http(tracker, monkeypatch):
    """A Flask test client of the ``api`` router, wired to this test's tracker, pauses and
    record of the scheduled tasks' successes."""
    from functions_framework import create_app

    from shared import runtime
    from shared.store import ControlStore, TaskStore

    controls = ControlStore(tracker.store.client)
    tasks = TaskStore(tracker.store.client)
    monkeypatch.setattr(runtime, "tracker", lambda: tracker)
    monkeypatch.setattr(runtime, "controls", lambda: controls)
    monkeypatch.setattr(runtime, "tasks", lambda: tasks)
    app = create_app("api", str(ROOT / "functions" / "main.py"))
    return app.test_client()


@pytest.fixture
def start_server(project: str, emulator_host: str) -> Iterator[Callable[..., str]]:
    """Start a real functions-framework server on this test's project; return its base URL.

    Keyword arguments become environment variables of the server. Every server
    started is stopped when the test ends.
    """
    procs = []

    def start(**env: str) -> str:
        port = free_port()
        procs.append(
            start_functions(
                port,
                {"FIRESTORE_EMULATOR_HOST": emulator_host, "GOOGLE_CLOUD_PROJECT": project, **env},
                quiet=True,
            )
        )
        return f"http://127.0.0.1:{port}"

    try:
        yield start
    finally:
        for proc in procs:
            stop_process(proc)
