"""Scale benchmark: the status page through HTTP, an expiry pass and a snapshot export at N jobs.

Per N: ``/status`` (HTML, JSON) through a function server and its peak RSS, the reads of
one status load, a one-row query (the emulator's floor), one expiry pass, a snapshot
export and one count reconciliation, as one ``maintain`` run does them. ``make bench-scale``.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.harness import (
    RESULTS_DIR,
    Caller,
    Run,
    arguments,
    grid,
    heading,
    int_list,
    progress,
    run_measured,
    traced,
    untraced,
)
from bench.maintenance import (
    DEFAULT_HEAP,
    EXPIRATION,
    MAX_SIZE,
    STATUS_LIMIT,
    STATUS_REPEATS,
    bench_export,
    load_jobs,
)
from shared.defaults import MAINTENANCE_BATCH as BATCH
from shared.model import JobFilter, utcnow

EMULATOR_LOG = RESULTS_DIR / "scale-firestore-emulator.log"


def group_peak_rss_mib(pgid: int) -> float:
    """The largest peak RSS (``VmHWM``) of the processes in process group ``pgid``, in MiB."""
    peak = 0.0
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and os.getpgid(int(proc.name)) == pgid:
                for line in (proc / "status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]) / 1024)
        except (OSError, ValueError, ProcessLookupError):
            continue
    return peak


def median_seconds(call: Callable[[], object]) -> float:
    """The median time of :data:`STATUS_REPEATS` calls of ``call``."""
    times = []
    for _ in range(STATUS_REPEATS):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def status_reads(tracker: Any) -> tuple[int, int]:
    """Build ``/status``'s rows and counts in-process; the reads it made and the total counted."""
    from shared.web.status import state_counts

    store, counts = tracker.store, tracker.store.state_counts
    before = store.stats.reads + counts.stats.reads
    rows = list(tracker.get_state(JobFilter(limit=STATUS_LIMIT)))
    total = sum(state_counts(tracker, None, None).values())
    if len(rows) != min(total, STATUS_LIMIT):
        raise RuntimeError(f"status shows {len(rows)} rows of {total}")
    return store.stats.reads + counts.stats.reads - before, total


def bench_size(run: Run, n: int, bucket: Any) -> dict[str, Any]:
    """Load N jobs into a fresh project and measure every figure on them."""
    from shared.maintenance import reconcile_counts
    from shared.store import JobStore
    from shared.tracker import Tracker

    now, project = utcnow(), run.project()
    store = JobStore(run.firestore(project))
    # Started on the empty project: its readiness probe is a /status request.
    with run.server(
        {"STORAGE_EMULATOR_HOST": run.gcs_url or "", "GOOGLE_CLOUD_PROJECT": project}
    ) as (base, server):
        progress(f"N={n:,}: loading into {project} …")
        load = load_jobs(store, n, now)
        caller = Caller(base, 300.0)
        caller.get("/no-such-path")  # warms the connection and the worker
        progress("    status page (HTML, JSON) …")

        def get(path: str) -> None:
            if (status := caller.get(path)) != 200:
                raise RuntimeError(f"GET {path} answered {status}")

        html = median_seconds(lambda: get("/status"))
        as_json = median_seconds(lambda: get("/status?format=json"))
        server_peak = group_peak_rss_mib(server.pid)
        caller.session.close()
    reads, counted = status_reads(Tracker(store))
    floor = median_seconds(lambda: list(store.collection.limit(1).stream()))
    if counted != n:
        raise RuntimeError(f"the job counts show {counted} jobs, not {n}")
    progress("    count reconciliation, snapshot export, expiry pass …")
    summary, reconcile = untraced(lambda: reconcile_counts(Tracker(store)))
    drift = sum(abs(d) for d in summary.get("drift", {}).values())
    if drift or "skipped" in summary:
        raise RuntimeError(f"the count reconciliation found {summary}: the counts were not exact")
    export = bench_export(store, bucket, f"scale-n{n}/", n)["cost"]
    tracker, cutoff = Tracker(store), now - EXPIRATION
    expired, cost = untraced(lambda: tracker.expire_stale(cutoff, BATCH))
    _, traced_mib, _ = traced(lambda: tracker.expire_stale(cutoff, BATCH))
    run.wipe(project)
    for blob in bucket.list_blobs(prefix=f"scale-n{n}/"):
        blob.delete()
    return {
        "n": n,
        "load_seconds": load["seconds"],
        "status_html_s": html,
        "status_json_s": as_json,
        "server_peak_rss_mib": server_peak,
        "status_reads": reads,
        "status_counted_total": counted,
        "query_floor_s": floor,
        "expiry_pass_s": cost.seconds,
        "expiry_pass_jobs": len(expired),
        "expiry_pass_traced_mib": traced_mib,
        "export_s": export["seconds"],
        "export_rss_peak_mib": export["rss_peak_mib"],
        "export_traced_mib": export["traced_peak_mib"],
        "reconcile_s": reconcile.seconds,
        "reconcile_drift": drift,
        "project": project,
    }


def measure(args: Any, run: Run) -> dict[str, Any]:
    """Start the GCS emulator and a bucket, then every size."""
    bucket = run.gcs().create_bucket(f"bench-scale-{uuid.uuid4().hex[:8]}")
    rows = [bench_size(run, n, bucket) for n in args.sizes]
    return {
        "config": {
            "batch": BATCH,
            "status_repeats": STATUS_REPEATS,
            "emulator_heap": f"-Xmx{args.emulator_heap}"
            if run.own_emulator
            else "external emulator",
        },
        "sizes": rows,
    }


def render(report: dict[str, Any]) -> str:
    """The report as Markdown: one row per N, then the growth factors."""
    rows = report["sizes"]
    lines = heading("Scale benchmark", report["machine"])
    lines += grid(
        rows,
        "N jobs@n:, | status HTML s@status_html_s:2 | status JSON s@status_json_s:2 | "
        "one-row query s@query_floor_s:2 | status reads@status_reads:, | "
        f"server peak RSS MiB@server_peak_rss_mib:1 | expiry pass of {BATCH} s@expiry_pass_s:2"
        " | expiry pass tracemalloc MiB@expiry_pass_traced_mib:1 | export s@export_s:2 | "
        "export RSS peak MiB@export_rss_peak_mib:1 | export tracemalloc MiB@export_traced_mib:1"
        " | count reconciliation s@reconcile_s:2",
        "r" * 12,
    )
    if len(rows) > 1:
        lines += ["", "Growth from the previous N:", ""]
        growths = grid(
            rows,
            "N jobs@n:, | × N@n:× | status HTML@status_html_s:× | status JSON@status_json_s:× | "
            "expiry pass@expiry_pass_s:× | export@export_s:× | export memory@export_traced_mib:×",
            "r" * 7,
        )
        lines += growths[:2] + growths[3:]  # the first N has nothing to grow from
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the tables, write the JSON; the exit status."""
    p = arguments("scale", __doc__)
    p.add_argument(
        "--sizes",
        type=int_list(MAX_SIZE),
        default=[1_000, 10_000],
        help="job counts, one fresh project each (default 1000,10000)",
    )
    p.add_argument("--emulator-heap", default=DEFAULT_HEAP, help="Java heap of the emulator")
    args = p.parse_args(argv)
    return run_measured(args, measure, render, EMULATOR_LOG, heap=args.emulator_heap)


if __name__ == "__main__":
    sys.exit(main())
