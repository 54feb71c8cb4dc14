"""The job service: which job ``next`` hands out, exactly once.

Order: first ended jobs whose turn came while they were in flight (newest
date first, so daily ones first; a failed one waits for its retry backoff),
then failed jobs due a retry (newest date first; bounded attempts with
backoff, :class:`shared.tracker.RetryPolicy`), then the daily stream, then
the operator's queued reprocessing, then the historical stream
(:mod:`shared.streams`). A candidate, owed runs included, is handed out
only if GCS holds at least one object under its prefix, and an owed run only
if its source is still in the config. The operator's pauses are honoured: a
paused source is passed over everywhere (its owed runs paged past), a paused
historical cycle not walked.

Exactly once, without a hot cursor: the job document itself is the lock.
Creating it is a create-only write, and restarting a finished one is a
compare-and-set, so of any number of concurrent callers exactly one hands a
given offer out; the others see the job carries that offer and move on. The
stream cursors are forward-only hints (``Maximum``): every position below a
cursor has been resolved — handed out, found without files, or found in flight
and marked to be offered again — so a crash or restart repeats at most a look
at a candidate, never a hand-out, and skips nothing. A caller that loses a
candidate to another jumps a random stretch ahead (hand-outs ahead of the
cursor are noted in the cursor document), and a stream that came a whole
cycle round without a hand-out rests for the config's polling interval.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import random
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from shared import defaults
from shared.config import Config
from shared.errors import JobAlreadyExists, JobNotFound, Unavailable
from shared.gcs import ArchiveLister
from shared.gotime import format_duration, format_time
from shared.model import AuditEntry, Job, JobRecord, ReprocessItem, source_name
from shared.store import ControlStore, CursorState, CursorStore, OwedHint, ReprocessQueue
from shared.streams import Candidate, Position, Stream, candidate, initial_position, next_cycle_at
from shared.tracker import Clock, Tracker
from shared.transitions import TERMINAL

log = logging.getLogger(__name__)

#: Offer id prefix of a retry of a failed job: ``retry/2`` is its second attempt.
RETRY = "retry"

#: Offer id prefix of an operator's reprocessing: ``reprocess/<token of the queued item>``.
REPROCESS = "reprocess"

#: The pause target that stops the historical stream (sources are paused by ``experiment/datatype``).
HISTORICAL = "historical"

#: Who drops an owed run whose source left the config or whose files are gone (on the job's audit).
DROPPED_BY = "next-job"

#: Who a daily job deferred by a pause is queued for reprocessing by.
DEFERRED_BY = "next-job (source paused)"


def _came_round(start: Position, position: Position) -> bool:
    """Whether a walk from ``start`` has gone a whole cycle round to where it began."""
    return position.cycle > start.cycle + 1 or (
        position.cycle > start.cycle
        and (position.day, position.source) >= (start.day, start.source)
    )


class JobService:
    """Hands out jobs from the config's sources; keeps nothing in memory."""

    def __init__(
        self,
        tracker: Tracker,
        cursors: CursorStore,
        archives: ArchiveLister,
        config: Config,
        clock: Clock | None = None,
        max_steps: int = defaults.MAX_STEPS,
        queue: ReprocessQueue | None = None,
        controls: ControlStore | None = None,
        rng: random.Random | None = None,
        spread: int = defaults.SPREAD,
        owed_recheck: timedelta = defaults.OWED_RECHECK,
    ) -> None:
        self.tracker = tracker
        self.cursors = cursors
        self.archives = archives
        self.config = config
        self.clock = clock or tracker.clock
        self.max_steps = max_steps
        self.queue = queue
        self.controls = controls
        if spread < 1:
            raise ValueError(f"spread must be at least 1, got {spread}")
        self.rng = rng or random.Random()
        self.spread = spread
        #: The owed-run queries run at least this often, whatever the owed-runs hint says.
        self.owed_recheck = owed_recheck

    def next_job(self) -> JobRecord | None:
        """Hand out the next job, or return None if no job is available now.

        Order: owed runs, the daily stream, queued reprocessing, the historical
        stream. Paused sources are passed over everywhere (a daily job of a
        paused source is queued for reprocessing, so it runs after the
        resume); a paused historical cycle is not walked.
        """
        states, hint = self.cursors.states_and_hint([s.value for s in Stream])
        paused = self.paused(hint)
        started, steps = self._owed(paused, hint)
        if started:
            return started
        started, steps = self._from_stream(Stream.DAILY, steps, paused, states[Stream.DAILY.value])
        if started:
            return started
        started, steps = self._reprocess(steps, paused, hint)
        if started or HISTORICAL in paused:
            return started
        historical = states[Stream.HISTORICAL.value]
        return self._from_stream(Stream.HISTORICAL, steps, paused, historical)[0]

    def paused(self, hint: OwedHint | None = None) -> frozenset[str]:
        """Return the pause targets in force: ``historical`` and source names (one query).

        No query while the ``hint`` (as read; None: unknown) says no pause is
        in force; none found is noted on it.
        """
        if self.controls is None:
            return frozenset()
        now = self.clock()
        hint = hint or OwedHint()
        if not hint.paused(now, self.owed_recheck):
            return frozenset()
        paused = frozenset(p.target for p in self.controls.all())
        if not paused:
            with contextlib.suppress(Unavailable):  # a hint only: the next request looks again
                self.controls.found_none(hint, now)
        return paused

    def _owed(
        self, paused: frozenset[str] = frozenset(), hint: OwedHint | None = None
    ) -> tuple[JobRecord | None, int]:
        """Restart the first ended job owed a run: a re-offer, else a retry that is due.

        Three queries, each read a page at a time: complete jobs owed a
        re-offer, failed jobs not retried automatically but owed one, then
        failed jobs due a retry (as their re-offer if they owe one, else
        ``retry/N``); within a page the newest date first. While a source is
        paused, the queries ask for each unpaused source of the config in
        turn (one page each), so however many runs a paused source owes, the
        others' are found. A run whose source is no longer in the config, or
        whose prefix holds no files, is dropped (:meth:`_check_owed`), so it
        never fills a page. Returns the job handed out (or None) and the GCS
        checks made.

        Only the queries the owed-runs ``hint`` (as read; None: unknown)
        allows are run, none while it says nothing can be owed; when those
        find nothing and no source is paused, the hint is cleared
        (:mod:`shared.store.owed`).
        """
        now = self.clock()
        hint = hint or OwedHint()
        reoffers, retries = hint.queries(now, self.owed_recheck)
        if not (reoffers or retries):
            return None, 0  # nothing can be owed now: no query
        if paused - {HISTORICAL}:
            scopes: list[tuple[str, str] | None] = list(
                dict.fromkeys(
                    (s.experiment, s.datatype)
                    for s in self.config.sources
                    if source_name(s) not in paused
                )
            )
            pages = 1
        else:
            scopes, pages = [None], defaults.OWED_PAGES
        steps, found = 0, False
        for scope in scopes:
            batch = defaults.REOFFER_BATCH
            queries: list[tuple[Callable[[JobRecord | None], Iterable[JobRecord]], bool]] = []
            if reoffers:
                queries += [
                    (functools.partial(self.tracker.pending_reoffers, batch, source=scope), False),
                    (
                        functools.partial(self.tracker.unretried_reoffers, batch, source=scope),
                        False,
                    ),
                ]
            if retries:
                queries.append(
                    (functools.partial(self.tracker.retryable, now, batch, source=scope), True)
                )
            for query, retry in queries:
                after: JobRecord | None = None
                for _ in range(pages):
                    page = list(query(after))
                    found = found or bool(page)
                    for record in sorted(page, key=lambda r: r.job.date, reverse=True):
                        if record.job.source in paused:
                            continue
                        if steps >= self.max_steps:
                            return None, steps
                        offer = record.reoffer or (
                            f"{RETRY}/{record.attempts + 1}" if retry else ""
                        )
                        steps += 1
                        job = self._check_owed(record, offer)
                        if job is None:
                            continue
                        try:
                            started = self.tracker.add_job(job, offer)
                        except JobAlreadyExists:
                            continue  # another caller restarted it first
                        log.info(
                            "handing out %s again as %s, attempt %d",
                            started.key,
                            offer,
                            started.attempts,
                        )
                        return started, steps
                    if len(page) < batch:
                        break
                    after = page[-1]
        if not found and scopes == [None]:  # a paused source's owed runs were not asked for
            self._clear_owed(hint, now)
        return None, steps

    def _clear_owed(self, hint: OwedHint, now: datetime) -> None:
        """Clear the owed-runs hint read as ``hint``: the queries allowed found nothing."""
        try:
            cleared = self.tracker.clear_owed_hint(hint, now)
        except Unavailable as exc:  # a hint only: the next request asks again
            log.warning("the owed-runs hint was not cleared (%s)", exc)
            return
        if cleared:
            log.info("nothing owed: the owed-run queries rest until a run is owed")

    def _check_owed(self, record: JobRecord, offer: str) -> Job | None:
        """Return the job to run for an owed ``offer``, with its source's current settings.

        None, after dropping what the job is owed (recorded on its audit), if
        its source is no longer in the config or its prefix holds no files: like
        a stream candidate without files it is passed over; a stream offers it
        again when files come.
        """
        name = record.job.source
        source = next(
            (
                s
                for s in self.config.sources
                if (s.bucket, source_name(s)) == (record.job.bucket, name)
            ),
            None,
        )
        if source is None:
            why = f"{offer} dropped: source {record.job.bucket}/{name} is not in the config"
            self.tracker.drop_owed(record.key, record, why, DROPPED_BY)
            return None
        job = Job(
            record.job.bucket,
            record.job.experiment,
            record.job.datatype,
            record.job.date,
            source.filter,
            source.datasets,
        )
        if not self.archives.has_files(job.bucket, job.prefix()):
            self.tracker.drop_owed(
                record.key, record, f"{offer} dropped: no files under {job.path()}", DROPPED_BY
            )
            return None
        return job

    def _reprocess(
        self, steps: int, paused: frozenset[str], hint: OwedHint | None = None
    ) -> tuple[JobRecord | None, int]:
        """Hand out the first queued reprocessing of a source that is not paused.

        Exactly once: the item is first claimed (an update guarded by its
        update time, which an operator's cancel, a delete guarded the same
        way, cannot both win); the hand-out is ``add_job`` with the offer
        ``reprocess/<token>`` (create-only, or a compare-and-set restart of a
        finished job, even in its retry backoff); a caller that finds the job
        carrying that offer knows another caller handed it out. The item is
        then removed (a delete guarded by the claim's update time); a claim
        left by a caller that died is claimed again by the next one. A job in flight
        is marked to be offered again when it ends; a job without files is
        dropped from the queue.

        The queue is not read while the ``hint`` (as read; None: unknown) says
        nothing is queued; a head found empty while no source is paused is
        noted on it.
        """
        if self.queue is None:
            return None, steps
        now = self.clock()
        hint = hint or OwedHint()
        if not hint.queue(now, self.owed_recheck):
            return None, steps
        sources = sorted({source_name(s) for s in self.config.sources} - paused)
        if not sources:
            return None, steps
        by_key = {(s.bucket, s.experiment, s.datatype): s for s in self.config.sources}
        head = self.queue.head(sources, defaults.REOFFER_BATCH)
        if not head and not paused - {HISTORICAL}:
            with contextlib.suppress(Unavailable):  # a hint only: the next request looks again
                self.queue.found_empty(hint, now)
        for item in head:
            if steps >= self.max_steps:
                break
            steps += 1
            source = by_key.get((item.bucket, item.experiment, item.datatype))
            if source is None:
                log.warning(
                    "dropping queued reprocessing of %s: no such source in the config", item.key
                )
                self.queue.remove(item)
                continue
            job = source.job(item.date)
            offer = f"{REPROCESS}/{item.token}"
            if not self.archives.has_files(job.bucket, job.prefix()):
                log.info("no files under %s; dropping queued reprocessing %s", job.path(), offer)
                self.queue.remove(item)
                continue
            claimed = self.queue.claim(item, self.clock())
            if claimed is None:
                continue  # claimed by another caller, or cancelled by an operator
            item = claimed
            note = AuditEntry(
                self.clock(),
                item.who,
                "reprocess",
                f"queued {format_time(item.queued_at)}; handed out as {offer}",
            )
            try:
                started = self.tracker.add_job(job, offer, ignore_backoff=True, note=note)
            except JobAlreadyExists as exc:
                if exc.offer != offer and not exc.reoffer:
                    try:
                        self.tracker.request_reoffer(job.key(), offer)
                    except JobNotFound:
                        continue  # it ended and was removed meanwhile: the next call looks again
                self.queue.remove(item)  # handed out by another caller, or owed when it ends
                continue
            self._forget(item)
            log.info("handing out %s (%s, queued by %s)", started.key, offer, item.who)
            return started, steps
        return None, steps

    def _forget(self, item: ReprocessItem) -> None:
        """Remove a queued item whose job was just handed out; a failure does not undo the hand-out.

        The item stays claimed; the next caller claims it again, finds the job
        carrying its offer, and removes it then.
        """
        assert self.queue is not None
        try:
            self.queue.remove(item)
        except Unavailable as exc:
            log.warning(
                "queued reprocessing %s handed out but not removed (%s); the next "
                "request removes it",
                item.key,
                exc,
            )

    def _defer(self, found: Candidate) -> None:
        """Queue a paused source's daily job for reprocessing, so it runs after the resume."""
        if self.queue is None:
            return
        self.queue.add([ReprocessItem.new(found.job, DEFERRED_BY, self.clock())])
        log.info(
            "source of %s is paused; its daily job is queued for reprocessing", found.job.key()
        )

    def _from_stream(
        self,
        stream: Stream,
        steps: int,
        paused: frozenset[str] = frozenset(),
        state: CursorState | None = None,
    ) -> tuple[JobRecord | None, int]:
        """Walk the stream from its cursor, counting ``steps``; advance the cursor past what was resolved.

        A caller that loses a candidate to another jumps a random number of
        candidates (below ``spread``) ahead, so concurrent callers spread
        over different candidates instead of racing for each in turn. The
        cursor only moves past the stretch walked without a jump; a hand-out
        after a jump is noted in the cursor document, so the walkers that
        close the gap pass it over. A stream that came a whole cycle round
        without a hand-out is not walked again for the config's polling
        interval. A historical cycle starts only once the config's
        ``min_cycle_interval`` has passed since the previous one started; until
        then the walk stops at the end of the cycle and the stream rests.
        ``state``: the cursor as read at the start of the request (None: read it).
        Returns the job handed out (or None) and the steps taken so far.
        """
        now = self.clock()
        state = state or self.cursors.state(stream.value)
        rest = self._rest_until(stream, state, now)
        if rest is not None and now < rest:
            return None, steps
        woke = state.idle_until is not None  # its rest is over: look again for a whole cycle
        position = start = (
            Position.decode(state.position)
            if state.position is not None
            else initial_position(stream, self.config, now)
        )
        handed = set(state.handed)
        resolved: Position | None = None  # every position below it is resolved
        contiguous, busy, came_round = True, False, False
        passed: list[int] = []
        started_at: Position | None = None
        pacing = stream is Stream.HISTORICAL and self.config.min_cycle_interval > timedelta(0)
        cycle = start.cycle
        # The first walk of a paced stream starts its first cycle.
        new_cycle: int | None = cycle if pacing and state.position is None else None
        # When each cycle started, the one this walk starts included: a walk that
        # starts a cycle and reaches its end stops there too.
        cycle_started = dict(state.cycle_started)
        if new_cycle is not None:
            cycle_started[new_cycle] = now
        paced: datetime | None = None  # the next cycle may not start before this time
        try:
            while steps < self.max_steps:
                found = candidate(stream, self.config, position, now)
                if found is None:
                    break
                if pacing and found.position.cycle > cycle:
                    paced = next_cycle_at(
                        cycle_started.get(cycle), self.config.min_cycle_interval, now
                    )
                    if paced is not None:
                        break
                    new_cycle = found.position.cycle
                    cycle_started[new_cycle] = now
                cycle = found.position.cycle
                if _came_round(start, found.position):
                    came_round = True
                    break
                after = found.position.following()
                if found.position.encode() in handed:  # handed out by a caller that jumped here
                    passed.append(found.position.encode())
                    busy = True
                    resolved, position = after if contiguous else resolved, after
                    continue
                steps += 1
                if found.job.source in paused:  # passed over; a daily one is queued
                    if stream is Stream.DAILY:
                        self._defer(found)
                    resolved, position = after if contiguous else resolved, after
                    continue
                # A later cycle's job, or one behind others' hand-outs, likely exists: read it first.
                look_first = busy or found.position.cycle > 0
                started, contended = self._resolve(found, look_first)
                resolved, position = after if contiguous else resolved, after
                if started:
                    started_at = found.position
                    log.info("handing out %s (%s)", started.key, found.offer)
                    return started, steps
                if contended:  # others walk this stretch too: spread out ahead of them
                    busy = True
                    fresh = self.cursors.state(stream.value)
                    handed |= fresh.handed
                    if fresh.position is not None and Position.decode(fresh.position) > position:
                        position = Position.decode(fresh.position)
                        resolved = position if contiguous else resolved
                    jump = self._ahead(stream, position, self.rng.randrange(self.spread), now)
                    contiguous, position = contiguous and jump == position, jump
            log.info("no job in %d candidates; the next request goes on from the cursor", steps)
            return None, steps
        finally:
            try:
                self._note_walk(
                    stream,
                    state,
                    now,
                    start,
                    resolved,
                    passed,
                    started_at,
                    contiguous,
                    came_round,
                    busy,
                    woke,
                    new_cycle,
                    paced,
                )
            except Unavailable as exc:  # a hint only: a job handed out stays handed out
                log.warning(
                    "the %s cursor was not written (%s); the next request looks at "
                    "the same candidates again",
                    stream.value,
                    exc,
                )

    def _rest_until(self, stream: Stream, state: CursorState, now: datetime) -> datetime | None:
        """Return until when the stream rests (None: it does not), by the config in force.

        A rest longer than the polling interval from now is the historical
        stream's wait for its next cycle; it ends no later than the cursor's
        cycle started plus the current ``min_cycle_interval``, so an interval
        shortened or turned off mid-rest takes effect at once.
        """
        until = state.idle_until
        if (
            until is None
            or stream is not Stream.HISTORICAL
            or until <= now + self.config.polling_interval
            or state.position is None
        ):
            return until
        began = state.cycle_started.get(Position.decode(state.position).cycle)
        if began is None:
            return until
        return min(until, began + self.config.min_cycle_interval)

    def _note_walk(
        self,
        stream: Stream,
        state: CursorState,
        now: datetime,
        start: Position,
        resolved: Position | None,
        passed: list[int],
        started_at: Position | None,
        contiguous: bool,
        whole_cycle: bool,
        busy: bool,
        woke: bool,
        new_cycle: int | None = None,
        paced: datetime | None = None,
    ) -> None:
        """Write what a walk learnt to the cursor document (at most one blind write).

        The cursor moves past the contiguous stretch resolved; a hand-out ahead
        of it is noted; ``quiet_from`` moves past a hand-out (or to where a
        fruitless walk began, if unset or the stream's rest is over); a stream
        that came a whole cycle round from ``quiet_from`` without a hand-out
        rests until ``idle_until``, unless the walk met other callers' hand-outs
        (``busy``). ``new_cycle``: the cycle this walk started (its start time
        is recorded, older records dropped); ``paced``: the walk stopped at the
        end of a cycle because the next may not start before this time, and
        the stream rests until then if everything before that end is resolved.
        """
        below = resolved.encode() if resolved is not None else -1
        quiet: int | None = None
        idle: datetime | None = None
        if started_at is not None:
            quiet = started_at.following().encode()
        elif state.quiet_from is None or (woke and not whole_cycle):
            quiet = start.encode()
        elif not busy and (
            whole_cycle
            or (resolved is not None and _came_round(Position.decode(state.quiet_from), resolved))
        ):
            idle = now + self.config.polling_interval
            log.info(
                "the %s stream came a whole cycle round without a job; resting until %s",
                stream.value,
                format_time(idle),
            )
        if paced is not None and contiguous:
            idle = paced
            log.info(
                "the %s cycle ended; the next starts at %s (min_cycle_interval %s)",
                stream.value,
                format_time(paced),
                format_duration(self.config.min_cycle_interval),
            )
        self.cursors.advance(
            stream.value,
            resolved.encode() if resolved is not None else None,
            handed=started_at.encode() if started_at is not None and not contiguous else None,
            passed=[p for p in passed if p < below],
            quiet_from=quiet,
            idle_until=idle,
            wake=woke,
            cycle_started=(new_cycle, now) if new_cycle is not None else None,
            forget_cycles=(
                [c for c in state.cycle_started if c < new_cycle - 1]
                if new_cycle is not None
                else ()
            ),
        )

    def _ahead(self, stream: Stream, position: Position, n: int, now: datetime) -> Position:
        """Return the position ``n`` candidates on from ``position`` (or where the stream ends)."""
        for _ in range(n):
            found = candidate(stream, self.config, position, now)
            if found is None:
                break
            position = found.position.following()
        return position

    def _resolve(self, found: Candidate, look_first: bool = False) -> tuple[JobRecord | None, bool]:
        """Hand the candidate out if it has files and is free.

        Returns the started job (or None) and whether another caller had
        handed out this very offer. A job in flight is marked to be offered
        again when it ends. With ``look_first`` the job document is read
        before the files are listed, so a candidate handed out already or in
        flight costs one read and no GCS list.
        """
        job, offer = found.job, found.offer
        existing: JobRecord | None = None
        if look_first:
            existing = self.tracker.find_record(job.key())
        if existing is not None and existing.offer == offer:
            return None, True
        if existing is not None and existing.status.state not in TERMINAL:
            return self._mark_reoffer(found, existing.reoffer, existing.update_time)
        if not self.archives.has_files(job.bucket, job.prefix()):
            log.info("no files under %s; passing over %s", job.path(), offer)
            return None, False
        try:
            return self.tracker.add_job(job, offer), False
        except JobAlreadyExists as exc:
            if exc.offer == offer:
                return None, True
            return self._mark_reoffer(found, exc.reoffer)

    def _mark_reoffer(
        self, found: Candidate, reoffer: str, seen: datetime | None = None
    ) -> tuple[JobRecord | None, bool]:
        """Mark the candidate's job in flight to be offered again when it ends (unless it owes one).

        ``seen``: the job's update time as read in flight, if it was.
        """
        if reoffer:
            return None, False  # it already owes one more run: nothing to add
        try:
            self.tracker.request_reoffer(found.job.key(), found.offer, seen)
        except JobNotFound:
            return self._resolve(found)  # it ended and was removed meanwhile
        return None, False
