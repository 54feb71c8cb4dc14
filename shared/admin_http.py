"""The ``/admin/...`` endpoints: one declarative table of sub-paths, methods, schemas and actions.

Each sub-path parses its parameters with its schema, names the operator
(:func:`shared.admin.operator`), calls one operator action and answers JSON;
an action's refusal answers its 4xx. ``functions/main.py`` serves the table
from the ``admin`` entry point and the router.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import flask

from shared import runtime
from shared.admin import AdminRejected, job_view, operator, pause_json
from shared.http_api import HttpError, endpoint, json_response, parse
from shared.model import JobFilter
from shared.schemas import (
    AdminCancelReprocessParams,
    AdminFailParams,
    AdminImportParams,
    AdminJobParams,
    AdminJobsQuery,
    AdminNoParams,
    AdminPauseParams,
    AdminReprocessParams,
)

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
    records = runtime.admin().list_jobs(JobFilter(**p))
    return {"Shown": len(records), "Jobs": [job_view(r) for r in records]}


def _job(p: dict[str, Any], who: str) -> Any:
    return job_view(runtime.admin().job(p["id"]))


def _retry(p: dict[str, Any], who: str) -> Any:
    return job_view(runtime.admin().retry(p["id"], who))


def _fail(p: dict[str, Any], who: str) -> Any:
    previous, record = runtime.admin().fail(p["id"], p["reason"], who)
    return {**job_view(record), "Previous": previous.value}


def _reprocess(p: dict[str, Any], who: str) -> Any:
    sources = [s for s in p["sources"].split(",") if s]
    return runtime.admin().reprocess(p["first"], p["last"], sources, who)


def _cancel_reprocess(p: dict[str, Any], who: str) -> Any:
    sources = [s for s in p["sources"].split(",") if s]
    return runtime.admin().cancel_reprocess(p["first"], p["last"], sources, who)


def _pause(p: dict[str, Any], who: str) -> Any:
    return {"Paused": pause_json(runtime.admin().pause(p["target"], p["reason"], who))}


def _resume(p: dict[str, Any], who: str) -> Any:
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
    "/admin/reprocess/cancel": AdminRoute(("POST",), AdminCancelReprocessParams(),
                                          _cancel_reprocess,
                                          "take back queued reprocessing of job dates for sources"),
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


#: Paths that work through many documents: no per-request Firestore budget (``endpoint(bulk=)``).
BULK_PATHS = frozenset({"/admin/snapshot/export", "/admin/snapshot/import"})


def admin_endpoint(path: str, route: AdminRoute) -> Callable[[flask.Request], flask.Response]:
    """Return the endpoint that serves ``path``: validate, name the operator, act, answer."""

    def call(request: flask.Request) -> flask.Response:
        p = parse(route.schema, request)
        try:
            who = operator(request.headers.get("Authorization", ""),
                           request.headers.get("X-Operator", ""), request.host)
            return json_response(route.handler(p, who))
        except AdminRejected as exc:
            raise HttpError(exc.status, str(exc), exc.fields) from None

    call.__name__ = "admin_" + path.removeprefix("/admin/").replace("/", "_")
    call.__doc__ = f"``{path}``: {route.summary}."
    return endpoint(route.methods, route.schema, bulk=path in BULK_PATHS)(call)


#: The endpoint of each ``/admin/...`` path.
ADMIN_HANDLERS = {path: admin_endpoint(path, route) for path, route in ADMIN_ROUTES.items()}
