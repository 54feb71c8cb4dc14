"""Post-processing ticks on the Firestore emulator: leases, idempotent steps, outcomes.

BigQuery is replaced here, at the client boundary, by a small in-memory
warehouse that keeps jobs by id as BigQuery does (a second start under the
same id starts nothing); the real BigQuery calls are tested against the
BigQuery emulator in ``test_warehouse.py``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import date, timedelta

import pytest

from shared.model import Datasets, Job, State
from shared.postprocess import PostProcessor, PostProcessPolicy
from shared.gotime import format_time
from shared.warehouse import StepOutcome, StepResult, step_of
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

    def start(self, step: State, job: Job, job_id: str) -> None:
        with self.lock:
            self.starts.append(job_id)
            self.jobs.setdefault(job_id, step)

    def result(self, job_id: str) -> StepResult:
        step = self.jobs[job_id]
        outcomes = self.script.get(step) or [Outcome.DONE]
        outcome = outcomes.pop(0) if len(outcomes) > 1 else outcomes[0]
        return StepResult(outcome, f"{step.value} {outcome.name.lower()}: 10 rows")

    def delete_partition(self, job: Job) -> StepResult:
        self.deleted.append(job.table_partition())
        return StepResult(StepOutcome.DONE, f"deleted {job.table_partition()}")


POLICY = PostProcessPolicy(batch=50, lease=timedelta(minutes=5), max_attempts=3,
                           backoff=timedelta(minutes=1), poll=timedelta(seconds=0))
JOIN = Datasets("tmp_ndt", "raw_ndt", "ndt")


def ready(tracker, datatype: str = "ndt7", datasets: Datasets = JOIN, day: int = 2) -> str:  # type: ignore[no-untyped-def]
    job = Job("archive-bucket", "ndt", datatype, date(2026, 11, day), datasets=datasets)
    tracker.add_job(job)
    tracker.set_status(job.key(), S.PARSING)
    tracker.set_status(job.key(), S.POST_PROCESSING)
    return job.key()


def ticks(processor: PostProcessor, clock, n: int = 20) -> None:  # type: ignore[no-untyped-def]
    for _ in range(n):
        processor.tick()
        clock.advance(seconds=1)


def test_a_job_goes_through_every_step_to_complete(tracker, clock):
    key = ready(tracker)
    warehouse = MemoryWarehouse()
    ticks(PostProcessor(tracker, warehouse, POLICY, clock=clock), clock)
    status = tracker.get_status(key)
    assert [e.state for e in status.history][2:] == [
        S.POST_PROCESSING, S.LOADING, S.DEDUPLICATING, S.COPYING, S.DELETING, S.JOINING, S.COMPLETE]
    assert [step_of(j).state for j in warehouse.starts] == [
        S.LOADING, S.DEDUPLICATING, S.COPYING, S.JOINING]
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

    tracker.add_job(Job("archive-bucket", "ndt", "annotation2", date(2026, 11, 2),
                        datasets=Datasets("tmp_ndt", "raw_ndt", "")))  # restart it, then finish
    tracker.set_status(annotation, S.PARSING)
    tracker.set_status(annotation, S.POST_PROCESSING)
    ticks(processor, clock)
    assert tracker.get_status(annotation).state is S.COMPLETE
    assert tracker.get_status(ndt7).state is S.COMPLETE


def test_two_concurrent_ticks_act_on_each_job_once(tracker, clock):
    keys = [ready(tracker, day=d) for d in range(1, 9)]
    warehouse = MemoryWarehouse(script={S.LOADING: [Outcome.RUNNING]})  # loads never finish
    processors = [PostProcessor(tracker, warehouse, POLICY, clock=clock) for _ in range(2)]
    for _ in range(2):  # postProcessing -> loading, then start the loads
        barrier = threading.Barrier(2)

        def run(p: PostProcessor) -> None:
            barrier.wait()
            p.tick()

        threads = [threading.Thread(target=run, args=(p,)) for p in processors]
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
        PostProcessor(tracker, MemoryWarehouse(), POLICY, pipelines={("archive-bucket", "ndt", "ndt7"): (S.COPYING, S.LOADING)})


def test_a_source_without_bigquery_steps_goes_straight_to_complete(tracker, clock):
    key = ready(tracker, "pcap", Datasets("", "", ""))
    warehouse = MemoryWarehouse()
    processor = PostProcessor(tracker, warehouse, POLICY,
                              pipelines={("archive-bucket", "ndt", "pcap"): ()}, clock=clock)
    processor.tick()
    assert [e.state for e in tracker.get_status(key).history][-2:] == [S.POST_PROCESSING, S.COMPLETE]
    assert warehouse.starts == [] and warehouse.deleted == []


def test_a_source_pipeline_is_followed(tracker, clock):
    key = ready(tracker, "tcpinfo", Datasets("tmp_ndt", "raw_ndt", ""))
    warehouse = MemoryWarehouse()
    steps = (S.STABILIZING, S.LOADING, S.DEDUPLICATING, S.COPYING, S.DELETING, S.JOINING,
             S.FINISHING)
    processor = PostProcessor(tracker, warehouse, POLICY, clock=clock,
                              pipelines={("archive-bucket", "ndt", "tcpinfo"): steps})
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
