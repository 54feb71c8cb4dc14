"""Hot-job benchmark: K parser tasks on one job at R archives a second, through HTTP.

As m-lab/etl's parser with ``--max_active``: K tasks per job each send a heartbeat per archive
dispatched and an update per archive finished, R a second per job, for T seconds; one job,
then 8 at once. The router is served in-process, to count writes per document."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from threading import Thread
from typing import Any

from bench import harness as h
from local.emulator import free_port
from local.fleet import FanOut
from local.workload import bench_job, create_parsing_jobs
from shared.model import State

#: Connections each job's parser sends over at once; seconds between job list reads.
SENDERS_PER_JOB, LAG_SAMPLE_SECONDS = 8, 0.25
LIST_QUERY = "format=json&state=parsing&limit=1000"  # the job list the lag is read from


def scenario(name: str, base: str, tracker: Any, first: int, jobs: int, args: Any) -> h.Report:
    """``args.tasks`` slots on each of ``jobs`` jobs at ``args.rate`` completions/s per job."""
    store, stats = tracker.store, tracker.store.stats
    keys = create_parsing_jobs(tracker, [bench_job(first + i, "hotjob") for i in range(jobs)])
    paths = {key: store._ref(key).path for key in keys}
    start_count = {k: tracker.get_status(k).update_count for k in keys}
    before, reads_before, writes_before = Counter(stats.writes_by_path), stats.reads, stats.writes
    last, per_second, begin = before, [], time.monotonic()
    sender, pace = FanOut(base, SENDERS_PER_JOB * jobs), args.tasks / args.rate
    until = begin + args.seconds
    threads = [Thread(target=sender.work, args=(k, args.tasks, pace, until)) for k in keys]
    threads.append(Thread(target=sender.watch, args=(LIST_QUERY, until, LAG_SAMPLE_SECONDS)))
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        time.sleep(1.0)
        per_second.append((now := Counter(stats.writes_by_path)) - last)
        last = now
    sender.pool.shutdown(wait=True)
    elapsed, during = time.monotonic() - begin, Counter(stats.writes_by_path) - before
    reads = stats.reads - reads_before - sum(sender.listed)  # the job lists' reads taken off
    # The exact view (shards read) gives each job's share of the acknowledged updates.
    acked = {k: tracker.get_status(k).update_count - start_count[k] for k in keys}
    mine = tuple(paths[k] + "/" for k in keys)
    shards = [n for p, n in during.items() if "/progress/" in p and p.startswith(mine)]
    misses = []
    for key in keys:  # the final state change: exact from the document alone afterwards
        tracker.set_status(key, State.POST_PROCESSING, "parsed")
        stored, want = store.get(key), start_count[key] + acked[key] + 1
        if stored is None or stored.status.update_count != want:
            misses.append(f"{key}: {stored and stored.status.update_count} != {want}")
    acknowledged = Counter(c.endpoint for c in sender.calls if c.status == 200)
    updates, heartbeats = acknowledged["update"], acknowledged["heartbeat"]
    if sum(acked.values()) != updates:
        misses.append(f"exact view counted {sum(acked.values())} updates, {updates} acknowledged")
    archives, lat = max(updates, 1), h.latencies
    out: h.Report = {"name": name, "jobs": jobs, "tasks_per_job": args.tasks}
    out |= {"target_completions_per_s": args.rate, "seconds": elapsed}
    out |= {"updates_acknowledged": updates, "heartbeats_acknowledged": heartbeats}
    out |= {"errors": len(sender.calls) - updates - heartbeats}
    out["busiest_job_doc_writes_per_s"] = max(during[paths[k]] / elapsed for k in keys)
    peak = max((s[paths[k]] for s in per_second for k in keys), default=0)
    out |= {"busiest_job_doc_peak_second": peak}
    out["busiest_shard_writes_per_s"] = max(shards, default=0) / elapsed
    out |= {"update_count_exact": not misses, "update_count_misses": misses[:5]}
    for kind in ("update", "heartbeat"):
        out[kind] = lat([c.seconds for c in sender.calls if c.endpoint == kind])
    out |= {"detail_lag": lat(sender.lags)}
    job_writes = sum(during[paths[k]] for k in keys)
    out["writes_by_kind"] = {"job documents": job_writes, "progress shards": sum(shards)}
    writes = stats.writes - writes_before
    out |= {"reads_per_archive": reads / archives, "writes_per_archive": writes / archives}
    return out | {"requests_per_archive": (updates + heartbeats) / archives}


def measure(args: Any, run: h.Run) -> h.Report:
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


def render(report: h.Report) -> str:
    lines = h.heading(
        "Hot-job benchmark",
        report["machine"],
        f"{h.fmt(report['config']['seconds'])} s per scenario, {SENDERS_PER_JOB} "
        "connections per job, server in-process, default heartbeat coalescing",
    )
    lines.append("")
    lines += h.grid(
        report["scenarios"],
        "scenario@name | jobs × K@jobs | R/s per job@target_completions_per_s:1 | "
        "updates acked@updates_acknowledged | errors@errors | "
        "busiest job doc writes/s (peak 1 s)@busiest | "
        "busiest shard writes/s@busiest_shard_writes_per_s:2 | ^UpdateCount exact@exact | "
        "list detail lag p50/p99 ms@detail_lag.p50_ms+detail_lag.p99_ms:0 | "
        "update p50/p99 ms@update.p50_ms+update.p99_ms:1 | "
        "heartbeat p50/p99 ms@heartbeat.p50_ms+heartbeat.p99_ms:1 | per archive: reads / writes "
        "/ requests@reads_per_archive+writes_per_archive+requests_per_archive:2",
        jobs=lambda r: f"{r['jobs']} × {r['tasks_per_job']}",
        busiest=lambda r: (
            f"{h.fmt(r['busiest_job_doc_writes_per_s'], 2)} ({r['busiest_job_doc_peak_second']})"
        ),
        exact=lambda r: "yes" if r["update_count_exact"] else "NO",
    )
    return "\n".join(lines)


def failure(report: h.Report) -> str | None:
    """Whether a scenario had errors or an inexact UpdateCount."""
    bad = any(r["errors"] or not r["update_count_exact"] for r in report["scenarios"])
    return "a scenario had errors or an inexact UpdateCount" if bad else None


def main(argv: list[str] | None = None) -> int:
    options = [
        ("--tasks", h.number(int, 1), 100, "tasks per job, K (default 100)"),
        ("--rate", h.number(float), 10.0, "archive completions a second per job, R (default 10)"),
        ("--seconds", h.number(float), h.Quick(30.0, 8.0), "length of each scenario, T"),
        ("--mlab-jobs", h.number(int, 0), 8, "jobs of the m-lab shape scenario (0: skip it)"),
    ]
    args = h.arguments("hot_job", __doc__, argv, "short scenarios, for development", *options)
    return h.run_measured(args, measure, render, "", failure)


if __name__ == "__main__":
    raise SystemExit(main())
