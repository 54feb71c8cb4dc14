"""The Python client against the local stack (``python -m local.stack``, what ``make run`` runs)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
import requests

from local.emulator import free_port
from local.stack import ROOT, launched
from shared.client import (
    Assignment,
    BadRequest,
    JobGone,
    TrackerCallError,
    TrackerClient,
    TrackerUnavailable,
    TransitionRejected,
    UpdateResult,
)
from shared.model import State


@pytest.fixture(scope="module")
def stack(emulator_host: str, gcs_url: str) -> Iterator[str]:
    """The local stack with the demo config on a project of its own; its base URL."""
    port = free_port()
    env = {
        **os.environ,
        "FIRESTORE_EMULATOR_HOST": emulator_host,
        "GOOGLE_CLOUD_PROJECT": f"demo-{uuid.uuid4().hex[:12]}",
        "STORAGE_EMULATOR_HOST": gcs_url,
        "POSTPROCESS_INTERVAL": "0.5",
    }
    env.pop("GARDENER_CONFIG", None)
    env.pop("FLEET", None)
    with launched(env, port) as (base, _):
        yield base


@pytest.fixture
def client(stack: str) -> TrackerClient:
    return TrackerClient(stack, timeout=10, attempts=2, backoff=0.01, max_backoff=0.05)


def status_of(base: str, key: str) -> dict[str, Any]:
    jobs = requests.get(f"{base}/status?format=json", timeout=10).json()["Jobs"]
    return next(j for j in jobs if j["ID"] == key)


def test_a_parser_loop_with_typed_results(client: TrackerClient, stack: str) -> None:
    assignment = client.next()
    assert isinstance(assignment, Assignment)
    job = assignment.job
    assert assignment.key == job.key() and assignment.id.startswith(job.key() + "~")
    assert job.bucket == "archive-demo" and isinstance(job.date, date)
    assert job.datasets.tmp.startswith("tmp_")

    started = client.update(assignment.id, State.PARSING, "starting 3 archives")
    assert started == UpdateResult(assignment.id, State.PARSING, State.INIT)
    for n in range(3):
        assert client.heartbeat(assignment.id) in (True, False)
        progress = client.update(assignment.id, "parsing", f"gs://archive-demo/a{n}.tgz")
        assert progress.previous is State.PARSING
    done = client.update(assignment.id, State.POST_PROCESSING, "3 archives parsed")
    assert (done.state, done.previous) == (State.POST_PROCESSING, State.PARSING)

    status = status_of(stack, assignment.key)
    history = [e["State"] for e in status["Status"]["History"]]
    assert history[:3] == ["init", "parsing", "postProcessing"]
    assert status["Status"]["UpdateCount"] == 5


def test_error_reports_parse_error_and_the_parser_may_go_on(client: TrackerClient) -> None:
    assignment = client.next()
    assert assignment is not None
    client.update(assignment.id, State.PARSING)
    result = client.error(assignment.id, "gs://archive-demo/bad.tgz: corrupt gzip")
    assert (result.state, result.previous) == (State.PARSE_ERROR, State.PARSING)
    assert client.update(assignment.id, State.PARSING).previous is State.PARSE_ERROR


def test_errors_are_typed_and_name_the_call(client: TrackerClient) -> None:
    gone = "archive-demo/ndt/ndt7/20000101"
    with pytest.raises(JobGone) as caught:
        client.heartbeat(gone)
    assert caught.value.call == "heartbeat" and caught.value.status == 410
    assert "heartbeat failed (HTTP 410)" in str(caught.value)

    with pytest.raises(BadRequest) as bad:
        client.update("not-a-key", State.PARSING)
    assert bad.value.status == 400 and "malformed job id" in bad.value.message

    assignment = client.next()
    assert assignment is not None
    with pytest.raises(TransitionRejected) as rejected:
        client.update(assignment.id, State.COMPLETE)
    assert rejected.value.status == 409 and "complete is set by post-processing" in (
        rejected.value.message
    )
    assert isinstance(rejected.value, TrackerCallError)


def test_unknown_state_name_in_python_is_refused_before_sending(client: TrackerClient) -> None:
    with pytest.raises(ValueError, match="unknown state 'finished'"):
        client.update("archive-demo/ndt/ndt7/20000101", "finished")


def test_no_tracker_is_unavailable_after_the_attempts() -> None:
    client = TrackerClient(
        f"http://127.0.0.1:{free_port()}", timeout=2, attempts=2, backoff=0.01, max_backoff=0.02
    )
    with pytest.raises(TrackerUnavailable) as caught:
        client.next()
    assert caught.value.call == "next" and caught.value.status is None
    assert "ConnectionError" in caught.value.message
    assert caught.value.message.endswith("after 2 attempts")


def test_next_says_none_when_every_job_is_handed_out(client: TrackerClient) -> None:
    keys = set()
    while (assignment := client.next()) is not None:
        assert assignment.key not in keys
        keys.add(assignment.key)
    assert client.next() is None


def test_the_client_imports_no_storage_library() -> None:
    code = (
        "import sys, shared.client; "
        "print([m for m in sys.modules if m.startswith(('google.cloud.', 'shared.store'))])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
