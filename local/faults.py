"""Firestore faults injected into a function server's own process, for local and test runs only.

``python -m local.faults --target=api ...`` is ``functions-framework`` with
one addition: when ``GARDENER_FAULTS`` names a schedule file, every Firestore
client the process creates has its gRPC calls wrapped, underneath the client
library's retry and timeout wrappers (as :mod:`tests.integration.test_faults`
does in-process), so that inside the schedule's windows a call fails, with the
window's probability, with ``Aborted``, ``ServiceUnavailable`` or
``DeadlineExceeded`` before it reaches the emulator. Production code is
untouched: the deployed functions never import this module.

The schedule is JSON, written before the server starts::

    {"seed": 7, "windows": [{"start": 1764300000.0, "end": 1764300005.0, "rate": 0.3}]}

``start`` and ``end`` are Unix times. Decisions come from a generator seeded
with ``seed`` and the process id, so a replay makes the same kind of faults
(not the same calls: thread timing differs). The file is read again when it
changes.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The environment variable that names the fault schedule; unset, nothing is injected.
FAULTS_ENV = "GARDENER_FAULTS"

#: The gRPC methods of the Firestore client that the stores use, and may fail. ``rollback``
#: is left alone: a rollback that never arrives leaves its documents locked until the
#: backend drops the transaction (60 s on the emulator), long after the fault.
RPCS = ("batch_get_documents", "begin_transaction", "commit", "run_query", "run_aggregation_query")


@dataclass(frozen=True)
class Window:
    """From ``start`` to ``end`` (Unix seconds), each Firestore call fails with probability ``rate``."""

    start: float
    end: float
    rate: float


def write_schedule(path: Path, seed: int, windows: list[Window]) -> None:
    """Write a fault schedule that :class:`Schedule` (in the server) reads."""
    path.write_text(json.dumps({"seed": seed, "windows": [vars(w) for w in windows]}))


class Schedule:
    """The fault schedule of a file, re-read when the file changes; thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._mtime = -1
        self._windows: list[Window] = []
        self._rng = random.Random(os.getpid())

    def _load(self) -> None:
        try:
            mtime = self.path.stat().st_mtime_ns
        except OSError:
            self._windows = []
            return
        if mtime == self._mtime:
            return
        data = json.loads(self.path.read_text() or "{}")
        self._mtime = mtime
        self._windows = [Window(**w) for w in data.get("windows", [])]
        self._rng = random.Random(int(data.get("seed", 0)) * 1_000_003 + os.getpid())

    def draw(self, now: float) -> type[Exception] | None:
        """Return the exception a call made at ``now`` is to fail with, or None."""
        from google.api_core import exceptions as gexc

        with self._lock:
            self._load()
            rate = max((w.rate for w in self._windows if w.start <= now < w.end), default=0.0)
            if rate <= 0 or self._rng.random() >= rate:
                return None
            return self._rng.choice((gexc.Aborted, gexc.ServiceUnavailable, gexc.DeadlineExceeded))


def wrap_rpcs(api: Any, schedule: Schedule) -> None:
    """Wrap the raw gRPC callables of a Firestore GAPIC client so ``schedule`` can fail them."""
    from google.api_core import exceptions as gexc

    transport = api._transport
    raw = {
        name: transport._wrapped_methods[getattr(transport, name)]._target
        for name in (*RPCS, "rollback")
    }

    def faulty(name: str, target: Callable[..., Any]) -> Callable[..., Any]:
        def call(request: Any, *args: Any, **kwargs: Any) -> Any:
            exc = schedule.draw(time.time())
            if exc is None:
                return target(request, *args, **kwargs)
            if name == "commit" and exc is gexc.Aborted and getattr(request, "transaction", None):
                # Firestore ends a transaction whose commit fails, releasing its locks.
                with contextlib.suppress(Exception):  # the rollback is best effort
                    raw["rollback"](
                        {"database": request.database, "transaction": request.transaction}, **kwargs
                    )
            raise exc(f"injected {exc.__name__} on {name}")

        return call

    for name in RPCS:
        wrapped = transport._wrapped_methods[getattr(transport, name)]
        wrapped._target = faulty(name, raw[name])


def install(path: Path) -> None:
    """Make every Firestore client of this process fail its calls as the schedule at ``path`` says."""
    from google.cloud.firestore_v1 import client as firestore_client

    schedule = Schedule(path)
    original = firestore_client.Client._firestore_api_helper

    def helper(self: Any, *args: Any, **kwargs: Any) -> Any:
        fresh = self._firestore_api_internal is None
        api = original(self, *args, **kwargs)
        if fresh:
            wrap_rpcs(api, schedule)
        return api

    firestore_client.Client._firestore_api_helper = helper  # type: ignore[method-assign]


def main() -> None:
    """Run functions-framework (same arguments), with the faults of ``$GARDENER_FAULTS`` if set."""
    path = os.environ.get(FAULTS_ENV)
    if path:
        install(Path(path))
    from functions_framework._cli import _cli

    sys.argv[0] = "functions-framework"
    _cli()


if __name__ == "__main__":
    main()
