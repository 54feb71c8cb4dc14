"""One JSON log line per state change, with the job and both states, on the Firestore emulator."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest

from shared import logs
from shared.model import Datasets, Job, State
from shared.postprocess import NoWarehouse, PostProcessor, PostProcessPolicy

TRACE = "0af7651916cd43dd8448eb211c80319c"


@pytest.fixture
def lines() -> Iterator[list[dict[str, Any]]]:
    """JSON lines logged while the test runs (parsed when read)."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logs.CloudLoggingFormatter("demo-logs"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)

    class Lines(list[dict[str, Any]]):
        def read(self) -> list[dict[str, Any]]:
            self[:] = [json.loads(x) for x in out.getvalue().splitlines()]
            return self

    found = Lines()
    yield found
    root.removeHandler(handler)
    root.setLevel(level)


def changes(found) -> list[tuple[str, str | None, str]]:
    return [(x["job"], x["old_state"], x["new_state"]) for x in found.read() if "new_state" in x]


def test_exactly_one_line_per_state_change(tracker, clock, http, lines) -> None:
    job = Job("archive-bucket", "ndt", "pcap", date(2026, 11, 20), datasets=Datasets("t", "r", ""))
    key = tracker.add_job(job).key
    headers = {"X-Cloud-Trace-Context": f"{TRACE}/1;o=1"}
    assert (
        http.post(
            f"/v2/job/update?id={key}&state=parsing&detail=start", headers=headers
        ).status_code
        == 200
    )
    assert http.post(f"/v2/job/update?id={key}&state=parsing&detail=a.tgz").status_code == 200
    assert http.post(f"/v2/job/heartbeat?id={key}").status_code == 200
    assert http.post(f"/v2/job/update?id={key}&state=complete").status_code == 409
    assert http.post(f"/v2/job/error?id={key}&error=bad+archive").status_code == 200
    assert http.post(f"/v2/job/update?id={key}&state=postProcessing").status_code == 200
    PostProcessor(
        tracker,
        NoWarehouse(),  # the pipeline is empty: no step is run
        PostProcessPolicy(),
        pipelines={("archive-bucket", "ndt", "pcap"): ()},
        clock=clock,
    ).tick()

    silent = tracker.add_job(Job("archive-bucket", "ndt", "ndt7", date(2026, 11, 21))).key
    tracker.set_status(silent, State.PARSING)
    clock.advance(hours=1)
    assert tracker.expire_stale(clock() - timedelta(minutes=30), 10) == [silent]
    clock.advance(hours=1)
    tracker.add_job(Job("archive-bucket", "ndt", "ndt7", date(2026, 11, 21)))

    assert changes(lines) == [
        (key, None, "init"),
        (key, "init", "parsing"),
        (key, "parsing", "parseError"),
        (key, "parseError", "postProcessing"),
        (key, "postProcessing", "complete"),
        (silent, None, "init"),
        (silent, "init", "parsing"),
        (silent, "parsing", "failed"),
        (silent, "failed", "init"),
    ]
    by_change = {(x["job"], x["old_state"], x["new_state"]): x for x in lines if "new_state" in x}
    started = by_change[(key, "init", "parsing")]
    assert started["severity"] == "INFO" and started["logger"] == "shared.tracker"
    assert started["logging.googleapis.com/trace"] == f"projects/demo-logs/traces/{TRACE}"
    assert "logging.googleapis.com/trace" not in by_change[(key, "parsing", "parseError")]
    expired = by_change[(silent, "parsing", "failed")]
    assert expired["detail"].startswith("expired in parsing: no heartbeat or update since")
    assert expired["message"].startswith(f"job {silent}: parsing -> failed (expired in parsing")
    assert "attempt 2" in by_change[(silent, "failed", "init")]["message"]


def test_an_operator_fail_is_one_state_change_line(tracker, firestore_client, lines) -> None:
    from shared.admin import Admin
    from shared.config import Config
    from shared.store import ControlStore, ReprocessQueue

    key = tracker.add_job(Job("archive-bucket", "ndt", "ndt7", date(2026, 11, 22))).key
    admin = Admin(
        tracker,
        ReprocessQueue(firestore_client),
        ControlStore(firestore_client),
        Config(
            start_date=date(2026, 11, 1),
            tracker_timeout=timedelta(hours=6),
            polling_interval=timedelta(minutes=1),
            sources=(),
        ),
    )
    admin.fail(key, "bad day", "ops@example.org")
    admin.retry(key, "ops@example.org")  # no change of state: no line

    assert changes(lines) == [(key, None, "init"), (key, "init", "failed")]
    failed = next(x for x in lines if x.get("new_state") == "failed")
    assert failed["detail"] == "init: failed by ops@example.org: bad day"
    assert failed["logger"] == "shared.tracker"
