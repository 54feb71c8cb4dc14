"""The ``/admin/...`` endpoints: the operator's actions (:mod:`shared.admin`) over HTTP.

Each endpoint parses its parameters, names the operator
(:func:`shared.web.identity.operator_of`), calls one action of the
:class:`~shared.admin.Admin` and answers its result as JSON
(:mod:`shared.web.views`); an action's refusal answers its error's status.
The ``admin`` entry point serves these routes alone; the ``api`` router
serves them in its ``admin`` group.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import flask
from marshmallow import Schema

from shared.admin import Admin
from shared.errors import Conflict, Invalid, NotFound, TrackerError, Unavailable
from shared.model import JobFilter
from shared.schemas import (
    AdminBulkParams,
    AdminCancelReprocessParams,
    AdminFailParams,
    AdminImportParams,
    AdminJobParams,
    AdminJobsQuery,
    AdminNoParams,
    AdminPauseParams,
    AdminReprocessParams,
    BulkRequest,
    FailRequest,
    ImportRequest,
    JobRef,
    NoParams,
    PauseRequest,
    ReprocessRange,
)
from shared.web import identity, openapi, views
from shared.web.endpoint import Answer, App, Endpoint, Route, endpoint, json_response, parse
from shared.web.identity import operator_of

#: An operator's action: the admin, the parsed parameters and the operator's name in, JSON out.
Action = Callable[[Admin, Any, str], Any]


def action(
    methods: Iterable[str],
    schema: Schema,
    answer: Answer,
    raises: Iterable[type[TrackerError]] = (),
    bulk: bool = False,
) -> Callable[[Action], Endpoint]:
    """Make an endpoint of an action: parse the parameters, name the operator, act, answer JSON.

    ``answer`` is its 200 answer; ``raises`` the tracker errors the action can raise
    besides :class:`Unavailable` (Firestore), which every action can, as can the
    operator's identity (:data:`shared.web.identity.STATUSES`).
    """

    def decorate(act: Action) -> Endpoint:
        def handler(request: flask.Request, app: App) -> flask.Response:
            p = parse(schema, request)
            settings = app.services.settings()
            who = operator_of(request, settings.iap_audience, settings.operator_token_audiences)
            return json_response(act(app.services.admin(), p, who))

        handler.__name__, handler.__doc__ = act.__name__, act.__doc__
        return endpoint(
            methods,
            schema,
            {200: answer},
            bulk=bulk,
            raises=(Unavailable, *raises, *identity.STATUSES),
        )(handler)

    return decorate


@action(["GET"], AdminJobsQuery(), Answer("the jobs", schema=openapi.JobList()), (Invalid,))
def jobs(admin: Admin, f: JobFilter, who: str) -> Any:
    """``/admin/jobs``: list and filter jobs."""
    return views.jobs_view(admin.list_jobs(f))


@action(["GET"], AdminJobParams(), Answer("the job", schema=openapi.AdminJob()), (NotFound,))
def job(admin: Admin, p: JobRef, who: str) -> Any:
    """``/admin/job``: one job with its history, bookkeeping and audit."""
    return views.job_view(admin.job(p.id))


@action(
    ["POST"],
    AdminJobParams(),
    Answer("the job, due for a retry now", schema=openapi.AdminJob()),
    (NotFound, Conflict),
)
def retry(admin: Admin, p: JobRef, who: str) -> Any:
    """``/admin/job/retry``: make a failed job due for a retry now."""
    return views.job_view(admin.retry(p.id, who))


@action(
    ["POST"],
    AdminFailParams(),
    Answer("the job, failed, and the state it was in", schema=openapi.FailedJob()),
    (NotFound, Conflict),
)
def fail(admin: Admin, p: FailRequest, who: str) -> Any:
    """``/admin/job/fail``: mark a job in flight failed with a reason."""
    return views.failed_view(*admin.fail(p.id, p.reason, who))


def _bulk(action_name: str, admin: Admin, p: BulkRequest, who: str) -> Any:
    f = JobFilter(p.state, p.experiment, p.datatype, p.first, p.last, p.limit)
    return views.bulk_json(admin.bulk(action_name, f, who, reason=p.reason, dry_run=p.dry_run))


@action(
    ["POST"],
    AdminBulkParams(),
    Answer("what the retry changed, or would (dry run)", schema=openapi.BulkAnswer()),
    (Invalid,),
    bulk=True,
)
def bulk_retry(admin: Admin, p: BulkRequest, who: str) -> Any:
    """``/admin/jobs/retry``: make every failed job a filter matches due for a retry now."""
    return _bulk("retry", admin, p, who)


@action(
    ["POST"],
    AdminBulkParams(),
    Answer("what the fail changed, or would (dry run)", schema=openapi.BulkAnswer()),
    (Invalid,),
    bulk=True,
)
def bulk_fail(admin: Admin, p: BulkRequest, who: str) -> Any:
    """``/admin/jobs/fail``: mark every job in flight a filter matches failed with a reason."""
    return _bulk("fail", admin, p, who)


@action(
    ["POST"],
    AdminReprocessParams(),
    Answer("the jobs queued", schema=openapi.ReprocessAnswer()),
    (Invalid,),
)
def reprocess(admin: Admin, p: ReprocessRange, who: str) -> Any:
    """``/admin/reprocess``: queue reprocessing of job dates for sources."""
    return views.reprocessing_json(admin.reprocess(p.first, p.last, list(p.sources), who))


@action(
    ["POST"],
    AdminCancelReprocessParams(),
    Answer("the jobs taken back", schema=openapi.CancelAnswer()),
    (Invalid,),
)
def cancel_reprocess(admin: Admin, p: ReprocessRange, who: str) -> Any:
    """``/admin/reprocess/cancel``: take back queued reprocessing of job dates for sources."""
    return views.cancellation_json(admin.cancel_reprocess(p.first, p.last, list(p.sources), who))


@action(
    ["POST"],
    AdminPauseParams(),
    Answer("the pause made", schema=openapi.PausedAnswer()),
    (Invalid, Conflict),
)
def pause(admin: Admin, p: PauseRequest, who: str) -> Any:
    """``/admin/pause``: pause the historical cycle or a source."""
    return views.paused_json(admin.pause(p.target, p.reason, who))


@action(
    ["POST"],
    AdminPauseParams(),
    Answer("the pause lifted", schema=openapi.ResumedAnswer()),
    (Invalid, Conflict),
)
def resume(admin: Admin, p: PauseRequest, who: str) -> Any:
    """``/admin/resume``: resume the historical cycle or a source."""
    return views.resumed_json(admin.resume(p.target, who), who)


@action(["GET"], AdminNoParams(), Answer("the controls", schema=openapi.ControlsAnswer()))
def controls(admin: Admin, p: NoParams, who: str) -> Any:
    """``/admin/controls``: pauses in force and the reprocessing queue."""
    return views.controls_json(admin.controls_in_force())


@action(
    ["POST"],
    AdminNoParams(),
    Answer("the snapshot written", schema=openapi.ExportAnswer()),
    (Conflict,),
    bulk=True,
)
def export_snapshot(admin: Admin, p: NoParams, who: str) -> Any:
    """``/admin/snapshot/export``: write a snapshot to SNAPSHOT_BUCKET now."""
    return views.exported_json(admin.export_snapshot(who))


@action(
    ["POST"],
    AdminImportParams(),
    Answer("what the import did", schema=openapi.ImportAnswer()),
    (Conflict, Invalid),
    bulk=True,
)
def import_snapshot(admin: Admin, p: ImportRequest, who: str) -> Any:
    """``/admin/snapshot/import``: create the jobs of a snapshot in GCS that are missing."""
    return views.imported_json(admin.import_snapshot(p.source, who))


ROUTES = (
    Route("/admin/jobs", "admin", jobs),
    Route("/admin/job", "admin", job),
    Route("/admin/job/retry", "admin", retry),
    Route("/admin/job/fail", "admin", fail),
    Route("/admin/jobs/retry", "admin", bulk_retry),
    Route("/admin/jobs/fail", "admin", bulk_fail),
    Route("/admin/reprocess", "admin", reprocess),
    Route("/admin/reprocess/cancel", "admin", cancel_reprocess),
    Route("/admin/pause", "admin", pause),
    Route("/admin/resume", "admin", resume),
    Route("/admin/controls", "admin", controls),
    Route("/admin/snapshot/export", "admin", export_snapshot),
    Route("/admin/snapshot/import", "admin", import_snapshot),
)
