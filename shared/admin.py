"""Operator control: list and inspect jobs, retry, fail, reprocess (and cancel it), pause, snapshots.

Every action on a job is one Firestore transaction that checks the job first
and writes nothing when it refuses, and it is recorded on the job's ``audit``
(who, when, what; the newest :data:`shared.model.AUDIT_KEEP` are kept, across
restarts). Reprocessing is queued, one document per job, and recorded on the
job when next-job hands it out; pauses are documents of their own, holding
who paused and why.

Policies:

* **retry** — only a ``failed`` job; it becomes due at once (``retry_at`` =
  now), and next-job hands it out as the next retry: the run counts as one
  more attempt. Past the attempt limit the operator's retry still runs it
  once; if that run fails, it is not retried automatically.
* **fail** — any non-terminal state (the transition table allows ``failed``
  from each); ``complete`` and ``failed`` are refused naming the states. The
  job is not retried automatically (``gardener retry`` runs it again), its
  post-processing lease is cleared and an owed re-offer dropped.
* **reprocess** — job dates up to yesterday, for sources of the config, at
  most ``max_reprocess`` jobs per request; a job already queued stays queued once.
  **Cancel** takes the same range back: the items still queued are removed;
  one next-job has claimed is handed out, never both.
* **pause** — ``historical`` stops the historical stream; a source
  (``experiment/datatype``) stops all of its hand-outs: owed runs, daily (a
  daily job coming due is queued for reprocessing), reprocessing, historical.
  Pausing a paused target changes only its reason.
* **bulk** — retry or fail every job a filter matches, each job alone (its
  own transaction and audit entry); a refusal is listed and the rest go on.
* **filters** — an experiment or datatype no source of the config has is
  refused with the list of sources, not answered with nothing.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from shared import defaults, transitions
from shared.config import Config
from shared.errors import Conflict, Invalid, TrackerError, Unavailable
from shared.gotime import format_time
from shared.job_service import HISTORICAL
from shared.model import (
    FREE,
    UTC,
    AuditEntry,
    Job,
    JobFilter,
    JobRecord,
    Pause,
    ReprocessItem,
    State,
    source_name,
)
from shared.schemas import MAX_BULK
from shared.store import ControlStore, ReprocessQueue
from shared.tracker import Tracker

if TYPE_CHECKING:
    from shared.snapshot import ImportResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reprocessing:
    """What a reprocessing request did: the keys it queued, and how many were queued already."""

    queued: list[str]
    already_queued: int
    who: str
    time: datetime


@dataclass(frozen=True)
class Cancellation:
    """What a cancelled reprocessing did: the keys taken back, and those being handed out."""

    cancelled: list[str]
    handed_out: list[str]
    who: str
    time: datetime


@dataclass(frozen=True)
class Controls:
    """The pauses in force and the head of the reprocessing queue."""

    historical: Pause | None
    #: Every source of the config by name (``experiment/datatype``), with its pause if any.
    sources: list[tuple[str, Pause | None]]
    reprocess_queued: int
    #: The next items of the queue, in queue order.
    reprocess_next: list[ReprocessItem]


@dataclass(frozen=True)
class Exported:
    """A snapshot written now: what the export says of it (``SnapshotResult`` fields), and who."""

    snapshot: dict[str, Any]
    who: str


@dataclass(frozen=True)
class Imported:
    """A snapshot imported: its source, what the import did, and who."""

    source: str
    result: ImportResult
    who: str


@dataclass(frozen=True)
class BulkResult:
    """What a bulk retry or fail did: the jobs changed, and those left alone with why.

    ``dry_run``: nothing was written; ``changed`` lists the matching jobs that would
    change, ``unchanged`` those that would be refused, with why.
    """

    action: str
    dry_run: bool
    changed: list[str]
    #: (key, why) of each matching job that was not changed.
    unchanged: list[tuple[str, str]]
    who: str


@dataclass(frozen=True)
class PauseChange:
    """A pause made, or the reason of a pause in force changed (``previous_reason`` set)."""

    pause: Pause
    #: The reason replaced, when the target was paused already (None: a new pause).
    previous_reason: str | None = None


def _source_names(jobs: list[Job]) -> str:
    return ", ".join(sorted({f"{j.experiment}/{j.datatype}" for j in jobs}))


class Admin:
    """The operator's actions over the tracker, the reprocessing queue and the pauses."""

    def __init__(
        self,
        tracker: Tracker,
        queue: ReprocessQueue,
        controls: ControlStore,
        config: Config,
        export: Callable[[datetime], dict[str, Any]] | None = None,
        load: Callable[[str], Any] | None = None,
        max_reprocess: int = defaults.REPROCESS_MAX,
    ) -> None:
        self.tracker = tracker
        self.queue = queue
        self.controls = controls
        self.config = config
        self.export = export
        self.load = load
        self.max_reprocess = max_reprocess

    @property
    def clock(self) -> Callable[[], datetime]:
        """The tracker's clock."""
        return self.tracker.clock

    # --- looking ---------------------------------------------------------------------

    def known_sources(self) -> list[str]:
        """Return the config's sources (``experiment/datatype``), sorted."""
        return sorted({source_name(s) for s in self.config.sources})

    def check_filter(self, f: JobFilter) -> None:
        """Refuse (:class:`Invalid`) a filter whose experiment or datatype no source has.

        The answer lists the config's sources, so a typo (``ndt8``) is not a silent empty list.
        """
        chosen = [
            s
            for s in self.config.sources
            if (f.experiment is None or s.experiment == f.experiment)
            and (f.datatype is None or s.datatype == f.datatype)
        ]
        if (f.experiment is not None or f.datatype is not None) and not chosen:
            asked = f"{f.experiment or '*'}/{f.datatype or '*'}"
            fields = [n for n, v in (("experiment", f.experiment), ("datatype", f.datatype)) if v]
            raise Invalid(
                f"no source of the config matches {asked}; the sources are "
                f"{', '.join(self.known_sources())}",
                {field: ["unknown source"] for field in fields},
            )

    def list_jobs(self, f: JobFilter) -> list[JobRecord]:
        """Return the matching jobs: by job date with a date range, else oldest start first.

        Refused (:class:`Invalid`) for an experiment or datatype that no source has.
        """
        self.check_filter(f)
        return list(self.tracker.get_state(f))

    def job(self, key: str) -> JobRecord:
        """Return one job with its history, bookkeeping and audit; JobNotFound if none."""
        return self.tracker.get_record(key)

    # --- acting on one job -------------------------------------------------------------

    def retry(self, key: str, who: str) -> JobRecord:
        """Make a failed job due for a retry now; :class:`Conflict` for any other state."""
        return self.tracker.administer(key, self._retry_change(key, who))[1]

    def fail(self, key: str, reason: str, who: str) -> tuple[State, JobRecord]:
        """Mark a job in flight failed with ``reason``; return the state before and the job.

        A job failed already is refused (:class:`Conflict`) with what to do instead.
        """
        return self.tracker.administer(key, self._fail_change(key, reason, who))

    def _retry_change(self, key: str, who: str) -> Callable[[JobRecord, datetime], None]:
        """The change :meth:`retry` makes to the job's record; it raises to refuse."""
        limit = self.tracker.retry.max_attempts

        def change(rec: JobRecord, now: datetime) -> None:
            state = rec.status.state
            if transitions.Action.RETRY not in transitions.operator_actions(state):
                hint = "reprocess it" if state is State.COMPLETE else "mark it failed first"
                raise Conflict(
                    f"job {key} is {state.value}, not failed: only a failed "
                    f"job can be retried ({hint})"
                )
            nth = rec.attempts + 1
            beyond = f", beyond the limit of {limit}" if nth > limit else ""
            rec.retry_at = now
            rec.note(AuditEntry(now, who, "retry", f"due now as attempt {nth}{beyond}"))

        return change

    @staticmethod
    def _fail_change(key: str, reason: str, who: str) -> Callable[[JobRecord, datetime], None]:
        """The change :meth:`fail` makes to the job's record; it raises to refuse."""

        def change(rec: JobRecord, now: datetime) -> None:
            old = rec.status.state
            if transitions.Action.FAIL not in transitions.operator_actions(old):
                if old is State.FAILED:
                    raise Conflict(
                        f"job {key} is failed already, so there is nothing to fail; to run it "
                        f"again: gardener retry {key}"
                    )
                transitions.check(key, old, State.FAILED)  # raises: the job is terminal
            Tracker.fail(rec, f"{old.value}: failed by {who}: {reason}", now)
            dropped = f"; dropped the owed re-offer {rec.reoffer}" if rec.reoffer else ""
            rec.retry_at, rec.reoffer = None, ""
            rec.lease_owner, rec.lease_until = "", FREE
            rec.note(AuditEntry(now, who, "fail", f"in {old.value}: {reason}{dropped}"))

        return change

    # --- acting on jobs by filter ----------------------------------------------------------

    def bulk(
        self, action: str, f: JobFilter, who: str, *, reason: str = "", dry_run: bool = False
    ) -> BulkResult:
        """Retry (``action`` "retry") or fail ("fail", with ``reason``) every job ``f`` matches.

        Each job changes alone, in its own transaction: a job that refuses (it
        is not failed, it is terminal, it vanished) is listed in ``unchanged``
        with why, and the rest go on. ``dry_run`` writes nothing: ``changed``
        lists the matching jobs the real run would change as they stand now,
        ``unchanged`` those it would refuse, with why. Refused (:class:`Invalid`), with nothing
        changed, for an unknown source, an unknown action, a fail without a
        reason, or a filter that matches more jobs than ``f.limit``: acting on
        only some of them would leave the rest unseen (a retried job stays
        ``failed``, so running again would pick the same ones).
        """
        if action not in ("retry", "fail"):
            raise Invalid(f"unknown bulk action {action!r}; use retry or fail")
        if action == "fail" and not reason.strip():
            raise Invalid("a reason is required to fail jobs", {"reason": ["required"]})
        limit = f.limit or MAX_BULK
        records = self.list_jobs(replace(f, limit=limit + 1))
        if len(records) > limit:
            raise Invalid(
                f"more than {limit} jobs match; nothing was changed: narrow the filter "
                "(a source, a state or a date range)"
                + (f" or raise the limit (at most {MAX_BULK})" if limit < MAX_BULK else ""),
                {"limit": [f"more than {limit} jobs match"]},
            )
        keys = [rec.key for rec in records]
        if dry_run:  # each job as read now, tried on a copy by the rule the real run applies
            would, wont = [], []
            for rec in records:
                change = (
                    self._retry_change(rec.key, who)
                    if action == "retry"
                    else self._fail_change(rec.key, reason, who)
                )
                try:
                    change(copy.deepcopy(rec), self.clock())
                except TrackerError as exc:
                    wont.append((rec.key, str(exc)))
                else:
                    would.append(rec.key)
            return BulkResult(action, True, would, wont, who)
        changed: list[str] = []
        unchanged: list[tuple[str, str]] = []
        for key in keys:
            try:
                if action == "retry":
                    self.retry(key, who)
                else:
                    self.fail(key, reason, who)
            except TrackerError as exc:
                unchanged.append((key, str(exc)))
            else:
                changed.append(key)
        log.info(
            "%s %s %d jobs by filter %s; %d left unchanged",
            who,
            "retried" if action == "retry" else "failed",
            len(changed),
            f,
            len(unchanged),
        )
        return BulkResult(action, False, changed, unchanged, who)

    # --- reprocessing ---------------------------------------------------------------------

    def _reprocess_jobs(
        self, first: date, last: date, sources: list[str], now: datetime
    ) -> list[Job]:
        """Return the jobs of ``sources`` (all if empty) for job dates ``first``–``last``, by date.

        Refused (:class:`Invalid`) for unknown sources, a range reaching today
        or later, or more than ``max_reprocess`` jobs.
        """
        known = sorted({source_name(s) for s in self.config.sources})
        unknown = sorted(set(sources) - set(known))
        if unknown:
            raise Invalid(
                f"unknown sources {', '.join(unknown)}; the config has {', '.join(known)}",
                {"sources": unknown},
            )
        yesterday = now.astimezone(UTC).date() - timedelta(days=1)
        if first > last:
            raise Invalid(f"from ({first}) is after to ({last})")
        if last > yesterday:
            raise Invalid(f"to ({last}) must be yesterday ({yesterday}) or earlier")
        chosen = [s for s in self.config.sources if not sources or source_name(s) in sources]
        days = (last - first).days + 1
        count = days * len(chosen)
        if count > self.max_reprocess:
            raise Invalid(
                f"{days} days × {len(chosen)} sources = {count} jobs; at most "
                f"{self.max_reprocess} per request"
            )
        return [
            Job(s.bucket, s.experiment, s.datatype, first + timedelta(d))
            for d in range(days)
            for s in chosen
        ]

    def reprocess(self, first: date, last: date, sources: list[str], who: str) -> Reprocessing:
        """Queue the jobs of ``sources`` (all if empty) for job dates ``first``–``last``.

        Refused (:class:`Invalid`, nothing written) for unknown sources, a range
        reaching today or later, or more than ``max_reprocess`` jobs.
        """
        now = self.clock()
        jobs = self._reprocess_jobs(first, last, sources, now)
        count = len(jobs)
        queued = self.queue.add(
            [ReprocessItem.new(job, who, now, seq) for seq, job in enumerate(jobs)]
        )
        log.info(
            "%s queued %d jobs for reprocessing (%s to %s, %s); %d were queued already",
            who,
            len(queued),
            first,
            last,
            _source_names(jobs),
            count - len(queued),
        )
        return Reprocessing(queued, count - len(queued), who, now)

    def cancel_reprocess(
        self, first: date, last: date, sources: list[str], who: str
    ) -> Cancellation:
        """Take back the queued reprocessing of ``sources`` (all if empty) for ``first``–``last``.

        Validated as :meth:`reprocess` (nothing written). Removes every item
        still queued; an item next-job has claimed is being handed out and is
        left to it (``handed_out``). Cancelling again removes nothing.
        """
        now = self.clock()
        jobs = self._reprocess_jobs(first, last, sources, now)
        cancelled, handed_out = self.queue.cancel([job.key() for job in jobs])
        log.info(
            "%s cancelled %d queued reprocessing jobs (%s to %s, %s); %d were being handed out",
            who,
            len(cancelled),
            first,
            last,
            _source_names(jobs),
            len(handed_out),
        )
        return Cancellation(cancelled, handed_out, who, now)

    # --- pauses ------------------------------------------------------------------------

    def _check_target(self, target: str) -> None:
        known = sorted({source_name(s) for s in self.config.sources})
        if target != HISTORICAL and target not in known:
            raise Invalid(
                f"unknown pause target {target!r}; use {HISTORICAL} or a source: {', '.join(known)}"
            )

    def pause(self, target: str, reason: str, who: str) -> PauseChange:
        """Pause ``historical`` or a source, or change the reason of its pause in force.

        A target paused already keeps who paused it and since when; a reason
        given replaces the one in force, and the pause records who changed it
        and when (``previous_reason`` says what it was); without a reason the
        pause stays as it is.
        """
        self._check_target(target)
        before, after = self.controls.pause(Pause(target, who, self.clock(), reason))
        if before is None:
            log.info("%s paused %s: %s", who, target, reason)
            return PauseChange(after)
        if after is before:  # paused again without a reason: the one in force stays
            return PauseChange(after)
        log.info(
            "%s changed the reason of the pause of %s (by %s since %s) from %r to %r",
            who,
            target,
            after.who,
            format_time(after.since),
            before.reason,
            reason,
        )
        return PauseChange(after, before.reason)

    def resume(self, target: str, who: str) -> Pause:
        """Lift the pause of ``target``; return it. :class:`Conflict` if it was not paused."""
        self._check_target(target)
        lifted = self.controls.resume(target)
        if lifted is None:
            raise Conflict(f"{target} is not paused")
        log.info(
            "%s resumed %s (paused by %s since %s)",
            who,
            target,
            lifted.who,
            format_time(lifted.since),
        )
        return lifted

    def controls_in_force(self) -> Controls:
        """Return the pauses in force and the reprocessing queue (its size and head)."""
        pauses = {p.target: p for p in self.controls.all()}
        sources = sorted({source_name(s) for s in self.config.sources})
        return Controls(
            historical=pauses.get(HISTORICAL),
            sources=[(s, pauses.get(s)) for s in sources],
            reprocess_queued=self.queue.count(),
            reprocess_next=list(self.queue.stream(10)),
        )

    # --- snapshots ---------------------------------------------------------------------

    def export_snapshot(self, who: str) -> Exported:
        """Write a snapshot now to the configured bucket; :class:`Conflict` if none is configured."""
        if self.export is None:
            raise Conflict("no snapshot bucket is configured (set SNAPSHOT_BUCKET)")
        result = self.export(self.clock())
        log.info("%s exported a snapshot: %s", who, result.get("object"))
        return Exported(result, who)

    def import_snapshot(self, source: str, who: str) -> Imported:
        """Create the jobs of snapshot ``source`` (``gs://…``) that Firestore lacks.

        A malformed file is refused (:class:`Invalid`, every problem listed,
        nothing written); a Firestore failure mid-way raises :class:`Unavailable`
        with the keys created and not written.
        """
        from google.api_core import exceptions as gexc

        from shared.snapshot import ImportInterrupted, SnapshotError

        if self.load is None:
            raise Conflict("snapshot import is not available here")
        try:
            snapshot = self.load(source)
        except SnapshotError as exc:
            raise Invalid(str(exc), {"problems": exc.problems}) from None
        except (FileNotFoundError, gexc.NotFound):
            raise Invalid(f"no such snapshot object {source}") from None
        try:
            result = self.tracker.import_records(snapshot)
        except ImportInterrupted as exc:
            raise Unavailable(
                str(exc),
                {
                    "Created": exc.created,
                    "AlreadyPresent": exc.already_present,
                    "NotWritten": exc.not_written,
                },
            ) from exc
        finally:
            close = getattr(snapshot, "close", None)  # a spooled snapshot's temporary files
            if close is not None:
                close()
        log.info(
            "%s imported %s: %d created, %d already present",
            who,
            source,
            result.created,
            result.already_present,
        )
        return Imported(source, result, who)
