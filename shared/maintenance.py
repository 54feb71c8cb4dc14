"""Scheduled maintenance: expire stale jobs, remove old complete ones, reconcile the job
counts, export a snapshot.

One run does a bounded amount of each (:data:`~shared.defaults.MAINTENANCE_BATCH` jobs);
runs may overlap and repeat safely:
expiry is a transaction per job that looks again, removal is a delete guarded
by the document's update time, a count repair is a write guarded by its
shard's update time, and every snapshot goes to a new object.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared import defaults
from shared.gotime import format_time
from shared.store import TaskStore
from shared.store.counters import Source
from shared.store.tasks import MAINTAIN, SNAPSHOT
from shared.tracker import Clock, Tracker

log = logging.getLogger(__name__)

#: Writes a snapshot of every job at the given time; returns a JSON-able summary.
SnapshotWriter = Callable[[datetime], dict[str, Any]]


@dataclass(frozen=True)
class MaintenancePolicy:
    """When jobs expire and when complete jobs are removed."""

    #: A job in flight with no heartbeat or update for this long fails (config ``tracker.timeout``).
    expiration: timedelta
    #: A complete job is removed this long after its last update (``CLEANUP_DELAY``).
    cleanup_delay: timedelta = defaults.CLEANUP_DELAY


class Maintenance:
    """One maintenance run over the tracker's jobs."""

    def __init__(
        self,
        tracker: Tracker,
        policy: MaintenancePolicy,
        snapshot: SnapshotWriter | None = None,
        clock: Clock | None = None,
        sources: Sequence[Source] = (),
        tasks: TaskStore | None = None,
    ) -> None:
        self.tracker = tracker
        #: Where a run that ends records its success, and that of its snapshot (the metrics).
        self.tasks = tasks
        self.policy = policy
        self.snapshot = snapshot
        self.clock = clock or tracker.clock
        #: The config's sources; with those the counters have seen, the ones reconciled in turn.
        self.sources = list(sources)

    def run(self) -> dict[str, Any]:
        """Expire, clean up and export; return (and log) a JSON summary of what was done.

        A run that ends records its success (and its snapshot's) in ``tasks``; one that
        raises records nothing.
        """
        started = time.monotonic()
        now = self.clock()
        batch = defaults.MAINTENANCE_BATCH
        not_expired: dict[str, str] = {}
        expired = self.tracker.expire_stale(now - self.policy.expiration, batch, not_expired)
        removed = self.tracker.remove_complete(now - self.policy.cleanup_delay, batch)
        counts = reconcile_counts(self.tracker, self.sources)
        snapshot = self.snapshot(now) if self.snapshot else None
        summary = {
            "time": format_time(now),
            "expired": expired,
            "not_expired": not_expired,
            "removed_complete": removed,
            "counts": counts,
            "snapshot": snapshot,
            "jobs": self.tracker.num_jobs(),
            "failed": self.tracker.num_failed(),
            "duration_seconds": round(time.monotonic() - started, 3),
        }
        if self.tasks is not None:
            if snapshot is not None:
                self.tasks.succeeded(SNAPSHOT, now)
            self.tasks.succeeded(MAINTAIN, now)
        log.info(
            "maintenance: %d expired (%d stale left for the next run), %d complete removed, "
            "counts of %s checked (drift %s), snapshot %s, %d jobs (%d failed)",
            len(expired),
            len(not_expired),
            removed,
            counts.get("source"),
            counts.get("drift") or "none",
            (snapshot or {}).get("object", "skipped"),
            summary["jobs"],
            summary["failed"],
        )
        return summary


def reconcile_counts(tracker: Tracker, sources: Sequence[Source] = ()) -> dict[str, Any]:
    """Check the job counts of the next source in turn and repair any drift
    (:meth:`~shared.tracker.Tracker.reconcile_counts`); return a summary."""
    return tracker.reconcile_counts(sources)
