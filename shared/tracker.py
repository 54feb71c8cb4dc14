"""Tracker operations: the Go tracker's API over the Firestore job store.

Every state change is one read-write transaction that checks the transition
table, logs one line and adds to the source's totals (:func:`counted`) in the
same transaction. Same-state detail updates and heartbeats, the parsers' hot path, read
the document once and then make one single write that cannot conflict: the
detail is written for the run and the history entry that were current when the
request was read, and counts only while they still are. A hot-path write
within :data:`~shared.defaults.JOB_WRITE_INTERVAL` of the job document's last write goes to a
progress shard of the job and run instead (docs/design.md, "How a job is stored").

Parsers name the run they were handed (``run``; see :class:`~shared.model.RunId`):
a request for a run that is no longer the job's raises :class:`StaleRun` and
writes nothing. Parsers (``by=Role.PARSER``) may only set the states they own
(:data:`~shared.transitions.PARSER_STATES`).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from shared import defaults, transitions
from shared.errors import (
    IllegalTransition,
    JobAlreadyExists,
    JobNotFound,
    StaleRun,
    StoreUnavailable,
)
from shared.gotime import format_duration, format_time
from shared.limits import MAX_CLOCK_SKEW
from shared.model import (
    FREE,
    KEEP_DETAIL,
    UTC,
    AuditEntry,
    Job,
    JobFilter,
    JobRecord,
    State,
    Status,
    utcnow,
)
from shared.store import DocumentChanged, DocumentExists, DocumentMissing, JobStore, OwedHint
from shared.store.counters import Source
from shared.transitions import Role

if TYPE_CHECKING:
    from shared.snapshot import ImportResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """How often a failed job is handed out again, and after how long.

    A job may run ``max_attempts`` times in all; after its n-th failed run it
    waits ``backoff × 2^(n-1)`` before it may be handed out again.
    """

    #: Runs a job may make in all.
    max_attempts: int = defaults.RETRY_MAX_ATTEMPTS
    #: Wait after the first failed run; doubled after each further one.
    backoff: timedelta = defaults.RETRY_BACKOFF

    def retry_at(self, attempts: int, failed_at: datetime) -> datetime | None:
        """When a job that failed its ``attempts``-th run may run again; None if never."""
        if attempts >= self.max_attempts:
            return None
        factor: float = 2 ** (attempts - 1)  # int, or a fraction when attempts < 1
        return failed_at + self.backoff * factor


Clock = Callable[[], datetime]

#: A change made within a transaction: gets the record as read and the time, changes the
#: record in place, and may raise to write nothing.
Change = Callable[[JobRecord, datetime], None]

_TICK = timedelta(microseconds=1)
#: The filter of every job: the default of listings and counts.
_ALL_JOBS = JobFilter()


#: The totals of state changes kept per source: hand-outs, completions, failures.
STARTED, COMPLETED, FAILED = "started", "completed", "failed"


def counted(old: State | None, new: State) -> tuple[str, ...]:
    """Name the totals that a change from ``old`` (None: a new job) to ``new`` adds one to.

    ``started`` counts a hand-out (a new job, or a finished one started again),
    ``completed`` a change into ``complete``, ``failed`` a change into ``failed``.
    """
    if new is old:
        return ()
    if new is State.COMPLETE:
        return (COMPLETED,)
    if new is State.FAILED:
        return (FAILED,)
    if old is None or old in transitions.TERMINAL:
        return (STARTED,)
    return ()


def log_state_change(key: str, old: State | None, new: State, detail: str = "") -> None:
    """Log one line for a job's change of state: fields ``job``, ``old_state``, ``new_state``, ``detail``.

    Every state change passes here once: a job created or restarted
    (``old`` None or terminal, ``new`` init) and every transaction that
    changes the state (updates, errors, expiry, post-processing, operators).
    """
    was = old.value if old is not None else "new"
    log.info(
        "job %s: %s -> %s%s",
        key,
        was,
        new.value,
        f" ({detail})" if detail else "",
        extra={
            "job": key,
            "old_state": old.value if old is not None else None,
            "new_state": new.value,
            **({"detail": detail} if detail else {}),
        },
    )


def _of_source(source: Source | None) -> dict[str, str] | None:
    """The equality filters that select the jobs of ``source`` (experiment, datatype); None: all."""
    if source is None:
        return None
    experiment, datatype = source
    return {"experiment": experiment, "datatype": datatype}


class _StillAlive(Exception):
    """Aborts an expiry transaction: the job showed life since the query."""


class _NotOwed(Exception):
    """Aborts dropping an owed run: the job changed since the query."""


class LeaseLost(Exception):
    """The job is no longer the one a tick claimed; nothing was written.

    Its lease ran out and another tick holds it, or the job left the claimed
    state meanwhile (expired, failed by an operator or a parser, restarted),
    which clears the lease.
    """


class Tracker:
    """Job tracker operations on a :class:`JobStore`; holds no job state in memory."""

    def __init__(
        self,
        store: JobStore,
        clock: Clock = utcnow,
        heartbeat_coalesce: timedelta = defaults.HEARTBEAT_COALESCE,
        retry: RetryPolicy = RetryPolicy(),
        job_write_interval: timedelta = defaults.JOB_WRITE_INTERVAL,
    ) -> None:
        self.store = store
        self.clock = clock
        self.heartbeat_coalesce = heartbeat_coalesce
        self.retry = retry
        #: Least time between two hot-path writes of one job document (0: every one writes it).
        self.job_write_interval = job_write_interval

    def _record(self, key: str, run: str | None = None, progress: bool = False) -> JobRecord:
        record = self.store.get(key, progress=progress)
        if record is None:
            raise JobNotFound(key)
        self._check_run(record, run)
        return record

    @staticmethod
    def _check_run(record: JobRecord, run: str | None) -> None:
        """Raise :class:`StaleRun` unless ``run`` is None (no fencing) or the job's current run."""
        if run is not None and run != record.run:
            raise StaleRun(record.key, run, record.run, format_time(record.status.start_time))

    def add_job(
        self,
        job: Job,
        offer: str = "",
        *,
        ignore_backoff: bool = False,
        note: AuditEntry | None = None,
    ) -> JobRecord:
        """Start tracking ``job`` with a fresh status, as handed out by ``offer`` (if any).

        A complete or failed job with the same key is restarted (its document is
        replaced by compare-and-set on its update time) unless ``offer`` is the
        offer that started it, or an offer comes for a failed job still in its
        retry backoff; any other existing job raises :class:`JobAlreadyExists`.
        Of concurrent callers exactly one succeeds. Restarting a failed job
        counts one more attempt and keeps its error in ``last_error``;
        restarting a complete one starts counting afresh. Either way the run
        that ended is kept, summarised, in ``runs`` (bounded). ``ignore_backoff``
        restarts a failed job even within its backoff (operator reprocessing);
        ``note`` is added to the job's audit, which a restart keeps.
        """
        for _ in range(3):
            record = JobRecord.new(job, self.clock(), offer)
            if note is not None:
                record.note(note)
            try:
                self.store.create(record, count=counted(None, State.INIT))
                log_state_change(record.key, None, State.INIT, f"offer {offer}" if offer else "")
                return record
            except DocumentExists:
                pass
            existing = self.store.get(record.key)
            if existing is None or existing.update_time is None:
                continue  # removed meanwhile: create it again
            state = existing.status.state
            if (
                state not in transitions.TERMINAL
                or (offer and existing.offer == offer)
                or (
                    offer
                    and not ignore_backoff
                    and existing.retry_at
                    and existing.retry_at > record.last_update
                )
            ):
                raise JobAlreadyExists(record.key, state, existing.offer, existing.reoffer)
            if state is State.FAILED:
                record.attempts = existing.attempts + 1
                record.last_error = existing.status.error
            record.audit = existing.audit
            record.keep_run(existing)
            if note is not None:
                record.note(note)
            try:
                self.store.replace(
                    record,
                    if_update_time=existing.update_time,
                    count=counted(state, State.INIT),
                    replacing=state,
                )
            except DocumentChanged:
                continue  # someone else wrote it first: look again
            log_state_change(
                record.key,
                state,
                State.INIT,
                f"restarted by offer {offer}, attempt {record.attempts}"
                if offer
                else f"restarted, attempt {record.attempts}",
            )
            return record
        raise JobAlreadyExists(record.key, State.INIT, offer)

    def request_reoffer(self, key: str, offer: str, seen: datetime | None = None) -> None:
        """Ask that the in-flight job be offered again as ``offer`` once it is complete or failed.

        The transaction that ends the job then notes the re-offer on the
        owed-runs hint. ``seen``: the job's update time as read in flight; the
        mark is then written only if the job is unchanged since, so it is known
        to land before the job ends. Otherwise, or if the job changed, the mark
        is written blindly and the job read again (one read): a mark that landed
        on a job that had just ended is noted on the hint here.
        """
        if seen is not None:
            try:
                self.store.write_reoffer(key, offer, if_update_time=seen)
                log.info("job %s is in flight; %s will offer it again when it ends", key, offer)
                return
            except DocumentChanged:
                pass  # changed (or gone) since it was read: mark it blindly, then look
        try:
            self.store.write_reoffer(key, offer)
        except DocumentMissing:
            raise JobNotFound(key) from None
        log.info("job %s is in flight; %s will offer it again when it ends", key, offer)
        marked = self.store.get(key)
        if marked is not None:
            self.store.note_owed([marked])

    def clear_owed_hint(self, read: OwedHint, now: datetime) -> bool:
        """Record on the hint that nothing is owed at ``now``, and when the next retry is due.

        For a caller whose owed-run queries, made after it read the hint as
        ``read``, found nothing. One query and one write, refused (False) if a
        run was made owed since ``read``.
        """
        return self.store.owed.clear(read, self.store.earliest_retry(), now)

    def pending_reoffers(
        self, limit: int, after: JobRecord | None = None, source: Source | None = None
    ) -> Iterator[JobRecord]:
        """Stream complete jobs that wait to be offered again, a page after ``after``.

        ``source``: only jobs of this (experiment, datatype).
        """
        return self.store.query_reoffers(State.COMPLETE, limit, after, equal=_of_source(source))

    def unretried_reoffers(
        self, limit: int, after: JobRecord | None = None, source: Source | None = None
    ) -> Iterator[JobRecord]:
        """Stream failed jobs that are not retried automatically but wait to be offered again.

        A failed job with a retry time comes with :meth:`retryable` once it is
        due. ``source``: only jobs of this (experiment, datatype).
        """
        return self.store.query_reoffers(
            State.FAILED, limit, after, no_retry=True, equal=_of_source(source)
        )

    def drop_owed(self, key: str, owed: JobRecord, why: str, who: str) -> bool:
        """Drop the run the ended job ``owed`` (a re-offer, a retry), recording ``why`` on its audit.

        One transaction; it writes nothing and returns False if the job is gone,
        in flight again or owes another run since ``owed`` was read.
        """

        def change(rec: JobRecord, now: datetime) -> None:
            if rec.status.state not in transitions.TERMINAL or (rec.reoffer, rec.retry_at) != (
                owed.reoffer,
                owed.retry_at,
            ):
                raise _NotOwed(key)
            rec.reoffer, rec.retry_at = "", None
            rec.note(AuditEntry(now, who, "drop", why))

        try:
            self.administer(key, change)
        except (_NotOwed, JobNotFound):
            return False
        log.warning("job %s: %s", key, why)
        return True

    def set_status(
        self,
        key: str,
        state: State,
        detail: str = "",
        *,
        by: Role = Role.OPERATOR,
        run: str | None = None,
    ) -> State:
        """Apply ``detail`` to the current state entry, then move to ``state`` if it differs.

        Same state: a detail-only update (one read, one blind write). Another
        state: one transaction checked against the transition table; an illegal
        change raises :class:`IllegalTransition` and writes nothing. Either way
        the update count grows by one. Returns the state before the update.
        A parser (``by``) that asks for a state it does not own, or updates a
        job in one, gets :class:`NotParserState`; a ``run`` that is not the
        job's current run gets :class:`StaleRun`; neither writes anything.
        """
        record = self._record(key, run)
        current = record.status.state
        transitions.check(key, current, state, by)
        if state is current:
            self._write_detail(record, detail)
            return current

        def change(rec: JobRecord, now: datetime) -> None:
            self._check_run(rec, run)
            transitions.check(key, rec.status.state, state, by)
            self.move(rec, state, detail, now)

        return self._transact(key, change)[0]

    def set_detail(self, key: str, detail: str) -> None:
        """Set the current state entry's detail (``-`` keeps the text) and count an update."""
        record = self._record(key)
        transitions.check(key, record.status.state, record.status.state)
        self._write_detail(record, detail)

    def _due(self, record: JobRecord) -> datetime | None:
        """The job document's update time if the hot path may write it again, else None.

        It may once the last write is ``job_write_interval`` old (the wall
        clock against Firestore's update time); the store then writes it only
        if still unchanged, so of concurrent callers one does.
        """
        written = record.update_time
        if written is None or datetime.now(UTC) - written < self.job_write_interval:
            return None
        return written

    def _write_detail(self, record: JobRecord, detail: str) -> None:
        text = None if detail == KEEP_DETAIL else detail
        index = record.status.current_index
        now = self.clock()
        due = self._due(record)
        summed = record.progress_summed_at
        try:
            self.store.write_detail(
                record.key,
                record.run,
                index,
                text,
                now,
                due=due,
                sum_shards=summed is None or now - summed >= defaults.SHARD_SUM_INTERVAL,
            )
        except DocumentMissing:
            raise JobNotFound(record.key) from None

    def heartbeat(self, key: str, run: str | None = None) -> bool:
        """Record that the job's parser is alive; return whether a write was made.

        A heartbeat within the coalescing window of the job's last recorded
        activity (a heartbeat or an update on the job document) is
        acknowledged without a write: the job is known to be alive. A terminal job raises
        :class:`IllegalTransition`, a ``run`` that is not the job's current run
        :class:`StaleRun`.
        """
        record = self._record(key, run)
        state = record.status.state
        if state in transitions.TERMINAL:
            again = "gardener retry" if state is State.FAILED else "gardener reprocess"
            raise IllegalTransition(
                key,
                state,
                state,
                terminal=True,
                message=f"job {key} is {state.value}, a terminal state: its run is over and there "
                f"is nothing to keep alive: stop working on it and ask for the next job "
                f"(an operator runs it again with {again})",
            )
        now = self.clock()
        if now - record.last_activity < self.heartbeat_coalesce:
            return False
        try:
            self.store.write_heartbeat(key, now, record.run, due=self._due(record))
        except DocumentMissing:
            raise JobNotFound(key) from None
        return True

    def set_job_error(self, key: str, error: str) -> State:
        """Mark the job ``failed`` with detail ``"{old state}: {error}"``; return the old state.

        Like the Go tracker, this does not count as an update.
        """

        def change(rec: JobRecord, now: datetime) -> None:
            self.fail(rec, f"{rec.status.state.value}: {error}", now)

        return self._transact(key, change)[0]

    def administer(self, key: str, change: Change) -> tuple[State, JobRecord]:
        """Apply an operator's ``change`` in one transaction; return the state before and the record after.

        ``change`` gets the record and the time, decides everything itself
        (no retry time is set for it) and may raise to write nothing.
        """
        return self._transact(key, change, set_retry=False)

    def _transact(
        self, key: str, change: Change, *, set_retry: bool = True
    ) -> tuple[State, JobRecord]:
        """Apply ``change`` in one transaction that also counts it; log a change of state once.

        ``change`` gets the record as read and the time, changes the record in
        place and may raise to write nothing; it may run more than once if the
        transaction is retried. With ``set_retry``, a job it makes failed gets
        its retry time from the :class:`RetryPolicy`. Returns the state before
        and the record after.
        """
        before: list[State] = []

        def apply(rec: JobRecord) -> JobRecord:
            was = rec.status.state
            before[:] = [was]
            change(rec, self.clock())
            if set_retry and rec.status.state is State.FAILED and was is not State.FAILED:
                rec.retry_at = self.retry.retry_at(rec.attempts, rec.last_update)
            return rec

        try:
            after = self.store.transact(
                key, apply, count=lambda rec: counted(before[0], rec.status.state)
            )
        except DocumentMissing:
            raise JobNotFound(key) from None
        if after.status.state is not before[0]:
            reason = after.status.detail if after.status.state is State.FAILED else ""
            log_state_change(key, before[0], after.status.state, reason)
        return before[0], after

    def expire_stale(
        self, cutoff: datetime, limit: int, not_expired: dict[str, str] | None = None
    ) -> list[str]:
        """Fail every job in flight whose last activity is before ``cutoff``; return their keys.

        A stale job this run cannot expire (Firestore unavailable for it, say its
        document still locked) is left to the next run, logged and, when
        ``not_expired`` is given, added to it with why; the others go on.

        Each is one transaction that looks again: a job that heartbeated or
        changed state since the query is left alone. The detail says why:
        ``expired in parsing: no heartbeat or update since 2026-11-27T10:00:00Z``.
        A post-processing lease on the job is cleared (with its step job), so
        the tick that holds it drops its late result. A job whose last activity
        is more than :data:`~shared.limits.MAX_CLOCK_SKEW` ahead of the clock
        would otherwise never expire: it is failed too, with a detail that says
        so, and its heartbeat and every later time of its history brought back
        to now (so it can be exported and imported again).
        """
        in_flight = [s for s in State if s not in transitions.TERMINAL]
        expired = []
        ahead = self.clock() + MAX_CLOCK_SKEW
        for query, check in (
            (
                self.store.query_before(in_flight, "last_activity", cutoff, limit),
                lambda rec, now: self._expired(rec, cutoff, now),
            ),
            (
                self.store.query_after(in_flight, "last_activity", ahead, limit),
                lambda rec, now: self._expired_ahead(rec, ahead, now),
            ),
        ):
            found = list(query)
            random.shuffle(found)  # overlapping runs then mostly take different jobs first
            for stale in found:
                try:
                    self._transact(stale.key, check)
                    expired.append(stale.key)
                except (_StillAlive, JobNotFound):
                    continue
                except StoreUnavailable as exc:  # this job alone: the next run looks again
                    log.warning(
                        "job %s not expired this run: %s", stale.key, exc, extra={"job": stale.key}
                    )
                    if not_expired is not None:
                        not_expired[stale.key] = str(exc)
        return expired

    def _expired(self, rec: JobRecord, cutoff: datetime, now: datetime) -> None:
        old = rec.status.state
        if old in transitions.TERMINAL or rec.last_activity >= cutoff:
            raise _StillAlive(rec.key)
        since = format_time(rec.last_activity)
        self.fail(rec, f"expired in {old.value}: no heartbeat or update since {since}", now)
        self._clear_lease(rec)

    @staticmethod
    def _clear_lease(rec: JobRecord) -> None:
        """Take an expired job from the post-processing tick that holds it: its late result is dropped."""
        rec.lease_owner, rec.lease_until = "", FREE
        rec.step_job, rec.step_attempt = "", 0

    def _expired_ahead(self, rec: JobRecord, ahead: datetime, now: datetime) -> None:
        old = rec.status.state
        if old in transitions.TERMINAL or rec.last_activity <= ahead:
            raise _StillAlive(rec.key)
        self.fail(
            rec,
            f"expired in {old.value}: last activity {format_time(rec.last_activity)} "
            f"is more than {format_duration(MAX_CLOCK_SKEW)} ahead of the clock "
            "(a clock far ahead, or a corrupt value)",
            now,
        )
        rec.status.heartbeat_time = min(rec.status.heartbeat_time, now)
        rec.status.history = [
            replace(e, start=min(e.start, now), detail_time=min(e.detail_time, now))
            for e in rec.status.history
        ]
        self._clear_lease(rec)

    def remove_complete(self, cutoff: datetime, limit: int) -> int:
        """Delete complete jobs last updated before ``cutoff``; return how many.

        A job waiting to be offered again is kept until it is (the query leaves
        it out, so it never fills a batch), and one that changed since the
        query is left alone.
        """
        done = self.store.query_before(
            [State.COMPLETE], "last_update", cutoff, limit, equal={"reoffer": ""}
        )
        return sum(self.store.delete_if_unchanged(r) for r in done if not r.reoffer)

    def retryable(
        self,
        now: datetime,
        limit: int,
        after: JobRecord | None = None,
        source: Source | None = None,
    ) -> list[JobRecord]:
        """Return failed jobs whose backoff has passed, earliest due first, a page after ``after``.

        ``source``: only jobs of this (experiment, datatype).
        """
        return list(
            self.store.query_before(
                [State.FAILED], "retry_at", now + _TICK, limit, after, equal=_of_source(source)
            )
        )

    def leasable(
        self, states: list[State], now: datetime, limit: int, after: JobRecord | None = None
    ) -> Iterator[JobRecord]:
        """Stream jobs in ``states`` whose lease is free or has run out, longest free first;
        ``after``: the last job of the previous page."""
        return self.store.query_before(states, "lease_until", now + _TICK, limit, after)

    def claim(
        self, record: JobRecord, states: list[State], owner: str, until: datetime
    ) -> JobRecord | None:
        """Lease the job, as read in ``record``, to ``owner`` until ``until``; None if taken.

        Only a job in ``states`` whose lease is free is claimed, by a
        compare-and-set on its update time: of concurrent claimers exactly one
        gets it, and the others fail at once (no lock is waited for).
        """
        if record.status.state not in states or record.lease_until > self.clock():
            return None
        if not self.store.lease_if_unchanged(record, owner, until):
            return None
        record.lease_owner, record.lease_until = owner, until
        return record

    def settle(
        self,
        key: str,
        owner: str,
        change: Change,
        free_at: datetime | None = None,
        progress: bool = True,
        state: State | None = None,
    ) -> JobRecord:
        """Apply ``change`` to a job ``owner`` has leased, then release the lease.

        One transaction: it raises :class:`LeaseLost` and writes nothing if the
        lease is no longer ``owner``'s or the job is no longer in ``state``
        (the state it was claimed in, if given), so a late result never lands
        on an entry other than the claimed one. ``change`` may call :meth:`move`. A visit
        that made ``progress`` counts as a heartbeat; a mere look (a BigQuery
        job still running, a join still waiting) does not, so a job stuck there
        expires like any other. The job may be claimed again from ``free_at``
        (default: at once).
        """

        def apply(rec: JobRecord, now: datetime) -> None:
            if rec.lease_owner != owner:
                raise LeaseLost(f"{key}: no longer leased to {owner}")
            if state is not None and rec.status.state is not state:
                raise LeaseLost(f"{key}: {rec.status.state.value} now, not {state.value}")
            change(rec, now)
            if progress:
                rec.status.heartbeat_time = max(rec.status.heartbeat_time, now)
            rec.lease_owner, rec.lease_until = "", free_at or FREE

        return self._transact(key, apply)[1]

    @staticmethod
    def move(rec: JobRecord, state: State, detail: str, now: datetime) -> None:
        """Within a transaction's change: apply ``detail``, move to ``state`` (table-checked), count it.

        Like Go's ``SetStatus``: the detail goes to the entry being left, and
        a same-state move is a detail update.
        """
        transitions.check(rec.key, rec.status.state, state)
        rec.status.set_detail(detail, now)
        rec.status.new_state(state, now)
        rec.status.update_count += 1
        rec.last_update = now

    @staticmethod
    def fail(rec: JobRecord, detail: str, now: datetime) -> None:
        """Within a transaction's change: move to ``failed`` (table-checked) with ``detail`` as its error."""
        transitions.check(rec.key, rec.status.state, State.FAILED)
        rec.status.new_state(State.FAILED, now)
        rec.status.set_detail(detail, now)
        rec.last_update = now

    def get_status(self, key: str) -> Status:
        """Return the job's exact status (progress shards read); :class:`JobNotFound` if there is none."""
        return self._record(key, progress=True).status

    def get_record(self, key: str) -> JobRecord:
        """Return the job, its exact status and bookkeeping; :class:`JobNotFound` if there is none."""
        return self._record(key, progress=True)

    def get_state(self, f: JobFilter = _ALL_JOBS) -> Iterator[JobRecord]:
        """Stream the jobs ``f`` selects: by job date with a date range, else oldest start first."""
        return self.store.query(f)

    def count(self, f: JobFilter = _ALL_JOBS) -> int:
        """Return the number of jobs ``f`` selects, its limit aside (an aggregation query)."""
        return self.store.count(f)

    def counts_by_state(
        self, groups: list[tuple[str | None, str | None]]
    ) -> dict[tuple[str | None, str | None, State], int]:
        """Return the jobs of each (experiment, datatype) group in every state, from the counters.

        None in a group matches anything. One read of the counter shards
        (:class:`~shared.store.StateCountStore`), whatever the number of jobs
        and groups; a count below zero (drift the reconciliation has not yet
        repaired) shows as 0.
        """
        read = self.store.state_counts.read()
        counts: dict[tuple[str | None, str | None, State], int] = {}
        for experiment, datatype in groups:
            of = read.of(experiment, datatype)
            for state in State:
                counts[(experiment, datatype, state)] = max(0, of.get(state.value, 0))
        return counts

    def reconcile_counts(self, sources: Sequence[Source] = ()) -> dict[str, Any]:
        """Check the job counts of one source against aggregation counts, and repair any drift.

        The source is the one after the last checked, in order, among ``sources``
        and those the counters have seen, so successive runs cycle through all of
        them. The counter shards are read, each state of the source counted, and
        the shards read again: the check stands only if no shard changed between
        the two reads (every creation, deletion and change of state writes a
        shard, so the counts and the aggregation saw the same jobs). A drift
        found is added to one shard by a write guarded by that shard's update
        time, so a repair made meanwhile by an overlapping run is not made twice.
        When the counts moved, or the guarded write lost, nothing is written and
        the next run checks the same source again. Returns a summary: the source,
        the drift per state (aggregation count minus counter), whether it was
        repaired, or why the check was skipped.
        """
        counters = self.store.state_counts
        before = counters.read()
        known = sorted(set(sources) | set(before.counts))
        if not known:
            return {"source": None}
        last = counters.reconcile_cursor()
        experiment, datatype = next((s for s in known if last is None or s > last), known[0])
        name = f"{experiment}/{datatype}"
        actual = {
            state.value: self.count(JobFilter(state, experiment, datatype)) for state in State
        }
        after = counters.read()
        if any(after.shards[i][1] != before.shards[i][1] for i in counters.shard_ids()):
            log.info("count reconciliation of %s skipped: the counts moved during the check", name)
            return {"source": name, "skipped": "the counts moved during the check"}
        kept = after.of(experiment, datatype)
        drift = {
            state: n - kept.get(state, 0) for state, n in actual.items() if n != kept.get(state, 0)
        }
        if drift:
            shard = counters.shard_ids()[0]
            if not counters.repair(experiment, datatype, drift, shard, after.shards[shard][1]):
                log.info("count reconciliation of %s skipped: a counter shard changed", name)
                return {"source": name, "drift": drift, "skipped": "a counter shard changed"}
            log.warning(
                "count reconciliation of %s: repaired drift %s",
                name,
                drift,
                extra={"source": name, "drift": drift},
            )
        counters.set_reconcile_cursor(experiment, datatype)
        return {"source": name, "drift": drift, "repaired": bool(drift)}

    def num_jobs(self) -> int:
        """Return the number of tracked jobs, complete ones not yet cleaned up included."""
        return self.count()

    def num_failed(self) -> int:
        """Return the number of failed jobs."""
        return self.count(JobFilter(state=State.FAILED))

    # --- for the operator and the metrics: what they need of the store ----------------

    def totals(self) -> dict[Source, dict[str, int]]:
        """Return each source's totals (:func:`counted` names) by (experiment, datatype); one query."""
        return self.store.counters.totals()

    def oldest_in_flight(self, sources: Sequence[Source]) -> dict[Source, datetime]:
        """Return, per source with a job in flight, the start time of its oldest run in flight.

        One indexed query with limit 1 per source (a document read each), whatever the
        number of jobs.
        """
        in_flight = [s for s in State if s not in transitions.TERMINAL]
        found: dict[Source, datetime] = {}
        for experiment, datatype in sources:
            record = self.store.oldest_started(in_flight, experiment, datatype)
            if record is not None:
                found[(experiment, datatype)] = record.status.start_time
        return found

    def find_record(self, key: str) -> JobRecord | None:
        """Return the job as its document holds it, or None if there is none (one read)."""
        return self.store.get(key)

    def find_records(self, keys: Sequence[str]) -> dict[str, JobRecord]:
        """Return the jobs of ``keys`` that exist, by key: batched lookups by id, one read per key.

        No query, so its cost does not grow with the number of jobs stored.
        """
        return self.store.get_many(keys)

    def import_records(self, records: Iterable[JobRecord]) -> ImportResult:
        """Create the jobs of ``records`` the store lacks (:func:`shared.snapshot.import_snapshot`)."""
        from shared.snapshot import import_snapshot

        return import_snapshot(self.store, records)
