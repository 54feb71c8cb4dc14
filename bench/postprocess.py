"""Post-processing tick benchmark: ticks that carry N jobs from ``postProcessing`` to ``complete``.

``python -m bench.postprocess`` starts a Firestore emulator (unless
``FIRESTORE_EMULATOR_HOST`` points at a running one on this machine, as
:mod:`bench.hot_path` does) and, for N = 10, 100 and 1,000 jobs, each run on
a fresh ``demo-bench-<uuid>`` project:

1. puts N jobs in ``postProcessing`` in one go (records built in-process with
   ``JobRecord.new``, history ``init`` → ``parsing`` → ``postProcessing``, then
   ``JobStore.create_missing``; not measured). Every job has a join dataset and
   no ``annotation2`` job exists, so the join never waits;
2. runs :meth:`shared.postprocess.PostProcessor.tick` in-process, one tick
   after another, with ``poll=0`` and a movable clock advanced a few seconds
   between ticks, until every job is ``complete``: once with ``batch=N`` (a
   tick sees every job) and once with the default ``batch=50``. BigQuery is
   replaced at the client boundary by a stub that keeps jobs by id and answers
   each started step RUNNING on its first ``result`` call and DONE on the
   second, so the chain ``postProcessing`` → ``loading`` → ``deduplicating`` →
   ``copying`` → ``deleting`` → ``joining`` → ``complete`` costs every job 14
   actions (a tick acts on a job at most once): the move into ``loading``,
   start, wait and collect for each of the four BigQuery steps, and one
   synchronous delete. Measured per tick: duration, jobs acted on, Firestore
   document reads and writes (``JobStore.stats``); for the whole run: ticks,
   wall time, reads and writes per job;
3. on N = 100, two overlapping ticks at a time (two threads, two processors,
   one barrier per round) until every job is complete: the total time, and a
   check that every job's every BigQuery step was started exactly once (the
   stub counts starts per job id and per job and step).

The tick is measured in-process, as the Cloud Function runs it, without HTTP.
It prints Markdown tables and writes the figures as JSON to
``bench/results/postprocess.json``. Everything it talks to is on 127.0.0.1;
the emulator it started is stopped at the end, also on error.
"""

from __future__ import annotations

import argparse
import math
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.hot_path import (  # noqa: E402
    RESULTS_DIR,
    Latencies,
    _f,
    _progress,
    bench_job,
    machine_facts,
    publish,
    run_on_emulator,
    size_list,
    wipe_external,
)
from shared.model import Job, JobFilter, State, StateInfo, utcnow  # noqa: E402
from shared.warehouse import StepOutcome, StepResult, step_of  # noqa: E402

RESULTS_JSON = RESULTS_DIR / "postprocess.json"
EMULATOR_LOG = RESULTS_DIR / "postprocess-firestore-emulator.log"

DEFAULT_SIZES = (10, 100, 1000)
QUICK_SIZES = (10, 100)
#: Largest N accepted on the command line.
MAX_SIZE = 5000
#: The default batch of :class:`shared.postprocess.PostProcessPolicy`.
DEFAULT_BATCH = 50
#: Seconds the clock moves between ticks.
ADVANCE_SECONDS = 5.0
#: Jobs of the unreported warm-up run that precedes the measurements.
WARMUP_N = 20

S = State
#: Every job's history at the end, in order.
CHAIN: tuple[State, ...] = (S.INIT, S.PARSING, S.POST_PROCESSING, S.LOADING, S.DEDUPLICATING,
                            S.COPYING, S.DELETING, S.JOINING, S.COMPLETE)
#: The steps that start a BigQuery job (``deleting`` is one synchronous call).
BQ_STEPS: tuple[State, ...] = (S.LOADING, S.DEDUPLICATING, S.COPYING, S.JOINING)
#: Actions one job takes from postProcessing to complete with the stub: the move into
#: loading, start + wait + collect for each BigQuery step, and the delete.
ACTIONS_PER_JOB = 1 + 3 * len(BQ_STEPS) + 1


# --------------------------------------------------------------------------- stand-ins


class MovableClock:
    """A clock that stands still until moved; call it for the current time."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        """Move the clock forward by ``seconds``; return the new time."""
        self.now += timedelta(seconds=seconds)
        return self.now


@dataclass
class StubWarehouse:
    """BigQuery stubbed at the client boundary, for this measurement only.

    Jobs are kept by id, as BigQuery does. Each started job answers RUNNING to
    its first ``result`` call and DONE to the second (and later) ones; an id
    never started answers RETRY ("not found"), as :class:`shared.warehouse.Warehouse`
    does. Starts are counted per job id and per (job key, step); deletes per key.
    """

    starts: Counter[str] = field(default_factory=Counter)
    step_starts: Counter[tuple[str, str]] = field(default_factory=Counter)
    results: Counter[str] = field(default_factory=Counter)
    deletes: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, step: State, job: Job, job_id: str) -> None:
        """Record a start of ``job_id`` (in BigQuery a second start of an id starts nothing)."""
        with self.lock:
            self.starts[job_id] += 1
            self.step_starts[(job.key(), State(step).value)] += 1

    def result(self, job_id: str) -> StepResult:
        """RUNNING on the first call for a started id, DONE from the second on."""
        with self.lock:
            if job_id not in self.starts:
                return StepResult(StepOutcome.RETRY, f"job {job_id} not found")
            self.results[job_id] += 1
            calls = self.results[job_id]
        step = step_of(job_id)
        label = step.label if step else "BigQuery"
        if calls == 1:
            return StepResult(StepOutcome.RUNNING, f"{label} job {job_id} running")
        return StepResult(StepOutcome.DONE, f"{label} took 1s, 10 rows")

    def delete_partition(self, job: Job) -> StepResult:
        """Count the delete; always DONE."""
        with self.lock:
            self.deletes[job.key()] += 1
        return StepResult(StepOutcome.DONE, f"Successfully deleted partition of {job.key()}")

    def check(self, keys: Sequence[str]) -> dict[str, int]:
        """Compare the starts and deletes with one per job and step.

        Returns the BigQuery starts (and how many were expected), the ids
        started more than once, the (job, step) pairs not started exactly once,
        the deletes and the jobs not deleted exactly once.
        """
        with self.lock:
            pairs = [(k, s.value) for k in keys for s in BQ_STEPS]
            return {
                "starts": sum(self.starts.values()),
                "expected_starts": len(pairs),
                "ids_started_twice": sum(1 for c in self.starts.values() if c > 1),
                "job_steps_not_started_once": sum(1 for p in pairs if self.step_starts[p] != 1),
                "deletes": sum(self.deletes.values()),
                "jobs_not_deleted_once": sum(1 for k in keys if self.deletes[k] != 1),
            }


# --------------------------------------------------------------------------- results


@dataclass
class TickSample:
    """One tick: its time, what it did, and the Firestore documents it read and wrote."""

    tick: int
    ms: float
    acted: int
    skipped: int
    started: int
    moved: dict[str, int]
    waiting: int
    retrying: int
    failed: int
    reads: int
    writes: int
    thread: str = ""

    @property
    def label(self) -> str:
        """What the tick did, as ``start ×100``, ``wait ×100``, ``→copying ×100``."""
        parts = [f"→{state} ×{n}" for state, n in self.moved.items()]
        if self.started:
            parts.insert(0, f"start ×{self.started}")
        if self.waiting:
            parts.append(f"wait ×{self.waiting}")
        if self.retrying or self.failed:
            parts.append(f"retry ×{self.retrying}, failed ×{self.failed}")
        return ", ".join(parts) or "nothing"


@dataclass
class Verification:
    """The jobs at the end, read back (not counted), and the stub's counts."""

    complete: int
    chain_ok: int
    starts: int
    expected_starts: int
    ids_started_twice: int
    job_steps_not_started_once: int
    deletes: int
    jobs_not_deleted_once: int

    @property
    def ok(self) -> bool:
        """Every job complete through the whole chain, each step started and deleted once."""
        return (self.complete == self.chain_ok == self.expected_starts // len(BQ_STEPS)
                and self.ids_started_twice == self.job_steps_not_started_once == 0
                and self.jobs_not_deleted_once == 0)


@dataclass
class SeriesResult:
    """Ticks, one at a time, carrying N jobs to complete at one batch size."""

    n: int
    batch: int
    project: str
    load_seconds: float
    ticks: int
    min_ticks: int
    wall_seconds: float
    stopped_early: bool
    tick_p50_ms: float
    tick_max_ms: float
    tick_mean_ms: float
    acted_total: int
    acted_p50: float
    acted_max: int
    skipped_total: int
    ms_per_action: float
    reads_per_job_tick: float
    writes_per_job_tick: float
    reads_per_job_tick_max: float
    writes_per_job_tick_max: float
    reads_per_job_chain: float
    writes_per_job_chain: float
    idle_tick_ms: float
    idle_tick_reads: int
    verification: Verification
    #: Jobs carried to complete per hour of tick time (:func:`jobs_per_hour`).
    jobs_per_hour: float = math.nan
    samples: list[TickSample] = field(default_factory=list)


@dataclass
class OverlapResult:
    """Two ticks at a time (two threads) carrying N jobs to complete."""

    n: int
    batch: int
    project: str
    rounds: int
    wall_seconds: float
    stopped_early: bool
    round_p50_ms: float
    round_max_ms: float
    tick_p50_ms: float
    tick_max_ms: float
    acted_total: int
    expected_actions: int
    skipped_total: int
    errors: list[str]
    reads_per_job_chain: float
    writes_per_job_chain: float
    verification: Verification
    sequential_wall_seconds: float | None = None
    samples: list[TickSample] = field(default_factory=list)


# --------------------------------------------------------------------------- workload


def post_processing_record(index: int, added: datetime) -> Any:
    """Return benchmark job ``index`` as a record in ``postProcessing``.

    The job is :func:`bench.hot_path.bench_job` (``ndt``/``ndt7``, join dataset
    ``ndt``, one date per index); its history is init → parsing → postProcessing.
    """
    from shared.model import JobRecord

    record = JobRecord.new(bench_job(index), added)
    parsing, parsed = added + timedelta(seconds=10), added + timedelta(seconds=70)
    record.status.history.append(StateInfo(S.PARSING, parsing, parsed, "parsed 40 archives"))
    record.status.history.append(StateInfo(S.POST_PROCESSING, parsed, parsed))
    record.status.heartbeat_time = parsed
    record.status.update_count = 2
    record.last_update = parsed
    return record


def load_jobs(client: Any, n: int, added: datetime) -> tuple[list[str], float]:
    """Create jobs ``0 … n-1`` in ``postProcessing`` (uncounted store); return keys and seconds.

    Refuses a project that already holds any of them, or any ``annotation2``
    job (the joins would wait for it).
    """
    from shared.store import JobStore

    store = JobStore(client)
    start = time.perf_counter()
    records = [post_processing_record(i, added) for i in range(n)]
    created = store.create_missing(records)
    seconds = time.perf_counter() - start
    if len(created) != n:
        raise RuntimeError(f"created {len(created)} jobs instead of {n}: the project was not empty")
    if store.count(JobFilter(datatype="annotation2")):
        raise RuntimeError("an annotation2 job exists: the joins would wait for it")
    return [r.key for r in records], seconds


def verify(client: Any, keys: Sequence[str], warehouse: StubWarehouse) -> Verification:
    """Read every job back (uncounted store); check its history and the stub's counts."""
    from shared.store import JobStore

    complete = chain_ok = 0
    for record in JobStore(client).stream_all():
        states = tuple(e.state for e in record.status.history)
        complete += record.status.state is S.COMPLETE
        chain_ok += (states == CHAIN and record.lease_owner == "" and record.step_job == "")
    return Verification(complete=complete, chain_ok=chain_ok, **warehouse.check(keys))


def sample(index: int, summary: dict[str, Any], seconds: float, reads: int, writes: int,
           thread: str = "") -> TickSample:
    """Summarise one tick from its JSON summary and its store's counts."""
    acted = (len(summary["started"]) + len(summary["moved"]) + len(summary["waiting"])
             + len(summary["retrying"]) + len(summary["failed"]))
    return TickSample(
        tick=index, ms=seconds * 1000, acted=acted, skipped=summary["skipped"],
        started=len(summary["started"]), moved=dict(Counter(summary["moved"].values())),
        waiting=len(summary["waiting"]), retrying=len(summary["retrying"]),
        failed=len(summary["failed"]), reads=reads, writes=writes, thread=thread,
    )


def completed_in(s: TickSample) -> int:
    """How many jobs the tick moved to ``complete``."""
    return s.moved.get(S.COMPLETE.value, 0)


def min_ticks(n: int, batch: int) -> int:
    """The fewest ticks that can carry N jobs to complete: a tick visits every leasable job
    once, reading pages of ``batch``, while its time allows (here it always does)."""
    return ACTIONS_PER_JOB if n else 0


def jobs_per_hour(n: int, tick_seconds: float) -> float:
    """Jobs carried to complete per hour of tick time: N ÷ the sum of the ticks' durations."""
    return 3600 * n / tick_seconds if tick_seconds > 0 else math.nan


def median(values: Sequence[float]) -> float:
    """The median of ``values`` (NaN if empty)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


# --------------------------------------------------------------------------- runs


class Projects:
    """Hands out fresh ``demo-bench-<uuid>`` projects and remembers them (to wipe them)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def new(self) -> str:
        """Return a new project name."""
        self.names.append(f"demo-bench-{uuid.uuid4().hex[:12]}")
        return self.names[-1]


def fresh_jobs(projects: Projects, n: int) -> tuple[Any, str, list[str], float, MovableClock]:
    """Make a fresh project holding N jobs in ``postProcessing``; return its client and a clock."""
    from google.cloud import firestore

    project = projects.new()
    client = firestore.Client(project=project)
    added = utcnow().replace(microsecond=0) - timedelta(hours=1)
    keys, load_seconds = load_jobs(client, n, added)
    return client, project, keys, load_seconds, MovableClock(added + timedelta(minutes=5))


def make_processor(client: Any, clock: MovableClock, warehouse: StubWarehouse, batch: int
                   ) -> Any:
    """Return a post-processor on its own counted store: ``batch``, ``poll=0``, other defaults."""
    from shared.postprocess import PostProcessor, PostProcessPolicy
    from shared.store import JobStore
    from shared.tracker import Tracker

    policy = PostProcessPolicy(batch=batch, poll=timedelta(0))
    return PostProcessor(Tracker(JobStore(client), clock=clock), warehouse, policy, clock=clock)


def run_series(projects: Projects, n: int, batch: int, max_seconds: float) -> SeriesResult:
    """Carry N fresh jobs to complete with one tick at a time at ``batch``; verify them.

    Stops at ``max_seconds`` or three times the fewest ticks possible (plus 20).
    """
    client, project, keys, load_seconds, clock = fresh_jobs(projects, n)
    warehouse = StubWarehouse()
    processor = make_processor(client, clock, warehouse, batch)
    stats = processor.tracker.store.stats

    samples: list[TickSample] = []
    completed, limit = 0, 3 * min_ticks(n, batch) + 20
    start = time.perf_counter()
    while completed < n and len(samples) < limit and time.perf_counter() - start < max_seconds:
        r0, w0 = stats.reads, stats.writes
        t0 = time.perf_counter()
        summary = processor.tick()
        seconds = time.perf_counter() - t0
        samples.append(sample(len(samples) + 1, summary, seconds, stats.reads - r0,
                              stats.writes - w0))
        completed += completed_in(samples[-1])
        clock.advance(ADVANCE_SECONDS)
    wall = time.perf_counter() - start
    reads, writes = stats.reads, stats.writes

    idle_ms, idle_reads = math.nan, 0
    if completed == n:  # one more tick with nothing left to do, as most scheduled ticks are
        r0 = stats.reads
        t0 = time.perf_counter()
        processor.tick()
        idle_ms, idle_reads = (time.perf_counter() - t0) * 1000, stats.reads - r0

    working = [s for s in samples if s.acted]
    durations = Latencies.of([s.ms / 1000 for s in samples])
    acted = sum(s.acted for s in samples)
    return SeriesResult(
        n=n, batch=batch, project=project, load_seconds=load_seconds, ticks=len(samples),
        min_ticks=min_ticks(n, batch), wall_seconds=wall, stopped_early=completed < n,
        tick_p50_ms=durations.p50_ms, tick_max_ms=durations.max_ms,
        tick_mean_ms=durations.mean_ms,
        acted_total=acted, acted_p50=median([s.acted for s in samples]),
        acted_max=max((s.acted for s in samples), default=0),
        skipped_total=sum(s.skipped for s in samples),
        ms_per_action=sum(s.ms for s in samples) / acted if acted else math.nan,
        reads_per_job_tick=reads / acted if acted else math.nan,
        writes_per_job_tick=writes / acted if acted else math.nan,
        reads_per_job_tick_max=max((s.reads / s.acted for s in working), default=math.nan),
        writes_per_job_tick_max=max((s.writes / s.acted for s in working), default=math.nan),
        reads_per_job_chain=reads / n, writes_per_job_chain=writes / n,
        idle_tick_ms=idle_ms, idle_tick_reads=idle_reads,
        verification=verify(client, keys, warehouse),
        jobs_per_hour=(jobs_per_hour(n, sum(s.ms for s in samples) / 1000)
                       if completed == n else math.nan),
        samples=samples,
    )


def run_overlap(projects: Projects, n: int, batch: int, max_seconds: float,
                join_timeout: float = 120.0) -> OverlapResult:
    """Carry N fresh jobs to complete with two ticks at a time (two threads); verify them.

    Each round starts both ticks together (a barrier), waits for both, then
    moves the clock. A tick that raises is recorded as an error and the run
    stops; so does one that does not finish within ``join_timeout`` seconds.
    """
    client, project, keys, _, clock = fresh_jobs(projects, n)
    warehouse = StubWarehouse()
    processors = [make_processor(client, clock, warehouse, batch) for _ in range(2)]

    samples: list[TickSample] = []
    round_ms: list[float] = []
    errors: list[str] = []
    completed, limit = 0, 3 * min_ticks(n, batch) + 20
    start = time.perf_counter()
    while (completed < n and not errors and len(round_ms) < limit
           and time.perf_counter() - start < max_seconds):
        number = len(round_ms) + 1
        barrier = threading.Barrier(2)
        outcome: list[TickSample | None] = [None, None]

        def run(i: int, number: int = number, barrier: threading.Barrier = barrier,
                outcome: list[TickSample | None] = outcome) -> None:
            stats = processors[i].tracker.store.stats
            try:
                barrier.wait(timeout=30)
                r0, w0 = stats.reads, stats.writes
                t0 = time.perf_counter()
                summary = processors[i].tick()
                seconds = time.perf_counter() - t0
                outcome[i] = sample(number, summary, seconds, stats.reads - r0,
                                    stats.writes - w0, thread="ab"[i])
            except Exception as exc:  # noqa: BLE001 - recorded and reported
                errors.append(f"tick {'ab'[i]} of round {number}: {exc!r}")

        threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(2)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=join_timeout)
        round_ms.append((time.perf_counter() - t0) * 1000)
        if any(t.is_alive() for t in threads):
            errors.append(f"round {number}: a tick did not finish in {join_timeout:g} s")
        for s in outcome:
            if s is not None:
                samples.append(s)
                completed += completed_in(s)
        clock.advance(ADVANCE_SECONDS)
    wall = time.perf_counter() - start

    reads = sum(p.tracker.store.stats.reads for p in processors)
    writes = sum(p.tracker.store.stats.writes for p in processors)
    rounds = Latencies.of([ms / 1000 for ms in round_ms])
    ticks = Latencies.of([s.ms / 1000 for s in samples])
    return OverlapResult(
        n=n, batch=batch, project=project, rounds=len(round_ms), wall_seconds=wall,
        stopped_early=completed < n, round_p50_ms=rounds.p50_ms, round_max_ms=rounds.max_ms,
        tick_p50_ms=ticks.p50_ms, tick_max_ms=ticks.max_ms,
        acted_total=sum(s.acted for s in samples), expected_actions=ACTIONS_PER_JOB * n,
        skipped_total=sum(s.skipped for s in samples), errors=errors,
        reads_per_job_chain=reads / n, writes_per_job_chain=writes / n,
        verification=verify(client, keys, warehouse), samples=samples,
    )


# --------------------------------------------------------------------------- output


def _ok(v: dict[str, Any]) -> str:
    return "yes" if Verification(**v).ok else "**no**"


def render(report: dict[str, Any]) -> str:
    """Return the report as Markdown."""
    m, cfg = report["machine"], report["config"]
    lines = [
        "# Post-processing tick benchmark",
        "",
        (f"- Machine: {m['cpu_count']} CPUs, model `{m['cpu_model'] or '?'}`"
         f" (platform.processor() = `{m['platform_processor'] or ''}`), "
         f"{m['memory_gib']} GiB, load average at start {m['loadavg_at_start']}; {m['platform']}"),
        f"- Python: {m['python']}; google-cloud-firestore {m.get('google_cloud_firestore', '?')}",
        (f"- Emulator: {m['emulator']} {m.get('emulator_version', '?')} at {m['emulator_host']}"
         f" ({m.get('emulator_jar', '?')}; {m.get('java', '?')})"),
        ("- Ticks run in-process (`PostProcessor.tick()`, no HTTP) against the emulator, which "
         "shares the machine's CPUs. BigQuery is a stub at the client boundary (each started "
         "step RUNNING on its first `result`, DONE on the second; the delete DONE at once), so "
         "the figures are the tracker's and Firestore's share of a tick only."),
        (f"- Policy: `PostProcessPolicy(batch=…, poll=0)`, other fields default (lease 5 min); "
         f"the clock moves {cfg['advance_seconds']:g} s between ticks; one fresh project per "
         f"run, after an unreported warm-up run of {cfg['warmup_n']} jobs. Each job takes "
         f"{ACTIONS_PER_JOB} actions, and a tick acts on a job at most once: postProcessing "
         "→ loading, then start, wait and collect for loading, deduplicating, copying and "
         "joining, and one delete. Every job has a join dataset and no "
         "`annotation2` job exists (the join does not wait)."),
        "",
        "## 1. One tick at a time, until all N jobs are complete",
        "",
        ("Ticks (min) = ticks taken (the fewest possible: 14, as a tick visits every leasable "
         "job once, reading pages of `batch`). Jobs/hour = N ÷ the sum of the tick durations × "
         "3,600: the tracker's and the emulator's share only (BigQuery is a stub). Reads and "
         "writes are Firestore documents counted by `JobStore.stats` during the ticks: per job "
         "per tick = the run's reads (writes) ÷ its job actions, in brackets the highest of one "
         "tick; per job, chain = the run's total ÷ N, postProcessing to complete. ms/action = "
         "sum of tick durations ÷ job actions. Idle tick = one more tick once all are complete "
         "(its query finds nothing). The last column checks every job's history (the whole "
         "chain, lease released) and the stub's counts (each BigQuery step started once, one "
         "delete)."),
        "",
        ("| N | batch | ticks (min) | wall s | tick p50 ms | tick max ms | jobs/tick p50 | "
         "jobs/tick max | ms/action | reads/job/tick (max) | writes/job/tick (max) | "
         "reads/job, chain | writes/job, chain | idle tick ms | jobs/hour | "
         "all complete, each step once |"),
        "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|:-:|",
    ]
    for r in report["series"]:
        mark = " (stopped at limit)" if r["stopped_early"] else ""
        lines.append(
            f"| {r['n']:,} | {r['batch']:,} | {r['ticks']:,} ({r['min_ticks']:,}){mark} | "
            f"{_f(r['wall_seconds'], 2)} | {_f(r['tick_p50_ms'])} | {_f(r['tick_max_ms'])} | "
            f"{_f(r['acted_p50'], 0)} | {r['acted_max']:,} | {_f(r['ms_per_action'], 2)} | "
            f"{_f(r['reads_per_job_tick'], 2)} ({_f(r['reads_per_job_tick_max'], 2)}) | "
            f"{_f(r['writes_per_job_tick'], 2)} ({_f(r['writes_per_job_tick_max'], 2)}) | "
            f"{_f(r['reads_per_job_chain'], 1)} | {_f(r['writes_per_job_chain'], 1)} | "
            f"{_f(r['idle_tick_ms'])} | {_f(r.get('jobs_per_hour', math.nan), 0)} | "
            f"{_ok(r['verification'])} |")
    if report["notes"]:
        lines += ["", *[f"- {note}" for note in report["notes"]]]

    detail = report.get("tick_detail")
    if detail:
        lines += [
            "",
            (f"## 2. Tick by tick: N = {detail['n']:,}, batch = {detail['batch']:,} "
             "(every tick sees every job, so each tick is one phase)"),
            "",
            "| tick | what it did | ms | jobs | reads | writes | reads/job | writes/job |",
            "|--:|---|--:|--:|--:|--:|--:|--:|",
        ]
        for s in detail["samples"]:
            t = TickSample(**s)
            rpj = _f(t.reads / t.acted, 2) if t.acted else "–"
            wpj = _f(t.writes / t.acted, 2) if t.acted else "–"
            lines.append(f"| {t.tick} | {t.label} | {_f(t.ms)} | {t.acted:,} | {t.reads:,} | "
                         f"{t.writes:,} | {rpj} | {wpj} |")

    if report["overlap"]:
        lines += [
            "",
            "## 3. Two overlapping ticks (two threads), until all N jobs are complete",
            "",
            ("Each round starts two ticks together (two processors on one project, a barrier) "
             "and waits for both; the clock moves between rounds. Sequential s = wall time of "
             "the one-tick-at-a-time run of section 1 with the same N and batch. Actions = job "
             f"actions of both ticks together ({ACTIONS_PER_JOB} per job if no job is acted on "
             "twice in one phase); skipped = candidates a tick found already claimed by the "
             "other. BigQuery starts are counted by the stub per job id and per job and step."),
            "",
            ("| N | batch | rounds | wall s | sequential s | round p50 ms | round max ms | "
             "actions (expected) | skipped | BigQuery starts (expected) | ids started twice | "
             "job×step not started once | deletes (jobs not deleted once) | reads/job | "
             "writes/job | all complete, each step once |"),
            "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|:-:|",
        ]
        for r in report["overlap"]:
            v = r["verification"]
            mark = " (stopped)" if r["stopped_early"] else ""
            lines.append(
                f"| {r['n']:,} | {r['batch']:,} | {r['rounds']}{mark} | "
                f"{_f(r['wall_seconds'], 2)} | {_f(r['sequential_wall_seconds'], 2)} | "
                f"{_f(r['round_p50_ms'])} | {_f(r['round_max_ms'])} | "
                f"{r['acted_total']} ({r['expected_actions']}) | {r['skipped_total']} | "
                f"{v['starts']} ({v['expected_starts']}) | {v['ids_started_twice']} | "
                f"{v['job_steps_not_started_once']} | "
                f"{v['deletes']} ({v['jobs_not_deleted_once']}) | "
                f"{_f(r['reads_per_job_chain'], 1)} | {_f(r['writes_per_job_chain'], 1)} | "
                f"{_ok(v)} |")
        lines += ["", *[f"- {note}" for note in overlap_notes(report["overlap"],
                                                               report["series"])]]
        for r in report["overlap"]:
            for error in r["errors"]:
                lines += ["", f"Error (N = {r['n']}, batch = {r['batch']}): {error}"]

    lines += ["", f"Run time: {report['run_seconds']:.1f} s. JSON: {report['json_path']}"]
    return "\n".join(lines)


def notes(series: Sequence[SeriesResult]) -> list[str]:
    """Observations: ticks needed when N exceeds the batch; runs stopped or failing verification."""
    out = []
    for r in series:
        if r.batch < r.n:
            whole = next((s.ticks for s in series if s.n == r.n and s.batch >= r.n), None)
            out.append(
                f"N = {r.n:,} at batch = {r.batch:,} took {r.ticks:,} ticks to carry every job to "
                f"complete (at least {r.min_ticks:,}); at one scheduled tick a minute that is "
                f"{r.ticks:,} minutes ({r.ticks / 60:.1f} h) even if every BigQuery job took no "
                "time" + (f"; at batch = {r.n:,}, {whole} ticks." if whole else "."))
    for r in series:
        if r.stopped_early:
            out.append(f"N = {r.n:,}, batch = {r.batch} stopped at the time or tick limit after "
                       f"{r.ticks} ticks, {r.verification.complete} of {r.n:,} complete.")
        elif not r.verification.ok:
            out.append(f"N = {r.n:,}, batch = {r.batch}: verification failed: "
                       f"{asdict(r.verification)}")
    return out


def overlap_notes(overlap: Sequence[dict[str, Any]], series: Sequence[dict[str, Any]]
                  ) -> list[str]:
    """Compare each overlap run with the sequential run of the same N and batch."""
    out = []
    for o in overlap:
        seq = next((s for s in series if s["n"] == o["n"] and s["batch"] == o["batch"]), None)
        if seq is None or o["stopped_early"]:
            continue
        out.append(
            f"N = {o['n']:,}, batch = {o['batch']}: {o['rounds']} rounds of two ticks against "
            f"{seq['ticks']} single ticks, {o['wall_seconds']:.2f} s against "
            f"{seq['wall_seconds']:.2f} s. Both ticks of a round query the same candidates, so "
            f"every job costs {o['reads_per_job_chain'] - seq['reads_per_job_chain']:+.1f} reads "
            f"(the second query) and {o['writes_per_job_chain'] - seq['writes_per_job_chain']:+.1f}"
            " writes (the losing tick's compare-and-set claim, refused; counted as a write) "
            "over the whole chain.")
    return out


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line; ``--quick`` means sizes 10,100 unless ``--sizes`` is given."""
    p = argparse.ArgumentParser(prog="python -m bench.postprocess",
                                description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=size_list(MAX_SIZE),
                   help="job counts, one fresh project per run (default 10,100,1000)")
    p.add_argument("--quick", action="store_true", help="sizes 10,100, for a smoke run")
    p.add_argument("--overlap-n", type=int, default=100,
                   help="jobs of the runs of two overlapping ticks; 0 skips them "
                        "(default %(default)s)")
    p.add_argument("--max-seconds", type=float, default=150.0,
                   help="time limit of each run of ticks (default %(default)s)")
    p.add_argument("--json", type=Path, default=RESULTS_JSON, help="where to write the JSON")
    args = p.parse_args(argv)
    if args.sizes is None:
        args.sizes = list(QUICK_SIZES if args.quick else DEFAULT_SIZES)
    if not 0 <= args.overlap_n <= MAX_SIZE:
        p.error(f"--overlap-n must be between 0 and {MAX_SIZE:,}")
    if args.max_seconds <= 0:
        p.error("--max-seconds must be positive")
    return args


def measure(args: argparse.Namespace, host: str, own_emulator: bool, projects: Projects
            ) -> dict[str, Any]:
    """Run every series and the overlap runs; return the report (without run time)."""
    _progress(f"warm-up: N = {WARMUP_N}, not reported …")
    run_series(projects, WARMUP_N, WARMUP_N, args.max_seconds)  # JIT, channels, code paths
    series: list[SeriesResult] = []
    for n in args.sizes:
        for batch in sorted({n, DEFAULT_BATCH}):
            _progress(f"N = {n:,}, batch = {batch:,}: one tick at a time …")
            r = run_series(projects, n, batch, args.max_seconds)
            series.append(r)
            _progress(f"    {r.ticks} ticks, {r.wall_seconds:.1f} s, "
                      f"{r.verification.complete} of {n:,} complete")

    overlap: list[OverlapResult] = []
    if args.overlap_n:
        n = args.overlap_n
        for batch in sorted({n, DEFAULT_BATCH}):
            _progress(f"N = {n:,}, batch = {batch}: two overlapping ticks …")
            o = run_overlap(projects, n, batch, args.max_seconds)
            o.sequential_wall_seconds = next(
                (s.wall_seconds for s in series if s.n == n and s.batch == batch), None)
            overlap.append(o)
            _progress(f"    {o.rounds} rounds, {o.wall_seconds:.1f} s, "
                      f"{o.verification.complete} of {n:,} complete")

    largest = max((s for s in series if s.batch >= s.n), key=lambda s: s.n, default=None)
    machine = machine_facts(host, own_emulator)
    for irrelevant in ("server", "http_client"):  # no function server here
        machine.pop(irrelevant, None)
    return {
        "machine": machine,
        "config": {
            "sizes": args.sizes,
            "quick": args.quick,
            "batches": f"N and {DEFAULT_BATCH}",
            "poll_seconds": 0,
            "advance_seconds": ADVANCE_SECONDS,
            "actions_per_job": ACTIONS_PER_JOB,
            "overlap_n": args.overlap_n,
            "warmup_n": WARMUP_N,
            "max_seconds_per_run": args.max_seconds,
            "projects": list(projects.names),
        },
        "series": [asdict(s) for s in series],
        "notes": notes(series),
        "tick_detail": ({"n": largest.n, "batch": largest.batch,
                         "samples": [asdict(s) for s in largest.samples]} if largest else None),
        "overlap": [asdict(o) for o in overlap],
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the tables, write the JSON; return the exit status.

    Exits 1 if a run stopped before every job was complete or a check failed.
    """
    args = parse_args(argv)
    started = time.perf_counter()
    projects = Projects()
    report = run_on_emulator(
        lambda stack, host, own: measure(args, host, own, projects),
        wipe_external(projects.names), EMULATOR_LOG)
    if report is None:
        return 130

    publish(report, args.json, started, render)
    ok = all(Verification(**r["verification"]).ok and not r["stopped_early"]
             for r in [*report["series"], *report["overlap"]])
    if not ok:
        _progress("a run did not carry every job to complete with each step started once")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
