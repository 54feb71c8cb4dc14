"""Hot-job benchmark: K parser tasks on one job at R archives a second, through HTTP.

``make bench-hot-job`` (``python -m bench.hot_job``) starts a Firestore
emulator (unless ``FIRESTORE_EMULATOR_HOST`` points at a running one on this
machine) and serves the ``api`` router in this process (functions-framework's
app under a threaded WSGI server), so the job store's per-document write
counts (:class:`shared.store.StoreStats`) can be read. Then, as m-lab/etl's
parser does with ``--max_active``: K tasks per job (default 100) each send a
heartbeat when an archive is dispatched and a same-state ``parsing`` update
when it finishes, paced so that the job sees R completions a second (default
10), for T seconds (default 30), over 8 keep-alive connections per job
(:data:`SENDERS_PER_JOB`); then one update moves the job to ``postProcessing``. Scenarios: one job, and the m-lab shape of 8 jobs at once.

Reported per scenario: sustained writes a second to the busiest job document
and the busiest progress shard (counted writes ÷ T) and the job document's
busiest single second; whether ``UpdateCount`` after the final state change
equals 1 + the acknowledged updates + 1 exactly; the detail lag of the job
list (``/status?format=json``, which reads no shards), sampled: how old the
acknowledged update whose detail it shows is; p50/p99 latency per call;
errors. Markdown to stdout, JSON to ``bench/results/hot_job.json``.
"""

from __future__ import annotations

import argparse
import heapq
import json
import logging
import random
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.hot_path import (  # noqa: E402
    EMULATOR_LOG,
    Latencies,
    RESULTS_DIR,
    _f,
    _progress,
    bench_job,
    create_parsing_jobs,
    heartbeat_path,
    machine_facts,
    make_caller,
    run_measured,
    update_path,
)
from local.emulator import free_port  # noqa: E402

RESULTS_JSON = RESULTS_DIR / "hot_job.json"

#: Connections each job's parser sends over at once (its archive tasks share them).
SENDERS_PER_JOB = 8

#: How often the job list is read to sample the detail lag (seconds).
LAG_SAMPLE_SECONDS = 0.25


@dataclass
class ScenarioResult:
    """The figures of one scenario."""

    name: str
    jobs: int
    tasks_per_job: int
    target_completions_per_s: float
    seconds: float
    updates_acknowledged: int
    heartbeats_acknowledged: int
    errors: int
    busiest_job_doc_writes_per_s: float
    busiest_job_doc_peak_second: int
    busiest_shard_writes_per_s: float
    update_count_exact: bool
    update_count_misses: list[str]
    detail_lag: Latencies
    update: Latencies
    heartbeat: Latencies
    writes_by_kind: dict[str, int] = field(default_factory=dict)
    #: Firestore operations per archive (an update and its heartbeats), the lag sampler's
    #: list reads taken off; what the cost table charges per archive.
    reads_per_archive: float = 0.0
    writes_per_archive: float = 0.0
    requests_per_archive: float = 0.0


class InProcessServer:
    """The ``api`` router served from this process on 127.0.0.1 (threaded)."""

    def __init__(self) -> None:
        import functions_framework
        from werkzeug.serving import make_server

        app = functions_framework.create_app(target="api", source=str(ROOT / "functions" / "main.py"))
        self.port = free_port()
        self.server = make_server("127.0.0.1", self.port, app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stop serving."""
        self.server.shutdown()


class Sender:
    """A pool of ``workers`` threads, each with its own keep-alive connection, sending requests."""

    def __init__(self, base: str, workers: int, calls: dict[str, list[float]],
                 acked: dict[str, float], errors: list[str], lock: threading.Lock) -> None:
        self.base, self.calls, self.acked, self.errors, self.lock = base, calls, acked, errors, lock
        self.local = threading.local()
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sender")

    def _caller(self) -> Any:
        if not hasattr(self.local, "caller"):
            self.local.caller = make_caller(self.base, 30.0)
        return self.local.caller

    def _send(self, kind: str, path: str, detail: str) -> None:
        start = time.perf_counter()
        status = self._caller().post(path)
        took = time.perf_counter() - start
        with self.lock:
            self.calls[kind].append(took)
            if status != 200:
                self.errors.append(f"{kind} {status}")
            elif detail:
                self.acked[detail] = time.monotonic()

    def heartbeat(self, key: str) -> None:
        """Send a heartbeat for ``key`` (not waiting for the answer)."""
        self.pool.submit(self._send, "heartbeat", heartbeat_path(key), "")

    def update(self, key: str, detail: str) -> None:
        """Send a same-state ``parsing`` update for ``key`` (not waiting for the answer)."""
        self.pool.submit(self._send, "update", update_path(key, detail), detail)

    def close(self) -> None:
        """Wait for the requests sent, then close."""
        self.pool.shutdown(wait=True)


def parser(sender: Sender, key: str, tasks: int, pace: float, until: float) -> None:
    """One parser on ``key`` with ``tasks`` archive slots: each slot sends a heartbeat when
    it dispatches an archive and an update when that finishes, ``pace`` s later on average;
    the first archives finish spread over one pace, as in a parser long at work."""
    now = time.monotonic()
    due = [(now + random.uniform(0, pace), slot, 0) for slot in range(tasks)]
    heapq.heapify(due)
    for _ in range(tasks):
        sender.heartbeat(key)
    while due:
        at, slot, archive = heapq.heappop(due)
        if at >= until:
            return
        time.sleep(max(0.0, at - time.monotonic()))
        sender.update(key, f"{key} task {slot} archive {archive}")
        sender.heartbeat(key)  # the slot's next archive is dispatched
        heapq.heappush(due, (time.monotonic() + pace * random.uniform(0.5, 1.5), slot,
                             archive + 1))


def sample_lag(base: str, until: float, acked: dict[str, float], lags: list[float],
               lock: threading.Lock, rows: list[int]) -> None:
    """Read the job list until ``until``; note how old each shown detail's acknowledgement
    was when the list was asked for, and (in ``rows``) how many job documents the lists read."""
    while time.monotonic() < until:
        asked = time.monotonic()  # the page's own latency is not lag: measured from the request
        with urllib.request.urlopen(f"{base}/status?format=json&state=parsing&limit=1000",
                                    timeout=30) as r:
            jobs = json.load(r)["Jobs"]
        with lock:
            rows.append(len(jobs))
            for job in jobs:
                at = acked.get(job["Detail"])
                if at is not None:
                    lags.append(max(0.0, asked - at))
        time.sleep(LAG_SAMPLE_SECONDS)


def scenario(name: str, base: str, store: Any, tracker: Any, first_index: int, jobs: int,
             tasks: int, rate: float, seconds: float) -> ScenarioResult:
    """Run ``tasks`` slots on each of ``jobs`` jobs at ``rate`` completions/s per job for ``seconds``."""
    from shared.model import State

    keys = create_parsing_jobs(tracker, [bench_job(first_index + i, experiment="hotjob")
                                         for i in range(jobs)])
    paths = {key: store._ref(key).path for key in keys}
    start_count = {k: tracker.get_status(k).update_count for k in keys}
    calls: dict[str, list[float]] = {"update": [], "heartbeat": []}
    acked: dict[str, float] = {}
    errors: list[str] = []
    lags: list[float] = []
    lock = threading.Lock()
    pace = tasks / rate  # each slot finishes an archive every pace seconds on average
    before = Counter(store.stats.writes_by_path)
    reads_before, writes_before = store.stats.reads, store.stats.writes
    sampled_rows: list[int] = []
    per_second: list[Counter[str]] = []
    begin = time.monotonic()
    until = begin + seconds
    sender = Sender(base, SENDERS_PER_JOB * jobs, calls, acked, errors, lock)
    threads = [threading.Thread(target=parser, args=(sender, key, tasks, pace, until))
               for key in keys]
    threads.append(threading.Thread(target=sample_lag, args=(base, until, acked, lags, lock,
                                                              sampled_rows)))
    for t in threads:
        t.start()
    last = Counter(store.stats.writes_by_path)
    while any(t.is_alive() for t in threads):
        time.sleep(1.0)
        now = Counter(store.stats.writes_by_path)
        per_second.append(now - last)
        last = now
    sender.close()
    elapsed = time.monotonic() - begin
    during = Counter(store.stats.writes_by_path) - before
    reads = store.stats.reads - reads_before - sum(sampled_rows)
    writes = store.stats.writes - writes_before

    counts = {k: tracker.get_status(k).update_count for k in keys}
    # Details do not name the job: the exact view (shards read) gives each job's share,
    # and their sum must be the acknowledged updates.
    acked_per_key = {key: counts[key] - start_count[key] for key in keys}
    doc_rates = [during[paths[k]] / elapsed for k in keys]
    shard_writes = [n for p, n in during.items() if "/progress/" in p and
                    any(p.startswith(paths[k] + "/") for k in keys)]
    peak = max((sec[paths[k]] for sec in per_second for k in keys), default=0)

    # The final state change: exact from the document alone afterwards.
    misses = []
    for key in keys:
        tracker.set_status(key, State.POST_PROCESSING, "parsed")
        stored = store.get(key)  # the document alone, no shards read
        want = start_count[key] + acked_per_key[key] + 1
        if stored is None or stored.status.update_count != want:
            misses.append(f"{key}: {stored and stored.status.update_count} != {want}")
    total_acked = len(calls["update"]) - sum(e.startswith("update") for e in errors)
    heartbeats = len(calls["heartbeat"]) - sum(e.startswith("heartbeat") for e in errors)
    archives = max(total_acked, 1)
    if sum(acked_per_key.values()) != total_acked:
        misses.append(f"exact view counted {sum(acked_per_key.values())} updates, "
                      f"{total_acked} acknowledged")
    return ScenarioResult(
        name=name, jobs=jobs, tasks_per_job=tasks, target_completions_per_s=rate,
        seconds=elapsed, updates_acknowledged=total_acked,
        heartbeats_acknowledged=heartbeats,
        errors=len(errors), busiest_job_doc_writes_per_s=max(doc_rates),
        busiest_job_doc_peak_second=peak,
        busiest_shard_writes_per_s=max(shard_writes, default=0) / elapsed,
        update_count_exact=not misses, update_count_misses=misses[:5],
        detail_lag=Latencies.of(lags), update=Latencies.of(calls["update"]),
        heartbeat=Latencies.of(calls["heartbeat"]),
        writes_by_kind={"job documents": sum(during[paths[k]] for k in keys),
                        "progress shards": sum(shard_writes)},
        reads_per_archive=reads / archives, writes_per_archive=writes / archives,
        requests_per_archive=(total_acked + heartbeats) / archives,
    )


def render(report: dict[str, Any]) -> str:
    """Return the report as Markdown."""
    m, cfg = report["machine"], report["config"]
    lines = [
        "# Hot-job benchmark",
        "",
        (f"- Machine: {m['cpu_count']} CPUs `{m['cpu_model'] or '?'}`, {m['memory_gib']} GiB, "
         f"load average at start {m['loadavg_at_start']}; {m['platform']}; {m['python']}"),
        f"- Firestore emulator {m.get('emulator_version', '?')} ({m.get('java', '?')})",
        (f"- Per job: K tasks, each a heartbeat per dispatch and an update per completion, "
         f"R completions/s, over {SENDERS_PER_JOB} connections per job; "
         f"{_f(cfg['seconds'])} s per scenario; server in-process, "
         f"default heartbeat coalescing. Per archive: the Firestore reads and writes of the "
         f"scenario (the lag sampler's list reads taken off) and the requests, per update "
         f"acknowledged. `python -m bench.hot_job`"),
        "",
        ("| scenario | jobs × K | R/s per job | updates acked | errors | busiest job doc "
         "writes/s (peak 1 s) | busiest shard writes/s | UpdateCount exact | list detail lag "
         "p50/p99 ms | update p50/p99 ms | heartbeat p50/p99 ms | per archive: reads / writes "
         "/ requests |"),
        "|---|--:|--:|--:|--:|--:|--:|:-:|--:|--:|--:|--:|",
    ]
    for r in report["scenarios"]:
        lag, up, hb = r["detail_lag"], r["update"], r["heartbeat"]
        lines.append(
            f"| {r['name']} | {r['jobs']} × {r['tasks_per_job']} | "
            f"{_f(r['target_completions_per_s'])} | {r['updates_acknowledged']} | {r['errors']} | "
            f"{_f(r['busiest_job_doc_writes_per_s'], 2)} ({r['busiest_job_doc_peak_second']}) | "
            f"{_f(r['busiest_shard_writes_per_s'], 2)} | "
            f"{'yes' if r['update_count_exact'] else 'NO'} | "
            f"{_f(lag['p50_ms'], 0)} / {_f(lag['p99_ms'], 0)} | "
            f"{_f(up['p50_ms'])} / {_f(up['p99_ms'])} | {_f(hb['p50_ms'])} / {_f(hb['p99_ms'])} | "
            f"{_f(r.get('reads_per_archive', 0), 2)} / {_f(r.get('writes_per_archive', 0), 2)} / "
            f"{_f(r.get('requests_per_archive', 0), 2)} |")
    lines += ["", f"Run time: {report['run_seconds']:.1f} s. JSON: {report['json_path']}"]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line; ``--quick`` shortens the scenarios."""
    p = argparse.ArgumentParser(prog="python -m bench.hot_job", description=__doc__.splitlines()[0])
    p.add_argument("--tasks", type=int, default=100, help="tasks per job, K (default %(default)s)")
    p.add_argument("--rate", type=float, default=10.0,
                   help="archive completions a second per job, R (default %(default)s)")
    p.add_argument("--seconds", type=float, help="length of each scenario, T (default 30; quick 8)")
    p.add_argument("--mlab-jobs", type=int, default=8,
                   help="jobs of the m-lab shape scenario (0: skip it; default %(default)s)")
    p.add_argument("--quick", action="store_true", help="short scenarios, for development")
    p.add_argument("--json", type=Path, default=RESULTS_JSON, help="where to write the JSON")
    args = p.parse_args(argv)
    if args.seconds is None:
        args.seconds = 8.0 if args.quick else 30.0
    if args.tasks < 1 or args.rate <= 0 or args.seconds <= 0 or args.mlab_jobs < 0:
        p.error("--tasks, --rate and --seconds must be positive, --mlab-jobs at least 0")
    return args


def measure(args: argparse.Namespace, stack: ExitStack, host: str, own_emulator: bool,
            projects: list[str]) -> dict[str, Any]:
    """Serve the router in-process on a fresh project and run the scenarios."""
    import os

    projects.append(f"demo-bench-{uuid.uuid4().hex[:12]}")
    os.environ["GOOGLE_CLOUD_PROJECT"] = projects[-1]
    from shared import runtime

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    server = InProcessServer()
    stack.callback(server.stop)
    tracker = runtime.tracker()
    store = tracker.store
    results = []
    _progress(f"one job × {args.tasks} tasks at {args.rate}/s for {args.seconds} s …")
    results.append(scenario("one hot job", server.base, store, tracker, 0, 1, args.tasks,
                            args.rate, args.seconds))
    if args.mlab_jobs:
        _progress(f"{args.mlab_jobs} jobs × {args.tasks} tasks at once …")
        results.append(scenario("m-lab shape", server.base, store, tracker, 100,
                                args.mlab_jobs, args.tasks, args.rate, args.seconds))
    return {
        "machine": machine_facts(host, own_emulator),
        "config": {"projects": list(projects), "tasks": args.tasks, "rate": args.rate,
                   "seconds": args.seconds, "mlab_jobs": args.mlab_jobs, "quick": args.quick},
        "scenarios": [asdict(r) for r in results],
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table, write the JSON; return the exit status."""
    return run_measured(parse_args(argv), measure, render, EMULATOR_LOG, lambda report: (
        "a scenario had errors or an inexact UpdateCount"
        if any(r["errors"] or not r["update_count_exact"] for r in report["scenarios"]) else None))


if __name__ == "__main__":
    sys.exit(main())
