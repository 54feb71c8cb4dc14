"""Errors raised by tracker operations: one family under :class:`TrackerError`.

Each kind says what went wrong in the tracker's terms, never in HTTP's: a
request that is not valid (:class:`Invalid`), one that conflicts with the
job's state or the tracker's (:class:`Conflict`), a job that does not exist
(:class:`NotFound`), a backing service that did not answer
(:class:`Unavailable`). The web layer maps each kind to one status code
(:data:`shared.web.errors.ERROR_STATUS`). As in procrastinate's exceptions, a
class's docstring is its default message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shared.model import State


class TrackerError(Exception):
    """The tracker refused the request."""

    def __init__(self, message: str | None = None, fields: dict[str, Any] | None = None) -> None:
        """``message`` defaults to the class's docstring; ``fields`` details the problem by name."""
        super().__init__(message or (self.__doc__ or "").strip().split("\n")[0])
        self.fields = fields or {}


class Invalid(TrackerError):
    """The request is not valid."""


class Conflict(TrackerError):
    """The request conflicts with the state of the job or of the tracker."""


class NotFound(TrackerError):
    """No such job."""


class Unavailable(TrackerError):
    """A backing service (Firestore, GCS) did not answer or asked to be retried later."""


class JobNotFound(NotFound):
    """No job has this key."""

    def __init__(self, key: str) -> None:
        super().__init__(f"job {key} not found")
        self.key = key


class JobAlreadyExists(Conflict):
    """The job is in flight, or this very offer of it was already handed out."""

    def __init__(self, key: str, state: State, offer: str = "", reoffer: str = "") -> None:
        super().__init__(f"job {key} already exists in state {state.value}")
        self.key = key
        self.state = state
        self.offer = offer  # the offer that started the existing run
        self.reoffer = reoffer  # an offer it already owes, if any


class IllegalTransition(Conflict):
    """The transition table does not allow this change (or any change: a terminal job)."""

    def __init__(
        self,
        key: str,
        current: State,
        requested: State,
        terminal: bool = False,
        message: str = "",
    ) -> None:
        """``message`` replaces the default one (for a case that knows better what to do)."""
        if message:
            msg = message
        elif terminal:
            msg = (
                f"job {key} is {current.value}, a terminal state, so it cannot take "
                f"{requested.value}; add the job again to restart it"
            )
        else:
            msg = f"job {key} cannot go from {current.value} to {requested.value}"
        super().__init__(msg)
        self.key = key
        self.current = current
        self.requested = requested


class StaleRun(Conflict):
    """The caller's run of the job is over: the job was handed out again since."""

    def __init__(self, key: str, run: str, current: str, started: str) -> None:
        now = f"run {current}" if current else "a run without a token"
        super().__init__(
            f"job {key}: run {run} is no longer current ({now} started "
            f"{started}); nothing was written"
        )
        self.key = key
        self.run = run
        self.current = current


class NotParserState(Conflict):
    """A parser asked for a change that belongs to post-processing or operators."""

    def __init__(
        self, key: str, current: State, requested: State, owner: str, owns_current: bool
    ) -> None:
        """``owner`` owns ``current`` if ``owns_current``, else ``requested``."""
        if requested is current:
            msg = f"job {key} is {current.value}, which {owner} owns; a parser cannot update it"
        elif not owns_current:
            msg = (
                f"job {key}: {requested.value} is set by {owner}, not by a parser "
                f"(the job is {current.value})"
            )
        else:
            msg = (
                f"job {key} is {current.value}, which {owner} owns; a parser cannot "
                f"move it to {requested.value}"
            )
        super().__init__(msg)
        self.key = key
        self.current = current
        self.requested = requested


class StoreUnavailable(Unavailable):
    """The job store did not answer or asked to be retried later.

    A read or transaction that fails this way changed nothing; a single write
    that timed out may still have been applied, as with any lost answer.
    """
