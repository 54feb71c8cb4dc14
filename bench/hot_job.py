"""Hot-job benchmark: K parser tasks on one job at R archives a second, through HTTP.

As m-lab/etl's parser with ``--max_active``: K tasks per job each send a heartbeat per archive
dispatched and an update per archive finished, R a second per job, for T seconds; one job,
then 8 at once. The router is served in-process, to count writes per document."""

from __future__ import annotations

import heapq
import json
import logging
import os
import random
import sys
import threading
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench import harness as h
from local.emulator import free_port
from local.workload import bench_job, create_parsing_jobs

#: Connections each job's parser sends over at once; seconds between job list reads.
SENDERS_PER_JOB, LAG_SAMPLE_SECONDS = 8, 0.25
PER_ARCHIVE = ("reads", "writes", "requests")
LIST_QUERY = "format=json&state=parsing&limit=1000"  # the job list the lag is read from


class Sender:
    """A pool of threads, each with its own keep-alive connection, sending without waiting."""

    def __init__(self, base: str, workers: int) -> None:
        self.base, self.local, self.lock = base, threading.local(), threading.Lock()
        self.calls: dict[str, list[float]] = {"update": [], "heartbeat": []}
        self.acked: dict[str, float] = {}  # detail → when its update was acknowledged
        self.errors: list[str] = []
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sender")

    def send(self, key: str, detail: str = "") -> None:
        """Send an update of ``key`` with ``detail`` (a heartbeat without), not waiting."""
        if detail:
            self.pool.submit(self._send, "update", h.update_path(key, detail), detail)
        else:
            self.pool.submit(self._send, "heartbeat", h.heartbeat_path(key), "")

    def _send(self, kind: str, path: str, detail: str) -> None:
        if not hasattr(self.local, "caller"):
            self.local.caller = h.Caller(self.base, 30.0)
        start = time.perf_counter()
        status = self.local.caller.send("POST", path)[0]
        with self.lock:
            self.calls[kind].append(time.perf_counter() - start)
            if status != 200:
                self.errors.append(f"{kind} {status}")
            elif detail:
                self.acked[detail] = time.monotonic()


def parser(sender: Sender, key: str, tasks: int, pace: float, until: float) -> None:
    """One parser on ``key`` with ``tasks`` slots, each finishing an archive every ``pace`` s
    on average (the first spread over one pace, as in a parser long at work)."""
    now = time.monotonic()
    due = [(now + random.uniform(0, pace), slot, 0) for slot in range(tasks)]
    heapq.heapify(due)
    for _ in range(tasks):
        sender.send(key)  # a heartbeat
    while due:
        at, slot, archive = heapq.heappop(due)
        if at >= until:
            return
        time.sleep(max(0.0, at - time.monotonic()))
        sender.send(key, f"{key} task {slot} archive {archive}")
        sender.send(key)  # a heartbeat: the slot's next archive is dispatched
        heapq.heappush(due, (time.monotonic() + pace * random.uniform(0.5, 1.5), slot, archive + 1))


def sample_lag(base: str, until: float, sender: Sender, lags: list[float], rows: list[int]) -> None:
    """Read the job list until ``until``: how old each shown detail's acknowledgement was when
    the list was asked for, and how many job documents each list read."""
    while time.monotonic() < until:
        asked = time.monotonic()
        with urllib.request.urlopen(f"{base}/status?{LIST_QUERY}", timeout=30) as r:
            jobs = json.load(r)["Jobs"]
        with sender.lock:
            rows.append(len(jobs))
            acked = [sender.acked.get(job["Detail"]) for job in jobs]
            lags += [max(0.0, asked - at) for at in acked if at is not None]
        time.sleep(LAG_SAMPLE_SECONDS)


def scenario(
    name: str, base: str, tracker: Any, first: int, jobs: int, args: Any
) -> dict[str, Any]:
    """``args.tasks`` slots on each of ``jobs`` jobs at ``args.rate`` completions/s per job."""
    from shared.model import State

    store = tracker.store
    keys = create_parsing_jobs(
        tracker, [bench_job(first + i, experiment="hotjob") for i in range(jobs)]
    )
    paths = {key: store._ref(key).path for key in keys}
    start_count = {k: tracker.get_status(k).update_count for k in keys}
    lags: list[float] = []
    rows: list[int] = []
    before, last = Counter(store.stats.writes_by_path), Counter(store.stats.writes_by_path)
    reads_before, writes_before = store.stats.reads, store.stats.writes
    per_second: list[Counter[str]] = []
    begin = time.monotonic()
    until = begin + args.seconds
    sender = Sender(base, SENDERS_PER_JOB * jobs)
    pace = args.tasks / args.rate
    threads = [
        threading.Thread(target=parser, args=(sender, k, args.tasks, pace, until)) for k in keys
    ]
    threads.append(threading.Thread(target=sample_lag, args=(base, until, sender, lags, rows)))
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        time.sleep(1.0)
        now = Counter(store.stats.writes_by_path)
        per_second.append(now - last)
        last = now
    sender.pool.shutdown(wait=True)
    elapsed = time.monotonic() - begin
    during = Counter(store.stats.writes_by_path) - before
    reads = store.stats.reads - reads_before - sum(rows)  # the lag sampler's reads taken off
    writes = store.stats.writes - writes_before
    # The exact view (shards read) gives each job's share of the acknowledged updates.
    acked = {k: tracker.get_status(k).update_count - start_count[k] for k in keys}
    mine = tuple(paths[k] + "/" for k in keys)
    shards = [n for p, n in during.items() if "/progress/" in p and p.startswith(mine)]
    misses = []
    for key in keys:  # the final state change: exact from the document alone afterwards
        tracker.set_status(key, State.POST_PROCESSING, "parsed")
        stored = store.get(key)
        want = start_count[key] + acked[key] + 1
        if stored is None or stored.status.update_count != want:
            misses.append(f"{key}: {stored and stored.status.update_count} != {want}")
    updates = len(sender.calls["update"]) - sum(e.startswith("update") for e in sender.errors)
    heartbeats = len(sender.calls["heartbeat"]) - sum(e.startswith("heart") for e in sender.errors)
    if sum(acked.values()) != updates:
        misses.append(f"exact view counted {sum(acked.values())} updates, {updates} acknowledged")
    archives, lat = max(updates, 1), h.latencies
    out: dict[str, Any] = {"name": name, "jobs": jobs, "tasks_per_job": args.tasks}
    out |= {"target_completions_per_s": args.rate, "seconds": elapsed}
    out |= {"updates_acknowledged": updates, "heartbeats_acknowledged": heartbeats}
    out |= {"errors": len(sender.errors)}
    out["busiest_job_doc_writes_per_s"] = max(during[paths[k]] / elapsed for k in keys)
    peak = max((s[paths[k]] for s in per_second for k in keys), default=0)
    out |= {"busiest_job_doc_peak_second": peak}
    out["busiest_shard_writes_per_s"] = max(shards, default=0) / elapsed
    out |= {"update_count_exact": not misses, "update_count_misses": misses[:5]}
    out |= {"detail_lag": lat(lags), "update": lat(sender.calls["update"])}
    out |= {"heartbeat": lat(sender.calls["heartbeat"])}
    job_writes = sum(during[paths[k]] for k in keys)
    out["writes_by_kind"] = {"job documents": job_writes, "progress shards": sum(shards)}
    out |= {"reads_per_archive": reads / archives, "writes_per_archive": writes / archives}
    return out | {"requests_per_archive": (updates + heartbeats) / archives}


def measure(args: Any, run: h.Run) -> dict[str, Any]:
    """Serve the router in-process (a threaded WSGI server) on a fresh project; the scenarios."""
    import functions_framework
    from werkzeug.serving import make_server

    os.environ["GOOGLE_CLOUD_PROJECT"] = run.project()
    from shared import runtime

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    app = functions_framework.create_app(target="api", source=str(h.ROOT / "functions" / "main.py"))
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    run.stack.callback(server.shutdown)
    base, tracker = f"http://127.0.0.1:{port}", runtime.tracker()
    h.progress(f"one job × {args.tasks} tasks at {args.rate}/s for {args.seconds} s …")
    results = [scenario("one hot job", base, tracker, 0, 1, args)]
    if args.mlab_jobs:
        h.progress(f"{args.mlab_jobs} jobs × {args.tasks} tasks at once …")
        results.append(scenario("m-lab shape", base, tracker, 100, args.mlab_jobs, args))
    return {"scenarios": results}


def render(report: dict[str, Any]) -> str:
    def pair(lat: str, digits: int = 1) -> Any:
        return lambda r: f"{h.fmt(r[lat]['p50_ms'], digits)} / {h.fmt(r[lat]['p99_ms'], digits)}"

    lines = h.heading(
        "Hot-job benchmark",
        report["machine"],
        f"{h.fmt(report['config']['seconds'])} s per scenario, {SENDERS_PER_JOB} "
        "connections per job, server in-process, default heartbeat coalescing",
    )
    lines += h.grid(
        report["scenarios"],
        "scenario@name | jobs × K@jobs | R/s per job@target_completions_per_s:1 | "
        "updates acked@updates_acknowledged | errors@errors | "
        "busiest job doc writes/s (peak 1 s)@busiest | "
        "busiest shard writes/s@busiest_shard_writes_per_s:2 | UpdateCount exact@exact | "
        "list detail lag p50/p99 ms@lag | update p50/p99 ms@update | "
        "heartbeat p50/p99 ms@heartbeat | per archive: reads / writes / requests@archive",
        "lrrrrrrcrrrr",
        jobs=lambda r: f"{r['jobs']} × {r['tasks_per_job']}",
        busiest=lambda r: (
            f"{h.fmt(r['busiest_job_doc_writes_per_s'], 2)} ({r['busiest_job_doc_peak_second']})"
        ),
        exact=lambda r: "yes" if r["update_count_exact"] else "NO",
        lag=pair("detail_lag", 0),
        update=pair("update"),
        heartbeat=pair("heartbeat"),
        archive=lambda r: " / ".join(h.fmt(r[f"{k}_per_archive"], 2) for k in PER_ARCHIVE),
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    options = [
        ("--tasks", int, 100, "tasks per job, K (default 100)"),
        ("--rate", float, 10.0, "archive completions a second per job, R (default 10)"),
        ("--seconds", float, None, "length of each scenario, T (30; quick 8)"),
        ("--mlab-jobs", int, 8, "jobs of the m-lab shape scenario (0: skip it; default 8)"),
    ]
    p = h.arguments("hot_job", __doc__, "short scenarios, for development", *options)
    args = p.parse_args(argv)
    args.seconds = args.seconds or (8.0 if args.quick else 30.0)
    if args.tasks < 1 or args.rate <= 0 or args.seconds <= 0 or args.mlab_jobs < 0:
        p.error("--tasks, --rate and --seconds must be positive, --mlab-jobs at least 0")

    def failure(report: dict[str, Any]) -> str | None:
        bad = any(r["errors"] or not r["update_count_exact"] for r in report["scenarios"])
        return "a scenario had errors or an inexact UpdateCount" if bad else None

    return h.run_measured(args, measure, render, "", failure)


if __name__ == "__main__":
    sys.exit(main())
