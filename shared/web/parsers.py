"""The parsers' endpoints: next job, update, heartbeat, error — the Go tracker's ``/v2/job/...``.

Each parses its parameters (query string, form body, or a JSON body such as
``{"id": ..., "state": ..., "detail": ...}``), calls one tracker or job-service operation and
answers the Go tracker's JSON. They are served at the Go paths and at each
entry point's own name (``/next_job``, ``/update``, ...).
"""

from __future__ import annotations

import flask

from shared.errors import Conflict, NotFound, Unavailable
from shared.model import RunId, State
from shared.schemas import (
    ErrorParams,
    ErrorReport,
    Heartbeat,
    HeartbeatParams,
    JobSchema,
    Update,
    UpdateParams,
)
from shared.transitions import Role
from shared.web import openapi
from shared.web.endpoint import Answer, App, Route, endpoint, json_response, parse

_UPDATE, _HEARTBEAT, _ERROR = UpdateParams(), HeartbeatParams(), ErrorParams()
_JOB = JobSchema()

#: The Go tracker's answer when there is no job, and when to ask again (seconds).
NO_JOB_FOUND = "No job found. Try again."
NO_JOB_RETRY_AFTER = 10


@endpoint(
    ["POST"],
    _UPDATE,
    {200: Answer("the new and previous state", schema=openapi.UpdateAnswer())},
    raises=(Conflict, NotFound, Unavailable),
    json_body=True,
)
def update(request: flask.Request, app: App) -> flask.Response:
    """``/v2/job/update?id=&state=&detail=``: report progress or a new state (parser states only)."""
    p: Update = parse(_UPDATE, request, json_body=True)
    previous = app.services.tracker().set_status(
        p.id.key, p.state, p.detail, by=Role.PARSER, run=p.id.run
    )
    return json_response({"ID": str(p.id), "State": p.state.value, "Previous": previous.value})


@endpoint(
    ["POST"],
    _HEARTBEAT,
    {200: Answer("acknowledged", schema=openapi.HeartbeatAnswer())},
    raises=(Conflict, NotFound, Unavailable),
    json_body=True,
)
def heartbeat(request: flask.Request, app: App) -> flask.Response:
    """``/v2/job/heartbeat?id=``: prove the job's parser is alive."""
    p: Heartbeat = parse(_HEARTBEAT, request, json_body=True)
    recorded = app.services.tracker().heartbeat(p.id.key, run=p.id.run)
    return json_response({"ID": str(p.id), "Recorded": recorded})


@endpoint(
    ["POST"],
    _ERROR,
    {200: Answer("the job is in parseError", schema=openapi.UpdateAnswer())},
    raises=(Conflict, NotFound, Unavailable),
    json_body=True,
)
def error(request: flask.Request, app: App) -> flask.Response:
    """``/v2/job/error?id=&error=``: report a parse error (state ``parseError``)."""
    p: ErrorReport = parse(_ERROR, request, json_body=True)
    previous = app.services.tracker().set_status(
        p.id.key, State.PARSE_ERROR, p.error, by=Role.PARSER, run=p.id.run
    )
    return json_response(
        {"ID": str(p.id), "State": State.PARSE_ERROR.value, "Previous": previous.value}
    )


@endpoint(
    ["POST"],
    answers={
        200: Answer("the job handed out", schema=openapi.NextJobAnswer()),
        503: Answer(
            NO_JOB_FOUND,
            ("text/plain",),
            headers={"Retry-After": "integer: seconds to wait before asking again"},
        ),
    },
    raises=(Unavailable,),
)
def next_job(request: flask.Request, app: App) -> flask.Response:
    """``/v2/job/next``: hand out the next job; 503 ``No job found. Try again.`` if none."""
    record = app.services.job_service().next_job()
    if record is None:
        return flask.Response(
            NO_JOB_FOUND,
            status=503,
            mimetype="text/plain",
            headers={"Retry-After": str(NO_JOB_RETRY_AFTER)},
        )
    return json_response(
        {"ID": str(RunId.of(record.key, record.run)), "Job": _JOB.dump(record.job)}
    )


ROUTES = (
    Route("/v2/job/next", "parser", next_job),
    Route("/v2/job/update", "parser", update),
    Route("/v2/job/heartbeat", "parser", heartbeat),
    Route("/v2/job/error", "parser", error),
    Route("/next_job", "parser", next_job),
    Route("/update", "parser", update),
    Route("/heartbeat", "parser", heartbeat),
    Route("/error", "parser", error),
)
