"""Hot-path benchmark: parser updates and heartbeats through HTTP, against the Firestore floor.

The floor (bare ``set``, ``get``, transaction), updates and heartbeats through a function
server at several concurrency levels and on one hot job, and each tracker call's reads and
writes, in-process."""

from __future__ import annotations

import math
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from bench import harness as h
from local.workload import bench_job, create_parsing_jobs

#: Coalescing window the server runs with (every heartbeat writes).
SERVER_COALESCE_SECONDS = "0"
LOCK_TIMEOUT = "Operation failed: Transaction lock timeout"  # in the emulator's log


def http_scenario(
    name: str, endpoint: str, base: str, sent: list[Any], jobs: int, callers: int, args: Any
) -> dict[str, Any]:
    """POST each ``(kind, path)`` of ``sent`` once, ``callers`` callers taking the next from a
    shared cursor; the summary (errors: non-200 answers and no answers)."""
    got: list[tuple[str, int, float] | None] = [None] * len(sent)
    cursor, lock = iter(range(len(sent))), threading.Lock()

    def step(caller: h.Caller, deadline: float) -> bool:
        with lock:
            i = next(cursor, None)
        if i is None:
            return False
        t0 = time.perf_counter()
        status = caller.send("POST", sent[i][1])[0]
        got[i] = (sent[i][0], status, time.perf_counter() - t0)
        return True

    _, seconds, stopped = h.run_callers(base, callers, step, args.timeout, args.max_seconds)
    done = [r for r in got if r is not None]
    summary, kinds = h.latencies([lat for _, _, lat in done]), sorted({k for k, _, _ in done})
    by_kind = {}
    for kind in kinds if len(kinds) > 1 else []:
        s = h.latencies([lat for k, _, lat in done if k == kind])
        errors = sum(1 for k, st, _ in done if k == kind and st != 200)
        by_kind[kind] = {"requests": s["count"], "p50_ms": s["p50_ms"], "p99_ms": s["p99_ms"]}
        by_kind[kind]["errors"] = errors
    out: dict[str, Any] = {"scenario": name, "endpoint": endpoint, "jobs": jobs, "callers": callers}
    out |= {"requests": len(done), "errors": sum(1 for _, st, _ in done if st != 200)}
    out |= {"seconds": seconds, "requests_per_s": len(done) / seconds if seconds else math.nan}
    out |= {"p50_ms": summary["p50_ms"], "p99_ms": summary["p99_ms"], "ratio_to_txn": math.nan}
    out |= {"status_codes": dict(Counter(str(st) for _, st, _ in done)), "by_kind": by_kind}
    return out | {"stopped_early": stopped}


def bench_http(base: str, keys: Sequence[str], hot_key: str, args: Any) -> list[dict[str, Any]]:
    """Updates and heartbeats over ``keys`` at each concurrency, then the hot job."""
    warm = [("update", h.update_path(k, "warmup")) for k in keys[:16]]
    warm += [("heartbeat", h.heartbeat_path(k)) for k in keys[:16]]
    http_scenario("warm-up", "both", base, warm, len(keys), 4, args)  # not measured
    n, results = args.requests, []
    scenarios: list[tuple[str, Callable[[int], str]]] = [
        ("update", lambda i: h.update_path(keys[i % len(keys)], f"archive-{i:06d}.tgz")),
        ("heartbeat", lambda i: h.heartbeat_path(keys[i % len(keys)])),
    ]
    for kind, path in scenarios:
        sent, name = [(kind, path(i)) for i in range(n)], f"{kind}, {len(keys)} jobs"
        for c in args.concurrency:
            results.append(http_scenario(name, f"/v2/job/{kind}", base, sent, len(keys), c, args))
    beat, update = ("heartbeat", h.heartbeat_path(hot_key)), "update"
    hot = [
        beat if i % 2 == 0 else (update, h.update_path(hot_key, f"archive-{i:06d}.tgz"))
        for i in range(n)
    ]
    name, callers = "hot job: heartbeat + update", args.hot_callers
    return [*results, http_scenario(name, "both", base, hot, 1, callers, args)]


def bench_per_call(client: Any, calls: int) -> list[dict[str, Any]]:
    """Count the Firestore reads and writes of each tracker operation on a store of its own
    (set-up, such as moving jobs to ``parsing`` or priming heartbeats, uses another)."""
    from shared.defaults import HEARTBEAT_COALESCE as WINDOW
    from shared.model import State
    from shared.store import JobStore
    from shared.tracker import Tracker

    setup = Tracker(JobStore(client), heartbeat_coalesce=timedelta(0))
    jobs = [bench_job(i, experiment="stats") for i in range(calls)]
    keys = [job.key() for job in jobs]
    results: list[dict[str, Any]] = []

    def measure(
        name: str, op: Callable[[Tracker, int], object], coalesce: timedelta = WINDOW
    ) -> list[object]:
        tracker, returned = Tracker(JobStore(client), heartbeat_coalesce=coalesce), []
        seconds, _ = h.timed_ops(lambda i: returned.append(op(tracker, i)), calls)
        r, w = tracker.store.stats.reads, tracker.store.stats.writes
        results.append({"operation": name, "calls": calls, "reads": r, "writes": w})
        results[-1] |= {"reads_per_call": r / calls, "writes_per_call": w / calls}
        results[-1] |= {"ms_per_call": seconds / calls * 1000, "note": ""}
        return returned

    def found_parsing(previous: list[object]) -> str:
        return f"{sum(p is State.PARSING for p in previous)} of {calls} found the job in parsing"

    def primed(t: Tracker, i: int) -> bool:
        setup.heartbeat(keys[i])  # on the set-up store: not counted
        return t.heartbeat(keys[i])

    measure("add_job (new key)", lambda t, i: t.add_job(jobs[i]))
    for key in keys:
        setup.set_status(key, State.PARSING, "start")

    def status(state: State, detail: str) -> Callable[[Tracker, int], object]:
        return lambda t, i: t.set_status(keys[i], state, detail.format(i))

    previous = measure(
        "update, same state (parsing detail)", status(State.PARSING, "archive-{}.tgz")
    )
    results[-1]["note"] = found_parsing(previous)
    off = measure(
        "heartbeat, coalescing off (0 s)", lambda t, i: t.heartbeat(keys[i]), timedelta(0)
    )
    results[-1]["note"] = f"{sum(map(bool, off))} of {calls} wrote"
    written = measure(f"heartbeat within the {WINDOW.total_seconds():g} s window", primed)
    results[-1]["note"] = (
        f"{sum(map(bool, written))} of {calls} wrote; ms/call includes the priming heartbeat"
    )
    previous = measure(
        "state change parsing → postProcessing", status(State.POST_PROCESSING, "parsed")
    )
    results[-1]["note"] = found_parsing(previous)
    return results


def measure(args: Any, run: h.Run) -> dict[str, Any]:
    """The floor, the per-call counts, then the HTTP scenarios on a server of the project."""
    from shared.store import JobStore
    from shared.tracker import Tracker

    project = run.project()
    client = run.firestore(project)
    h.progress("1/3 the floor …")
    floor = h.bench_floor(client, args.floor_ops)
    h.progress("2/3 reads and writes per call …")
    per_call = bench_per_call(client, args.calls)
    h.progress(f"3/3 HTTP: creating {args.jobs + 1} parsing jobs …")
    tracker = Tracker(JobStore(client))
    keys = create_parsing_jobs(tracker, [bench_job(i) for i in range(args.jobs)])
    hot_key = create_parsing_jobs(tracker, [bench_job(0, experiment="hot")])[0]
    env = {"GOOGLE_CLOUD_PROJECT": project, "HEARTBEAT_COALESCE_SECONDS": SERVER_COALESCE_SECONDS}
    with run.server(env) as (base, _):
        http = bench_http(base, keys, hot_key, args)
    for r in http:
        r["ratio_to_txn"] = r["requests_per_s"] / floor[-1]["ops_per_s"]
    lock_timeouts = None
    if run.own_emulator:
        lock_timeouts = run.log.read_text(errors="replace").count(LOCK_TIMEOUT)
    report = {"config": {"server_coalesce_seconds": SERVER_COALESCE_SECONDS}, "floor": floor}
    return report | {"http": http, "per_call": per_call, "emulator_lock_timeouts": lock_timeouts}


def render(report: dict[str, Any]) -> str:
    lines, http = h.heading("Tracker hot-path benchmark", report["machine"]), report["http"]
    h.section(
        lines,
        "## 1. The floor: the Firestore client directly, sequential, one thread",
        report["floor"],
        "operation@operation | ops@ops | ops/s@ops_per_s:1 | p50 ms@p50_ms:2 | p99 ms@p99_ms:2",
    )
    h.section(
        lines,
        "## 2. Through HTTP: POST, parameters in the query string, empty body; "
        f"`HEARTBEAT_COALESCE_SECONDS={report['config']['server_coalesce_seconds']}`; "
        "× txn = requests/s ÷ bare transactions/s",
        http,
        "scenario@name | callers@callers | requests@requests | errors@errors | "
        "requests/s@requests_per_s:1 | p50 ms@p50_ms:1 | p99 ms@p99_ms:1 | × txn@ratio_to_txn:2",
        name=lambda r: r["scenario"] + (" (stopped at time limit)" if r["stopped_early"] else ""),
    )
    for r in [r for r in http if r["by_kind"]]:
        title = f"{r['scenario']} ({r['callers']} callers, one job), by kind:"
        kinds = [{"kind": kind, **s} for kind, s in r["by_kind"].items()]
        spec = "kind@kind | requests@requests | errors@errors | p50 ms@p50_ms:1 | p99 ms@p99_ms:1"
        h.section(lines, title, kinds, spec)
    if bad := {f"{r['scenario']} ×{r['callers']}": r["status_codes"] for r in http if r["errors"]}:
        lines += ["", f"Status codes of scenarios with errors (0: no answer): {bad}"]
    if (timeouts := report.get("emulator_lock_timeouts")) is not None:
        lines += ["", f"Emulator `Transaction lock timeout` failures: {timeouts}"]
    h.section(
        lines,
        "## 3. Firestore document reads and writes per tracker call (in-process, `JobStore.stats`)",
        report["per_call"],
        "operation@operation | calls@calls | reads/call@reads_per_call:2 | "
        "writes/call@writes_per_call:2 | ms/call@ms_per_call:2 | note@note",
        "lrrrrl",
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    options = [
        ("--requests", int, None, "requests per HTTP scenario (400; quick 100)"),
        ("--floor-ops", int, None, "ops per floor measurement (300; quick 100)"),
        ("--calls", int, None, "calls per per-call measurement (30; quick 10)"),
        ("--jobs", int, 64, "jobs the many-job scenarios spread over"),
        ("--concurrency", h.int_list(256), [1, 8], "caller counts of the many-job scenarios"),
        ("--hot-callers", int, 32, "callers on the one hot job"),
        ("--max-seconds", float, 30.0, "time limit of a scenario"),
        ("--timeout", float, 10.0, "timeout of one request"),
    ]
    p = h.arguments("hot_path", __doc__, "small sizes, for a smoke run", *options)
    args = p.parse_args(argv)
    args.requests = args.requests or (100 if args.quick else 400)
    args.floor_ops = args.floor_ops or (100 if args.quick else 300)
    args.calls = args.calls or (10 if args.quick else 30)
    sizes = (args.requests, args.floor_ops, args.calls, args.jobs, args.hot_callers)
    if min(sizes) < 1 or args.hot_callers > 256:
        p.error("sizes must be at least 1, --hot-callers at most 256")
    return h.run_measured(args, measure, render, "")


if __name__ == "__main__":
    sys.exit(main())
