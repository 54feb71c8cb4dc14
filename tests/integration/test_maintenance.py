"""Maintenance (expiry, clean-up) and retries of failed jobs, on the emulators."""

from __future__ import annotations

import threading
import uuid
from datetime import date, timedelta

import pytest

from shared.config import Config, Source
from shared.gcs import ArchiveLister
from shared.job_service import JobService
from shared.maintenance import Maintenance, MaintenancePolicy
from shared.model import Datasets, Job, State
from shared.postprocess import STANDARD_PIPELINE
from shared.store import CursorStore

POLICY = MaintenancePolicy(expiration=timedelta(minutes=5), cleanup_delay=timedelta(hours=3))
CHAIN = [State.PARSING, State.POST_PROCESSING, *STANDARD_PIPELINE, State.COMPLETE]


def job(day: int, datatype: str = "ndt7") -> Job:
    return Job("archive-bucket", "ndt", datatype, date(2026, 11, day))


def complete(tracker, key: str) -> None:
    for state in CHAIN:
        tracker.set_status(key, state)


def test_silent_job_expires_with_a_reason_and_a_heartbeating_one_stays(tracker, clock):
    alive, silent, idle = job(1), job(2), job(3)
    for j in (alive, silent, idle):
        tracker.add_job(j)
        tracker.set_status(j.key(), State.PARSING, "starting")
    last_seen = clock.now
    for _ in range(3):
        clock.advance(minutes=3)
        tracker.heartbeat(alive.key())
    clock.advance(minutes=1)
    tracker.set_status(idle.key(), State.PARSING, "still here")  # an update counts too

    summary = Maintenance(tracker, POLICY).run()
    assert summary["expired"] == [silent.key()]
    status = tracker.get_status(silent.key())
    assert status.state is State.FAILED and status.label == "parsing-failed"
    assert status.error == (
        f"expired in parsing: no heartbeat or update since {last_seen:%Y-%m-%dT%H:%M:%SZ}"
    )
    assert tracker.get_status(alive.key()).state is State.PARSING
    assert tracker.get_status(idle.key()).state is State.PARSING
    assert summary["jobs"] == 3 and summary["failed"] == 1 and summary["snapshot"] is None
    assert Maintenance(tracker, POLICY).run()["expired"] == []  # repeating changes nothing


def test_expiry_covers_every_state_in_flight_but_not_terminal_ones(tracker, clock):
    keys = {}
    for day, states in enumerate(
        [
            [],
            [State.PARSING, State.PARSE_ERROR],
            [State.PARSING, State.POST_PROCESSING, State.LOADING],
        ],
        1,
    ):
        tracker.add_job(job(day))
        for state in states:
            tracker.set_status(job(day).key(), state)
        keys[job(day).key()] = (states or [State.INIT])[-1]
    tracker.add_job(job(9))
    tracker.set_job_error(job(9).key(), "already failed")
    clock.advance(hours=1)
    expired = Maintenance(tracker, POLICY).run()["expired"]
    assert sorted(expired) == sorted(keys)
    for key, was in keys.items():
        assert tracker.get_status(key).error.startswith(f"expired in {was.value}:")


def test_old_complete_jobs_are_removed_failed_ones_stay(tracker, clock):
    old, recent, failed, owed = job(1), job(2), job(3), job(4)
    for j in (old, failed, owed):
        tracker.add_job(j)
    complete(tracker, old.key())
    complete(tracker, owed.key())
    tracker.request_reoffer(owed.key(), "historical/1/20261104/0")
    tracker.set_job_error(failed.key(), "broken")
    clock.advance(hours=3, minutes=1)
    tracker.add_job(recent)
    complete(tracker, recent.key())

    assert Maintenance(tracker, POLICY).run()["removed_complete"] == 1
    assert {r.key for r in tracker.get_state()} == {recent.key(), failed.key(), owed.key()}


def test_overlapping_runs_expire_each_job_once_and_write_two_snapshots(
    tracker, store, clock, gcs_client
):
    from shared.snapshot import write_snapshot

    bucket = gcs_client.create_bucket(f"snapshots-{uuid.uuid4().hex[:12]}")
    stale = [job(d) for d in range(1, 13)]
    for j in stale:
        tracker.add_job(j)
    clock.advance(hours=1)
    results: list[list[str]] = []
    objects: list[str] = []
    barrier = threading.Barrier(2)

    def snapshot(now):
        result = write_snapshot(store, bucket, now)
        objects.append(result.object)
        return {"object": result.object}

    def run() -> None:
        barrier.wait()
        results.append(Maintenance(tracker, POLICY, snapshot).run()["expired"])

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2  # neither run was stopped by the other's transactions
    everything = results[0] + results[1]
    assert len(everything) == len(set(everything))  # no job expired twice
    # A job both runs contended for may be left (the emulator can time both out): the next
    # run expires it.
    later = Maintenance(tracker, POLICY).run()["expired"]
    assert sorted(everything + later) == sorted(j.key() for j in stale)
    assert len(set(objects)) == 2
    names = {b.name for b in gcs_client.list_blobs(bucket)}
    assert set(objects) <= names and "snapshots/latest.json" in names
    for j in stale:
        status = tracker.get_status(j.key())
        assert [e.state for e in status.history] == [State.INIT, State.FAILED]


@pytest.fixture
def retry_service(tracker, firestore_client, gcs_client, clock):
    """A job service whose only source has files on 20 and 21 November."""
    bucket = f"archive-{uuid.uuid4().hex[:12]}"
    gcs_client.create_bucket(bucket)
    for day in (20, 21):
        gcs_client.bucket(bucket).blob(f"ndt/ndt7/2026/11/{day}/a.tgz").upload_from_string(b"x")
    source = Source(bucket, "ndt", "ndt7", "", Datasets("tmp_ndt", "raw_ndt", ""), False, False)
    config = Config(
        start_date=date(2026, 11, 20),
        tracker_timeout=timedelta(hours=6),
        polling_interval=timedelta(minutes=1),
        sources=(source,),
    )
    return JobService(
        tracker, CursorStore(firestore_client), ArchiveLister(gcs_client), config, clock=clock
    )


def test_failed_jobs_are_retried_with_backoff_newest_first_and_bounded(
    retry_service, tracker, clock
):
    first, second = retry_service.next_job(), retry_service.next_job()
    assert [first.job.date.day, second.job.date.day] == [20, 21]
    tracker.set_job_error(first.key, "parser crashed")
    tracker.set_job_error(second.key, "bad archive")
    assert tracker.get_record(first.key).retry_at == clock.now + timedelta(minutes=10)

    clock.advance(minutes=9)
    assert retry_service.next_job() is None  # backoff not over
    clock.advance(minutes=2)
    again = retry_service.next_job()
    assert again.key == second.key  # the newest date first
    assert again.attempts == 2 and again.last_error == "init: bad archive"
    assert retry_service.next_job().key == first.key

    # Attempt 2 fails: twice the backoff. Attempt 3 fails: no more retries.
    tracker.set_job_error(first.key, "parser crashed again")
    assert tracker.get_record(first.key).retry_at == clock.now + timedelta(minutes=20)
    clock.advance(minutes=21)
    third = retry_service.next_job()
    assert third.key == first.key and third.attempts == 3
    tracker.set_job_error(first.key, "for good")
    assert tracker.get_record(first.key).retry_at is None
    assert tracker.retryable(clock.now + timedelta(days=30), 10) == []
    assert tracker.get_status(first.key).error == "init: for good"


def test_expired_job_is_handed_out_again(retry_service, tracker, clock):
    handed = retry_service.next_job()
    tracker.set_status(handed.key, State.PARSING, "starting")
    clock.advance(hours=7)
    assert Maintenance(tracker, MaintenancePolicy(timedelta(hours=6))).run()["expired"] == [
        handed.key
    ]
    clock.advance(minutes=10)
    again = retry_service.next_job()
    assert again.key == handed.key and again.attempts == 2
    assert again.last_error.startswith("expired in parsing:")


def test_maintain_over_http(http, tracker, clock, monkeypatch):
    from shared import runtime

    tracker.add_job(job(1))
    clock.advance(hours=1)
    monkeypatch.setattr(runtime, "maintenance", lambda: Maintenance(tracker, POLICY))
    assert http.get("/maintain").status_code == 405
    response = http.post("/maintain")
    assert response.status_code == 200
    body = response.get_json()
    assert body["expired"] == [job(1).key()] and body["jobs"] == 1 and "duration_seconds" in body
    status = http.get("/status?format=json").get_json()["Jobs"][0]
    assert status["Attempts"] == 1 and status["RetryAt"] is not None


def test_complete_jobs_owed_a_reoffer_never_fill_the_clean_up_batch(
    tracker, store, clock, monkeypatch
):
    """The oldest complete jobs all owe re-offers (say, of a paused source): the others still go."""
    from shared import defaults
    from shared.model import JobRecord

    monkeypatch.setattr(defaults, "MAINTENANCE_BATCH", 3)
    records = []
    for day in range(1, 7):
        at = clock.now + timedelta(minutes=day)
        record = JobRecord.new(job(day), at)
        record.status.new_state(State.COMPLETE, at)
        record.reoffer = "historical/1/x/0" if day <= 4 else ""
        records.append(record)
    store.create_missing(records)
    clock.advance(hours=4)

    assert Maintenance(tracker, POLICY).run()["removed_complete"] == 2
    assert {r.key for r in tracker.get_state()} == {job(day).key() for day in range(1, 5)}
