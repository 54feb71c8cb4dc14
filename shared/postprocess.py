"""Post-processing: carry jobs from ``postProcessing`` through BigQuery to ``complete``.

A tick (Cloud Scheduler, every minute) finds jobs in a post-processing state
whose lease is free, claims each with a lease written in a Firestore
transaction (so overlapping ticks never act on the same job), and for the
job's state either starts its BigQuery step or collects the result of the one
already started; then it releases the lease. A tick never waits for a
BigQuery job: a later tick collects it.

Each BigQuery job is started under a deterministic id (job key, step, the
job's start time, the step's attempt), stored on the job document, so a tick
repeated after a crash finds the job it started instead of starting another.

The state names the step in progress: ``loading`` runs the load, and so on.
``postProcessing`` (and ``stabilizing``) just move to the first step; after
the last step the job is ``complete``. A source may have its own pipeline
(config ``pipeline``); an empty one carries the job straight to ``complete``
without BigQuery.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from shared import transitions
from shared.errors import JobNotFound
from shared.gotime import format_time
from shared.model import Job, State
from shared.store import JobRecord
from shared.tracker import Clock, LeaseLost, Tracker
from shared.warehouse import StepOutcome, StepRejected, StepResult
from shared.warehouse import job_id as step_job_id

log = logging.getLogger(__name__)

S = State

#: The standard chain of BigQuery steps, in order.
STANDARD_PIPELINE: tuple[State, ...] = (S.LOADING, S.DEDUPLICATING, S.COPYING, S.DELETING,
                                        S.JOINING)

#: States that only lead into the pipeline or out of it.
ENTRY_STATES = (S.POST_PROCESSING, S.STABILIZING)
EXIT_STATES = (S.FINISHING,)

#: The datatype whose job a join waits for (same bucket, experiment and date).
ANNOTATION = "annotation2"


class Warehouse(Protocol):
    """The BigQuery side (:class:`shared.warehouse.Warehouse`): starts steps, reads results."""

    def start(self, step: State, job: Job, job_id: str) -> None:
        """Start the step under ``job_id``; nothing if that job exists already.

        Raises :class:`StepRejected` if BigQuery refuses it.
        """

    def result(self, job_id: str) -> StepResult:
        """RUNNING, DONE, RETRY or FAILED, with a detail."""

    def delete_partition(self, job: Job) -> StepResult:
        """Delete the job's temporary partition now: DONE, RETRY or FAILED."""


class NoWarehouse:
    """The warehouse of a deployment whose every source has an empty pipeline: never called."""

    def _unused(self, *args: object) -> Any:
        raise RuntimeError("no BigQuery step is configured, yet one was asked for")

    start = result = delete_partition = _unused


@dataclass(frozen=True)
class PostProcessPolicy:
    """How a tick works: batch, lease, retries of retryable BigQuery errors."""

    batch: int = 50
    lease: timedelta = timedelta(minutes=5)
    max_attempts: int = 5
    backoff: timedelta = timedelta(minutes=1)
    #: When a step's BigQuery job is still running, look again after this long.
    poll: timedelta = timedelta(seconds=30)


@dataclass
class TickSummary:
    """What one tick did, per job key."""

    started: dict[str, str] = field(default_factory=dict)
    moved: dict[str, str] = field(default_factory=dict)
    waiting: dict[str, str] = field(default_factory=dict)
    retrying: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: int = 0


class PostProcessor:
    """Runs post-processing ticks; keeps nothing in memory between ticks."""

    def __init__(
        self,
        tracker: Tracker,
        warehouse: Warehouse,
        policy: PostProcessPolicy = PostProcessPolicy(),
        pipelines: Mapping[tuple[str, str, str], tuple[State, ...]] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.pipelines = dict(pipelines or {})
        for steps in (STANDARD_PIPELINE, *self.pipelines.values()):
            transitions.check_path([S.POST_PROCESSING, *steps, S.COMPLETE])
        self.tracker = tracker
        self.warehouse = warehouse
        self.policy = policy
        self.clock = clock or tracker.clock
        all_steps = {s for p in (STANDARD_PIPELINE, *self.pipelines.values()) for s in p}
        self.states = [*ENTRY_STATES, *sorted(all_steps), *EXIT_STATES]

    def pipeline(self, job: Job) -> tuple[State, ...]:
        """The steps of the job's source (the standard chain unless its config says otherwise)."""
        return self.pipelines.get((job.bucket, job.experiment, job.datatype), STANDARD_PIPELINE)

    def tick(self) -> dict[str, Any]:
        """Claim up to ``batch`` jobs, act on each once, release them; return a JSON summary."""
        started = time.monotonic()
        owner = f"tick-{uuid.uuid4().hex[:12]}"
        now = self.clock()
        summary = TickSummary()
        candidates = list(self.tracker.leasable(self.states, now, self.policy.batch))
        random.shuffle(candidates)  # overlapping ticks then mostly claim different jobs
        for candidate in candidates:
            record = self.tracker.claim(candidate, self.states, owner,
                                        self.clock() + self.policy.lease)
            if record is None:
                summary.skipped += 1  # another tick has it
                continue
            try:
                self._act(record, owner, summary)
            except LeaseLost:
                summary.skipped += 1
        result = {k: v for k, v in vars(summary).items()}
        result["duration_seconds"] = round(time.monotonic() - started, 3)
        result["time"] = format_time(now)
        log.info("postprocess: %d started, %d moved, %d waiting, %d retrying, %d failed",
                 len(summary.started), len(summary.moved), len(summary.waiting),
                 len(summary.retrying), len(summary.failed))
        return result

    def _next(self, job: Job, state: State) -> State:
        steps = self.pipeline(job)
        if state in steps[:-1]:
            return steps[steps.index(state) + 1]
        if state in ENTRY_STATES and state not in steps:
            return steps[0] if steps else S.COMPLETE
        return S.COMPLETE

    def _act(self, record: JobRecord, owner: str, summary: TickSummary) -> None:
        state, key, job = record.status.state, record.key, record.job
        if state in ENTRY_STATES or state in EXIT_STATES:
            self._move(record, owner, self._next(job, state), "", summary)
            return
        if state is S.DELETING:
            self._settle_result(record, owner, self.warehouse.delete_partition(job), summary)
            return
        if state is S.JOINING and not job.datasets.join:
            self._move(record, owner, self._next(job, state),
                       f"{job.datatype} does not require join", summary)
            return
        if state is S.JOINING and not record.step_job and self._annotation_pending(job):
            self._release(record, owner, self.policy.poll,
                          f"waiting for {ANNOTATION} of {job.date:%Y-%m-%d}")
            summary.waiting[key] = "annotation"
            return
        if not record.step_job:
            run = format_time(record.status.start_time)
            job_id = step_job_id(key, state, run, record.step_attempt)
            try:
                self.warehouse.start(state, job, job_id)
            except StepRejected as exc:
                self._settle_result(record, owner, exc.result, summary)
                return

            def started_step(rec: JobRecord, now: datetime) -> None:
                rec.step_job = job_id

            self.tracker.settle(key, owner, started_step, self.clock() + self.policy.poll)
            summary.started[key] = job_id
            return
        self._collect(record, owner, summary)

    def _collect(self, record: JobRecord, owner: str, summary: TickSummary) -> None:
        result = self.warehouse.result(record.step_job)
        if result.outcome is StepOutcome.RUNNING:
            self._release(record, owner, self.policy.poll, None)
            summary.waiting[record.key] = record.step_job
            return
        self._settle_result(record, owner, result, summary)

    def _settle_result(self, record: JobRecord, owner: str, result: StepResult,
                       summary: TickSummary) -> None:
        """Act on a finished step: next state, a retry with backoff, or failed."""
        key, state = record.key, record.status.state
        if result.outcome is StepOutcome.DONE:
            self._move(record, owner, self._next(record.job, state), result.detail, summary)
        elif (result.outcome is StepOutcome.RETRY
              and record.step_attempt + 1 < self.policy.max_attempts):
            attempt = record.step_attempt + 1
            wait = self.policy.backoff * 2 ** (attempt - 1)

            def retry(rec: JobRecord, now: datetime) -> None:
                rec.step_job, rec.step_attempt = "", attempt
                self.tracker.move(rec, state, f"retry {attempt} in {wait}: {result.detail}", now)

            self.tracker.settle(key, owner, retry, self.clock() + wait)
            summary.retrying[key] = result.detail
        else:
            def fail(rec: JobRecord, now: datetime) -> None:
                rec.step_job, rec.step_attempt = "", 0
                self.tracker.fail(rec, f"{state.value}: {result.detail}", now)

            self.tracker.settle(key, owner, fail)
            summary.failed[key] = result.detail

    def _annotation_pending(self, job: Job) -> bool:
        """Whether the same date's annotation job exists and is not complete yet."""
        annotation = Job(job.bucket, job.experiment, ANNOTATION, job.date)
        try:
            return self.tracker.get_status(annotation.key()).state is not S.COMPLETE
        except JobNotFound:
            return False

    def _move(self, record: JobRecord, owner: str, to: State, detail: str,
              summary: TickSummary) -> None:
        def change(rec: JobRecord, now: datetime) -> None:
            rec.step_job, rec.step_attempt = "", 0
            self.tracker.move(rec, to, detail, now)

        self.tracker.settle(record.key, owner, change)
        summary.moved[record.key] = to.value

    def _release(self, record: JobRecord, owner: str, after: timedelta, detail: str | None) -> None:
        def change(rec: JobRecord, now: datetime) -> None:
            if detail is not None:
                rec.status.set_detail(detail, now)

        self.tracker.settle(record.key, owner, change, self.clock() + after, progress=False)
