"""A demo fleet: simulated parsers that work the local stack through :class:`TrackerClient`.

Each parser loops like a real one: take a job (``next``; wait and ask again
when there is none), report ``parsing``, then for each of a few archives send
a heartbeat, "parse" it (a short sleep) and report ``parsing`` with the
archive's name, and finish with ``postProcessing`` (the demo sources then
complete without BigQuery). Some jobs go wrong, in a fixed rotation so that
every outcome shows up early: a parser reports an error (``parseError``) and
gives the job up, or goes silent mid-job. Either way the tracker expires the
job after ``tracker.timeout`` (``failed``) and hands it out again after the
retry backoff.

``make run FLEET=4`` (or ``FLEET=4 make run``) starts four inside the local
stack; ``python -m local.fleet --url http://127.0.0.1:8080 -n 4`` runs them
against a stack that is already up.
"""

from __future__ import annotations

import argparse
import enum
import itertools
import logging
import random
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from shared.client import TrackerCallError, TrackerClient
from shared.model import RUN_SEPARATOR, State

log = logging.getLogger("local.fleet")


class Fate(enum.Enum):
    """How a simulated parser's job ends."""

    FINISH = "finish"  # every archive parsed, then postProcessing
    ERROR = "error"    # reports a parse error mid-job and gives the job up
    SILENT = "silent"  # stops mid-job without a word


#: The order in which jobs meet their fates, across the fleet: 6 in 8 finish.
FATES = (Fate.FINISH, Fate.ERROR, Fate.FINISH, Fate.SILENT,
         Fate.FINISH, Fate.FINISH, Fate.FINISH, Fate.FINISH)


@dataclass
class FleetPolicy:
    """How the simulated parsers behave: archives per job, seconds per archive, idle wait."""

    archives: tuple[int, int] = (3, 8)
    seconds_per_archive: tuple[float, float] = (0.3, 1.0)
    idle: float = 2.0
    fates: tuple[Fate, ...] = FATES
    seed: int = 0


@dataclass
class Fleet:
    """N simulated parsers on threads, sharing one rotation of fates; stop with :meth:`stop`."""

    base_url: str
    parsers: int
    policy: FleetPolicy = field(default_factory=FleetPolicy)
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._fates: Iterator[Fate] = itertools.cycle(self.policy.fates)
        self._threads: list[threading.Thread] = []

    def start(self) -> Fleet:
        """Start every parser; return self."""
        for n in range(self.parsers):
            thread = threading.Thread(target=self._run, args=(n,), name=f"parser-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Ask every parser to stop and wait for them, ``timeout`` seconds in all."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _next_fate(self) -> Fate:
        with self._lock:
            return next(self._fates)

    def _count(self, what: str) -> None:
        with self._lock:
            self.counts[what] = self.counts.get(what, 0) + 1

    def _run(self, n: int) -> None:
        client = TrackerClient(self.base_url, timeout=30, attempts=3, backoff=0.2, max_backoff=2)
        rng = random.Random(self.policy.seed * 1000 + n)
        while not self._stop.is_set():
            try:
                assignment = client.next()
                if assignment is None:
                    self._stop.wait(self.policy.idle)
                    continue
                self._work(client, rng, assignment.id, self._next_fate())
            except TrackerCallError as exc:
                log.warning("parser-%d: %s", n, exc)
                self._count("refused")
                self._stop.wait(self.policy.idle)

    def _work(self, client: TrackerClient, rng: random.Random, job_id: str, fate: Fate) -> None:
        archives = rng.randint(*self.policy.archives)
        stop_at = rng.randrange(1, archives) if fate is not Fate.FINISH and archives > 1 else archives
        client.update(job_id, State.PARSING, f"starting {archives} archive tasks")
        prefix = job_id.partition(RUN_SEPARATOR)[0].rsplit("/", 1)[0]
        for i in range(archives):
            if self._stop.is_set():
                return
            if i == stop_at and fate is Fate.ERROR:
                client.error(job_id, f"gs://{prefix}/archive-{i:03d}.tgz: corrupt gzip stream")
                self._count("error")
                return
            if i == stop_at and fate is Fate.SILENT:
                self._count("silent")
                return
            client.heartbeat(job_id)
            self._stop.wait(rng.uniform(*self.policy.seconds_per_archive))
            client.update(job_id, State.PARSING, f"gs://{prefix}/archive-{i:03d}.tgz")
        client.update(job_id, State.POST_PROCESSING, f"{archives} archives parsed")
        self._count("finish")


def main(argv: list[str] | None = None) -> int:
    """Run a demo fleet against a running tracker until Ctrl-C."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="tracker base URL")
    parser.add_argument("-n", "--parsers", type=int, default=4, help="number of parsers")
    parser.add_argument("--seed", type=int, default=0, help="seed of archive counts and pauses")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    fleet = Fleet(args.url, args.parsers, FleetPolicy(seed=args.seed)).start()
    print(f"{args.parsers} parsers working {args.url}; Ctrl-C stops them", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        fleet.stop()
        print(f"stopped: {fleet.counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
