"""Next-job benchmark: ``POST /v2/job/next`` through HTTP, and what one call costs.

On :mod:`local.workload`: a job service called in-process until "no job" (reads, writes, GCS
lists per call), then 1, 8 and 32 callers draining ``next`` through HTTP, a fresh project each."""

from __future__ import annotations

import math
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench import harness as h
from local import workload as wl
from local.fleet import Call, Caller, run_callers
from shared.gcs import ArchiveLister
from shared.model import utcnow
from shared.store import CursorStore, JobStore
from shared.tracker import Tracker


def call_cost(call: str, samples: list[h.Report]) -> h.Report:
    """The mean cost of a kind of in-process call (``samples`` non-empty)."""
    cost: h.Report = {k: sum(s[k] for s in samples) / len(samples) for k in wl.COUNTS}
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
    counted = wl.CountedService(Tracker(JobStore(fs)), CursorStore(fs), ArchiveLister(gcs), config)
    service, samples = counted.service, []

    def one() -> str:
        idle_until = counted.cursors.state("historical").idle_until
        before, t0 = counted.counts(), time.perf_counter()
        record = service.next_job()
        seconds = time.perf_counter() - t0
        kind = "hand-out" if record else "no job"
        stream = record.offer.split("/", 1)[0] if record else ""
        sample = {"kind": kind, "stream": stream, **counted.counts(since=before)}
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


def bench_http_level(
    run: h.Run, callers: int, env: dict[str, str], config: Any, args: Any
) -> h.Report:
    """On a fresh project's server, ``callers`` callers POST ``next`` until each is told "no
    job" (or ``--max-handouts`` are out, or after 5 errors in a row); every answer checked."""
    h.progress(f"HTTP (table 1), {callers} caller(s) …")
    project = env["GOOGLE_CLOUD_PROJECT"] = run.project()
    answers: list[Call] = []
    lock, limited, errors = threading.Lock(), threading.Event(), threading.local()

    def step(caller: Caller, deadline: float) -> bool:
        with lock:
            if sum(bool(c.key) for c in answers) >= args.max_handouts:
                limited.set()
                return False
        call = caller.call("next", "/v2/job/next")
        with lock:
            answers.append(call)
        errors.n = 0 if call.key else getattr(errors, "n", 0) + 1
        if errors.n >= 5:
            limited.set()
        return not call.no_job and errors.n < 5

    t0 = time.perf_counter()
    with run.server(env) as (base, _):
        server_start = time.perf_counter() - t0
        expected_before = wl.expected_keys(config, utcnow())
        warm = Caller(base, args.timeout)  # builds the server's job service; its job counts
        warm_key = warm.call("next", "/v2/job/next").key
        warm.session.close()
        start, total, stopped = run_callers(base, callers, step, args.timeout, args.max_seconds)
        expected_after = wl.expected_keys(config, utcnow())
    ok, no_job = [c for c in answers if c.key], [c for c in answers if c.no_job]
    keys = [warm_key] * bool(warm_key) + [c.key for c in ok]
    handed = set(keys)
    # What the clock allowed at the start or at the end (they differ across a day boundary).
    expected = expected_after if handed == expected_after else expected_before
    last = max((c.at for c in ok), default=start)
    lat, nj = h.latencies([c.seconds for c in ok]), h.latencies([c.seconds for c in no_job])
    level: h.Report = {"callers": callers, "project": project, "expected": len(expected)}
    level |= {"handouts": len(ok), "warmup_handouts": int(bool(warm_key))}
    level |= {"requests": len(answers), "no_job": len(no_job)}
    level |= {"early_no_job": sum(1 for c in no_job if c.at < last)}
    level |= {"errors": len(answers) - len(ok) - len(no_job)}
    level |= {"seconds_to_last_handout": last - start, "seconds_total": total}
    level |= {"handouts_per_s": len(ok) / (last - start) if last > start else math.nan}
    level |= {"p50_ms": lat["p50_ms"], "p99_ms": lat["p99_ms"], "no_job_p50_ms": nj["p50_ms"]}
    level |= {"no_job_max_ms": nj["max_ms"], "duplicates": len(keys) - len(handed)}
    level |= {"complete": handed == expected, "missing": len(expected - handed)}
    level |= {"unexpected": len(handed - expected), "stopped_early": limited.is_set() or stopped}
    level |= {"candidate_set_changed": expected_before != expected_after}
    return level | {"server_start_s": server_start, "status_codes": h.status_codes(answers)}


def measure(args: Any, run: h.Run) -> h.Report:
    """Write the config, seed GCS, then the in-process calls and each HTTP level."""
    start = (today := utcnow().date()) - timedelta(days=args.days)
    objects = len(wl.archive_names(start, today))
    h.progress(f"seeding {objects} archives …")
    gcs, config, env = run.workload(start, today)
    cands = wl.candidates(config, now := utcnow())
    distinct, seeded = {c.job.key() for c in cands}, wl.expected_keys(config, now)
    workload = {"bucket": config.sources[0].bucket, "start_date": f"{start:%Y-%m-%d}"}
    workload |= {"days_back": args.days, "sources": len(config.sources)}
    for stream in ("daily", "historical"):
        workload[f"{stream}_candidates"] = sum(c.stream.value == stream for c in cands)
    workload |= {"distinct_candidates": len(distinct), "seeded_candidates": len(seeded)}
    workload |= {"passed_over": len(distinct - seeded), "objects_seeded": objects}
    h.progress("in-process calls (table 2) …")
    fs, calls = run.firestore(), len(distinct) + 10
    per_call, samples = bench_per_call(fs, gcs, config, args.no_job_calls, calls)
    http = [bench_http_level(run, callers, env, config, args) for callers in args.concurrency]
    report = {"config": {"config_yaml": Path(env["GARDENER_CONFIG"]).read_text()}}
    report |= {"workload": workload}
    return report | {"http": http, "per_call": per_call, "per_call_samples": samples}


def render(report: h.Report) -> str:
    w = report["workload"]
    lines = h.heading(
        "Next-job benchmark",
        report["machine"],
        f"Workload: {w['sources']} sources from {w['start_date']} ({w['days_back']} days "
        f"back): {w['daily_candidates']} daily + {w['historical_candidates']} historical "
        f"candidates, {w['distinct_candidates']} distinct jobs, {w['seeded_candidates']} "
        f"with archives ({w['objects_seeded']} objects), {w['passed_over']} passed over",
    )
    lines += h.section(
        "## 1. Through HTTP: `POST /v2/job/next`, empty body, callers loop until "
        "503 `No job found. Try again.`",
        report["http"],
        ">callers@callers | hand-outs@handouts | requests@requests | 503 no job@no_job | "
        "errors@errors | s to last hand-out@seconds_to_last_handout:2 | total s@seconds_total:2"
        " | hand-outs/s@handouts_per_s:1 | p50 ms@p50_ms:1 | p99 ms@p99_ms:1 | "
        "no-job p50 ms@no_job_p50_ms:1 | no-job max ms@no_job_max_ms:1 | "
        "duplicates@duplicates | <complete@complete",
        callers=lambda r: f"{r['callers']}{' (limit hit)' if r['stopped_early'] else ''}",
        handouts=lambda r: f"{r['handouts']} + {r['warmup_handouts']}",
        no_job=lambda r: f"{r['no_job']} ({r['early_no_job']} early)",
        complete=lambda r: (
            "yes" if r["complete"] else f"no ({r['missing']} missing, {r['unexpected']} unexpected)"
        ),
    )
    if bad := {r["callers"]: r["status_codes"] for r in report["http"] if r["errors"]}:
        lines += ["", f"Status codes of levels with errors (0: no answer): {bad}"]
    lines += h.section(
        "## 2. Per call, in-process: Firestore document reads and writes "
        "(`JobStore.stats`, `CursorStore.stats`) and GCS list requests",
        report["per_call"],
        "call@call | calls@calls | job reads@job_reads:2 | job writes@job_writes:2 | "
        "cursor reads@cursor_reads:2 | cursor writes@cursor_writes:2 | reads@reads:2 | "
        "writes@writes:2 | owed-run queries@queries:2 | GCS lists@gcs_lists:2 | "
        "GCS lists max@gcs_lists_max | p50 ms@ms_p50:1 | max ms@ms_max:1",
    )
    return "\n".join(lines)


def failure(report: h.Report) -> str | None:
    """Whether a level handed a job out twice."""
    return "a job was handed out twice" if any(r["duplicates"] for r in report["http"]) else None


def main(argv: list[str] | None = None) -> int:
    options = [
        ("--days", h.number(int, 3, 366), h.Quick(60, 12), "start_date this many days back"),
        (
            "--concurrency",
            h.int_list(256),
            [1, 8, 32],
            "caller counts, a fresh project each",
        ),
        ("--max-handouts", h.number(int, 1), 1000, "hand-outs per level at most"),
        ("--max-seconds", float, h.Quick(30.0, 15.0), "time limit of a level"),
        ("--no-job-calls", h.number(int, 1), 8, "in-process no-job calls"),
        ("--timeout", float, 30.0, "timeout of one request"),
    ]
    args = h.arguments("next_job", __doc__, argv, "small sizes, for a smoke run", *options)
    return h.run_measured(args, measure, render, "next_job-", failure)


if __name__ == "__main__":
    raise SystemExit(main())
