"""Cloud Functions entry points of the tracker.

Each entry point parses its parameters, calls one tracker operation and
formats the answer. ``api`` routes by path to all of them, so one base URL
serves the Go parsers' ``/v2/job/...`` paths and the status page.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import flask
import functions_framework

# The library sits beside this file in a deployed artifact and beside its
# folder in the repository; make it importable from wherever we are started.
for _dir in (Path(__file__).resolve().parent, Path(__file__).resolve().parent.parent):
    if (_dir / "shared").is_dir():
        if str(_dir) not in sys.path:
            sys.path.insert(0, str(_dir))
        break

from shared import runtime, status_page  # noqa: E402
from shared.http_api import HttpError, endpoint, error_response, json_response, parse  # noqa: E402
from shared.model import State, utcnow  # noqa: E402
from shared.schemas import (  # noqa: E402
    AdminFailParams,
    AdminImportParams,
    AdminJobParams,
    AdminJobsQuery,
    AdminNoParams,
    AdminPauseParams,
    AdminReprocessParams,
    ErrorParams,
    HeartbeatParams,
    JobSchema,
    StatusQuery,
    UpdateParams,
)

logging.basicConfig(
    level=os.environ.get("LOG_LEVEL", "INFO"), format="%(levelname)s %(name)s: %(message)s"
)

_UPDATE, _HEARTBEAT, _ERROR, _STATUS = UpdateParams(), HeartbeatParams(), ErrorParams(), StatusQuery()
_JOB = JobSchema()

#: The Go tracker's answer when there is no job, and when to ask again (seconds).
NO_JOB_FOUND = "No job found. Try again."
NO_JOB_RETRY_AFTER = 10


@functions_framework.http
@endpoint(["POST"])
def update(request: flask.Request) -> flask.Response:
    """``/v2/job/update?id=&state=&detail=``: report progress or a new state."""
    p = parse(_UPDATE, request)
    previous = runtime.tracker().set_status(p["id"], p["state"], p["detail"])
    return json_response({"ID": p["id"], "State": p["state"].value, "Previous": previous.value})


@functions_framework.http
@endpoint(["POST"])
def heartbeat(request: flask.Request) -> flask.Response:
    """``/v2/job/heartbeat?id=``: prove the job's parser is alive."""
    p = parse(_HEARTBEAT, request)
    recorded = runtime.tracker().heartbeat(p["id"])
    return json_response({"ID": p["id"], "Recorded": recorded})


@functions_framework.http
@endpoint(["POST"])
def error(request: flask.Request) -> flask.Response:
    """``/v2/job/error?id=&error=``: report a parse error (state ``parseError``)."""
    p = parse(_ERROR, request)
    previous = runtime.tracker().set_status(p["id"], State.PARSE_ERROR, p["error"])
    return json_response({"ID": p["id"], "State": State.PARSE_ERROR.value, "Previous": previous.value})


@functions_framework.http
@endpoint(["POST"])
def next_job(request: flask.Request) -> flask.Response:
    """``/v2/job/next``: hand out the next job; 503 ``No job found. Try again.`` if none."""
    record = runtime.job_service().next_job()
    if record is None:
        return flask.Response(NO_JOB_FOUND, status=503, mimetype="text/plain",
                              headers={"Retry-After": str(NO_JOB_RETRY_AFTER)})
    return json_response({"ID": record.key, "Job": _JOB.dump(record.job)})


@functions_framework.http
@endpoint(["POST"])
def maintain(request: flask.Request) -> flask.Response:
    """``/maintain`` (Cloud Scheduler): expire stale jobs, remove old complete ones, snapshot."""
    return json_response(runtime.maintenance().run())


@functions_framework.http
@endpoint(["POST"])
def postprocess(request: flask.Request) -> flask.Response:
    """``/postprocess`` (Cloud Scheduler): one post-processing tick over leased jobs."""
    return json_response(runtime.postprocessor().tick())


@functions_framework.http
@endpoint(["GET", "HEAD"])
def status(request: flask.Request) -> flask.Response:
    """``/status``: every job, oldest first; ``?format=json``, ``state=``, ``experiment=``, ``datatype=``."""
    q = parse(_STATUS, request)
    filters = {k: q[k] for k in ("state", "experiment", "datatype")}
    tracker = runtime.tracker()
    records = list(tracker.get_state(limit=q["limit"], **filters))
    total = tracker.count(**filters) if len(records) == q["limit"] else len(records)
    shown = {k: (str(v) if v is not None else None) for k, v in filters.items()}
    if q["format"] == "json":
        return json_response(status_page.render_json(records, total, shown))
    return flask.Response(
        status_page.render_html(records, total, shown, utcnow()), mimetype="text/html"
    )


#: Paths the ``api`` router serves: the Go parsers' paths and each entry point's name.
ROUTES = {
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
}


# --- operator control: /admin/... ------------------------------------------------------

#: An admin handler: validated parameters and the operator's name in, a JSON-able answer out.
AdminHandler = Callable[[dict[str, Any], str], Any]


@dataclass(frozen=True)
class AdminRoute:
    """One sub-path of ``admin``: its methods, the schema of its parameters, what it does."""

    methods: tuple[str, ...]
    schema: Any
    handler: AdminHandler
    summary: str


def _jobs(p: dict[str, Any], who: str) -> Any:
    from shared.admin import JobFilter, job_view

    records = runtime.admin().list_jobs(JobFilter(**p))
    return {"Shown": len(records), "Jobs": [job_view(r) for r in records]}


def _job(p: dict[str, Any], who: str) -> Any:
    from shared.admin import job_view

    return job_view(runtime.admin().job(p["id"]))


def _retry(p: dict[str, Any], who: str) -> Any:
    from shared.admin import job_view

    return job_view(runtime.admin().retry(p["id"], who))


def _fail(p: dict[str, Any], who: str) -> Any:
    from shared.admin import job_view

    previous, record = runtime.admin().fail(p["id"], p["reason"], who)
    return {**job_view(record), "Previous": previous.value}


def _reprocess(p: dict[str, Any], who: str) -> Any:
    sources = [s for s in p["sources"].split(",") if s]
    return runtime.admin().reprocess(p["first"], p["last"], sources, who)


def _pause(p: dict[str, Any], who: str) -> Any:
    from shared.admin import pause_json

    return {"Paused": pause_json(runtime.admin().pause(p["target"], p["reason"], who))}


def _resume(p: dict[str, Any], who: str) -> Any:
    from shared.admin import pause_json

    return {"Resumed": pause_json(runtime.admin().resume(p["target"], who)), "Who": who}


#: Every sub-path of the ``admin`` entry point (declarative, for the API's documentation).
ADMIN_ROUTES: dict[str, AdminRoute] = {
    "/admin/jobs": AdminRoute(("GET",), AdminJobsQuery(), _jobs, "list and filter jobs"),
    "/admin/job": AdminRoute(("GET",), AdminJobParams(), _job,
                             "one job with its history, bookkeeping and audit"),
    "/admin/job/retry": AdminRoute(("POST",), AdminJobParams(), _retry,
                                   "make a failed job due for a retry now"),
    "/admin/job/fail": AdminRoute(("POST",), AdminFailParams(), _fail,
                                  "mark a job in flight failed with a reason"),
    "/admin/reprocess": AdminRoute(("POST",), AdminReprocessParams(), _reprocess,
                                   "queue reprocessing of job dates for sources"),
    "/admin/pause": AdminRoute(("POST",), AdminPauseParams(), _pause,
                               "pause the historical cycle or a source"),
    "/admin/resume": AdminRoute(("POST",), AdminPauseParams(), _resume,
                                "resume the historical cycle or a source"),
    "/admin/controls": AdminRoute(("GET",), AdminNoParams(),
                                  lambda p, who: runtime.admin().controls_view(),
                                  "pauses in force and the reprocessing queue"),
    "/admin/snapshot/export": AdminRoute(("POST",), AdminNoParams(),
                                         lambda p, who: runtime.admin().export_snapshot(who),
                                         "write a snapshot to SNAPSHOT_BUCKET now"),
    "/admin/snapshot/import": AdminRoute(("POST",), AdminImportParams(),
                                         lambda p, who: runtime.admin().import_snapshot(
                                             p["source"], who),
                                         "create the jobs of a snapshot in GCS that are missing"),
}


def _admin_call(route: AdminRoute) -> Callable[[flask.Request], flask.Response]:
    @endpoint(route.methods)
    def call(request: flask.Request) -> flask.Response:
        from shared.admin import AdminRejected, operator

        p = parse(route.schema, request)
        who = operator(request.headers.get("Authorization", ""),
                       request.headers.get("X-Operator", ""))
        try:
            return json_response(route.handler(p, who))
        except AdminRejected as exc:
            raise HttpError(exc.status, str(exc), exc.fields) from None

    return call


@functions_framework.http
def admin(request: flask.Request) -> flask.Response:
    """``/admin/...``: operator control (see :data:`ADMIN_ROUTES`); deployed alone, ``/admin`` may be left out."""
    path = request.path.rstrip("/")
    route = ADMIN_ROUTES.get(path if path.startswith("/admin/") else "/admin" + path)
    if route is None:
        return error_response(404, f"no such path {request.path}; paths: {', '.join(ADMIN_ROUTES)}")
    return _admin_call(route)(request)


@functions_framework.http
def api(request: flask.Request) -> flask.Response:
    """Route by path to every entry point: a drop-in base URL for the Go parsers."""
    handler = ROUTES.get(request.path.rstrip("/") or "/")
    if handler is None and request.path.startswith("/admin/"):
        handler = admin
    if handler is None:
        return error_response(404, f"no such path {request.path}; paths: {', '.join(sorted(ROUTES))}")
    return handler(request)
