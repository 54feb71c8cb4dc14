"""Lifecycle load benchmark: K simulated parsers doing the real sequence against a real server.

For K = 1, 8, 32 parsers (:func:`local.fleet.run_parsers`), each level on a fresh project:
next, ``parsing``, (heartbeat + ``parsing``) per archive, ``postProcessing``; then the
Firestore reads and writes of one job's lifecycle, in-process. ``make bench-lifecycle``.
"""

from __future__ import annotations

import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.harness import (
    RESULTS_DIR,
    Latencies,
    Run,
    arguments,
    bench_floor,
    fmt,
    grid,
    heading,
    int_list,
    progress,
    run_measured,
)
from local.fleet import Call, run_parsers
from local.workload import expected_keys, seed_workload
from shared.model import utcnow

EMULATOR_LOG = RESULTS_DIR / "lifecycle-firestore-emulator.log"
#: The endpoints of a lifecycle, in the order a parser calls them.
ENDPOINTS = (
    "next",
    "update parsing (start)",
    "heartbeat",
    "update parsing (archive)",
    "update postProcessing",
)


def summarise(
    parsers: int, seconds: float, calls: Sequence[Call], txn_rate: float, project: str
) -> dict[str, Any]:
    """One level's figures from its calls (a "no job" 503 is not an error)."""
    handed = [c.key for c in calls if c.endpoint == "next" and c.status == 200]
    completed = sum(c.endpoint == "update postProcessing" and c.status == 200 for c in calls)

    def error(c: Call) -> bool:
        return c.status != 200 and not (c.endpoint == "next" and c.status == 503)

    endpoints = []
    for name in ENDPOINTS:
        mine = [c for c in calls if c.endpoint == name]
        lat = Latencies.of([c.seconds for c in mine if not error(c)])
        endpoints.append(
            {
                "endpoint": name,
                "requests": len(mine),
                "errors": sum(map(error, mine)),
                "p50_ms": lat.p50_ms,
                "p95_ms": lat.p95_ms,
                "p99_ms": lat.p99_ms,
            }
        )
    rate = len(calls) / seconds
    return {
        "parsers": parsers,
        "jobs": len(handed),
        "completed": completed,
        "requests": len(calls),
        "errors": sum(map(error, calls)),
        "seconds": seconds,
        "jobs_per_s": completed / seconds,
        "requests_per_s": rate,
        "ratio_to_txn": rate / txn_rate,
        "duplicates": len(handed) - len(set(handed)),
        "endpoints": endpoints,
        "status_codes": dict(Counter(str(c.status) for c in calls)),
        "project": project,
    }


def per_job_cost(
    fs_client: Any, gcs_client: Any, config: Any, jobs: int, archives: int
) -> dict[str, float]:
    """Run the lifecycle in-process (tracker, job service) for ``jobs`` jobs; the reads,
    writes and GCS lists per job, and the same less its archives' calls."""
    from shared.gcs import ArchiveLister
    from shared.job_service import JobService
    from shared.model import State
    from shared.store import CursorStore, JobStore
    from shared.tracker import Tracker

    store, cursors, lister = JobStore(fs_client), CursorStore(fs_client), ArchiveLister(gcs_client)
    tracker = Tracker(store, heartbeat_coalesce=timedelta(0))
    service = JobService(tracker, cursors, lister, config)
    done = archive_reads = archive_writes = 0
    while done < jobs and (record := service.next_job()) is not None:
        tracker.set_status(record.key, State.PARSING, "start")
        reads, writes = store.stats.reads, store.stats.writes
        for a in range(archives):
            tracker.heartbeat(record.key)
            tracker.set_status(record.key, State.PARSING, f"archive-{a}.tgz")
        archive_reads += store.stats.reads - reads
        archive_writes += store.stats.writes - writes
        tracker.set_status(record.key, State.POST_PROCESSING, "parsed")
        done += 1
    reads = store.stats.reads + cursors.stats.reads
    writes = store.stats.writes + cursors.stats.writes
    return {
        "jobs": done,
        "archives": archives,
        "reads_per_job": reads / done,
        "writes_per_job": writes / done,
        "gcs_lists_per_job": lister.calls / done,
        "job_reads_per_job": (reads - archive_reads) / done,
        "job_writes_per_job": (writes - archive_writes) / done,
    }


def measure(args: Any, run: Run) -> dict[str, Any]:
    """Seed GCS, measure the floor and the per-job cost, then each parser count."""
    gcs, today = run.gcs(), utcnow().date()
    start = today - timedelta(days=args.jobs // 3 + 5)  # three jobs with files a day: enough
    workdir = Path(run.stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-life-")))
    config_path, config = seed_workload(gcs, workdir, start, today)
    available = len(expected_keys(config, utcnow()))
    if available < args.jobs:
        raise SystemExit(f"only {available} jobs available for --jobs {args.jobs}")
    progress(f"archives seeded for {available} jobs; the floor and the per-job cost …")
    fs = run.firestore()
    txn_rate = bench_floor(fs, args.floor_ops)[-1]["ops_per_s"]
    cost = per_job_cost(fs, gcs, config, min(args.jobs, 16), args.archives)
    levels = []
    for parsers in args.parsers:
        project = run.project()
        progress(f"{parsers} parser(s), {args.jobs} jobs …")
        with run.server(
            {
                "STORAGE_EMULATOR_HOST": run.gcs_url or "",
                "GOOGLE_CLOUD_PROJECT": project,
                "GARDENER_CONFIG": str(config_path),
                "HEARTBEAT_COALESCE_SECONDS": "0",
            }
        ) as (base, _):
            seconds, calls = run_parsers(base, parsers, args.jobs, args.archives, args.timeout)
        levels.append(summarise(parsers, seconds, calls, txn_rate, project))
    return {
        "config": {"config_yaml": config_path.read_text()},
        "floor_txn_per_s": txn_rate,
        "per_job": cost,
        "levels": levels,
    }


def render(report: dict[str, Any]) -> str:
    """The report as Markdown."""
    cfg, cost = report["config"], report["per_job"]

    def trio(endpoint: str) -> Callable[[dict[str, Any]], str]:
        def cell(r: dict[str, Any]) -> str:
            e = next(x for x in r["endpoints"] if x["endpoint"] == endpoint)
            return f"{fmt(e['p50_ms'])} / {fmt(e['p95_ms'])} / {fmt(e['p99_ms'])}"

        return cell

    lines = heading(
        "Lifecycle load benchmark",
        report["machine"],
        f"Each job: {3 + 2 * cfg['archives']} requests ({cfg['archives']} archives); "
        f"{cfg['jobs']} jobs per level; floor: {fmt(report['floor_txn_per_s'])} bare "
        "transactions/s; × txn = requests/s ÷ that",
    )
    lines += grid(
        report["levels"],
        "parsers@parsers | jobs@completed | jobs/s@jobs_per_s:2 | requests/s@requests_per_s:1 | "
        "× txn@ratio_to_txn:2 | errors@errors | duplicates@duplicates | "
        "next p50/p95/p99 ms@next | update p50/p95/p99 ms@update | "
        "heartbeat p50/p95/p99 ms@heartbeat | postProcessing p50/p95/p99 ms@post",
        "r" * 11,
        next=trio("next"),
        update=trio("update parsing (archive)"),
        heartbeat=trio("heartbeat"),
        post=trio("update postProcessing"),
    )
    lines += [
        "",
        f"Firestore per job (in-process, {cost['jobs']} jobs): "
        f"{fmt(cost['reads_per_job'])} reads, {fmt(cost['writes_per_job'])} writes, "
        f"{fmt(cost['gcs_lists_per_job'], 2)} GCS lists; less the archives' calls: "
        f"{fmt(cost['job_reads_per_job'])} reads, {fmt(cost['job_writes_per_job'])} writes.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table, write the JSON; the exit status."""
    p = arguments("lifecycle", __doc__, "small sizes, for a smoke run")
    p.add_argument(
        "--parsers", type=int_list(256), default=[1, 8, 32], help="parser counts (default 1,8,32)"
    )
    p.add_argument("--jobs", type=int, help="jobs per level (default 64; quick 16)")
    p.add_argument("--archives", type=int, default=10, help="archives per job (default 10)")
    p.add_argument("--floor-ops", type=int, default=300, help="bare transactions for the floor")
    p.add_argument("--timeout", type=float, default=30.0, help="timeout of one request (s)")
    args = p.parse_args(argv)
    args.jobs = args.jobs or (16 if args.quick else 64)
    if args.jobs < 1 or args.archives < 0 or args.floor_ops < 1:
        p.error("--jobs and --floor-ops must be at least 1, --archives at least 0")
    return run_measured(
        args,
        measure,
        render,
        EMULATOR_LOG,
        lambda report: (
            "a job was handed out twice or not completed"
            if any(r["duplicates"] or r["completed"] != r["jobs"] for r in report["levels"])
            else None
        ),
    )


if __name__ == "__main__":
    sys.exit(main())
