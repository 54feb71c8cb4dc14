"""The OpenAPI 3 document of the HTTP API, generated from the routes and their schemas.

Every fact comes from the code: the paths from the router's route table, the
methods, parameter schema and answers from what each handler's
:func:`shared.web.endpoint.endpoint` wrapper carries, the summary from the
handler's docstring, and the error answers from the status codes
:mod:`shared.web.errors` gives (``ERROR_STATUS``, ``MISSING_STATUS``, 400, 405,
500). A route whose handler is not wrapped by ``endpoint`` or has no docstring
is refused (:class:`UndocumentedRoute`), so a new route cannot be served
without being described.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import flask
from marshmallow import Schema, fields

from shared.model import KEY_RE, MAX_KEY_LENGTH, MAX_RUN_LENGTH, RUN_RE, RUN_SEPARATOR, State
from shared.schemas import JobId, JobSchema, ParserJobId, StateName
from shared.web.endpoint import Answer, App, Endpoint, Route, endpoint, json_response
from shared.web.errors import ERROR_STATUS, MISSING_STATUS

if TYPE_CHECKING:
    from apispec.ext.marshmallow import MarshmallowPlugin

OPENAPI_VERSION = "3.0.3"
TITLE = "Gardener tracker"
API_VERSION = "2"

#: What each error status means, for the document's descriptions.
ERROR_MEANING = {
    400: "malformed parameter, or a tracker error without its own code",
    404: "unknown path (router)",
    405: "method not allowed; the Allow header names the allowed ones",
    409: "the transition table forbids the change, the job is complete or failed, "
    "the state is not the parser's to set, the run in the id is no longer current, "
    "or the job already exists",
    410: "no such job",
    422: "missing id",
    424: "missing state or error",
    500: "bad config or an unexpected error",
    503: "Firestore, GCS or BigQuery unavailable; retry later",
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


class UndocumentedRoute(ValueError):
    """A route's handler lacks what the document needs (``endpoint`` wrapper, docstring)."""


class ErrorBody(Schema):
    """Every error's JSON body."""

    error = fields.String(required=True, metadata={"description": "what is wrong"})
    status = fields.Integer(required=True, metadata={"description": "the HTTP status"})
    field_errors = fields.Dict(
        data_key="fields", metadata={"description": "validation errors by parameter"}
    )


class UpdateAnswer(Schema):
    """Answer of ``/v2/job/update`` and ``/v2/job/error``."""

    ID = fields.String(required=True)
    State = fields.String(required=True, metadata={"enum": STATE_NAMES})
    Previous = fields.String(required=True, metadata={"enum": STATE_NAMES})


class HeartbeatAnswer(Schema):
    """Answer of ``/v2/job/heartbeat``; ``Recorded`` is false for a coalesced heartbeat."""

    ID = fields.String(required=True)
    Recorded = fields.Boolean(required=True)


class NextJobAnswer(Schema):
    """Answer of ``/v2/job/next``: the ID (``key~run``, the ``id`` of later calls) and the Go-shaped job."""

    ID = fields.String(required=True)
    Job = fields.Nested(JobSchema, required=True)


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
        return {"enum": STATE_NAMES}
    return {}


def _summary(path: str, handler: Callable[..., Any]) -> tuple[str, str]:
    if not isinstance(handler, Endpoint):
        raise UndocumentedRoute(
            f"{path}: handler {handler.__name__} is not wrapped by shared.web.endpoint.endpoint"
        )
    doc = (handler.__doc__ or "").strip()
    if not doc:
        raise UndocumentedRoute(f"{path}: handler {handler.__name__} has no docstring")
    first, _, rest = doc.partition("\n")
    return first.strip(), rest.strip()


def _responses(handler: Endpoint) -> dict[str, Any]:
    codes = {400, 405, 500, *ERROR_STATUS.values()}
    params: Schema | None = handler.params
    if params is not None:
        required = {name for name, f in params.fields.items() if f.required}
        codes |= {code for name, code in MISSING_STATUS if name in required}
    responses: dict[str, Any] = {}
    for code in sorted(codes):
        responses[str(code)] = {
            "description": ERROR_MEANING.get(code, "error"),
            "content": {"application/json": {"schema": ErrorBody}},
        }
    answer: Answer
    for code, answer in handler.answers.items():
        content = {
            kind: (
                {"schema": answer.schema}
                if answer.schema is not None and kind == "application/json"
                else {}
            )
            for kind in answer.content
        }
        if str(code) in responses:  # an answer that shares its code with an error
            responses[str(code)]["description"] = f"{answer.description}; or {ERROR_MEANING[code]}"
            responses[str(code)]["content"].update(
                {k: v for k, v in content.items() if k != "application/json"}
            )
        else:
            responses[str(code)] = {"description": answer.description, "content": content}
    return responses


def document(routes: Mapping[str, Callable[..., Any]]) -> dict[str, Any]:
    """Return the OpenAPI 3 document of ``routes`` (path → handler), as a JSON-ready dict."""
    from apispec import APISpec  # deferred: only /openapi.json needs it
    from apispec.ext.marshmallow import MarshmallowPlugin

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
    )
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
                "responses": _responses(handler),
            }
            if description:
                operation["description"] = description
            if handler.params is not None:
                operation["parameters"] = [{"in": "query", "schema": handler.params}]
                if handler.json_body:
                    operation["requestBody"] = {
                        "required": False,
                        "description": "the same parameters as a JSON object, instead of "
                        "(or agreeing with) the query string",
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


@endpoint(["GET"], answers={200: Answer("this document")})
def openapi_json(request: flask.Request, app: App) -> flask.Response:
    """``/openapi.json``: the OpenAPI 3 document of every route the router serves here."""
    return json_response(document(app.routes))


ROUTES = (Route("/openapi.json", "docs", openapi_json),)
