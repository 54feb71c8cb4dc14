"""Post-processing tick benchmark: ticks that carry N jobs from ``postProcessing`` to ``complete``.

``PostProcessor.tick()`` in-process, one at a time (``batch`` N and 50), then two at once, with
a fake clock and :class:`local.counting_warehouse.CountingWarehouse` for BigQuery."""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from bench import harness as h
from local.clock import FakeClock
from local.counting_warehouse import CountingWarehouse
from local.workload import bench_job, load, post_processing_record
from shared.defaults import POSTPROCESS_BATCH
from shared.model import JobFilter, State, utcnow
from shared.postprocess import ANNOTATION, STANDARD_PIPELINE, PostProcessor, PostProcessPolicy
from shared.store import JobStore
from shared.tracker import Tracker
from shared.warehouse import STEPS

#: The default batch of :class:`shared.postprocess.PostProcessPolicy`; largest N accepted.
DEFAULT_BATCH, MAX_SIZE = POSTPROCESS_BATCH, 5000
#: Seconds the clock moves between ticks; jobs of the unreported warm-up run.
ADVANCE_SECONDS, WARMUP_N = 5.0, 20
#: Seconds a round's ticks may take before the run stops as hung.
JOIN_TIMEOUT = 120.0
S = State
#: Every job's history at the end, and the steps that start a BigQuery job.
CHAIN = (S.INIT, S.PARSING, S.POST_PROCESSING, *STANDARD_PIPELINE, S.COMPLETE)
BQ_STEPS = tuple(s for s in STANDARD_PIPELINE if STEPS[s].kind != "delete")
#: A job's actions: the move into loading, start + wait + collect per BigQuery step, the delete.
ACTIONS_PER_JOB = 1 + 3 * len(BQ_STEPS) + 1


def verify(client: Any, keys: Sequence[str], warehouse: CountingWarehouse) -> h.Report:
    """Read every job back (uncounted): complete through the whole chain, lease released;
    each BigQuery step started once, one delete."""
    complete = chain_ok = 0
    for record in JobStore(client).stream_all():
        complete += record.status.state is S.COMPLETE
        chain = tuple(e.state for e in record.status.history)
        chain_ok += chain == CHAIN and record.lease_owner == "" and record.step_job == ""
    v = {"complete": complete, "chain_ok": chain_ok, **warehouse.check(keys, BQ_STEPS)}
    twice, missed = v["ids_started_twice"], v["job_steps_not_started_once"]
    ok = complete == chain_ok == len(keys) and twice == missed == v["jobs_not_deleted_once"] == 0
    return v | {"ok": ok}


def label(s: h.Report) -> str:
    """What a tick did, as ``start ×100``, ``→copying ×100``, ``wait ×100``."""
    parts = [f"start ×{s['started']}"] * bool(s["started"])
    parts += [f"→{state} ×{n}" for state, n in s["moved"].items()]
    parts += [f"wait ×{s['waiting']}"] * bool(s["waiting"])
    if s["retrying"] or s["failed"]:
        parts.append(f"retry ×{s['retrying']}, failed ×{s['failed']}")
    return ", ".join(parts) or "nothing"


class Setup:
    """A fresh project holding N jobs in ``postProcessing``, a clock, a stub, processors."""

    def __init__(self, run: h.Run, n: int, batch: int, processors: int) -> None:
        self.client, self.n, self.batch = run.firestore(), n, batch
        added = utcnow().replace(microsecond=0) - timedelta(hours=1)
        records = [post_processing_record(bench_job(i), added) for i in range(n)]
        self.keys, store = [r.key for r in records], JobStore(self.client)
        self.load_seconds = load(store, records)
        if store.count(JobFilter(datatype=ANNOTATION)):
            raise RuntimeError("the project was not empty")
        self.project, self.clock = self.client.project, FakeClock(added + timedelta(minutes=5))
        self.warehouse, policy = CountingWarehouse(), PostProcessPolicy(batch, poll=timedelta(0))
        trackers = [Tracker(JobStore(self.client), clock=self.clock) for _ in range(processors)]
        self.processors = [
            PostProcessor(t, self.warehouse, policy, clock=self.clock) for t in trackers
        ]

    def round(self, number: int) -> tuple[float, list[h.Report], list[str]]:
        """Tick every processor at once, a thread each behind a barrier: the round's time in
        ms, the ticks' samples, and errors (a tick that raised, or one still running)."""
        at_once, errors = len(self.processors), list[str]()
        outcome: list[h.Report | None] = [None] * at_once
        barrier = threading.Barrier(at_once)

        def tick(i: int) -> None:
            try:
                barrier.wait(timeout=30)
                outcome[i] = self.tick(i, number, "ab"[i] if at_once > 1 else "")
            except Exception as exc:  # noqa: BLE001 - recorded and reported
                errors.append(f"tick {'ab'[i]} of round {number}: {exc!r}")

        threads = [threading.Thread(target=tick, args=(i,), daemon=True) for i in range(at_once)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=JOIN_TIMEOUT)
        if any(t.is_alive() for t in threads):
            errors.append(f"round {number}: a tick did not finish in {JOIN_TIMEOUT:g} s")
        return (time.perf_counter() - t0) * 1000, [s for s in outcome if s is not None], errors

    def tick(self, i: int, number: int, thread: str = "") -> h.Report:
        """Tick processor ``i`` once: what it did, its time, reads and writes."""
        stats = self.processors[i].tracker.store.stats
        r0, w0, t0 = stats.reads, stats.writes, time.perf_counter()
        summary = self.processors[i].tick()
        ms, kinds = (time.perf_counter() - t0) * 1000, ("started", "waiting", "retrying", "failed")
        sample: h.Report = {"tick": number, "ms": ms}
        sample["acted"] = sum(len(summary[k]) for k in (*kinds, "moved"))
        sample |= {"skipped": summary["skipped"], "started": len(summary["started"])}
        sample |= {"moved": dict(Counter(summary["moved"].values()))}
        sample |= {k: len(summary[k]) for k in kinds[1:]}
        return sample | {"reads": stats.reads - r0, "writes": stats.writes - w0, "thread": thread}


def completed(samples: Sequence[h.Report]) -> int:
    """Jobs the ticks moved to ``complete``."""
    return sum(s["moved"].get(S.COMPLETE.value, 0) for s in samples)


def run_ticks(run: h.Run, n: int, batch: int, max_seconds: float, at_once: int = 1) -> h.Report:
    """Carry N fresh jobs to complete in rounds of ``at_once`` ticks (one thread and processor
    each, a barrier), the clock moved between rounds; then one idle tick; verify the jobs.
    A tick that raises or hangs stops the run, as do ``max_seconds`` and 3 × 14 + 20 rounds."""
    setup, start = Setup(run, n, batch, at_once), time.perf_counter()
    samples: list[h.Report] = []
    round_ms: list[float] = []
    for number in range(1, 3 * ACTIONS_PER_JOB + 21):
        ms, ticked, errors = setup.round(number)
        round_ms, samples = [*round_ms, ms], samples + ticked
        setup.clock.advance(seconds=ADVANCE_SECONDS)
        if completed(samples) >= n or errors or time.perf_counter() - start >= max_seconds:
            break
    wall = time.perf_counter() - start
    stats = [p.tracker.store.stats for p in setup.processors]
    reads, writes = sum(s.reads for s in stats), sum(s.writes for s in stats)
    done = completed(samples) == n
    idle = setup.tick(0, 0) if done else {"ms": math.nan, "reads": 0}  # nothing left to do
    working, acted = [s for s in samples if s["acted"]], sum(s["acted"] for s in samples)
    ticks = h.latencies([s["ms"] / 1000 for s in samples])
    rounds = h.latencies([ms / 1000 for ms in round_ms])
    tick_seconds = sum(s["ms"] for s in samples) / 1000
    per_action = (lambda total: total / acted) if acted else (lambda total: math.nan)
    result = {"n": n, "batch": batch, "project": setup.project, "load_seconds": setup.load_seconds}
    result |= {"ticks": len(samples), "min_ticks": ACTIONS_PER_JOB, "rounds": len(round_ms)}
    result |= {"wall_seconds": wall, "stopped_early": not done, "errors": errors}
    result |= {"tick_p50_ms": ticks["p50_ms"], "tick_max_ms": ticks["max_ms"]}
    result |= {"tick_mean_ms": ticks["mean_ms"], "round_p50_ms": rounds["p50_ms"]}
    result |= {"round_max_ms": rounds["max_ms"], "acted_total": acted}
    result |= {"expected_actions": ACTIONS_PER_JOB * n}
    result |= {"acted_p50": statistics.median([s["acted"] for s in samples] or [0])}
    result |= {"acted_max": max((s["acted"] for s in samples), default=0)}
    result |= {"skipped_total": sum(s["skipped"] for s in samples)}
    result |= {"ms_per_action": per_action(tick_seconds * 1000)}
    result |= {"reads_per_job_tick": per_action(reads), "writes_per_job_tick": per_action(writes)}
    for what in ("reads", "writes"):
        worst = max((s[what] / s["acted"] for s in working), default=math.nan)
        result[f"{what}_per_job_tick_max"] = worst
    result |= {"reads_per_job_chain": reads / n, "writes_per_job_chain": writes / n}
    result |= {"idle_tick_ms": idle["ms"], "idle_tick_reads": idle["reads"]}
    result["verification"] = verify(setup.client, setup.keys, setup.warehouse)
    # Jobs carried to complete per hour of tick time.
    result["jobs_per_hour"] = 3600 * n / tick_seconds if done else math.nan
    return result | {"sequential_wall_seconds": None, "samples": samples}


def measure(args: Any, run: h.Run) -> h.Report:
    """A warm-up run, every series, then the overlap runs."""
    h.progress(f"warm-up: N = {WARMUP_N}, not reported …")
    run_ticks(run, WARMUP_N, WARMUP_N, args.max_seconds)
    series, overlap = [], []
    for n in args.sizes:
        for batch in sorted({n, DEFAULT_BATCH}):
            h.progress(f"N = {n:,}, batch = {batch:,}: one tick at a time …")
            series.append(run_ticks(run, n, batch, args.max_seconds))
    for batch in sorted({args.overlap_n, DEFAULT_BATCH}) if args.overlap_n else []:
        h.progress(f"N = {args.overlap_n:,}, batch = {batch}: two overlapping ticks …")
        o = run_ticks(run, args.overlap_n, batch, args.max_seconds, at_once=2)
        same = (s["wall_seconds"] for s in series if s["n"] == o["n"] and s["batch"] == batch)
        o["sequential_wall_seconds"] = next(same, None)
        overlap.append(o)
    largest = max((s for s in series if s["batch"] >= s["n"]), key=lambda s: s["n"], default=None)
    config = {"batches": f"N and {DEFAULT_BATCH}", "poll_seconds": 0}
    config |= {"advance_seconds": ADVANCE_SECONDS}
    config |= {"actions_per_job": ACTIONS_PER_JOB, "warmup_n": WARMUP_N}
    detail = largest and {k: largest[k] for k in ("n", "batch", "samples")}
    return {"config": config, "series": series, "tick_detail": detail, "overlap": overlap}


def render(report: h.Report) -> str:
    def ok(r: h.Report) -> str:
        return "yes" if r["verification"]["ok"] else "**no**"

    def per_job(what: str) -> Any:
        return lambda s: h.fmt(s[what] / s["acted"], 2) if s["acted"] else "–"

    lines = h.heading("Post-processing tick benchmark", report["machine"])
    lines += h.section(
        "## 1. One tick at a time, until all N jobs are complete",
        report["series"],
        ">N@n:, | batch@batch:, | ticks (min)@ticks | wall s@wall_seconds:2 | "
        "tick p50 ms@tick_p50_ms:1 | tick max ms@tick_max_ms:1 | jobs/tick p50@acted_p50:0 | "
        "jobs/tick max@acted_max:, | ms/action@ms_per_action:2 | "
        "reads/job/tick (max)@reads_per_job_tick&reads_per_job_tick_max:2 | "
        "writes/job/tick (max)@writes_per_job_tick&writes_per_job_tick_max:2 | "
        "reads/job, chain@reads_per_job_chain:1 | "
        "writes/job, chain@writes_per_job_chain:1 | idle tick ms@idle_tick_ms:1 | "
        "jobs/hour@jobs_per_hour:0 | ^all complete, each step once@ok",
        ticks=lambda r: (
            f"{r['ticks']:,} ({r['min_ticks']:,})" + " (stopped at limit)" * r["stopped_early"]
        ),
        ok=ok,
    )
    if detail := report.get("tick_detail"):
        lines += h.section(
            f"## 2. Tick by tick: N = {detail['n']:,}, batch = {detail['batch']:,}",
            detail["samples"],
            ">tick@tick | <what it did@label | ms@ms:1 | jobs@acted:, | reads@reads:, | "
            "writes@writes:, | reads/job@rpj | writes/job@wpj",
            label=label,
            rpj=per_job("reads"),
            wpj=per_job("writes"),
        )
    if report["overlap"]:
        lines += h.section(
            "## 3. Two overlapping ticks (two threads), until all N jobs are complete",
            report["overlap"],
            ">N@n:, | batch@batch:, | rounds@rounds | wall s@wall_seconds:2 | "
            "sequential s@sequential_wall_seconds:2 | round p50 ms@round_p50_ms:1 | "
            "round max ms@round_max_ms:1 | actions (expected)@acted_total&expected_actions | "
            "skipped@skipped_total | BigQuery starts (expected)@"
            "verification.starts&verification.expected_starts | "
            "ids started twice@verification.ids_started_twice | "
            "job×step not started once@verification.job_steps_not_started_once | "
            "deletes (jobs not deleted once)@verification.deletes&verification.jobs_not_deleted_once"
            " | reads/job@reads_per_job_chain:1 | "
            "writes/job@writes_per_job_chain:1 | ^all complete, each step once@ok",
            rounds=lambda r: f"{r['rounds']}" + " (stopped)" * r["stopped_early"],
            ok=ok,
        )
    runs = [*report["series"], *report["overlap"]]
    lines += [f"Error (N = {r['n']}, batch = {r['batch']}): {e}" for r in runs for e in r["errors"]]
    return "\n".join(lines)


def failure(report: h.Report) -> str | None:
    """Whether a run did not carry every job to complete with each step started once."""
    runs = [*report["series"], *report["overlap"]]
    if all(r["verification"]["ok"] and not r["stopped_early"] for r in runs):
        return None
    return "a run did not carry every job to complete with each step started once"


def main(argv: list[str] | None = None) -> int:
    options = [
        (
            "--sizes",
            h.int_list(MAX_SIZE),
            h.Quick([10, 100, 1000], [10, 100]),
            "job counts",
        ),
        ("--overlap-n", h.number(int, 0, MAX_SIZE), 100, "jobs of two overlapping ticks; 0: none"),
        ("--max-seconds", h.number(float), 150.0, "time limit of each run"),
    ]
    args = h.arguments("postprocess", __doc__, argv, "sizes 10,100, for a smoke run", *options)
    return h.run_measured(args, measure, render, "postprocess-", failure)


if __name__ == "__main__":
    raise SystemExit(main())
