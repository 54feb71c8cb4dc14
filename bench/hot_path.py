"""Hot-path benchmark: parser updates and heartbeats through HTTP, against the Firestore floor.

The floor (bare ``set``, ``get``, transaction), updates and heartbeats through a function
server at several concurrency levels and on one hot job, and each tracker call's reads and
writes, in-process."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from bench import harness as h
from local.fleet import Call, Caller, heartbeat, run_callers, update
from local.workload import bench_job, create_parsing_jobs
from shared.defaults import HEARTBEAT_COALESCE as WINDOW
from shared.model import State
from shared.store import JobStore
from shared.tracker import Tracker

#: Coalescing window the server runs with (every heartbeat writes).
SERVER_COALESCE_SECONDS = "0"
LOCK_TIMEOUT = "Operation failed: Transaction lock timeout"  # in the emulator's log


def http_scenario(
    name: str, endpoint: str, base: str, sent: list[Any], jobs: int, callers: int, args: Any
) -> h.Report:
    """POST each ``(kind, path, params)`` of ``sent`` once, ``callers`` callers taking the next
    from a shared cursor; the summary (errors: non-200 answers and no answers)."""
    got: list[Call | None] = [None] * len(sent)
    cursor, lock = iter(range(len(sent))), threading.Lock()

    def step(caller: Caller, deadline: float) -> bool:
        with lock:
            i = next(cursor, None)
        if i is not None:
            got[i] = caller.call(*sent[i])
        return i is not None

    _, seconds, stopped = run_callers(base, callers, step, args.timeout, args.max_seconds)
    done, p50_p99 = [c for c in got if c is not None], ("p50_ms", "p99_ms")
    kinds = sorted({c.endpoint for c in done})
    mine = {kind: [c for c in done if c.endpoint == kind] for kind in kinds if len(kinds) > 1}
    out: h.Report = {"scenario": name, "endpoint": endpoint, "jobs": jobs, "callers": callers}
    out |= h.summary(done, *p50_p99) | {"seconds": seconds, "ratio_to_txn": math.nan}
    out |= {"requests_per_s": len(done) / seconds if seconds else math.nan}
    out |= {"status_codes": h.status_codes(done), "stopped_early": stopped}
    return out | {"by_kind": {kind: h.summary(c, *p50_p99) for kind, c in mine.items()}}


def bench_http(base: str, keys: Sequence[str], hot_key: str, args: Any) -> list[h.Report]:
    """Updates and heartbeats over ``keys`` at each concurrency, then the hot job."""
    warm = [update(k, "warmup") for k in keys[:16]] + [heartbeat(k) for k in keys[:16]]
    http_scenario("warm-up", "both", base, warm, len(keys), 4, args)  # not measured
    n, results = args.requests, []
    scenarios: list[tuple[str, Callable[[int], Any]]] = [
        ("update", lambda i: update(keys[i % len(keys)], f"archive-{i:06d}.tgz")),
        ("heartbeat", lambda i: heartbeat(keys[i % len(keys)])),
    ]
    for kind, call in scenarios:
        sent, name = [call(i) for i in range(n)], f"{kind}, {len(keys)} jobs"
        for c in args.concurrency:
            results.append(http_scenario(name, f"/v2/job/{kind}", base, sent, len(keys), c, args))
    hot = [
        heartbeat(hot_key) if i % 2 == 0 else update(hot_key, f"archive-{i:06d}.tgz")
        for i in range(n)
    ]
    name, callers = "hot job: heartbeat + update", args.hot_callers
    return [*results, http_scenario(name, "both", base, hot, 1, callers, args)]


def bench_per_call(client: Any, calls: int) -> list[h.Report]:
    """Count the Firestore reads and writes of each tracker operation on a store of its own
    (set-up, such as moving jobs to ``parsing`` or priming heartbeats, uses another)."""
    setup = Tracker(JobStore(client), heartbeat_coalesce=timedelta(0))
    jobs = [bench_job(i, experiment="stats") for i in range(calls)]
    keys, results = [job.key() for job in jobs], []

    def measure(name: str, op: Callable[..., object], note: str = "", off: bool = False) -> None:
        coalesce = timedelta(0) if off else WINDOW
        tracker, returned = Tracker(JobStore(client), heartbeat_coalesce=coalesce), []
        seconds, _ = h.timed_ops(lambda i: returned.append(op(tracker, i)), calls)
        r, w = tracker.store.stats.reads, tracker.store.stats.writes
        row = {"operation": name, "calls": calls, "reads": r, "writes": w}
        row |= {"reads_per_call": r / calls, "writes_per_call": w / calls}
        found = sum(p is State.PARSING for p in returned)
        note = note.format(wrote=sum(map(bool, returned)), parsing=found, calls=calls)
        results.append(row | {"ms_per_call": seconds / calls * 1000, "note": note})

    def primed(t: Tracker, i: int) -> bool:
        setup.heartbeat(keys[i])  # on the set-up store: not counted
        return t.heartbeat(keys[i])

    def status(state: State, detail: str) -> Callable[[Tracker, int], object]:
        return lambda t, i: t.set_status(keys[i], state, detail.format(i))

    measure("add_job (new key)", lambda t, i: t.add_job(jobs[i]))
    for key in keys:
        setup.set_status(key, State.PARSING, "start")
    parsing, wrote = "{parsing} of {calls} found the job in parsing", "{wrote} of {calls} wrote"
    measure("update, same state (parsing detail)", status(State.PARSING, "archive-{}.tgz"), parsing)
    beat = "heartbeat, coalescing off (0 s)"
    measure(beat, lambda t, i: t.heartbeat(keys[i]), wrote, off=True)
    primed_note = wrote + "; ms/call includes the priming heartbeat"
    measure(f"heartbeat within the {WINDOW.total_seconds():g} s window", primed, primed_note)
    parsed = status(State.POST_PROCESSING, "parsed")
    measure("state change parsing → postProcessing", parsed, parsing)
    return results


def measure(args: Any, run: h.Run) -> h.Report:
    """The floor, the per-call counts, then the HTTP scenarios on a server of the project."""
    client = run.firestore(project := run.project())
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
    log = run.log.read_text(errors="replace") if run.own_emulator else None
    lock_timeouts = None if log is None else log.count(LOCK_TIMEOUT)
    report = {"config": {"server_coalesce_seconds": SERVER_COALESCE_SECONDS}, "floor": floor}
    return report | {"http": http, "per_call": per_call, "emulator_lock_timeouts": lock_timeouts}


def render(report: h.Report) -> str:
    lines, http = h.heading("Tracker hot-path benchmark", report["machine"]), report["http"]
    lines += h.section(
        "## 1. The floor: the Firestore client directly, sequential, one thread",
        report["floor"],
        "operation@operation | ops@ops | ops/s@ops_per_s:1 | p50 ms@p50_ms:2 | p99 ms@p99_ms:2",
    )
    lines += h.section(
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
        lines += h.section(title, kinds, spec)
    if bad := {f"{r['scenario']} ×{r['callers']}": r["status_codes"] for r in http if r["errors"]}:
        lines += ["", f"Status codes of scenarios with errors (0: no answer): {bad}"]
    if (timeouts := report.get("emulator_lock_timeouts")) is not None:
        lines += ["", f"Emulator `Transaction lock timeout` failures: {timeouts}"]
    lines += h.section(
        "## 3. Firestore document reads and writes per tracker call (in-process, `JobStore.stats`)",
        report["per_call"],
        "operation@operation | calls@calls | reads/call@reads_per_call:2 | "
        "writes/call@writes_per_call:2 | ms/call@ms_per_call:2 | <note@note",
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    options = [
        ("--requests", h.number(int, 1), h.Quick(400, 100), "requests per HTTP scenario"),
        ("--floor-ops", h.number(int, 1), h.Quick(300, 100), "ops per floor measurement"),
        ("--calls", h.number(int, 1), h.Quick(30, 10), "calls per per-call measurement"),
        ("--jobs", h.number(int, 1), 64, "jobs the many-job scenarios spread over"),
        (
            "--concurrency",
            h.int_list(256),
            [1, 8],
            "caller counts of the many-job scenarios",
        ),
        ("--hot-callers", h.number(int, 1, 256), 32, "callers on the one hot job"),
        ("--max-seconds", float, 30.0, "time limit of a scenario"),
        ("--timeout", float, 10.0, "timeout of one request"),
    ]
    args = h.arguments("hot_path", __doc__, argv, "small sizes, for a smoke run", *options)
    return h.run_measured(args, measure, render, "")


if __name__ == "__main__":
    raise SystemExit(main())
