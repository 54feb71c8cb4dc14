"""The Go-shaped JSON of what the tracker holds: jobs, pauses, audit entries, queue items,
controls, every source's progress.

Every JSON body the status page and the admin API answer is built here from
the domain's objects (:mod:`shared.model`, :mod:`shared.store`,
:mod:`shared.admin`); field names follow the Go tracker's style.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from shared.admin import (
    BulkResult,
    Cancellation,
    Controls,
    Exported,
    Imported,
    PauseChange,
    Reprocessing,
)
from shared.gotime import format_time
from shared.model import (
    FREE,
    UTC,
    AuditEntry,
    JobRecord,
    Pause,
    ReprocessItem,
    State,
    midnight,
)
from shared.progress import GridDay, SourceProgress
from shared.schemas import JobSchema, RunSummarySchema, StatusSchema
from shared.transitions import TERMINAL

_JOB = JobSchema()
_STATUS = StatusSchema()
_RUNS = RunSummarySchema(many=True)

#: The latest time Firestore (and Python) can hold: an expiry beyond it is shown as it.
LATEST = datetime.max.replace(tzinfo=UTC)


def expires_at(record: JobRecord, timeout: timedelta | None) -> datetime | None:
    """When a job in flight expires if nothing more is heard from it; None if it cannot.

    A last activity so late that the sum passes year 9999 gives :data:`LATEST`.
    """
    if timeout is None or record.status.state in TERMINAL:
        return None
    try:
        return record.last_activity + timeout
    except OverflowError:
        return LATEST


def job_json(record: JobRecord, timeout: timedelta | None = None) -> dict[str, Any]:
    """Return one job as JSON: Go-shaped ``Job`` and ``Status`` plus derived fields."""
    status = record.status
    expiry = expires_at(record, timeout)
    return {
        "ID": record.key,
        "Job": _JOB.dump(record.job),
        "Status": _STATUS.dump(status),
        "State": status.state.value,
        "Label": status.label,
        "Detail": status.detail,
        "Error": status.error,
        "ElapsedSeconds": int(status.elapsed.total_seconds()),
        "LastActivity": format_time(record.last_activity),
        "Attempts": record.attempts,
        "LastError": record.last_error,
        "RetryAt": format_time(record.retry_at) if record.retry_at else None,
        "ExpiresAt": format_time(expiry) if expiry else None,
    }


def audit_json(entry: AuditEntry) -> dict[str, str]:
    """Return one audit entry as JSON."""
    return {
        "Time": format_time(entry.time),
        "Who": entry.who,
        "Action": entry.action,
        "Detail": entry.detail,
    }


def job_view(record: JobRecord, timeout: timedelta | None = None) -> dict[str, Any]:
    """Return a job as the admin API shows it: the status page's JSON (its expiry only with
    ``timeout``), bookkeeping and audit."""
    return {
        **job_json(record, timeout),
        "Offer": record.offer,
        "Reoffer": record.reoffer,
        "LeaseOwner": record.lease_owner,
        "LeaseUntil": format_time(record.lease_until) if record.lease_until != FREE else None,
        "Audit": [audit_json(a) for a in record.audit],
    }


def job_page_json(
    record: JobRecord, timeout: timedelta | None, commands: list[tuple[str, str, str]]
) -> dict[str, Any]:
    """Return one job as its page's JSON shows it: the admin view, its expiry, the current
    run's token, the earlier runs (oldest first) and the ``gardener`` commands that act on
    it, each (action, command line, what it does)."""
    return {
        **job_view(record, timeout),
        "Run": record.run,
        "Runs": _RUNS.dump(record.runs),
        "Commands": [
            {"Action": action, "Command": line, "Does": does} for action, line, does in commands
        ],
    }


def jobs_view(records: list[JobRecord]) -> dict[str, Any]:
    """Return the jobs an operator listed, as the admin API shows them."""
    return {"Shown": len(records), "Jobs": [job_view(r) for r in records]}


def failed_view(previous: State, record: JobRecord) -> dict[str, Any]:
    """Return a job an operator failed, with the state it was in."""
    return {**job_view(record), "Previous": previous.value}


def pause_json(pause: Pause | None) -> dict[str, str] | None:
    """Return an operator's pause as JSON (None when not paused); ``ReasonBy`` and
    ``ReasonAt`` only once someone changed the reason of the pause in force."""
    if pause is None:
        return None
    body = {
        "Target": pause.target,
        "Who": pause.who,
        "Since": format_time(pause.since),
        "Reason": pause.reason,
    }
    if pause.reason_by and pause.reason_at is not None:
        body |= {"ReasonBy": pause.reason_by, "ReasonAt": format_time(pause.reason_at)}
    return body


def _day(day: date | None) -> str | None:
    """A day as Go marshals a UTC midnight ``time.Time``; None stays None."""
    return None if day is None else format_time(midnight(day))


def source_progress_json(progress: SourceProgress) -> dict[str, Any]:
    """Return how far one source has got (:class:`shared.progress.SourceProgress`) as JSON."""
    daily, history = progress.daily, progress.historical
    return {
        "Bucket": progress.source.bucket,
        "Experiment": progress.source.experiment,
        "Datatype": progress.source.datatype,
        "Daily": {
            "Date": _day(daily.date),
            "Yesterday": _day(daily.yesterday),
            "YesterdayState": daily.yesterday_state.value if daily.yesterday_state else None,
            "YesterdayComplete": daily.yesterday_complete,
        },
        "Historical": None
        if history is None
        else {
            "Date": _day(history.date),
            "Cycle": history.cycle,
            "CyclePercent": history.percent,
            "Paused": pause_json(history.paused),
        },
        "Paused": pause_json(progress.paused),
        "Queued": progress.queued,
    }


def grid_json(grid: tuple[GridDay, ...]) -> list[dict[str, Any]]:
    """Return the date × source grid as JSON: per day, newest first, a job per source
    (in the order of ``Sources``), its state null where it has no document."""
    return [
        {
            "Date": _day(row.day),
            "Jobs": [
                {"ID": cell.key, "State": cell.state.value if cell.state else None}
                for cell in row.cells
            ],
        }
        for row in grid
    ]


def paused_json(change: PauseChange) -> dict[str, Any]:
    """Return a pause just made, or whose reason just changed (``PreviousReason``), as JSON."""
    body: dict[str, Any] = {"Paused": pause_json(change.pause)}
    if change.previous_reason is not None:
        body["PreviousReason"] = change.previous_reason
        body["UpdatedBy"] = change.pause.reason_by
    return body


def bulk_json(result: BulkResult) -> dict[str, Any]:
    """Return what a bulk retry or fail did (or would do, ``DryRun``) as JSON."""
    return {
        "Action": result.action,
        "DryRun": result.dry_run,
        "Who": result.who,
        "Matched": len(result.changed) + len(result.unchanged),
        "Changed": result.changed,
        "Unchanged": [{"ID": key, "Why": why} for key, why in result.unchanged],
    }


def resumed_json(pause: Pause, who: str) -> dict[str, Any]:
    """Return a pause just lifted, and who lifted it, as JSON."""
    return {"Resumed": pause_json(pause), "Who": who}


def item_json(item: ReprocessItem) -> dict[str, str]:
    """Return a queued reprocessing as JSON."""
    return {
        "ID": item.key,
        "Source": item.source,
        "Who": item.who,
        "QueuedAt": format_time(item.queued_at),
    }


def controls_json(controls: Controls) -> dict[str, Any]:
    """Return the pauses in force and the reprocessing queue's size and head as JSON."""
    return {
        "Historical": pause_json(controls.historical),
        "Sources": [{"Source": s, "Paused": pause_json(p)} for s, p in controls.sources],
        "ReprocessQueued": controls.reprocess_queued,
        "ReprocessNext": [item_json(i) for i in controls.reprocess_next],
    }


def reprocessing_json(done: Reprocessing) -> dict[str, Any]:
    """Return what a reprocessing request queued as JSON."""
    return {
        "Queued": len(done.queued),
        "AlreadyQueued": done.already_queued,
        "Jobs": done.queued,
        "Who": done.who,
        "Time": format_time(done.time),
    }


def cancellation_json(done: Cancellation) -> dict[str, Any]:
    """Return what a cancelled reprocessing took back as JSON."""
    return {
        "Cancelled": len(done.cancelled),
        "HandedOut": len(done.handed_out),
        "Jobs": done.cancelled,
        "Who": done.who,
        "Time": format_time(done.time),
    }


def exported_json(done: Exported) -> dict[str, Any]:
    """Return a snapshot written now as JSON: the export's own fields and who asked."""
    return {**done.snapshot, "Who": done.who}


def imported_json(done: Imported) -> dict[str, Any]:
    """Return what a snapshot import did as JSON."""
    r = done.result
    return {
        "Source": done.source,
        "Total": r.total,
        "Created": r.created,
        "AlreadyPresent": r.already_present,
        "Skipped": r.skipped,
        "Who": done.who,
    }
