"""The status page: every tracked job as an HTML table (like the Go tracker's) or JSON."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import jinja2

from shared.gotime import format_duration, format_time
from shared.model import State
from shared.schemas import JobSchema, StatusSchema
from shared.store import JobRecord
from shared.transitions import TERMINAL

#: States whose rows are highlighted, as in the Go tracker: waiting for a parser
#: or for post-processing.
HIGHLIGHTED = frozenset({State.INIT, State.POST_PROCESSING})

_JOB = JobSchema()
_STATUS = StatusSchema()


@functools.cache
def _template() -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("shared", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    return env.get_template("status.html")


def job_json(record: JobRecord) -> dict[str, Any]:
    """Return one job as JSON: Go-shaped ``Job`` and ``Status`` plus derived fields."""
    status = record.status
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
    }


def render_json(records: Iterable[JobRecord], total: int, filters: dict[str, Any]) -> dict[str, Any]:
    """Return the JSON status document."""
    jobs = [job_json(r) for r in records]
    return {"Count": total, "Shown": len(jobs), "Filters": filters, "Jobs": jobs}


def render_html(
    records: Iterable[JobRecord], total: int, filters: dict[str, Any], now: datetime
) -> str:
    """Return the HTML status page; every text from a job is escaped."""
    rows = [
        {
            "key": r.key,
            "job": str(r.job),
            "elapsed": format_duration(r.status.elapsed),
            "update_time": f"{r.status.detail_time:%m/%d~%H:%M:%S}",
            "state": r.status.state.value,
            "label": r.status.label,
            "detail": r.status.detail,
            "updates": r.status.update_count,
            "error": r.status.error,
            "attempts": r.attempts,
            "last_error": r.last_error,
            "highlight": r.status.state in HIGHLIGHTED,
            "terminal": r.status.state in TERMINAL,
        }
        for r in records
    ]
    return _template().render(
        rows=rows,
        total=total,
        filters={k: v for k, v in filters.items() if v is not None},
        states=[s.value for s in State],
        generated=format_time(now),
    )
