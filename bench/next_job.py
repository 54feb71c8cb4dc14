"""Next-job benchmark: ``POST /v2/job/next`` through HTTP, and what one call costs.

On :mod:`local.workload`: a job service called in-process until "no job" (reads, writes, GCS
lists per call), then 1, 8 and 32 callers draining ``next`` through HTTP, a fresh project each."""

from __future__ import annotations

import math
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench import harness as h
from local.fleet import Call
from local.workload import archive_names, candidates, expected_keys, seed_workload
from shared.model import RUN_SEPARATOR, utcnow

#: What an in-process call's sample counts: Firestore documents, GCS lists, owed-run queries.
COUNTS = ("job_reads", "job_writes", "cursor_reads", "cursor_writes", "gcs_lists", "queries")


def call_cost(call: str, samples: list[dict[str, Any]]) -> dict[str, Any]:
    """The mean cost of a kind of in-process call (``samples`` non-empty)."""
    cost: dict[str, Any] = {k: sum(s[k] for s in samples) / len(samples) for k in COUNTS}
    lat = h.latencies([s["seconds"] for s in samples])
    cost |= {"reads": cost["job_reads"] + cost["cursor_reads"]}
    cost |= {"writes": cost["job_writes"] + cost["cursor_writes"]}
    cost |= {"gcs_lists_max": max(s["gcs_lists"] for s in samples)}
    row = {"call": call, "calls": len(samples), **cost}
    return row | {"ms_p50": lat["p50_ms"], "ms_max": lat["max_ms"]}


def bench_per_call(
    fs: Any, gcs: Any, config: Any, no_job_calls: int, max_calls: int
) -> tuple[list[Any], list[Any]]:
    """Drain a directly built job service, counting each call's reads, writes, owed-run
    queries and GCS lists; after the first "no job", ``no_job_calls - 1`` more."""
    from shared.gcs import ArchiveLister
    from shared.job_service import JobService
    from shared.store import CursorStore, JobStore
    from shared.tracker import Tracker

    store, cursors, archives = JobStore(fs), CursorStore(fs), ArchiveLister(gcs)
    tracker, queries = Tracker(store), [0]

    def counting(query: Any) -> Any:
        def counted(*args: Any, **kwargs: Any) -> Any:
            queries[0] += 1
            return query(*args, **kwargs)

        return counted

    for name in ("pending_reoffers", "unretried_reoffers", "retryable"):  # the owed-run queries
        setattr(tracker, name, counting(getattr(tracker, name)))
    service = JobService(tracker, cursors, archives, config)
    samples: list[dict[str, Any]] = []

    def counters() -> tuple[int, ...]:  # in the order of COUNTS
        s, c = store.stats, cursors.stats
        return (s.reads, s.writes, c.reads, c.writes, archives.calls, queries[0])

    def one() -> str:
        idle_until = cursors.state("historical").idle_until
        before, t0 = counters(), time.perf_counter()
        record = service.next_job()
        seconds = time.perf_counter() - t0
        kind = "hand-out" if record else "no job"
        stream = record.offer.split("/", 1)[0] if record else ""
        sample: dict[str, Any] = {"kind": kind, "stream": stream}
        sample |= {k: a - b for k, a, b in zip(COUNTS, counters(), before, strict=True)}
        # and whether the historical stream was resting when the call came
        resting = idle_until is not None and service.clock() < idle_until
        samples.append(sample | {"seconds": seconds, "resting": resting})
        return kind

    while len(samples) < max_calls and one() != "no job":
        pass
    for _ in range(no_job_calls - 1):
        one()
    first = next((i for i, s in enumerate(samples) if s["kind"] == "no job"), len(samples))
    handouts, after = samples[:first], samples[first:]
    no_job = [s for s in after if s["kind"] == "no job"]
    none_left = "no job, every candidate out"
    groups = {"hand-out, all": handouts}
    for stream in ("daily", "historical"):
        groups[f"hand-out, {stream} stream"] = [s for s in handouts if s["stream"] == stream]
    groups[f"{none_left}, walking the next cycle"] = [s for s in no_job if not s["resting"]]
    groups[f"{none_left}, stream resting"] = [s for s in no_job if s["resting"]]
    late = [s for s in after if s["kind"] == "hand-out"]
    groups["hand-out after a no-job answer (unexpected)"] = late
    return [call_cost(name, group) for name, group in groups.items() if group], samples


def handed_key(call: Call) -> str | None:
    """The job key (without its run) of a 200 answer of ``next``, or None."""
    job_id = call.job_id()
    return None if job_id is None else job_id.partition(RUN_SEPARATOR)[0]


def bench_http_level(
    run: h.Run, callers: int, env: dict[str, str], config: Any, args: Any
) -> dict[str, Any]:
    """On a fresh project's server, ``callers`` callers POST ``next`` until each is told "no
    job" (or ``--max-handouts`` are out, or after 5 errors in a row); every answer checked."""
    project = env["GOOGLE_CLOUD_PROJECT"] = run.project()
    answers: list[tuple[Call, float]] = []
    lock, limited, errors = threading.Lock(), threading.Event(), threading.local()

    def step(caller: h.Caller, deadline: float) -> bool:
        with lock:
            if sum(bool(c.key) for c, _ in answers) >= args.max_handouts:
                limited.set()
                return False
        t0 = time.perf_counter()
        status, body = caller.send("POST", "/v2/job/next")
        t1 = time.perf_counter()
        call = Call("next", status, t1 - t0, body=body)
        call.key = handed_key(call) or ""
        with lock:
            answers.append((call, t1))
        errors.n = 0 if call.key else getattr(errors, "n", 0) + 1
        if errors.n >= 5:
            limited.set()
        return not call.no_job and errors.n < 5

    t0 = time.perf_counter()
    with run.server(env) as (base, _):
        server_start = time.perf_counter() - t0
        expected_before = expected_keys(config, utcnow())
        warm = h.Caller(base, args.timeout)  # builds the server's job service; its job counts
        status, body = warm.send("POST", "/v2/job/next")
        warm.session.close()
        warm_key = handed_key(Call("next", status, 0, body=body))
        start, total, stopped = h.run_callers(base, callers, step, args.timeout, args.max_seconds)
        expected_after = expected_keys(config, utcnow())
    keys = [warm_key] * (warm_key is not None) + [c.key for c, _ in answers if c.key]
    handed = set(keys)
    # What the clock allowed at the start or at the end (they differ across a day boundary).
    expected = expected_after if handed == expected_after else expected_before
    ok = [(c, t) for c, t in answers if c.key]
    no_job = [(c, t) for c, t in answers if c.no_job]
    last = max((t for _, t in ok), default=start)
    lat, nj = h.latencies([c.seconds for c, _ in ok]), h.latencies([c.seconds for c, _ in no_job])
    level: dict[str, Any] = {"callers": callers, "project": project, "expected": len(expected)}
    level |= {"handouts": len(ok), "warmup_handouts": int(warm_key is not None)}
    level |= {"requests": len(answers), "no_job": len(no_job)}
    level |= {"early_no_job": sum(1 for _, t in no_job if t < last)}
    level |= {"errors": sum(1 for c, _ in answers if not c.key and not c.no_job)}
    level |= {"seconds_to_last_handout": last - start, "seconds_total": total}
    level |= {"handouts_per_s": len(ok) / (last - start) if last > start else math.nan}
    level |= {"p50_ms": lat["p50_ms"], "p99_ms": lat["p99_ms"], "no_job_p50_ms": nj["p50_ms"]}
    level |= {"no_job_max_ms": nj["max_ms"], "duplicates": len(keys) - len(handed)}
    level |= {"complete": handed == expected, "missing": len(expected - handed)}
    level |= {"unexpected": len(handed - expected), "stopped_early": limited.is_set() or stopped}
    level |= {"candidate_set_changed": expected_before != expected_after}
    level |= {"server_start_s": server_start}
    level |= {"status_codes": dict(sorted(Counter(str(c.status) for c, _ in answers).items()))}
    return level


def measure(args: Any, run: h.Run) -> dict[str, Any]:
    """Write the config, seed GCS, then the in-process calls and each HTTP level."""
    gcs, today = run.gcs(), utcnow().date()
    start = today - timedelta(days=args.days)
    workdir = Path(run.stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-next-")))
    objects = len(archive_names(start, today))
    h.progress(f"seeding {objects} archives …")
    config_path, config = seed_workload(gcs, workdir, start, today)
    now = utcnow()
    cands = candidates(config, now)
    distinct, seeded = {c.job.key() for c in cands}, expected_keys(config, now)
    workload = {"bucket": config.sources[0].bucket, "start_date": f"{start:%Y-%m-%d}"}
    workload |= {"days_back": args.days, "sources": len(config.sources)}
    for stream in ("daily", "historical"):
        workload[f"{stream}_candidates"] = sum(c.stream.value == stream for c in cands)
    workload |= {"distinct_candidates": len(distinct), "seeded_candidates": len(seeded)}
    workload |= {"passed_over": len(distinct - seeded), "objects_seeded": objects}
    h.progress("in-process calls (table 2) …")
    fs, calls = run.firestore(), len(distinct) + 10
    per_call, samples = bench_per_call(fs, gcs, config, args.no_job_calls, calls)
    env = {"STORAGE_EMULATOR_HOST": run.gcs_url or "", "GARDENER_CONFIG": str(config_path)}
    http = []
    for callers in args.concurrency:
        h.progress(f"HTTP (table 1), {callers} caller(s) …")
        http.append(bench_http_level(run, callers, env, config, args))
    report = {"config": {"config_yaml": config_path.read_text()}, "workload": workload}
    return report | {"http": http, "per_call": per_call, "per_call_samples": samples}


def render(report: dict[str, Any]) -> str:
    w = report["workload"]
    lines = h.heading(
        "Next-job benchmark",
        report["machine"],
        f"Workload: {w['sources']} sources from {w['start_date']} ({w['days_back']} days "
        f"back): {w['daily_candidates']} daily + {w['historical_candidates']} historical "
        f"candidates, {w['distinct_candidates']} distinct jobs, {w['seeded_candidates']} "
        f"with archives ({w['objects_seeded']} objects), {w['passed_over']} passed over",
    )
    h.section(
        lines,
        "## 1. Through HTTP: `POST /v2/job/next`, empty body, callers loop until "
        "503 `No job found. Try again.`",
        report["http"],
        "callers@callers | hand-outs@handouts | requests@requests | 503 no job@no_job | "
        "errors@errors | s to last hand-out@seconds_to_last_handout:2 | total s@seconds_total:2"
        " | hand-outs/s@handouts_per_s:1 | p50 ms@p50_ms:1 | p99 ms@p99_ms:1 | "
        "no-job p50 ms@no_job_p50_ms:1 | no-job max ms@no_job_max_ms:1 | "
        "duplicates@duplicates | complete@complete",
        "r" * 13 + "l",
        callers=lambda r: f"{r['callers']}{' (limit hit)' if r['stopped_early'] else ''}",
        handouts=lambda r: f"{r['handouts']} + {r['warmup_handouts']}",
        no_job=lambda r: f"{r['no_job']} ({r['early_no_job']} early)",
        complete=lambda r: (
            "yes" if r["complete"] else f"no ({r['missing']} missing, {r['unexpected']} unexpected)"
        ),
    )
    if bad := {r["callers"]: r["status_codes"] for r in report["http"] if r["errors"]}:
        lines += ["", f"Status codes of levels with errors (0: no answer): {bad}"]
    h.section(
        lines,
        "## 2. Per call, in-process: Firestore document reads and writes "
        "(`JobStore.stats`, `CursorStore.stats`) and GCS list requests",
        report["per_call"],
        "call@call | calls@calls | job reads@job_reads:2 | job writes@job_writes:2 | "
        "cursor reads@cursor_reads:2 | cursor writes@cursor_writes:2 | reads@reads:2 | "
        "writes@writes:2 | owed-run queries@queries:2 | GCS lists@gcs_lists:2 | "
        "GCS lists max@gcs_lists_max | p50 ms@ms_p50:1 | max ms@ms_max:1",
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    options = [
        ("--days", int, None, "start_date this many days back (60; quick 12)"),
        ("--concurrency", h.int_list(256), [1, 8, 32], "caller counts, a fresh project each"),
        ("--max-handouts", int, 1000, "hand-outs per level at most"),
        ("--max-seconds", float, None, "time limit of a level (30; quick 15)"),
        ("--no-job-calls", int, 8, "in-process no-job calls"),
        ("--timeout", float, 30.0, "timeout of one request"),
    ]
    p = h.arguments("next_job", __doc__, "small sizes, for a smoke run", *options)
    args = p.parse_args(argv)
    args.days = args.days or (12 if args.quick else 60)
    args.max_seconds = args.max_seconds or (15.0 if args.quick else 30.0)
    if not 3 <= args.days <= 366 or min(args.max_handouts, args.no_job_calls) < 1:
        p.error("--days must be between 3 and 366, the counts at least 1")

    def failure(report: dict[str, Any]) -> str | None:
        twice = any(r["duplicates"] for r in report["http"])
        return "a job was handed out twice" if twice else None

    return h.run_measured(args, measure, render, "next_job-", failure)


if __name__ == "__main__":
    sys.exit(main())
