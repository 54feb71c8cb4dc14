"""Post-processing: carry jobs from ``postProcessing`` through BigQuery to ``complete``.

A tick (Cloud Scheduler, every minute) finds jobs in a post-processing state
whose lease is free, a page at a time, claims each with a lease written in a
Firestore transaction (so overlapping ticks never act on the same job), and
for the job's state either starts its BigQuery step or collects the result of
the one already started; then it releases the lease. It goes on page after
page while its time allows, visiting each job once, and starts no visit that
might outlast that time. A tick never waits for a BigQuery job: a later tick
collects it.

Each BigQuery job is started under a deterministic id (job key, step, the
job's start time, the step's attempt), stored on the job document, so a tick
repeated after a crash finds the job it started instead of starting another.

The state names the step in progress: ``loading`` runs the load, and so on.
``postProcessing`` (and ``stabilizing``) just move to the first step; after
the last step the job is ``complete``. A source may have its own pipeline
(config ``pipeline``); an empty one carries the job straight to ``complete``
without BigQuery.

One bad job never stalls a tick: a job that cannot be processed (its source
is not in the config, it has no datasets for its BigQuery steps, building its
step raises) fails alone with the reason as its detail, and a transient
BigQuery error leaves it to a later tick; either way its lease is released
and the tick goes on. A result that comes back after the job left the state
it was claimed in (expired, failed or restarted meanwhile) is dropped.
"""

from __future__ import annotations

import copy
import logging
import random
import time
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from shared import defaults, transitions
from shared.errors import JobNotFound, StoreUnavailable, Unavailable
from shared.gotime import format_time
from shared.model import Job, JobRecord, State
from shared.store import TaskStore
from shared.store.tasks import POSTPROCESS
from shared.tracker import Clock, LeaseLost, Tracker
from shared.warehouse import STEPS, StepOutcome, StepRejected, StepResult
from shared.warehouse import job_id as step_job_id

log = logging.getLogger(__name__)

S = State

#: The standard chain of BigQuery steps, in order.
STANDARD_PIPELINE: tuple[State, ...] = (
    S.LOADING,
    S.DEDUPLICATING,
    S.COPYING,
    S.DELETING,
    S.JOINING,
)

#: States that only lead into the pipeline or out of it.
ENTRY_STATES = (S.POST_PROCESSING, S.STABILIZING)
EXIT_STATES = (S.FINISHING,)

#: The datatype whose job a join waits for (same bucket, experiment and date).
ANNOTATION = "annotation2"


class Steps(Protocol):
    """What runs the steps (:class:`shared.warehouse.Warehouse`, BigQuery): starts them, reads results."""

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


#: The longest one visit may take when every outside call runs to its deadline: the claim,
#: an annotation look-up and the settle on Firestore, at most one BigQuery call
#: (:data:`shared.defaults.BIGQUERY_CALL_DEADLINE`) (:func:`visit_budget`).
VISIT_FIRESTORE_CALLS = 3


def visit_budget(firestore_deadline: float, bigquery: bool = True) -> timedelta:
    """The worst-case duration of one visit, from the deadlines of the calls it makes."""
    return timedelta(
        seconds=VISIT_FIRESTORE_CALLS * firestore_deadline
        + (defaults.BIGQUERY_CALL_DEADLINE if bigquery else 0.0)
    )


#: The default worst-case visit: with a BigQuery step and the default Firestore deadline.
_DEFAULT_VISIT = visit_budget(defaults.FIRESTORE_DEADLINE)


@dataclass(frozen=True)
class PostProcessPolicy:
    """How a tick works: page size, time budget, lease, retries of retryable BigQuery errors."""

    #: Leasable jobs read per query (a tick reads pages while time remains).
    batch: int = defaults.POSTPROCESS_BATCH
    #: How long a tick may work; no visit starts that might not end within it.
    tick: timedelta = timedelta(seconds=defaults.POSTPROCESS_TICK_SECONDS)
    #: The worst-case duration of one visit (:func:`visit_budget`).
    visit: timedelta = _DEFAULT_VISIT
    #: How long a tick's lease on a job lasts.
    lease: timedelta = defaults.POSTPROCESS_LEASE
    #: Attempts of a step that fails in a retryable way.
    max_attempts: int = defaults.POSTPROCESS_MAX_ATTEMPTS
    #: Wait before another attempt of such a step.
    backoff: timedelta = defaults.POSTPROCESS_BACKOFF
    #: When a step's BigQuery job is still running, look again after this long.
    poll: timedelta = defaults.POSTPROCESS_POLL


@dataclass
class TickSummary:
    """What one tick did, per job key."""

    started: dict[str, str] = field(default_factory=dict)
    moved: dict[str, str] = field(default_factory=dict)
    waiting: dict[str, str] = field(default_factory=dict)
    retrying: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    #: Results dropped because the job left the claimed state or lease meanwhile, with why.
    dropped: dict[str, str] = field(default_factory=dict)
    skipped: int = 0
    #: Pages of leasable jobs read.
    pages: int = 0
    #: Whether the tick stopped with leasable jobs left, because its time was up.
    out_of_time: bool = False


class Unprocessable(Exception):
    """A job that post-processing cannot carry on; the message says why."""


class PostProcessor:
    """Runs post-processing ticks; keeps nothing in memory between ticks."""

    def __init__(
        self,
        tracker: Tracker,
        warehouse: Steps,
        policy: PostProcessPolicy = PostProcessPolicy(),
        pipelines: Mapping[tuple[str, str, str], tuple[State, ...]] | None = None,
        clock: Clock | None = None,
        sources: Collection[tuple[str, str, str]] | None = None,
        timer: Callable[[], float] = time.monotonic,
        tasks: TaskStore | None = None,
    ) -> None:
        """``sources``: the (bucket, experiment, datatype) of the config; a job of
        another source fails (None: any source is taken, with the standard chain).
        ``timer``: seconds, monotonic; measures the tick's time budget.
        ``tasks``: where a tick that ends records its success (the metrics read it)."""
        self.tasks = tasks
        self.pipelines = dict(pipelines or {})
        self.sources = None if sources is None else frozenset(sources)
        for steps in (STANDARD_PIPELINE, *self.pipelines.values()):
            transitions.check_path([S.POST_PROCESSING, *steps, S.COMPLETE])
        self.tracker = tracker
        self.warehouse = warehouse
        self.policy = policy
        self.clock = clock or tracker.clock
        self.timer = timer
        all_steps = {s for p in (STANDARD_PIPELINE, *self.pipelines.values()) for s in p}
        self.states = [*ENTRY_STATES, *sorted(all_steps), *EXIT_STATES]

    def pipeline(self, job: Job) -> tuple[State, ...]:
        """The steps of the job's source (the standard chain unless its config says otherwise)."""
        return self.pipelines.get((job.bucket, job.experiment, job.datatype), STANDARD_PIPELINE)

    def tick(self) -> dict[str, Any]:
        """Visit leasable jobs, a page at a time, while the tick's time allows; return a JSON summary.

        Each job is claimed, acted on once and released. A visit starts only
        if its worst case (``policy.visit``) ends within ``policy.tick``; the
        tick ends when the time is up or no unvisited leasable job is left.
        A job is visited at most once per tick.
        """
        started = time.monotonic()
        begun = self.timer()
        last_start = begun + (self.policy.tick - self.policy.visit).total_seconds()
        owner = f"tick-{uuid.uuid4().hex[:12]}"
        now = self.clock()
        summary = TickSummary()
        visited: set[str] = set()
        after: JobRecord | None = None
        while True:
            page = list(
                self.tracker.leasable(self.states, self.clock(), self.policy.batch, after=after)
            )
            summary.pages += 1
            if page:
                after = copy.copy(page[-1])  # as read: a claim changes the record's lease
            candidates = [c for c in page if c.key not in visited]
            random.shuffle(candidates)  # overlapping ticks then mostly claim different jobs
            for candidate in candidates:
                if self.timer() > last_start:
                    summary.out_of_time = True
                    break
                visited.add(candidate.key)
                self._claim_and_visit(candidate, owner, summary)
            if summary.out_of_time or len(page) < self.policy.batch or not candidates:
                break
        result = dict(vars(summary))
        result["duration_seconds"] = round(time.monotonic() - started, 3)
        result["time"] = format_time(now)
        if self.tasks is not None:
            self.tasks.succeeded(POSTPROCESS, self.clock())
        log.info(
            "postprocess: %d started, %d moved, %d waiting, %d retrying, %d failed, %d dropped",
            len(summary.started),
            len(summary.moved),
            len(summary.waiting),
            len(summary.retrying),
            len(summary.failed),
            len(summary.dropped),
        )
        return result

    def _claim_and_visit(self, candidate: JobRecord, owner: str, summary: TickSummary) -> None:
        try:
            record = self.tracker.claim(
                candidate, self.states, owner, self.clock() + self.policy.lease
            )
        except StoreUnavailable as exc:
            self._abandon(candidate.key, owner, "claiming", exc, summary)
            raise
        if record is None:
            summary.skipped += 1  # another tick has it
            return
        self._visit(record, owner, summary)

    def _visit(self, record: JobRecord, owner: str, summary: TickSummary) -> None:
        """Act on one claimed job; whatever goes wrong with it stays with it.

        Only an unavailable Firestore ends the tick (after trying to release
        the lease): nothing more could be recorded anyway.
        """
        key, state = record.key, record.status.state
        try:
            self._act(record, owner, summary)
        except (LeaseLost, JobNotFound) as exc:
            self._drop(key, exc, summary)
        except StoreUnavailable as exc:
            self._abandon(key, owner, f"visiting, in {state.value},", exc, summary)
            raise
        except Unavailable as exc:  # BigQuery did not answer: a later tick tries again
            self._defer(record, owner, str(exc), summary)
        except Exception as exc:
            reason = str(exc) if isinstance(exc, Unprocessable) else f"{type(exc).__name__}: {exc}"
            log.warning(
                "postprocess: job %s cannot be processed in %s: %s",
                key,
                state.value,
                reason,
                exc_info=not isinstance(exc, Unprocessable),
                extra={"job": key},
            )
            self._fail(record, owner, reason, summary)

    def _guarded(
        self, record: JobRecord, owner: str, summary: TickSummary, write: Callable[[], None]
    ) -> None:
        """Run a follow-up ``write`` of :meth:`_visit`'s handlers; its own failure is logged."""
        try:
            write()
        except (LeaseLost, JobNotFound) as exc:
            self._drop(record.key, exc, summary)
        except StoreUnavailable as exc:
            self._abandon(
                record.key,
                owner,
                f"recording a failure in {record.status.state.value}",
                exc,
                summary,
            )
            raise
        except Exception:
            log.exception(
                "postprocess: job %s: recording its outcome failed; its lease runs out",
                record.key,
                extra={"job": record.key},
            )

    def _fail(self, record: JobRecord, owner: str, reason: str, summary: TickSummary) -> None:
        state = record.status.state

        def fail(rec: JobRecord, now: datetime) -> None:
            rec.step_job, rec.step_attempt = "", 0
            self.tracker.fail(rec, f"{state.value}: {reason}", now)

        def write() -> None:
            self._settle(record, owner, fail)
            summary.failed[record.key] = reason

        self._guarded(record, owner, summary, write)

    def _defer(self, record: JobRecord, owner: str, reason: str, summary: TickSummary) -> None:
        """Release a job whose BigQuery call did not get through; look again after ``backoff``.

        Its step, BigQuery job id and attempt stay as they are (a new attempt
        could run the step twice); a job that never gets through expires.
        """
        log.warning(
            "postprocess: job %s: %s; trying again later",
            record.key,
            reason,
            extra={"job": record.key},
        )

        def write() -> None:
            self._release(record, owner, self.policy.backoff, f"{reason}; trying again later")
            summary.retrying[record.key] = reason

        self._guarded(record, owner, summary, write)

    @staticmethod
    def _drop(key: str, exc: Exception, summary: TickSummary) -> None:
        reason = str(exc) if isinstance(exc, LeaseLost) else "removed meanwhile"
        log.info("postprocess: job %s: result dropped: %s", key, reason, extra={"job": key})
        summary.dropped[key] = reason

    def _abandon(
        self, key: str, owner: str, doing: str, exc: StoreUnavailable, summary: TickSummary
    ) -> None:
        """Firestore failed while ``doing``: release ``key``'s lease if it can, log the tick so far."""
        try:
            self.tracker.settle(key, owner, lambda rec, now: None, progress=False)
            lease = "its lease released"
        except (LeaseLost, JobNotFound):
            lease = "it holds no lease of this tick"
        except Exception as again:  # noqa: BLE001 - any failure: the lease runs out by itself
            lease = f"its lease could not be released ({again}) and runs out by itself"
        log.warning(
            "postprocess: tick ended, Firestore unavailable while %s job %s (%s): %s; "
            "done before: %s",
            doing,
            key,
            lease,
            exc,
            vars(summary),
            extra={"job": key},
        )

    def _check(self, record: JobRecord) -> None:
        """Raise :class:`Unprocessable` if the job cannot go on from its state."""
        job, state = record.job, record.status.state
        source = (job.bucket, job.experiment, job.datatype)
        if self.sources is not None and source not in self.sources:
            raise Unprocessable(f"source {'/'.join(source)} is not in the config")
        if state in EXIT_STATES:
            return
        if any(step in STEPS for step in self.pipeline(job)) and not (
            job.datasets.tmp and job.datasets.raw
        ):
            raise Unprocessable(
                f"no target datasets for BigQuery steps (tmp {job.datasets.tmp!r}, "
                f"raw {job.datasets.raw!r})"
            )

    def _settle(
        self,
        record: JobRecord,
        owner: str,
        change: Callable[[JobRecord, datetime], None],
        free_at: datetime | None = None,
        progress: bool = True,
    ) -> None:
        """Settle a claimed job; LeaseLost if it left the claimed state or lease meanwhile."""
        self.tracker.settle(record.key, owner, change, free_at, progress, state=record.status.state)

    def _next(self, job: Job, state: State) -> State:
        steps = self.pipeline(job)
        if state in steps[:-1]:
            return steps[steps.index(state) + 1]
        if state in ENTRY_STATES and state not in steps:
            return steps[0] if steps else S.COMPLETE
        return S.COMPLETE

    def _act(self, record: JobRecord, owner: str, summary: TickSummary) -> None:
        state, key, job = record.status.state, record.key, record.job
        self._check(record)
        if state in ENTRY_STATES or state in EXIT_STATES:
            self._move(record, owner, self._next(job, state), "", summary)
            return
        if state is S.DELETING:
            self._settle_result(record, owner, self.warehouse.delete_partition(job), summary)
            return
        if state is S.JOINING and not job.datasets.join:
            self._move(
                record,
                owner,
                self._next(job, state),
                f"{job.datatype} does not require join",
                summary,
            )
            return
        if state is S.JOINING and not record.step_job and self._annotation_pending(job):
            self._release(
                record, owner, self.policy.poll, f"waiting for {ANNOTATION} of {job.date:%Y-%m-%d}"
            )
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
            except Unavailable as exc:
                # It may have started: keep its id, so a later look finds it or starts it again
                # under the same id, never under another.
                reason = str(exc)

                def maybe_started(rec: JobRecord, now: datetime) -> None:
                    rec.step_job = job_id
                    rec.status.set_detail(f"{reason}; trying again later", now)

                log.warning(
                    "postprocess: job %s: %s; trying again later", key, reason, extra={"job": key}
                )
                self._settle(
                    record, owner, maybe_started, self.clock() + self.policy.backoff, progress=False
                )
                summary.retrying[key] = reason
                return

            def started_step(rec: JobRecord, now: datetime) -> None:
                rec.step_job = job_id

            self._settle(record, owner, started_step, self.clock() + self.policy.poll)
            summary.started[key] = job_id
            return
        self._collect(record, owner, summary)

    def _collect(self, record: JobRecord, owner: str, summary: TickSummary) -> None:
        result = self.warehouse.result(record.step_job)
        if result.outcome is StepOutcome.MISSING:
            self._restart(record, owner, result, summary)
            return
        if result.outcome is StepOutcome.RUNNING:
            self._release(record, owner, self.policy.poll, None)
            summary.waiting[record.key] = record.step_job
            return
        self._settle_result(record, owner, result, summary)

    def _restart(
        self, record: JobRecord, owner: str, missing: StepResult, summary: TickSummary
    ) -> None:
        """Start the job's step again under the id BigQuery does not know.

        Never under a new id: if the job does exist (a lookup in the wrong
        location, say), BigQuery refuses the same id with Conflict, so the step
        cannot run twice. Not progress: a job that stays missing expires.
        """
        try:
            self.warehouse.start(record.status.state, record.job, record.step_job)
        except StepRejected as exc:
            self._settle_result(record, owner, exc.result, summary)
            return
        self._release(
            record, owner, self.policy.poll, f"{missing.detail}: started again under the same id"
        )
        summary.started[record.key] = record.step_job

    def _settle_result(
        self, record: JobRecord, owner: str, result: StepResult, summary: TickSummary
    ) -> None:
        """Act on a finished step: next state, a retry with backoff, or failed."""
        key, state = record.key, record.status.state
        if result.outcome is StepOutcome.DONE:
            self._move(record, owner, self._next(record.job, state), result.detail, summary)
        elif (
            result.outcome is StepOutcome.RETRY
            and record.step_attempt + 1 < self.policy.max_attempts
        ):
            attempt = record.step_attempt + 1
            wait = self.policy.backoff * 2 ** (attempt - 1)

            def retry(rec: JobRecord, now: datetime) -> None:
                rec.step_job, rec.step_attempt = "", attempt
                self.tracker.move(rec, state, f"retry {attempt} in {wait}: {result.detail}", now)

            self._settle(record, owner, retry, self.clock() + wait)
            summary.retrying[key] = result.detail
        else:

            def fail(rec: JobRecord, now: datetime) -> None:
                rec.step_job, rec.step_attempt = "", 0
                self.tracker.fail(rec, f"{state.value}: {result.detail}", now)

            self._settle(record, owner, fail)
            summary.failed[key] = result.detail

    def _annotation_pending(self, job: Job) -> bool:
        """Whether the same date's annotation job exists and is not complete yet."""
        annotation = Job(job.bucket, job.experiment, ANNOTATION, job.date)
        try:
            return self.tracker.get_status(annotation.key()).state is not S.COMPLETE
        except JobNotFound:
            return False

    def _move(
        self, record: JobRecord, owner: str, to: State, detail: str, summary: TickSummary
    ) -> None:
        def change(rec: JobRecord, now: datetime) -> None:
            rec.step_job, rec.step_attempt = "", 0
            self.tracker.move(rec, to, detail, now)

        self._settle(record, owner, change)
        summary.moved[record.key] = to.value

    def _release(self, record: JobRecord, owner: str, after: timedelta, detail: str | None) -> None:
        def change(rec: JobRecord, now: datetime) -> None:
            if detail is not None:
                rec.status.set_detail(detail, now)

        self._settle(record, owner, change, self.clock() + after, progress=False)
