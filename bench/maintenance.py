"""Maintenance scale benchmark: snapshot export and import, expiry and the status page at 1k–100k jobs.

N stale ``parsing`` jobs on a fresh project per N; time and RSS untraced, tracemalloc peak from
a separate run. With ``scale=True`` (:mod:`bench.scale`): ``/status`` through a server, its
reads, a one-row query, one expiry pass, an export and a count reconciliation per N."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bench import harness as h
from local.fleet import Caller
from local.workload import STALE_AGE, load, stale_parsing_record
from shared.defaults import MAINTENANCE_BATCH as BATCH
from shared.maintenance import reconcile_counts
from shared.model import JobFilter, utcnow
from shared.schemas import StatusQuery
from shared.snapshot import import_snapshot, load_snapshot, write_snapshot
from shared.store import JobStore
from shared.tracker import Tracker
from shared.web.status import render_html, render_json, state_counts

#: Largest N accepted (two projects of it must fit in the emulator's heap) and the default heap.
MAX_SIZE, DEFAULT_HEAP = 200_000, "4g"
#: Records built and created per ``create_missing`` call while loading (not measured).
LOAD_CHUNK = 5_000
#: Rows of the status page by default, and its untraced repetitions (the median is reported).
STATUS_LIMIT: int = StatusQuery().fields["limit"].load_default
STATUS_REPEATS = 3
NO_FILTERS: h.Report = {"state": None, "experiment": None, "datatype": None}
#: The expiry timeout (config/gardener.yml).
EXPIRATION = timedelta(hours=5)


def load_jobs(store: Any, n: int, now: datetime) -> h.Report:
    """Create jobs ``0 … n-1`` in ``parsing``, :data:`LOAD_CHUNK` at a time (not a measurement)."""
    seconds = load(store, (stale_parsing_record(i, now) for i in range(n)), LOAD_CHUNK)
    return {"n": n, "project": store.client.project, "seconds": seconds, "docs_per_s": n / seconds}


def bench_export(store: Any, bucket: Any, prefix: str, n: int) -> h.Report:
    """Export the N jobs untraced (time, RSS), then again under tracemalloc (peak)."""
    result, cost = h.untraced(lambda: write_snapshot(store, bucket, utcnow(), prefix=prefix))
    again = h.traced(cost, lambda: write_snapshot(store, bucket, utcnow(), prefix=prefix))
    if result.jobs != n or again.jobs != n:
        raise RuntimeError(f"exported {result.jobs} jobs instead of {n}")
    figures = {"n": n, "cost": cost, "jobs": result.jobs, "bytes": result.bytes}
    return figures | {"object": result.object, "jobs_per_s": n / cost["seconds"]}


def bench_import(run: h.Run, gcs: Any, source: str, n: int, trace: bool) -> tuple[Any, Any]:
    """Import the latest snapshot into a fresh project (untraced), then into another (traced);
    the figures and the store of the untraced copy."""
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
    _, cost = h.untraced(lambda: load(store))
    read, create = split["read"], split["create"]
    figures = {"n": n, "cost": cost, "read_seconds": read, "create_seconds": create}
    figures |= {"created": n, "jobs_per_s": n / cost["seconds"], "project": store.client.project}
    figures["traced_project"] = None
    if trace:
        target = JobStore(run.firestore())
        h.traced(cost, lambda: load(target))
        figures["traced_project"] = target.client.project
        run.wipe(target.client.project)
    return figures, store


def bench_expiry(store: Any, copy: Any, n: int, now: datetime) -> h.Report:
    """Expire the N stale jobs of ``store`` in passes of :data:`BATCH` until one finds nothing;
    trace one pass on ``copy``'s copy of them."""
    cutoff = now - EXPIRATION
    traced: h.Report = {}
    probe_keys = h.traced(traced, lambda: Tracker(copy).expire_stale(cutoff, BATCH))
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

    (expired, passes), cost = h.untraced(expire_all)
    failed, ms = tracker.num_failed(), [p * 1000 for p in passes]
    if expired != n or failed != n:
        raise RuntimeError(f"expired {expired} (failed: {failed}) of {n} jobs")
    out: h.Report = {"n": n, "ran": True, "seconds": cost["seconds"], "passes": len(passes)}
    out |= {"expired": expired, "failed_after": failed, "jobs_per_s": n / cost["seconds"]}
    out |= {"ms_per_job": cost["seconds"] / n * 1000, "pass_ms_median": statistics.median(ms)}
    out |= {"pass_ms_max": max(ms), "rss_peak_mib": cost["rss_peak_mib"]}
    out |= {"maxrss_growth_mib": cost["maxrss_growth_mib"]}
    out |= {"pass_traced_peak_mib": traced["traced_peak_mib"]}
    out |= {"pass_traced_seconds": traced["traced_seconds"], "pass_traced_expired": len(probe_keys)}
    return out | {"note": ""}


def status_page(tracker: Any) -> h.Report:
    """Build the status page as ``/status`` does (rows, count, HTML, JSON); each step's time."""
    t0 = time.perf_counter()
    records = list(tracker.get_state(JobFilter(limit=STATUS_LIMIT)))
    t1 = time.perf_counter()
    total = tracker.count() if len(records) == STATUS_LIMIT else len(records)
    t2 = time.perf_counter()
    html = render_html(records, total, NO_FILTERS, utcnow())
    t3 = time.perf_counter()
    body = json.dumps(render_json(records, total, NO_FILTERS), ensure_ascii=False)
    out: h.Report = {"rows": len(records), "total": total, "query_seconds": t1 - t0}
    out |= {"count_seconds": t2 - t1, "html_seconds": t3 - t2}
    out |= {"json_seconds": time.perf_counter() - t3, "html_bytes": len(html.encode())}
    return out | {"json_bytes": len(body.encode())}


def bench_status(tracker: Any, n: int) -> h.Report:
    """The page :data:`STATUS_REPEATS` times untraced (medians), once traced (peak)."""
    runs = [h.untraced(lambda: status_page(tracker)) for _ in range(STATUS_REPEATS)]
    middle = sorted(runs, key=lambda run: run[1]["seconds"])[len(runs) // 2][1]
    page = h.traced(middle, lambda: status_page(tracker))
    if page["rows"] != min(n, STATUS_LIMIT) or page["total"] != n:
        raise RuntimeError(f"status page shows {page['rows']} of {page['total']}, expected {n}")
    medians = {k: statistics.median(p[k] for p, _ in runs) for k in runs[0][0] if "sec" in k}
    figures = {"n": n, "cost": middle, "rows": page["rows"], "total": page["total"], **medians}
    figures |= {"html_bytes": page["html_bytes"], "json_bytes": page["json_bytes"]}
    return figures | {"repeats": STATUS_REPEATS}


def bench_size(run: h.Run, n: int, args: Any, gcs: Any, bucket: Any, rate: Any) -> h.Report:
    """Load N jobs into a fresh project and run every measurement on them."""
    now, store = utcnow(), JobStore(run.firestore())
    h.progress(f"N={n:,}: loading into {store.client.project} …")
    load = load_jobs(store, n, now)
    h.progress("    status page, snapshot export, snapshot import …")
    status = bench_status(Tracker(store), n)
    export = bench_export(store, bucket, f"n{n}/", n)
    source = f"gs://{bucket.name}/n{n}/latest.json"
    imported, copy = bench_import(run, gcs, source, n, n <= args.trace_import_max)
    if n <= args.expiry_max:
        h.progress(f"    expiry in passes of {BATCH} …")
        expiry = bench_expiry(store, copy, n, now)
    else:
        note = f"not run: above --expiry-max {args.expiry_max:,}"
        note += f"; ~{n / rate / 60:.0f} min at {rate:.0f} jobs/s" if rate else ""
        expiry = {"n": n, "ran": False, "note": note}
    clean(run, bucket, f"n{n}/", store.client.project, copy.client.project)
    projects = [load["project"], imported["project"], imported["traced_project"]]
    row = {"n": n, "load": load, "status_page": status, "snapshot_export": export}
    row |= {"snapshot_import": imported, "expiry": expiry}
    return row | {"projects": [p for p in projects if p]}


def clean(run: h.Run, bucket: Any, prefix: str, *projects: str) -> None:
    """Wipe ``projects`` and delete the objects under ``prefix`` (frees the emulators' memory)."""
    for project in projects:
        run.wipe(project)
    for blob in bucket.list_blobs(prefix=prefix):
        with contextlib.suppress(Exception):
            blob.delete()


def measure(args: Any, run: h.Run) -> h.Report:
    """Start the GCS emulator and a bucket, then every size."""
    gcs = run.gcs()
    bucket = gcs.create_bucket(f"bench-snapshots-{uuid.uuid4().hex[:8]}")
    sizes: list[h.Report] = []
    for n in args.sizes:
        rates = [s["expiry"]["jobs_per_s"] for s in sizes if s["expiry"]["ran"]]
        sizes.append(bench_size(run, n, args, gcs, bucket, rates[-1] if rates else None))
    heap = f"-Xmx{args.emulator_heap}" if run.own_emulator else "external emulator (not set here)"
    config: h.Report = {"emulator_heap": heap, "load_chunk": LOAD_CHUNK, "batch": BATCH}
    config |= {"status_limit": STATUS_LIMIT, "status_repeats": STATUS_REPEATS}
    config |= {"expiration": str(EXPIRATION)}
    config |= {"stale_age": str(STALE_AGE), "snapshot_bucket": bucket.name}
    return {"config": config, "sizes": sizes}


def render(report: h.Report) -> str:
    """The report as Markdown: one table per measurement, one row per N."""
    rows = report["sizes"]
    n, cost = ">N@n:,", "tracemalloc peak MiB@cost.traced_peak_mib:1"
    rss = "RSS peak +MiB@cost.rss_peak_mib:1 | ru_maxrss +MiB@cost.maxrss_growth_mib:1"
    time_s = "time s@cost.seconds:2 | growth@cost.seconds:×"
    heap = report["config"]["emulator_heap"]
    lines = h.heading(
        "Maintenance scale benchmark",
        report["machine"],
        f"Java heap {heap}; time and RSS untraced, tracemalloc peak from a separate traced run",
    )
    lines += h.section(
        "## 0. Loading the jobs (not a measurement)",
        rows,
        f"{n} | load s@load.seconds:1 | jobs/s@load.docs_per_s:0",
    )
    lines += h.section(
        "## 1. Snapshot export: `write_snapshot(store, bucket, now)`",
        [r["snapshot_export"] for r in rows],
        f"{n} | {time_s} | jobs/s@jobs_per_s:0 | object MiB@bytes/{h.MIB}:1 | {cost} | "
        f"peak growth@cost.traced_peak_mib:× | {rss}",
    )
    lines += h.section(
        '## 2. Snapshot import into an empty project: `import_snapshot(store2, load_snapshot("gs://…/latest.json"))`',
        [r["snapshot_import"] for r in rows],
        f"{n} | {time_s} | read + validate s@read_seconds:2 | create s@create_seconds:2 | "
        f"jobs/s@jobs_per_s:0 | tracemalloc peak MiB@peak | peak growth@cost.traced_peak_mib:× | {rss}",
        peak=lambda i: "not traced" if (p := i["cost"]["traced_peak_mib"]) is None else h.fmt(p),
    )
    lines += h.section(
        f"## 3. Expiry: `Tracker(store).expire_stale(cutoff, {BATCH})` in passes until "
        "none is left, all N jobs stale in `parsing`",
        [r["expiry"] for r in rows],
        f"{n} | time s@time | growth@seconds:× | jobs/s@jobs_per_s:0 | ms/job@ms_per_job:2"
        " | passes@passes | pass ms median@pass_ms_median:0 | pass ms max@pass_ms_max:0 | "
        f"tracemalloc peak of one pass of {BATCH}, MiB@pass_traced_peak_mib:2 | RSS peak +MiB@rss_peak_mib:1",
        time=lambda x: h.fmt(x["seconds"]) if x["ran"] else x["note"],
        passes=lambda x: x.get("passes", ""),
    )
    lines += h.section(
        f"## 4. Status page, default limit {STATUS_LIMIT:,}: `list(tracker.get_state(limit={STATUS_LIMIT}))`, "
        f"the count, `render_html`, `render_json` + `json.dumps` (median of {STATUS_REPEATS})",
        [r["status_page"] for r in rows],
        f"{n} | time s@cost.seconds:3 | growth@cost.seconds:× | get_state s@query_seconds:3 | "
        "count s@count_seconds:3 | render_html s@html_seconds:3 | render_json s@json_seconds:3"
        f" | HTML KiB@html_bytes/1024:0 | JSON KiB@json_bytes/1024:0 | {cost} | RSS peak +MiB@cost.rss_peak_mib:1",
    )
    return "\n".join(lines)


# The scale benchmark (``python -m bench.scale``): the same loading, export and expiry, with
# the status page through HTTP.


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
    return statistics.median(h.timed_ops(lambda _: call(), STATUS_REPEATS)[1])


def scale_size(run: h.Run, n: int, bucket: Any) -> h.Report:
    """Load N jobs into a fresh project and measure every scale figure on them."""
    now, project = utcnow(), run.project()
    store = JobStore(run.firestore(project))
    # Started on the empty project: its readiness probe is a /status request.
    env = {"STORAGE_EMULATOR_HOST": run.gcs_url or "", "GOOGLE_CLOUD_PROJECT": project}
    with run.server(env) as (base, server):
        h.progress(f"N={n:,}: loading into {project} …")
        load = load_jobs(store, n, now)
        caller = Caller(base, 300.0)
        caller.get("/no-such-path")  # warms the connection and the worker
        h.progress("    status page (HTML, JSON) …")

        def get(path: str) -> None:
            if (status := caller.get(path)) != 200:
                raise RuntimeError(f"GET {path} answered {status}")

        html = median_seconds(lambda: get("/status"))
        as_json = median_seconds(lambda: get("/status?format=json"))
        server_peak = group_peak_rss_mib(server.pid)
        caller.session.close()
    # The reads of building /status's rows and counts in-process.
    tracker, counts = Tracker(store), store.state_counts
    before = store.stats.reads + counts.stats.reads
    rows = list(tracker.get_state(JobFilter(limit=STATUS_LIMIT)))
    counted = sum(state_counts(tracker, None, None).values())
    if len(rows) != min(counted, STATUS_LIMIT) or counted != n:
        raise RuntimeError(f"status shows {len(rows)} rows of {counted}, {n} loaded")
    reads = store.stats.reads + counts.stats.reads - before
    floor = median_seconds(lambda: list(store.collection.limit(1).stream()))
    h.progress("    count reconciliation, snapshot export, expiry pass …")
    summary, reconcile = h.untraced(lambda: reconcile_counts(Tracker(store)))
    drift = sum(abs(d) for d in summary.get("drift", {}).values())
    if drift or "skipped" in summary:
        raise RuntimeError(f"the count reconciliation found {summary}: the counts were not exact")
    export = bench_export(store, bucket, f"scale-n{n}/", n)["cost"]
    tracker, cutoff = Tracker(store), now - EXPIRATION
    expired, cost = h.untraced(lambda: tracker.expire_stale(cutoff, BATCH))
    h.traced(cost, lambda: tracker.expire_stale(cutoff, BATCH))
    clean(run, bucket, f"scale-n{n}/", project)
    out: h.Report = {"n": n, "load_seconds": load["seconds"], "status_html_s": html}
    out |= {"status_json_s": as_json, "server_peak_rss_mib": server_peak, "status_reads": reads}
    out |= {"status_counted_total": counted, "query_floor_s": floor}
    out |= {"expiry_pass_s": cost["seconds"], "expiry_pass_jobs": len(expired)}
    out |= {"expiry_pass_traced_mib": cost["traced_peak_mib"], "export_s": export["seconds"]}
    out |= {"export_rss_peak_mib": export["rss_peak_mib"]}
    out |= {"export_traced_mib": export["traced_peak_mib"], "reconcile_s": reconcile["seconds"]}
    return out | {"reconcile_drift": drift, "project": project}


def measure_scale(args: Any, run: h.Run) -> h.Report:
    """Start the GCS emulator and a bucket, then every size."""
    bucket = run.gcs().create_bucket(f"bench-scale-{uuid.uuid4().hex[:8]}")
    rows = [scale_size(run, n, bucket) for n in args.sizes]
    heap = f"-Xmx{args.emulator_heap}" if run.own_emulator else "external emulator"
    config = {"batch": BATCH, "status_repeats": STATUS_REPEATS, "emulator_heap": heap}
    return {"config": config, "sizes": rows}


def render_scale(report: h.Report) -> str:
    """The scale report as Markdown: one row per N, then the growth factors."""
    rows = report["sizes"]
    lines = h.heading("Scale benchmark", report["machine"])
    lines.append("")
    lines += h.grid(
        rows,
        ">N jobs@n:, | status HTML s@status_html_s:2 | status JSON s@status_json_s:2 | "
        "one-row query s@query_floor_s:2 | status reads@status_reads:, | "
        f"server peak RSS MiB@server_peak_rss_mib:1 | expiry pass of {BATCH} s@expiry_pass_s:2"
        " | expiry pass tracemalloc MiB@expiry_pass_traced_mib:1 | export s@export_s:2 | "
        "export RSS peak MiB@export_rss_peak_mib:1 | export tracemalloc MiB@export_traced_mib:1"
        " | count reconciliation s@reconcile_s:2",
    )
    if len(rows) > 1:
        lines += ["", "Growth from the previous N:", ""]
        growths = h.grid(
            rows,
            ">N jobs@n:, | × N@n:× | status HTML@status_html_s:× | status JSON@status_json_s:× | "
            "expiry pass@expiry_pass_s:× | export@export_s:× | export memory@export_traced_mib:×",
        )
        lines += growths[:2] + growths[3:]  # the first N has nothing to grow from
    return "\n".join(lines)


def java_size(text: str) -> str:
    """An argparse type: a Java heap size such as 4g or 3072m."""
    if not re.fullmatch(r"[1-9][0-9]*[mMgG]", text):
        raise argparse.ArgumentTypeError("takes a Java size such as 4g or 3072m")
    return text


def main(argv: list[str] | None = None, scale: bool = False, doc: str | None = __doc__) -> int:
    """Run the benchmark (the scale one if ``scale``, described by ``doc``)."""
    name, quick = ("scale", "") if scale else ("maintenance", "sizes 1000,10000")
    sizes = [1_000, 10_000] if scale else h.Quick([1_000, 10_000, 100_000], [1_000, 10_000])
    options: list[tuple[str, Any, Any, str]] = [("--sizes", h.int_list(MAX_SIZE), sizes, "sizes")]
    options += [] if scale else [("--expiry-max", int, 10_000, "largest N expiry runs at")]
    options += [] if scale else [("--trace-import-max", int, 10_000, "largest N also traced")]
    options += [("--emulator-heap", java_size, DEFAULT_HEAP, "Java heap of the emulator")]
    args = h.arguments(name, doc, argv, quick, *options)
    measured = (measure_scale, render_scale) if scale else (measure, render)
    return h.run_measured(args, *measured, f"{name}-")


if __name__ == "__main__":
    raise SystemExit(main())
