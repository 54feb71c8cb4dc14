"""Tracker operations against the Firestore emulator."""

from __future__ import annotations

import threading
from datetime import date, timedelta

import pytest

from shared.errors import IllegalTransition, JobAlreadyExists, JobNotFound
from shared.model import Datasets, Job, JobFilter, State
from shared.postprocess import STANDARD_PIPELINE
from shared.store import doc_id

JOB = Job(
    "archive-bucket",
    "ndt",
    "ndt7",
    date(2019, 1, 2),
    filter=r".*\.tgz",
    datasets=Datasets("tmp_ndt", "raw_ndt", "ndt"),
)
KEY = JOB.key()
CHAIN = [State.PARSING, State.POST_PROCESSING, *STANDARD_PIPELINE, State.COMPLETE]


def raw(store, key=KEY):
    """The job's document exactly as stored, or None."""
    snap = store.collection.document(doc_id(key)).get()
    return snap.to_dict() if snap.exists else None


def test_add_job_creates_a_fresh_status_under_an_encoded_id(tracker, store, clock):
    tracker.add_job(JOB)
    doc = store.collection.document("archive-bucket%2Fndt%2Fndt7%2F20190102").get()
    assert doc.exists
    record = tracker.get_record(KEY)
    assert record.job == JOB
    assert [e.state for e in record.status.history] == [State.INIT]
    assert record.status.start_time == clock.now
    assert record.status.update_count == 0
    assert record.last_activity == clock.now


def test_add_job_in_flight_is_already_exists(tracker):
    tracker.add_job(JOB)
    tracker.set_status(KEY, State.PARSING)
    with pytest.raises(JobAlreadyExists, match="parsing"):
        tracker.add_job(JOB)


@pytest.mark.parametrize("finish", ["complete", "failed"])
def test_add_job_restarts_a_finished_job(tracker, clock, finish):
    tracker.add_job(JOB)
    if finish == "failed":
        tracker.set_job_error(KEY, "boom")
    else:
        for state in CHAIN:
            tracker.set_status(KEY, state)
    clock.advance(hours=1)
    tracker.add_job(JOB)
    status = tracker.get_status(KEY)
    assert [e.state for e in status.history] == [State.INIT]
    assert status.start_time == clock.now
    assert status.update_count == 0


@pytest.mark.parametrize("before", ["absent", "failed"])
def test_concurrent_adds_have_exactly_one_winner(tracker, before):
    if before == "failed":
        tracker.add_job(JOB)
        tracker.set_job_error(KEY, "boom")
    results: list[str] = []
    barrier = threading.Barrier(8)

    def add() -> None:
        barrier.wait()
        try:
            tracker.add_job(JOB)
            results.append("won")
        except JobAlreadyExists:
            results.append("lost")

    threads = [threading.Thread(target=add) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("won") == 1
    assert tracker.get_status(KEY).state is State.INIT


def test_set_status_applies_detail_to_the_entry_it_leaves(tracker, clock):
    tracker.add_job(JOB)
    clock.advance(seconds=10)
    assert tracker.set_status(KEY, State.PARSING, "starting tasks") is State.INIT
    status = tracker.get_status(KEY)
    assert [(e.state, e.detail) for e in status.history] == [
        (State.INIT, "starting tasks"),
        (State.PARSING, ""),
    ]
    assert status.history[0].detail_time == clock.now
    assert status.history[1].start == clock.now
    assert status.detail == "starting tasks"
    assert status.update_count == 1


def test_same_state_update_is_a_detail_update(tracker, clock):
    tracker.add_job(JOB)
    tracker.set_status(KEY, State.PARSING, "starting")
    clock.advance(seconds=30)
    assert (
        tracker.set_status(KEY, State.PARSING, "gs://b/ndt/ndt7/2019/01/02/a.tgz") is State.PARSING
    )
    status = tracker.get_status(KEY)
    assert len(status.history) == 2
    assert status.detail == "gs://b/ndt/ndt7/2019/01/02/a.tgz"
    assert status.detail_time == clock.now
    assert status.update_count == 2
    assert tracker.get_record(KEY).last_activity == clock.now


def test_dash_detail_touches_time_and_keeps_text(tracker, clock):
    tracker.add_job(JOB)
    tracker.set_status(KEY, State.PARSING)
    tracker.set_detail(KEY, "file-1")
    clock.advance(seconds=5)
    tracker.set_detail(KEY, "-")
    status = tracker.get_status(KEY)
    assert status.detail == "file-1"
    assert status.detail_time == clock.now
    assert status.update_count == 3


def test_illegal_transition_raises_and_writes_nothing(tracker, store):
    tracker.add_job(JOB)
    tracker.set_status(KEY, State.PARSING, "x")
    before = raw(store)
    with pytest.raises(IllegalTransition, match="from parsing to complete"):
        tracker.set_status(KEY, State.COMPLETE, "nope")
    assert raw(store) == before


@pytest.mark.parametrize("terminal", [State.COMPLETE, State.FAILED])
def test_terminal_jobs_accept_no_update_detail_or_heartbeat(tracker, store, clock, terminal):
    tracker.add_job(JOB)
    if terminal is State.FAILED:
        tracker.set_job_error(KEY, "boom")
    else:
        for state in CHAIN:
            tracker.set_status(KEY, state)
    before = raw(store)
    clock.advance(minutes=1)
    for call in (
        lambda: tracker.set_status(KEY, terminal, "again"),
        lambda: tracker.set_status(KEY, State.PARSING),
        lambda: tracker.set_detail(KEY, "more"),
        lambda: tracker.heartbeat(KEY),
    ):
        with pytest.raises(IllegalTransition, match=r"terminal|cannot go"):
            call()
    assert raw(store) == before


def test_unknown_job_is_not_found_everywhere(tracker, store):
    missing = "archive-bucket/ndt/ndt7/20200101"
    for call in (
        lambda: tracker.set_status(missing, State.PARSING),
        lambda: tracker.set_detail(missing, "x"),
        lambda: tracker.heartbeat(missing),
        lambda: tracker.set_job_error(missing, "x"),
        lambda: tracker.get_status(missing),
    ):
        with pytest.raises(JobNotFound, match="not found"):
            call()
    assert raw(store, missing) is None


def test_heartbeat_refreshes_last_activity_and_coalesces(tracker, store, clock):
    tracker.add_job(JOB)
    clock.advance(minutes=10)
    assert tracker.heartbeat(KEY) is True
    record = tracker.get_record(KEY)
    assert record.status.heartbeat_time == clock.now
    assert record.last_activity == clock.now
    assert record.status.update_count == 0

    before = raw(store)
    clock.advance(seconds=2)
    assert tracker.heartbeat(KEY) is False  # within the coalescing window: no write
    assert raw(store) == before
    clock.advance(seconds=4)
    assert tracker.heartbeat(KEY) is True
    assert tracker.get_record(KEY).last_activity == clock.now


def test_a_heartbeat_just_after_an_update_is_coalesced(tracker, store, clock):
    """An update proves the parser alive as well as a heartbeat does: no second write."""
    tracker.add_job(JOB)
    clock.advance(minutes=10)
    tracker.set_status(KEY, State.PARSING, "archive-0.tgz")
    before = raw(store)
    clock.advance(seconds=2)
    assert tracker.heartbeat(KEY) is False
    assert raw(store) == before
    clock.advance(seconds=4)
    assert tracker.heartbeat(KEY) is True


def test_set_job_error_fails_with_old_state_and_no_count(tracker):
    tracker.add_job(JOB)
    tracker.set_status(KEY, State.PARSING)
    tracker.set_status(KEY, State.POST_PROCESSING)
    tracker.set_status(KEY, State.LOADING)
    assert tracker.set_job_error(KEY, "bq said no") is State.LOADING
    status = tracker.get_status(KEY)
    assert status.state is State.FAILED
    assert status.error == "loading: bq said no"
    assert status.label == "loading-failed"
    assert status.update_count == 3


def test_parse_error_then_recovery(tracker):
    tracker.add_job(JOB)
    tracker.set_status(KEY, State.PARSING)
    tracker.set_status(KEY, State.PARSE_ERROR, "bad archive")
    assert tracker.get_status(KEY).detail == "bad archive"
    tracker.set_status(KEY, State.POST_PROCESSING)
    assert tracker.get_status(KEY).state is State.POST_PROCESSING


def test_whole_chain_to_complete(tracker, clock):
    tracker.add_job(JOB)
    for state in CHAIN:
        clock.advance(minutes=1)
        tracker.set_status(KEY, state, f"leaving for {state.value}")
    status = tracker.get_status(KEY)
    assert [e.state for e in status.history] == [State.INIT, *CHAIN]
    assert status.update_count == len(CHAIN)
    assert status.elapsed == timedelta(minutes=len(CHAIN))


def test_get_state_filters_and_orders_oldest_first(tracker, clock):
    jobs = [
        Job("b1", "ndt", dt, date(2019, 1, d))
        for d, dt in [(3, "ndt7"), (1, "ndt5"), (2, "ndt7"), (4, "annotation2")]
    ]
    for job in jobs:
        clock.advance(seconds=1)
        tracker.add_job(job)
    tracker.set_status(jobs[2].key(), State.PARSING)
    tracker.set_job_error(jobs[3].key(), "x")

    assert [r.key for r in tracker.get_state()] == [j.key() for j in jobs]
    assert [r.key for r in tracker.get_state(JobFilter(datatype="ndt7"))] == [
        jobs[0].key(),
        jobs[2].key(),
    ]
    assert [r.key for r in tracker.get_state(JobFilter(state=State.PARSING))] == [jobs[2].key()]
    assert [r.key for r in tracker.get_state(JobFilter(experiment="ndt", limit=2))] == [
        jobs[0].key(),
        jobs[1].key(),
    ]
    assert list(tracker.get_state(JobFilter(experiment="wehe"))) == []
    assert tracker.num_jobs() == 4
    assert tracker.num_failed() == 1
    assert tracker.count(JobFilter(datatype="ndt7", state=State.INIT)) == 1


def test_stream_all_and_create_missing(store, clock):
    from shared.model import JobRecord
    from shared.store import MAX_BATCH

    records = [
        JobRecord.new(Job("b1", "ndt", "ndt7", date(2019, 1, 1) + timedelta(days=i)), clock())
        for i in range(MAX_BATCH + 20)
    ]
    assert sorted(store.create_missing(records[:10])) == sorted(r.key for r in records[:10])
    created = store.create_missing(records)  # spans two batches; the first ten exist already
    assert sorted(created) == sorted(r.key for r in records[10:])
    assert store.create_missing(records) == []
    assert sorted(r.key for r in store.stream_all()) == sorted(r.key for r in records)
