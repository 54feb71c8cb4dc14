"""The historical stream's pacing (config ``min_cycle_interval``) on the emulators, with a fake clock."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from datetime import timedelta

import pytest

from shared.config import Config
from shared.gcs import ArchiveLister
from shared.job_service import JobService
from shared.model import Job, JobRecord, Pause, ReprocessItem, State
from shared.store import ControlStore, CursorStore, ReprocessQueue
from tests.integration.test_next_job import NOW_DAY, YESTERDAY, make_config, put_files

DAY = NOW_DAY - timedelta(days=3)


@pytest.fixture
def bucket(gcs_client):
    """A fresh bucket on the GCS emulator, with one archive on DAY."""
    name = f"archive-{uuid.uuid4().hex[:12]}"
    gcs_client.create_bucket(name)
    put_files(gcs_client, name, "b", DAY)
    return name


@pytest.fixture
def cursors(firestore_client):
    """The job service's cursors on this test's project (counting their reads and writes)."""
    return CursorStore(firestore_client)


@pytest.fixture
def archives(gcs_client):
    """The archive lister on the GCS emulator (counting its list requests)."""
    return ArchiveLister(gcs_client)


def paced(bucket: str, interval: timedelta) -> Config:
    """One historical source with files on DAY only, from DAY on, paced by ``interval``."""
    config = make_config(bucket, ("b", False), start=DAY)
    return dataclasses.replace(config, min_cycle_interval=interval)


def finish(tracker, key: str) -> None:
    """Carry a handed-out job to complete."""
    tracker.set_status(key, State.POST_PROCESSING)
    tracker.set_status(key, State.COMPLETE)


def test_a_new_cycle_waits_for_the_interval_and_the_wait_is_cheap(
    tracker, cursors, archives, clock, bucket
):
    service = JobService(tracker, cursors, archives, paced(bucket, timedelta(hours=1)), clock=clock)
    started = clock()
    first = service.next_job()
    assert first is not None and first.offer == f"historical/0/{DAY:%Y%m%d}/0"
    finish(tracker, first.key)

    # The cycle has ended; the next may not start before an hour after the first began.
    assert service.next_job() is None
    state = cursors.state("historical")
    assert state.idle_until == started + timedelta(hours=1)
    assert state.cycle_started == {0: started}

    # Meanwhile "no job" reads the two cursors and the owed-runs hint beside them, writes
    # nothing and lists no files.
    clock.advance(minutes=30)
    reads, writes, lists = cursors.stats.reads, cursors.stats.writes, archives.calls
    assert service.next_job() is None
    assert (cursors.stats.reads - reads, cursors.stats.writes - writes) == (3, 0)
    assert archives.calls == lists

    # An hour after the first cycle started, the second starts and hands the day out again.
    clock.advance(minutes=30)
    again = service.next_job()
    assert again is not None and again.key == first.key
    assert again.offer == f"historical/1/{DAY:%Y%m%d}/0"
    state = cursors.state("historical")
    assert state.cycle_started == {0: started, 1: clock()}
    assert state.idle_until is None

    # Records older than the previous cycle are dropped as cycles go by.
    finish(tracker, again.key)
    clock.advance(hours=1)
    third = service.next_job()
    assert third is not None and third.offer == f"historical/2/{DAY:%Y%m%d}/0"
    assert set(cursors.state("historical").cycle_started) == {1, 2}


def test_without_pacing_a_cycle_starts_over_at_once(tracker, cursors, archives, clock, bucket):
    service = JobService(tracker, cursors, archives, paced(bucket, timedelta(0)), clock=clock)
    first = service.next_job()
    assert first is not None
    finish(tracker, first.key)
    again = service.next_job()
    assert again is not None and again.offer == f"historical/1/{DAY:%Y%m%d}/0"
    assert cursors.state("historical").cycle_started == {}


def test_pacing_set_on_a_running_stream_lets_its_next_cycle_start(
    tracker, cursors, archives, clock, bucket
):
    # A cursor written before pacing was configured holds no start time: no wait then.
    first = JobService(tracker, cursors, archives, paced(bucket, timedelta(0)), clock=clock)
    job = first.next_job()
    assert job is not None
    finish(tracker, job.key)
    service = JobService(tracker, cursors, archives, paced(bucket, timedelta(hours=1)), clock=clock)
    again = service.next_job()
    assert again is not None and again.offer == f"historical/1/{DAY:%Y%m%d}/0"
    finish(tracker, again.key)
    assert service.next_job() is None  # cycle 1's start is now known: the next waits
    assert cursors.state("historical").idle_until == clock() + timedelta(hours=1)


def test_a_walk_that_starts_a_cycle_and_reaches_its_end_waits_there(
    tracker, cursors, archives, clock, bucket
):
    service = JobService(tracker, cursors, archives, paced(bucket, timedelta(hours=1)), clock=clock)
    first = service.next_job()
    assert first is not None and first.offer == f"historical/0/{DAY:%Y%m%d}/0"
    tracker.set_status(first.key, State.PARSING)  # still parsing when the next cycle starts
    assert service.next_job() is None

    # One walk starts cycle 1, finds its only job in flight (marked to be offered
    # again) and reaches the end of cycle 1: cycle 2 waits an hour from now.
    clock.advance(hours=1)
    cycle_1 = clock()
    assert service.next_job() is None
    state = cursors.state("historical")
    assert state.cycle_started.get(1) == cycle_1
    assert 2 not in state.cycle_started
    assert state.idle_until == cycle_1 + timedelta(hours=1)

    # The job ends; its owed cycle-1 run goes out, and no cycle-2 run before the hour.
    finish(tracker, first.key)
    owed = service.next_job()
    assert owed is not None and owed.offer == f"historical/1/{DAY:%Y%m%d}/0"
    finish(tracker, owed.key)
    clock.advance(minutes=2)
    assert service.next_job() is None
    clock.advance(minutes=58)
    again = service.next_job()
    assert again is not None and again.offer == f"historical/2/{DAY:%Y%m%d}/0"


def test_the_first_walk_through_a_whole_cycle_starts_no_second_one(
    tracker, cursors, archives, clock, gcs_client
):
    empty = f"archive-{uuid.uuid4().hex[:12]}"
    gcs_client.create_bucket(empty)  # no files: every candidate is passed over
    service = JobService(tracker, cursors, archives, paced(empty, timedelta(hours=1)), clock=clock)
    began = clock()
    assert service.next_job() is None
    state = cursors.state("historical")
    assert state.cycle_started == {0: began}
    assert state.idle_until == began + timedelta(hours=1)


@pytest.mark.parametrize("interval", [timedelta(0), timedelta(minutes=10)])
def test_an_interval_shortened_mid_rest_takes_effect(
    tracker, cursors, archives, clock, bucket, interval
):
    long = JobService(tracker, cursors, archives, paced(bucket, timedelta(days=30)), clock=clock)
    first = long.next_job()
    assert first is not None
    finish(tracker, first.key)
    assert long.next_job() is None  # resting thirty days

    short = JobService(tracker, cursors, archives, paced(bucket, interval), clock=clock)
    clock.advance(minutes=10)
    again = short.next_job()
    assert again is not None and again.offer == f"historical/1/{DAY:%Y%m%d}/0"


def test_an_interval_lengthened_mid_rest_takes_effect(tracker, cursors, archives, clock, bucket):
    hour = JobService(tracker, cursors, archives, paced(bucket, timedelta(hours=1)), clock=clock)
    started = clock()
    first = hour.next_job()
    assert first is not None
    finish(tracker, first.key)
    assert hour.next_job() is None

    day = JobService(tracker, cursors, archives, paced(bucket, timedelta(days=1)), clock=clock)
    clock.advance(hours=2)
    assert day.next_job() is None
    assert cursors.state("historical").idle_until == started + timedelta(days=1)
    clock.advance(hours=22)
    again = day.next_job()
    assert again is not None and again.offer == f"historical/1/{DAY:%Y%m%d}/0"


def test_daily_jobs_and_reprocessing_do_not_wait_on_the_rest_nor_a_pause_on_it(
    tracker, cursors, archives, clock, bucket, gcs_client, firestore_client
):
    # Yesterday's daily job is due at 13:00, an hour into the historical stream's rest.
    config = dataclasses.replace(
        make_config(bucket, ("a", True), ("b", False), start=DAY),
        min_cycle_interval=timedelta(hours=3),
        daily_delay=timedelta(hours=13),
    )
    put_files(gcs_client, bucket, "a", YESTERDAY)
    queue, controls = ReprocessQueue(firestore_client), ControlStore(firestore_client)
    service = JobService(
        tracker, cursors, archives, config, clock=clock, queue=queue, controls=controls
    )
    first = service.next_job()
    assert first is not None and first.offer == f"historical/0/{DAY:%Y%m%d}/1"
    finish(tracker, first.key)
    assert service.next_job() is None  # the historical stream rests for three hours

    clock.advance(hours=1)
    daily = service.next_job()
    assert daily is not None and daily.offer == f"daily/0/{YESTERDAY:%Y%m%d}/0"
    # So does an operator's reprocessing of the day the cycle just handed out.
    queue.add([ReprocessItem.new(Job(bucket, "ndt", "b", DAY), "alice", clock())])
    again = service.next_job()
    assert again is not None and again.key == first.key and again.offer.startswith("reprocess/")
    finish(tracker, again.key)
    assert service.next_job() is None

    # A pause outlasting the rest holds the next cycle back; the resume lets it start.
    controls.pause(Pause("historical", "alice", clock(), "quota"))
    clock.advance(hours=3)
    assert service.next_job() is None
    controls.resume("historical")
    resumed = service.next_job()
    assert resumed is not None and resumed.offer == f"historical/1/{DAY:%Y%m%d}/1"


def test_concurrent_callers_at_the_cycle_end_start_one_cycle_and_hand_each_job_once(
    tracker, cursors, archives, clock, gcs_client
):
    name = f"archive-{uuid.uuid4().hex[:12]}"
    gcs_client.create_bucket(name)
    days = [NOW_DAY - timedelta(days=d) for d in range(2, 8)]  # yesterday's: the daily stream's
    config = dataclasses.replace(
        make_config(name, ("b", False), ("c", False), start=days[-1]),
        min_cycle_interval=timedelta(hours=1),
    )
    expected = put_files(gcs_client, name, "b", *days) | put_files(gcs_client, name, "c", *days)
    service = JobService(tracker, cursors, archives, config, clock=clock)

    def drain_together(callers: int = 8) -> list[JobRecord]:
        handed: list[JobRecord] = []
        lock = threading.Lock()
        barrier = threading.Barrier(callers)

        def caller() -> None:
            barrier.wait()
            while (record := service.next_job()) is not None:
                with lock:
                    handed.append(record)

        threads = [threading.Thread(target=caller) for _ in range(callers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return handed

    for cycle in (0, 1):
        handed = drain_together()
        keys = [r.key for r in handed]
        assert len(keys) == len(set(keys)), "a job was handed out twice"
        assert set(keys) == expected
        assert {r.offer.split("/")[1] for r in handed} == {str(cycle)}
        assert service.next_job() is None
        state = cursors.state("historical")
        assert set(state.cycle_started) == set(range(cycle + 1))
        assert state.idle_until == state.cycle_started[cycle] + timedelta(hours=1)
        for record in handed:
            finish(tracker, record.key)
        clock.advance(hours=1)
