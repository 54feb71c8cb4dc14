"""The status page: how far every source has got, a date × source grid of the last days'
daily jobs, and every tracked job as an HTML table (like the Go tracker's) or JSON.

The progress and the grid come from :class:`shared.progress.Progress` (the
metrics' computation too); each grid cell links to its job's page
(:func:`job_href`), as does each row, and a failed row says when it is retried.

Below them the HTML page shows the count of jobs in each state at the top (each a link
that filters by it), plain GET filter forms, each job's full history in a
``<details>`` element, and colours rows by age: a job in flight whose last
activity is more than half (``AGING``) or three quarters (``EXPIRING``) of
the tracker timeout old stands out, as do failed jobs. It refreshes itself
every ``refresh`` seconds with a meta refresh (``refresh=0`` turns it off).
Nothing needs JavaScript, and every text from a job is escaped. The JSON
form (``format=json``) holds the same jobs as :func:`shared.web.views.job_json`,
the progress as ``Sources`` and the grid as ``Grid``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import flask

from shared import defaults
from shared.errors import Unavailable
from shared.gotime import format_duration, format_time
from shared.job_service import HISTORICAL
from shared.model import JobFilter, JobRecord, Pause, State, source_name, utcnow
from shared.progress import Overview
from shared.schemas import StatusQuery, StatusRequest
from shared.tracker import Tracker
from shared.transitions import TERMINAL
from shared.web import openapi
from shared.web.endpoint import Answer, App, Route, endpoint, json_response, parse
from shared.web.pages import span, template
from shared.web.views import expires_at, grid_json, job_json, pause_json, source_progress_json

#: States whose rows are highlighted, as in the Go tracker: waiting for a parser
#: or for post-processing.
HIGHLIGHTED = frozenset({State.INIT, State.POST_PROCESSING})

#: Fractions of the tracker timeout since the last activity at which a row turns
#: "aging" and "expiring".
AGING = 0.5
EXPIRING = 0.75

#: The job page's path (:mod:`shared.web.job_page`; the status function serves it beside
#: the status page); a job's link adds ``?id=`` and its url-quoted key.
JOB_PAGE = "/status/job"

_QUERY = StatusQuery()


def job_href(key: str) -> str:
    """The link to a job's page."""
    return f"{JOB_PAGE}?id={quote(key, safe='')}"


def state_counts(
    tracker: Tracker, experiment: str | None, datatype: str | None
) -> dict[State, int]:
    """Count the jobs in every state under the experiment and datatype filters (from the counters)."""
    counts = tracker.counts_by_state([(experiment, datatype)])
    return {state: counts[(experiment, datatype, state)] for state in State}


def age_class(record: JobRecord, timeout: timedelta | None, now: datetime) -> str:
    """The row's age colour: ``failed``, ``expiring``, ``aging``, or empty."""
    if record.status.state is State.FAILED:
        return "failed"
    if timeout is None or record.status.state in TERMINAL or timeout <= timedelta(0):
        return ""
    silent = (now - record.last_activity) / timeout
    return "expiring" if silent >= EXPIRING else "aging" if silent >= AGING else ""


def render_json(
    records: Iterable[JobRecord],
    total: int,
    filters: dict[str, Any],
    counts: Mapping[State, int] | None = None,
    timeout: timedelta | None = None,
    pauses: Iterable[Pause] = (),
    overview: Overview | None = None,
) -> dict[str, Any]:
    """Return the JSON status document; ``StateCounts`` counts every state under the
    experiment and datatype filters, ``Paused`` lists the operators' pauses in force,
    ``Sources`` says how far each source has got and ``Grid`` holds the state of each
    day's job per source (both empty without an ``overview``)."""
    jobs = [job_json(r, timeout) for r in records]
    document: dict[str, Any] = {
        "Count": total,
        "Shown": len(jobs),
        "Filters": filters,
        "Paused": [pause_json(p) for p in pauses],
        "Sources": [source_progress_json(p) for p in overview.sources] if overview else [],
        "Grid": grid_json(overview.grid) if overview else [],
        "Jobs": jobs,
    }
    if counts is not None:
        document["StateCounts"] = {state.value: n for state, n in counts.items()}
    return document


def _retry(record: JobRecord, now: datetime) -> str:
    """When a failed job is handed out again: ``retry in 8m 0s``, ``retry due``, ``not retried``."""
    if record.status.state is not State.FAILED:
        return ""
    if record.retry_at is None:
        return "not retried"
    return f"retry in {span(record.retry_at - now)}" if record.retry_at > now else "retry due"


def _pause_text(pause: Pause | None) -> str:
    if pause is None:
        return ""
    return f"by {pause.who} since {format_time(pause.since)}" + (
        f": {pause.reason}" if pause.reason else ""
    )


def _progress_rows(overview: Overview) -> list[dict[str, Any]]:
    """Every source's progress as the page's progress table shows it."""
    rows = []
    for p in overview.sources:
        daily, history = p.daily, p.historical
        yesterday = (
            "done"
            if daily.yesterday_complete
            else daily.yesterday_state.value
            if daily.yesterday_state
            else "queued"
            if daily.yesterday_queued
            else "not yet"
        )
        rows.append(
            {
                "name": source_name(p.source),
                "bucket": p.source.bucket,
                "daily": f"{daily.date:%Y-%m-%d}" if daily.date else "not started",
                "yesterday": yesterday,
                "yesterday_day": f"{daily.yesterday:%Y-%m-%d}",
                "yesterday_ok": daily.yesterday_complete,
                "yesterday_href": job_href(p.yesterday_key),
                "historical": None
                if history is None
                else {
                    "date": f"{history.date:%Y-%m-%d}" if history.date else "not started",
                    "cycle": history.cycle,
                    "percent": history.percent,
                    "paused": _pause_text(history.paused),
                },
                "paused": _pause_text(p.paused),
                "queued": p.queued,
            }
        )
    return rows


def _grid(overview: Overview) -> dict[str, Any]:
    """The date × source grid as the page shows it: a column per source, a row per day."""
    names = [source_name(p.source) for p in overview.sources]
    repeated = {n for n in names if names.count(n) > 1}
    return {
        "sources": [
            {
                "name": f"{p.source.bucket}/{name}" if name in repeated else name,
                "title": f"{p.source.bucket}/{name}",
            }
            for p, name in zip(overview.sources, names, strict=True)
        ],
        "days": [
            {
                "day": f"{row.day:%Y-%m-%d}",
                "cells": [
                    {
                        "key": cell.key,
                        "href": job_href(cell.key),
                        "state": cell.state.value if cell.state else "",
                    }
                    for cell in row.cells
                ],
            }
            for row in overview.grid
        ],
    }


def render_html(
    records: Iterable[JobRecord],
    total: int,
    filters: dict[str, Any],
    now: datetime,
    counts: Mapping[State, int] | None = None,
    timeout: timedelta | None = None,
    refresh: int = 0,
    pauses: Iterable[Pause] = (),
    overview: Overview | None = None,
    days: int = defaults.STATUS_GRID_DAYS,
) -> str:
    """Return the HTML status page; every text from a job is escaped.

    ``counts`` (jobs per state under the experiment and datatype filters) fill
    the summary at the top; ``timeout`` (the tracker timeout) colours rows by
    age; ``refresh`` is the meta-refresh period in seconds, 0 for none;
    ``pauses`` (the operators' pauses in force) show as a banner;
    ``overview`` (every source's progress and the date × source grid of
    ``days`` days) fills the progress table and the grid above the jobs.
    """
    rows = []
    for r in records:
        expiry = expires_at(r, timeout)
        retry = _retry(r, now)
        rows.append(
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
                "age": age_class(r, timeout, now),
                "last_activity": format_time(r.last_activity),
                "ago": f"{span(now - r.last_activity)} ago",
                "expires": format_time(expiry) if expiry else "",
                "expires_in": (f"in {span(expiry - now)}" if expiry > now else "due")
                if expiry
                else "",
                "retry": retry,
                "retry_at": format_time(r.retry_at) if r.retry_at else "",
                "href": job_href(r.key),
                "history": [
                    {
                        "state": h.state.value,
                        "start": f"{h.start:%Y-%m-%d %H:%M:%S}",
                        "detail_time": f"{h.detail_time:%m-%d %H:%M:%S}",
                        "detail": h.detail,
                    }
                    for h in r.status.history
                ],
            }
        )
    shown = {k: v for k, v in filters.items() if v is not None}
    base = {k: v for k, v in shown.items() if k != "state"}
    if refresh:
        base["refresh"] = refresh
    if days != defaults.STATUS_GRID_DAYS:
        base["days"] = days
    return template("status.html").render(
        rows=rows,
        total=total,
        filters=shown,
        base=base,
        counts=[(s.value, n, s in TERMINAL) for s, n in counts.items()] if counts else [],
        counted=sum(counts.values()) if counts else None,
        states=[s.value for s in State],
        generated=format_time(now),
        refresh=refresh,
        pauses=[
            {
                "target": "the historical cycle" if p.target == HISTORICAL else p.target,
                "who": p.who,
                "since": format_time(p.since),
                "reason": p.reason,
            }
            for p in pauses
        ],
        timeout=format_duration(timeout) if timeout else "",
        progress=_progress_rows(overview) if overview else None,
        grid=_grid(overview) if overview else None,
        no_refresh={
            **base,
            "refresh": 0,
            **({"state": shown["state"]} if "state" in shown else {}),
        },
    )


@endpoint(
    ["GET", "HEAD"],
    _QUERY,
    {
        200: Answer(
            "the page, or JSON with format=json",
            ("text/html", "application/json"),
            openapi.StatusAnswer(),
        )
    },
    raises=(Unavailable,),
)
def status(request: flask.Request, app: App) -> flask.Response:
    """``/status``: how far every source has got, a date × source grid and every job.

    Every job oldest first; ``?format=json``, ``state=``, ``experiment=``,
    ``datatype=``, ``days=`` (the grid's days back from yesterday). The HTML
    page shows how far each source has got and the grid at the top, counts the
    jobs of every state, colours jobs near expiry, says when a failed job is
    retried and refreshes itself every ``refresh`` seconds (0: never).
    """
    q: StatusRequest = parse(_QUERY, request)
    tracker = app.services.tracker()
    records = list(tracker.get_state(JobFilter(q.state, q.experiment, q.datatype, limit=q.limit)))
    counts = state_counts(tracker, q.experiment, q.datatype)
    total = counts[q.state] if q.state else sum(counts.values())
    shown = {
        "state": q.state.value if q.state else None,
        "experiment": q.experiment,
        "datatype": q.datatype,
    }
    timeout = app.services.tracker_timeout()
    progress = app.services.progress()
    overview = progress.overview(q.days) if progress is not None else None
    pauses = overview.pauses if overview is not None else app.services.controls().all()
    if q.format == "json":
        return json_response(render_json(records, total, shown, counts, timeout, pauses, overview))
    return flask.Response(
        render_html(
            records, total, shown, utcnow(), counts, timeout, q.refresh, pauses, overview, q.days
        ),
        mimetype="text/html",
    )


ROUTES = (Route("/status", "status", status), Route("/", "status", status))
