"""Scale benchmark: the status page through HTTP (HTML and JSON), an expiry pass and a snapshot export at N jobs.

``make bench-scale`` (``python -m bench.scale``; ``--sizes 1000,10000,100000``
for more) starts a Firestore emulator with a 4 GiB heap (as
:mod:`bench.maintenance` does; unless ``FIRESTORE_EMULATOR_HOST`` points at a
running one) and a GCS emulator. For each size N (default 1,000 and 10,000)
it loads N stale ``parsing`` jobs into a fresh project with the store's batch
writes (:func:`bench.maintenance.load_jobs`), starts a real function server
on that project, and measures:

1. ``GET /status`` (HTML) and ``GET /status?format=json`` through HTTP, the
   median of 3, and the server's peak RSS (the largest ``VmHWM`` of its
   processes) once they were served; then, in process, the Firestore reads
   of one load as ``/status`` makes them (its rows and the job counts'
   shards, counted through the stores' stats) and the total the counts show
   (which must be N);
2. one expiry pass as one ``maintain`` run does it
   (:meth:`~shared.tracker.Tracker.expire_stale` of
   :data:`shared.maintenance.BATCH` jobs): time, and tracemalloc peak of a
   second pass;
3. a snapshot export of the N jobs (:func:`bench.maintenance.bench_export`:
   time, sampled RSS, tracemalloc peak of a second export);
4. one reconciliation of the job counts as one ``maintain`` run does it
   (:func:`~shared.maintenance.reconcile_counts`: one source, an aggregation
   count per state), and the drift it found (must be none).

Each figure is shown with its growth factor from the previous N.
:mod:`bench.maintenance` measures the same export in more detail, the
import, full expiry runs and the in-process status page; this one adds the
page as a client sees it, and the per-run cost of maintenance. At 100,000
jobs a run takes about 6 minutes on a 2-core machine (most of it loading the
jobs and the two exports). Markdown to stdout, JSON to ``bench/results/scale.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.hot_path import (  # noqa: E402
    RESULTS_DIR,
    _f,
    _progress,
    deferred_interrupts,
    machine_facts,
    make_caller,
    publish,
    run_on_emulator,
    size_list,
)
from bench.maintenance import (  # noqa: E402
    DEFAULT_HEAP,
    EXPIRATION,
    MAX_SIZE,
    STATUS_LIMIT,
    STATUS_REPEATS,
    Context,
    _x,
    bench_export,
    growth,
    load_jobs,
    traced,
    untraced,
    wipe_contexts,
)
from bench.next_job import gcs_facts  # noqa: E402
from local.emulator import free_port  # noqa: E402
from local.gcs_emulator import GcsEmulator  # noqa: E402
from local.gcs_emulator import client as gcs_client_for  # noqa: E402
from local.stack import start_functions, stop_process  # noqa: E402
from shared.defaults import MAINTENANCE_BATCH as BATCH  # noqa: E402
from shared.model import JobFilter, utcnow  # noqa: E402

RESULTS_JSON = RESULTS_DIR / "scale.json"
EMULATOR_LOG = RESULTS_DIR / "scale-firestore-emulator.log"
GCS_LOG = RESULTS_DIR / "scale-gcs-emulator.log"
DEFAULT_SIZES = (1_000, 10_000)


@dataclass
class ScaleResult:
    """Everything measured at one N."""

    n: int
    load_seconds: float
    status_html_s: float
    status_json_s: float
    server_peak_rss_mib: float
    status_reads: int
    status_counted_total: int
    #: Median seconds of a query for one job, no order: the emulator's floor (it scans every document).
    query_floor_s: float
    expiry_pass_s: float
    expiry_pass_jobs: int
    expiry_pass_traced_mib: float
    export_s: float
    export_rss_peak_mib: float
    export_traced_mib: float | None
    reconcile_s: float
    reconcile_drift: int
    project: str


def group_peak_rss_mib(pgid: int) -> float:
    """Return the largest peak RSS (``VmHWM``) of the processes in process group ``pgid``, in MiB."""
    peak = 0.0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if os.getpgid(int(proc.name)) != pgid:
                continue
            for line in (proc / "status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) / 1024)
        except (OSError, ValueError, ProcessLookupError):
            continue
    return peak


def timed_get(caller: Any, path: str, repeats: int) -> float:
    """GET ``path`` ``repeats`` times; return the median seconds (RuntimeError unless 200)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        status = caller.get(path)
        times.append(time.perf_counter() - t0)
        if status != 200:
            raise RuntimeError(f"GET {path} answered {status}")
    return statistics.median(times)


def status_reads(tracker: Any) -> tuple[int, int]:
    """Build ``/status``'s rows and counts in process; return the reads it made and the total counted."""
    from shared.web.status import state_counts
    from shared.store import StateCountStore

    store = tracker.store
    counts: StateCountStore = store.state_counts
    before = store.stats.reads + counts.stats.reads
    rows = list(tracker.get_state(JobFilter(limit=STATUS_LIMIT)))
    total = sum(state_counts(tracker, None, None).values())
    if len(rows) != min(total, STATUS_LIMIT):
        raise RuntimeError(f"status shows {len(rows)} rows of {total}")
    return store.stats.reads + counts.stats.reads - before, total


def query_floor(store: Any, repeats: int) -> float:
    """Return the median seconds of a query for one job with no order or filter.

    Firestore answers it from an index in time independent of N; the emulator
    has no indexes and scans every document, so this is the least any query
    of the jobs (the status page's rows) costs on it at this N.
    """
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        list(store.collection.limit(1).stream())
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_size(n: int, ctx: Context, host: str, gcs_url: str) -> ScaleResult:
    """Load N jobs into a fresh project and measure the status page, an expiry pass and an export."""
    from shared.maintenance import reconcile_counts
    from shared.tracker import Tracker

    now: datetime = utcnow()
    store = ctx.store()
    project = store.client.project
    port = free_port()
    # Started on the empty project: its readiness probe is a /status request, which
    # at 100,000 jobs takes longer than the probe waits.
    with deferred_interrupts():
        server = start_functions(port, {"FIRESTORE_EMULATOR_HOST": host,
                                        "STORAGE_EMULATOR_HOST": gcs_url,
                                        "GOOGLE_CLOUD_PROJECT": project}, quiet=True)
    try:
        _progress(f"N={n:,}: loading into {project} …")
        load = load_jobs(store, n, now)
        caller = make_caller(f"http://127.0.0.1:{port}", 300.0)
        caller.get("/no-such-path")  # warm the connection and the worker
        _progress("    status page (HTML, JSON) …")
        html = timed_get(caller, "/status", STATUS_REPEATS)
        as_json = timed_get(caller, "/status?format=json", STATUS_REPEATS)
        server_peak = group_peak_rss_mib(server.pid)
        caller.close()
    finally:
        stop_process(server)
    reads, counted_total = status_reads(Tracker(store))
    floor = query_floor(store, STATUS_REPEATS)
    if counted_total != n:
        raise RuntimeError(f"the job counts show {counted_total} jobs, not {n}")
    _progress("    count reconciliation of one source …")
    summary, reconcile = untraced(lambda: reconcile_counts(Tracker(store)))
    drift = sum(abs(d) for d in summary.get("drift", {}).values())
    if drift or "skipped" in summary:
        raise RuntimeError(f"the count reconciliation found {summary}: the counts were not exact")
    _progress("    snapshot export (untraced, then traced) …")
    export = bench_export(store, ctx.bucket, f"scale-n{n}/", n)
    _progress(f"    expiry pass of {BATCH} (untraced, then traced) …")
    tracker = Tracker(store)
    cutoff = now - EXPIRATION
    expired, cost = untraced(lambda: tracker.expire_stale(cutoff, BATCH))
    _, traced_mib, _ = traced(lambda: tracker.expire_stale(cutoff, BATCH))
    ctx.wipe(project)
    for blob in ctx.bucket.list_blobs(prefix=f"scale-n{n}/"):
        blob.delete()
    return ScaleResult(n, load.seconds, html, as_json, server_peak, reads, counted_total, floor,
                       cost.seconds, len(expired), traced_mib, export.cost.seconds,
                       export.cost.rss_peak_mib, export.cost.traced_peak_mib, reconcile.seconds,
                       drift, project)


def render(report: dict[str, Any]) -> str:
    """Return the report as Markdown: one row per N, then the growth factors."""
    m, rows = report["machine"], report["sizes"]
    lines = [
        "# Scale benchmark",
        "",
        (f"- Machine: {m['cpu_count']} CPUs `{m['cpu_model'] or '?'}`, {m['memory_gib']} GiB, "
         f"load average at start {m['loadavg_at_start']}; {m['python']}; Firestore emulator "
         f"{m.get('emulator_version', '?')} ({report['config']['emulator_heap']})"),
        ("- Jobs all in `parsing`, two days silent; status page at its default limit of 1,000 rows; "
         "status reads: one load's Firestore reads (rows shown + the job counts' shards); "
         "one-row query: a query for one job, no filter or order, which the emulator answers "
         "by scanning every document (Firestore from an index): the least any query of the "
         "jobs costs here, the status page's rows included; "
         "count reconciliation: one `maintain` run's check of one source."),
        "",
        (f"| N jobs | status HTML s | status JSON s | one-row query s | status reads "
         "| server peak RSS MiB "
         f"| expiry pass of {BATCH} s | expiry pass tracemalloc MiB | export s "
         "| export RSS peak MiB | export tracemalloc MiB | count reconciliation s |"),
        "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n']:,} | {_f(r['status_html_s'], 2)} | {_f(r['status_json_s'], 2)} | "
            f"{_f(r.get('query_floor_s', float('nan')), 2)} | {r['status_reads']:,} | {_f(r['server_peak_rss_mib'])} | {_f(r['expiry_pass_s'], 2)} | "
            f"{_f(r['expiry_pass_traced_mib'], 1)} | {_f(r['export_s'], 2)} | "
            f"{_f(r['export_rss_peak_mib'])} | {_f(r['export_traced_mib'] or float('nan'))} | "
            f"{_f(r['reconcile_s'], 2)} |")
    if len(rows) > 1:
        lines += ["", "Growth from the previous N:", "",
                  "| N jobs | × N | status HTML | status JSON | expiry pass | export | export memory |",
                  "|--:|--:|--:|--:|--:|--:|--:|"]
        cols = {k: growth([r[k] for r in rows]) for k in
                ("n", "status_html_s", "status_json_s", "expiry_pass_s", "export_s",
                 "export_traced_mib")}
        for i, r in enumerate(rows[1:], start=1):
            lines.append(f"| {r['n']:,} | {_x(cols['n'][i])} | {_x(cols['status_html_s'][i])} | "
                         f"{_x(cols['status_json_s'][i])} | {_x(cols['expiry_pass_s'][i])} | "
                         f"{_x(cols['export_s'][i])} | {_x(cols['export_traced_mib'][i])} |")
    lines += ["", f"Run time: {report['run_seconds']:.1f} s. JSON: {report['json_path']}"]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    p = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=size_list(MAX_SIZE), default=list(DEFAULT_SIZES),
                   help="job counts, one fresh project each (default 1000,10000; "
                        "1000,10000,100000 takes about 8 minutes)")
    p.add_argument("--emulator-heap", default=DEFAULT_HEAP,
                   help="Java heap of the Firestore emulator started here (default %(default)s)")
    p.add_argument("--json", type=Path, default=RESULTS_JSON, help="where to write the JSON")
    return p.parse_args(argv)


def measure(args: argparse.Namespace, stack: ExitStack, host: str, own_emulator: bool,
            contexts: list[Context]) -> dict[str, Any]:
    """Start the GCS emulator and a bucket, then measure every size; return the report."""
    GCS_LOG.unlink(missing_ok=True)
    gcs = GcsEmulator(log_path=GCS_LOG)
    stack.callback(gcs.stop)
    with deferred_interrupts():
        gcs.start()
    gcs_client = gcs_client_for(gcs.url)
    bucket = gcs_client.create_bucket(f"bench-scale-{uuid.uuid4().hex[:8]}")
    ctx = Context(host, gcs_client, bucket)
    contexts.append(ctx)
    rows = [bench_size(n, ctx, host, gcs.url) for n in args.sizes]
    machine = machine_facts(host, own_emulator)
    machine.update(gcs_facts())
    return {
        "machine": machine,
        "config": {"sizes": args.sizes, "batch": BATCH, "status_repeats": STATUS_REPEATS,
                   "emulator_heap": (f"-Xmx{args.emulator_heap}" if own_emulator
                                     else "external emulator")},
        "sizes": [asdict(r) for r in rows],
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the tables, write the JSON; return the exit status."""
    args = parse_args(argv)
    started = time.perf_counter()
    contexts: list[Context] = []
    report = run_on_emulator(
        lambda stack, host, own: measure(args, stack, host, own, contexts),
        wipe_contexts(contexts), EMULATOR_LOG, heap=args.emulator_heap)
    if report is None:
        return 130
    publish(report, args.json, started, render)
    return 0


if __name__ == "__main__":
    sys.exit(main())
