"""HTTP status codes: of the tracker's errors, of missing parameters, and the web layer's own error.

Status codes follow the Go tracker's handlers — 405 wrong method, 422 no id,
424 no state or error, 410 unknown job — plus 409 for a conflict (a
transition the table forbids or any change to a terminal job, a state a
parser does not own, a run that is no longer current, an operator's action
the job's state refuses), 400 for every other malformed or refused request,
and 503 for a backend that did not answer in time (each request's Firestore
calls share one budget of ``FIRESTORE_DEADLINE_SECONDS``,
:mod:`shared.store.deadline`). Every error answers before anything is written.
"""

from __future__ import annotations

from typing import Any

from shared.errors import Conflict, Invalid, NotFound, TrackerError, Unavailable

#: HTTP status of each kind of tracker error; an error answers as the first of its classes
#: (its own, then its bases) listed here.
ERROR_STATUS: dict[type[TrackerError], int] = {
    Invalid: 400,
    Conflict: 409,
    NotFound: 410,  # the Go tracker answers an unknown job with 410 Gone
    Unavailable: 503,
    TrackerError: 400,
}

#: Parameters whose absence has its own status code in the Go tracker, in the
#: order the Go handlers check them.
MISSING_STATUS: tuple[tuple[str, int], ...] = (("id", 422), ("state", 424), ("error", 424))


def status_of(error: TrackerError) -> int:
    """Return the HTTP status that answers ``error`` (:data:`ERROR_STATUS`)."""
    return status_of_kind(type(error))


def status_of_kind(kind: type[TrackerError]) -> int:
    """Return the HTTP status that answers every error of class ``kind`` (:data:`ERROR_STATUS`)."""
    return next(ERROR_STATUS[c] for c in kind.__mro__ if c in ERROR_STATUS)


class HttpError(Exception):
    """An error of the request itself (parameters, identity): ``status`` and a JSON body."""

    def __init__(self, status: int, message: str, fields: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.fields = fields or {}
