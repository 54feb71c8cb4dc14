"""Deadlines of Firestore calls: no request waits on Firestore longer than a set number of seconds.

Two bounds, both enforced under the client library, on every gRPC call of a
:class:`DeadlineClient` (reads, queries, aggregations, ``get_all``, batch
commits, and a transaction's begin, commit and rollback alike):

* **Per call.** A unary call (commit, begin, rollback, …) gets a gRPC
  deadline of at most ``seconds``; a streamed read (document reads,
  queries, aggregations) is cancelled when ``seconds`` pass without its next
  answer — a long stream that keeps answering (a snapshot export) is not cut.
* **Per request.** :func:`budget` opens a budget of ``seconds`` that every
  call made under it shares: each call's deadline is at most what is left,
  and a call (or a retry of one) started after it is spent fails at once —
  but a transaction's rollback, which releases its locks, still gets
  :data:`ROLLBACK_GRACE`. The HTTP layer opens one per request.

A call that runs out raises :class:`~shared.errors.StoreUnavailable` (``Firestore
did not answer within N s``) at once: it is not retried by the client
library's retry policies, which would otherwise repeat it for up to 300 s;
and those policies, which repeat a refused call, give up after ``seconds``.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import grpc
from google.api_core.retry import Retry
from google.cloud import firestore
from google.cloud.firestore_v1.services.firestore import client as firestore_client
from google.cloud.firestore_v1.services.firestore.transports.grpc import FirestoreGrpcTransport

from shared import defaults
from shared.errors import StoreUnavailable

_P = ParamSpec("_P")
_R = TypeVar("_R")

#: Time a transaction's rollback gets when the budget is already spent (seconds).
ROLLBACK_GRACE = 1.0

#: How often the watchdog of streamed reads looks at them (seconds).
_TICK = 0.1


@dataclass(frozen=True)
class _Budget:
    seconds: float
    until: float  # time.monotonic()


_budget: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar(
    "firestore_budget", default=None
)


def timeout_message(seconds: float) -> str:
    """The message of a call that ran out of time."""
    return f"Firestore did not answer within {seconds:g} s"


def spent_message(seconds: float) -> str:
    """The message of a call refused because its request's budget was already spent."""
    return (
        f"the request's {seconds:g} s allowance for Firestore (FIRESTORE_DEADLINE_SECONDS) "
        "was spent before this call; time waiting on GCS counts too"
    )


@contextlib.contextmanager
def budget(seconds: float | None) -> Iterator[None]:
    """Let the Firestore calls made inside share ``seconds`` in all (None: no budget).

    Budgets nest: an inner one never ends after the outer one.
    """
    if seconds is None:
        yield
        return
    outer = _budget.get()
    inner = _Budget(seconds, time.monotonic() + seconds)
    if outer is not None and outer.until <= inner.until:
        inner = outer
    token = _budget.set(inner)
    try:
        yield
    finally:
        _budget.reset(token)


def in_budget(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Return ``fn`` bound to the current budget, to run in another thread (which has its own)."""
    current = _budget.get()

    def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        token = _budget.set(current)
        try:
            return fn(*args, **kwargs)
        finally:
            _budget.reset(token)

    return run


def _is_rollback(method: str | bytes) -> bool:
    name = method.decode() if isinstance(method, bytes) else method
    return name.endswith("/Rollback")


class _Details(
    collections.namedtuple(
        "_Details",
        ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression"),
    ),
    grpc.ClientCallDetails,
):
    pass


class _Stream:
    """A streamed call, cancelled by the watchdog when it waits on an answer too long."""

    def __init__(self, call: Any, idle: float, message: str, binding: bool) -> None:
        self._call = call
        self._idle = idle
        self._message = message
        self._binding = binding  # whether the call's own deadline is ours
        self._waiting_since: float | None = None
        self.fired = False

    def expire(self, now: float) -> None:
        """Cancel the call if it has waited on its next answer for too long."""
        since = self._waiting_since
        if since is not None and now - since >= self._idle and not self.fired:
            self.fired = True
            self._call.cancel()

    def __iter__(self) -> _Stream:
        return self

    def __next__(self) -> Any:
        self._waiting_since = time.monotonic()
        try:
            return next(self._call)
        except grpc.RpcError as exc:
            code = getattr(exc, "code", None)
            deadline = code is not None and code() == grpc.StatusCode.DEADLINE_EXCEEDED
            if self.fired or (deadline and self._binding):
                raise StoreUnavailable(self._message) from None
            raise
        finally:
            self._waiting_since = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._call, name)


class _Watchdog:
    """One thread that cancels streamed calls waiting on an answer too long."""

    def __init__(self) -> None:
        self._streams: weakref.WeakSet[_Stream] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def watch(self, stream: _Stream) -> None:
        """Watch ``stream`` until it is dropped."""
        with self._lock:
            self._streams.add(stream)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="firestore-deadline", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(_TICK)
            with self._lock:
                streams = list(self._streams)
            now = time.monotonic()
            for stream in streams:
                stream.expire(now)
            del streams


_WATCHDOG = _Watchdog()


class DeadlineInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Bounds every call of a gRPC channel: ``seconds`` per call, and the current :func:`budget`."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def _bound(
        self,
        details: grpc.ClientCallDetails,
        cap: float | None,
    ) -> tuple[grpc.ClientCallDetails, str, bool]:
        """The call's details with its deadline, the message if it runs out, whether it binds."""
        b = _budget.get()
        seconds = self.seconds
        if b is not None:
            left = b.until - time.monotonic()
            if left <= 0:
                if not _is_rollback(details.method):
                    raise StoreUnavailable(spent_message(b.seconds))
                left = ROLLBACK_GRACE  # release the transaction's locks if Firestore can
            seconds = b.seconds
            cap = left if cap is None else min(cap, left)
        given: float | None = details.timeout
        binding = cap is not None and (given is None or cap < given)
        timeout = cap if binding else given
        bounded = _Details(
            details.method,
            timeout,
            details.metadata,
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )
        return bounded, timeout_message(seconds), binding

    def intercept_unary_unary(
        self,
        continuation: Callable[..., Any],
        client_call_details: grpc.ClientCallDetails,
        request: Any,
    ) -> Any:
        """Call with a deadline of at most ``seconds`` and what is left of the budget."""
        details, message, binding = self._bound(client_call_details, self.seconds)
        outcome = continuation(details, request)
        exc = outcome.exception()
        if (
            binding
            and isinstance(exc, grpc.RpcError)
            and outcome.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        ):
            raise StoreUnavailable(message) from None
        return outcome

    def intercept_unary_stream(
        self,
        continuation: Callable[..., Any],
        client_call_details: grpc.ClientCallDetails,
        request: Any,
    ) -> Any:
        """Call with a deadline of what is left of the budget; cancel after ``seconds`` idle."""
        details, message, binding = self._bound(client_call_details, None)
        stream = _Stream(continuation(details, request), self.seconds, message, binding)
        _WATCHDOG.watch(stream)
        return stream


class DeadlineClient(firestore.Client):
    """A Firestore client whose every call is bounded by a :class:`DeadlineInterceptor`."""

    def __init__(
        self, *args: Any, deadline: float = defaults.FIRESTORE_DEADLINE, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.deadline = deadline
        interceptor = self._interceptor = DeadlineInterceptor(deadline)

        class Transport(FirestoreGrpcTransport):
            @classmethod
            def create_channel(cls, *args: Any, **kwargs: Any) -> grpc.Channel:
                return grpc.intercept_channel(super().create_channel(*args, **kwargs), interceptor)

        self._transport_class = Transport
        self._retries_bounded = False

    def _emulator_channel(self, transport: Any) -> Any:
        # firestore_v1's _emulator_channel is unannotated.
        channel = super()._emulator_channel(transport)  # type: ignore[no-untyped-call]
        return grpc.intercept_channel(channel, self._interceptor)

    @property
    def _firestore_api(self) -> Any:
        api = self._firestore_api_helper(
            self._transport_class, firestore_client.FirestoreClient, firestore_client
        )
        if not self._retries_bounded:
            self._retries_bounded = True
            _bound_default_retries(api, self.deadline)
        return api


def _bound_default_retries(api: Any, seconds: float) -> None:
    """Let the library's default retry of each RPC give up after ``seconds`` (not 60 to 300 s).

    Inside a request the budget stops retries sooner; this bounds the calls of
    bulk handlers, which have none (a refused connection is retried until then).
    """
    methods = getattr(getattr(api, "_transport", None), "_wrapped_methods", {})
    for wrapped in methods.values():
        retry = getattr(wrapped, "_retry", None)
        if isinstance(retry, Retry) and (retry.timeout is None or retry.timeout > seconds):
            wrapped._retry = retry.with_timeout(seconds)
