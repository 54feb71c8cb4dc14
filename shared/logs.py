"""Logging set-up: JSON lines for Cloud Logging in the cloud, readable text locally.

In JSON each line carries ``severity``, ``message``, ``logger``, ``time``,
the request's trace (``logging.googleapis.com/trace`` =
``projects/<project>/traces/<trace id>``, taken from the
``X-Cloud-Trace-Context`` or ``traceparent`` header of the request being
served) and any fields passed as ``extra`` — every state change logs ``job``,
``old_state`` and ``new_state``. Cloud Logging reads these fields from a
function's standard error, so lines group under their request in the console.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from pythonjsonlogger.json import JsonFormatter

if TYPE_CHECKING:
    from werkzeug.datastructures import Headers

#: The Cloud Logging field that ties a line to its request's trace.
TRACE_FIELD = "logging.googleapis.com/trace"

#: The trace id of the request being served (None outside a request).
current_trace: ContextVar[str | None] = ContextVar("current_trace", default=None)

_CLOUD_TRACE = re.compile(r"^([0-9a-fA-F]{32})(?:/|;|$)")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")

TEXT_FORMAT = "%(levelname)s %(name)s: %(message)s"


def trace_id(headers: Headers | Mapping[str, str]) -> str | None:
    """Return the trace id of ``X-Cloud-Trace-Context`` (``TRACE/SPAN;o=1``) or ``traceparent``."""
    match = _CLOUD_TRACE.match(headers.get("X-Cloud-Trace-Context", "") or "")
    if match is None:
        match = _TRACEPARENT.match((headers.get("traceparent", "") or "").strip())
    if match is None or set(match[1]) == {"0"}:
        return None
    return match[1].lower()


@contextmanager
def request_trace(headers: Headers | Mapping[str, str]) -> Iterator[str | None]:
    """Within the block, log lines carry the trace of the request with ``headers``."""
    token = current_trace.set(trace_id(headers))
    try:
        yield current_trace.get()
    finally:
        current_trace.reset(token)


class CloudLoggingFormatter(JsonFormatter):
    """One JSON object per line with the fields Cloud Logging understands."""

    def __init__(self, project: str | None = None, **kwargs: Any) -> None:
        super().__init__(timestamp="time", rename_fields={"exc_info": "stack_trace"}, **kwargs)
        self.project = project

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        """Add severity, message, logger and the trace to the record's own fields."""
        super().add_fields(log_data, record, message_dict)
        log_data["severity"] = record.levelname
        log_data["message"] = record.getMessage()
        log_data["logger"] = record.name
        trace = current_trace.get()
        if trace:
            log_data[TRACE_FIELD] = (
                f"projects/{self.project}/traces/{trace}" if self.project else trace
            )


def wants_json(env: Mapping[str, str]) -> bool:
    """JSON when ``LOG_FORMAT=json``, or on Cloud Run/Functions (``K_SERVICE`` set) unless ``LOG_FORMAT=text``."""
    chosen = env.get("LOG_FORMAT", "").strip().lower()
    if chosen in ("json", "text"):
        return chosen == "json"
    if chosen:
        raise ValueError(f"LOG_FORMAT must be json or text, not {chosen!r}")
    return bool(env.get("K_SERVICE"))


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a line is written (it may be replaced)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        """The current standard error."""
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def setup(env: Mapping[str, str] | None = None) -> logging.Handler:
    """Configure the root logger from ``LOG_LEVEL`` and ``LOG_FORMAT``; return its handler.

    Lines go to standard error. The plain stream handlers set up before
    (``logging.basicConfig``'s, functions-framework's, an earlier call's) are
    replaced, so no line is written twice; other handlers are kept.
    """
    env = os.environ if env is None else env
    handler = StderrHandler()
    if wants_json(env):
        project = env.get("GOOGLE_CLOUD_PROJECT") or env.get("GCLOUD_PROJECT") or None
        handler.setFormatter(CloudLoggingFormatter(project))
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        if type(old) in (logging.StreamHandler, StderrHandler):
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(env.get("LOG_LEVEL", "INFO").upper())
    return handler
