"""JobMap snapshots: export to GCS in the Go state-file format and import, on both emulators."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from google.api_core import exceptions as gexc
from google.cloud import firestore, storage
from google.cloud.storage.exceptions import InvalidResponse

from shared import defaults
from shared import snapshot as snapshot_module
from shared.errors import StoreUnavailable, Unavailable
from shared.model import UTC, ZERO_TIME, Datasets, Job, JobRecord, State
from shared.snapshot import (
    ImportResult,
    SnapshotError,
    SnapshotUnavailable,
    import_snapshot,
    load_snapshot,
    read_snapshot,
    write_snapshot,
)
from shared.store import JobStore

ROOT = Path(__file__).resolve().parents[2]
GO_SAMPLE = ROOT / "tests" / "data" / "go-gardener-state-v2.json"
DS = Datasets("tmp_ndt", "raw_ndt", "ndt")
GO_ZERO = "0001-01-01T00:00:00Z"


@pytest.fixture
def bucket(gcs_client) -> storage.Bucket:
    """A fresh bucket on the GCS emulator."""
    return gcs_client.create_bucket(f"snap-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def fresh_store(emulator_host: str) -> JobStore:
    """A job store on a second, empty project."""
    return JobStore(firestore.Client(project=f"demo-{uuid.uuid4().hex[:12]}"))


def job_map(store: JobStore) -> dict[str, tuple[Any, ...]]:
    return {r.key: (r.job, r.status, r.last_update) for r in store.stream_all()}


def raw_documents(store: JobStore) -> dict[str, tuple[dict[str, Any], datetime]]:
    documents: dict[str, tuple[dict[str, Any], datetime]] = {}
    for s in store.collection.stream():
        data = s.to_dict()
        assert data is not None, s.id  # a streamed document exists
        documents[s.id] = (data, s.update_time)
    return documents


def names(bucket: storage.Bucket, prefix: str = "") -> list[str]:
    return sorted(b.name for b in bucket.list_blobs(prefix=prefix))


def read_json(bucket: storage.Bucket, name: str) -> Any:
    return json.loads(bucket.blob(name).download_as_bytes())


def make_varied_jobs(tracker, clock) -> list[str]:
    """Jobs in varied states, times with microseconds; return their keys."""
    init = tracker.add_job(Job("archive-a", "ndt", "ndt7", date(2026, 11, 26), "", DS)).key
    clock.advance(seconds=1.234567)
    parsing = tracker.add_job(Job("archive-a", "ndt", "pcap", date(2026, 11, 25), "", DS)).key
    clock.advance(seconds=2.000001)
    tracker.set_status(parsing, State.PARSING, "picked up by parser-1")
    clock.advance(microseconds=777)
    tracker.set_status(parsing, State.PARSING, 'parsed 10 files: "a\\b"\nnext ✓ ünïcode')
    clock.advance(seconds=30.5)
    tracker.heartbeat(parsing)
    failed = tracker.add_job(Job("archive-b", "host", "nodeinfo1", date(2020, 3, 1), "", DS)).key
    clock.advance(seconds=0.000003)
    tracker.set_status(failed, State.PARSING)
    clock.advance(minutes=3)
    tracker.set_job_error(failed, "parser died <badly> & loudly")
    filtered = tracker.add_job(
        Job("archive-b", "ndt", "annotation2", date(2019, 1, 2), "filter-x", Datasets("t", "r", ""))
    ).key
    for state in (State.PARSING, State.POST_PROCESSING, State.LOADING):
        clock.advance(seconds=1.5)
        tracker.set_status(filtered, state, f"entering {state.value}")
    return [init, parsing, failed, filtered]


def valid_file() -> dict[str, Any]:
    """A consistent state file with one job (a deep copy each time)."""
    key = "archive-a/ndt/ndt7/20190102"
    return copy.deepcopy(
        {
            "SaveTime": "2026-11-27T12:00:00Z",
            "Statuses": {
                key: {
                    "HeartbeatTime": GO_ZERO,
                    "UpdateCount": 1,
                    "History": [
                        {
                            "State": "init",
                            "Start": "2026-11-27T11:00:00Z",
                            "DetailTime": "2026-11-27T11:00:00Z",
                            "Detail": "",
                        }
                    ],
                }
            },
            "Jobs": {
                key: {
                    "Bucket": "archive-a",
                    "Experiment": "ndt",
                    "Datatype": "ndt7",
                    "Date": "2019-01-02T00:00:00Z",
                    "Datasets": {"Tmp": "tmp_ndt", "Raw": "raw_ndt", "Join": ""},
                }
            },
        }
    )


def add_second_job(data: dict[str, Any], key: str = "archive-b/ndt/pcap/20190103") -> str:
    data["Statuses"][key] = copy.deepcopy(next(iter(data["Statuses"].values())))
    data["Jobs"][key] = {
        "Bucket": "archive-b",
        "Experiment": "ndt",
        "Datatype": "pcap",
        "Date": "2019-01-03T00:00:00Z",
    }
    return key


def restore(store: JobStore, content: str | bytes) -> ImportResult:
    """Import ``content`` the streaming way (a file read entry by entry), after checking that
    reading it whole in memory comes to the same records or the same problems."""
    raw = content.encode() if isinstance(content, str) else content
    try:
        whole: list[JobRecord] | list[str] = list(read_snapshot(raw))
    except SnapshotError as exc:
        whole = exc.problems
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        f.write(raw)
        f.flush()
        refused: SnapshotError | None = None
        try:
            snapshot = load_snapshot(f.name)
        except SnapshotError as exc:
            refused = exc
    if refused is not None:
        syntax = "(file): not valid JSON: "  # the parsers' own words follow
        assert refused.problems == whole or [
            p.startswith(syntax) for p in [*refused.problems, *whole]
        ] == [True, True]
        raise refused
    with snapshot:
        assert list(snapshot) == whole and len(snapshot) == len(whole)
        return import_snapshot(store, snapshot)


# --- export ----------------------------------------------------------------------------------


def test_export_writes_the_go_format_and_points_latest_at_it(tracker, clock, store, bucket):
    keys = make_varied_jobs(tracker, clock)
    now = clock.advance(seconds=0.5)

    result = write_snapshot(store, bucket, now)

    assert re.fullmatch(r"snapshots/2026-11-27T12-03-38\.735348Z_[0-9a-f]{8}\.json", result.object)
    assert (result.bucket, result.jobs, result.latest) == (bucket.name, 4, "snapshots/latest.json")
    assert result.latest_updated and result.deleted == []
    assert names(bucket) == [result.object, "snapshots/latest.json"]
    blob = bucket.get_blob(result.object)
    assert blob.size == result.bytes and blob.content_type == "application/json"

    data = read_json(bucket, result.object)
    assert list(data) == ["SaveTime", "Statuses", "Jobs"]
    assert data["SaveTime"] == result.save_time == "2026-11-27T12:03:38.735348Z"
    assert set(data["Statuses"]) == set(data["Jobs"]) == set(keys)
    for key in keys:
        status, job = data["Statuses"][key], data["Jobs"][key]
        assert list(status) == ["HeartbeatTime", "UpdateCount", "History"]
        for entry in status["History"]:
            assert list(entry) == ["State", "Start", "DetailTime", "Detail"]
            assert entry["Start"].endswith("Z") and entry["DetailTime"].endswith("Z")
        assert status["HeartbeatTime"].endswith("Z")
        expected_job_keys = ["Bucket", "Experiment", "Datatype", "Date", "Datasets"]
        if key == keys[3]:
            expected_job_keys.insert(4, "Filter")
        assert list(job) == expected_job_keys
        assert list(job["Datasets"]) == ["Tmp", "Raw", "Join"]
        assert job["Date"].endswith("T00:00:00Z")
    init, parsing, failed, filtered = keys
    assert data["Statuses"][init]["HeartbeatTime"] == GO_ZERO
    assert data["Statuses"][parsing]["HeartbeatTime"] == "2026-11-27T12:00:33.735345Z"
    assert data["Statuses"][parsing]["UpdateCount"] == 2
    assert [e["State"] for e in data["Statuses"][parsing]["History"]] == ["init", "parsing"]
    assert data["Statuses"][failed]["History"][-1]["State"] == "failed"
    assert (
        data["Statuses"][failed]["History"][-1]["Detail"] == "parsing: parser died <badly> & loudly"
    )
    assert data["Jobs"][filtered]["Filter"] == "filter-x"
    assert data["Jobs"][init] == {
        "Bucket": "archive-a",
        "Experiment": "ndt",
        "Datatype": "ndt7",
        "Date": "2026-11-26T00:00:00Z",
        "Datasets": {"Tmp": "tmp_ndt", "Raw": "raw_ndt", "Join": "ndt"},
    }
    assert read_json(bucket, "snapshots/latest.json") == {
        "object": result.object,
        "SaveTime": result.save_time,
        "jobs": 4,
    }


def test_export_of_no_jobs_is_a_valid_empty_file(store, bucket, clock):
    result = write_snapshot(store, bucket, clock(), prefix="backups")
    assert result.object.startswith("backups/") and result.jobs == 0
    assert read_json(bucket, result.object) == {
        "SaveTime": "2026-11-27T12:00:00Z",
        "Statuses": {},
        "Jobs": {},
    }
    assert read_snapshot(bucket.blob(result.object).download_as_bytes()) == []


def test_keep_n_deletes_the_oldest_snapshots_only(store, tracker, bucket, clock):
    tracker.add_job(Job("archive-a", "ndt", "ndt7", date(2026, 11, 26)))
    bucket.blob("snapshots/README.txt").upload_from_string(b"not a snapshot")
    bucket.blob("snapshots/old/2020-01-01T00-00-00.000000Z.json").upload_from_string(b"{}")
    results = []
    for _ in range(4):
        clock.advance(minutes=30)
        results.append(write_snapshot(store, bucket, clock(), keep=2))

    made = [r.object for r in results]
    assert names(bucket, "snapshots/") == sorted(
        [
            *made[2:],
            "snapshots/README.txt",
            "snapshots/latest.json",
            "snapshots/old/2020-01-01T00-00-00.000000Z.json",
        ]
    )
    assert [r.deleted for r in results] == [[], [], [made[0]], [made[1]]]
    assert read_json(bucket, "snapshots/latest.json")["object"] == made[3]
    with pytest.raises(ValueError, match="keep must be at least 1"):
        write_snapshot(store, bucket, clock(), keep=0)


def test_two_exports_in_quick_succession_make_two_objects(store, tracker, bucket, clock):
    tracker.add_job(Job("archive-a", "ndt", "ndt7", date(2026, 11, 26)))
    same = [write_snapshot(store, bucket, clock()) for _ in range(2)]  # the very same instant
    wall = [write_snapshot(store, bucket, datetime.now(UTC)) for _ in range(2)]

    objects = [r.object for r in same + wall]
    assert len(set(objects)) == 4
    assert all(o.startswith("snapshots/2026-11-27T12-00-00.000000Z_") for o in objects[:2])
    assert names(bucket) == sorted([*objects, "snapshots/latest.json"])
    for name in objects:
        assert read_snapshot(bucket.blob(name).download_as_bytes())[0].job.datatype == "ndt7"
    assert read_json(bucket, "snapshots/latest.json")["object"] == wall[1].object


def test_latest_pointer_never_moves_back(store, bucket, clock):
    later = write_snapshot(store, bucket, clock.advance(hours=1))
    earlier = write_snapshot(store, bucket, clock() - timedelta(hours=2))  # a slow, older run
    assert later.latest_updated and not earlier.latest_updated
    assert read_json(bucket, "snapshots/latest.json")["object"] == later.object
    assert bucket.blob(earlier.object).exists()


def test_a_snapshot_from_a_clock_far_ahead_does_not_pin_the_pointer(store, bucket, clock):
    ahead = write_snapshot(store, bucket, clock() + timedelta(days=3650), keep=2)  # a fast clock
    assert ahead.latest_updated

    right = write_snapshot(store, bucket, clock.advance(minutes=30), keep=2)
    assert right.latest_updated
    assert read_json(bucket, "snapshots/latest.json")["object"] == right.object
    later = write_snapshot(store, bucket, clock.advance(minutes=30), keep=2)
    assert later.latest_updated and read_json(bucket, "snapshots/latest.json")["object"] == (
        later.object
    )
    # Pruning counts it as the oldest: the two real ones are kept.
    assert later.deleted == [ahead.object]
    assert names(bucket) == sorted([right.object, later.object, "snapshots/latest.json"])


def test_a_snapshot_ahead_by_less_than_the_skew_still_holds_the_pointer(store, bucket, clock):
    ahead = write_snapshot(store, bucket, clock() + timedelta(hours=23))
    behind = write_snapshot(store, bucket, clock())
    assert not behind.latest_updated
    assert read_json(bucket, "snapshots/latest.json")["object"] == ahead.object


def test_failed_export_leaves_no_object(store, tracker, bucket, clock, monkeypatch):
    for day in range(1, 4):
        tracker.add_job(Job("archive-a", "ndt", "ndt7", date(2026, 11, day)))
    monkeypatch.setattr(defaults, "SNAPSHOT_UPLOAD_CHUNK", 256 * 1024)
    records = list(store.stream_all())

    def failing_stream():
        for i in range(3000):  # past the first chunk: the upload has begun
            rec = copy.deepcopy(records[i % 3])
            rec.status.history[0] = rec.status.history[0].with_detail("x" * 100, clock())
            yield rec
        raise StoreUnavailable("Firestore went away")

    monkeypatch.setattr(store, "stream_all", failing_stream)
    with pytest.raises(StoreUnavailable):
        write_snapshot(store, bucket, clock())
    assert names(bucket) == []


@pytest.fixture
def failing_close(monkeypatch):
    """Make the first streaming upload fail on close with a given HTTP status; record every open."""
    real_open = storage.Blob.open
    opened: list[tuple[str, Any]] = []
    status: list[int] = []

    def open_(self: storage.Blob, *args: Any, **kwargs: Any) -> Any:
        writer = real_open(self, *args, **kwargs)
        opened.append((self.name, kwargs.get("if_generation_match")))
        if len(opened) == 1:

            def close() -> None:
                raise InvalidResponse(SimpleNamespace(status_code=status[0]), "Request failed")

            writer.close = close
        return writer

    monkeypatch.setattr(storage.Blob, "open", open_)

    def arm(code: int) -> list[tuple[str, Any]]:
        status.append(code)
        return opened

    return arm


def test_a_name_taken_during_the_upload_is_refused(store, tracker, bucket, clock, failing_close):
    tracker.add_job(Job("archive-a", "ndt", "ndt7", date(2026, 11, 26)))
    opened = failing_close(412)  # the create-only precondition fails: someone took the name
    with pytest.raises(SnapshotUnavailable, match="exists"):
        write_snapshot(store, bucket, clock())
    assert [generation for _, generation in opened] == [0]
    assert names(bucket) == []


def test_a_server_error_during_the_upload_is_unavailable(store, bucket, clock, failing_close):
    failing_close(503)
    with pytest.raises(SnapshotUnavailable):
        write_snapshot(store, bucket, clock())
    assert names(bucket) == []


def test_gcs_outage_is_unavailable(store, bucket, clock, monkeypatch):
    def down(*args: Any, **kwargs: Any) -> bool:
        raise gexc.ServiceUnavailable("GCS is down")

    monkeypatch.setattr(storage.Blob, "open", down)
    with pytest.raises(SnapshotUnavailable) as info:
        write_snapshot(store, bucket, clock())
    assert isinstance(info.value, Unavailable) and "GCS is down" in str(info.value)


# --- round trip and import -------------------------------------------------------------------


def test_round_trip_into_a_fresh_project(tracker, clock, store, fresh_store, bucket, gcs_client):
    make_varied_jobs(tracker, clock)
    result = write_snapshot(store, bucket, clock())

    snap = load_snapshot(f"gs://{bucket.name}/snapshots/latest.json", gcs_client)  # the pointer
    assert snap.save_time == clock() and snap.skipped == []
    assert import_snapshot(fresh_store, snap) == ImportResult(total=4, created=4, already_present=0)

    original, restored = job_map(store), job_map(fresh_store)
    assert restored == original  # jobs, statuses and last updates, to the microsecond
    assert len(restored) == 4
    parsing = next(s for _, s, _ in restored.values() if s.state is State.PARSING)
    assert parsing.history[-1].detail.endswith("next ✓ ünïcode")
    assert parsing.heartbeat_time.microsecond == 735345
    direct = load_snapshot(f"gs://{bucket.name}/{result.object}", gcs_client)
    assert list(direct) == list(snap) and direct.save_time == snap.save_time


def test_importing_twice_changes_nothing(tracker, clock, store, fresh_store, bucket):
    make_varied_jobs(tracker, clock)
    content = bucket.blob(write_snapshot(store, bucket, clock()).object).download_as_bytes()
    assert restore(fresh_store, content).created == 4
    before = raw_documents(fresh_store)

    second = restore(fresh_store, content)

    assert (second.total, second.created, second.already_present) == (4, 0, 4)
    assert raw_documents(fresh_store) == before  # update times included: nothing was written


def test_an_existing_job_is_left_untouched(tracker, store):
    key = tracker.add_job(Job("bucket", "exp", "type", date(2011, 1, 1))).key
    tracker.set_status(key, State.PARSING, "live parser")
    before = raw_documents(store)

    result = restore(store, GO_SAMPLE.read_bytes())  # has the same key, in state init

    assert (result.total, result.created, result.already_present) == (1, 0, 1)
    assert raw_documents(store) == before
    assert tracker.get_status(key).state is State.PARSING


def test_the_go_sample_imports_its_consistent_job(store):
    result = import_snapshot(store, load_snapshot(str(GO_SAMPLE)))

    # Its second Jobs entry has no status (and fields that do not match its key): skipped.
    assert result == ImportResult(
        total=1, created=1, already_present=0, skipped=["bucket/exp/type/20110102"]
    )
    [record] = store.stream_all()
    assert record.job == Job(
        "bucket", "exp", "type", date(2011, 1, 1), "", Datasets("tmp_ndt", "raw_ndt", "")
    )
    started = datetime(2022, 7, 22, 20, 56, 0, 577268, tzinfo=UTC)  # 16:56 at -04:00
    assert record.status.state is State.INIT and record.status.start_time == started
    assert record.status.heartbeat_time == ZERO_TIME and record.status.update_count == 0
    assert record.last_update == started


def test_go_entries_without_datasets_nanoseconds_and_offsets_load():
    data = valid_file()
    key = add_second_job(data)  # no Datasets, no Filter
    data["Jobs"]["archive-a/ndt/ndt7/20190102"]["Datasets"] = {}
    data["Jobs"][key]["Filter"] = "f1"
    data["Statuses"][key]["HeartbeatTime"] = "2019-01-02T03:04:05.123456789+02:00"
    data["Statuses"][key]["History"].append(
        {
            "State": "parsing",
            "Start": "2026-11-27T11:30:00.5Z",
            "DetailTime": "2026-11-27T07:45:00.000001999-04:00",
        }
    )  # no Detail either
    data["SaveTime"] = "2026-11-27T12:00:00.999999999Z"

    snap = read_snapshot(json.dumps(data))

    assert snap.save_time == datetime(2026, 11, 27, 12, 0, 0, 999999, tzinfo=UTC)
    first, second = snap
    assert first.job.datasets == Datasets() and first.job.filter == ""
    assert second.job.datasets == Datasets() and second.job.filter == "f1"
    assert second.status.heartbeat_time == datetime(2019, 1, 2, 1, 4, 5, 123456, tzinfo=UTC)
    last = second.status.history[-1]
    assert last.state is State.PARSING and last.detail == ""
    assert last.detail_time == datetime(2026, 11, 27, 11, 45, 0, 1, tzinfo=UTC)
    assert second.last_update == last.detail_time


def _without(data: dict[str, Any], name: str) -> dict[str, Any]:
    data.pop(name)
    return data


def _set_state(data: dict[str, Any]) -> dict[str, Any]:
    next(iter(data["Statuses"].values()))["History"][0]["State"] = "parsed"
    return data


def _mismatch(data: dict[str, Any]) -> dict[str, Any]:
    add_second_job(data)
    data["Jobs"]["archive-b/ndt/pcap/20190103"]["Experiment"] = "ndt2"
    return data


def _empty_history(data: dict[str, Any]) -> dict[str, Any]:
    next(iter(data["Statuses"].values()))["History"] = []
    return data


def _bad_time(data: dict[str, Any]) -> dict[str, Any]:
    next(iter(data["Statuses"].values()))["History"][0]["DetailTime"] = "2026-11-27 11:00:00"
    return data


def _status_without_job(data: dict[str, Any]) -> dict[str, Any]:
    add_second_job(data)
    del data["Jobs"]["archive-b/ndt/pcap/20190103"]
    return data


def _bad_key(data: dict[str, Any]) -> dict[str, Any]:
    data["Statuses"]["archive-b/ndt/pcap/20191340"] = data["Statuses"][
        "archive-a/ndt/ndt7/20190102"
    ]
    data["Jobs"]["archive-b/ndt/pcap/20191340"] = data["Jobs"]["archive-a/ndt/ndt7/20190102"]
    return data


MALFORMED: dict[str, tuple[str | Callable[[dict[str, Any]], dict[str, Any]], str]] = {
    "bad JSON": ('{"SaveTime": "2026-11-27T12:00:00Z", "Statuses": {', "not valid JSON"),
    "not an object": ("[]", "expected a JSON object"),
    "missing SaveTime": (lambda d: _without(d, "SaveTime"), "SaveTime: Missing data"),
    "missing Statuses": (lambda d: _without(d, "Statuses"), "Statuses: Missing data"),
    "unknown state": (_set_state, "History[0].State: unknown state 'parsed'"),
    "key/fields mismatch": (
        _mismatch,
        (
            'Jobs["archive-b/ndt/pcap/20190103"]: fields do not match the key: '
            "experiment ndt2 (key: ndt)"
        ),
    ),
    "history empty": (_empty_history, "History: Shorter than minimum length 1."),
    "bad time": (_bad_time, "DetailTime: not an RFC 3339 time: '2026-11-27 11:00:00'"),
    "status without job": (_status_without_job, 'Statuses["archive-b/ndt/pcap/20190103"]: no Jobs'),
    "bad key": (_bad_key, "invalid date '20191340'"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_file_is_refused_and_nothing_is_written(store, case):
    make, reason = MALFORMED[case]
    content = make if isinstance(make, str) else json.dumps(make(valid_file()))

    with pytest.raises(SnapshotError) as info:
        restore(store, content)

    assert reason in str(info.value)
    assert any(reason in p for p in info.value.problems)
    assert isinstance(info.value, ValueError)
    assert list(store.stream_all()) == []


def test_every_problem_is_listed(store, bucket, gcs_client):
    data = _bad_time(_mismatch(valid_file()))
    data["Statuses"]["archive-b/ndt/pcap/20190103"]["UpdateCount"] = -3
    data["Extra"] = 1
    bucket.blob("bad.json").upload_from_string(json.dumps(data))

    with pytest.raises(SnapshotError) as info:
        load_snapshot(f"gs://{bucket.name}/bad.json", gcs_client)

    assert sorted(info.value.problems) == sorted(
        [
            "Extra: Unknown field.",
            (
                'Statuses["archive-a/ndt/ndt7/20190102"].History[0].DetailTime: '
                "not an RFC 3339 time: '2026-11-27 11:00:00'"
            ),
            'Statuses["archive-b/ndt/pcap/20190103"].UpdateCount: must not be negative',
            (
                'Jobs["archive-b/ndt/pcap/20190103"]: fields do not match the key: '
                "experiment ndt2 (key: ndt)"
            ),
        ]
    )
    assert list(store.stream_all()) == []


def test_missing_sources(gcs_client, bucket, tmp_path):
    with pytest.raises(FileNotFoundError):
        load_snapshot(str(tmp_path / "absent.json"))
    with pytest.raises(FileNotFoundError):
        load_snapshot(f"gs://{bucket.name}/absent.json", gcs_client)


def test_a_large_export_round_trips(store, fresh_store, bucket, clock, monkeypatch):
    # Small chunks and spool: a multi-chunk upload, and job entries spilled to disk.
    monkeypatch.setattr(defaults, "SNAPSHOT_UPLOAD_CHUNK", 256 * 1024)
    monkeypatch.setattr(defaults, "SNAPSHOT_SPOOL_MAX", 64 * 1024)
    start = date(2020, 1, 1)
    records = [
        JobRecord.new(
            Job("archive-a", "ndt", dt, start + timedelta(days=d), "", DS),
            clock.advance(microseconds=1),
        )
        for dt in ("ndt7", "pcap", "tcpinfo")
        for d in range(400)
    ]
    assert len(store.create_missing(records)) == 1200

    result = write_snapshot(store, bucket, clock())
    assert result.jobs == 1200 and result.bytes > 256 * 1024
    assert bucket.get_blob(result.object).size == result.bytes
    snap = read_snapshot(bucket.blob(result.object).download_as_bytes())
    assert import_snapshot(fresh_store, snap).created == 1200
    assert job_map(fresh_store) == job_map(store)


# --- the command line ------------------------------------------------------------------------


def run_cli(
    *args: str, emulator_host: str, gcs_url: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TRACKER_COLLECTION"}
    env["FIRESTORE_EMULATOR_HOST"] = emulator_host
    if gcs_url:
        env["STORAGE_EMULATOR_HOST"] = gcs_url
    return subprocess.run(
        [sys.executable, "-m", "shared.snapshot_cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_import_prints_counts_and_exits_0(project, store, emulator_host):
    first = run_cli("import", str(GO_SAMPLE), "--project", project, emulator_host=emulator_host)
    assert first.returncode == 0, first.stderr
    assert "1 jobs, 1 created, 0 already present" in first.stdout
    assert "skipped 1 Jobs entries without a status: bucket/exp/type/20110102" in first.stdout

    second = run_cli(
        "import",
        str(GO_SAMPLE),
        "--project",
        project,
        "--json",
        emulator_host=emulator_host,
    )
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout) == {
        "source": str(GO_SAMPLE),
        "save_time": "2022-07-22T20:56:00.586307Z",
        "total": 1,
        "created": 0,
        "already_present": 1,
        "skipped": ["bucket/exp/type/20110102"],
    }
    assert [r.key for r in store.stream_all()] == ["bucket/exp/type/20110101"]


def test_cli_refuses_a_malformed_file_with_exit_2(project, store, emulator_host, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_empty_history(_mismatch(valid_file()))))

    proc = run_cli("import", str(bad), "--project", project, emulator_host=emulator_host)

    assert proc.returncode == 2 and proc.stdout == ""
    assert "snapshot refused (2 problems, nothing written)" in proc.stderr
    assert "History: Shorter than minimum length 1." in proc.stderr
    assert "fields do not match the key" in proc.stderr
    assert list(store.stream_all()) == []

    as_json = run_cli(
        "import", str(bad), "--project", project, "--json", emulator_host=emulator_host
    )
    assert as_json.returncode == 2 and len(json.loads(as_json.stdout)["problems"]) == 2

    missing = run_cli(
        "import",
        str(tmp_path / "absent.json"),
        "--project",
        project,
        emulator_host=emulator_host,
    )
    assert missing.returncode == 1 and "FileNotFoundError" in missing.stderr


def test_cli_export_then_import_from_the_pointer(
    project, tracker, store, fresh_store, bucket, emulator_host, gcs_url
):
    tracker.add_job(Job("archive-a", "ndt", "ndt7", date(2026, 11, 26), "", DS))
    proc = run_cli(
        "export",
        f"gs://{bucket.name}/backups",
        "--keep",
        "2",
        "--project",
        project,
        "--json",
        emulator_host=emulator_host,
        gcs_url=gcs_url,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["object"].startswith("backups/") and out["jobs"] == 1
    assert out["latest"] == "backups/latest.json" and out["deleted"] == []

    fresh = fresh_store.client.project
    pointer = f"gs://{bucket.name}/backups/latest.json"
    imported = run_cli(
        "import", pointer, "--project", fresh, emulator_host=emulator_host, gcs_url=gcs_url
    )
    assert imported.returncode == 0, imported.stderr
    assert "1 jobs, 1 created, 0 already present" in imported.stdout
    assert job_map(fresh_store) == job_map(store)

    human = run_cli(
        "export",
        f"gs://{bucket.name}",
        "--project",
        project,
        emulator_host=emulator_host,
        gcs_url=gcs_url,
    )
    assert human.returncode == 0 and human.stdout.startswith("exported 1 jobs to ")
    assert f"gs://{bucket.name}/snapshots/" in human.stdout


def test_cli_help_and_usage_errors(emulator_host):
    for command in ("import", "export"):
        proc = run_cli(command, "--help", emulator_host=emulator_host)
        assert proc.returncode == 0 and "--project" in proc.stdout and "--json" in proc.stdout
    bad_keep = run_cli("export", "gs://b", "--keep", "0", emulator_host=emulator_host)
    assert bad_keep.returncode == 2 and "at least 1" in bad_keep.stderr


# --- what Firestore would refuse is refused before the first write ---------------------------


def many_jobs(count: int) -> dict[str, Any]:
    """A valid file with ``count`` jobs, keys in sorted order."""
    data = valid_file()
    status = next(iter(data["Statuses"].values()))
    data["Statuses"], data["Jobs"] = {}, {}
    for n in range(count):
        day = date(2019, 1, 1) + timedelta(days=n)
        key = f"archive-a/ndt/ndt7/{day:%Y%m%d}"
        data["Statuses"][key] = copy.deepcopy(status)
        data["Jobs"][key] = {
            "Bucket": "archive-a",
            "Experiment": "ndt",
            "Datatype": "ndt7",
            "Date": f"{day:%Y-%m-%d}T00:00:00Z",
        }
    return data


def nth_status(data: dict[str, Any], n: int) -> dict[str, Any]:
    statuses: dict[str, dict[str, Any]] = data["Statuses"]
    return statuses[sorted(statuses)[n]]


def test_an_update_count_beyond_int64_in_the_550th_job_writes_nothing(store):
    data = many_jobs(600)
    nth_status(data, 549)["UpdateCount"] = 2**63

    with pytest.raises(SnapshotError) as info:
        restore(store, json.dumps(data))

    assert info.value.problems == [
        f'Statuses["{sorted(data["Statuses"])[549]}"].UpdateCount: 9223372036854775808 does not '
        "fit in a 64-bit integer (at most 9223372036854775807)"
    ]
    assert list(store.stream_all()) == []


def test_a_document_firestore_would_refuse_as_too_large_is_refused_first(store):
    data = many_jobs(2)
    nth_status(data, 1)["History"][0]["Detail"] = "x" * 1_200_000  # > 1 MiB: Firestore refuses

    with pytest.raises(SnapshotError) as info:
        restore(store, json.dumps(data))

    [problem] = info.value.problems
    assert problem.startswith(
        f'Statuses["{sorted(data["Statuses"])[1]}"]: the job\'s document: document of 12'
    )
    assert "Firestore's limit is 1048576 (largest field: history)" in problem
    assert list(store.stream_all()) == []


def test_the_size_bound_is_what_the_emulator_enforces(store):
    """The computed size is an upper bound: a document just inside it is stored, one beyond is not."""
    from shared import limits
    from shared.snapshot import record_problems
    from shared.store import doc_id, to_document

    [record] = read_snapshot(json.dumps(valid_file()))
    name = limits.name_size("c" * limits.MAX_COLLECTION_ID_BYTES, doc_id(record.key))
    room = limits.MAX_DOCUMENT_BYTES - limits.document_size(to_document(record), name)
    entry = record.status.history[0]
    record.status.history[0] = entry.with_detail("x" * room, entry.detail_time)
    assert record_problems(record) == []
    assert store.create_missing([record]) == [record.key]

    big = JobRecord(
        Job("archive-a", "ndt", "ndt7", date(2019, 1, 3), "", DS), record.status, record.last_update
    )
    big.status.history[0] = entry.with_detail("x" * limits.MAX_DOCUMENT_BYTES, entry.detail_time)
    assert "Firestore's limit is 1048576" in record_problems(big)[0]
    with pytest.raises(gexc.InvalidArgument):  # and the emulator refuses it indeed
        store.create_missing([big])


def _set(path: tuple[Any, ...], value: Any) -> Any:
    """A change of a valid file: set the value at ``path`` (an index one past a list appends)."""

    def make(data: dict[str, Any]) -> dict[str, Any]:
        target: Any = data
        for step in path[:-1]:
            target = target[step]
        if isinstance(target, list) and path[-1] == len(target):
            target.append(value)
        else:
            target[path[-1]] = value
        return data

    return make


_STATUS0 = ("Statuses", "archive-a/ndt/ndt7/20190102")
_JOB0 = ("Jobs", "archive-a/ndt/ndt7/20190102")
BEYOND_LIMITS = {
    "year 9999 in a zone west of UTC": (
        _set((*_STATUS0, "History", 0, "Start"), "9999-12-31T23:00:00-05:00"),
        "History[0].Start: time out of range (after year 9999 in UTC)",
    ),
    "a time after 2200": (
        _set((*_STATUS0, "History", 0, "DetailTime"), "2300-01-01T00:00:00Z"),
        "History[0].DetailTime: 2300-01-01T00:00:00+00:00 is outside 1970-01-01 to 2200-01-01",
    ),
    "a time before 1970": (
        _set((*_STATUS0, "HeartbeatTime"), "1969-12-31T23:59:59Z"),
        "HeartbeatTime: 1969-12-31T23:59:59+00:00 is outside 1970-01-01 to 2200-01-01 "
        "(or the zero time)",
    ),
    "a save time in year 1": (
        _set(("SaveTime",), "0001-01-01T00:00:00Z"),
        "SaveTime: 0001-01-01T00:00:00+00:00 is outside",
    ),
    "a job date after 2200": (
        _set((*_JOB0, "Date"), "2201-01-02T00:00:00Z"),
        "Date: 2201-01-02T00:00:00+00:00 is outside",
    ),
    "an indexed string over 1,500 bytes": (
        _set((*_JOB0, "Datasets"), {"Tmp": "t" * 1501}),
        "the job's document: datasets.tmp: 1501 bytes; an indexed string holds at most 1500",
    ),
    "a step the transition table refuses": (
        _set(
            (*_STATUS0, "History", 1),
            {
                "State": "complete",
                "Start": "2026-11-27T11:00:00Z",
                "DetailTime": "2026-11-27T11:00:00Z",
            },
        ),
        "History[1].State: complete cannot follow init (see the transition table)",
    ),
    "a repeated state": (
        _set(
            (*_STATUS0, "History", 1),
            {
                "State": "init",
                "Start": "2026-11-27T11:00:00Z",
                "DetailTime": "2026-11-27T11:00:00Z",
            },
        ),
        "History[1].State: init cannot follow init",
    ),
}


@pytest.mark.parametrize("case", list(BEYOND_LIMITS))
def test_values_the_store_cannot_hold_are_refused(store, case):
    make, reason = BEYOND_LIMITS[case]
    with pytest.raises(SnapshotError) as info:
        restore(store, json.dumps(make(valid_file())))
    assert any(reason in p for p in info.value.problems), info.value.problems
    assert list(store.stream_all()) == []


def test_any_state_may_follow_failed_as_in_go_histories(store):
    """The Go tracker accepted any change: parsers kept updating a job another task had failed."""
    data = valid_file()
    history = data["Statuses"]["archive-a/ndt/ndt7/20190102"]["History"]
    for state in ("parsing", "failed", "parsing", "postProcessing"):
        history.append(
            {
                "State": state,
                "Start": "2026-11-27T11:30:00Z",
                "DetailTime": "2026-11-27T11:30:00Z",
                "Detail": state,
            }
        )

    assert restore(store, json.dumps(data)).created == 1
    [record] = store.stream_all()
    assert record.status.state is State.POST_PROCESSING


def test_the_zero_heartbeat_and_the_window_edges_are_accepted(store):
    data = valid_file()
    status = data["Statuses"]["archive-a/ndt/ndt7/20190102"]
    status["History"][0]["Start"] = "1970-01-01T00:00:00Z"
    status["History"][0]["DetailTime"] = "2199-12-31T23:59:59.999999999Z"
    status["UpdateCount"] = 2**63 - 1
    assert status["HeartbeatTime"] == GO_ZERO
    assert restore(store, json.dumps(data)).created == 1


def test_a_firestore_failure_mid_way_says_what_was_written_and_a_rerun_finishes(store, monkeypatch):
    data = many_jobs(1200)
    keys = sorted(data["Statuses"])
    snapshot = read_snapshot(json.dumps(data))
    store.create_missing(list(snapshot[:3]))  # three already there
    real = JobStore.create_missing
    calls = []

    def failing(self: JobStore, records: list[JobRecord]) -> list[str]:
        calls.append(len(records))
        if len(calls) == 2:
            raise StoreUnavailable("Firestore unavailable: deadline exceeded")
        return real(self, records)

    monkeypatch.setattr(JobStore, "create_missing", failing)
    with pytest.raises(snapshot_module.ImportInterrupted) as info:
        import_snapshot(store, snapshot)

    exc = info.value
    assert exc.created == keys[3:500] and exc.already_present == keys[:3]
    assert exc.not_written == keys[500:]
    assert "497 jobs created, 3 already present, 700 not written" in str(exc)
    assert sorted(r.key for r in store.stream_all()) == keys[:500]

    monkeypatch.setattr(JobStore, "create_missing", real)
    again = import_snapshot(store, snapshot)
    assert (again.created, again.already_present) == (700, 500)
    assert sorted(r.key for r in store.stream_all()) == keys


def test_cli_lists_the_jobs_written_and_not_written(
    project, store, emulator_host, tmp_path, monkeypatch, capsys
):
    from shared import snapshot_cli as cli

    path = tmp_path / "many.json"
    data = many_jobs(501)
    path.write_text(json.dumps(data))
    keys = sorted(data["Statuses"])
    real = JobStore.create_missing

    def failing(self: JobStore, records: list[JobRecord]) -> list[str]:
        if len(records) == 1:
            raise StoreUnavailable("Firestore unavailable")
        return real(self, records)

    monkeypatch.setattr(JobStore, "create_missing", failing)
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", emulator_host)
    monkeypatch.delenv("TRACKER_COLLECTION", raising=False)

    assert cli.main(["import", str(path), "--project", project, "--json"]) == 1
    out, err = capsys.readouterr()
    body = json.loads(out)
    assert body["created"] == keys[:500] and body["not_written"] == [keys[500]]
    assert "500 jobs created, 0 already present, 1 not written" in err
    assert f"not written (1):\n  {keys[500]}" in err
    assert "import the same file again to finish" in err


def test_a_long_go_history_is_bounded_as_the_tracker_bounds_it(store):
    """A Go history of 3,000 entries keeps the first and the latest 100; old details are cut."""
    from shared.model import HISTORY_FULL_DETAILS, HISTORY_KEEP, OLD_DETAIL_LENGTH

    data = valid_file()
    history = data["Statuses"]["archive-a/ndt/ndt7/20190102"]["History"]
    for n in range(1, 3000):  # parsing, failed, parsing, … (any state may follow failed)
        long = n >= 3000 - 2 * HISTORY_FULL_DETAILS
        history.append(
            {
                "State": "parsing" if n % 2 else "failed",
                "Start": "2026-11-27T11:30:00Z",
                "DetailTime": "2026-11-27T11:30:00Z",
                "Detail": f"{n}:" + ("x" * 4000 if long else ""),
            }
        )

    assert restore(store, json.dumps(data)).created == 1
    [record] = store.stream_all()
    dropped = 3000 - 1 - HISTORY_KEEP
    assert (record.status.dropped, len(record.status.history)) == (dropped, 1 + HISTORY_KEEP)
    assert [e.detail.split(":")[0] for e in record.status.history] == [
        "",
        *(str(n) for n in range(dropped + 1, 3000)),
    ]
    lengths = [len(e.detail) for e in record.status.history[-2 * HISTORY_FULL_DETAILS :]]
    assert lengths[:HISTORY_FULL_DETAILS] == [OLD_DETAIL_LENGTH] * HISTORY_FULL_DETAILS
    assert lengths[HISTORY_FULL_DETAILS:] == [len("2999:") + 4000] * HISTORY_FULL_DETAILS
    [(document, _)] = raw_documents(store).values()
    assert document["history_dropped"] == dropped
    assert sorted(map(int, document["history"])) == [0, *range(dropped + 1, 3000)]
