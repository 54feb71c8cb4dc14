"""The function server killed with SIGKILL in the middle of a load run, then started again.

Eight simulated parsers (:class:`local.fleet.SimulatedParser`) take every job there
is and report on it (next, ``parsing``, heartbeat + ``parsing`` per archive,
``postProcessing``), repeating a call that gets no answer, as a parser would.
When a third of the jobs are out, the server's whole process group gets
SIGKILL — no shutdown, requests cut off mid-way — and a new server starts on
the same port. Afterwards:

* every update that was answered 200 is in the job (its count, its history);
* no job was handed out twice;
* every job with files exists, and each one is terminal, in post-processing,
  or in flight and expires into a retryable failure: none is stuck.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections import Counter
from datetime import timedelta

import pytest

from local.emulator import free_port
from local.fleet import run_parsers
from local.gcs_emulator import client, seed
from local.stack import start_functions, stop_process
from local.workload import archive_names, config_yaml, expected_keys
from shared.config import load_config
from shared.model import State, utcnow
from shared.transitions import TERMINAL

pytestmark = pytest.mark.fault

PARSERS = 8
ARCHIVES = 3


def test_sigkill_mid_load_then_restart_loses_nothing(emulator_host, gcs_url, project, tmp_path):
    from google.cloud import firestore

    from shared.store import JobStore
    from shared.tracker import Tracker

    today = utcnow().date()
    start = today - timedelta(days=10)
    bucket = f"archive-{uuid.uuid4().hex[:8]}"
    config_path = tmp_path / "gardener.yml"
    config_path.write_text(config_yaml(bucket, start))
    available = expected_keys(load_config(config_path, {}), utcnow())
    seed(client(gcs_url), bucket, archive_names(start, today))

    port = free_port()
    env = {
        "FIRESTORE_EMULATOR_HOST": emulator_host,
        "STORAGE_EMULATOR_HOST": gcs_url,
        "GOOGLE_CLOUD_PROJECT": project,
        "GARDENER_CONFIG": str(config_path),
        "HEARTBEAT_COALESCE_SECONDS": "0",
    }
    servers = [start_functions(port, env, quiet=True)]
    killed_at: list[int] = []

    def kill_and_restart(calls) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if (
                sum(c.endpoint == "next" and c.status == 200 for c in list(calls))
                >= len(available) // 3
            ):
                break
            time.sleep(0.02)
        killed_at.append(len(calls))
        os.killpg(servers[0].pid, signal.SIGKILL)
        servers[0].wait()
        servers.append(start_functions(port, env, quiet=True))

    try:
        _, calls = run_parsers(
            f"http://127.0.0.1:{port}",
            PARSERS,
            jobs=10_000,
            archives=ARCHIVES,
            timeout=20,
            retries=150,
            during=kill_and_restart,
        )
    finally:
        for server in servers:
            stop_process(server)

    # The kill happened mid-run: calls went unanswered, and work went on after it.
    assert killed_at and 0 < killed_at[0] < len(calls)
    assert any(c.status == 0 for c in calls)
    assert any(c.status == 200 for c in calls[killed_at[0] :])
    assert {c.status for c in calls} <= {0, 200, 503}, Counter(c.status for c in calls)

    handed = [c.key for c in calls if c.endpoint == "next" and c.status == 200]
    assert len(handed) == len(set(handed)), "a job was handed out twice"
    assert set(handed) <= available

    tracker = Tracker(JobStore(firestore.Client(project=project)))
    records = {r.key: r for r in tracker.get_state()}
    assert set(records) == available  # every job with files was started: nothing skipped

    for key, record in records.items():
        mine = [c for c in calls if c.key == key and c.endpoint != "next"]
        updates = [c for c in mine if c.endpoint.startswith("update")]
        accepted = [c for c in updates if c.status == 200]
        unanswered = [c for c in updates if c.status == 0]
        # Every accepted update is counted; at most the unanswered ones on top.
        assert len(accepted) <= record.status.update_count <= len(accepted) + len(unanswered), key
        states = [e.state for e in record.status.history]
        done = [c for c in accepted if c.params["state"] == "postProcessing"]
        if done:
            assert states == [State.INIT, State.PARSING, State.POST_PROCESSING], key
            assert record.status.history[1].detail == done[0].params["detail"]
        elif accepted:
            assert states == [State.INIT, State.PARSING], key
        else:  # never reported on (its hand-out's answer was lost): still a fresh job
            assert states in ([State.INIT], [State.INIT, State.PARSING]), key
        if key not in handed:
            assert states[-1] in (State.INIT, State.PARSING), key

    # Nothing is stuck: post-processing carries a job on, and every job in flight that
    # nobody reports on any more expires into a failure that is retried.
    in_flight = {k for k, r in records.items() if r.status.state not in TERMINAL}
    assert in_flight == set(records)
    expired = set(tracker.expire_stale(utcnow() + timedelta(days=1), 1000))
    assert expired == in_flight
    for key in in_flight:
        record = tracker.get_record(key)
        assert record.status.state is State.FAILED and record.retry_at is not None
