"""HTTP helpers shared by the entry points: parameters, validation, errors, responses.

Status codes follow the Go tracker's handlers — 405 wrong method, 422 no id,
424 no state or error, 410 unknown job — plus 409 for a transition the table
forbids (or any change to a terminal job), for a state a parser does not own
and for a run that is no longer current, and 400 for every other malformed
parameter. Every error answers before anything is written. A backend that
does not answer in time answers 503: each request's Firestore calls share one
budget of ``FIRESTORE_DEADLINE_SECONDS`` (:mod:`shared.store.deadline`).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import flask
from marshmallow import Schema, ValidationError

from shared import runtime
from shared.config import ConfigError
from shared.errors import (
    IllegalTransition,
    JobAlreadyExists,
    JobNotFound,
    NotParserState,
    StaleRun,
    TrackerError,
    Unavailable,
)
from shared.logs import request_trace
from shared.schemas import MISSING
from shared.store import budget

log = logging.getLogger(__name__)

Handler = Callable[[flask.Request], flask.Response]

#: HTTP status of each kind of tracker error (subclasses answer as their base).
ERROR_STATUS: dict[type[TrackerError], int] = {
    JobNotFound: 410,
    IllegalTransition: 409,
    JobAlreadyExists: 409,
    NotParserState: 409,
    StaleRun: 409,
    Unavailable: 503,
}

#: Parameters whose absence has its own status code in the Go tracker, in the
#: order the Go handlers check them.
MISSING_STATUS: tuple[tuple[str, int], ...] = (("id", 422), ("state", 424), ("error", 424))


class HttpError(Exception):
    """An error answered with ``status`` and a JSON body naming the problem."""

    def __init__(self, status: int, message: str, fields: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.fields = fields or {}


def params(request: flask.Request) -> dict[str, str]:
    """Return the request's parameters: query string, then form body (the body wins, as in Go)."""
    merged = {k: request.args.get(k, "") for k in request.args}
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        merged.update({k: request.form.get(k, "") for k in request.form})
    return merged


def parse(schema: Schema, request: flask.Request) -> dict[str, Any]:
    """Validate the request's parameters with ``schema``; :class:`HttpError` if they are bad.

    Parameters are judged in the Go handlers' order (``id``, then ``state`` or
    ``error``, then the rest): the first one in error sets the status — its
    own code if it is missing, else 400 — and the message lists every error.
    """
    try:
        return schema.load(params(request))
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


def error_response(status: int, message: str, fields: dict[str, Any] | None = None) -> flask.Response:
    """Return the JSON error body ``{"error": message, "status": status[, "fields": …]}``."""
    body: dict[str, Any] = {"error": message, "status": status}
    if fields:
        body["fields"] = fields
    return json_response(body, status)


@dataclass(frozen=True)
class Answer:
    """An answer an endpoint gives besides its errors, as the OpenAPI document describes it."""

    description: str
    content: tuple[str, ...] = ("application/json",)
    schema: Schema | None = None  # the JSON body's shape, if it has a fixed one


def endpoint(
    methods: Iterable[str],
    params: Schema | None = None,
    answers: Mapping[int, Answer] | None = None,
    bulk: bool = False,
) -> Callable[[Handler], Handler]:
    """Wrap a handler: answer 405 for other methods and map errors to status codes.

    The handler's Firestore calls share one budget of ``FIRESTORE_DEADLINE_SECONDS``,
    counted from when it starts; a ``bulk`` handler (one that works through many
    documents, within a longer function timeout) has none, and each of its
    Firestore calls is bounded on its own (:mod:`shared.store.deadline`).

    The wrapper carries what the OpenAPI document says of the endpoint:
    ``methods`` (allowed), ``params`` (the schema its parameters are parsed
    with) and ``answers`` (by status code, besides the errors).

    Log lines written while the handler runs carry the request's trace id.
    """
    allowed = tuple(methods)
    described = dict(answers or {200: Answer("done")})

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        def traced(request: flask.Request) -> flask.Response:
            with request_trace(request.headers):
                return wrapper(request)

        def wrapper(request: flask.Request) -> flask.Response:
            if request.method not in allowed:
                response = error_response(
                    405, f"method {request.method} not allowed; use {' or '.join(allowed)}"
                )
                response.headers["Allow"] = ", ".join(allowed)
                return response
            try:
                with budget(None if bulk else runtime.settings().firestore_deadline):
                    return handler(request)
            except HttpError as exc:
                return error_response(exc.status, exc.message, exc.fields)
            except TrackerError as exc:
                status = next((ERROR_STATUS[c] for c in type(exc).__mro__ if c in ERROR_STATUS), 400)
                level = logging.WARNING if status >= 500 else logging.INFO
                log.log(level, "%s %s: %d %s", request.method, request.path, status, exc)
                return error_response(status, str(exc))
            except ConfigError as exc:
                log.error("configuration error:\n%s", exc)
                return error_response(500, f"configuration error: {exc}")
            except Exception:
                log.exception("%s %s failed", request.method, request.path)
                return error_response(500, "internal error")

        traced.methods = allowed  # type: ignore[attr-defined]
        traced.params = params  # type: ignore[attr-defined]
        traced.answers = described  # type: ignore[attr-defined]
        return traced

    return decorate
