"""The OpenAPI 3 document of the HTTP API, generated from the routes and their schemas,
and the shapes of the JSON answers it describes.

Every fact comes from the code: the paths from the router's route table (each
route's group is its tag), the methods, parameter schema and answers from what
each handler's :func:`shared.web.endpoint.endpoint` wrapper carries, the
summary from the handler's docstring (its markup taken out), and the error
answers from what the wrapper, the parameters and the handler's declared
``raises`` can answer (:attr:`shared.web.endpoint.Endpoint.error_statuses`).
A route whose handler is not wrapped by ``endpoint``, has no docstring or
answers JSON without a schema is refused (:class:`UndocumentedRoute`), so a
new route cannot be served without being described.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import flask
from marshmallow import INCLUDE, Schema, fields

from shared.model import KEY_RE, MAX_KEY_LENGTH, MAX_RUN_LENGTH, RUN_RE, RUN_SEPARATOR, State
from shared.schemas import (
    GoTime,
    JobId,
    JobSchema,
    ParserJobId,
    RunSummarySchema,
    StateName,
    StatusSchema,
)
from shared.web.endpoint import Answer, App, Endpoint, Route, endpoint, json_response

if TYPE_CHECKING:
    from apispec.ext.marshmallow import MarshmallowPlugin

OPENAPI_VERSION = "3.0.3"
TITLE = "Gardener tracker"
API_VERSION = "2"

#: What each error status means, for the document's descriptions.
ERROR_MEANING = {
    400: "malformed parameter, or a request the tracker refuses as invalid",
    401: "the bearer token is not a valid Google ID token for this service",
    404: "unknown path (router)",
    405: "method not allowed; the Allow header names the allowed ones",
    409: "the request conflicts with the job's state or the tracker's: the transition "
    "table forbids the change, the job is complete or failed, the state is not the "
    "parser's to set, the run in the id is no longer current, or an operator's action "
    "the state refuses",
    410: "no such job",
    422: "missing id",
    424: "missing state or error",
    500: "bad config or an unexpected error",
    503: "Firestore, GCS or BigQuery (or Google's token certificates) unavailable; retry later",
}

#: The tags, one per route group (``Route.group``), in the order the document lists them.
TAGS = {
    "parser": "What parsers call: the Go tracker's /v2/job/... paths and each entry point's name.",
    "scheduled": "What Cloud Scheduler calls: maintenance and post-processing ticks.",
    "status": "The status page and the Prometheus metrics.",
    "docs": "This document.",
    "admin": "Operator control: list, retry and fail jobs, reprocess, pause, snapshots.",
}

#: The security scheme of a deployed tracker: every function is private (Cloud Run IAM),
#: and the admin endpoints name the operator by the token's verified e-mail.
BEARER = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "JWT",
    "description": "A Google ID token whose audience is the function's URL (for example "
    "gcloud auth print-identity-token). Deployed, every call needs one; locally none is "
    "needed, and one sent to /admin/... is verified and names the operator.",
}

#: Every state's wire name.
STATE_NAMES = [s.value for s in State]

#: A job key as a JSON-schema (ECMA) pattern, from the model's key expression.
KEY_PATTERN = re.sub(r"\(\?P<\w+>", "(", KEY_RE.pattern).replace(r"\Z", "$")

#: A parser's job id: a key, optionally followed by ``~`` and the run token.
RUN_ID_PATTERN = (
    KEY_PATTERN.removesuffix("$")
    + f"({RUN_SEPARATOR}{RUN_RE.pattern.removesuffix(chr(92) + 'Z')})?$"
)

#: reStructuredText markup in a docstring: a role (``:class:`x```) and a literal (````x````).
_ROLE_RE = re.compile(r":[\w:.-]+:`~?([^`]*)`")
_LITERAL_RE = re.compile(r"``(.*?)``")
#: A summary's leading literal naming the path (````/v2/job/update?id=````: …), and a
#: note in parentheses after it (``(Cloud Scheduler)``).
_PATH_PREFIX_RE = re.compile(r"^``/[^`]*``(?:\s*\(([^)]*)\))?:\s*")


class UndocumentedRoute(ValueError):
    """A route's handler lacks what the document needs (``endpoint`` wrapper, docstring,
    a schema for a JSON answer)."""


# --- the answers' shapes ---------------------------------------------------------------


def _time(**kwargs: Any) -> GoTime:
    """A time as Go marshals it (RFC 3339, UTC)."""
    return GoTime(**kwargs)


def _state(**kwargs: Any) -> fields.String:
    """A state's wire name; a nullable one lists null among its values, as OpenAPI 3.0 needs."""
    names: list[str | None] = [*STATE_NAMES, *([None] if kwargs.get("allow_none") else [])]
    return fields.String(metadata={"enum": names}, **kwargs)


class ErrorBody(Schema):
    """Every error's JSON body."""

    error = fields.String(required=True, metadata={"description": "what is wrong"})
    status = fields.Integer(required=True, metadata={"description": "the HTTP status"})
    field_errors = fields.Dict(
        data_key="fields", metadata={"description": "details by parameter or name"}
    )


class UpdateAnswer(Schema):
    """Answer of ``/v2/job/update`` and ``/v2/job/error``."""

    ID = fields.String(required=True)
    State = _state(required=True)
    Previous = _state(required=True)


class HeartbeatAnswer(Schema):
    """Answer of ``/v2/job/heartbeat``; ``Recorded`` is false for a coalesced heartbeat."""

    ID = fields.String(required=True)
    Recorded = fields.Boolean(required=True)


class NextJobAnswer(Schema):
    """Answer of ``/v2/job/next``: the ID (``key~run``, the ``id`` of later calls) and the Go-shaped job."""

    ID = fields.String(required=True)
    Job = fields.Nested(JobSchema, required=True)


class JobAnswer(Schema):
    """One job as the status page's JSON shows it (:func:`shared.web.views.job_json`)."""

    ID = fields.String(required=True, metadata={"description": "the job's key"})
    Job = fields.Nested(JobSchema, required=True)
    Status = fields.Nested(StatusSchema, required=True)
    State = _state(required=True)
    Label = fields.String(required=True)
    Detail = fields.String(required=True)
    Error = fields.String(required=True)
    ElapsedSeconds = fields.Integer(required=True)
    LastActivity = _time(required=True)
    Attempts = fields.Integer(required=True)
    LastError = fields.String(required=True)
    RetryAt = _time(required=True, allow_none=True)
    ExpiresAt = _time(required=True, allow_none=True)


class AuditAnswer(Schema):
    """One audit entry: who did what to a job, and when."""

    Time = _time(required=True)
    Who = fields.String(required=True)
    Action = fields.String(required=True)
    Detail = fields.String(required=True)


class AdminJob(JobAnswer):
    """One job as the admin API shows it: the status page's JSON, bookkeeping and audit."""

    Offer = fields.String(required=True)
    Reoffer = fields.String(required=True)
    LeaseOwner = fields.String(required=True)
    LeaseUntil = _time(required=True, allow_none=True)
    Audit = fields.List(fields.Nested(AuditAnswer), required=True)


class FailedJob(AdminJob):
    """A job an operator failed, with the state it was in."""

    Previous = _state(required=True)


class CommandAnswer(Schema):
    """A ``gardener`` command that acts on a job in its state."""

    Action = fields.String(required=True, metadata={"enum": ["show", "fail", "retry", "reprocess"]})
    Command = fields.String(required=True, metadata={"description": "the command line"})
    Does = fields.String(required=True, metadata={"description": "what it does"})


class JobPageAnswer(AdminJob):
    """One job as its page's JSON shows it (``/status/job?format=json``): the admin view, the
    current run's token, the earlier runs (oldest first) and the commands that act on it."""

    Run = fields.String(required=True, metadata={"description": "the current run's token"})
    Runs = fields.List(fields.Nested(RunSummarySchema), required=True)
    Commands = fields.List(fields.Nested(CommandAnswer), required=True)


class JobList(Schema):
    """The jobs an operator listed."""

    Shown = fields.Integer(required=True)
    Jobs = fields.List(fields.Nested(AdminJob), required=True)


class PauseAnswer(Schema):
    """An operator's pause: of the historical cycle or of a source."""

    Target = fields.String(required=True)
    Who = fields.String(required=True)
    Since = _time(required=True)
    Reason = fields.String(required=True)
    #: Only once the reason of the pause in force was changed: by whom, and when.
    ReasonBy = fields.String()
    ReasonAt = _time()


class PausedAnswer(Schema):
    """A pause just made, or one in force whose reason just changed."""

    Paused = fields.Nested(PauseAnswer, required=True)
    #: Only when the target was paused already: the reason it had, and who changed it.
    PreviousReason = fields.String()
    UpdatedBy = fields.String()


class Unchanged(Schema):
    """A job a bulk action matched but left as it was, and why."""

    ID = fields.String(required=True)
    Why = fields.String(required=True)


class BulkAnswer(Schema):
    """What a bulk retry or fail by filter changed, or would change (``DryRun``)."""

    Action = fields.String(required=True)
    DryRun = fields.Boolean(required=True)
    Who = fields.String(required=True)
    Matched = fields.Integer(required=True)
    Changed = fields.List(fields.String(), required=True)
    Unchanged = fields.List(fields.Nested(Unchanged), required=True)


class ResumedAnswer(Schema):
    """A pause just lifted, and who lifted it."""

    Resumed = fields.Nested(PauseAnswer, required=True)
    Who = fields.String(required=True)


class QueuedAnswer(Schema):
    """A queued reprocessing of one job."""

    ID = fields.String(required=True)
    Source = fields.String(required=True)
    Who = fields.String(required=True)
    QueuedAt = _time(required=True)


class SourcePause(Schema):
    """A source of the config and its pause, if any."""

    Source = fields.String(required=True)
    Paused = fields.Nested(PauseAnswer, required=True, allow_none=True)


class ControlsAnswer(Schema):
    """The pauses in force and the reprocessing queue's size and head."""

    Historical = fields.Nested(PauseAnswer, required=True, allow_none=True)
    Sources = fields.List(fields.Nested(SourcePause), required=True)
    ReprocessQueued = fields.Integer(required=True)
    ReprocessNext = fields.List(fields.Nested(QueuedAnswer), required=True)


class ReprocessAnswer(Schema):
    """What a reprocessing request queued."""

    Queued = fields.Integer(required=True)
    AlreadyQueued = fields.Integer(required=True)
    Jobs = fields.List(fields.String(), required=True)
    Who = fields.String(required=True)
    Time = _time(required=True)


class CancelAnswer(Schema):
    """What a cancelled reprocessing took back."""

    Cancelled = fields.Integer(required=True)
    HandedOut = fields.Integer(required=True)
    Jobs = fields.List(fields.String(), required=True)
    Who = fields.String(required=True)
    Time = _time(required=True)


class SnapshotAnswer(Schema):
    """A snapshot written (:class:`shared.snapshot.SnapshotResult`)."""

    bucket = fields.String(required=True)
    object = fields.String(required=True)
    jobs = fields.Integer(required=True)
    bytes = fields.Integer(required=True)
    save_time = _time(required=True)
    latest = fields.String(required=True)
    latest_updated = fields.Boolean(required=True)
    deleted = fields.List(fields.String(), required=True)


class ExportAnswer(SnapshotAnswer):
    """A snapshot written now on an operator's request, and who asked."""

    Who = fields.String(required=True)


class ImportAnswer(Schema):
    """What a snapshot import did."""

    Source = fields.String(required=True)
    Total = fields.Integer(required=True)
    Created = fields.Integer(required=True)
    AlreadyPresent = fields.Integer(required=True)
    Skipped = fields.List(fields.String(), required=True)
    Who = fields.String(required=True)


class StatusFilters(Schema):
    """The filters a status request applied (null: not filtered)."""

    state = _state(required=True, allow_none=True)
    experiment = fields.String(required=True, allow_none=True)
    datatype = fields.String(required=True, allow_none=True)


def _day(**kwargs: Any) -> GoTime:
    """A day as Go marshals its UTC midnight (``2026-11-26T00:00:00Z``)."""
    return GoTime(**kwargs)


class DailyProgressAnswer(Schema):
    """Where a source's daily stream is, and whether yesterday's job is done."""

    Date = _day(
        required=True,
        allow_none=True,
        metadata={"description": "the last day the daily stream has resolved (null: not yet)"},
    )
    Yesterday = _day(required=True)
    #: The state of yesterday's job (null: no job document).
    YesterdayState = _state(required=True, allow_none=True)
    YesterdayComplete = fields.Boolean(
        required=True,
        metadata={
            "description": "yesterday's job is done: complete, or complete and cleaned up "
            "(no document and no reprocessing queued); a paused source's is not"
        },
    )


class HistoricalProgressAnswer(Schema):
    """Where the historical stream is for a source."""

    Date = _day(
        required=True,
        allow_none=True,
        metadata={"description": "the last day the stream has resolved (null: not yet)"},
    )
    Cycle = fields.Integer(required=True, metadata={"description": "0 for the first pass"})
    CyclePercent = fields.Float(
        required=True, metadata={"description": "share of the source's days of the cycle done"}
    )
    Paused = fields.Nested(
        PauseAnswer,
        required=True,
        allow_none=True,
        metadata={"description": "the pause of the historical cycle (null: not paused)"},
    )


class SourceProgressAnswer(Schema):
    """How far one source of the config has got."""

    Bucket = fields.String(required=True)
    Experiment = fields.String(required=True)
    Datatype = fields.String(required=True)
    Daily = fields.Nested(DailyProgressAnswer, required=True)
    Historical = fields.Nested(
        HistoricalProgressAnswer,
        required=True,
        allow_none=True,
        metadata={"description": "null for a daily_only source"},
    )
    Paused = fields.Nested(
        PauseAnswer,
        required=True,
        allow_none=True,
        metadata={"description": "the source's pause (null: not paused)"},
    )
    Queued = fields.Integer(
        required=True, allow_none=True, metadata={"description": "reprocessing queued"}
    )


class GridJob(Schema):
    """One day of one source: the job's key, and its state (null: no job document)."""

    ID = fields.String(required=True)
    State = _state(required=True, allow_none=True)


class GridDayAnswer(Schema):
    """One day of the grid: a job per source, in the order of ``Sources``."""

    Date = _day(required=True)
    Jobs = fields.List(fields.Nested(GridJob), required=True)


class StatusAnswer(Schema):
    """The status page's JSON (``format=json``); more fields may be added."""

    class Meta:
        unknown = INCLUDE

    Count = fields.Integer(
        required=True, metadata={"description": "jobs in the selection, beyond the limit too"}
    )
    Shown = fields.Integer(required=True)
    Filters = fields.Nested(StatusFilters, required=True)
    Paused = fields.List(fields.Nested(PauseAnswer), required=True)
    Sources = fields.List(
        fields.Nested(SourceProgressAnswer),
        required=True,
        metadata={"description": "how far each source of the config has got (empty without one)"},
    )
    Grid = fields.List(
        fields.Nested(GridDayAnswer),
        required=True,
        metadata={"description": "the last `days` days, newest first: each source's job"},
    )
    Jobs = fields.List(fields.Nested(JobAnswer), required=True)
    StateCounts = fields.Dict(
        keys=fields.String(),
        values=fields.Integer(),
        metadata={"description": "jobs in each state under the experiment and datatype filters"},
    )


class MaintainAnswer(Schema):
    """A maintenance run's summary."""

    time = _time(required=True)
    expired = fields.List(fields.String(), required=True)
    not_expired = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        required=True,
        metadata={
            "description": "stale jobs this run could not expire (left to the next), with why"
        },
    )
    removed_complete = fields.Integer(required=True)
    counts = fields.Dict(
        required=True, metadata={"description": "the count reconciliation of one source"}
    )
    snapshot = fields.Nested(SnapshotAnswer, required=True, allow_none=True)
    jobs = fields.Integer(required=True)
    failed = fields.Integer(required=True)
    duration_seconds = fields.Float(required=True)


def _by_key(description: str) -> fields.Dict:
    return fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        required=True,
        metadata={"description": description},
    )


class PostprocessAnswer(Schema):
    """A post-processing tick's summary, per job key."""

    started = _by_key("step started, by job")
    moved = _by_key("state moved to, by job")
    waiting = _by_key("what the job waits for")
    retrying = _by_key("why the step is retried")
    failed = _by_key("why the job failed")
    dropped = _by_key("results dropped: the job left the claimed state or lease meanwhile")
    skipped = fields.Integer(required=True)
    pages = fields.Integer(required=True)
    out_of_time = fields.Boolean(required=True)
    duration_seconds = fields.Float(required=True)
    time = _time(required=True)


#: The document's own shape, loosely: an OpenAPI 3.0 document.
OPENAPI_OBJECT: dict[str, Any] = {
    "type": "object",
    "required": ["openapi", "info", "paths"],
    "properties": {"openapi": {"type": "string"}, "info": {"type": "object"}},
}

#: The schema of a body that is not JSON (text, HTML).
TEXT: dict[str, Any] = {"type": "string"}


# --- the document ------------------------------------------------------------------------


def _field_extras(self: Any, field: fields.Field[Any], **kwargs: Any) -> dict[str, Any]:
    """What the generic converter cannot see in our own field types."""
    if isinstance(field, ParserJobId):
        return {
            "type": "string",
            "pattern": RUN_ID_PATTERN,
            "maxLength": MAX_KEY_LENGTH + len(RUN_SEPARATOR) + MAX_RUN_LENGTH,
        }
    if isinstance(field, JobId):
        return {"pattern": KEY_PATTERN, "maxLength": MAX_KEY_LENGTH}
    if isinstance(field, StateName):
        return {"enum": [s.value for s in field.only]}
    if isinstance(field, GoTime):
        return {"type": "string", "format": "date-time"}
    return {}


def plain(text: str, summary: bool = False) -> str:
    """``text`` without reStructuredText markup: roles and literals become their text.

    For a ``summary`` (plain text), a literal with a space is quoted and a leading
    literal naming the path is dropped; otherwise literals become Markdown code.
    """
    prefix = _PATH_PREFIX_RE.match(text) if summary else None
    if prefix:
        text = text[prefix.end() :]
        if prefix.group(1):
            text = f"{text.rstrip('.')} ({prefix.group(1)})."
        text = text[:1].upper() + text[1:]
    text = _ROLE_RE.sub(lambda m: m.group(1).rsplit(".", 1)[-1] if summary else m.group(1), text)

    def literal(match: re.Match[str]) -> str:
        inner = match.group(1)
        if not summary:
            return f"`{inner}`"
        return f'"{inner}"' if " " in inner.strip() else inner

    return _LITERAL_RE.sub(literal, text)


def _summary(path: str, handler: Callable[..., Any]) -> tuple[str, str]:
    if not isinstance(handler, Endpoint):
        raise UndocumentedRoute(
            f"{path}: handler {handler.__name__} is not wrapped by shared.web.endpoint.endpoint"
        )
    doc = (handler.__doc__ or "").strip()
    if not doc:
        raise UndocumentedRoute(f"{path}: handler {handler.__name__} has no docstring")
    first, _, rest = doc.partition("\n")
    return plain(first.strip(), summary=True), plain(rest.strip())


def _content(path: str, code: int, answer: Answer) -> dict[str, Any]:
    """The content of an answer by media type, each with its schema."""
    content: dict[str, Any] = {}
    for kind in answer.content:
        if kind != "application/json":
            content[kind] = {"schema": TEXT}
        elif answer.schema is None:
            raise UndocumentedRoute(f"{path}: its {code} JSON answer has no schema")
        else:
            content[kind] = {"schema": answer.schema}
    return content


def _responses(path: str, handler: Endpoint) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for code in sorted(handler.error_statuses):
        responses[str(code)] = {
            "description": ERROR_MEANING.get(code, "error"),
            "content": {"application/json": {"schema": ErrorBody}},
        }
    for code, answer in handler.answers.items():
        content = _content(path, code, answer)
        if str(code) in responses:  # an answer that shares its code with an error
            responses[str(code)]["description"] = f"{answer.description}; or {ERROR_MEANING[code]}"
            responses[str(code)]["content"].update(
                {k: v for k, v in content.items() if k != "application/json"}
            )
        else:
            responses[str(code)] = {"description": answer.description, "content": content}
        if answer.headers:
            responses[str(code)]["headers"] = {
                name: _header(meaning) for name, meaning in answer.headers.items()
            }
    return responses


def _header(meaning: str) -> dict[str, Any]:
    """A response header's object: ``"integer: what it is"`` or a string's meaning."""
    kind, _, text = meaning.partition(": ")
    if kind == "integer" and text:
        return {"description": text, "schema": {"type": "integer"}}
    return {"description": meaning, "schema": {"type": "string"}}


def document(
    routes: Mapping[str, Callable[..., Any]],
    groups: Mapping[str, str] | None = None,
    server: str = "/",
    deployed: bool = False,
) -> dict[str, Any]:
    """Return the OpenAPI 3 document of ``routes`` (path → handler), as a JSON-ready dict.

    ``groups`` (path → route group) tags each operation; ``server`` is the base URL
    the document names. ``deployed``: every call needs a bearer ID token; else
    the token is optional.
    """
    from apispec import APISpec  # deferred: only /openapi.json needs it
    from apispec.ext.marshmallow import MarshmallowPlugin

    groups = groups or {}
    used = [tag for tag in TAGS if tag in groups.values()]
    used += sorted(set(groups.values()) - set(used))
    spec = APISpec(
        title=TITLE,
        version=API_VERSION,
        openapi_version=OPENAPI_VERSION,
        plugins=[MarshmallowPlugin()],
        info={
            "description": "Parameters go in the query string (the Go client's "
            "way) or a form body; the body wins. The parsers' endpoints also take "
            "them as a JSON object body (Content-Type: application/json); a "
            "parameter given in both with different values is a 400."
        },
        servers=[
            {
                "url": server,
                "description": "this deployment" if deployed else "this tracker",
            }
        ],
        tags=[{"name": tag, "description": TAGS.get(tag, tag)} for tag in used],
        security=[{"bearerAuth": []}] if deployed else [{"bearerAuth": []}, {}],
    )
    spec.components.security_scheme("bearerAuth", BEARER)
    plugin: MarshmallowPlugin = spec.plugins[0]  # type: ignore[assignment]
    plugin.converter.add_attribute_function(_field_extras)  # type: ignore[union-attr]
    for path in sorted(routes):
        handler: Any = routes[path]
        summary, description = _summary(path, handler)
        operations = {}
        for method in handler.methods:
            operation: dict[str, Any] = {
                "summary": summary,
                "operationId": f"{method.lower()}_{path.strip('/').replace('/', '_') or 'root'}".replace(
                    ".", "_"
                ),
                "responses": _responses(path, handler),
            }
            if path in groups:
                operation["tags"] = [groups[path]]
            if description:
                operation["description"] = description
            if handler.params is not None:
                operation["parameters"] = [{"in": "query", "schema": handler.params}]
                if handler.json_body:
                    operation["requestBody"] = {
                        "required": False,
                        "description": "the same parameters as a JSON object, instead of "
                        "(or agreeing with) the query string; an empty query value counts "
                        "as absent, and an empty or blank body as no body",
                        "content": {"application/json": {"schema": handler.params}},
                    }
            operations[method.lower()] = operation
        spec.path(path=path, operations=operations)
    result = spec.to_dict()
    for item in result["paths"].values():  # an absent query parameter is absent, not null
        for operation in item.values():
            for parameter in operation.get("parameters", ()):
                schema = parameter["schema"]
                if schema.pop("nullable", False) and schema.get("default", 0) is None:
                    del schema["default"]
    return result


def server_of(request: flask.Request, deployed: bool) -> str:
    """The base URL ``request`` reached: https when deployed (TLS ends at the front)."""
    host = request.host
    scheme = "https" if deployed else request.scheme
    return f"{scheme}://{host}"


@endpoint(
    ["GET"],
    answers={200: Answer("this document", schema=OPENAPI_OBJECT)},
)
def openapi_json(request: flask.Request, app: App) -> flask.Response:
    """``/openapi.json``: the OpenAPI 3 document of every route the router serves here."""
    deployed = bool(os.environ.get("K_SERVICE"))
    return json_response(document(app.routes, app.groups, server_of(request, deployed), deployed))


ROUTES = (Route("/openapi.json", "docs", openapi_json),)
