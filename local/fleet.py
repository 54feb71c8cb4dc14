"""Simulated parsers: the demo fleet's, the benchmarks', the soak's and the tests'.

A :class:`SimulatedParser` loops as a Go parser does: take a job (``next``),
report ``parsing``, then for each archive send a heartbeat, "parse" it (a
pause) and report ``parsing`` with the archive's name, and finish with
``postProcessing``. A call that gets no answer or a 5xx (other than the
no-job 503) is repeated up to ``retries`` times. A job's :class:`Fate` may cut
that short: the parser reports an error (and gives the job up or goes on),
goes silent, or finishes and then tries a state a parser may not set.

:class:`Fleet` runs N of them against the local stack, some jobs going wrong
in a fixed rotation (``make run FLEET=4``, or ``python -m local.fleet --url
http://127.0.0.1:8080 -n 4`` against a stack already up); the tracker expires
the abandoned ones and hands them out again. :func:`run_parsers` runs N until
a number of jobs was asked for, recording every call (the lifecycle benchmark,
the kill-and-restart test). :class:`FanOut` plays m-lab/etl's parsers, many
task slots on each job (the hot-job benchmark), and :func:`run_callers` drives
bare callers (the hot-path and next-job benchmarks); every request goes
through a :class:`Caller`.
"""

from __future__ import annotations

import argparse
import enum
import heapq
import itertools
import json
import math
import random
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlencode

import requests

from shared.model import RUN_SEPARATOR

#: The body of the tracker's "no job" answer (``next`` answers it with a 503).
NO_JOB_FOUND = "No job found. Try again."


class Fate(enum.Enum):
    """How a simulated parser's job ends."""

    FINISH = "finish"  # every archive parsed, then postProcessing
    ERROR = "error"  # reports a parse error mid-job and gives the job up
    ERROR_GO_ON = "error-go-on"  # reports a parse error mid-job and goes on
    SILENT = "silent"  # stops mid-job without a word
    LATE = (
        "late"  # stops mid-job; may report on the job much later (:meth:`SimulatedParser.silenced`)
    )
    ROGUE = "rogue"  # finishes, then tries a state a parser may not set


#: The demo fleet's order of fates, across the fleet: 6 in 8 finish.
FATES = (
    Fate.FINISH,
    Fate.ERROR,
    Fate.FINISH,
    Fate.SILENT,
    Fate.FINISH,
    Fate.FINISH,
    Fate.FINISH,
    Fate.FINISH,
)


@dataclass
class Call:
    """One request of a parser and its answer (status 0: no answer)."""

    endpoint: str  # "next", "update parsing (start)", "heartbeat", "update parsing (archive)", …
    status: int
    seconds: float
    key: str = ""
    params: dict[str, str] = field(default_factory=dict)
    body: str = ""
    at: float = 0.0  # when the answer came (``time.perf_counter()``)

    @property
    def no_job(self) -> bool:
        """Whether this is ``next``'s "no job" answer."""
        return self.status == 503 and self.body.strip() == NO_JOB_FOUND

    def job_id(self) -> str | None:
        """The ``ID`` of a 200 answer of ``next``, else None."""
        if self.status != 200:
            return None
        try:
            job_id = json.loads(self.body)["ID"]
        except (ValueError, KeyError, TypeError):
            return None
        return job_id if isinstance(job_id, str) else None


class Caller:
    """One keep-alive connection to the tracker at ``base``; a status of 0 means no answer."""

    def __init__(self, base: str, timeout: float = 30.0) -> None:
        self.base, self.timeout, self.session = base, timeout, requests.Session()

    def send(self, method: str, path: str) -> tuple[int, str]:
        """Send ``method path`` with an empty body, as the Go client does; status and body."""
        try:
            response = self.session.request(method, self.base + path, timeout=self.timeout)
            return int(response.status_code), response.text
        except requests.RequestException:
            return 0, ""

    def get(self, path: str) -> int:
        """GET ``path``; the status."""
        return self.send("GET", path)[0]

    def call(self, endpoint: str, path: str, params: dict[str, str] | None = None) -> Call:
        """POST ``path`` (``params`` in its query string) as a call of ``endpoint``, timed; the
        call's key is the job's (its ``id``, or the ID ``next`` handed out) without its run."""
        params = params or {}
        t0 = time.perf_counter()
        status, body = self.send("POST", path + ("?" + urlencode(params) if params else ""))
        t1 = time.perf_counter()
        call = Call(endpoint, status, t1 - t0, "", params, body, t1)
        call.key = (params.get("id") or call.job_id() or "").partition(RUN_SEPARATOR)[0]
        return call


@dataclass
class ParserPolicy:
    """How a simulated parser behaves; ranges are drawn from uniformly for each job."""

    archives: tuple[int, int] = (3, 8)
    seconds_per_archive: tuple[float, float] = (0.3, 1.0)
    #: Seconds to wait after a "no job" or a failed ``next``; None: stop at "no job".
    idle: tuple[float, float] | None = (2.0, 2.0)
    retries: int = 3
    retry_pause: float = 0.2
    timeout: float = 30.0


class SimulatedParser:
    """One simulated parser of ``base``; :meth:`run` works jobs until ``running()`` is false.

    ``take()`` is asked before each ``next`` (False: stop), ``fate(rng)``
    draws each job's fate, ``record`` sees every call (retries included),
    ``tally`` each job's outcome. Pauses end early when ``stop`` is set.
    """

    def __init__(
        self,
        base: str,
        policy: ParserPolicy,
        *,
        name: str = "p",
        rng: random.Random | None = None,
        fate: Callable[[random.Random], Fate] = lambda rng: Fate.FINISH,
        take: Callable[[], bool] = lambda: True,
        record: Callable[[Call], None] = lambda call: None,
        tally: Callable[[str], None] = lambda outcome: None,
        stop: threading.Event | None = None,
    ) -> None:
        self.base, self.policy, self.name = base, policy, name
        self.rng = rng or random.Random(0)
        self.fate, self.take, self.record, self.tally = fate, take, record, tally
        self.stop = stop or threading.Event()
        self.caller = Caller(base, policy.timeout)

    def running(self) -> bool:
        """Whether to go on (between jobs and between archives)."""
        return not self.stop.is_set()

    def wait(self, span: tuple[float, float]) -> None:
        """Pause for a time drawn from ``span`` (not at all for a zero span)."""
        if span[1] > 0:
            self.stop.wait(self.rng.uniform(*span))

    def send(self, endpoint: str, path: str, params: dict[str, str]) -> Call:
        """Make one request (POST, parameters in the query string) and record it."""
        call = self.caller.call(endpoint, path, params)
        self.record(call)
        return call

    def call(self, endpoint: str, path: str, params: dict[str, str] | None = None) -> Call:
        """Make a request, repeated while it gets no answer or a 5xx other than "no job"."""
        call = self.send(endpoint, path, params or {})
        for _ in range(self.policy.retries):
            if (0 < call.status < 500) or call.no_job or not self.running():
                break
            self.stop.wait(self.policy.retry_pause)
            call = self.send(endpoint, path, params or {})
        return call

    def update(self, endpoint: str, job_id: str, state: str, detail: str) -> bool:
        """Report ``state`` with ``detail``; whether it was answered 200."""
        params = {"id": job_id, "state": state, "detail": f"{self.name}: {detail}"}
        return self.call(endpoint, "/v2/job/update", params).status == 200

    def run(self) -> None:
        """Take and work jobs until told to stop (or, without an idle wait, until "no job")."""
        try:
            while self.running() and self.take():
                if self.before_next():
                    continue
                answer = self.call("next", "/v2/job/next")
                job_id = answer.job_id()
                if job_id is None:
                    if self.policy.idle is None and answer.no_job:
                        return
                    self.wait(self.policy.idle or (0.0, 0.0))
                    continue
                self.work(job_id, self.fate(self.rng))
        finally:
            self.caller.session.close()

    def before_next(self) -> bool:
        """Something to do instead of asking for a job (True if done); nothing here."""
        return False

    def silenced(self, job_id: str, fate: Fate) -> None:
        """A job left without a word (``SILENT`` or ``LATE``); nothing more here."""

    def work(self, job_id: str, fate: Fate) -> None:
        """Report on one job (``key~run``) as its fate says."""
        archives = self.rng.randint(*self.policy.archives)
        stop_at = archives // 2
        if not self.update("update parsing (start)", job_id, "parsing", f"{archives} archives"):
            return
        for a in range(archives):
            if not self.running():
                return
            archive = f"archive-{a:03d}.tgz"
            if a == stop_at and fate in (Fate.SILENT, Fate.LATE):
                self.tally(fate.value)
                self.silenced(job_id, fate)
                return
            if a == stop_at and fate in (Fate.ERROR, Fate.ERROR_GO_ON):
                error = {"id": job_id, "error": f"{self.name}: {archive}: corrupt gzip stream"}
                if self.call("error", "/v2/job/error", error).status != 200 or fate is Fate.ERROR:
                    self.tally(fate.value)
                    return
            self.call("heartbeat", "/v2/job/heartbeat", {"id": job_id})
            self.wait(self.policy.seconds_per_archive)
            if not self.update("update parsing (archive)", job_id, "parsing", archive):
                return
        if self.update(
            "update postProcessing", job_id, "postProcessing", f"{archives} archives parsed"
        ):
            self.tally(fate.value)
            if fate is Fate.ROGUE:
                self.update(
                    "update rogue", job_id, self.rng.choice(["complete", "loading"]), "rogue"
                )


def run_parsers(
    base: str,
    parsers: int,
    jobs: int,
    archives: int,
    timeout: float = 30.0,
    retries: int = 0,
    during: Callable[[list[Call]], None] | None = None,
) -> tuple[float, list[Call]]:
    """Run ``parsers`` parsers (``archives`` each job, no pauses) until ``jobs`` hand-outs were
    asked for or there is no job left; return the time and every call.

    ``during``, if given, runs in the calling thread while the parsers work (it
    sees the calls so far, under no lock: read-only).
    """
    calls: list[Call] = []
    lock = threading.Lock()
    asked = itertools.count()

    def take() -> bool:
        with lock:
            return next(asked) < jobs

    def record(call: Call) -> None:
        with lock:
            calls.append(call)

    policy = ParserPolicy((archives, archives), (0.0, 0.0), None, retries, 0.2, timeout)
    threads = [
        threading.Thread(
            target=SimulatedParser(base, policy, name=f"p{i}", take=take, record=record).run,
            daemon=True,
        )
        for i in range(parsers)
    ]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    if during is not None:
        during(calls)
    for t in threads:
        t.join()
    return time.perf_counter() - t0, calls


def run_callers(
    base: str, callers: int, step: Callable[..., bool], timeout: float, max_seconds: float
) -> tuple[float, float, bool]:
    """Let ``callers`` threads, each with a :class:`Caller` warmed by a GET of an unknown path,
    call ``step(caller, deadline)`` from when all are ready until it returns False or
    ``max_seconds`` have passed; the window's start, its length, whether time stopped one."""
    ready, stopped, deadline = threading.Barrier(callers + 1), threading.Event(), [math.inf]

    def worker() -> None:
        caller = Caller(base, timeout)
        try:
            caller.get("/bench-warmup")
            ready.wait()
            while True:
                if time.perf_counter() > deadline[0]:
                    return stopped.set()
                if not step(caller, deadline[0]):
                    return None
        finally:
            caller.session.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(callers)]
    for t in threads:
        t.start()
    ready.wait(timeout=60)
    start = time.perf_counter()
    deadline[0] = start + max_seconds
    for t in threads:
        t.join(timeout=max_seconds + 2 * timeout + 10)
    return start, time.perf_counter() - start, stopped.is_set()


def update(key: str, detail: str) -> tuple[str, str, dict[str, str]]:
    """A same-state ``parsing`` update of ``key`` with ``detail``, as arguments of :meth:`Caller.call`."""
    return "update", "/v2/job/update", {"id": key, "state": "parsing", "detail": detail}


def heartbeat(key: str) -> tuple[str, str, dict[str, str]]:
    """A heartbeat of ``key``, as arguments of :meth:`Caller.call`."""
    return "heartbeat", "/v2/job/heartbeat", {"id": key}


class FanOut:
    """Parsers of m-lab/etl's shape (``--max_active``): :meth:`work` runs ``tasks`` task slots
    on a job, each sending a heartbeat per archive dispatched and an update per archive
    finished; requests go out over a pool of ``connections`` without waiting for answers.
    :meth:`watch` reads the job list meanwhile, for how late it shows the details."""

    def __init__(self, base: str, connections: int, timeout: float = 30.0) -> None:
        self.base, self.timeout = base, timeout
        self.local, self.lock = threading.local(), threading.Lock()
        self.calls: list[Call] = []
        self.lags: list[float] = []  # seconds from a detail's acknowledgement to a list showing it
        self.listed: list[int] = []  # jobs in each job list read by :meth:`watch`
        self.acked: dict[str, float] = {}  # an update's detail → when acknowledged (monotonic)
        self.pool = ThreadPoolExecutor(max_workers=connections, thread_name_prefix="sender")

    def send(self, key: str, detail: str = "") -> None:
        """Send an update of ``key`` with ``detail`` (a heartbeat without), not waiting."""
        self.pool.submit(self._send, *(update(key, detail) if detail else heartbeat(key)))

    def _send(self, endpoint: str, path: str, params: dict[str, str]) -> None:
        if not hasattr(self.local, "caller"):
            self.local.caller = Caller(self.base, self.timeout)
        call = self.local.caller.call(endpoint, path, params)
        with self.lock:
            self.calls.append(call)
            if call.status == 200 and "detail" in params:
                self.acked[params["detail"]] = time.monotonic()

    def watch(self, query: str, until: float, every: float) -> None:
        """Read the job list ``/status?<query>`` every ``every`` s until ``until`` (monotonic):
        how old each shown detail's acknowledgement was when the list was asked for, and how
        many jobs each list showed."""
        while time.monotonic() < until:
            asked = time.monotonic()
            with urllib.request.urlopen(f"{self.base}/status?{query}", timeout=self.timeout) as r:
                jobs = json.load(r)["Jobs"]
            with self.lock:
                self.listed.append(len(jobs))
                acked = [self.acked.get(job["Detail"]) for job in jobs]
                self.lags += [max(0.0, asked - at) for at in acked if at is not None]
            time.sleep(every)

    def work(self, key: str, tasks: int, pace: float, until: float) -> None:
        """Run ``tasks`` slots on ``key`` until ``until`` (monotonic), each finishing an archive
        every ``pace`` s on average (the first spread over one pace, as in a parser long at work)."""
        now = time.monotonic()
        due = [(now + random.uniform(0, pace), slot, 0) for slot in range(tasks)]
        heapq.heapify(due)
        for _ in range(tasks):
            self.send(key)  # a heartbeat
        while due:
            at, slot, archive = heapq.heappop(due)
            if at >= until:
                return
            time.sleep(max(0.0, at - time.monotonic()))
            self.send(key, f"{key} task {slot} archive {archive}")
            self.send(key)  # a heartbeat: the slot's next archive is dispatched
            later = time.monotonic() + pace * random.uniform(0.5, 1.5)
            heapq.heappush(due, (later, slot, archive + 1))


@dataclass
class Fleet:
    """N simulated parsers on threads, sharing one rotation of fates; stop with :meth:`stop`."""

    base_url: str
    parsers: int
    policy: ParserPolicy = field(default_factory=ParserPolicy)
    seed: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._fates = itertools.cycle(FATES)
        self._threads: list[threading.Thread] = []

    def start(self) -> Fleet:
        """Start every parser; return self."""
        for n in range(self.parsers):
            parser = SimulatedParser(
                self.base_url,
                self.policy,
                name=f"parser-{n}",
                rng=random.Random(self.seed * 1000 + n),
                fate=self._next_fate,
                tally=self._count,
                stop=self._stop,
            )
            thread = threading.Thread(target=parser.run, name=f"parser-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Ask every parser to stop and wait for them, ``timeout`` seconds in all."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _next_fate(self, rng: random.Random) -> Fate:
        with self._lock:
            return next(self._fates)

    def _count(self, what: str) -> None:
        with self._lock:
            self.counts[what] = self.counts.get(what, 0) + 1


def main(argv: list[str] | None = None) -> int:
    """Run a demo fleet against a running tracker until Ctrl-C."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="tracker base URL")
    parser.add_argument("-n", "--parsers", type=int, default=4, help="number of parsers")
    parser.add_argument("--seed", type=int, default=0, help="seed of archive counts and pauses")
    args = parser.parse_args(argv)
    fleet = Fleet(args.url, args.parsers, seed=args.seed).start()
    print(f"{args.parsers} parsers working {args.url}; Ctrl-C stops them", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        fleet.stop()
        print(f"stopped: {fleet.counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
