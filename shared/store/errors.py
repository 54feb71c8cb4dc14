"""What the store raises and how it retries.

The document errors of compare-and-set and create-only writes; the transient
Firestore errors, raised to callers as :class:`~shared.errors.StoreUnavailable`
(``guarded``, ``transient_as_unavailable``, ``transient_cause``, used by
every store of the package); the retry of the single writes.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import ParamSpec, TypeVar

from google.api_core import exceptions as gexc
from google.api_core.retry import Retry, if_exception_type
from google.cloud import firestore

from shared.errors import StoreUnavailable


class DocumentMissing(Exception):
    """The job document does not exist."""


class DocumentExists(Exception):
    """A create-only write found the job document already there."""


class DocumentChanged(Exception):
    """A compare-and-set write found the job document changed since it was read."""


#: Firestore errors that say "try again later", not "your request is wrong".
TRANSIENT = (
    gexc.ServiceUnavailable,
    gexc.DeadlineExceeded,
    gexc.InternalServerError,
    gexc.Aborted,
    gexc.TooManyRequests,
    gexc.ResourceExhausted,
    gexc.RetryError,
)

#: Retry of the single writes of the hot path (detail, heartbeat, re-offer) and of the
#: cursors: the client library retries a commit on UNAVAILABLE and RESOURCE_EXHAUSTED;
#: this adds ABORTED (a write refused under contention, never applied, so safe to
#: repeat even for an ``Increment``), with exponential backoff for at most 20 s.
WRITE_RETRY = Retry(
    predicate=if_exception_type(gexc.Aborted, gexc.ServiceUnavailable, gexc.ResourceExhausted),
    initial=0.1,
    maximum=2.0,
    multiplier=2.0,
    timeout=20.0,
)

#: Idempotent single writes (heartbeat, re-offer, cursor ``Maximum``) are also repeated after
#: DEADLINE_EXCEEDED: applying one twice changes nothing.
IDEMPOTENT_WRITE_RETRY = WRITE_RETRY.with_predicate(
    if_exception_type(
        gexc.Aborted, gexc.ServiceUnavailable, gexc.ResourceExhausted, gexc.DeadlineExceeded
    )
)

_P = ParamSpec("_P")
_R = TypeVar("_R")


@contextlib.contextmanager
def transient_as_unavailable() -> Iterator[None]:
    try:
        yield
    except TRANSIENT as exc:
        raise StoreUnavailable(f"Firestore unavailable: {exc}") from exc


def transient_cause(exc: BaseException) -> BaseException | None:
    """The transient Firestore error (or run-out deadline) behind a ``ValueError`` of the
    client's transaction runner.

    The runner wraps a commit aborted on every attempt in ``ValueError`` (``from`` the
    last ``Aborted``), and a failure before the transaction began becomes the
    ``ValueError`` of its own rollback (with the failure as context).
    """
    for cause in (exc.__cause__, exc.__context__):
        if isinstance(cause, (*TRANSIENT, StoreUnavailable)):
            return cause
    return None


def unavailable(cause: BaseException) -> StoreUnavailable:
    """The :class:`StoreUnavailable` of a :func:`transient_cause`."""
    if isinstance(cause, StoreUnavailable):  # a deadline ran out (shared.store.deadline)
        return StoreUnavailable(str(cause))
    return StoreUnavailable(f"Firestore unavailable: {cause}")


def run_transaction(client: firestore.Client, body: Callable[[firestore.Transaction], _R]) -> _R:
    """Run ``body`` in a read-write transaction (retried by the client on contention).

    A transient failure, or a commit aborted on every attempt, is raised as
    :class:`StoreUnavailable`; whatever ``body`` raises goes through unchanged.
    """
    try:
        # firestore.transactional() drops the wrapped function's type.
        result: _R = firestore.transactional(body)(client.transaction())
    except ValueError as exc:
        cause = transient_cause(exc)
        if cause is None:
            raise
        raise unavailable(cause) from exc
    return result


def guarded(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """Raise :class:`StoreUnavailable` for a transient Firestore error in ``method``."""

    @functools.wraps(method)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with transient_as_unavailable():
            return method(*args, **kwargs)

    return wrapper
