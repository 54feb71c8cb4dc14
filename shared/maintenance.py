"""Scheduled maintenance: expire stale jobs, remove old complete ones, export a snapshot.

One run does a bounded amount of each; runs may overlap and repeat safely:
expiry is a transaction per job that looks again, removal is a delete guarded
by the document's update time, and every snapshot goes to a new object.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.gotime import format_time
from shared.tracker import Clock, Tracker

log = logging.getLogger(__name__)

#: Default age at which a complete job is removed.
CLEANUP_DELAY = timedelta(hours=3)

#: Jobs one run expires, and complete jobs it removes, at most.
BATCH = 500

#: Writes a snapshot of every job at the given time; returns a JSON-able summary.
SnapshotWriter = Callable[[datetime], dict[str, Any]]


@dataclass(frozen=True)
class MaintenancePolicy:
    """When jobs expire and when complete jobs are removed."""

    #: A job in flight with no heartbeat or update for this long fails (config ``tracker.timeout``).
    expiration: timedelta
    #: A complete job is removed this long after its last update (``CLEANUP_DELAY``).
    cleanup_delay: timedelta = CLEANUP_DELAY


class Maintenance:
    """One maintenance run over the tracker's jobs."""

    def __init__(
        self,
        tracker: Tracker,
        policy: MaintenancePolicy,
        snapshot: SnapshotWriter | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.tracker = tracker
        self.policy = policy
        self.snapshot = snapshot
        self.clock = clock or tracker.clock

    def run(self) -> dict[str, Any]:
        """Expire, clean up and export; return (and log) a JSON summary of what was done."""
        started = time.monotonic()
        now = self.clock()
        expired = self.tracker.expire_stale(now - self.policy.expiration, BATCH)
        removed = self.tracker.remove_complete(now - self.policy.cleanup_delay, BATCH)
        snapshot = self.snapshot(now) if self.snapshot else None
        summary = {
            "time": format_time(now),
            "expired": expired,
            "removed_complete": removed,
            "snapshot": snapshot,
            "jobs": self.tracker.num_jobs(),
            "failed": self.tracker.num_failed(),
            "duration_seconds": round(time.monotonic() - started, 3),
        }
        log.info("maintenance: %d expired, %d complete removed, snapshot %s, %d jobs (%d failed)",
                 len(expired), removed, (snapshot or {}).get("object", "skipped"),
                 summary["jobs"], summary["failed"])
        return summary
