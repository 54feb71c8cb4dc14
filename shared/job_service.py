"""The job service: which job ``next`` hands out, exactly once.

Order: first ended jobs whose turn came while they were in flight (newest
date first, so daily ones first; a failed one waits for its retry backoff),
then failed jobs due a retry (newest date first, bounded
attempts with backoff: :class:`shared.tracker.RetryPolicy`), then the daily
stream, then the historical stream (:mod:`shared.iterators`). A candidate is handed out only if GCS holds at
least one object under its prefix.

Exactly once, without a hot cursor: the job document itself is the lock.
Creating it is a create-only write, and restarting a finished one is a
compare-and-set, so of any number of concurrent callers exactly one hands a
given offer out; the others see the job carries that offer and move on. The
stream cursors are forward-only hints (``Maximum``): every position below a
cursor has been resolved — handed out, found without files, or found in flight
and marked to be offered again — so a crash or restart repeats at most a look
at a candidate, never a hand-out, and skips nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from shared.config import Config
from shared.errors import JobAlreadyExists, JobNotFound
from shared.gcs import ArchiveLister
from shared.iterators import Candidate, Position, Stream, candidate, initial_position
from shared.store import CursorStore, JobRecord
from shared.tracker import Clock, Tracker

log = logging.getLogger(__name__)

#: Candidates (GCS checks) one request examines at most before answering
#: "no job"; with the cursors moving forward it resumes where it stopped.
MAX_STEPS = 64

#: Ended jobs waiting to be offered again (or failed jobs due a retry) one request looks at.
REOFFER_BATCH = 10

#: Offer id prefix of a retry of a failed job: ``retry/2`` is its second attempt.
RETRY = "retry"


@dataclass
class _Walk:
    steps: int = 0


def _came_round(start: Position, position: Position) -> bool:
    """Whether a walk from ``start`` has gone a whole cycle round to where it began."""
    return position.cycle > start.cycle and (position.day, position.source) >= (start.day, start.source)


class JobService:
    """Hands out jobs from the config's sources; keeps nothing in memory."""

    def __init__(
        self,
        tracker: Tracker,
        cursors: CursorStore,
        archives: ArchiveLister,
        config: Config,
        clock: Clock | None = None,
        max_steps: int = MAX_STEPS,
    ) -> None:
        self.tracker = tracker
        self.cursors = cursors
        self.archives = archives
        self.config = config
        self.clock = clock or tracker.clock
        self.max_steps = max_steps

    def next_job(self) -> JobRecord | None:
        """Hand out the next job, or return None if no job is available now."""
        walk = _Walk()
        return (self._reoffered() or self._retried() or self._from_stream(Stream.DAILY, walk)
                or self._from_stream(Stream.HISTORICAL, walk))

    def _retried(self) -> JobRecord | None:
        for failed in self.tracker.retryable(self.clock(), REOFFER_BATCH):
            offer = f"{RETRY}/{failed.attempts + 1}"
            try:
                started = self.tracker.add_job(failed.job, offer)
            except JobAlreadyExists:
                continue  # another caller retried it first
            log.info("handing out %s again, attempt %d (%s)", started.key, started.attempts,
                     started.last_error)
            return started
        return None

    def _reoffered(self) -> JobRecord | None:
        waiting = sorted(self.tracker.pending_reoffers(REOFFER_BATCH),
                         key=lambda r: r.job.date, reverse=True)
        now = self.clock()
        for record in waiting:
            if record.retry_at and record.retry_at > now:
                continue  # a failed job still in its retry backoff: owed, but not yet
            try:
                started = self.tracker.add_job(record.job, record.reoffer)
            except JobAlreadyExists:
                continue  # another caller restarted it first
            log.info("handing out %s again (%s came while it was in flight)",
                     started.key, record.reoffer)
            return started
        return None

    def _cursor(self, stream: Stream) -> Position:
        stored = self.cursors.get(stream.value)
        if stored is None:
            return initial_position(stream, self.config, self.clock())
        return Position.decode(stored)

    def _from_stream(self, stream: Stream, walk: _Walk) -> JobRecord | None:
        """Walk the stream from its cursor; advance the cursor past what was resolved."""
        position = start = self._cursor(stream)
        resolved: Position | None = None
        try:
            while walk.steps < self.max_steps:
                found = candidate(stream, self.config, position, self.clock())
                if found is None or _came_round(start, found.position):
                    return None
                walk.steps += 1
                after = found.position.following()
                started, contended = self._resolve(found)
                resolved = position = after
                if started:
                    log.info("handing out %s (%s)", started.key, found.offer)
                    return started
                if contended:  # others walk this stretch too: jump to the furthest point known
                    position = max(after, self._cursor(stream))
            log.info("no job in %d candidates; the next request goes on from the cursor",
                     walk.steps)
            return None
        finally:
            if resolved is not None:
                self.cursors.advance(stream.value, resolved.encode())

    def _resolve(self, found: Candidate) -> tuple[JobRecord | None, bool]:
        """Hand the candidate out if it has files and is free.

        Returns the started job (or None) and whether another caller had just
        handed out this very offer. A job in flight is marked to be offered
        again when it ends.
        """
        job, offer = found.job, found.offer
        if not self.archives.has_files(job.bucket, job.prefix()):
            log.info("no files under %s; passing over %s", job.path(), offer)
            return None, False
        try:
            return self.tracker.add_job(job, offer), False
        except JobAlreadyExists as exc:
            if exc.offer == offer:
                return None, True
            if exc.reoffer:
                return None, False  # it already owes one more run: nothing to add
            try:
                self.tracker.request_reoffer(job.key(), offer)
            except JobNotFound:
                return self._resolve(found)  # it ended and was removed meanwhile
            return None, False
