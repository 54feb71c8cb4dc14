"""Fault tests: transient Firestore errors at the client boundary, GCS down, on the real emulators.

**Firestore.** :class:`FaultyRpcs` makes chosen gRPC calls of one Firestore
client fail (``Aborted``, ``ServiceUnavailable``, ``DeadlineExceeded``) before
they reach the emulator, underneath the client library's own retry policy —
what a dropped connection or an overloaded backend looks like to the code.
Each tracker operation, with each RPC it makes failing once, must either
retry and succeed (HTTP 200, the change applied exactly once) or fail cleanly
(HTTP 503 with a message, the document exactly as before); never a 500,
never half a change. A transaction that keeps being aborted answers 503.

**GCS.** A fake-gcs-server on disk is stopped under a running maintenance
run (snapshot export) and under next-job: a 503 that names GCS, no partial
snapshot, no job or cursor lost; once it is started again the next run works.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.api_core import exceptions as gexc

from shared import transitions
from shared.errors import StoreUnavailable
from shared.model import Job, State
from shared.store import doc_id, from_document

pytestmark = pytest.mark.fault

JOB = Job("archive-bucket", "ndt", "ndt7", date(2019, 1, 2))
KEY = JOB.key()

#: The gRPC methods the store uses.
RPCS = (
    "batch_get_documents",
    "begin_transaction",
    "commit",
    "rollback",
    "run_query",
    "run_aggregation_query",
)
TRANSIENT = (gexc.Aborted, gexc.ServiceUnavailable, gexc.DeadlineExceeded)


class FaultyRpcs:
    """Make chosen Firestore RPCs of one client fail before they are sent.

    The fault sits under the client library's retry and timeout wrappers (it
    replaces the raw gRPC callable each wrapper calls), so the library's
    retries, and the store's, see it as they would see the network.
    """

    def __init__(self, client: Any) -> None:
        self.calls: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self._plan: dict[str, tuple[type[Exception], int]] = {}
        transport = client._firestore_api._transport
        self._raw = {
            name: transport._wrapped_methods[getattr(transport, name)]._target for name in RPCS
        }
        for name in RPCS:
            wrapped = transport._wrapped_methods[getattr(transport, name)]
            wrapped._target = self._faulty(name, wrapped._target)

    def _faulty(self, name: str, target: Callable[..., Any]) -> Callable[..., Any]:
        def call(request: Any, *args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            exc, left = self._plan.get(name, (Exception, 0))
            if left:
                self._plan[name] = (exc, left - 1)
                self.failed[name] += 1
                if name == "commit" and request.transaction and exc is gexc.Aborted:
                    # Firestore ends a transaction whose commit fails, releasing its locks.
                    self._raw["rollback"](
                        {"database": request.database, "transaction": request.transaction}, **kwargs
                    )
                raise exc(f"injected {exc.__name__} on {name}")
            return target(request, *args, **kwargs)

        return call

    def fail(self, rpc: str, exc: type[Exception], times: int = 1) -> None:
        """Let the next ``times`` calls of ``rpc`` raise ``exc`` (10**6: for good)."""
        self._plan[rpc] = (exc, times)

    def heal(self) -> None:
        """Let every call through again."""
        self._plan.clear()


@pytest.fixture
def faults(firestore_client: Any) -> FaultyRpcs:
    """Faults on the client the test's tracker (and ``http``) uses."""
    return FaultyRpcs(firestore_client)


@pytest.fixture
def clean_doc(project: str) -> Callable[[], dict[str, Any]]:
    """Read the job's document with a client of its own (no faults)."""
    from google.cloud import firestore

    client = firestore.Client(project=project)

    def read() -> dict[str, Any]:
        snap = client.collection("jobs").document(doc_id(KEY)).get()
        return snap.to_dict() or {}  # {} when the document does not exist

    return read


def states_of(doc: dict[str, Any]) -> list[str]:
    """The history's states, in order."""
    return [doc["history"][str(i)]["state"] for i in range(len(doc["history"]))]


def assert_consistent(doc: dict[str, Any]) -> None:
    """The document's own fields agree: state is the last history entry, history follows the table."""
    states = states_of(doc)
    assert doc["state"] == states[-1]
    assert states[0] == "init"
    transitions.check_path([State(s) for s in states])
    assert doc["last_activity"] >= doc["last_update"]


@dataclass(frozen=True)
class Operation:
    """A tracker operation, the RPCs it makes, and what it must have done when it answered 200."""

    name: str
    rpcs: tuple[str, ...]
    run: Callable[[Any, Any], int]  # (http, tracker) -> HTTP status
    applied: Callable[[dict[str, Any], dict[str, Any]], None]  # (before, after)


def _post(http: Any, path: str, **params: str) -> int:
    response = http.post(path, query_string=params)
    if response.status_code == 503:
        assert "Firestore unavailable" in response.get_json()["error"]
    return int(response.status_code)


def _same_state_applied(before: dict[str, Any], after: dict[str, Any]) -> None:
    status = from_document(after).status  # the hot path writes under live.{run}
    assert status.update_count == from_document(before).status.update_count + 1
    assert states_of(after) == ["init", "parsing"]
    assert status.history[1].detail == "archive-7.tgz"


def _new_state_applied(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert after["update_count"] == before["update_count"] + 1
    assert states_of(after) == ["init", "parsing", "postProcessing"]
    assert after["history"]["1"]["detail"] == "all archives done"


def _heartbeat_applied(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert after["heartbeat_time"] > (before["heartbeat_time"] or before["last_update"])
    assert after["update_count"] == before["update_count"]
    assert after["history"] == before["history"]


def _error_applied(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert after["update_count"] == before["update_count"] + 1
    assert states_of(after) == ["init", "parsing", "parseError"]
    assert after["history"]["1"]["detail"] == "bad archive"


def _expired_applied(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert states_of(after) == ["init", "parsing", "failed"]
    assert after["history"]["2"]["detail"].startswith("expired in parsing")
    assert after["update_count"] == before["update_count"]
    assert after["retry_at"] is not None


def _expire(http: Any, tracker: Any) -> int:
    not_expired: dict[str, str] = {}
    try:
        expired = tracker.expire_stale(tracker.clock() + timedelta(seconds=1), 10, not_expired)
    except StoreUnavailable:
        return 503
    assert expired in ([KEY], [])  # [] once it has been expired
    if not expired and tracker.get_status(KEY).state is not State.FAILED:
        # Its transaction failed: left, unwritten, to the next run, and named with why.
        assert list(not_expired) == [KEY] and "Firestore" in not_expired[KEY], not_expired
        return 503
    assert not_expired == {}
    return 200


OPERATIONS = (
    Operation(
        "update, same state",
        ("batch_get_documents", "commit"),
        lambda h, t: _post(h, "/v2/job/update", id=KEY, state="parsing", detail="archive-7.tgz"),
        _same_state_applied,
    ),
    Operation(
        "update, new state",
        ("batch_get_documents", "begin_transaction", "commit"),
        lambda h, t: _post(
            h, "/v2/job/update", id=KEY, state="postProcessing", detail="all archives done"
        ),
        _new_state_applied,
    ),
    Operation(
        "heartbeat",
        ("batch_get_documents", "commit"),
        lambda h, t: _post(h, "/v2/job/heartbeat", id=KEY),
        _heartbeat_applied,
    ),
    Operation(
        "error",
        ("batch_get_documents", "begin_transaction", "commit"),
        lambda h, t: _post(h, "/v2/job/error", id=KEY, error="bad archive"),
        _error_applied,
    ),
    Operation(
        "expiry",
        ("run_query", "begin_transaction", "batch_get_documents", "commit"),
        _expire,
        _expired_applied,
    ),
)

CASES = [
    pytest.param(op, rpc, exc, id=f"{op.name}-{rpc}-{exc.__name__}")
    for op in OPERATIONS
    for rpc in op.rpcs
    for exc in TRANSIENT
]


@pytest.mark.parametrize(("operation", "rpc", "exc"), CASES)
def test_a_transient_error_is_retried_or_fails_cleanly_never_half_applied(
    operation, rpc, exc, http, tracker, clock, faults, clean_doc
):
    tracker.add_job(JOB)
    tracker.set_status(KEY, State.PARSING, "start")
    clock.advance(seconds=30)
    before = clean_doc()

    faults.fail(rpc, exc)
    status = operation.run(http, tracker)
    faults.heal()

    assert faults.failed[rpc] == 1, f"{rpc} was not called"
    assert status in (200, 503)
    after = clean_doc()
    assert_consistent(after)
    if status == 200:
        operation.applied(before, after)
    else:
        assert after == before, "a failed operation changed the job"
    # Whatever happened, the job can go on: the same operation now succeeds or is refused
    # by the table (it was applied), never an error of the store.
    assert operation.run(http, tracker) in (200, 409)
    assert_consistent(clean_doc())


#: Combinations the client libraries (and the store) retry: one such failure is invisible.
RETRIED = [
    ("update, same state", "batch_get_documents", gexc.ServiceUnavailable),
    ("update, same state", "batch_get_documents", gexc.DeadlineExceeded),
    ("update, same state", "commit", gexc.ServiceUnavailable),
    ("update, same state", "commit", gexc.Aborted),
    ("heartbeat", "commit", gexc.Aborted),
    ("heartbeat", "commit", gexc.DeadlineExceeded),
    ("update, new state", "commit", gexc.Aborted),
    ("update, new state", "begin_transaction", gexc.ServiceUnavailable),
    ("expiry", "run_query", gexc.ServiceUnavailable),
]


@pytest.mark.parametrize(
    ("name", "rpc", "exc"), RETRIED, ids=[f"{n}-{r}-{e.__name__}" for n, r, e in RETRIED]
)
def test_retryable_failures_are_retried(name, rpc, exc, http, tracker, clock, faults, clean_doc):
    operation = next(op for op in OPERATIONS if op.name == name)
    tracker.add_job(JOB)
    tracker.set_status(KEY, State.PARSING, "start")
    clock.advance(seconds=30)
    before = clean_doc()
    faults.fail(rpc, exc, times=2)
    assert operation.run(http, tracker) == 200
    assert faults.failed[rpc] == 2
    operation.applied(before, clean_doc())


def test_a_transaction_aborted_every_time_answers_503_and_writes_nothing(
    http, tracker, faults, clean_doc
):
    tracker.add_job(JOB)
    tracker.set_status(KEY, State.PARSING, "start")
    before = clean_doc()
    faults.fail("commit", gexc.Aborted, times=10**6)
    response = http.post(
        "/v2/job/update", query_string={"id": KEY, "state": "postProcessing", "detail": "x"}
    )
    faults.heal()
    assert response.status_code == 503
    assert "Firestore unavailable" in response.get_json()["error"]
    assert faults.failed["commit"] >= 5  # the client's attempts, then give up
    assert clean_doc() == before


def test_firestore_down_for_good_answers_503_and_writes_nothing(http, tracker, faults, clean_doc):
    tracker.add_job(JOB)
    tracker.set_status(KEY, State.PARSING, "start")
    before = clean_doc()
    faults.fail("batch_get_documents", gexc.Aborted, times=10**6)
    for params in (
        {"id": KEY, "state": "parsing", "detail": "x"},
        {"id": KEY, "state": "postProcessing"},
    ):
        response = http.post("/v2/job/update", query_string=params)
        assert response.status_code == 503, response.get_json()
    assert http.post("/v2/job/heartbeat", query_string={"id": KEY}).status_code == 503
    faults.heal()
    assert clean_doc() == before


# --------------------------------------------------------------------------- GCS down


@pytest.fixture
def disk_gcs(tmp_path: Path) -> Iterator[Any]:
    """A fake-gcs-server of this test's own, on disk, so a restart keeps its objects."""
    from local.gcs_emulator import GcsEmulator

    emulator = GcsEmulator(root=tmp_path / "gcs", log_path=tmp_path / "gcs.log").start()
    try:
        yield emulator
    finally:
        emulator.stop()


def test_gcs_down_during_snapshot_export_then_the_next_run_succeeds(
    http, tracker, store, clock, disk_gcs, monkeypatch
):
    from local.gcs_emulator import client
    from shared import runtime
    from shared.maintenance import Maintenance, MaintenancePolicy
    from shared.snapshot import write_snapshot

    gcs = client(disk_gcs.url)
    bucket = gcs.create_bucket(f"snap-{uuid.uuid4().hex[:8]}")
    write_snapshot(store, bucket, clock())  # an earlier snapshot: latest.json exists
    tracker.add_job(JOB)
    tracker.set_status(KEY, State.PARSING, "start")
    clock.advance(hours=7)  # the job goes silent past the 6 h timeout

    maintenance = Maintenance(
        tracker,
        MaintenancePolicy(expiration=timedelta(hours=6)),
        lambda now: {"object": write_snapshot(store, bucket, now, deadline=2.0).object},
    )
    monkeypatch.setattr(runtime, "maintenance", lambda: maintenance)
    disk_gcs.stop()
    response = http.post("/maintain")
    assert response.status_code == 503
    assert "GCS unavailable" in response.get_json()["error"]
    # Expiry ran before the export and is kept; the job is failed with its reason, not lost.
    record = tracker.get_record(KEY)
    assert record.status.state is State.FAILED and "expired in parsing" in record.status.error

    disk_gcs.start()
    names = sorted(b.name for b in bucket.list_blobs())
    assert len(names) == 2 and "snapshots/latest.json" in names  # no partial object was left
    clock.advance(minutes=1)
    response = http.post("/maintain")
    assert response.status_code == 200
    latest = response.get_json()["snapshot"]["object"]
    assert latest not in names
    from shared.snapshot import load_snapshot

    with load_snapshot(f"gs://{bucket.name}/snapshots/latest.json", gcs) as snapshot:
        records = list(snapshot)
    assert [r.key for r in records] == [KEY]
    assert records[0].status.state is State.FAILED


def test_gcs_down_during_next_job_then_the_next_call_hands_it_out(
    http, tracker, firestore_client, clock, disk_gcs, monkeypatch
):
    from local.gcs_emulator import client, seed
    from shared import runtime
    from shared.config import Config, Source
    from shared.gcs import ArchiveLister
    from shared.job_service import JobService
    from shared.model import Datasets
    from shared.store import CursorStore

    bucket = f"archive-{uuid.uuid4().hex[:8]}"
    day = clock().date() - timedelta(days=3)
    seed(client(disk_gcs.url), bucket, [f"ndt/ndt7/{day:%Y/%m/%d}/a.tgz"])
    config = Config(
        start_date=day,
        tracker_timeout=timedelta(hours=6),
        polling_interval=timedelta(minutes=1),
        sources=(Source(bucket, "ndt", "ndt7", "", Datasets("t", "r", ""), False, False),),
    )
    cursors = CursorStore(firestore_client)
    service = JobService(
        tracker,
        cursors,
        ArchiveLister(client(disk_gcs.url), timeout=1.0, deadline=1.0),
        config,
        clock=clock,
    )
    monkeypatch.setattr(runtime, "job_service", lambda: service)

    disk_gcs.stop()
    response = http.post("/v2/job/next")
    assert response.status_code == 503
    assert "GCS unavailable" in response.get_json()["error"]
    assert tracker.num_jobs() == 0
    assert cursors.get("historical") is None and cursors.get("daily") is None

    disk_gcs.start()
    response = http.post("/v2/job/next")
    assert response.status_code == 200
    assert response.get_json()["ID"].split("~")[0] == Job(bucket, "ndt", "ndt7", day).key()
    assert http.post("/v2/job/next").status_code == 503  # handed out once, nothing else
