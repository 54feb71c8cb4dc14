"""Lifecycle load benchmark: K simulated parsers doing the real sequence against a real server.

K = 1, 8, 32 parsers (:func:`local.fleet.run_parsers`), a fresh project each: next, ``parsing``,
(heartbeat + ``parsing``) per archive, ``postProcessing``; then one job's reads and writes."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench import harness as h
from local.fleet import Call, run_parsers
from local.workload import CountedService, expected_keys
from shared.gcs import ArchiveLister
from shared.model import State, utcnow
from shared.store import CursorStore, JobStore
from shared.tracker import Tracker

#: The endpoints of a lifecycle, in the order a parser calls them.
START, ARCHIVE, POST = "update parsing (start)", "update parsing (archive)", "update postProcessing"
ENDPOINTS = ("next", START, "heartbeat", ARCHIVE, POST)


def summarise(
    parsers: int, seconds: float, calls: list[Call], txn_rate: float, project: str
) -> h.Report:
    """One level's figures from its calls (a "no job" 503 is not an error)."""
    handed = [c.key for c in calls if c.endpoint == "next" and c.status == 200]
    completed = sum(c.endpoint == POST and c.status == 200 for c in calls)

    def error(c: Call) -> bool:
        return c.status != 200 and not (c.endpoint == "next" and c.status == 503)

    endpoints = []
    for name in ENDPOINTS:
        mine = [c for c in calls if c.endpoint == name]
        lat = h.latencies([c.seconds for c in mine if not error(c)])
        endpoints.append({"endpoint": name, "requests": len(mine), "errors": sum(map(error, mine))})
        endpoints[-1] |= {k: lat[k] for k in ("p50_ms", "p95_ms", "p99_ms")}
    rate = len(calls) / seconds
    out: h.Report = {"parsers": parsers, "jobs": len(handed), "completed": completed}
    out |= {"requests": len(calls), "errors": sum(map(error, calls)), "seconds": seconds}
    out |= {"jobs_per_s": completed / seconds, "requests_per_s": rate}
    out |= {"ratio_to_txn": rate / txn_rate, "duplicates": len(handed) - len(set(handed))}
    out |= {"endpoints": endpoints, "status_codes": dict(Counter(str(c.status) for c in calls))}
    return out | {"project": project}


def per_job_cost(fs: Any, gcs: Any, config: Any, jobs: int, archives: int) -> dict[str, float]:
    """Run the lifecycle in-process (tracker, job service) for ``jobs`` jobs; the reads,
    writes and GCS lists per job, and the same less its archives' calls."""
    tracker = Tracker(JobStore(fs), heartbeat_coalesce=timedelta(0))
    counted = CountedService(tracker, CursorStore(fs), ArchiveLister(gcs), config)
    done, in_archives = 0, dict.fromkeys(("job_reads", "job_writes"), 0)
    while done < jobs and (record := counted.service.next_job()) is not None:
        tracker.set_status(record.key, State.PARSING, "start")
        before = counted.counts()
        for a in range(archives):
            tracker.heartbeat(record.key)
            tracker.set_status(record.key, State.PARSING, f"archive-{a}.tgz")
        in_archives = {k: v + counted.counts(since=before)[k] for k, v in in_archives.items()}
        tracker.set_status(record.key, State.POST_PROCESSING, "parsed")
        done += 1
    c = counted.counts()
    reads, writes = c["job_reads"] + c["cursor_reads"], c["job_writes"] + c["cursor_writes"]
    out: h.Report = {"jobs": done, "archives": archives, "reads_per_job": reads / done}
    out |= {"writes_per_job": writes / done, "gcs_lists_per_job": c["gcs_lists"] / done}
    out |= {"job_reads_per_job": (reads - in_archives["job_reads"]) / done}
    return out | {"job_writes_per_job": (writes - in_archives["job_writes"]) / done}


def measure(args: Any, run: h.Run) -> h.Report:
    """Seed GCS, measure the floor and the per-job cost, then each parser count."""
    today = utcnow().date()
    start = today - timedelta(days=args.jobs // 3 + 5)  # three jobs with files a day: enough
    gcs, config, env = run.workload(start, today)
    available = len(expected_keys(config, utcnow()))
    if available < args.jobs:
        raise SystemExit(f"only {available} jobs available for --jobs {args.jobs}")
    h.progress(f"archives seeded for {available} jobs; the floor and the per-job cost …")
    txn_rate = h.bench_floor(fs := run.firestore(), args.floor_ops)[-1]["ops_per_s"]
    cost = per_job_cost(fs, gcs, config, min(args.jobs, 16), args.archives)
    env["HEARTBEAT_COALESCE_SECONDS"], levels = "0", []
    for parsers in args.parsers:
        project = env["GOOGLE_CLOUD_PROJECT"] = run.project()
        h.progress(f"{parsers} parser(s), {args.jobs} jobs …")
        with run.server(env) as (base, _):
            seconds, calls = run_parsers(base, parsers, args.jobs, args.archives, args.timeout)
        levels.append(summarise(parsers, seconds, calls, txn_rate, project))
    config_yaml = {"config_yaml": Path(env["GARDENER_CONFIG"]).read_text()}
    return {"config": config_yaml, "floor_txn_per_s": txn_rate, "per_job": cost, "levels": levels}


def render(report: h.Report) -> str:
    cfg, cost = report["config"], report["per_job"]
    levels = [r | {e["endpoint"]: e for e in r["endpoints"]} for r in report["levels"]]
    trio = "{0}.p50_ms+{0}.p95_ms+{0}.p99_ms:1"
    lines = h.heading(
        "Lifecycle load benchmark",
        report["machine"],
        f"Each job: {3 + 2 * cfg['archives']} requests ({cfg['archives']} archives); "
        f"{cfg['jobs']} jobs per level; floor: {h.fmt(report['floor_txn_per_s'])} bare "
        "transactions/s; × txn = requests/s ÷ that",
    )
    lines.append("")
    lines += h.grid(
        levels,
        ">parsers@parsers | jobs@completed | jobs/s@jobs_per_s:2 | requests/s@requests_per_s:1 | "
        "× txn@ratio_to_txn:2 | errors@errors | duplicates@duplicates | "
        f"next p50/p95/p99 ms@{trio.format('next')} | "
        f"update p50/p95/p99 ms@{trio.format(ARCHIVE)} | "
        f"heartbeat p50/p95/p99 ms@{trio.format('heartbeat')} | "
        f"postProcessing p50/p95/p99 ms@{trio.format(POST)}",
    )
    lines += [
        "",
        f"Firestore per job (in-process, {cost['jobs']} jobs): "
        f"{h.fmt(cost['reads_per_job'])} reads, {h.fmt(cost['writes_per_job'])} writes, "
        f"{h.fmt(cost['gcs_lists_per_job'], 2)} GCS lists; less the archives' calls: "
        f"{h.fmt(cost['job_reads_per_job'])} reads, {h.fmt(cost['job_writes_per_job'])} writes.",
    ]
    return "\n".join(lines)


def failure(report: h.Report) -> str | None:
    """Whether a job was handed out twice or not completed."""
    bad = any(r["duplicates"] or r["completed"] != r["jobs"] for r in report["levels"])
    return "a job was handed out twice or not completed" if bad else None


def main(argv: list[str] | None = None) -> int:
    options = [
        (
            "--parsers",
            h.int_list(256),
            [1, 8, 32],
            "parser counts (default 1,8,32)",
        ),
        ("--jobs", h.number(int, 1), h.Quick(64, 16), "jobs per level"),
        ("--archives", h.number(int, 0), 10, "archives per job (default 10)"),
        ("--floor-ops", h.number(int, 1), 300, "bare transactions for the floor"),
        ("--timeout", float, 30.0, "timeout of one request (s)"),
    ]
    args = h.arguments("lifecycle", __doc__, argv, "small sizes, for a smoke run", *options)
    return h.run_measured(args, measure, render, "lifecycle-", failure)


if __name__ == "__main__":
    raise SystemExit(main())
