"""Lifecycle load benchmark: K simulated parsers doing the real sequence against a real server.

``make bench-lifecycle`` (``python -m bench.lifecycle``) starts a Firestore
emulator (unless ``FIRESTORE_EMULATOR_HOST`` points at a running one on this
machine) and a GCS emulator seeded with archives for a Go-format config (the
workload of :mod:`bench.next_job`: 4 sources, three of every four
(source, day) pairs with files). For each parser count K (default 1, 8, 32)
it starts a functions-framework server of the ``api`` router on a fresh
``demo-bench-<uuid>`` project and lets K parser threads, each with its own
keep-alive connection, do what a Go parser does, until a fixed number of jobs
has been handed out:

    next → update parsing → (heartbeat + update parsing, per archive) × A → update postProcessing

with A archives per job (default 10). The server runs with
``HEARTBEAT_COALESCE_SECONDS=0``, so every heartbeat writes. It reports jobs/s,
requests/s, p50/p95/p99 latency per endpoint, and the rate of bare
single-document read+write transactions on the same emulator measured in the
same run (:func:`bench.hot_path.bench_floor`: the floor), as a ratio; and the
Firestore document reads and writes one job's lifecycle costs, counted
in-process by the stores' :class:`~shared.store.StoreStats` on the same
sequence. Markdown to stdout, JSON to ``bench/results/lifecycle.json``.

:class:`Parser` is also what the kill-and-restart test drives.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.hot_path import (  # noqa: E402
    Latencies,
    RESULTS_DIR,
    _f,
    _progress,
    bench_floor,
    deferred_interrupts,
    machine_facts,
    run_measured,
)
from bench.next_job import (  # noqa: E402
    NO_JOB_FOUND,
    NextCaller,
    archive_names,
    config_yaml,
    expected_keys,
    gcs_facts,
    handed_id,
    handed_key,
)
from local.emulator import free_port  # noqa: E402
from local.gcs_emulator import GcsEmulator, seed  # noqa: E402
from local.gcs_emulator import client as gcs_client_for  # noqa: E402
from local.stack import start_functions, stop_process  # noqa: E402
from shared.model import RUN_SEPARATOR, utcnow  # noqa: E402

RESULTS_JSON = RESULTS_DIR / "lifecycle.json"
EMULATOR_LOG = RESULTS_DIR / "lifecycle-firestore-emulator.log"
GCS_LOG = RESULTS_DIR / "lifecycle-gcs-emulator.log"

#: The endpoints of a lifecycle, in the order a parser calls them.
ENDPOINTS = ("next", "update parsing (start)", "heartbeat", "update parsing (archive)",
             "update postProcessing")


# --------------------------------------------------------------------------- parsers


@dataclass
class Call:
    """One request of a parser and its answer (status 0: no answer)."""

    endpoint: str
    status: int
    seconds: float
    key: str = ""
    params: dict[str, str] = field(default_factory=dict)
    body: str = ""


class Parser:
    """A simulated Go parser: takes jobs from ``next`` and reports on them until told to stop.

    ``take()`` says whether to ask for another job (it is called before each
    ``next``); a call that gets no answer or a 5xx (other than the no-job 503)
    is repeated up to ``retries`` times, ``pause`` seconds apart, as a parser
    would; a job whose call still fails is abandoned (it will expire). Every
    call, retries included, goes to ``record``.
    """

    def __init__(self, base: str, archives: int, take: Callable[[], bool],
                 record: Callable[[Call], None], timeout: float = 30.0, retries: int = 0,
                 pause: float = 0.2, name: str = "p") -> None:
        self.caller = NextCaller(base, timeout)
        self.archives, self.take, self.record = archives, take, record
        self.retries, self.pause, self.name = retries, pause, name

    def _post(self, endpoint: str, path: str, params: dict[str, str]) -> Call:
        for _ in range(self.retries + 1):
            t0 = time.perf_counter()
            try:
                response = self.caller.session.post(
                    self.caller.base + path + "?" + urlencode(params), timeout=self.caller.timeout)
                status, body = int(response.status_code), response.text
            except Exception:  # noqa: BLE001 - a dead server: no answer
                status, body = 0, ""
            call = Call(endpoint, status, time.perf_counter() - t0,
                        params.get("id", "").partition(RUN_SEPARATOR)[0], params, body)
            self.record(call)
            if status and status < 500:
                return call
            time.sleep(self.pause)
        return call

    def _next(self) -> Call | None:
        for _ in range(self.retries + 1):
            t0 = time.perf_counter()
            status, body = self.caller.next()
            call = Call("next", status, time.perf_counter() - t0, handed_key(status, body) or "",
                        {}, body)
            self.record(call)
            if status == 200 or (status == 503 and body == NO_JOB_FOUND):
                return call
            time.sleep(self.pause)
        return None

    def run(self) -> None:
        """Take and work jobs until ``take()`` says no, or next answers that there is no job."""
        try:
            while self.take():
                call = self._next()
                if call is None:
                    continue
                if call.status != 200:
                    return  # no job left
                self.work(handed_id(call.status, call.body) or call.key)
        finally:
            self.caller.close()

    def work(self, key: str) -> None:
        """Report a job's lifecycle: parsing, each archive, postProcessing (stop at a failure).

        ``key`` is the ID ``next`` handed out (``key~run``) or a bare key.
        """
        steps: list[tuple[str, str, dict[str, str]]] = [
            ("update parsing (start)", "/v2/job/update",
             {"id": key, "state": "parsing", "detail": f"{self.name}: {self.archives} archives"})]
        for a in range(self.archives):
            steps.append(("heartbeat", "/v2/job/heartbeat", {"id": key}))
            steps.append(("update parsing (archive)", "/v2/job/update",
                          {"id": key, "state": "parsing", "detail": f"{self.name}: archive-{a}.tgz"}))
        steps.append(("update postProcessing", "/v2/job/update",
                      {"id": key, "state": "postProcessing", "detail": f"{self.name}: parsed"}))
        for endpoint, path, params in steps:
            if self._post(endpoint, path, params).status != 200:
                return


def run_parsers(base: str, parsers: int, jobs: int, archives: int, timeout: float = 30.0,
                retries: int = 0, during: Callable[[list[Call]], None] | None = None,
                ) -> tuple[float, list[Call]]:
    """Run ``parsers`` parser threads until ``jobs`` hand-outs were asked for; return time and calls.

    ``during``, if given, runs in the calling thread while the parsers work
    (it sees the calls so far, under no lock: read-only).
    """
    calls: list[Call] = []
    lock = threading.Lock()
    asked = [0]

    def take() -> bool:
        with lock:
            if asked[0] >= jobs:
                return False
            asked[0] += 1
            return True

    def record(call: Call) -> None:
        with lock:
            calls.append(call)

    workers = [Parser(base, archives, take, record, timeout, retries, name=f"p{i}")
               for i in range(parsers)]
    threads = [threading.Thread(target=w.run, daemon=True) for w in workers]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    if during is not None:
        during(calls)
    for t in threads:
        t.join()
    return time.perf_counter() - t0, calls


# --------------------------------------------------------------------------- results


@dataclass
class EndpointResult:
    """Latency of one endpoint at one parser count."""

    endpoint: str
    requests: int
    errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float


@dataclass
class LevelResult:
    """One parser count K."""

    parsers: int
    jobs: int
    completed: int
    requests: int
    errors: int
    seconds: float
    jobs_per_s: float
    requests_per_s: float
    ratio_to_txn: float
    duplicates: int
    endpoints: list[EndpointResult]
    status_codes: dict[str, int]
    project: str


def summarise(parsers: int, jobs: int, seconds: float, calls: Sequence[Call], txn_rate: float,
              project: str) -> LevelResult:
    """Summarise one level's calls."""
    handed = [c.key for c in calls if c.endpoint == "next" and c.status == 200]
    completed = sum(1 for c in calls if c.endpoint == "update postProcessing" and c.status == 200)
    codes: dict[str, int] = {}
    for c in calls:
        codes[str(c.status)] = codes.get(str(c.status), 0) + 1

    def is_error(c: Call) -> bool:
        return c.status != 200 and not (c.endpoint == "next" and c.status == 503)

    endpoints = []
    for name in ENDPOINTS:
        mine = [c for c in calls if c.endpoint == name]
        lat = Latencies.of([c.seconds for c in mine if not is_error(c)])
        endpoints.append(EndpointResult(name, len(mine), sum(map(is_error, mine)),
                                        lat.p50_ms, lat.p95_ms, lat.p99_ms))
    rate = len(calls) / seconds
    return LevelResult(parsers, len(handed), completed, len(calls), sum(map(is_error, calls)),
                       seconds, completed / seconds, rate, rate / txn_rate,
                       len(handed) - len(set(handed)), endpoints, codes, project)


@dataclass
class PerJobCost:
    """Firestore document reads and writes of one job's lifecycle, counted in-process."""

    jobs: int
    archives: int
    reads_per_job: float
    writes_per_job: float
    gcs_lists_per_job: float
    #: The same less its archives' heartbeats and updates: what a job costs whatever its size.
    job_reads_per_job: float = 0.0
    job_writes_per_job: float = 0.0


def per_job_cost(fs_client: Any, gcs_client: Any, config: Any, jobs: int,
                 archives: int) -> PerJobCost:
    """Run the lifecycle in-process (tracker, job service) for ``jobs`` jobs; count reads and writes."""
    from shared.gcs import ArchiveLister
    from shared.job_service import JobService
    from shared.model import State
    from shared.store import CursorStore, JobStore
    from shared.tracker import Tracker

    store, cursors = JobStore(fs_client), CursorStore(fs_client)
    lister = ArchiveLister(gcs_client)
    tracker = Tracker(store, heartbeat_coalesce=timedelta(0))
    service = JobService(tracker, cursors, lister, config)
    done = archive_reads = archive_writes = 0
    for _ in range(jobs):
        record = service.next_job()
        if record is None:
            break
        tracker.set_status(record.key, State.PARSING, "start")
        reads_before, writes_before = store.stats.reads, store.stats.writes
        for a in range(archives):
            tracker.heartbeat(record.key)
            tracker.set_status(record.key, State.PARSING, f"archive-{a}.tgz")
        archive_reads += store.stats.reads - reads_before
        archive_writes += store.stats.writes - writes_before
        tracker.set_status(record.key, State.POST_PROCESSING, "parsed")
        done += 1
    reads = store.stats.reads + cursors.stats.reads
    writes = store.stats.writes + cursors.stats.writes
    return PerJobCost(done, archives, reads / done, writes / done, lister.calls / done,
                      (reads - archive_reads) / done, (writes - archive_writes) / done)


# --------------------------------------------------------------------------- output


def render(report: dict[str, Any]) -> str:
    """Return the report as Markdown."""
    m, cfg, cost = report["machine"], report["config"], report["per_job"]
    floor = report["floor_txn_per_s"]
    lines = [
        "# Lifecycle load benchmark",
        "",
        (f"- Machine: {m['cpu_count']} CPUs `{m['cpu_model'] or '?'}`, {m['memory_gib']} GiB, "
         f"load average at start {m['loadavg_at_start']}; {m['platform']}; {m['python']}"),
        (f"- Firestore emulator {m.get('emulator_version', '?')} ({m.get('java', '?')}); "
         f"{m.get('gcs_emulator', '?')}; server {m['server']}"),
        (f"- Each job: next, update `parsing`, {cfg['archives']} × (heartbeat + update "
         f"`parsing`), update `postProcessing` = {3 + 2 * cfg['archives']} requests; "
         f"{cfg['jobs']} jobs per level; `HEARTBEAT_COALESCE_SECONDS=0`."),
        (f"- Floor, same emulator, same run: bare single-document read+write transaction, "
         f"one thread: {_f(floor)}/s. × txn = requests/s ÷ that."),
        "",
        ("| parsers | jobs | jobs/s | requests/s | × txn | errors | duplicates | "
         "next p50/p95/p99 ms | update p50/p95/p99 ms | heartbeat p50/p95/p99 ms | "
         "postProcessing p50/p95/p99 ms |"),
        "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]

    def trio(e: dict[str, Any]) -> str:
        return f"{_f(e['p50_ms'])} / {_f(e['p95_ms'])} / {_f(e['p99_ms'])}"

    for r in report["levels"]:
        e = {x["endpoint"]: x for x in r["endpoints"]}
        lines.append(
            f"| {r['parsers']} | {r['completed']} | {_f(r['jobs_per_s'], 2)} | "
            f"{_f(r['requests_per_s'])} | {_f(r['ratio_to_txn'], 2)} | {r['errors']} | "
            f"{r['duplicates']} | {trio(e['next'])} | {trio(e['update parsing (archive)'])} | "
            f"{trio(e['heartbeat'])} | {trio(e['update postProcessing'])} |")
    lines += [
        "",
        (f"Firestore per job (in-process, {cost['jobs']} jobs, {cost['archives']} archives each, "
         f"counted by `StoreStats`): {_f(cost['reads_per_job'], 1)} document reads, "
         f"{_f(cost['writes_per_job'], 1)} writes, {_f(cost['gcs_lists_per_job'], 2)} GCS lists; "
         f"less the archives' calls: {_f(cost.get('job_reads_per_job', 0), 1)} reads, "
         f"{_f(cost.get('job_writes_per_job', 0), 1)} writes."),
        "",
        f"Run time: {report['run_seconds']:.1f} s. JSON: {report['json_path']}",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    p = argparse.ArgumentParser(prog="python -m bench.lifecycle",
                                description=__doc__.splitlines()[0])
    p.add_argument("--parsers", default="1,8,32",
                   help="parser counts, comma-separated (default %(default)s)")
    p.add_argument("--jobs", type=int, help="jobs per level (default 64; quick 16)")
    p.add_argument("--archives", type=int, default=10, help="archives per job (default 10)")
    p.add_argument("--floor-ops", type=int, default=300, help="bare transactions for the floor")
    p.add_argument("--timeout", type=float, default=30.0, help="timeout of one request (s)")
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    p.add_argument("--json", type=Path, default=RESULTS_JSON, help="where to write the JSON")
    args = p.parse_args(argv)
    if args.jobs is None:
        args.jobs = 16 if args.quick else 64
    try:
        args.parsers = [int(x) for x in args.parsers.split(",") if x.strip()]
    except ValueError:
        p.error("--parsers takes comma-separated integers")
    if not args.parsers or min(args.parsers) < 1 or max(args.parsers) > 256:
        p.error("parsers must be between 1 and 256")
    if args.jobs < 1 or args.archives < 0 or args.floor_ops < 1:
        p.error("--jobs and --floor-ops must be at least 1, --archives at least 0")
    return args


def measure(args: argparse.Namespace, stack: ExitStack, host: str, own_emulator: bool,
            projects: list[str]) -> dict[str, Any]:
    """Start GCS, seed it, measure the floor and the per-job cost, then each parser count."""
    from google.cloud import firestore

    from shared.config import load_config

    def new_project() -> str:
        projects.append(f"demo-bench-{uuid.uuid4().hex[:12]}")
        return projects[-1]

    GCS_LOG.unlink(missing_ok=True)
    gcs = GcsEmulator(log_path=GCS_LOG)
    stack.callback(gcs.stop)
    with deferred_interrupts():
        gcs.start()
    gcs_client = gcs_client_for(gcs.url)
    workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-life-")))
    today = utcnow().date()
    days = args.jobs // 3 + 5  # three jobs with files per day: more than enough jobs
    start = today - timedelta(days=days)
    bucket = f"archive-bench-{uuid.uuid4().hex[:8]}"
    config_path = workdir / "gardener.yml"
    config_path.write_text(config_yaml(bucket, start))
    config = load_config(config_path, {})
    available = len(expected_keys(config, utcnow()))
    if available < args.jobs:
        raise SystemExit(f"only {available} jobs available for --jobs {args.jobs}")
    _progress(f"emulators {host} and {gcs.url}; seeding archives for {available} jobs …")
    seed(gcs_client, bucket, archive_names(start, today))

    project = new_project()
    _progress(f"the floor and the per-job cost, project {project} …")
    fs = firestore.Client(project=project)
    txn_rate = bench_floor(fs, args.floor_ops)[-1].ops_per_s
    cost = per_job_cost(fs, gcs_client, config, min(args.jobs, 16), args.archives)

    levels = []
    for parsers in args.parsers:
        project = new_project()
        _progress(f"{parsers} parser(s), {args.jobs} jobs, project {project} …")
        port = free_port()
        with deferred_interrupts():
            server = start_functions(port, {
                "FIRESTORE_EMULATOR_HOST": host, "STORAGE_EMULATOR_HOST": gcs.url,
                "GOOGLE_CLOUD_PROJECT": project, "GARDENER_CONFIG": str(config_path),
                "HEARTBEAT_COALESCE_SECONDS": "0"}, quiet=True)
        try:
            seconds, calls = run_parsers(f"http://127.0.0.1:{port}", parsers, args.jobs,
                                         args.archives, args.timeout)
        finally:
            stop_process(server)
        levels.append(summarise(parsers, args.jobs, seconds, calls, txn_rate, project))

    machine = machine_facts(host, own_emulator)
    machine.update(gcs_facts(), gcs_emulator_url=gcs.url)
    return {
        "machine": machine,
        "config": {"projects": list(projects), "parsers": args.parsers, "jobs": args.jobs,
                   "archives": args.archives, "floor_ops": args.floor_ops,
                   "config_yaml": config_path.read_text(), "quick": args.quick},
        "floor_txn_per_s": txn_rate,
        "per_job": asdict(cost),
        "levels": [asdict(r) for r in levels],
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table, write the JSON; return the exit status."""
    return run_measured(parse_args(argv), measure, render, EMULATOR_LOG, lambda report: (
        "a job was handed out twice or not completed"
        if any(r["duplicates"] or r["completed"] != r["jobs"] for r in report["levels"])
        else None))


if __name__ == "__main__":
    sys.exit(main())
