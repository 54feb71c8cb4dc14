"""Next-job under contention: callers spread over candidates, and a cheap "no job"."""

from __future__ import annotations

import random
import threading
from datetime import timedelta
from typing import Any

from local.workload import CountedService
from shared.gcs import ArchiveLister
from shared.job_service import JobService
from shared.model import JobRecord, State
from shared.postprocess import STANDARD_PIPELINE
from shared.store import CursorStore
from shared.streams import Stream, candidate, initial_position
from tests.integration.test_next_job import NOW_DAY, drain, make_config, put_files


class FixedOffsets(random.Random):
    """A random source whose ``randrange`` answers the given offsets in turn (0 when spent)."""

    def __init__(self, *offsets: int) -> None:
        super().__init__(0)
        self.offsets = list(offsets)

    def randrange(self, *args: Any, **kwargs: Any) -> int:
        """Return the next offset."""
        return self.offsets.pop(0) if self.offsets else 0


class CountingLister(ArchiveLister):
    """An :class:`ArchiveLister` that also records the prefixes it was asked about."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.prefixes: list[str] = []

    def has_files(self, bucket: str, prefix: str) -> bool:
        """Record the prefix, then answer as the real lister does."""
        self.prefixes.append(prefix)
        return super().has_files(bucket, prefix)


def historical_offers(config: Any, now: Any) -> list[str]:
    """The offers of the historical stream's first cycle, in order."""
    position, offers = initial_position(Stream.HISTORICAL, config, now), []
    while (found := candidate(Stream.HISTORICAL, config, position, now)) is not None:
        if found.position.cycle > 0:
            break
        offers.append(found.offer)
        position = found.position.following()
    return offers


def test_a_caller_that_loses_a_candidate_jumps_ahead_and_nothing_is_skipped(
    tracker, firestore_client, gcs_client, bucket, clock
):
    config = make_config(bucket, ("b", False))
    days = [NOW_DAY - timedelta(days=d) for d in range(2, 8)]
    expected = put_files(gcs_client, bucket, "b", *days)
    offers = historical_offers(config, clock())
    cursors = CursorStore(firestore_client)
    lister = CountingLister(gcs_client)

    def service(*offsets: int) -> JobService:
        return JobService(tracker, cursors, lister, config, clock=clock, rng=FixedOffsets(*offsets))

    # Another caller hands out the first candidate but has not moved the cursor yet.
    first = service().next_job()
    assert first is not None and first.offer == offers[0]
    firestore_client.collection("cursors").document("historical").delete()
    # This caller finds it taken and jumps three candidates ahead.
    jumped = service(3).next_job()
    assert jumped is not None and jumped.offer == offers[4]
    state = cursors.state("historical")
    assert state.position is not None and state.position < _encoded(config, clock, offers[1])
    assert state.handed == {_encoded(config, clock, offers[4])}

    # The next callers close the gap: offers 1..3 are handed out, 4 is passed over
    # without a look at its job or its files, and the mark is gone once the cursor passes it.
    lister.prefixes.clear()
    rest = drain(service())
    handed = [first.key, jumped.key, *rest]
    assert len(handed) == len(set(handed)) and set(handed) == expected
    assert [tracker.get_record(k).offer for k in rest] == [offers[i] for i in (1, 2, 3, 5)]
    assert jumped.job.prefix() not in lister.prefixes
    assert cursors.state("historical").handed == frozenset()


def _encoded(config: Any, clock: Any, offer: str) -> int:
    position = initial_position(Stream.HISTORICAL, config, clock())
    while (found := candidate(Stream.HISTORICAL, config, position, clock())) is not None:
        if found.offer == offer:
            return found.position.encode()
        position = found.position.following()
    raise AssertionError(f"no candidate {offer}")


def test_32_spreading_callers_hand_out_each_job_exactly_once_and_the_cursor_passes_all(
    tracker, firestore_client, gcs_client, bucket, clock
):
    config = make_config(bucket, ("b", False), ("c", False), start=NOW_DAY - timedelta(days=20))
    days = [NOW_DAY - timedelta(days=d) for d in range(2, 21)]
    expected = put_files(gcs_client, bucket, "b", *days) | put_files(
        gcs_client, bucket, "c", *days[::2]
    )
    cursors = CursorStore(firestore_client)
    handed: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(32)

    def caller(seed: int) -> None:
        service = JobService(
            tracker,
            cursors,
            ArchiveLister(gcs_client),
            config,
            clock=clock,
            rng=random.Random(seed),
        )
        barrier.wait()
        mine = drain(service)
        with lock:
            handed.extend(mine)

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(handed) == len(set(handed)), "a job was handed out twice"
    assert set(handed) == expected
    # Nothing skipped: the cursor went past every candidate of the first cycle.
    state = cursors.state("historical")
    last = _encoded(config, clock, historical_offers(config, clock())[-1])
    assert state.position is not None and state.position > last


def test_no_job_while_everything_is_in_flight_costs_a_handful_of_reads_and_no_gcs_list(
    tracker, firestore_client, gcs_client, bucket, clock
):
    config = make_config(bucket, ("b", False), ("c", False), start=NOW_DAY - timedelta(days=12))
    days = [NOW_DAY - timedelta(days=d) for d in range(2, 13)]
    put_files(gcs_client, bucket, "b", *days)
    put_files(gcs_client, bucket, "c", *days[::2])
    lister = ArchiveLister(gcs_client)
    counted = CountedService(
        tracker, CursorStore(firestore_client), lister, config, clock=clock, max_steps=8
    )
    service, cursors = counted.service, counted.cursors
    handed = drain(service)
    for k in handed:
        tracker.set_status(k, State.PARSING)
    # Later calls walk the next cycle (marking each job in flight to be offered again)
    # until it has come round without a hand-out; then the stream rests.
    for _ in range(20):
        assert service.next_job() is None
    assert cursors.state("historical").idle_until is not None

    def cost() -> tuple[int, int, int, int]:
        before = counted.counts()
        assert service.next_job() is None
        c = counted.counts(since=before)
        reads, writes = c["job_reads"] + c["cursor_reads"], c["job_writes"] + c["cursor_writes"]
        return reads, writes, c["gcs_lists"], c["queries"]

    reads, writes, lists, owed_queries = cost()
    # Two cursor reads and the owed-runs hint, which says nothing is owed: no owed-run query.
    assert (reads, writes, lists, owed_queries) == (3, 0, 0, 0)

    # A job that ends is handed out again at once (the owed path is not resting).
    ended: JobRecord = tracker.get_record(handed[0])
    for state in (State.POST_PROCESSING, *STANDARD_PIPELINE, State.COMPLETE):
        tracker.set_status(ended.key, state)
    again = service.next_job()
    assert again is not None and again.key == ended.key
    # New files for a day passed over are found once the polling interval has passed.
    new_day = NOW_DAY - timedelta(days=3)
    (fresh,) = put_files(gcs_client, bucket, "c", new_day)
    assert fresh not in handed
    assert service.next_job() is None  # still resting
    clock.advance(seconds=config.polling_interval.total_seconds() + 1)
    found = []
    for _ in range(20):
        record = service.next_job()
        if record is not None:
            found.append(record.key)
    assert found == [fresh]
