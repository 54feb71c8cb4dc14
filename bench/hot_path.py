"""Hot-path benchmark: parser updates and heartbeats through HTTP, against the Firestore floor.

The floor (bare ``set``, ``get``, read+write transaction), then updates and heartbeats
through a function server at several concurrency levels and on one hot job, and the
Firestore reads and writes of each tracker call, in-process. ``make bench``.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from bench.harness import (
    RESULTS_DIR,
    Caller,
    Latencies,
    Run,
    arguments,
    bench_floor,
    grid,
    heading,
    heartbeat_path,
    int_list,
    progress,
    run_callers,
    run_measured,
    timed_ops,
    update_path,
)
from local.workload import bench_job, create_parsing_jobs

EMULATOR_LOG = RESULTS_DIR / "firestore-emulator.log"
#: Coalescing window the server runs with (every heartbeat writes).
SERVER_COALESCE_SECONDS = "0"
P50_P99 = "p50 ms@p50_ms:1 | p99 ms@p99_ms:1"


def run_http(
    base: str,
    requests_: Sequence[tuple[str, str]],
    callers: int,
    timeout: float,
    max_seconds: float,
) -> tuple[float, list[tuple[str, int, float]], bool]:
    """POST each ``(kind, path)`` once, ``callers`` callers taking the next from a shared
    cursor; the time, each request's ``(kind, status, latency)``, whether time ran out."""
    results: list[tuple[str, int, float] | None] = [None] * len(requests_)
    cursor, lock = iter(range(len(requests_))), threading.Lock()

    def step(caller: Caller, deadline: float) -> bool:
        with lock:
            i = next(cursor, None)
        if i is None:
            return False
        t0 = time.perf_counter()
        status = caller.send("POST", requests_[i][1])[0]
        results[i] = (requests_[i][0], status, time.perf_counter() - t0)
        return True

    _, elapsed, stopped = run_callers(base, callers, step, timeout, max_seconds)
    return elapsed, [r for r in results if r is not None], stopped


def http_scenario(
    name: str,
    endpoint: str,
    base: str,
    requests_: Sequence[tuple[str, str]],
    jobs: int,
    callers: int,
    timeout: float,
    max_seconds: float,
) -> dict[str, Any]:
    """Run one HTTP scenario and summarise it (errors: non-200 answers and no answers)."""
    seconds, sent, stopped = run_http(base, requests_, callers, timeout, max_seconds)
    summary = Latencies.of([lat for _, _, lat in sent])
    kinds = sorted({kind for kind, _, _ in sent})
    by_kind = {}
    for kind in kinds if len(kinds) > 1 else []:
        s = Latencies.of([lat for k, _, lat in sent if k == kind])
        by_kind[kind] = {
            "requests": s.count,
            "p50_ms": s.p50_ms,
            "p99_ms": s.p99_ms,
            "errors": sum(1 for k, st, _ in sent if k == kind and st != 200),
        }
    return {
        "scenario": name,
        "endpoint": endpoint,
        "jobs": jobs,
        "callers": callers,
        "requests": len(sent),
        "errors": sum(1 for _, st, _ in sent if st != 200),
        "seconds": seconds,
        "requests_per_s": len(sent) / seconds if seconds else math.nan,
        "p50_ms": summary.p50_ms,
        "p99_ms": summary.p99_ms,
        "ratio_to_txn": math.nan,
        "status_codes": dict(Counter(str(st) for _, st, _ in sent)),
        "by_kind": by_kind,
        "stopped_early": stopped,
    }


def bench_http(
    base: str,
    keys: Sequence[str],
    hot_key: str,
    n: int,
    concurrency: Sequence[int],
    hot_callers: int,
    timeout: float,
    max_seconds: float,
) -> list[dict[str, Any]]:
    """Updates and heartbeats over ``keys`` at each concurrency, then the hot job."""
    warm = [("update", update_path(k, "warmup")) for k in keys[:16]]
    run_http(
        base, warm + [("heartbeat", heartbeat_path(k)) for k in keys[:16]], 4, timeout, max_seconds
    )  # warms the server's client and code paths; not measured
    results = []
    scenarios: list[tuple[str, str, Callable[[int], str]]] = [
        (
            "update",
            "/v2/job/update",
            lambda i: update_path(keys[i % len(keys)], f"archive-{i:06d}.tgz"),
        ),
        ("heartbeat", "/v2/job/heartbeat", lambda i: heartbeat_path(keys[i % len(keys)])),
    ]
    for kind, endpoint, path in scenarios:
        for c in concurrency:
            results.append(
                http_scenario(
                    f"{kind}, {len(keys)} jobs",
                    endpoint,
                    base,
                    [(kind, path(i)) for i in range(n)],
                    len(keys),
                    c,
                    timeout,
                    max_seconds,
                )
            )
    hot = [
        ("heartbeat", heartbeat_path(hot_key))
        if i % 2 == 0
        else ("update", update_path(hot_key, f"archive-{i:06d}.tgz"))
        for i in range(n)
    ]
    results.append(
        http_scenario(
            "hot job: heartbeat + update", "both", base, hot, 1, hot_callers, timeout, max_seconds
        )
    )
    return results


def bench_per_call(client: Any, calls: int) -> list[dict[str, Any]]:
    """Count the Firestore reads and writes of each tracker operation on a store of its own
    (set-up, such as moving jobs to ``parsing`` or priming heartbeats, uses another)."""
    from shared.defaults import HEARTBEAT_COALESCE
    from shared.model import State
    from shared.store import JobStore
    from shared.tracker import Tracker

    setup = Tracker(JobStore(client), heartbeat_coalesce=timedelta(0))
    jobs = [bench_job(i, experiment="stats") for i in range(calls)]
    keys = [job.key() for job in jobs]
    results: list[dict[str, Any]] = []

    def measure(
        name: str, op: Callable[[Tracker, int], object], coalesce: timedelta = HEARTBEAT_COALESCE
    ) -> list[object]:
        tracker = Tracker(JobStore(client), heartbeat_coalesce=coalesce)
        returned: list[object] = []
        seconds, _ = timed_ops(lambda i: returned.append(op(tracker, i)), calls)
        st = tracker.store.stats
        results.append(
            {
                "operation": name,
                "calls": calls,
                "reads": st.reads,
                "writes": st.writes,
                "reads_per_call": st.reads / calls,
                "writes_per_call": st.writes / calls,
                "ms_per_call": seconds / calls * 1000,
                "note": "",
            }
        )
        return returned

    def found_parsing(previous: list[object]) -> str:
        return f"{sum(p is State.PARSING for p in previous)} of {calls} found the job in parsing"

    def primed(t: Tracker, i: int) -> bool:
        setup.heartbeat(keys[i])  # on the set-up store: not counted
        return t.heartbeat(keys[i])

    measure("add_job (new key)", lambda t, i: t.add_job(jobs[i]))
    for key in keys:
        setup.set_status(key, State.PARSING, "start")
    previous = measure(
        "update, same state (parsing detail)",
        lambda t, i: t.set_status(keys[i], State.PARSING, f"archive-{i}.tgz"),
    )
    results[-1]["note"] = found_parsing(previous)
    written = measure(
        "heartbeat, coalescing off (0 s)", lambda t, i: t.heartbeat(keys[i]), timedelta(0)
    )
    results[-1]["note"] = f"{sum(map(bool, written))} of {calls} wrote"
    written = measure(
        f"heartbeat within the {HEARTBEAT_COALESCE.total_seconds():g} s window", primed
    )
    results[-1]["note"] = (
        f"{sum(map(bool, written))} of {calls} wrote; ms/call includes the priming heartbeat"
    )
    previous = measure(
        "state change parsing → postProcessing",
        lambda t, i: t.set_status(keys[i], State.POST_PROCESSING, "parsed"),
    )
    results[-1]["note"] = found_parsing(previous)
    return results


def measure(args: Any, run: Run) -> dict[str, Any]:
    """The floor, the per-call counts, then the HTTP scenarios on a server of the project."""
    from shared.store import JobStore
    from shared.tracker import Tracker

    project = run.project()
    client = run.firestore(project)
    progress("1/3 the floor …")
    floor = bench_floor(client, args.floor_ops)
    progress("2/3 reads and writes per call …")
    per_call = bench_per_call(client, args.calls)
    progress(f"3/3 HTTP: creating {args.jobs + 1} parsing jobs …")
    tracker = Tracker(JobStore(client))
    keys = create_parsing_jobs(tracker, [bench_job(i) for i in range(args.jobs)])
    hot_key = create_parsing_jobs(tracker, [bench_job(0, experiment="hot")])[0]
    with run.server(
        {"GOOGLE_CLOUD_PROJECT": project, "HEARTBEAT_COALESCE_SECONDS": SERVER_COALESCE_SECONDS}
    ) as (base, _):
        http = bench_http(
            base,
            keys,
            hot_key,
            args.requests,
            args.concurrency,
            args.hot_callers,
            args.timeout,
            args.max_seconds,
        )
    for r in http:
        r["ratio_to_txn"] = r["requests_per_s"] / floor[-1]["ops_per_s"]
    lock_timeouts = None
    if run.own_emulator:
        lock_timeouts = run.log.read_text(errors="replace").count(
            "Operation failed: Transaction lock timeout"
        )
    return {
        "config": {"server_coalesce_seconds": SERVER_COALESCE_SECONDS},
        "floor": floor,
        "http": http,
        "per_call": per_call,
        "emulator_lock_timeouts": lock_timeouts,
    }


def render(report: dict[str, Any]) -> str:
    """The report as Markdown."""
    lines = heading("Tracker hot-path benchmark", report["machine"])
    lines += ["## 1. The floor: the Firestore client directly, sequential, one thread", ""]
    lines += grid(
        report["floor"],
        "operation@operation | ops@ops | ops/s@ops_per_s:1 | p50 ms@p50_ms:2 | p99 ms@p99_ms:2",
    )
    lines += [
        "",
        "## 2. Through HTTP: POST, parameters in the query string, empty body; "
        f"`HEARTBEAT_COALESCE_SECONDS={report['config']['server_coalesce_seconds']}`; "
        "× txn = requests/s ÷ bare transactions/s",
        "",
    ]
    lines += grid(
        report["http"],
        "scenario@name | callers@callers | requests@requests | errors@errors | "
        "requests/s@requests_per_s:1 | p50 ms@p50_ms:1 | p99 ms@p99_ms:1 | × txn@ratio_to_txn:2",
        name=lambda r: r["scenario"] + (" (stopped at time limit)" if r["stopped_early"] else ""),
    )
    for r in report["http"]:
        if r["by_kind"]:
            lines += ["", f"{r['scenario']} ({r['callers']} callers, one job), by kind:", ""]
            kinds = [{"kind": kind, **s} for kind, s in r["by_kind"].items()]
            lines += grid(kinds, f"kind@kind | requests@requests | errors@errors | {P50_P99}")
    bad = {
        f"{r['scenario']} ×{r['callers']}": r["status_codes"] for r in report["http"] if r["errors"]
    }
    if bad:
        lines += ["", f"Status codes of scenarios with errors (0: no answer): {bad}"]
    if report.get("emulator_lock_timeouts") is not None:
        lines += [
            "",
            f"Emulator `Transaction lock timeout` failures: {report['emulator_lock_timeouts']}",
        ]
    lines += [
        "",
        "## 3. Firestore document reads and writes per tracker call (in-process, `JobStore.stats`)",
        "",
    ]
    lines += grid(
        report["per_call"],
        "operation@operation | calls@calls | reads/call@reads_per_call:2 | "
        "writes/call@writes_per_call:2 | ms/call@ms_per_call:2 | note@note",
        "lrrrrl",
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the tables, write the JSON; the exit status."""
    p = arguments("hot_path", __doc__, "small sizes, for a smoke run")
    p.add_argument("--requests", type=int, help="requests per HTTP scenario (400; quick 100)")
    p.add_argument("--floor-ops", type=int, help="ops per floor measurement (300; quick 100)")
    p.add_argument("--calls", type=int, help="calls per per-call measurement (30; quick 10)")
    p.add_argument("--jobs", type=int, default=64, help="jobs the many-job scenarios spread over")
    p.add_argument(
        "--concurrency",
        type=int_list(256),
        default=[1, 8],
        help="caller counts of the many-job scenarios (default 1,8)",
    )
    p.add_argument("--hot-callers", type=int, default=32, help="callers on the one hot job")
    p.add_argument("--max-seconds", type=float, default=30.0, help="time limit of a scenario")
    p.add_argument("--timeout", type=float, default=10.0, help="timeout of one request")
    args = p.parse_args(argv)
    args.requests = args.requests or (100 if args.quick else 400)
    args.floor_ops = args.floor_ops or (100 if args.quick else 300)
    args.calls = args.calls or (10 if args.quick else 30)
    if (
        min(args.requests, args.floor_ops, args.calls, args.jobs) < 1
        or not 1 <= args.hot_callers <= 256
    ):
        p.error("sizes must be at least 1, --hot-callers at most 256")
    return run_measured(args, measure, render, EMULATOR_LOG)


if __name__ == "__main__":
    sys.exit(main())
