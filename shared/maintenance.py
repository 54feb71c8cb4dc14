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
from shared.model import JobFilter, State
from shared.tracker import Clock, Tracker

log = logging.getLogger(__name__)

#: A source: (experiment, datatype).
Source = tuple[str, str]

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
    ) -> None:
        self.tracker = tracker
        self.policy = policy
        self.snapshot = snapshot
        self.clock = clock or tracker.clock
        #: The config's sources; with those the counters have seen, the ones reconciled in turn.
        self.sources = list(sources)

    def run(self) -> dict[str, Any]:
        """Expire, clean up and export; return (and log) a JSON summary of what was done."""
        started = time.monotonic()
        now = self.clock()
        batch = defaults.MAINTENANCE_BATCH
        expired = self.tracker.expire_stale(now - self.policy.expiration, batch)
        removed = self.tracker.remove_complete(now - self.policy.cleanup_delay, batch)
        counts = reconcile_counts(self.tracker, self.sources)
        snapshot = self.snapshot(now) if self.snapshot else None
        summary = {
            "time": format_time(now),
            "expired": expired,
            "removed_complete": removed,
            "counts": counts,
            "snapshot": snapshot,
            "jobs": self.tracker.num_jobs(),
            "failed": self.tracker.num_failed(),
            "duration_seconds": round(time.monotonic() - started, 3),
        }
        log.info("maintenance: %d expired, %d complete removed, counts of %s checked (drift %s), "
                 "snapshot %s, %d jobs (%d failed)",
                 len(expired), removed, counts.get("source"), counts.get("drift") or "none",
                 (snapshot or {}).get("object", "skipped"), summary["jobs"], summary["failed"])
        return summary


def reconcile_counts(tracker: Tracker, sources: Sequence[Source] = ()) -> dict[str, Any]:
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
    counters = tracker.store.state_counts
    before = counters.read()
    known = sorted(set(sources) | set(before.counts))
    if not known:
        return {"source": None}
    last = counters.reconcile_cursor()
    experiment, datatype = next((s for s in known if last is None or s > last), known[0])
    name = f"{experiment}/{datatype}"
    actual = {state.value: tracker.count(JobFilter(state, experiment, datatype)) for state in State}
    after = counters.read()
    if any(after.shards[i][1] != before.shards[i][1] for i in counters.shard_ids()):
        log.info("count reconciliation of %s skipped: the counts moved during the check", name)
        return {"source": name, "skipped": "the counts moved during the check"}
    kept = after.of(experiment, datatype)
    drift = {state: n - kept.get(state, 0) for state, n in actual.items()
             if n != kept.get(state, 0)}
    if drift:
        shard = counters.shard_ids()[0]
        if not counters.repair(experiment, datatype, drift, shard, after.shards[shard][1]):
            log.info("count reconciliation of %s skipped: a counter shard changed", name)
            return {"source": name, "drift": drift, "skipped": "a counter shard changed"}
        log.warning("count reconciliation of %s: repaired drift %s", name, drift,
                    extra={"source": name, "drift": drift})
    counters.set_reconcile_cursor(experiment, datatype)
    return {"source": name, "drift": drift, "repaired": bool(drift)}
