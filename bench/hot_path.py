"""Hot-path benchmark: parser updates and heartbeats through HTTP, against the Firestore floor.

``make bench`` (``python -m bench.hot_path``) starts a Firestore emulator
(unless ``FIRESTORE_EMULATOR_HOST`` points at a running one on this machine)
and a real functions-framework server of the ``api`` router on a fresh
``demo-bench-<uuid>`` project, then measures, in one run:

1. the floor: bare single-document ``set``, ``get`` and read+write
   transactions with the Firestore client, sequential from one thread;
2. through HTTP (POST, parameters in the query string, empty body, as the Go
   client sends them): same-state ``update`` and ``heartbeat`` spread over many
   ``parsing`` jobs at several concurrency levels, and one hot job hit by many
   callers with heartbeats and updates at once. The server runs with
   ``HEARTBEAT_COALESCE_SECONDS=0`` so every heartbeat writes;
3. the Firestore document reads and writes each tracker operation makes,
   counted in-process by :class:`shared.store.StoreStats`.

It prints Markdown tables and writes the same figures as JSON to
``bench/results/hot_path.json``. Everything it talks to is on 127.0.0.1, and
the emulator and server it started are stopped at the end, also on error.
"""

from __future__ import annotations

import argparse
import http.client
import ipaddress
import json
import math
import os
import platform
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from local.emulator import FirestoreEmulator, check_java, find_jar, free_port  # noqa: E402
from local.stack import start_functions, stop_process  # noqa: E402

RESULTS_DIR = ROOT / "bench" / "results"
RESULTS_JSON = RESULTS_DIR / "hot_path.json"
EMULATOR_LOG = RESULTS_DIR / "firestore-emulator.log"

#: Coalescing window the server runs with during the benchmark (every heartbeat writes).
SERVER_COALESCE_SECONDS = "0"

#: The bucket, experiment and datatype of every benchmark job; dates make keys unique.
BUCKET, EXPERIMENT = "archive-bench", "ndt"
FIRST_DATE = date(2020, 1, 1)

try:  # `requests` comes with the Google libraries; fall back to http.client without it.
    import requests

    HAVE_REQUESTS = True
except ImportError:  # pragma: no cover - depends on the environment
    HAVE_REQUESTS = False


# --------------------------------------------------------------------------- results


@dataclass
class Latencies:
    """Summary of a list of latencies."""

    count: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    p95_ms: float = math.nan

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Latencies:
        """Summarise ``seconds`` (nearest-rank percentiles, in milliseconds)."""
        if not seconds:
            return cls(0, math.nan, math.nan, math.nan, math.nan)
        ordered = sorted(seconds)
        return cls(
            count=len(ordered),
            p50_ms=percentile(ordered, 50) * 1000,
            p99_ms=percentile(ordered, 99) * 1000,
            mean_ms=sum(ordered) / len(ordered) * 1000,
            max_ms=ordered[-1] * 1000,
            p95_ms=percentile(ordered, 95) * 1000,
        )


def percentile(ordered: Sequence[float], p: float) -> float:
    """Return the nearest-rank ``p``-th percentile of the sorted, non-empty ``ordered``."""
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class FloorResult:
    """One bare Firestore operation, repeated sequentially from one thread."""

    operation: str
    ops: int
    seconds: float
    ops_per_s: float
    p50_ms: float
    p99_ms: float


@dataclass
class HttpResult:
    """One HTTP scenario."""

    scenario: str
    endpoint: str
    jobs: int
    callers: int
    requests: int
    errors: int
    seconds: float
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    ratio_to_txn: float = math.nan
    status_codes: dict[str, int] = field(default_factory=dict)
    by_kind: dict[str, dict[str, float]] = field(default_factory=dict)
    stopped_early: bool = False


@dataclass
class PerCallResult:
    """Firestore document reads and writes per tracker call, counted in-process."""

    operation: str
    calls: int
    reads: int
    writes: int
    reads_per_call: float
    writes_per_call: float
    ms_per_call: float
    note: str = ""


# --------------------------------------------------------------------------- machine


def machine_facts(emulator_host: str, own_emulator: bool) -> dict[str, Any]:
    """Return what the figures depend on: CPU, memory, Python, emulator, server threads."""
    facts: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "platform_processor": platform.processor(),
        "cpu_model": _cpuinfo_field("model name"),
        "memory_gib": _meminfo_gib(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "emulator": "Firestore emulator jar" + ("" if own_emulator else " (external)"),
        "emulator_host": emulator_host,
        "http_client": (f"requests {metadata.version('requests')}" if HAVE_REQUESTS
                        else "http.client"),
        "server": "functions-framework (gunicorn gthread), "
                  f"workers={os.environ.get('WORKERS', '1')}, "
                  f"threads={os.environ.get('THREADS', (os.cpu_count() or 1) * 4)}",
    }
    try:
        jar = find_jar()
        facts["emulator_jar"] = str(jar)
        facts["emulator_version"] = _emulator_version(jar)
    except Exception as exc:  # noqa: BLE001 - facts are best effort
        facts["emulator_jar"] = f"unknown ({exc.__class__.__name__})"
    try:
        java = check_java()
        out = subprocess.run([java, "-version"], capture_output=True, text=True,
                             timeout=20, check=False).stderr
        facts["java"] = out.splitlines()[0] if out else "unknown"
    except Exception as exc:  # noqa: BLE001
        facts["java"] = f"unknown ({exc.__class__.__name__})"
    for package in ("functions-framework", "google-cloud-firestore"):
        try:
            facts[package.replace("-", "_")] = metadata.version(package)
        except metadata.PackageNotFoundError:
            facts[package.replace("-", "_")] = "?"
    return facts


def _cpuinfo_field(name: str) -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(name):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def _meminfo_gib() -> float | None:
    try:
        m = re.search(r"^MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.MULTILINE)
        return round(int(m.group(1)) / 2**20, 1) if m else None
    except OSError:
        return None


def _emulator_version(jar: Path) -> str:
    """Return the gcloud component version of the emulator jar, if the SDK records it."""
    snapshot = jar.parent.parent.parent / ".install" / "cloud-firestore-emulator.snapshot.json"
    try:
        for component in json.loads(snapshot.read_text())["components"]:
            if component.get("id") == "cloud-firestore-emulator":
                return str(component["version"]["version_string"])
    except (OSError, KeyError, ValueError, TypeError):
        pass
    return "unknown"


# --------------------------------------------------------------------------- setup


def check_loopback(host: str) -> None:
    """Exit unless ``host`` (``host:port``) is a loopback address; the benchmark stays local."""
    name = urlsplit(f"//{host}").hostname or ""
    if name == "localhost":
        return
    try:
        if ipaddress.ip_address(name).is_loopback:
            return
    except ValueError:
        pass
    raise SystemExit(f"FIRESTORE_EMULATOR_HOST={host} is not a loopback address; refusing")


def bench_job(index: int, experiment: str = EXPERIMENT, datatype: str = "ndt7") -> Any:
    """Return the benchmark job number ``index`` (one date per index)."""
    from shared.model import Datasets, Job

    return Job(BUCKET, experiment, datatype, FIRST_DATE + timedelta(days=index),
               datasets=Datasets("tmp_ndt", "raw_ndt", "ndt"))


def create_parsing_jobs(tracker: Any, jobs: Sequence[Any], workers: int = 8) -> list[str]:
    """Add ``jobs`` and move each to ``parsing``; return their keys (in order)."""
    from concurrent.futures import ThreadPoolExecutor

    from shared.model import State

    def one(job: Any) -> str:
        tracker.add_job(job)
        tracker.set_status(job.key(), State.PARSING, "start")
        return str(job.key())

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, jobs))


# --------------------------------------------------------------------------- the floor


def timed_ops(op: Callable[[int], object], n: int) -> tuple[float, list[float]]:
    """Run ``op(0) … op(n-1)`` sequentially; return the wall time and each call's latency."""
    latencies = []
    start = time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter()
        op(i)
        latencies.append(time.perf_counter() - t0)
    return time.perf_counter() - start, latencies


def bench_floor(client: Any, n: int, warmup: int = 10) -> list[FloorResult]:
    """Measure bare ``set``, ``get`` and read+write transactions on one document each."""
    from google.cloud import firestore

    from shared.model import utcnow

    coll = client.collection("bench_floor")
    set_ref, txn_ref = coll.document("set"), coll.document("transaction")
    set_ref.set({"n": 0, "heartbeat_time": utcnow()})
    txn_ref.set({"n": 0, "heartbeat_time": utcnow()})

    def do_set(i: int) -> None:
        set_ref.set({"n": i, "heartbeat_time": utcnow()})

    def do_get(i: int) -> None:
        set_ref.get()

    @firestore.transactional
    def bump(transaction: Any) -> None:
        snap = txn_ref.get(transaction=transaction)
        transaction.set(txn_ref, {"n": snap.get("n") + 1, "heartbeat_time": utcnow()})

    def do_txn(i: int) -> None:
        bump(client.transaction())

    results = []
    for name, op in (("document.set (one write)", do_set),
                     ("document.get (one read)", do_get),
                     ("transaction: get + set (one read, one write)", do_txn)):
        timed_ops(op, warmup)
        seconds, lat = timed_ops(op, n)
        summary = Latencies.of(lat)
        results.append(FloorResult(name, n, seconds, n / seconds, summary.p50_ms, summary.p99_ms))
    return results


# --------------------------------------------------------------------------- HTTP


class Caller(Protocol):
    """One caller's persistent connection to the server."""

    def post(self, path: str) -> int:
        """POST ``path`` (query string included), empty body; return the status (0: none)."""

    def get(self, path: str) -> int:
        """GET ``path``; return the status (0: no answer)."""

    def close(self) -> None:
        """Close the connection."""


class RequestsCaller:
    """A caller with one :class:`requests.Session` (keep-alive)."""

    def __init__(self, base: str, timeout: float) -> None:
        self.base, self.timeout = base, timeout
        self.session = requests.Session()

    def _send(self, method: str, path: str) -> int:
        try:
            response = self.session.request(method, self.base + path, timeout=self.timeout)
            response.content  # noqa: B018 - read the body, as a client would
            return int(response.status_code)
        except requests.RequestException:
            return 0

    def post(self, path: str) -> int:
        """POST ``path`` with an empty body; return the status (0: no answer)."""
        return self._send("POST", path)

    def get(self, path: str) -> int:
        """GET ``path``; return the status (0: no answer)."""
        return self._send("GET", path)

    def close(self) -> None:
        """Close the session."""
        self.session.close()


class HttpClientCaller:
    """A caller with one keep-alive :class:`http.client.HTTPConnection` (no ``requests``)."""

    def __init__(self, base: str, timeout: float) -> None:
        parts = urlsplit(base)
        self.host, self.port, self.timeout = parts.hostname or "127.0.0.1", parts.port, timeout
        self.conn: http.client.HTTPConnection | None = None

    def _send(self, method: str, path: str) -> int:
        for _ in range(2):  # one reconnect if the server closed an idle connection
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request(method, path)  # POST with no body sends Content-Length: 0
                response = self.conn.getresponse()
                response.read()
                return response.status
            except (OSError, http.client.HTTPException):
                self.close()
        return 0

    def post(self, path: str) -> int:
        """POST ``path`` with an empty body; return the status (0: no answer)."""
        return self._send("POST", path)

    def get(self, path: str) -> int:
        """GET ``path``; return the status (0: no answer)."""
        return self._send("GET", path)

    def close(self) -> None:
        """Close the connection."""
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def make_caller(base: str, timeout: float) -> Caller:
    """Return a caller using ``requests`` if installed, else ``http.client``."""
    return RequestsCaller(base, timeout) if HAVE_REQUESTS else HttpClientCaller(base, timeout)


def update_path(key: str, detail: str) -> str:
    """Return the path and query of a same-state ``parsing`` update, as the Go client builds it."""
    return "/v2/job/update?" + urlencode({"id": key, "state": "parsing", "detail": detail})


def heartbeat_path(key: str) -> str:
    """Return the path and query of a heartbeat."""
    return "/v2/job/heartbeat?" + urlencode({"id": key})


def timed_window(worker: Callable[[], None], callers: int, ready: threading.Barrier,
                deadline: list[float], max_seconds: float, timeout: float) -> tuple[float, float]:
    """Run ``callers`` threads of ``worker`` in one timed window; return its start and length.

    Each worker warms up, then waits on ``ready`` (a barrier of ``callers + 1``);
    the window opens when all are there, and ``deadline[0]`` is set to its end
    ``max_seconds`` later. A thread still busy well after the deadline is left.
    """
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(callers)]
    for t in threads:
        t.start()
    ready.wait(timeout=60)
    start = time.perf_counter()
    deadline[0] = start + max_seconds
    for t in threads:
        t.join(timeout=max_seconds + 2 * timeout + 10)
    return start, time.perf_counter() - start


def run_http(
    base: str,
    requests_: Sequence[tuple[str, str]],
    callers: int,
    timeout: float,
    max_seconds: float,
) -> tuple[float, list[tuple[str, int, float]], bool]:
    """POST each ``(kind, path)`` once from ``callers`` concurrent callers.

    Each caller has its own keep-alive connection, opened and warmed (one GET of
    an unknown path, answered 404 without touching Firestore) before the clock
    starts. Callers take the next request from a shared cursor until the list
    is done or ``max_seconds`` have passed. Returns the wall time, each sent
    request's ``(kind, status, latency)`` and whether the deadline cut it short.
    """
    n = len(requests_)
    results: list[tuple[str, int, float] | None] = [None] * n
    cursor = iter(range(n))
    lock = threading.Lock()
    ready = threading.Barrier(callers + 1)
    deadline = [math.inf]
    stopped = threading.Event()

    def take() -> int | None:
        with lock:
            if time.perf_counter() > deadline[0]:
                stopped.set()
                return None
            return next(cursor, None)

    def worker() -> None:
        caller = make_caller(base, timeout)
        try:
            caller.get("/bench-warmup")
            ready.wait()
            while (i := take()) is not None:
                kind, path = requests_[i]
                t0 = time.perf_counter()
                status = caller.post(path)
                results[i] = (kind, status, time.perf_counter() - t0)
        finally:
            caller.close()

    _, elapsed = timed_window(worker, callers, ready, deadline, max_seconds, timeout)
    return elapsed, [r for r in results if r is not None], stopped.is_set()


def http_scenario(
    name: str,
    endpoint: str,
    base: str,
    requests_: Sequence[tuple[str, str]],
    jobs: int,
    callers: int,
    timeout: float,
    max_seconds: float,
) -> HttpResult:
    """Run one HTTP scenario and summarise it (errors are non-200 answers and no answers)."""
    seconds, sent, stopped = run_http(base, requests_, callers, timeout, max_seconds)
    codes: dict[str, int] = {}
    for _, status, _ in sent:
        codes[str(status)] = codes.get(str(status), 0) + 1
    summary = Latencies.of([lat for _, _, lat in sent])
    by_kind = {}
    kinds = sorted({kind for kind, _, _ in sent})
    if len(kinds) > 1:
        for kind in kinds:
            s = Latencies.of([lat for k, _, lat in sent if k == kind])
            errors = sum(1 for k, st, _ in sent if k == kind and st != 200)
            by_kind[kind] = {"requests": s.count, "errors": errors,
                             "p50_ms": s.p50_ms, "p99_ms": s.p99_ms}
    return HttpResult(
        scenario=name, endpoint=endpoint, jobs=jobs, callers=callers, requests=len(sent),
        errors=sum(1 for _, st, _ in sent if st != 200), seconds=seconds,
        requests_per_s=len(sent) / seconds if seconds > 0 else math.nan,
        p50_ms=summary.p50_ms, p99_ms=summary.p99_ms, status_codes=codes,
        by_kind=by_kind, stopped_early=stopped,
    )


def bench_http(
    base: str,
    keys: Sequence[str],
    hot_key: str,
    n: int,
    concurrency: Sequence[int],
    hot_callers: int,
    timeout: float,
    max_seconds: float,
) -> list[HttpResult]:
    """Run every HTTP scenario: updates and heartbeats over ``keys``, then the hot job."""
    # Warm the server's Firestore client and code paths; not measured.
    warm = [("update", update_path(k, "warmup")) for k in keys[:16]]
    warm += [("heartbeat", heartbeat_path(k)) for k in keys[:16]]
    run_http(base, warm, 4, timeout, max_seconds)

    results = []
    for c in concurrency:
        reqs = [("update", update_path(keys[i % len(keys)], f"archive-{i:06d}.tgz"))
                for i in range(n)]
        results.append(http_scenario(f"update, {len(keys)} jobs", "/v2/job/update", base,
                                     reqs, len(keys), c, timeout, max_seconds))
    for c in concurrency:
        reqs = [("heartbeat", heartbeat_path(keys[i % len(keys)])) for i in range(n)]
        results.append(http_scenario(f"heartbeat, {len(keys)} jobs", "/v2/job/heartbeat", base,
                                     reqs, len(keys), c, timeout, max_seconds))
    reqs = [("heartbeat", heartbeat_path(hot_key)) if i % 2 == 0
            else ("update", update_path(hot_key, f"archive-{i:06d}.tgz")) for i in range(n)]
    results.append(http_scenario("hot job: heartbeat + update", "both", base, reqs, 1,
                                 hot_callers, timeout, max_seconds))
    return results


# --------------------------------------------------------------------------- per call


def bench_per_call(client: Any, calls: int) -> list[PerCallResult]:
    """Count Firestore reads and writes of each tracker operation, in-process.

    Each measured operation runs on a tracker whose :class:`JobStore` does
    nothing else, so its :class:`StoreStats` deltas are that operation's alone;
    setup (moving jobs to ``parsing``, priming heartbeats) uses another store.
    """
    from shared.model import State
    from shared.store import JobStore
    from shared.defaults import HEARTBEAT_COALESCE
    from shared.tracker import Tracker

    setup = Tracker(JobStore(client), heartbeat_coalesce=timedelta(0))
    jobs = [bench_job(i, experiment="stats") for i in range(calls)]
    keys = [job.key() for job in jobs]
    results: list[PerCallResult] = []

    def measure(name: str, op: Callable[[Tracker, int], object], coalesce: timedelta,
                note: str = "") -> list[object]:
        tracker = Tracker(JobStore(client), heartbeat_coalesce=coalesce)
        returned: list[object] = []
        seconds, _ = timed_ops(lambda i: returned.append(op(tracker, i)), calls)
        st = tracker.store.stats
        results.append(PerCallResult(name, calls, st.reads, st.writes, st.reads / calls,
                                     st.writes / calls, seconds / calls * 1000, note))
        return returned

    measure("add_job (new key)", lambda t, i: t.add_job(jobs[i]), HEARTBEAT_COALESCE)
    for key in keys:
        setup.set_status(key, State.PARSING, "start")
    previous = measure("update, same state (parsing detail)",
                       lambda t, i: t.set_status(keys[i], State.PARSING, f"archive-{i}.tgz"),
                       HEARTBEAT_COALESCE)
    results[-1].note = _previous_note(previous, State.PARSING, calls)
    written = measure("heartbeat, coalescing off (0 s)", lambda t, i: t.heartbeat(keys[i]),
                      timedelta(0))
    results[-1].note = f"{sum(map(bool, written))} of {calls} wrote"

    def hb_in_window(t: Tracker, i: int) -> bool:
        # Prime on the setup store (not counted), then the measured heartbeat.
        setup.heartbeat(keys[i])
        return t.heartbeat(keys[i])

    written = measure(f"heartbeat within the {HEARTBEAT_COALESCE.total_seconds():g} s window",
                      hb_in_window, HEARTBEAT_COALESCE)
    results[-1].note = (f"{sum(map(bool, written))} of {calls} wrote; "
                        "ms/call includes the priming heartbeat")
    previous = measure("state change parsing → postProcessing",
                       lambda t, i: t.set_status(keys[i], State.POST_PROCESSING, "parsed"),
                       HEARTBEAT_COALESCE)
    results[-1].note = _previous_note(previous, State.PARSING, calls)
    return results


def _previous_note(previous: Sequence[object], expected: Any, calls: int) -> str:
    """Say how many calls found the job in ``expected`` (the figures assume all did)."""
    found = sum(1 for p in previous if p is expected)
    return f"{found} of {calls} found the job in {expected.value}"


# --------------------------------------------------------------------------- output


def _f(x: float, digits: int = 1) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:,.{digits}f}"


def render(report: dict[str, Any]) -> str:
    """Return the report as Markdown."""
    m, cfg = report["machine"], report["config"]
    lines = [
        "# Tracker hot-path benchmark",
        "",
        (f"- Machine: {m['cpu_count']} CPUs, model `{m['cpu_model'] or '?'}`"
         f" (platform.processor() = `{m['platform_processor'] or ''}`), "
         f"{m['memory_gib']} GiB, load average at start {m['loadavg_at_start']}; {m['platform']}"),
        f"- Python: {m['python']}; HTTP client: {m['http_client']}",
        (f"- Emulator: {m['emulator']} {m.get('emulator_version', '?')} at {m['emulator_host']}"
         f" ({m.get('emulator_jar', '?')}; {m.get('java', '?')})"),
        (f"- Server: {m['server']}, functions-framework {m.get('functions_framework', '?')}, "
         f"google-cloud-firestore {m.get('google_cloud_firestore', '?')}, on 127.0.0.1"),
        f"- Project `{cfg['project']}`; benchmark, server and emulator share the machine's CPUs.",
        "",
        "## 1. The floor: the Firestore client directly, sequential, one thread",
        "",
        "| operation | ops | ops/s | p50 ms | p99 ms |",
        "|---|--:|--:|--:|--:|",
    ]
    for r in report["floor"]:
        lines.append(f"| {r['operation']} | {r['ops']} | {_f(r['ops_per_s'])} | "
                     f"{_f(r['p50_ms'], 2)} | {_f(r['p99_ms'], 2)} |")
    lines += [
        "",
        ("## 2. Through HTTP: functions-framework server, POST with the parameters in the "
         "query string and an empty body"),
        "",
        (f"Server run with `HEARTBEAT_COALESCE_SECONDS={cfg['server_coalesce_seconds']}`, so "
         "every heartbeat writes (the default 5 s window would acknowledge most without a "
         "write). Updates are same-state `parsing` detail updates; every job was moved to "
         "`parsing` first. × txn = requests/s ÷ bare transactions/s of the floor."),
        "",
        "| scenario | callers | requests | errors | requests/s | p50 ms | p99 ms | × txn |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in report["http"]:
        mark = " (stopped at time limit)" if r["stopped_early"] else ""
        lines.append(
            f"| {r['scenario']}{mark} | {r['callers']} | {r['requests']} | {r['errors']} | "
            f"{_f(r['requests_per_s'])} | {_f(r['p50_ms'], 1)} | {_f(r['p99_ms'], 1)} | "
            f"{_f(r['ratio_to_txn'], 2)} |")
    for r in report["http"]:
        if r["by_kind"]:
            lines += ["", f"{r['scenario']} ({r['callers']} callers, one job), by kind:", "",
                      "| kind | requests | errors | p50 ms | p99 ms |", "|---|--:|--:|--:|--:|"]
            for kind, s in r["by_kind"].items():
                lines.append(f"| {kind} | {s['requests']} | {s['errors']} | "
                             f"{_f(s['p50_ms'])} | {_f(s['p99_ms'])} |")
    bad = {r["scenario"] + f" ×{r['callers']}": r["status_codes"]
           for r in report["http"] if r["errors"]}
    if bad:
        lines += ["", (f"Status codes of scenarios with errors (0 = no answer in "
                       f"{cfg['request_timeout_s']:g} s): {bad}. A 500 is the server's answer "
                       "to an unexpected Firestore error, such as the emulator's "
                       "`Transaction lock timeout`.")]
    if report.get("emulator_lock_timeouts") is not None:
        lines += ["", (f"Emulator `Transaction lock timeout` failures during the run: "
                       f"{report['emulator_lock_timeouts']} "
                       f"(log: {EMULATOR_LOG.relative_to(ROOT)}).")]
    lines += [
        "",
        "## 3. Firestore document reads and writes per tracker call (in-process, `JobStore.stats`)",
        "",
        "| operation | calls | reads/call | writes/call | ms/call | note |",
        "|---|--:|--:|--:|--:|---|",
    ]
    for r in report["per_call"]:
        lines.append(f"| {r['operation']} | {r['calls']} | {_f(r['reads_per_call'], 2)} | "
                     f"{_f(r['writes_per_call'], 2)} | {_f(r['ms_per_call'], 2)} | {r['note']} |")
    lines += ["", f"Run time: {report['run_seconds']:.1f} s. JSON: {report['json_path']}"]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


class _Interrupts:
    """SIGINT and SIGTERM raise KeyboardInterrupt, except inside :func:`deferred_interrupts`."""

    deferring = False
    pending = False


def _interrupt(signum: int, frame: object) -> None:
    if _Interrupts.deferring:
        _Interrupts.pending = True
        return
    raise KeyboardInterrupt


@contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back until the block is done, then raise KeyboardInterrupt.

    Around starting a process, so that its handle is kept (and the process
    stopped) whenever the interrupt comes.
    """
    _Interrupts.deferring = True
    try:
        yield
    finally:
        _Interrupts.deferring = False
        if _Interrupts.pending:
            _Interrupts.pending = False
            raise KeyboardInterrupt


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextmanager
def java_options(options: str) -> Iterator[None]:
    """Set ``_JAVA_OPTIONS`` for the block: the JVM applies it after its command line's ``-Xmx``."""
    old = os.environ.get("_JAVA_OPTIONS")
    os.environ["_JAVA_OPTIONS"] = options
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("_JAVA_OPTIONS", None)
        else:
            os.environ["_JAVA_OPTIONS"] = old


def run_on_emulator(
    measure: Callable[[ExitStack, str, bool], dict[str, Any]],
    cleanup: Callable[[str, bool], None],
    log_path: Path,
    heap: str | None = None,
) -> dict[str, Any] | None:
    """Run ``measure(stack, host, own_emulator)`` on a Firestore emulator; return its report.

    The emulator is the configured one, or one started here (with Java heap
    ``heap``, logging to ``log_path``) and stopped after. ``cleanup(host,
    own_emulator)`` runs after ``measure`` whatever happens; everything
    registered on ``stack`` is closed last. Returns None when interrupted
    (Ctrl-C or SIGTERM).
    """
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    try:
        with ExitStack() as stack:
            with java_options(f"-Xmx{heap}") if heap else nullcontext():
                host, emulator = stack.enter_context(emulator_host(log_path))
            os.environ["FIRESTORE_EMULATOR_HOST"] = host
            try:
                return measure(stack, host, emulator is not None)
            finally:
                cleanup(host, emulator is not None)
    except KeyboardInterrupt:
        _progress("interrupted")
        return None


def wipe_external(projects: Iterable[str]) -> Callable[[str, bool], None]:
    """A ``run_on_emulator`` clean-up: delete ``projects``' documents from an external emulator."""

    def cleanup(host: str, own_emulator: bool) -> None:
        if not own_emulator:  # ours is stopped anyway
            for project in projects:
                _wipe(host, project)

    return cleanup


#: A benchmark's measurement: (args, stack, emulator host, own emulator?, projects to wipe) → report.
Measure = Callable[[Any, Any, str, bool, list[str]], dict[str, Any]]


def run_measured(args: Any, measure: Measure, render_report: Callable[[dict[str, Any]], str],
                 emulator_log: Path, failure: Callable[[dict[str, Any]], str | None]) -> int:
    """Run ``measure`` on an emulator (its projects wiped after), publish the report; the exit status.

    130 if interrupted; 1, after saying why, if ``failure`` names a problem in the report; else 0.
    """
    started = time.perf_counter()
    projects: list[str] = []
    report = run_on_emulator(lambda stack, host, own: measure(args, stack, host, own, projects),
                             wipe_external(projects), emulator_log)
    if report is None:
        return 130
    publish(report, args.json, started, render_report)
    problem = failure(report)
    if problem:
        _progress(problem)
        return 1
    return 0


@contextmanager
def emulator_host(log_path: Path = EMULATOR_LOG) -> Iterator[tuple[str, FirestoreEmulator | None]]:
    """Yield the emulator's host:port, starting (and finally stopping) one if none is configured.

    The emulator started here logs to ``log_path`` (emptied first).
    """
    host = os.environ.get("FIRESTORE_EMULATOR_HOST")
    if host:
        check_loopback(host)
        yield host, None
        return
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.unlink(missing_ok=True)  # one run per log, so its warnings are this run's
    emulator = FirestoreEmulator(log_path=log_path)
    try:
        emulator.start()
        yield emulator.host, emulator
    finally:
        emulator.stop()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line; ``--quick`` shrinks every size that was not given."""
    p = argparse.ArgumentParser(prog="python -m bench.hot_path",
                                description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int,
                   help="requests per HTTP scenario (default 400; quick 100)")
    p.add_argument("--floor-ops", type=int,
                   help="ops per floor measurement (default 300; quick 100)")
    p.add_argument("--calls", type=int,
                   help="calls per per-call measurement (default 30; quick 10)")
    p.add_argument("--jobs", type=int, default=64, help="jobs the many-job scenarios spread over")
    p.add_argument("--concurrency", default="1,8",
                   help="caller counts of the many-job scenarios (default %(default)s)")
    p.add_argument("--hot-callers", type=int, default=32, help="callers on the one hot job")
    p.add_argument("--max-seconds", type=float, default=30.0,
                   help="time limit of each HTTP scenario (default %(default)s)")
    p.add_argument("--timeout", type=float, default=10.0,
                   help="timeout of one HTTP request (default %(default)s)")
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    p.add_argument("--json", type=Path, default=RESULTS_JSON, help="where to write the JSON")
    args = p.parse_args(argv)
    quick = args.quick
    if args.requests is None:
        args.requests = 100 if quick else 400
    if args.floor_ops is None:
        args.floor_ops = 100 if quick else 300
    if args.calls is None:
        args.calls = 10 if quick else 30
    try:
        args.concurrency = [int(c) for c in args.concurrency.split(",") if c.strip()]
    except ValueError:
        p.error("--concurrency takes comma-separated integers")
    for name in ("requests", "floor_ops", "calls", "jobs", "hot_callers"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    callers = [*args.concurrency, args.hot_callers]
    if not args.concurrency or min(callers) < 1 or max(callers) > 256:
        p.error("callers must be between 1 and 256")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the tables, write the JSON; return the exit status."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.perf_counter()
    project = f"demo-bench-{uuid.uuid4().hex[:12]}"
    server = None
    with emulator_host() as (host, emulator):
        try:
            os.environ["FIRESTORE_EMULATOR_HOST"] = host
            from google.cloud import firestore

            from shared.store import JobStore
            from shared.tracker import Tracker

            print(f"emulator {host}, project {project}; starting the function server …",
                  file=sys.stderr, flush=True)
            port = free_port()
            server = start_functions(port, {
                "FIRESTORE_EMULATOR_HOST": host,
                "GOOGLE_CLOUD_PROJECT": project,
                "HEARTBEAT_COALESCE_SECONDS": SERVER_COALESCE_SECONDS,
            }, quiet=True)
            base = f"http://127.0.0.1:{port}"
            client = firestore.Client(project=project)

            print("1/3 the floor …", file=sys.stderr, flush=True)
            floor = bench_floor(client, args.floor_ops)
            txn_rate = floor[-1].ops_per_s

            print("2/3 reads and writes per call …", file=sys.stderr, flush=True)
            per_call = bench_per_call(client, args.calls)

            print(f"3/3 HTTP: creating {args.jobs + 1} parsing jobs …", file=sys.stderr, flush=True)
            tracker = Tracker(JobStore(client))
            keys = create_parsing_jobs(tracker, [bench_job(i) for i in range(args.jobs)])
            hot_key = create_parsing_jobs(tracker, [bench_job(0, experiment="hot")])[0]
            print("    running the scenarios …", file=sys.stderr, flush=True)
            http = bench_http(base, keys, hot_key, args.requests, args.concurrency,
                              args.hot_callers, args.timeout, args.max_seconds)
            for r in http:
                r.ratio_to_txn = r.requests_per_s / txn_rate

            report: dict[str, Any] = {
                "machine": machine_facts(host, emulator is not None),
                "config": {
                    "project": project,
                    "requests_per_scenario": args.requests,
                    "floor_ops": args.floor_ops,
                    "calls_per_operation": args.calls,
                    "jobs": args.jobs,
                    "concurrency": args.concurrency,
                    "hot_callers": args.hot_callers,
                    "server_coalesce_seconds": SERVER_COALESCE_SECONDS,
                    "max_seconds_per_scenario": args.max_seconds,
                    "request_timeout_s": args.timeout,
                    "quick": args.quick,
                },
                "floor": [asdict(r) for r in floor],
                "http": [asdict(r) for r in http],
                "per_call": [asdict(r) for r in per_call],
            }
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        finally:
            if server is not None:
                stop_process(server)
            if emulator is None:
                _wipe(host, project)
    report["emulator_lock_timeouts"] = _lock_timeouts() if emulator is not None else None

    publish(report, args.json, started, render)
    return 0


def publish(report: dict[str, Any], path: Path, started: float,
            render_report: Callable[[dict[str, Any]], str]) -> None:
    """Finish a benchmark: note its run time, write ``report`` as JSON to ``path``, print it."""
    report["run_seconds"] = time.perf_counter() - started
    path.parent.mkdir(parents=True, exist_ok=True)
    resolved = path.resolve()
    report["json_path"] = str(resolved.relative_to(ROOT) if resolved.is_relative_to(ROOT) else path)
    path.write_text(json.dumps(_finite(report), indent=2, default=str) + "\n")
    print(render_report(report))


def size_list(maximum: int) -> Callable[[str], list[int]]:
    """An argparse type: comma-separated job counts from 1 to ``maximum``, sorted, distinct."""

    def parse(text: str) -> list[int]:
        try:
            sizes = sorted({int(x.replace("_", "")) for x in text.split(",") if x.strip()})
        except ValueError:
            raise argparse.ArgumentTypeError("--sizes takes comma-separated integers") from None
        if not sizes or sizes[0] < 1 or sizes[-1] > maximum:
            raise argparse.ArgumentTypeError(f"sizes must be between 1 and {maximum:,}")
        return sizes

    return parse


def _lock_timeouts() -> int | None:
    """Count the emulator's "Transaction lock timeout" failures in this run's log."""
    try:
        text = EMULATOR_LOG.read_text(errors="replace")
        return text.count("Operation failed: Transaction lock timeout")
    except OSError:
        return None


def _finite(value: Any) -> Any:
    """Return ``value`` with every NaN replaced by None, so the JSON is standard."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _wipe(host: str, project: str) -> None:
    """Delete the benchmark project's documents from an external (loopback) emulator."""
    url = f"http://{host}/emulator/v1/projects/{project}/databases/(default)/documents"
    try:
        request = urllib.request.Request(url, method="DELETE")
        urllib.request.urlopen(request, timeout=10).close()  # noqa: S310 (loopback only)
    except OSError as exc:
        print(f"could not wipe {project}: {exc}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
