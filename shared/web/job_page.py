"""The job page, ``/status/job?id=<key>``: one job, all the tracker knows of it, and what to do.

It shows the job's full ID in a form to copy (the key, the exact string the
``gardener`` commands take), its state, its whole history, its current run and
the earlier runs kept on the job (:class:`~shared.model.RunSummary`: attempt,
offer, start, end, error and the run's history), the retry time of a failed job,
the last activity and expiry, the operators' audit, and the ``gardener``
commands that act on it in its state (:func:`shared.transitions.operator_actions`).
``format=json`` answers the same as :func:`shared.web.views.job_page_json`.
Like the status page it needs no JavaScript, escapes every text from a job and
fits a phone's width. A missing, malformed or unknown id answers a page that
says what is wrong (JSON with ``format=json``): 422, 400, 404.
"""

from __future__ import annotations

import logging
import shlex
from datetime import datetime, timedelta
from typing import Any

import flask

from shared.errors import JobNotFound, TrackerError, Unavailable
from shared.gotime import format_duration, format_time
from shared.model import JobRecord, RunSummary, State, StateInfo
from shared.schemas import JobPageQuery, JobPageRequest
from shared.transitions import TERMINAL, Action, operator_actions
from shared.web import openapi
from shared.web.endpoint import Answer, App, Route, endpoint, json_response, parse
from shared.web.errors import HttpError, status_of
from shared.web.pages import span, template
from shared.web.status import JOB_PAGE, status
from shared.web.views import expires_at, job_page_json

log = logging.getLogger(__name__)

_QUERY = JobPageQuery()

#: What each command does, by action; ``show`` is offered in every state.
_DOES = {
    "show": "show the job in the terminal (--json: the admin API's answer)",
    Action.FAIL.value: "stop the run: mark the job failed (it is not retried automatically)",
    Action.RETRY.value: "make it due now: next hands it out as the next attempt",
    Action.REPROCESS.value: "queue it to run again, ahead of the historical cycle",
}


def commands(record: JobRecord) -> list[tuple[str, str, str]]:
    """The ``gardener`` commands that act on the job in its state: (action, command line, what
    it does). ``gardener job`` always; the others as :func:`~shared.transitions.operator_actions`
    allows them."""
    key = shlex.quote(record.key)
    lines = [("show", f"gardener job {key}")]
    for action in operator_actions(record.status.state):
        if action is Action.FAIL:
            lines.append((action.value, f"gardener fail {key} --reason 'why it is stopped'"))
        elif action is Action.RETRY:
            lines.append((action.value, f"gardener retry {key}"))
        else:
            day = record.job.date.isoformat()
            source = shlex.quote(record.job.source)
            lines.append(
                (action.value, f"gardener reprocess --from {day} --to {day} --source {source}")
            )
    return [(action, line, _DOES[action]) for action, line in lines]


def _entries(
    history: list[StateInfo] | tuple[StateInfo, ...], dropped: int
) -> list[dict[str, Any]]:
    """History entries for the page, each with its absolute index (dropped ones leave a gap)."""
    return [
        {
            "index": i + dropped if i > 0 else 0,
            "state": e.state.value,
            "start": format_time(e.start),
            "detail_time": format_time(e.detail_time),
            "detail": e.detail,
        }
        for i, e in enumerate(history)
    ]


def _run(run: RunSummary) -> dict[str, Any]:
    return {
        "run": run.run or "(no token)",
        "attempt": run.attempt,
        "offer": run.offer,
        "started": format_time(run.started),
        "ended": format_time(run.ended),
        "took": format_duration(run.ended - run.started),
        "state": run.state.value,
        "error": run.error,
        "updates": run.updates,
        "dropped": run.dropped,
        "history": _entries(run.history, run.dropped),
    }


def _when(at: datetime, now: datetime) -> str:
    """``at`` relative to ``now``: ``in 3m 0s`` or ``2h 5m ago``."""
    return f"in {span(at - now)}" if at > now else f"{span(now - at)} ago"


def _retry(record: JobRecord, now: datetime) -> str:
    """When a failed job is handed out again; empty for a job that is not failed."""
    if record.status.state is not State.FAILED:
        return ""
    if record.retry_at is None:
        return "not retried (gardener retry runs it again)"
    if record.retry_at <= now:
        return f"due since {format_time(record.retry_at)}: next hands it out as the next attempt"
    return f"at {format_time(record.retry_at)} ({_when(record.retry_at, now)})"


def render_html(
    record: JobRecord, now: datetime, timeout: timedelta | None = None, max_attempts: int = 0
) -> str:
    """Return the job's page; every text from the job is escaped.

    ``timeout`` (the tracker timeout) gives the expiry of a job in flight;
    ``max_attempts`` (the retry policy's) is shown beside the attempt.
    """
    status = record.status
    expiry = expires_at(record, timeout)
    return template("job.html").render(
        error=None,
        key=record.key,
        job=str(record.job),
        source=record.job.source,
        path=record.job.path(),
        state=status.state.value,
        label=status.label,
        terminal=status.state in TERMINAL,
        detail=status.detail,
        run=record.run or "(no token)",
        offer=record.offer,
        reoffer=record.reoffer,
        attempts=record.attempts,
        max_attempts=max_attempts,
        last_error=record.last_error,
        retry=_retry(record, now),
        started=format_time(status.start_time),
        updates=status.update_count,
        elapsed=format_duration(status.elapsed),
        last_activity=format_time(record.last_activity),
        activity_ago=_when(record.last_activity, now),
        expires=format_time(expiry) if expiry else "",
        expires_in=("in " + span(expiry - now) if expiry > now else "due") if expiry else "",
        lease=f"{record.lease_owner} until {format_time(record.lease_until)}"
        if record.lease_owner
        else "",
        history=_entries(status.history, status.dropped),
        dropped=status.dropped,
        runs=[_run(r) for r in reversed(record.runs)],
        audit=[
            {"time": format_time(a.time), "who": a.who, "action": a.action, "detail": a.detail}
            for a in reversed(record.audit)
        ],
        commands=commands(record),
        generated=format_time(now),
    )


def render_error(status_code: int, message: str, asked: str) -> str:
    """Return the page of a request that names no job (``asked``: the id as given)."""
    return template("job.html").render(error=message, status=status_code, asked=asked)


@endpoint(
    ["GET", "HEAD"],
    _QUERY,
    {
        200: Answer(
            "the job's page, or JSON with format=json",
            ("text/html", "application/json"),
            openapi.JobPageAnswer(),
        ),
        400: Answer("a page saying what is malformed (JSON with format=json)", ("text/html",)),
        404: Answer("no such job: a page saying so (JSON with format=json)", ("text/html",)),
        422: Answer("no id: a page asking for one (JSON with format=json)", ("text/html",)),
        503: Answer(
            "a page saying Firestore did not answer (JSON with format=json)", ("text/html",)
        ),
    },
    raises=(404, Unavailable),
)
def job_page(request: flask.Request, app: App) -> flask.Response:
    """``/status/job?id=``: one job, its runs, audit and commands; ?format=json.

    Its full ID, state, history, earlier runs with their errors, audit, and the
    ``gardener`` commands that act on it. ``id`` is the job's key
    (``bucket/experiment/datatype/YYYYMMDD``, as the ``gardener`` commands take
    it). An unknown job answers 404.
    """
    as_json = request.args.get("format") == "json"
    try:
        q: JobPageRequest = parse(_QUERY, request)
        tracker = app.services.tracker()
        try:
            record = tracker.get_record(q.id)
        except JobNotFound:
            raise HttpError(
                404,
                f"no job {q.id}: it was never handed out, or it completed and was cleaned up since",
            ) from None
    except (HttpError, TrackerError) as exc:
        if as_json:
            raise
        code = exc.status if isinstance(exc, HttpError) else status_of(exc)
        if code >= 500:
            log.warning("%s %s: %d %s", request.method, request.path, code, exc)
        page = render_error(code, str(exc), request.args.get("id", ""))
        return flask.Response(page, status=code, mimetype="text/html")
    timeout = app.services.tracker_timeout()
    if q.format == "json":
        return json_response(job_page_json(record, timeout, commands(record)))
    page = render_html(record, tracker.clock(), timeout, tracker.retry.max_attempts)
    return flask.Response(page, mimetype="text/html")


def status_function(request: flask.Request, app: App) -> flask.Response:
    """The status function's entry: the job page at ``/status/job``, the status page at any
    other path (deployed, the function serves the status page at its root)."""
    if request.path.rstrip("/") == JOB_PAGE:
        return job_page(request, app)
    return status(request, app)


ROUTES = (Route(JOB_PAGE, "status", job_page),)
