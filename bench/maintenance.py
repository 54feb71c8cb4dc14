"""Maintenance scale benchmark: snapshot export and import, expiry and the status page at 1k–100k jobs.

N stale ``parsing`` jobs (:func:`local.workload.stale_parsing_record`) on a fresh project per
N; time and RSS from an untraced run, the tracemalloc peak from a separate traced run.
``make bench-maintenance``.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import statistics
import sys
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

from bench.harness import (
    MIB,
    RESULTS_DIR,
    Run,
    arguments,
    fmt,
    grid,
    heading,
    int_list,
    progress,
    run_measured,
    traced,
    untraced,
)
from local.workload import STALE_AGE, stale_parsing_record
from shared.defaults import MAINTENANCE_BATCH as BATCH
from shared.model import JobFilter, utcnow
from shared.schemas import StatusQuery

EMULATOR_LOG = RESULTS_DIR / "maintenance-firestore-emulator.log"
#: Largest N accepted (two projects of it must fit in the emulator's heap) and the default heap.
MAX_SIZE, DEFAULT_HEAP = 200_000, "4g"
#: Records built and created per ``create_missing`` call while loading (not measured).
LOAD_CHUNK = 5_000
#: Rows of the status page by default, and its untraced repetitions (the median is reported).
STATUS_LIMIT: int = StatusQuery().fields["limit"].load_default
STATUS_REPEATS = 3
NO_FILTERS: dict[str, Any] = {"state": None, "experiment": None, "datatype": None}
#: The expiry timeout (config/gardener.yml).
EXPIRATION = timedelta(hours=5)


def load_jobs(store: Any, n: int, now: datetime) -> dict[str, Any]:
    """Create jobs ``0 … n-1`` in ``parsing``, :data:`LOAD_CHUNK` at a time (not a measurement)."""
    created, start = 0, time.perf_counter()
    for first in range(0, n, LOAD_CHUNK):
        created += len(
            store.create_missing(
                [stale_parsing_record(i, now) for i in range(first, min(n, first + LOAD_CHUNK))]
            )
        )
    seconds = time.perf_counter() - start
    if created != n:
        raise RuntimeError(f"loaded {created} jobs instead of {n}: the project was not empty")
    return {"n": n, "project": store.client.project, "seconds": seconds, "docs_per_s": n / seconds}


def bench_export(store: Any, bucket: Any, prefix: str, n: int) -> dict[str, Any]:
    """Export the N jobs untraced (time, RSS), then again under tracemalloc (peak)."""
    from shared.snapshot import write_snapshot

    result, cost = untraced(lambda: write_snapshot(store, bucket, utcnow(), prefix=prefix))
    again, cost.traced_peak_mib, cost.traced_seconds = traced(
        lambda: write_snapshot(store, bucket, utcnow(), prefix=prefix)
    )
    if result.jobs != n or again.jobs != n:
        raise RuntimeError(f"exported {result.jobs} jobs instead of {n}")
    return {
        "n": n,
        "cost": vars(cost),
        "jobs": result.jobs,
        "bytes": result.bytes,
        "object": result.object,
        "jobs_per_s": n / cost.seconds,
    }


def bench_import(
    run: Run, gcs: Any, source: str, n: int, trace: bool
) -> tuple[dict[str, Any], Any]:
    """Import the latest snapshot into a fresh project (untraced), then into another (traced);
    the figures and the store of the untraced copy."""
    from shared.snapshot import import_snapshot, load_snapshot
    from shared.store import JobStore

    split: dict[str, float] = {}

    def load(target: Any) -> Any:
        t0 = time.perf_counter()
        with load_snapshot(source, storage_client=gcs) as snapshot:  # validated, spooled
            t1 = time.perf_counter()
            result = import_snapshot(target, snapshot)
        split["read"], split["create"] = t1 - t0, time.perf_counter() - t1
        if result.created != n:
            raise RuntimeError(f"the import created {result.created} jobs instead of {n}")
        return result

    store = JobStore(run.firestore())
    _, cost = untraced(lambda: load(store))
    figures = {
        "n": n,
        "cost": cost,
        "read_seconds": split["read"],
        "create_seconds": split["create"],
        "created": n,
        "jobs_per_s": n / cost.seconds,
        "project": store.client.project,
        "traced_project": None,
    }
    if trace:
        target = JobStore(run.firestore())
        _, cost.traced_peak_mib, cost.traced_seconds = traced(lambda: load(target))
        figures["traced_project"] = target.client.project
        run.wipe(target.client.project)
    figures["cost"] = vars(cost)
    return figures, store


def bench_expiry(store: Any, probe: Any, n: int, now: datetime) -> dict[str, Any]:
    """Expire the N stale jobs of ``store`` in passes of :data:`BATCH` until one finds nothing;
    trace one pass on ``probe``'s copy of them."""
    from shared.tracker import Tracker

    cutoff = now - EXPIRATION
    probe_keys, peak, seconds = traced(lambda: Tracker(probe).expire_stale(cutoff, BATCH))
    tracker = Tracker(store)

    def expire_all() -> tuple[int, list[float]]:
        expired, passes = 0, []
        for _ in range(math.ceil(n / BATCH) + 5):
            t0 = time.perf_counter()
            keys = tracker.expire_stale(cutoff, BATCH)
            passes.append(time.perf_counter() - t0)
            expired += len(keys)
            if not keys:
                break
        return expired, passes

    (expired, passes), cost = untraced(expire_all)
    failed = tracker.num_failed()
    if expired != n or failed != n:
        raise RuntimeError(f"expired {expired} (failed: {failed}) of {n} jobs")
    ms = [p * 1000 for p in passes]
    return {
        "n": n,
        "ran": True,
        "seconds": cost.seconds,
        "passes": len(passes),
        "expired": expired,
        "failed_after": failed,
        "jobs_per_s": n / cost.seconds,
        "ms_per_job": cost.seconds / n * 1000,
        "pass_ms_median": statistics.median(ms),
        "pass_ms_max": max(ms),
        "rss_peak_mib": cost.rss_peak_mib,
        "maxrss_growth_mib": cost.maxrss_growth_mib,
        "pass_traced_peak_mib": peak,
        "pass_traced_seconds": seconds,
        "pass_traced_expired": len(probe_keys),
        "note": "",
    }


def status_page(tracker: Any) -> dict[str, Any]:
    """Build the status page as ``/status`` does (rows, count, HTML, JSON); each step's time."""
    from shared.web.status import render_html, render_json

    t0 = time.perf_counter()
    records = list(tracker.get_state(JobFilter(limit=STATUS_LIMIT)))
    t1 = time.perf_counter()
    total = tracker.count() if len(records) == STATUS_LIMIT else len(records)
    t2 = time.perf_counter()
    html = render_html(records, total, NO_FILTERS, utcnow())
    t3 = time.perf_counter()
    body = json.dumps(render_json(records, total, NO_FILTERS), ensure_ascii=False)
    return {
        "rows": len(records),
        "total": total,
        "query_seconds": t1 - t0,
        "count_seconds": t2 - t1,
        "html_seconds": t3 - t2,
        "json_seconds": time.perf_counter() - t3,
        "html_bytes": len(html.encode()),
        "json_bytes": len(body.encode()),
    }


def bench_status(tracker: Any, n: int) -> dict[str, Any]:
    """The page :data:`STATUS_REPEATS` times untraced (medians), once traced (peak)."""
    runs = [untraced(lambda: status_page(tracker)) for _ in range(STATUS_REPEATS)]
    middle = sorted(runs, key=lambda run: run[1].seconds)[len(runs) // 2][1]
    page, middle.traced_peak_mib, middle.traced_seconds = traced(lambda: status_page(tracker))
    if page["rows"] != min(n, STATUS_LIMIT) or page["total"] != n:
        raise RuntimeError(f"status page shows {page['rows']} of {page['total']}, expected {n}")
    medians = {k: statistics.median(p[k] for p, _ in runs) for k in runs[0][0] if "sec" in k}
    return {
        "n": n,
        "cost": vars(middle),
        "rows": page["rows"],
        "total": page["total"],
        **medians,
        "html_bytes": page["html_bytes"],
        "json_bytes": page["json_bytes"],
        "repeats": STATUS_REPEATS,
    }


def bench_size(
    run: Run, n: int, args: Any, gcs: Any, bucket: Any, expiry_rate: float | None
) -> dict[str, Any]:
    """Load N jobs into a fresh project and run every measurement on them."""
    from shared.store import JobStore
    from shared.tracker import Tracker

    now, store = utcnow(), JobStore(run.firestore())
    progress(f"N={n:,}: loading into {store.client.project} …")
    load = load_jobs(store, n, now)
    progress("    status page, snapshot export, snapshot import …")
    status = bench_status(Tracker(store), n)
    export = bench_export(store, bucket, f"n{n}/", n)
    imported, copy = bench_import(
        run, gcs, f"gs://{bucket.name}/n{n}/latest.json", n, n <= args.trace_import_max
    )
    if n <= args.expiry_max:
        progress(f"    expiry in passes of {BATCH} …")
        expiry = bench_expiry(store, copy, n, now)
    else:
        expiry = {
            "n": n,
            "ran": False,
            "note": f"not run: above --expiry-max {args.expiry_max:,}"
            + (
                f"; ~{n / expiry_rate / 60:.0f} min at {expiry_rate:.0f} jobs/s"
                if expiry_rate
                else ""
            ),
        }
    for project in (store.client.project, copy.client.project):
        run.wipe(project)
    for blob in bucket.list_blobs(prefix=f"n{n}/"):  # frees the GCS emulator's memory
        with contextlib.suppress(Exception):
            blob.delete()
    return {
        "n": n,
        "load": load,
        "status_page": status,
        "snapshot_export": export,
        "snapshot_import": imported,
        "expiry": expiry,
        "projects": [load["project"], imported["project"]]
        + [p for p in [imported["traced_project"]] if p],
    }


def measure(args: Any, run: Run) -> dict[str, Any]:
    """Start the GCS emulator and a bucket, then every size."""
    gcs = run.gcs()
    bucket = gcs.create_bucket(f"bench-snapshots-{uuid.uuid4().hex[:8]}")
    sizes: list[dict[str, Any]] = []
    for n in args.sizes:
        rates = [s["expiry"]["jobs_per_s"] for s in sizes if s["expiry"]["ran"]]
        sizes.append(bench_size(run, n, args, gcs, bucket, rates[-1] if rates else None))
    return {
        "config": {
            "emulator_heap": f"-Xmx{args.emulator_heap}"
            if run.own_emulator
            else "external emulator (not set here)",
            "load_chunk": LOAD_CHUNK,
            "batch": BATCH,
            "status_limit": STATUS_LIMIT,
            "status_repeats": STATUS_REPEATS,
            "expiration": str(EXPIRATION),
            "stale_age": str(STALE_AGE),
            "snapshot_bucket": bucket.name,
        },
        "sizes": sizes,
    }


def render(report: dict[str, Any]) -> str:
    """The report as Markdown: one table per measurement, one row per N."""
    rows = report["sizes"]
    n, cost = "N@n:,", "tracemalloc peak MiB@cost.traced_peak_mib:1"
    rss = "RSS peak +MiB@cost.rss_peak_mib:1 | ru_maxrss +MiB@cost.maxrss_growth_mib:1"
    time_s = "time s@cost.seconds:2 | growth@cost.seconds:×"
    heap = report["config"]["emulator_heap"]
    lines = heading(
        "Maintenance scale benchmark",
        report["machine"],
        f"Java heap {heap}; time and RSS untraced, tracemalloc peak from a separate traced run",
    )
    lines += ["## 0. Loading the jobs (not a measurement)", ""]
    lines += grid(rows, f"{n} | load s@load.seconds:1 | jobs/s@load.docs_per_s:0", "rrr")
    lines += ["", "## 1. Snapshot export: `write_snapshot(store, bucket, now)`", ""]
    lines += grid(
        [r["snapshot_export"] for r in rows],
        f"{n} | {time_s} | jobs/s@jobs_per_s:0 | object MiB@bytes/{MIB}:1 | {cost} | "
        f"peak growth@cost.traced_peak_mib:× | {rss}",
        "r" * 9,
    )
    lines += ["", "## 2. Snapshot import into an empty project: "]
    lines[-1] += '`import_snapshot(store2, load_snapshot("gs://…/latest.json"))`'
    lines += [""]
    lines += grid(
        [r["snapshot_import"] for r in rows],
        f"{n} | {time_s} | read + validate s@read_seconds:2 | create s@create_seconds:2 | "
        "jobs/s@jobs_per_s:0 | tracemalloc peak MiB@peak | "
        f"peak growth@cost.traced_peak_mib:× | {rss}",
        "r" * 10,
        peak=lambda i: (
            fmt(i["cost"]["traced_peak_mib"])
            if i["cost"]["traced_peak_mib"] is not None
            else "not traced"
        ),
    )
    expiry = [r["expiry"] for r in rows]
    lines += [
        "",
        f"## 3. Expiry: `Tracker(store).expire_stale(cutoff, {BATCH})` in passes until "
        "none is left, all N jobs stale in `parsing`",
        "",
    ]
    lines += grid(
        expiry,
        f"{n} | time s@time | growth@seconds:× | jobs/s@jobs_per_s:0 | ms/job@ms_per_job:2"
        " | passes@passes | pass ms median@pass_ms_median:0 | pass ms max@pass_ms_max:0 | "
        f"tracemalloc peak of one pass of {BATCH}, MiB@pass_traced_peak_mib:2 | "
        "RSS peak +MiB@rss_peak_mib:1",
        "r" * 10,
        time=lambda x: fmt(x["seconds"]) if x["ran"] else x["note"],
        passes=lambda x: x.get("passes", ""),
    )
    lines += [
        "",
        f"## 4. Status page, default limit {STATUS_LIMIT:,}: `list(tracker.get_state("
        f"limit={STATUS_LIMIT}))`, the count, `render_html`, `render_json` + `json.dumps` "
        f"(median of {STATUS_REPEATS})",
        "",
    ]
    lines += grid(
        [r["status_page"] for r in rows],
        f"{n} | time s@cost.seconds:3 | growth@cost.seconds:× | get_state s@query_seconds:3 | "
        "count s@count_seconds:3 | render_html s@html_seconds:3 | render_json s@json_seconds:3"
        " | HTML KiB@html_bytes/1024:0 | JSON KiB@json_bytes/1024:0 | "
        f"{cost} | RSS peak +MiB@cost.rss_peak_mib:1",
        "r" * 11,
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the tables, write the JSON; the exit status."""
    p = arguments("maintenance", __doc__, "sizes 1000,10000")
    p.add_argument(
        "--sizes",
        type=int_list(MAX_SIZE),
        help="job counts, one fresh project each (default 1000,10000,100000)",
    )
    p.add_argument("--expiry-max", type=int, default=10_000, help="largest N expiry runs at")
    p.add_argument(
        "--trace-import-max",
        type=int,
        default=10_000,
        help="largest N whose import also runs under tracemalloc",
    )
    p.add_argument("--emulator-heap", default=DEFAULT_HEAP, help="Java heap of the emulator")
    args = p.parse_args(argv)
    args.sizes = args.sizes or ([1_000, 10_000] if args.quick else [1_000, 10_000, 100_000])
    if not re.fullmatch(r"[1-9][0-9]*[mMgG]", args.emulator_heap):
        p.error("--emulator-heap takes a Java size such as 4g or 3072m")
    return run_measured(args, measure, render, EMULATOR_LOG, heap=args.emulator_heap)


if __name__ == "__main__":
    sys.exit(main())
