"""No stored job breaks a page: any value Firestore can hold renders, expires and counts.

The documents are written straight into the emulator (an import refuses such
values, but the store can hold them: times from year 1 to 9999, int64 counts,
a history without entries).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta

import pytest
from google.cloud import firestore

from shared.limits import INT64_MAX, MAX_CLOCK_SKEW
from shared.model import UTC, Datasets, Job, JobRecord, State, StateInfo, Status
from shared.snapshot import import_snapshot, read_snapshot, write_snapshot
from shared.store import JobStore, doc_id, to_document
from shared.tracker import Tracker
from shared.web import views

LATEST = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
EARLIEST = datetime(1, 1, 1, tzinfo=UTC)
TIMEOUT = timedelta(hours=5)


def put(store, day: int, state: State, when: datetime, **changes) -> str:
    """Write a job document directly, every time set to ``when``; return its key."""
    job = Job("archive-x", "ndt", "ndt7", date(2019, 1, day), "", Datasets("t", "r", ""))
    history = [StateInfo(State.INIT, when, when)]
    if state is not State.INIT:
        history.append(StateInfo(state, when, when, "detail"))
    record = JobRecord(job, Status(history, heartbeat_time=when, update_count=INT64_MAX), when)
    document = {**to_document(record), **changes}
    store.collection.document(doc_id(job.key())).set(document)
    return job.key()


@pytest.fixture
def extremes(store):
    """A job in year 9999, one in year 1, one whose history map is empty."""
    return {
        "future": put(store, 1, State.PARSING, LATEST),
        "ancient": put(store, 2, State.PARSING, EARLIEST),
        "no history": put(store, 3, State.PARSING, datetime(2026, 11, 27, tzinfo=UTC), history={}),
    }


def test_status_page_and_json_render_any_stored_job(http, extremes, monkeypatch):
    from shared import runtime

    monkeypatch.setattr(runtime, "tracker_timeout", lambda: TIMEOUT)
    page = http.get("/status")
    assert page.status_code == 200, page.get_data(as_text=True)[:2000]
    html = page.get_data(as_text=True)
    assert all(key in html for key in extremes.values())
    assert "no history in the stored document" in html
    body = http.get("/status", query_string={"format": "json"})
    assert body.status_code == 200, body.get_data(as_text=True)[:2000]
    jobs = {j["ID"]: j for j in body.get_json()["Jobs"]}
    assert set(jobs) == set(extremes.values())
    future = jobs[extremes["future"]]
    assert future["ExpiresAt"] == "9999-12-31T23:59:59.999999Z"  # clamped, not an overflow
    assert future["Status"]["UpdateCount"] == INT64_MAX
    assert jobs[extremes["no history"]]["State"] == "parsing"


def test_admin_views_render_any_stored_job(tracker, extremes):
    for key in extremes.values():
        view = views.job_view(tracker.get_record(key))
        assert view["ID"] == key
        assert views.job_json(tracker.get_record(key), TIMEOUT)["ID"] == key


def test_expiry_fails_a_job_whose_last_activity_is_beyond_any_clock_skew(tracker, clock, extremes):
    now = clock()
    expired = tracker.expire_stale(now - TIMEOUT, 100)

    assert sorted(expired) == sorted(extremes.values())
    future = tracker.get_record(extremes["future"])
    assert future.status.state is State.FAILED
    assert future.status.detail == (
        "expired in parsing: last activity 9999-12-31T23:59:59.999999Z is more than 24h0m0s "
        "ahead of the clock (a clock far ahead, or a corrupt value)"
    )
    assert future.last_activity == now  # no longer in the future: it is not expired again
    assert all(e.start <= now and e.detail_time <= now for e in future.status.history)
    assert tracker.get_record(extremes["ancient"]).status.detail.startswith(
        "expired in parsing: no heartbeat or update since 0001-01-01T00:00:00Z"
    )
    assert tracker.expire_stale(now - TIMEOUT, 100) == []


def test_a_job_ahead_of_the_clock_by_less_than_the_skew_is_left_alone(tracker, clock, store):
    key = put(store, 4, State.PARSING, clock() + MAX_CLOCK_SKEW - timedelta(minutes=1))
    assert tracker.expire_stale(clock() - TIMEOUT, 100) == []
    assert tracker.get_record(key).status.state is State.PARSING


def test_metrics_count_any_stored_job(tracker, firestore_client, extremes):
    from shared.config import Config, Source
    from shared.maintenance import reconcile_counts
    from shared.progress import Progress
    from shared.store import CursorStore
    from shared.web.metrics import TrackerCollector

    config = Config(
        start_date=date(2019, 1, 1),
        tracker_timeout=TIMEOUT,
        polling_interval=timedelta(minutes=1),
        sources=(Source("archive-x", "ndt", "ndt7", "", Datasets("t", "r", "")),),
    )
    # The documents were written outside the store, so the job counts learn of them
    # from maintain's reconciliation, as jobs from before the counts do.
    assert reconcile_counts(tracker, [("ndt", "ndt7")])["repaired"]
    text = (
        TrackerCollector(Progress(tracker, CursorStore(firestore_client), config)).scrape().decode()
    )
    assert 'gardener_jobs{datatype="ndt7",experiment="ndt",state="parsing"} 3.0' in text


def test_every_job_the_tracker_can_keep_comes_back_from_its_snapshot(
    tracker, clock, store, gcs_client
):
    """Export, then import into a fresh project: accepted, and the same jobs come back."""
    ds = Datasets("t", "r", "j")
    far_clock = datetime(2300, 6, 1, tzinfo=UTC)  # an instance whose clock is far ahead
    far = Tracker(store, clock=lambda: far_clock)
    ahead = far.add_job(Job("archive-x", "ndt", "ndt7", date(2026, 11, 20), "", ds)).key
    far.set_status(ahead, State.PARSING, "parsing, by a clock in 2300")
    assert tracker.expire_stale(clock() - TIMEOUT, 100) == [ahead]

    oldest = tracker.add_job(Job.from_key("archive-x/ndt/ndt7/19700101")).key
    newest = tracker.add_job(Job("archive-x", "ndt", "ndt7", date(2199, 12, 31), "x.*", ds)).key
    bounded = tracker.add_job(Job("archive-x", "ndt", "pcap", date(2019, 1, 10), "", ds)).key
    for n in range(120):  # 121 entries: the first and the latest 100 kept, 20 dropped
        clock.advance(seconds=1)
        tracker.set_status(
            bounded, State.PARSING if n % 2 == 0 else State.PARSE_ERROR, f"step {n} " + "d" * 300
        )
    running = tracker.add_job(Job("archive-x", "wehe", "scamper1", date(2019, 1, 11), "", ds))
    tracker.set_status(running.key, State.PARSING, "picked up", run=running.run)
    clock.advance(seconds=7)
    tracker.set_status(running.key, State.PARSING, "archive 2 of 9", run=running.run)  # live slot
    tracker.heartbeat(running.key, run=running.run)

    exported = {r.key: r for r in store.stream_all()}
    assert exported[bounded].status.dropped == 20
    assert exported[running.key].status.detail == "archive 2 of 9"
    bucket = gcs_client.create_bucket(f"snap-{uuid.uuid4().hex[:12]}")
    result = write_snapshot(store, bucket, clock())
    fresh = JobStore(firestore.Client(project=f"demo-{uuid.uuid4().hex[:12]}"))
    outcome = import_snapshot(fresh, read_snapshot(bucket.blob(result.object).download_as_bytes()))

    assert outcome.created == len(exported) == 5
    imported = {r.key: r for r in fresh.stream_all()}
    assert set(imported) == {ahead, oldest, newest, bounded, running.key}
    for key, record in exported.items():
        back = imported[key]
        assert back.job == record.job, key
        assert back.status.history == record.status.history, key
        assert back.status.state is record.status.state, key
        assert (back.status.update_count, back.status.heartbeat_time) == (
            record.status.update_count,
            record.status.heartbeat_time,
        ), key
    # The Go format has no field for the count of dropped entries: the kept ones come back.
    assert imported[bounded].status.dropped == 0
    assert len(imported[bounded].status.history) == 101
