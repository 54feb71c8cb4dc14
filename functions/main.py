"""Cloud Functions entry points of the tracker.

Each entry point parses its parameters, calls one tracker operation and
formats the answer. ``api`` routes by path to all of them, so one base URL
serves the Go parsers' ``/v2/job/...`` paths and the status page.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import cast

import flask
import functions_framework

# The library sits beside this file in a deployed artifact and beside its
# folder in the repository; make it importable from wherever we are started.
for _dir in (Path(__file__).resolve().parent, Path(__file__).resolve().parent.parent):
    if (_dir / "shared").is_dir():
        if str(_dir) not in sys.path:
            sys.path.insert(0, str(_dir))
        break

from shared import logs, openapi, runtime, status_page  # noqa: E402
from shared import metrics as prometheus_metrics  # noqa: E402
from shared.admin_http import ADMIN_HANDLERS, ADMIN_ROUTES  # noqa: E402
from shared.config import ConfigError  # noqa: E402
from shared.http_api import (  # noqa: E402
    Answer,
    endpoint,
    error_response,
    json_response,
    parse,
)
from shared.model import JobFilter, RunId, State, utcnow  # noqa: E402
from shared.schemas import (  # noqa: E402
    ErrorParams,
    HeartbeatParams,
    JobSchema,
    StatusQuery,
    UpdateParams,
)
from shared.transitions import Role  # noqa: E402

logs.setup()

_UPDATE, _HEARTBEAT, _ERROR, _STATUS = UpdateParams(), HeartbeatParams(), ErrorParams(), StatusQuery()
_JOB = JobSchema()

#: The Go tracker's answer when there is no job, and when to ask again (seconds).
NO_JOB_FOUND = "No job found. Try again."
NO_JOB_RETRY_AFTER = 10


@functions_framework.http
@endpoint(["POST"], _UPDATE, {200: Answer("the new and previous state",
                                             schema=openapi.UpdateAnswer())})
def update(request: flask.Request) -> flask.Response:
    """``/v2/job/update?id=&state=&detail=``: report progress or a new state (parser states only)."""
    p = parse(_UPDATE, request)
    job_id: RunId = p["id"]
    previous = runtime.tracker().set_status(job_id.key, p["state"], p["detail"],
                                            by=Role.PARSER, run=job_id.run)
    return json_response({"ID": str(job_id), "State": p["state"].value, "Previous": previous.value})


@functions_framework.http
@endpoint(["POST"], _HEARTBEAT, {200: Answer("acknowledged", schema=openapi.HeartbeatAnswer())})
def heartbeat(request: flask.Request) -> flask.Response:
    """``/v2/job/heartbeat?id=``: prove the job's parser is alive."""
    p = parse(_HEARTBEAT, request)
    job_id: RunId = p["id"]
    recorded = runtime.tracker().heartbeat(job_id.key, run=job_id.run)
    return json_response({"ID": str(job_id), "Recorded": recorded})


@functions_framework.http
@endpoint(["POST"], _ERROR, {200: Answer("the job is in parseError",
                                            schema=openapi.UpdateAnswer())})
def error(request: flask.Request) -> flask.Response:
    """``/v2/job/error?id=&error=``: report a parse error (state ``parseError``)."""
    p = parse(_ERROR, request)
    job_id: RunId = p["id"]
    previous = runtime.tracker().set_status(job_id.key, State.PARSE_ERROR, p["error"],
                                            by=Role.PARSER, run=job_id.run)
    return json_response({"ID": str(job_id), "State": State.PARSE_ERROR.value,
                          "Previous": previous.value})


@functions_framework.http
@endpoint(["POST"], answers={
    200: Answer("the job handed out", schema=openapi.NextJobAnswer()),
    503: Answer(NO_JOB_FOUND, ("text/plain",))})
def next_job(request: flask.Request) -> flask.Response:
    """``/v2/job/next``: hand out the next job; 503 ``No job found. Try again.`` if none."""
    record = runtime.job_service().next_job()
    if record is None:
        return flask.Response(NO_JOB_FOUND, status=503, mimetype="text/plain",
                              headers={"Retry-After": str(NO_JOB_RETRY_AFTER)})
    return json_response({"ID": str(RunId.of(record.key, record.run)), "Job": _JOB.dump(record.job)})


@functions_framework.http
@endpoint(["POST"], answers={200: Answer("a summary of the run")}, bulk=True)
def maintain(request: flask.Request) -> flask.Response:
    """``/maintain`` (Cloud Scheduler): expire stale jobs, remove old complete ones, snapshot."""
    return json_response(runtime.maintenance().run())


@functions_framework.http
@endpoint(["POST"], answers={200: Answer("a summary of the tick")}, bulk=True)
def postprocess(request: flask.Request) -> flask.Response:
    """``/postprocess`` (Cloud Scheduler): one post-processing tick over leased jobs."""
    return json_response(runtime.postprocessor().tick())


@functions_framework.http
@endpoint(["GET", "HEAD"], _STATUS, {200: Answer("the page, or JSON with format=json",
                                                   ("text/html", "application/json"))})
def status(request: flask.Request) -> flask.Response:
    """``/status``: every job, oldest first; ``?format=json``, ``state=``, ``experiment=``, ``datatype=``.

    The HTML page counts the jobs of every state at the top, colours jobs near
    expiry and refreshes itself every ``refresh`` seconds (0: never).
    """
    q = parse(_STATUS, request)
    filters = {k: q[k] for k in ("state", "experiment", "datatype")}
    tracker = runtime.tracker()
    records = list(tracker.get_state(JobFilter(limit=q["limit"], **filters)))
    counts = status_page.state_counts(tracker, q["experiment"], q["datatype"])
    total = counts[q["state"]] if q["state"] else sum(counts.values())
    shown = {k: (str(v) if v is not None else None) for k, v in filters.items()}
    timeout = runtime.tracker_timeout()
    pauses = runtime.controls().all()
    if q["format"] == "json":
        return json_response(status_page.render_json(records, total, shown, counts, timeout, pauses))
    return flask.Response(
        status_page.render_html(records, total, shown, utcnow(), counts, timeout, q["refresh"],
                                pauses),
        mimetype="text/html",
    )


@functions_framework.http
@endpoint(["GET"], answers={200: Answer("Prometheus text", (prometheus_metrics.CONTENT_TYPE,))})
def metrics(request: flask.Request) -> flask.Response:
    """``/metrics``: job counts per source and state and the streams' dates, Prometheus text."""
    service = runtime.job_service()
    body = prometheus_metrics.scrape(runtime.tracker(), service.cursors, service.config)
    return flask.Response(body, content_type=prometheus_metrics.CONTENT_TYPE)


@endpoint(["GET"], answers={200: Answer("this document")})
def openapi_json(request: flask.Request) -> flask.Response:
    """``/openapi.json``: the OpenAPI 3 document of every route the router serves here."""
    return json_response(openapi.document(_API_ROUTES))


#: Paths the ``api`` router serves: the Go parsers' paths, each entry point's name, ``/admin/...``.
# (The cast: functions_framework.http annotates the function it returns as any HTTP
# function, whatever it returns; the entry points return flask.Response.)
ROUTES = cast("dict[str, Callable[[flask.Request], flask.Response]]", {
    "/v2/job/next": next_job,
    "/v2/job/update": update,
    "/v2/job/heartbeat": heartbeat,
    "/v2/job/error": error,
    "/next_job": next_job,
    "/update": update,
    "/heartbeat": heartbeat,
    "/error": error,
    "/maintain": maintain,
    "/postprocess": postprocess,
    "/status": status,
    "/": status,
    "/metrics": metrics,
    "/openapi.json": openapi_json,
    **ADMIN_HANDLERS,
})


@functions_framework.http
def admin(request: flask.Request) -> flask.Response:
    """``/admin/...``: operator control (see :data:`ADMIN_ROUTES`); deployed alone, ``/admin`` may be left out."""
    path = request.path.rstrip("/")
    handler = ADMIN_HANDLERS.get(path if path.startswith("/admin/") else "/admin" + path)
    if handler is None:
        return error_response(404, f"no such path {request.path}; paths: {', '.join(ADMIN_ROUTES)}")
    return handler(request)


#: Route groups ``API_ROUTES`` may enable (default: all); every path of ``ROUTES`` is in one.
ROUTE_GROUPS = {
    "parser": ("/v2/job/next", "/v2/job/update", "/v2/job/heartbeat", "/v2/job/error",
               "/next_job", "/update", "/heartbeat", "/error"),
    "scheduled": ("/maintain", "/postprocess"),
    "status": ("/status", "/", "/metrics"),
    "docs": ("/openapi.json",),
    "admin": tuple(ADMIN_ROUTES),
}


def enabled_routes(groups: frozenset[str] | None) -> dict[str, Callable[[flask.Request], flask.Response]]:
    """Return the routes of ``groups`` (all when None); ConfigError names an unknown group."""
    unknown = sorted((groups or frozenset()) - ROUTE_GROUPS.keys())
    if unknown:
        raise ConfigError([f"API_ROUTES: unknown route group {', '.join(map(repr, unknown))}; "
                           f"groups: {', '.join(ROUTE_GROUPS)}"])
    paths = {p for g, ps in ROUTE_GROUPS.items() if groups is None or g in groups for p in ps}
    return {path: handler for path, handler in ROUTES.items() if path in paths}


_API_ROUTES = enabled_routes(runtime.Settings.from_env().api_routes)


@functions_framework.http
def api(request: flask.Request) -> flask.Response:
    """Route by path to the entry points of the enabled groups: a drop-in base URL for the Go parsers."""
    handler = _API_ROUTES.get(request.path.rstrip("/") or "/")
    if handler is None:
        return error_response(404, f"no such path {request.path}; paths: {', '.join(sorted(_API_ROUTES))}")
    return handler(request)
