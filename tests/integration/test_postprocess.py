"""Post-processing ticks on the Firestore emulator: leases, idempotent steps, outcomes.

BigQuery is replaced here, at the client boundary, by a small in-memory
warehouse that keeps jobs by id as BigQuery does (a second start under the
same id starts nothing); the real BigQuery calls are tested against the
BigQuery emulator in ``test_warehouse.py``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

import pytest

from shared.gotime import format_time
from shared.model import Datasets, Job, State
from shared.postprocess import STANDARD_PIPELINE, PostProcessor, PostProcessPolicy
from shared.tracker import Tracker
from shared.warehouse import StepOutcome, StepResult, check_dataset, step_of
from shared.warehouse import job_id as step_job_id

S = State


Outcome = StepOutcome


@dataclass
class MemoryWarehouse:
    """BigQuery jobs by id; each finishes with the outcome scripted for its step."""

    script: dict[State, list[Outcome]] = field(default_factory=dict)
    jobs: dict[str, State] = field(default_factory=dict)
    starts: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: Called with the job id before each look at a job (to act meanwhile).
    on_result: Callable[[str], object] | None = None

    def start(self, step: State, job: Job, job_id: str) -> None:
        check_dataset(job.datasets.tmp)  # as the real one, before calling BigQuery
        with self.lock:
            self.starts.append(job_id)
            self.jobs.setdefault(job_id, step)

    def result(self, job_id: str) -> StepResult:
        if self.on_result is not None:
            self.on_result(job_id)
        if job_id not in self.jobs:
            return StepResult(Outcome.MISSING, f"job {job_id} not found")
        step = self.jobs[job_id]
        outcomes = self.script.get(step) or [Outcome.DONE]
        outcome = outcomes.pop(0) if len(outcomes) > 1 else outcomes[0]
        return StepResult(outcome, f"{step.value} {outcome.name.lower()}: 10 rows")

    def delete_partition(self, job: Job) -> StepResult:
        self.deleted.append(job.table_partition())
        return StepResult(StepOutcome.DONE, f"deleted {job.table_partition()}")


POLICY = PostProcessPolicy(
    batch=50,
    lease=timedelta(minutes=5),
    max_attempts=3,
    backoff=timedelta(minutes=1),
    poll=timedelta(seconds=0),
)
JOIN = Datasets("tmp_ndt", "raw_ndt", "ndt")


def ready(tracker, datatype: str = "ndt7", datasets: Datasets = JOIN, day: int = 2) -> str:
    job = Job("archive-bucket", "ndt", datatype, date(2026, 11, day), datasets=datasets)
    tracker.add_job(job)
    tracker.set_status(job.key(), S.PARSING)
    tracker.set_status(job.key(), S.POST_PROCESSING)
    return job.key()


def step_state(job_id: str) -> State:
    """The state of the step a warehouse job id names (every id a tick starts names one)."""
    step = step_of(job_id)
    assert step is not None, job_id
    return step.state


def ticks(processor: PostProcessor, clock, n: int = 20) -> None:
    for _ in range(n):
        processor.tick()
        clock.advance(seconds=1)


def test_a_job_goes_through_every_step_to_complete(tracker, clock):
    key = ready(tracker)
    warehouse = MemoryWarehouse()
    ticks(PostProcessor(tracker, warehouse, POLICY, clock=clock), clock)
    status = tracker.get_status(key)
    assert [e.state for e in status.history][2:] == [
        S.POST_PROCESSING,
        *STANDARD_PIPELINE,
        S.COMPLETE,
    ]
    # every step but the delete starts a BigQuery job
    assert [step_state(j) for j in warehouse.starts] == [
        s for s in STANDARD_PIPELINE if s is not S.DELETING
    ]
    assert warehouse.deleted == ["ndt7$20261102"]
    record = tracker.get_record(key)
    assert record.lease_owner == "" and record.step_job == ""
    assert status.history[3].detail == "loading done: 10 rows"


def test_no_join_dataset_skips_the_join(tracker, clock):
    key = ready(tracker, "annotation2", Datasets("tmp_ndt", "raw_ndt", ""))
    warehouse = MemoryWarehouse()
    ticks(PostProcessor(tracker, warehouse, POLICY, clock=clock), clock)
    status = tracker.get_status(key)
    assert status.state is S.COMPLETE
    assert status.history[-2].state is S.JOINING
    assert status.history[-2].detail == "annotation2 does not require join"
    assert not any("joining" in j for j in warehouse.starts)


def test_join_waits_for_the_annotation_job(tracker, clock):
    ndt7 = ready(tracker, "ndt7")
    annotation = ready(tracker, "annotation2", Datasets("tmp_ndt", "raw_ndt", ""))
    tracker.set_job_error(annotation, "held back")  # not complete: the join must wait
    warehouse = MemoryWarehouse()
    processor = PostProcessor(tracker, warehouse, POLICY, clock=clock)
    ticks(processor, clock)
    assert tracker.get_status(ndt7).state is S.JOINING
    assert tracker.get_status(ndt7).detail == "waiting for annotation2 of 2026-11-02"
    assert not any("joining" in j for j in warehouse.starts)

    tracker.add_job(
        Job(
            "archive-bucket",
            "ndt",
            "annotation2",
            date(2026, 11, 2),
            datasets=Datasets("tmp_ndt", "raw_ndt", ""),
        )
    )  # restart it, then finish
    tracker.set_status(annotation, S.PARSING)
    tracker.set_status(annotation, S.POST_PROCESSING)
    ticks(processor, clock)
    assert tracker.get_status(annotation).state is S.COMPLETE
    assert tracker.get_status(ndt7).state is S.COMPLETE


def test_two_concurrent_ticks_act_on_each_job_once(tracker, clock):
    keys = [ready(tracker, day=d) for d in range(1, 9)]
    warehouse = MemoryWarehouse(script={S.LOADING: [Outcome.RUNNING]})  # loads never finish
    processors = [PostProcessor(tracker, warehouse, POLICY, clock=clock) for _ in range(2)]

    def run(p: PostProcessor, barrier: threading.Barrier) -> None:
        barrier.wait()
        p.tick()

    for _ in range(2):  # postProcessing -> loading, then start the loads
        barrier = threading.Barrier(2)
        threads = [threading.Thread(target=run, args=(p, barrier)) for p in processors]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sorted(warehouse.starts) == sorted(set(warehouse.starts))
    assert len(warehouse.starts) == len(keys)
    assert all(tracker.get_status(k).state is S.LOADING for k in keys)


def test_a_tick_repeated_after_a_crash_starts_no_second_bigquery_job(tracker, clock):
    key = ready(tracker)
    warehouse = MemoryWarehouse(script={S.LOADING: [Outcome.RUNNING]})
    processor = PostProcessor(tracker, warehouse, POLICY, clock=clock)
    processor.tick()  # -> loading
    # A tick claims the job and starts the load, then dies before recording it.
    owner = "tick-crashed"
    record = tracker.claim(tracker.get_record(key), processor.states, owner, clock() + POLICY.lease)
    job_id = step_job_id(key, S.LOADING, format_time(record.status.start_time), 0)
    warehouse.start(S.LOADING, record.job, job_id)
    assert tracker.get_record(key).step_job == ""

    processor.tick()  # the lease still holds: nothing happens
    assert len(warehouse.jobs) == 1
    clock.advance(minutes=6)  # the crashed tick's lease runs out
    processor.tick()
    assert len(warehouse.jobs) == 1  # the same id: BigQuery has one job
    assert tracker.get_record(key).step_job == job_id


def test_retryable_errors_retry_with_backoff_then_fail(tracker, clock):
    key = ready(tracker)
    warehouse = MemoryWarehouse(script={S.LOADING: [Outcome.RETRY]})
    processor = PostProcessor(tracker, warehouse, POLICY, clock=clock)
    processor.tick()  # -> loading
    processor.tick()  # start attempt 0
    processor.tick()  # retryable: back off one minute
    record = tracker.get_record(key)
    assert record.step_attempt == 1 and record.status.state is S.LOADING
    assert record.status.detail.startswith("retry 1 in 0:01:00: loading retry")
    processor.tick()
    assert len(set(warehouse.starts)) == 1  # still backing off
    clock.advance(minutes=1, seconds=1)
    processor.tick()  # start attempt 1
    assert len(set(warehouse.starts)) == 2
    for _ in range(6):
        clock.advance(minutes=1)
        processor.tick()
    status = tracker.get_status(key)
    assert status.state is S.FAILED and status.error.startswith("loading: loading retry")
    assert len(set(warehouse.starts)) == POLICY.max_attempts


def test_permanent_error_fails_the_job_with_the_step(tracker, clock):
    key = ready(tracker)
    warehouse = MemoryWarehouse(script={S.DEDUPLICATING: [Outcome.FAILED]})
    ticks(PostProcessor(tracker, warehouse, POLICY, clock=clock), clock)
    status = tracker.get_status(key)
    assert status.state is S.FAILED and status.label == "deduplicating-failed"
    assert status.error == "deduplicating: deduplicating failed: 10 rows"
    assert tracker.get_record(key).retry_at is not None  # failed jobs are retried by next


def test_a_pipeline_the_table_forbids_is_refused(tracker):
    with pytest.raises(ValueError, match="cannot follow"):
        PostProcessor(
            tracker,
            MemoryWarehouse(),
            POLICY,
            pipelines={("archive-bucket", "ndt", "ndt7"): (S.COPYING, S.LOADING)},
        )


def test_a_source_without_bigquery_steps_goes_straight_to_complete(tracker, clock):
    key = ready(tracker, "pcap", Datasets("", "", ""))
    warehouse = MemoryWarehouse()
    processor = PostProcessor(
        tracker, warehouse, POLICY, pipelines={("archive-bucket", "ndt", "pcap"): ()}, clock=clock
    )
    processor.tick()
    assert [e.state for e in tracker.get_status(key).history][-2:] == [
        S.POST_PROCESSING,
        S.COMPLETE,
    ]
    assert warehouse.starts == [] and warehouse.deleted == []


def test_a_source_pipeline_is_followed(tracker, clock):
    key = ready(tracker, "tcpinfo", Datasets("tmp_ndt", "raw_ndt", ""))
    warehouse = MemoryWarehouse()
    steps = (S.STABILIZING, *STANDARD_PIPELINE, S.FINISHING)
    processor = PostProcessor(
        tracker,
        warehouse,
        POLICY,
        clock=clock,
        pipelines={("archive-bucket", "ndt", "tcpinfo"): steps},
    )
    ticks(processor, clock, 20)
    assert [e.state for e in tracker.get_status(key).history][3:] == [*steps, S.COMPLETE]


def test_a_step_that_never_finishes_expires_like_any_stuck_job(tracker, clock):
    from shared.maintenance import Maintenance, MaintenancePolicy

    key = ready(tracker)
    warehouse = MemoryWarehouse(script={S.LOADING: [Outcome.RUNNING]})
    processor = PostProcessor(tracker, warehouse, POLICY, clock=clock)
    policy = MaintenancePolicy(expiration=timedelta(hours=6))
    for _ in range(5):  # loading starts, then every look finds it running
        processor.tick()
        clock.advance(hours=1)
    assert Maintenance(tracker, policy).run()["expired"] == []  # the start was progress
    for _ in range(3):
        processor.tick()
        clock.advance(hours=1)
    assert Maintenance(tracker, policy).run()["expired"] == [key]
    assert tracker.get_status(key).error.startswith("expired in loading:")


# -- One bad job never stalls a tick --------------------------------------------

NDT7 = ("archive-bucket", "ndt", "ndt7")


def free(tracker: Tracker, key: str) -> bool:
    """Whether no tick holds the job."""
    record = tracker.get_record(key)
    return record.lease_owner == "" and record.lease_until <= tracker.clock()


def test_a_job_of_a_source_not_in_the_config_fails_alone(tracker, clock, caplog):
    good, stray = ready(tracker, "ndt7"), ready(tracker, "tcpinfo")
    processor = PostProcessor(tracker, MemoryWarehouse(), POLICY, clock=clock, sources={NDT7})
    with caplog.at_level(logging.WARNING, logger="shared.postprocess"):
        summary = processor.tick()
    reason = "source archive-bucket/ndt/tcpinfo is not in the config"
    assert summary["failed"] == {stray: reason} and summary["moved"] == {good: "loading"}
    status = tracker.get_status(stray)
    assert status.state is S.FAILED and status.error == f"postProcessing: {reason}"
    assert free(tracker, stray)
    assert any(stray in r.getMessage() and reason in r.getMessage() for r in caplog.records)
    ticks(processor, clock)
    assert tracker.get_status(good).state is S.COMPLETE


def test_a_job_without_datasets_fails_alone(tracker, clock):
    bare = ready(tracker, "ndt7", Datasets("", "", ""), day=1)  # as a Go state file imports it
    good = ready(tracker, "ndt7", day=2)
    processor = PostProcessor(tracker, MemoryWarehouse(), POLICY, clock=clock, sources={NDT7})
    summary = processor.tick()
    assert summary["failed"] == {bare: "no target datasets for BigQuery steps (tmp '', raw '')"}
    assert tracker.get_status(bare).error.startswith("postProcessing: no target datasets")
    assert free(tracker, bare)
    ticks(processor, clock)
    assert tracker.get_status(good).state is S.COMPLETE


def test_a_job_whose_step_cannot_be_built_fails_alone(tracker, clock):
    # Stored before names were checked (or imported): the load's dataset name is invalid.
    bad = ready(tracker, "ndt7", Datasets("tmp ndt; DROP", "raw_ndt", "ndt"), day=1)
    good = ready(tracker, "ndt7", day=2)
    processor = PostProcessor(tracker, MemoryWarehouse(), POLICY, clock=clock)
    processor.tick()  # both -> loading
    summary = processor.tick()
    assert summary["failed"] == {bad: "ValueError: invalid BigQuery dataset id 'tmp ndt; DROP'"}
    assert tracker.get_status(bad).error == (
        "loading: ValueError: invalid BigQuery dataset id 'tmp ndt; DROP'"
    )
    assert free(tracker, bad) and summary["started"].keys() == {good}
    ticks(processor, clock)
    assert tracker.get_status(good).state is S.COMPLETE


def test_a_transient_bigquery_error_leaves_the_job_to_a_later_tick(tracker, clock):
    from shared.warehouse import WarehouseUnavailable

    flaky, good = ready(tracker, day=1), ready(tracker, day=2)
    warehouse = MemoryWarehouse()
    processor = PostProcessor(tracker, warehouse, POLICY, clock=clock)
    processor.tick()  # -> loading
    processor.tick()  # loads started
    load = tracker.get_record(flaky).step_job
    down = WarehouseUnavailable(f"reading job {load}", ConnectionError("reset"))

    def fail_once(job_id: str) -> None:
        if job_id == load:
            warehouse.on_result = None
            raise down

    warehouse.on_result = fail_once
    summary = processor.tick()
    assert summary["retrying"] == {flaky: str(down)}
    record = tracker.get_record(flaky)
    assert record.status.state is S.LOADING and record.step_job == load
    assert record.step_attempt == 0 and record.lease_owner == ""
    assert record.status.detail == f"{down}; trying again later"
    assert summary["moved"] == {good: "deduplicating"}
    for _ in range(20):
        processor.tick()
        clock.advance(minutes=1)
    assert tracker.get_status(flaky).state is S.COMPLETE
    loads = {j for j in warehouse.starts if step_state(j) is S.LOADING}
    assert load in loads and len(loads) == 2  # one load per job: the same id was looked at again


def test_a_start_whose_answer_is_lost_is_found_or_started_under_the_same_id(tracker, clock):
    from shared.warehouse import WarehouseUnavailable

    lost, unsent = ready(tracker, day=1), ready(tracker, day=2)
    warehouse = MemoryWarehouse()
    processor = PostProcessor(tracker, warehouse, POLICY, clock=clock)
    processor.tick()  # -> loading
    real_start, timed_out = warehouse.start, set()

    def start(step: State, job: Job, job_id: str) -> None:
        if step is S.LOADING and job_id not in timed_out:
            timed_out.add(job_id)
            if job.key() == lost:
                real_start(step, job, job_id)  # it started, but the answer never came
            raise WarehouseUnavailable(f"starting Load job {job_id}", TimeoutError("timed out"))
        real_start(step, job, job_id)

    warehouse.start = start  # type: ignore[method-assign]
    summary = processor.tick()
    assert summary["retrying"].keys() == {lost, unsent}
    ids = {k: tracker.get_record(k).step_job for k in (lost, unsent)}
    assert all(ids.values()) and all(tracker.get_record(k).lease_owner == "" for k in ids)
    for _ in range(20):
        processor.tick()
        clock.advance(minutes=1)
    assert {tracker.get_status(k).state for k in ids} == {S.COMPLETE}
    loads = {j for j in warehouse.starts if step_state(j) is S.LOADING}
    assert loads == set(ids.values())  # each job's load under one id only


def test_firestore_unavailable_ends_the_tick_with_the_lease_released(tracker, clock, caplog):
    from shared.errors import StoreUnavailable

    key = ready(tracker)
    processor = PostProcessor(tracker, MemoryWarehouse(), POLICY, clock=clock)
    real = tracker.store.transact
    calls = []

    def transact_failing_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise StoreUnavailable("Firestore unavailable: commit: 503")
        return real(*args, **kwargs)

    tracker.store.transact = transact_failing_once
    with (
        caplog.at_level(logging.WARNING, logger="shared.postprocess"),
        pytest.raises(StoreUnavailable),
    ):
        processor.tick()
    tracker.store.transact = real
    assert tracker.get_status(key).state is S.POST_PROCESSING
    assert free(tracker, key)  # released, not left for the lease to run out
    assert any("tick ended" in r.getMessage() and key in r.getMessage() for r in caplog.records)
    processor.tick()
    assert tracker.get_status(key).state is S.LOADING


# -- Expiry, operators and ticks never corrupt each other -----------------------


def expire(tracker: Tracker, clock) -> list[str]:
    """Expire every job in flight (as ``maintain`` does once they are stale)."""
    return tracker.expire_stale(clock() + timedelta(days=1), 100)


@pytest.mark.parametrize("outcome", [Outcome.RUNNING, Outcome.DONE, Outcome.RETRY, Outcome.FAILED])
def test_expiry_during_a_tick_wins_and_the_late_result_is_dropped(tracker, clock, outcome):
    key = ready(tracker)
    warehouse = MemoryWarehouse(script={S.LOADING: [outcome]})
    processor = PostProcessor(tracker, warehouse, POLICY, clock=clock)
    processor.tick()  # -> loading
    processor.tick()  # load started
    warehouse.on_result = lambda job_id: expire(tracker, clock)  # expiry while the tick looks
    summary = processor.tick()
    assert summary["dropped"].keys() == {key}
    assert not (
        summary["moved"].keys()
        | summary["failed"].keys()
        | summary["waiting"].keys()
        | summary["retrying"].keys()
    )
    record = tracker.get_record(key)
    error = record.status.error
    assert record.status.state is S.FAILED and error.startswith("expired in loading: ")
    assert record.lease_owner == "" and record.step_job == "" and record.step_attempt == 0
    tracker.add_job(record.job, ignore_backoff=True)  # the retry
    assert tracker.get_record(key).last_error == error


def test_a_job_failed_by_its_parser_during_a_tick_keeps_its_error(tracker, clock):
    key = ready(tracker)
    warehouse = MemoryWarehouse(script={S.LOADING: [Outcome.RUNNING]})
    processor = PostProcessor(tracker, warehouse, POLICY, clock=clock)
    processor.tick()
    processor.tick()
    warehouse.on_result = lambda job_id: tracker.set_job_error(key, "rows rejected")
    summary = processor.tick()
    assert summary["dropped"].keys() == {key}
    assert tracker.get_status(key).error == "loading: rows rejected"


def test_an_operator_fail_and_retry_during_a_tick_drop_its_late_result(
    tracker, clock, firestore_client
):
    from shared.admin import Admin
    from shared.config import Config, Source
    from shared.store import ControlStore, ReprocessQueue

    key = ready(tracker)
    warehouse = MemoryWarehouse()
    processor = PostProcessor(tracker, warehouse, POLICY, clock=clock)
    processor.tick()
    processor.tick()
    config = Config(
        date(2026, 11, 1), timedelta(hours=6), timedelta(minutes=1), (Source(*NDT7, datasets=JOIN),)
    )
    admin = Admin(tracker, ReprocessQueue(firestore_client), ControlStore(firestore_client), config)

    def operator(job_id: str) -> None:
        admin.fail(key, "bad rows", "ops@example.org")
        admin.retry(key, "ops@example.org")
        tracker.add_job(tracker.get_record(key).job, ignore_backoff=True)

    warehouse.on_result = operator
    summary = processor.tick()
    assert summary["dropped"].keys() == {key}
    record = tracker.get_record(key)
    assert record.status.state is S.INIT and len(record.status.history) == 1
    assert record.last_error == "loading: failed by ops@example.org: bad rows"


# -- BigQuery answers NotFound for a job it started ----------------------------


def test_a_step_job_bigquery_cannot_find_is_started_again_under_the_same_id(tracker, clock):
    key = ready(tracker)
    warehouse = MemoryWarehouse()
    processor = PostProcessor(tracker, warehouse, POLICY, clock=clock)
    processor.tick()  # -> loading
    processor.tick()  # load started
    load = tracker.get_record(key).step_job
    hidden = {load: warehouse.jobs.pop(load)}  # a lookup that does not find it (another location)

    def reappear(job_id: str) -> None:
        warehouse.on_result = lambda _: warehouse.jobs.update(hidden)

    warehouse.on_result = reappear
    summary = processor.tick()
    assert summary["started"] == {key: load}
    record = tracker.get_record(key)
    assert record.step_job == load and record.step_attempt == 0 and record.lease_owner == ""
    assert record.status.detail == f"job {load} not found: started again under the same id"
    ticks(processor, clock)
    assert tracker.get_status(key).state is S.COMPLETE
    assert {j for j in warehouse.starts if step_state(j) is S.LOADING} == {load}


def test_postprocess_answers_200_listing_the_job_that_failed(tracker, clock, http, monkeypatch):
    from shared import runtime

    good, bare = ready(tracker, day=2), ready(tracker, datasets=Datasets("", "", ""), day=1)
    processor = PostProcessor(tracker, MemoryWarehouse(), POLICY, clock=clock)
    monkeypatch.setattr(runtime, "postprocessor", lambda: processor)
    answers = [http.post("/postprocess") for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 200]
    reason = "no target datasets for BigQuery steps (tmp '', raw '')"
    assert answers[0].get_json()["failed"] == {bare: reason}
    assert answers[1].get_json()["started"].keys() == {good}
    assert free(tracker, bare)


class StepTimer:
    """A monotonic timer that moves on ``step`` seconds each time it is read."""

    def __init__(self, step: float) -> None:
        self.now, self.step, self.reads = 0.0, step, 0

    def __call__(self) -> float:
        self.reads += 1
        value = self.now
        self.now += self.step
        return value


def test_a_tick_reads_page_after_page_and_visits_each_job_once(tracker, clock):
    keys = [ready(tracker, day=d) for d in range(1, 8)]
    policy = PostProcessPolicy(batch=2, poll=timedelta(minutes=1))  # no job leasable twice
    processor = PostProcessor(tracker, MemoryWarehouse(), policy, clock=clock)
    summary = processor.tick()
    assert sorted(summary["moved"]) == sorted(keys)  # 7 jobs in pages of 2: all visited
    assert summary["pages"] == 4 and not summary["out_of_time"]
    assert all(tracker.get_status(k).state is S.LOADING for k in keys)  # once each, not further


def test_a_tick_starts_no_visit_that_might_not_end_within_its_time(tracker, clock):
    keys = [ready(tracker, day=d) for d in range(1, 9)]
    # 100 s for the tick, 30 s for the worst visit: visits may start up to 70 s in; the
    # timer moves 10 s per read, one read per visit, so visits start at 10, 20, ... 70 s.
    policy = PostProcessPolicy(batch=3, tick=timedelta(seconds=100), visit=timedelta(seconds=30))
    timer = StepTimer(10.0)
    processor = PostProcessor(tracker, MemoryWarehouse(), policy, clock=clock, timer=timer)
    summary = processor.tick()
    assert len(summary["moved"]) == 7 and summary["out_of_time"]
    left = [k for k in keys if k not in summary["moved"]]
    assert len(left) == 1 and tracker.get_status(left[0]).state is S.POST_PROCESSING
    again = PostProcessor(tracker, MemoryWarehouse(), policy, clock=clock, timer=StepTimer(0.0))
    assert left[0] in again.tick()["moved"]  # the next tick takes it
