"""The endpoint wrapper every handler goes through, the route and what a handler is given.

A handler takes the request and an :class:`App` (the services it may use,
passed in, never taken from a global) and returns a response;
:func:`endpoint` wraps it: 405 for a method it does not allow, the
request's Firestore budget, the request's trace on every log line, and each
error answered with its status code (:mod:`shared.web.errors`). A
:class:`Route` names a handler's path and route group; each web module
declares its routes beside its handlers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

import flask
from marshmallow import Schema, ValidationError

from shared.config import ConfigError
from shared.errors import TrackerError
from shared.limits import is_utf8
from shared.logs import request_trace
from shared.schemas import MISSING
from shared.store import budget
from shared.web.errors import MISSING_STATUS, HttpError, status_of, status_of_kind

if TYPE_CHECKING:
    from shared.admin import Admin
    from shared.job_service import JobService
    from shared.maintenance import Maintenance
    from shared.postprocess import PostProcessor
    from shared.progress import Progress
    from shared.runtime import Settings
    from shared.store import ControlStore, TaskStore
    from shared.tracker import Tracker

log = logging.getLogger(__name__)


class Services(Protocol):
    """The process's services a handler may use; :mod:`shared.runtime` provides them.

    Each is asked for at the call, so a test can replace one.
    """

    def settings(self) -> Settings: ...
    def tracker(self) -> Tracker: ...
    def job_service(self) -> JobService: ...
    def controls(self) -> ControlStore: ...
    def tasks(self) -> TaskStore: ...
    def admin(self) -> Admin: ...
    def maintenance(self) -> Maintenance: ...
    def postprocessor(self) -> PostProcessor: ...
    def tracker_timeout(self) -> timedelta | None: ...
    def progress(self) -> Progress | None: ...


@dataclass(frozen=True)
class App:
    """What every handler is given, as Go's ``Handler`` holds its tracker: the services,
    the routes served beside the handler (path → endpoint) and their route groups (path →
    group)."""

    services: Services
    routes: Mapping[str, Endpoint] = field(default_factory=dict)
    groups: Mapping[str, str] = field(default_factory=dict)


#: A handler: the request and the app in, the response out.
Handler = Callable[[flask.Request, App], flask.Response]


@dataclass(frozen=True)
class Answer:
    """An answer an endpoint gives besides its errors, as the OpenAPI document describes it.

    ``schema`` is the JSON body's shape (a marshmallow schema, or a JSON schema as a
    dict); every other content type is described as a string. ``headers`` names the
    headers the answer carries, each with its meaning (an integer's, if ``integer``
    starts it: ``"integer: seconds to wait"``).
    """

    description: str
    content: tuple[str, ...] = ("application/json",)
    schema: Schema | dict[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


#: Statuses the wrapper itself can answer for any endpoint: a method it does not
#: allow, and a bad config or an unexpected error.
WRAPPER_STATUSES = frozenset({405, 500})

#: What a handler declares it can raise: tracker errors (answered with their
#: :data:`~shared.web.errors.ERROR_STATUS` code) and statuses of its own
#: :class:`~shared.web.errors.HttpError`s.
Raises = Iterable[type[TrackerError] | int]


class Endpoint:
    """A handler wrapped by :func:`endpoint`, with what the OpenAPI document says of it:
    ``methods`` (allowed), ``params`` (the schema its parameters are parsed with),
    ``answers`` (by status code, besides the errors), ``raises`` (what the handler
    can raise, for :attr:`error_statuses`), ``json_body`` (its parameters may also
    come in a JSON body)."""

    def __init__(
        self,
        handler: Handler,
        methods: tuple[str, ...],
        params: Schema | None,
        answers: dict[int, Answer],
        bulk: bool,
        raises: Raises = (),
        json_body: bool = False,
    ) -> None:
        self.handler = handler
        self.methods = methods
        self.params = params
        self.answers = answers
        self.bulk = bulk
        self.raises = tuple(raises)
        self.json_body = json_body
        self.__name__ = handler.__name__
        self.__doc__ = handler.__doc__

    @property
    def error_statuses(self) -> frozenset[int]:
        """Every error status this endpoint can answer: the wrapper's (405, 500); 400 and
        the missing-parameter codes of its required parameters if it has parameters;
        and the status of each error it declares it raises."""
        codes = set(WRAPPER_STATUSES)
        if self.params is not None and self.params.fields:
            codes.add(400)
            required = {name for name, f in self.params.fields.items() if f.required}
            codes |= {code for name, code in MISSING_STATUS if name in required}
        for kind in self.raises:
            codes.add(kind if isinstance(kind, int) else status_of_kind(kind))
        return frozenset(codes)

    def __call__(self, request: flask.Request, app: App) -> flask.Response:
        """Answer ``request``; log lines written meanwhile carry its trace id."""
        with request_trace(request.headers):
            return self._answer(request, app)

    def _answer(self, request: flask.Request, app: App) -> flask.Response:
        if request.method not in self.methods:
            response = error_response(
                405, f"method {request.method} not allowed; use {' or '.join(self.methods)}"
            )
            response.headers["Allow"] = ", ".join(self.methods)
            return response
        try:
            with budget(None if self.bulk else app.services.settings().firestore_deadline):
                return self.handler(request, app)
        except HttpError as exc:
            return error_response(exc.status, exc.message, exc.fields)
        except TrackerError as exc:
            status = status_of(exc)
            level = logging.WARNING if status >= 500 else logging.INFO
            log.log(level, "%s %s: %d %s", request.method, request.path, status, exc)
            return error_response(status, str(exc), exc.fields)
        except ConfigError as exc:
            log.error("configuration error:\n%s", exc)
            return error_response(500, f"configuration error: {exc}")
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            return error_response(500, "internal error")


def endpoint(
    methods: Iterable[str],
    params: Schema | None = None,
    answers: Mapping[int, Answer] | None = None,
    bulk: bool = False,
    raises: Raises = (),
    json_body: bool = False,
) -> Callable[[Handler], Endpoint]:
    """Wrap a handler: answer 405 for other methods and map errors to status codes.

    ``raises`` lists what the handler (and the operations it calls) can raise:
    the kinds of tracker error and the statuses of its own ``HttpError``s; the
    OpenAPI document lists exactly the error answers they and the parameters give
    (:attr:`Endpoint.error_statuses`).

    The handler's Firestore calls share one budget of ``FIRESTORE_DEADLINE_SECONDS``,
    counted from when it starts; a ``bulk`` handler (one that works through many
    documents, within a longer function timeout) has none, and each of its
    Firestore calls is bounded on its own (:mod:`shared.store.deadline`).
    ``json_body`` says, for the OpenAPI document, that the handler also takes its
    parameters from a JSON body (``parse(..., json_body=True)``).
    """
    allowed = tuple(methods)
    described = dict(answers or {200: Answer("done")})

    def decorate(handler: Handler) -> Endpoint:
        return Endpoint(handler, allowed, params, described, bulk, raises, json_body)

    return decorate


@dataclass(frozen=True)
class Route:
    """One path the router serves: the route group that enables it and its endpoint."""

    path: str
    group: str
    handler: Endpoint


def params(request: flask.Request, json_body: bool = False) -> dict[str, str]:
    """Return the request's parameters: query string, then form body (the body wins, as in Go).

    With ``json_body``, an ``application/json`` body (what Python's
    ``requests.post(json=...)`` sends) also carries them: a JSON object whose
    values are strings (``null`` counts as absent, other keys are ignored); a
    body that is empty or only whitespace is no body. Its parameters join the
    query string's, where an empty value (``?id=``) counts as absent; one given
    in both with different values, malformed JSON or a value that is not a
    string is a 400, and so is a JSON object sent without a JSON content type
    (``curl -d`` sends it as a form body; some clients send none). Every value
    of a repeated query parameter must agree with the body's.
    """
    merged = {k: request.args.get(k, "") for k in request.args}
    if (
        json_body
        and not request.is_json
        and request.mimetype != "multipart/form-data"
        and request.get_data(cache=True).lstrip().startswith(b"{")
    ):  # curl -d '{...}' without -H 'Content-Type: application/json', or no content type at all
        raise HttpError(400, "the body is JSON: send it with Content-Type: application/json")
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        merged.update({k: request.form.get(k, "") for k in request.form})
    elif json_body and request.is_json and request.get_data(cache=True).strip():
        for name, value in json_params(request.get_data(cache=True)).items():
            if any(given not in ("", value) for given in request.args.getlist(name)):
                raise HttpError(
                    400,
                    f"parameter {name!r} differs between the query string and the JSON body",
                    {name: ["given twice with different values"]},
                )
            merged[name] = value
    return merged


def json_params(body: bytes) -> dict[str, str]:
    """Return the parameters of a JSON body (an object of strings); :class:`HttpError` 400 if not."""
    try:
        data = json.loads(body)
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise HttpError(400, f"malformed JSON body: {exc}") from None
    except RecursionError:
        raise HttpError(400, "malformed JSON body: nested too deeply") from None
    if not isinstance(data, dict):
        raise HttpError(400, f"the JSON body must be an object, not {_json_kind(data)}")
    wrong = sorted(k for k, v in data.items() if v is not None and not isinstance(v, str))
    if wrong:
        raise HttpError(
            400,
            f"JSON body: {', '.join(map(repr, wrong))} must be a string",
            {k: ["must be a string"] for k in wrong},
        )
    unencodable = sorted(k for k, v in data.items() if isinstance(v, str) and not is_utf8(v))
    if unencodable:  # a lone surrogate (\udcff): JSON can carry it, UTF-8 cannot
        raise HttpError(
            400,
            f"JSON body: {', '.join(map(repr, unencodable))} is not valid Unicode text",
            {k: ["not valid Unicode text (a lone surrogate)"] for k in unencodable},
        )
    return {k: v for k, v in data.items() if v is not None}


def _json_kind(value: object) -> str:
    """Name a parsed JSON value's kind in JSON's terms: ``null``, ``an array``, ``a number``, …"""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return "a string" if isinstance(value, str) else "an array"


def parse(schema: Schema, request: flask.Request, json_body: bool = False) -> Any:
    """Load the request's parameters with ``schema`` (into its dataclass); :class:`HttpError` if bad.

    Parameters are judged in the Go handlers' order (``id``, then ``state`` or
    ``error``, then the rest): the first one in error sets the status — its
    own code if it is missing, else 400 — and the message lists every error.
    ``json_body``: they may also come in a JSON body (:func:`params`).
    """
    try:
        return schema.load(params(request, json_body))
    except ValidationError as exc:
        errors: dict[str, Any] = exc.normalized_messages()
        detail = "; ".join(f"{k}: {' '.join(map(str, v))}" for k, v in sorted(errors.items()))
        codes = dict(MISSING_STATUS)
        first = next((name for name in codes if name in errors), None)
        if first is not None and MISSING in errors[first]:
            raise HttpError(codes[first], f"missing parameter {first!r}", errors) from None
        raise HttpError(400, f"invalid parameters: {detail}", errors) from None


def json_response(body: Any, status: int = 200) -> flask.Response:
    """Return ``body`` as a JSON response."""
    return flask.Response(
        json.dumps(body, ensure_ascii=False), status=status, mimetype="application/json"
    )


def error_response(
    status: int, message: str, fields: dict[str, Any] | None = None
) -> flask.Response:
    """Return the JSON error body ``{"error": message, "status": status[, "fields": …]}``."""
    body: dict[str, Any] = {"error": message, "status": status}
    if fields:
        body["fields"] = fields
    return json_response(body, status)
