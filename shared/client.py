"""Python client of the tracker for parsers: next job, updates, heartbeats, errors.

Usable on its own by a Python parser: it needs only :mod:`shared.transport`,
:mod:`shared.model` and :mod:`shared.schemas` (no Firestore, GCS or
BigQuery). Every call has a timeout, retries connection errors, 429 and 5xx
answers with jittered exponential backoff (see :class:`~shared.transport.Transport`),
sends a Google ID token to deployed ``https`` URLs and none to the local stack,
and returns a typed result or raises a :class:`TrackerCallError` that says
which call failed and why.

Retries are at-least-once. An update whose answer is lost on the wire is sent
again: a repeated ``parsing`` update counts one more update, and a repeated
state change may find the job moved on and raise :class:`TransitionRejected`.
A ``next`` whose answer is lost has already handed the job out; the retry gets
another job, and the lost one, never heard from, expires after the tracker's
timeout (``tracker.timeout``), becomes ``failed`` and is handed out again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests
from marshmallow import ValidationError

from shared.model import Datasets, Job, State
from shared.schemas import JobSchema
from shared.transport import Transport, TransportError, error_message


@dataclass(frozen=True)
class Assignment:
    """A job handed out by ``next``: its ``ID`` (``key~run``, the ``id`` of later calls) and the job.

    Calls with this ID are fenced: once the job is handed out again, they are
    refused (:class:`TransitionRejected`) and change nothing.
    """

    id: str
    job: Job

    @property
    def key(self) -> str:
        """The job key (the ID without its run token)."""
        return self.job.key()


@dataclass(frozen=True)
class UpdateResult:
    """The answer to ``update`` and ``error``: the ID sent, the job's new state and the state it left."""

    key: str
    state: State
    previous: State


class TrackerCallError(Exception):
    """A call the tracker refused or could not serve: which call, the HTTP status, why."""

    def __init__(self, call: str, status: int | None, message: str, url: str = "") -> None:
        where = f"HTTP {status}" if status is not None else "no answer"
        super().__init__(f"{call} failed ({where}): {message}")
        self.call = call
        self.status = status
        self.message = message
        self.url = url


class BadRequest(TrackerCallError):
    """A 4xx other than those below: a missing or malformed parameter, an unknown state or path."""


class NotAuthorized(TrackerCallError):
    """401 or 403: no or a wrong identity token, or the caller may not invoke the function."""


class JobGone(TrackerCallError):
    """410: the tracker has no such job (never handed out, or cleaned up)."""


class TransitionRejected(TrackerCallError):
    """409: the transition table forbids the change, the job is complete or failed, the
    state is not a parser's to set, or the run was handed out again since (stale)."""


class TrackerUnavailable(TrackerCallError):
    """No usable answer after every attempt: connection errors, timeouts, 429 or 5xx."""


def _error_for(status: int) -> type[TrackerCallError]:
    if status == 410:
        return JobGone
    if status == 409:
        return TransitionRejected
    if status in (401, 403):
        return NotAuthorized
    if 400 <= status < 500:
        return BadRequest
    return TrackerCallError


def _is_no_job(response: requests.Response) -> bool:
    return response.status_code == 503 and response.text.strip().startswith("No job found")


class TrackerClient:
    """Calls one tracker deployment (the ``api`` function's root URL, or the local stack).

    ``options`` are :class:`shared.transport.Transport`'s: ``timeout`` bounds
    each attempt in seconds; ``attempts`` (the first try included), ``backoff``
    and ``max_backoff`` shape the retries; ``identity_token`` forces Google ID
    tokens on or off (default: on for ``https`` URLs that are not this machine).
    """

    def __init__(self, base_url: str, **options: Any) -> None:
        self.transport = Transport(base_url, **options)

    def next(self) -> Assignment | None:
        """Take the next job; None when the tracker has none now (ask again in about 10 s).

        Only the tracker's "No job found" 503 means none; any other 503 (the
        tracker's storage overloaded) is retried like every 5xx.
        """
        response = self._call("next", "/v2/job/next", answers=(503,), accept=_is_no_job)
        if _is_no_job(response):
            return None
        body = self._json("next", response)
        try:
            job_id = body["ID"]
            fields = JobSchema().load(body["Job"])
        except (KeyError, TypeError, ValidationError) as exc:
            raise TrackerCallError(
                "next", response.status_code, f"unexpected answer {body!r}: {exc}", response.url
            ) from None
        datasets = Datasets(**fields.pop("datasets"))
        return Assignment(str(job_id), Job(datasets=datasets, **fields))

    def update(self, job_id: str, state: State | str, detail: str = "") -> UpdateResult:
        """Report progress (same state: a new detail) or move the job to ``state``.

        ``job_id`` is the assignment's :attr:`~Assignment.id` (a bare key is not fenced).
        """
        state_name = State.parse(state.value if isinstance(state, State) else state).value
        response = self._call(
            "update", "/v2/job/update", data={"id": job_id, "state": state_name, "detail": detail}
        )
        return self._update_result("update", response)

    def heartbeat(self, job_id: str) -> bool:
        """Tell the tracker the job's parser is alive; return whether it was recorded.

        False means it was acknowledged without a write (another heartbeat came
        only seconds before); the job is alive either way.
        """
        response = self._call("heartbeat", "/v2/job/heartbeat", data={"id": job_id})
        body = self._json("heartbeat", response)
        recorded = body.get("Recorded") if isinstance(body, dict) else None
        if not isinstance(recorded, bool):
            raise TrackerCallError(
                "heartbeat", response.status_code, f"unexpected answer {body!r}", response.url
            )
        return recorded

    def error(self, job_id: str, message: str) -> UpdateResult:
        """Report a parse error: the job goes to ``parseError`` with ``message`` as detail."""
        response = self._call("error", "/v2/job/error", data={"id": job_id, "error": message})
        return self._update_result("error", response)

    def _call(self, call: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            response = self.transport.request("POST", path, call=call, **kwargs)
        except TransportError as exc:
            raise TrackerUnavailable(call, exc.status, exc.reason, exc.url) from exc
        if response.status_code >= 300 and not _is_no_job(response):
            raise _error_for(response.status_code)(
                call, response.status_code, error_message(response), response.url
            )
        return response

    @staticmethod
    def _json(call: str, response: requests.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise TrackerCallError(
                call,
                response.status_code,
                f"answer is not JSON: {response.text[:200]!r}",
                response.url,
            ) from None

    def _update_result(self, call: str, response: requests.Response) -> UpdateResult:
        body = self._json(call, response)
        try:
            return UpdateResult(str(body["ID"]), State(body["State"]), State(body["Previous"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise TrackerCallError(
                call, response.status_code, f"unexpected answer {body!r}: {exc}", response.url
            ) from None
