"""Post-processing tick benchmark: tick time and Firestore operations per job per tick.

Jobs in ``postProcessing`` are carried to ``complete`` by ticks on a Firestore
emulator this benchmark starts. BigQuery is stood in for at the client
boundary, for this measurement only: each started step reports RUNNING once,
then DONE, so ticks start, wait for and collect every step. Prints Markdown
tables and writes ``bench/results/postprocess.json``.

    python -m bench.postprocess [--sizes 10,100,1000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.hot_path import emulator_host, machine_facts, percentile

RESULTS = Path(__file__).resolve().parent / "results"
LOG = RESULTS / "postprocess-firestore-emulator.log"


@dataclass
class StubWarehouse:
    """BigQuery jobs by id: RUNNING at the first look, DONE after; counts starts per id."""

    starts: Counter[str] = field(default_factory=Counter)
    looks: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, step: Any, job: Any, job_id: str) -> None:
        with self.lock:
            self.starts[job_id] += 1

    def result(self, job_id: str) -> Any:
        from shared.warehouse import StepOutcome, StepResult

        with self.lock:
            self.looks[job_id] += 1
            done = self.looks[job_id] > 1
        return StepResult(StepOutcome.DONE if done else StepOutcome.RUNNING, "stub: 10 rows")

    def delete_partition(self, job: Any) -> Any:
        from shared.warehouse import StepOutcome, StepResult

        return StepResult(StepOutcome.DONE, "stub: partition deleted")


def make_jobs(store: Any, n: int, now: Any) -> list[str]:
    """Put ``n`` jobs in ``postProcessing`` (with a join dataset, no annotation job)."""
    from shared.model import Datasets, Job, State, StateInfo
    from shared.store import JobRecord

    base = now.date() - timedelta(days=n + 2)
    records = []
    for i in range(n):
        job = Job("archive-bench", "ndt", "ndt7", base + timedelta(days=i),
                  datasets=Datasets("tmp_ndt", "raw_ndt", "ndt"))
        record = JobRecord.new(job, now - timedelta(hours=1))
        for state in (State.PARSING, State.POST_PROCESSING):
            record.status.history.append(StateInfo(state, now, now))
        records.append(record)
    for start in range(0, n, 2000):
        store.create_missing(records[start:start + 2000])
    return [r.key for r in records]


def run_size(project_host: str, n: int, batch: int) -> dict[str, Any]:
    """Carry ``n`` jobs to complete with ticks of ``batch``; return the figures."""
    from google.cloud import firestore

    from shared.model import State, utcnow
    from shared.postprocess import PostProcessor, PostProcessPolicy
    from shared.store import JobStore
    from shared.tracker import Tracker

    clock_now = [utcnow()]
    store = JobStore(firestore.Client(project=f"demo-bench-{uuid.uuid4().hex[:12]}"))
    tracker = Tracker(store, clock=lambda: clock_now[0])
    keys = make_jobs(store, n, clock_now[0])
    warehouse = StubWarehouse()
    processor = PostProcessor(tracker, warehouse,
                              PostProcessPolicy(batch=batch, poll=timedelta(0)),
                              clock=lambda: clock_now[0])
    durations, acted, reads, writes = [], [], [], []
    started = time.monotonic()
    for _ in range(20 * (n // batch + 1) * 8):
        r0, w0 = store.stats.reads, store.stats.writes
        t0 = time.perf_counter()
        summary = processor.tick()
        durations.append(time.perf_counter() - t0)
        done = sum(len(summary[k]) for k in ("started", "moved", "waiting", "retrying", "failed"))
        acted.append(done)
        reads.append(store.stats.reads - r0)
        writes.append(store.stats.writes - w0)
        clock_now[0] += timedelta(seconds=5)
        if tracker.count(state=State.COMPLETE) == n:
            break
    wall = time.monotonic() - started
    complete = tracker.count(state=State.COMPLETE)
    per_job_tick = [(r / a, w / a) for r, w, a in zip(reads, writes, acted, strict=True) if a]
    ordered = sorted(durations)
    return {
        "jobs": n, "batch": batch, "ticks": len(durations), "complete": complete,
        "wall_s": round(wall, 2),
        "tick_ms_p50": round(statistics.median(durations) * 1000, 1),
        "tick_ms_max": round(ordered[-1] * 1000, 1),
        "tick_ms_p95": round(percentile(ordered, 95) * 1000, 1),
        "reads_per_job_tick": round(statistics.mean(r for r, _ in per_job_tick), 2),
        "writes_per_job_tick": round(statistics.mean(w for _, w in per_job_tick), 2),
        "reads_per_job_total": round(sum(reads) / n, 1),
        "writes_per_job_total": round(sum(writes) / n, 1),
        "bigquery_starts_per_job": round(sum(warehouse.starts.values()) / n, 2),
        "max_starts_of_one_id": max(warehouse.starts.values(), default=0),
        "keys": len(keys),
    }


def run_overlap(n: int) -> dict[str, Any]:
    """Two ticks at once, repeatedly, on ``n`` jobs: time, and starts per BigQuery job id."""
    from google.cloud import firestore

    from shared.model import State, utcnow
    from shared.postprocess import PostProcessor, PostProcessPolicy
    from shared.store import JobStore
    from shared.tracker import Tracker

    clock_now = [utcnow()]
    store = JobStore(firestore.Client(project=f"demo-bench-{uuid.uuid4().hex[:12]}"))
    tracker = Tracker(store, clock=lambda: clock_now[0])
    make_jobs(store, n, clock_now[0])
    warehouse = StubWarehouse()
    processors = [PostProcessor(tracker, warehouse, PostProcessPolicy(poll=timedelta(0)),
                                clock=lambda: clock_now[0]) for _ in range(2)]
    started = time.monotonic()
    rounds = 0
    for rounds in range(1, 400):
        threads = [threading.Thread(target=p.tick) for p in processors]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        clock_now[0] += timedelta(seconds=5)
        if tracker.count(state=State.COMPLETE) == n:
            break
    return {"jobs": n, "rounds": rounds, "wall_s": round(time.monotonic() - started, 2),
            "complete": tracker.count(state=State.COMPLETE),
            "max_starts_of_one_id": max(warehouse.starts.values(), default=0),
            "bigquery_jobs_per_job": round(len(warehouse.starts) / n, 2)}


def render(report: dict[str, Any]) -> str:
    """The report as Markdown."""
    m = report["machine"]
    lines = [
        "# Post-processing tick benchmark", "",
        f"- Machine: {m['cpu_count']} CPUs, `{m['cpu_model']}`, {m['memory_gib']} GiB; "
        f"{m['platform']}; {m['python']}",
        f"- Firestore emulator at {m['emulator_host']}; BigQuery stubbed at the client boundary "
        "(each step RUNNING once, then DONE); the job chain postProcessing → loading → "
        "deduplicating → copying → deleting → joining → complete (4 BigQuery jobs + 1 delete).",
        "",
        "| jobs | batch | ticks | all complete | wall s | tick p50 ms | tick p95 ms | tick max ms "
        "| reads/job/tick | writes/job/tick | reads/job, whole chain | writes/job, whole chain "
        "| BigQuery starts/job |",
        "|--:|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in report["sizes"]:
        lines.append(
            f"| {r['jobs']:,} | {r['batch']} | {r['ticks']} | "
            f"{'yes' if r['complete'] == r['jobs'] else 'no'} | {r['wall_s']} | {r['tick_ms_p50']} | "
            f"{r['tick_ms_p95']} | {r['tick_ms_max']} | {r['reads_per_job_tick']} | "
            f"{r['writes_per_job_tick']} | {r['reads_per_job_total']} | "
            f"{r['writes_per_job_total']} | {r['bigquery_starts_per_job']} |")
    o = report["overlap"]
    lines += ["", f"Two overlapping ticks, {o['jobs']} jobs: {o['rounds']} rounds, {o['wall_s']} s, "
              f"all complete: {'yes' if o['complete'] == o['jobs'] else 'no'}, "
              f"BigQuery job ids per job {o['bigquery_jobs_per_job']}, most starts of one id "
              f"{o['max_starts_of_one_id']} (a repeated start of one id is a no-op in BigQuery).",
              "", f"Run time: {report['run_s']} s. JSON: bench/results/postprocess.json"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000", help="job counts (default %(default)s)")
    parser.add_argument("--batch", type=int, default=50, help="jobs per tick (default 50)")
    parser.add_argument("--quick", action="store_true", help="sizes 10,100")
    args = parser.parse_args(argv)
    sizes = [10, 100] if args.quick else [int(x) for x in args.sizes.split(",")]
    began = time.monotonic()
    RESULTS.mkdir(parents=True, exist_ok=True)
    with emulator_host(LOG) as (host, own):
        import os

        os.environ["FIRESTORE_EMULATOR_HOST"] = host
        report: dict[str, Any] = {"machine": machine_facts(host, own is not None)}
        report["sizes"] = []
        for n in sizes:
            print(f"{n} jobs …", file=sys.stderr, flush=True)
            report["sizes"].append(run_size(host, n, args.batch))
        print("two overlapping ticks …", file=sys.stderr, flush=True)
        report["overlap"] = run_overlap(min(100, max(sizes)))
    report["run_s"] = round(time.monotonic() - began, 1)
    (RESULTS / "postprocess.json").write_text(json.dumps(report, indent=2, default=str))
    print(render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
