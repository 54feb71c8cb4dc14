"""Errors raised by tracker operations; the HTTP layer maps each to one status code."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.model import State


class TrackerError(Exception):
    """Base of every error a tracker operation raises on purpose."""


class JobNotFound(TrackerError):
    """No job has this key."""

    def __init__(self, key: str) -> None:
        super().__init__(f"job {key} not found")
        self.key = key


class JobAlreadyExists(TrackerError):
    """The job is in flight, or this very offer of it was already handed out."""

    def __init__(self, key: str, state: State, offer: str = "", reoffer: str = "") -> None:
        super().__init__(f"job {key} already exists in state {state.value}")
        self.key = key
        self.state = state
        self.offer = offer  # the offer that started the existing run
        self.reoffer = reoffer  # an offer it already owes, if any


class IllegalTransition(TrackerError):
    """The transition table does not allow this change (or any change: a terminal job)."""

    def __init__(
        self, key: str, current: State, requested: State, terminal: bool = False
    ) -> None:
        if terminal:
            msg = (f"job {key} is {current.value}, a terminal state, so it cannot take "
                   f"{requested.value}; add the job again to restart it")
        else:
            msg = f"job {key} cannot go from {current.value} to {requested.value}"
        super().__init__(msg)
        self.key = key
        self.current = current
        self.requested = requested


class StaleRun(TrackerError):
    """The caller's run of the job is over: the job was handed out again since."""

    def __init__(self, key: str, run: str, current: str, started: str) -> None:
        now = f"run {current}" if current else "a run without a token"
        super().__init__(f"job {key}: run {run} is no longer current ({now} started "
                         f"{started}); nothing was written")
        self.key = key
        self.run = run
        self.current = current


class NotParserState(TrackerError):
    """A parser asked for a change that belongs to post-processing or operators."""

    def __init__(self, key: str, current: State, requested: State, owner: str,
                 owns_current: bool) -> None:
        """``owner`` owns ``current`` if ``owns_current``, else ``requested``."""
        if requested is current:
            msg = f"job {key} is {current.value}, which {owner} owns; a parser cannot update it"
        elif not owns_current:
            msg = (f"job {key}: {requested.value} is set by {owner}, not by a parser "
                   f"(the job is {current.value})")
        else:
            msg = (f"job {key} is {current.value}, which {owner} owns; a parser cannot "
                   f"move it to {requested.value}")
        super().__init__(msg)
        self.key = key
        self.current = current
        self.requested = requested


class Unavailable(TrackerError):
    """A backing service (Firestore, GCS) did not answer or asked to be retried later."""


class StoreUnavailable(Unavailable):
    """The job store did not answer or asked to be retried later.

    A read or transaction that fails this way changed nothing; a single write
    that timed out may still have been applied, as with any lost answer.
    """
