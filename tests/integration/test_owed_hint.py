"""The owed-runs hint: ``next`` skips its owed-run queries only while nothing can be owed.

Each test first lets ``next`` clear the hint (its queries found nothing), then
makes a run owed by one of the writes that can, and checks that the next call
hands it out: a write that did not note the hint would leave it hidden.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from local.workload import count_calls
from shared import defaults
from shared.admin import Admin
from shared.gcs import ArchiveLister
from shared.job_service import JobService
from shared.model import Job, Pause, ReprocessItem, State
from shared.postprocess import STANDARD_PIPELINE
from shared.store import OWED_DOCUMENT, ControlStore, CursorStore, ReprocessQueue, doc_id
from shared.tracker import RetryPolicy
from tests.integration.test_next_job import (
    LONG_AGO,
    NOW_DAY,
    drain,
    ended,
    key,
    make_config,
    put_files,
)

OWED_QUERIES = ("pending_reoffers", "unretried_reoffers", "retryable")

#: The post-processing chain from parsing to complete, as an operator may step it.
TO_COMPLETE = (State.POST_PROCESSING, *STANDARD_PIPELINE, State.COMPLETE)


@pytest.fixture
def service(tracker, firestore_client, gcs_client, clock, bucket) -> JobService:
    """A job service over one source with files on three days, with pauses."""
    config = make_config(bucket, ("a", False), start=NOW_DAY - timedelta(days=4))
    put_files(gcs_client, bucket, "a", *(NOW_DAY - timedelta(days=d) for d in (2, 3, 4)))
    return JobService(
        tracker,
        CursorStore(firestore_client),
        ArchiveLister(gcs_client),
        config,
        clock=clock,
        controls=ControlStore(firestore_client),
        queue=ReprocessQueue(firestore_client),
    )


@pytest.fixture
def queries(tracker, service) -> Callable[[], int]:
    """The number of owed-run queries and reads of the reprocessing queue and of the pauses
    made so far."""
    owed, heads = count_calls(tracker, OWED_QUERIES), count_calls(service.queue, ("head",))
    pauses = count_calls(service.controls, ("all",))
    return lambda: owed() + heads() + pauses()


def settled(service: JobService, queries: Callable[[], int]) -> list[str]:
    """Drain ``service``; check that a further call makes no owed-run query and reads neither
    the reprocessing queue nor the pauses; return the keys."""
    handed = drain(service)
    for _ in range(3):  # the hint's three clears may take a call each
        assert service.next_job() is None
    before = queries()
    assert service.next_job() is None
    assert queries() == before, "the hint should say nothing is owed or queued"
    return handed


def hint_update_time(firestore_client) -> Any:
    return firestore_client.collection("cursors").document(OWED_DOCUMENT).get().update_time


def test_the_hint_is_written_only_when_a_run_is_owed_and_when_cleared(
    service, tracker, firestore_client, queries
):
    handed = settled(service, queries)
    assert len(handed) == 3
    cleared = hint_update_time(firestore_client)
    assert cleared is not None
    for k in handed:  # updates and state changes that owe nothing leave it alone
        tracker.set_status(k, State.PARSING)
        tracker.set_status(k, State.PARSING, "archive 1 of 3")
        assert tracker.heartbeat(k) is not None
    for state in TO_COMPLETE[:3]:
        tracker.set_status(handed[0], state)
    assert service.next_job() is None  # walks the next cycle, marking each job in flight
    assert tracker.get_record(handed[0]).reoffer
    assert hint_update_time(firestore_client) == cleared


def test_a_failure_is_retried_when_its_backoff_is_over_without_querying_before(
    service, tracker, clock, queries
):
    first, *_ = settled(service, queries)
    service.owed_recheck = timedelta(days=1)  # the hint alone decides
    tracker.set_job_error(first, "parser died")
    before = queries()
    clock.advance(minutes=1)
    assert service.next_job() is None
    assert queries() == before, "no retry is due yet"
    clock.advance(seconds=defaults.RETRY_BACKOFF.total_seconds())
    again = service.next_job()  # as retry/2, or as the re-offer the next cycle marked
    assert again is not None and again.key == first and again.attempts == 2


@pytest.mark.parametrize("ending", ["complete", "failed past its retries"])
def test_a_reoffer_marked_in_flight_is_handed_out_when_the_job_ends(
    service, tracker, clock, queries, ending
):
    handed = settled(service, queries)
    for k in handed:
        tracker.set_status(k, State.PARSING)
    clock.advance(minutes=2)  # the stream's rest is over: the next cycle marks every job
    assert settled(service, queries) == []
    first = handed[0]
    assert tracker.get_record(first).reoffer.startswith("historical/1/")
    if ending == "complete":
        for state in TO_COMPLETE:
            tracker.set_status(first, state)
    else:
        tracker.retry = RetryPolicy(max_attempts=1)
        tracker.set_job_error(first, "parser died")
        assert tracker.get_record(first).retry_at is None
    again = service.next_job()
    assert again is not None and again.key == first and again.offer.startswith("historical/1/")


@pytest.mark.parametrize("read_in_flight", [True, False], ids=["seen", "blind"])
def test_a_reoffer_marked_just_after_the_job_ended_is_not_hidden(
    service, tracker, queries, read_in_flight
):
    """The walk saw the job in flight; it completed before the mark landed."""
    first, *_ = settled(service, queries)
    tracker.set_status(first, State.PARSING)
    seen = tracker.find_record(first).update_time if read_in_flight else None
    for state in TO_COMPLETE:
        tracker.set_status(first, state)
    tracker.request_reoffer(first, "historical/1/x/0", seen)
    again = service.next_job()
    assert again is not None and again.key == first and again.offer == "historical/1/x/0"


def test_a_reoffer_marked_on_a_job_unchanged_since_it_was_seen_costs_no_read(
    service, tracker, store, queries
):
    first, *_ = settled(service, queries)
    seen = tracker.find_record(first).update_time
    reads, writes = store.stats.reads, store.stats.writes
    tracker.request_reoffer(first, "historical/1/x/0", seen)
    assert (store.stats.reads - reads, store.stats.writes - writes) == (0, 1)
    assert tracker.find_record(first).reoffer == "historical/1/x/0"


def test_an_operators_retry_of_a_failed_job_is_handed_out(
    service, tracker, firestore_client, queries
):
    first, *_ = settled(service, queries)
    admin = Admin(
        tracker, ReprocessQueue(firestore_client), ControlStore(firestore_client), service.config
    )
    admin.fail(first, "bad archive", "alice@example.com")  # failed, no automatic retry
    assert service.next_job() is None
    admin.retry(first, "alice@example.com")
    again = service.next_job()
    assert again is not None and again.key == first and again.offer == "retry/2"


def test_imported_owed_runs_are_handed_out(service, store, bucket, gcs_client, clock, queries):
    settled(service, queries)
    put_files(gcs_client, bucket, "a", LONG_AGO)
    store.create_missing([ended(bucket, "a", LONG_AGO, State.COMPLETE, clock.now, reoffer="r/1")])
    again = service.next_job()
    assert again is not None and again.key == key(bucket, "a", LONG_AGO) and again.offer == "r/1"


def test_a_run_made_owed_while_the_hint_is_cleared_is_not_hidden(
    service, tracker, store, bucket, gcs_client, clock, queries, monkeypatch
):
    """The race: a run becomes owed after the queries found nothing, before the clear."""
    settled(service, queries)
    put_files(gcs_client, bucket, "a", LONG_AGO)  # a day no stream reaches
    joining = ended(bucket, "a", LONG_AGO, State.JOINING, clock.now, reoffer="r/1")
    store.create_missing([joining])
    clock.advance(seconds=defaults.OWED_RECHECK.total_seconds())  # the queries run again
    earliest_retry = store.earliest_retry

    def completing_meanwhile() -> Any:  # called by the clear, after the queries
        tracker.set_status(joining.key, State.COMPLETE)
        return earliest_retry()

    monkeypatch.setattr(store, "earliest_retry", completing_meanwhile)
    assert service.next_job() is None  # the queries ran before it completed
    monkeypatch.setattr(store, "earliest_retry", earliest_retry)
    assert tracker.get_record(joining.key).status.state is State.COMPLETE
    again = service.next_job()
    assert again is not None and again.key == joining.key and again.offer == "r/1"


def test_a_paused_sources_owed_run_is_handed_out_after_the_resume(
    service, tracker, firestore_client, bucket, gcs_client, store, clock, queries
):
    settled(service, queries)
    put_files(gcs_client, bucket, "a", LONG_AGO)
    store.create_missing(
        [ended(bucket, "a", LONG_AGO, State.FAILED, clock.now, retry_at=clock.now)]
    )
    controls = ControlStore(firestore_client)
    controls.pause(Pause("ndt/a", "alice", clock.now, "quota"))
    assert service.next_job() is None
    assert service.next_job() is None  # still asked for: the hint was not cleared
    controls.resume("ndt/a")
    again = service.next_job()
    assert again is not None and again.key == key(bucket, "a", LONG_AGO)


def test_a_run_owed_behind_the_hints_back_is_found_after_the_recheck_interval(
    service, store, firestore_client, bucket, gcs_client, clock, queries
):
    """A write that does not know the hint (an older version during a deployment)."""
    settled(service, queries)
    put_files(gcs_client, bucket, "a", LONG_AGO)
    done = ended(bucket, "a", LONG_AGO, State.COMPLETE, clock.now)
    store.create_missing([done])
    firestore_client.collection("jobs").document(doc_id(done.key)).update({"reoffer": "r/9"})
    assert service.next_job() is None
    clock.advance(seconds=defaults.OWED_RECHECK.total_seconds())
    again = service.next_job()
    assert again is not None and again.key == done.key and again.offer == "r/9"


def test_without_a_hint_document_every_owed_query_runs(service, tracker, firestore_client, queries):
    settled(service, queries)
    firestore_client.collection("cursors").document(OWED_DOCUMENT).delete()
    before = queries()
    assert service.next_job() is None
    assert queries() - before == len(OWED_QUERIES) + 2  # and the queue and the pauses
    assert hint_update_time(firestore_client) is not None  # and it is written again


def test_reprocessing_queued_after_the_queue_was_found_empty_is_handed_out(
    service, bucket, gcs_client, clock, queries
):
    settled(service, queries)
    put_files(gcs_client, bucket, "a", LONG_AGO)
    item = ReprocessItem.new(Job(bucket, "ndt", "a", LONG_AGO), "alice", clock.now)
    service.queue.add([item])
    again = service.next_job()
    assert again is not None and again.offer == f"reprocess/{item.token}"


def test_reprocessing_queued_while_the_queue_is_found_empty_is_not_hidden(
    service, bucket, gcs_client, clock, queries, monkeypatch
):
    """The race: an item is queued after the head was read empty, before the clear."""
    settled(service, queries)
    put_files(gcs_client, bucket, "a", LONG_AGO)
    clock.advance(seconds=defaults.OWED_RECHECK.total_seconds())  # the queue is read again
    queue, head = service.queue, service.queue.head
    item = ReprocessItem.new(Job(bucket, "ndt", "a", LONG_AGO), "alice", clock.now)

    def queued_meanwhile(*args: Any, **kwargs: Any) -> Any:
        found = head(*args, **kwargs)
        queue.add([item])
        return found

    monkeypatch.setattr(queue, "head", queued_meanwhile)
    assert service.next_job() is None  # every stream job is in flight
    monkeypatch.setattr(queue, "head", head)
    again = service.next_job()
    assert again is not None and again.offer == f"reprocess/{item.token}"


def test_a_pause_made_while_none_is_found_is_not_missed(
    service, store, bucket, gcs_client, clock, queries, monkeypatch
):
    """The race: a pause is made after the pauses were read, before the clear."""
    settled(service, queries)
    put_files(gcs_client, bucket, "a", LONG_AGO)
    clock.advance(seconds=defaults.OWED_RECHECK.total_seconds())  # the pauses are read again
    controls, read = service.controls, service.controls.all

    def paused_meanwhile() -> Any:
        found = read()
        controls.pause(Pause("ndt/a", "alice", clock.now, "quota"))
        return found

    monkeypatch.setattr(controls, "all", paused_meanwhile)
    assert service.next_job() is None  # every stream job is in flight
    monkeypatch.setattr(controls, "all", read)
    store.create_missing(
        [ended(bucket, "a", LONG_AGO, State.FAILED, clock.now, retry_at=clock.now)]
    )
    assert service.next_job() is None  # the pause is honoured
    controls.resume("ndt/a")
    again = service.next_job()
    assert again is not None and again.key == key(bucket, "a", LONG_AGO)


def test_failures_among_concurrent_callers_are_each_retried_exactly_once(
    service, tracker, store, bucket, gcs_client, clock, queries
):
    """Runs made owed while 8 callers ask for work and clear the hint: none is lost,
    none handed out twice."""
    settled(service, queries)
    service.owed_recheck = timedelta(days=1)  # the hint alone decides
    days = [LONG_AGO - timedelta(days=d) for d in range(24)]
    put_files(gcs_client, bucket, "a", *days)
    parsing = [ended(bucket, "a", day, State.PARSING, clock.now) for day in days]
    store.create_missing(parsing)
    handed: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(9)

    def caller() -> None:
        barrier.wait()
        for _ in range(6):
            record = service.next_job()
            if record is not None:
                with lock:
                    handed.append(record.key)

    def failing() -> None:
        barrier.wait()
        for record in parsing:
            tracker.set_job_error(record.key, "parser died")

    threads = [threading.Thread(target=caller) for _ in range(8)]
    threads.append(threading.Thread(target=failing))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert handed == []  # each is in its retry backoff
    clock.advance(seconds=defaults.RETRY_BACKOFF.total_seconds() + 1)
    handed += drain(service)
    assert sorted(handed) == sorted(r.key for r in parsing)
