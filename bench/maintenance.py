"""Maintenance scale benchmark: snapshot export and import, expiry and the status page at 1k–100k jobs.

``make bench-maintenance`` (``python -m bench.maintenance``) starts a Firestore
emulator (unless ``FIRESTORE_EMULATOR_HOST`` points at a running one on this
machine, as :mod:`bench.hot_path` does) with a larger Java heap than the
tests' 512 MiB, which holds fewer than 100,000 job documents, and a GCS
emulator (fake-gcs-server, memory backend). For each size N (default 1,000,
10,000 and 100,000; ``--quick``: 1,000 and 10,000) it loads N jobs into a
fresh ``demo-bench-<uuid>`` project — built in-process with
:meth:`~shared.store.JobRecord.new` over 24 sources (3 buckets × 8
experiment/datatype pairs) and consecutive days, every one in ``parsing`` with
its last activity two days old, put in with
:meth:`~shared.store.JobStore.create_missing` in chunks; the load is timed but
is not a measurement — and then measures:

1. snapshot export: :func:`shared.snapshot.write_snapshot` of the N jobs;
2. snapshot import into another fresh, empty project:
   :func:`~shared.snapshot.import_snapshot` of
   :func:`~shared.snapshot.load_snapshot` of ``gs://…/latest.json``;
3. expiry (N ≤ 10,000 by default; at 100,000 it would take some seven minutes
   on the emulator): :meth:`shared.tracker.Tracker.expire_stale` in passes of
   :data:`shared.maintenance.BATCH` (500, what one maintenance run does)
   until a pass finds nothing;
4. the status page as ``/status`` builds it for the default limit of 1,000
   rows: ``list(tracker.get_state(JobFilter(limit=1000)))``, the count,
   :func:`~shared.web.status.render_html` and
   :func:`~shared.web.status.render_json` (with the ``json.dumps`` of the
   response).

Time and memory come from separate runs, because tracemalloc slows this
allocation-heavy Python code three- to eightfold: the time, the sampled peak
RSS above the call's starting RSS and the growth of ``ru_maxrss`` come from
an untraced run; the tracemalloc peak from a traced run of the same call
(export: a second export of the same jobs; import: into a third fresh project,
by default only up to 10,000 jobs, since the traced import of 100,000 takes
some four minutes; expiry: one traced pass of 500 on the imported copy).

It prints a Markdown table per measurement, with the growth of the time
against the previous N and a one-line conclusion, and writes the figures as
JSON to ``bench/results/maintenance.json``. Everything it talks to is on
127.0.0.1; the emulators it started are stopped at the end, also on error,
and the projects it used are wiped.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import itertools
import json
import math
import os
import re
import resource
import statistics
import sys
import threading
import time
import tracemalloc
import uuid
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Self, TypeVar

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.hot_path import (  # noqa: E402
    RESULTS_DIR,
    _f,
    _progress,
    _wipe,
    deferred_interrupts,
    machine_facts,
    publish,
    run_on_emulator,
    size_list,
)
from bench.next_job import gcs_facts  # noqa: E402
from local.gcs_emulator import GcsEmulator  # noqa: E402
from local.gcs_emulator import client as gcs_client_for  # noqa: E402
from shared.defaults import MAINTENANCE_BATCH as BATCH  # noqa: E402
from shared.model import Datasets, Job, JobFilter, State, StateInfo, utcnow  # noqa: E402
from shared.schemas import StatusQuery  # noqa: E402

RESULTS_JSON = RESULTS_DIR / "maintenance.json"
EMULATOR_LOG = RESULTS_DIR / "maintenance-firestore-emulator.log"
GCS_LOG = RESULTS_DIR / "maintenance-gcs-emulator.log"

DEFAULT_SIZES = (1_000, 10_000, 100_000)
QUICK_SIZES = (1_000, 10_000)
#: Largest N accepted: two projects of it must fit in the emulator's heap.
MAX_SIZE = 200_000

#: Java heap of the emulator started here (the tests' 512 MiB holds fewer than 100k jobs).
DEFAULT_HEAP = "4g"

#: Largest N the expiry pass runs at (it expires some 270 jobs/s on the emulator).
DEFAULT_EXPIRY_MAX = 10_000
#: Largest N whose import is also run under tracemalloc (about 4 min at 100k).
DEFAULT_TRACE_IMPORT_MAX = 10_000

#: Records built and created per ``create_missing`` call while loading (not measured).
LOAD_CHUNK = 5_000

#: Rows of the status page by default (``StatusQuery``'s ``limit``).
STATUS_LIMIT: int = StatusQuery().fields["limit"].load_default
#: Untraced repetitions of the status page per N (the median is reported).
STATUS_REPEATS = 3
#: The filters the status page shows when none is given.
NO_FILTERS: dict[str, Any] = {"state": None, "experiment": None, "datatype": None}

#: The buckets and (experiment, datatype) pairs of the workload: 24 sources.
BUCKETS = ("archive-measurement-lab", "archive-mlab-oti", "archive-mlab-sandbox")
DATATYPES = (("ndt", "ndt7"), ("ndt", "scamper1"), ("ndt", "tcpinfo"), ("ndt", "annotation2"),
             ("ndt", "hopannotation2"), ("wehe", "scamper1"), ("msak", "tcpinfo"),
             ("host", "nodeinfo1"))
#: Date of every source's first job; job ``i`` is on day ``i // 24``.
FIRST_DATE = date(2013, 1, 1)
#: How old the jobs' last activity is (at least), and the expiry timeout (config/gardener.yml).
STALE_AGE = timedelta(days=2)
EXPIRATION = timedelta(hours=5)

MIB = 2**20
T = TypeVar("T")


# --------------------------------------------------------------------------- workload


def workload_job(index: int) -> Job:
    """Return job number ``index``: sources in turn, one day further every 24 jobs."""
    bucket = BUCKETS[index % len(BUCKETS)]
    experiment, datatype = DATATYPES[(index // len(BUCKETS)) % len(DATATYPES)]
    day = FIRST_DATE + timedelta(days=index // (len(BUCKETS) * len(DATATYPES)))
    return Job(bucket, experiment, datatype, day,
               datasets=Datasets(f"tmp_{experiment}", f"raw_{experiment}", experiment))


def parsing_record(index: int, now: datetime) -> Any:
    """Return job ``index`` as a record in ``parsing`` whose last activity is over 2 days old.

    History ``init`` → ``parsing`` with a detail, a heartbeat and some updates,
    all between ``now - STALE_AGE - 1 h`` and ``now - STALE_AGE``.
    """
    from shared.model import JobRecord

    added = now - STALE_AGE - timedelta(hours=1) + timedelta(seconds=index % 1800)
    record = JobRecord.new(workload_job(index), added)
    parsing = added + timedelta(seconds=30)
    detail_at = parsing + timedelta(seconds=index % 1500)
    archive = index % 40 + 1
    record.status.history.append(
        StateInfo(State.PARSING, parsing, detail_at, f"parsing archive {archive} of 40"))
    record.status.heartbeat_time = detail_at
    record.status.update_count = archive
    record.last_update = detail_at
    return record


@dataclass
class LoadResult:
    """How the N jobs were put in (not a measurement)."""

    n: int
    project: str
    seconds: float
    docs_per_s: float


def load_jobs(store: Any, n: int, now: datetime, chunk: int = LOAD_CHUNK) -> LoadResult:
    """Create jobs ``0 … n-1`` in ``parsing`` with ``create_missing``, ``chunk`` records at a time."""
    created = 0
    start = time.perf_counter()
    for first in range(0, n, chunk):
        records = [parsing_record(i, now) for i in range(first, min(n, first + chunk))]
        created += len(store.create_missing(records))
    seconds = time.perf_counter() - start
    if created != n:
        raise RuntimeError(f"loaded {created} jobs instead of {n}: the project was not empty")
    return LoadResult(n, store.client.project, seconds, n / seconds)


# --------------------------------------------------------------------------- memory


def rss_mib() -> float:
    """Return the process's resident set size now, in MiB (NaN where /proc is absent)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return math.nan
    return pages * os.sysconf("SC_PAGE_SIZE") / MIB


def maxrss_mib() -> float:
    """Return the process's peak resident set size so far (``ru_maxrss``), in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MIB if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB else


def settle() -> None:
    """Collect garbage and hand freed heap back to the OS, so that RSS starts from the live set."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # glibc only; best effort


class RssSampler:
    """Samples the RSS in a thread every ``interval`` seconds; keeps the start and the peak."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.start = self.peak = math.nan
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss_mib())

    def __enter__(self) -> Self:
        self.start = self.peak = rss_mib()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.peak = max(self.peak, rss_mib())


@dataclass
class Cost:
    """Time and memory of one measured call.

    ``seconds``, ``rss_peak_mib`` and ``maxrss_growth_mib`` come from an
    untraced run; ``traced_peak_mib`` and ``traced_seconds`` from a separate
    run under tracemalloc (None if there was none).
    """

    seconds: float
    #: Peak RSS sampled during the call, above the RSS at its start.
    rss_peak_mib: float
    #: How much the call raised the process's high-water RSS (``ru_maxrss``); 0 if it stayed below.
    maxrss_growth_mib: float
    #: Peak of the memory Python allocated during the traced run (``tracemalloc``).
    traced_peak_mib: float | None = None
    #: Time of the traced run (slower than ``seconds``: tracemalloc's overhead).
    traced_seconds: float | None = None


def untraced(call: Callable[[], T]) -> tuple[T, Cost]:
    """Run ``call`` once; return its value and its time and RSS figures."""
    settle()
    before = maxrss_mib()
    with RssSampler() as rss:
        start = time.perf_counter()
        value = call()
        seconds = time.perf_counter() - start
    return value, Cost(seconds, rss.peak - rss.start, maxrss_mib() - before)


def traced(call: Callable[[], T]) -> tuple[T, float, float]:
    """Run ``call`` under tracemalloc; return its value, its peak in MiB and its time."""
    settle()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        start = time.perf_counter()
        value = call()
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return value, (peak - base) / MIB, seconds


# --------------------------------------------------------------------------- results


@dataclass
class ExportResult:
    """Snapshot export of N jobs."""

    n: int
    cost: Cost
    jobs: int
    bytes: int
    object: str
    jobs_per_s: float


@dataclass
class ImportResult:
    """Snapshot import of N jobs into an empty project."""

    n: int
    cost: Cost
    #: Of the untraced run: reading and validating the file, and creating the jobs.
    read_seconds: float
    create_seconds: float
    created: int
    jobs_per_s: float
    project: str
    traced_project: str | None = None


@dataclass
class ExpiryResult:
    """Expiry of N stale ``parsing`` jobs in passes of ``BATCH``."""

    n: int
    ran: bool
    seconds: float = math.nan
    passes: int = 0
    expired: int = 0
    failed_after: int = 0
    jobs_per_s: float = math.nan
    ms_per_job: float = math.nan
    pass_ms_median: float = math.nan
    pass_ms_max: float = math.nan
    rss_peak_mib: float = math.nan
    maxrss_growth_mib: float = math.nan
    #: tracemalloc peak of one pass of ``BATCH`` (on the imported copy of the jobs).
    pass_traced_peak_mib: float | None = None
    pass_traced_seconds: float | None = None
    pass_traced_expired: int = 0
    note: str = ""


@dataclass
class StatusResult:
    """The status page at its default limit over N jobs (medians of the untraced runs)."""

    n: int
    cost: Cost
    rows: int
    total: int
    query_seconds: float
    count_seconds: float
    html_seconds: float
    json_seconds: float
    html_bytes: int
    json_bytes: int
    repeats: int


@dataclass
class SizeResult:
    """Everything measured at one N."""

    n: int
    load: LoadResult
    status_page: StatusResult
    snapshot_export: ExportResult
    snapshot_import: ImportResult
    expiry: ExpiryResult
    projects: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- measurements


def bench_export(store: Any, bucket: Any, prefix: str, n: int) -> ExportResult:
    """Export the N jobs twice: untraced (time, RSS), then under tracemalloc (peak)."""
    from shared.snapshot import write_snapshot

    result, cost = untraced(lambda: write_snapshot(store, bucket, utcnow(), prefix=prefix))
    again, cost.traced_peak_mib, cost.traced_seconds = traced(
        lambda: write_snapshot(store, bucket, utcnow(), prefix=prefix))
    for r in (result, again):
        if r.jobs != n:
            raise RuntimeError(f"exported {r.jobs} jobs instead of {n}")
    return ExportResult(n, cost, result.jobs, result.bytes, result.object, n / cost.seconds)


def bench_import(fs: Callable[[], Any], gcs_client: Any, source: str, n: int,
                 trace: bool) -> tuple[ImportResult, Any]:
    """Import the latest snapshot into a fresh project (untraced), then into another (traced).

    ``fs()`` returns a :class:`JobStore` on a new project. Returns the result and
    the store of the untraced import (whose jobs the expiry probe uses).
    """
    from shared.snapshot import import_snapshot, load_snapshot

    store = fs()
    split: dict[str, float] = {}

    def run(target: Any) -> Any:
        t0 = time.perf_counter()
        with load_snapshot(source, storage_client=gcs_client) as snapshot:  # validated, spooled
            t1 = time.perf_counter()
            result = import_snapshot(target, snapshot)  # read again from the spool, written
        split["read"], split["create"] = t1 - t0, time.perf_counter() - t1
        return result

    result, cost = untraced(lambda: run(store))
    read, create = split["read"], split["create"]
    traced_project = None
    if trace:
        target = fs()
        traced_project = target.client.project
        again, cost.traced_peak_mib, cost.traced_seconds = traced(lambda: run(target))
        if again.created != n:
            raise RuntimeError(f"the traced import created {again.created} jobs instead of {n}")
    if result.created != n:
        raise RuntimeError(f"the import created {result.created} jobs instead of {n}")
    return ImportResult(n, cost, read, create, result.created, n / cost.seconds,
                        store.client.project, traced_project), store


def expire_all(tracker: Any, cutoff: datetime, n: int) -> tuple[int, list[float]]:
    """Call ``expire_stale(cutoff, BATCH)`` until a pass expires nothing (bounded); return the count and each pass's time."""
    expired, passes = 0, []
    for _ in range(math.ceil(n / BATCH) + 5):
        t0 = time.perf_counter()
        keys = tracker.expire_stale(cutoff, BATCH)
        passes.append(time.perf_counter() - t0)
        expired += len(keys)
        if not keys:
            break
    return expired, passes


def bench_expiry(store: Any, probe_store: Any, n: int, now: datetime) -> ExpiryResult:
    """Expire the N stale jobs of ``store`` in passes; trace one pass on ``probe_store``'s copy."""
    from shared.tracker import Tracker

    cutoff = now - EXPIRATION
    probe_keys, peak, seconds = traced(lambda: Tracker(probe_store).expire_stale(cutoff, BATCH))
    tracker = Tracker(store)
    (expired, passes), cost = untraced(lambda: expire_all(tracker, cutoff, n))
    failed = tracker.num_failed()
    if expired != n or failed != n:
        raise RuntimeError(f"expired {expired} (failed: {failed}) of {n} jobs")
    ms = [p * 1000 for p in passes]
    return ExpiryResult(
        n=n, ran=True, seconds=cost.seconds, passes=len(passes), expired=expired,
        failed_after=failed, jobs_per_s=n / cost.seconds, ms_per_job=cost.seconds / n * 1000,
        pass_ms_median=statistics.median(ms), pass_ms_max=max(ms),
        rss_peak_mib=cost.rss_peak_mib, maxrss_growth_mib=cost.maxrss_growth_mib,
        pass_traced_peak_mib=peak, pass_traced_seconds=seconds,
        pass_traced_expired=len(probe_keys),
        note=f"{len(passes)} passes, the last one empty",
    )


def status_page(tracker: Any, limit: int = STATUS_LIMIT) -> dict[str, Any]:
    """Build the status page as ``/status`` does (HTML and JSON); return each step's time and size."""
    from shared.web.status import render_html, render_json

    t0 = time.perf_counter()
    records = list(tracker.get_state(JobFilter(limit=limit)))
    t1 = time.perf_counter()
    total = tracker.count() if len(records) == limit else len(records)
    t2 = time.perf_counter()
    html = render_html(records, total, NO_FILTERS, utcnow())
    t3 = time.perf_counter()
    body = json.dumps(render_json(records, total, NO_FILTERS), ensure_ascii=False)
    t4 = time.perf_counter()
    return {"rows": len(records), "total": total, "query": t1 - t0, "count": t2 - t1,
            "html": t3 - t2, "json": t4 - t3, "html_bytes": len(html.encode()),
            "json_bytes": len(body.encode())}


def bench_status(tracker: Any, n: int, repeats: int = STATUS_REPEATS) -> StatusResult:
    """Build the page ``repeats`` times untraced (medians) and once under tracemalloc (peak)."""
    runs = [untraced(lambda: status_page(tracker)) for _ in range(repeats)]
    pages = [page for page, _ in runs]
    middle = sorted(runs, key=lambda run: run[1].seconds)[len(runs) // 2][1]
    page, middle.traced_peak_mib, middle.traced_seconds = traced(lambda: status_page(tracker))
    if page["rows"] != min(n, STATUS_LIMIT) or page["total"] != n:
        raise RuntimeError(f"status page shows {page['rows']} of {page['total']}, expected {n}")

    def med(name: str) -> float:
        return statistics.median(p[name] for p in pages)

    return StatusResult(n, middle, page["rows"], page["total"], med("query"), med("count"),
                        med("html"), med("json"), page["html_bytes"], page["json_bytes"],
                        repeats)


def bench_size(n: int, args: argparse.Namespace, ctx: Context,
               expiry_rate: float | None) -> SizeResult:
    """Load N jobs into a fresh project and run every measurement on them.

    ``expiry_rate`` (jobs/s measured at a smaller N, if any) estimates what a skipped expiry would take.
    """
    from shared.tracker import Tracker

    now = utcnow()
    store = ctx.store()
    _progress(f"N={n:,}: loading into {store.client.project} …")
    load = load_jobs(store, n, now)
    _progress(f"    loaded in {load.seconds:.1f} s; status page …")
    status = bench_status(Tracker(store), n)
    _progress("    snapshot export (untraced, then traced) …")
    prefix = f"n{n}/"
    export = bench_export(store, ctx.bucket, prefix, n)
    trace_import = n <= args.trace_import_max
    _progress(f"    snapshot import (untraced{', then traced' if trace_import else ''}) …")
    source = f"gs://{ctx.bucket.name}/{prefix}latest.json"
    imported, copy = bench_import(ctx.store, ctx.gcs, source, n, trace_import)
    if imported.traced_project:
        ctx.wipe(imported.traced_project)
    if n <= args.expiry_max:
        _progress(f"    expiry in passes of {BATCH} …")
        expiry = bench_expiry(store, copy, n, now)
    else:
        note = f"not run: above --expiry-max {args.expiry_max:,}"
        if expiry_rate:
            note += (f"; at the {expiry_rate:.0f} jobs/s measured below it would take "
                     f"~{n / expiry_rate / 60:.0f} min on the emulator")
        expiry = ExpiryResult(n, ran=False, note=note)
    for project in (store.client.project, copy.client.project):
        ctx.wipe(project)
    for blob in ctx.bucket.list_blobs(prefix=prefix):  # free the GCS emulator's memory
        with contextlib.suppress(Exception):
            blob.delete()
    return SizeResult(n, load, status, export, imported, expiry,
                      [store.client.project, copy.client.project]
                      + ([imported.traced_project] if imported.traced_project else []))


class Context:
    """The emulators' clients, the snapshot bucket and the projects used."""

    def __init__(self, host: str, gcs: Any, bucket: Any) -> None:
        self.host, self.gcs, self.bucket = host, gcs, bucket
        self.projects: list[str] = []
        self._wiped: set[str] = set()
        self._clients: list[Any] = []

    def store(self) -> Any:
        """Return a :class:`JobStore` on a new ``demo-bench-<uuid>`` project."""
        from google.cloud import firestore

        from shared.store import JobStore

        self.projects.append(f"demo-bench-{uuid.uuid4().hex[:12]}")
        client = firestore.Client(project=self.projects[-1])
        self._clients.append(client)
        return JobStore(client)

    def wipe(self, project: str) -> None:
        """Delete a project's documents (frees the emulator's memory); close its client."""
        if project in self._wiped:
            return
        self._wiped.add(project)
        _wipe(self.host, project)
        for client in [c for c in self._clients if c.project == project]:
            with contextlib.suppress(Exception):
                client.close()
            self._clients.remove(client)

    def wipe_all(self) -> None:
        """Wipe every project used and not wiped yet."""
        for project in self.projects:
            self.wipe(project)


# --------------------------------------------------------------------------- conclusions


def growth(values: Sequence[float | None]) -> list[float | None]:
    """Return each value's ratio to the previous one (None for the first or a missing value)."""
    out: list[float | None] = [None]
    for prev, cur in itertools.pairwise(values):
        if prev is None or cur is None or not prev > 0 or math.isnan(cur):
            out.append(None)
        else:
            out.append(cur / prev)
    return out


def shape(n1: int, v1: float, n2: int, v2: float) -> str:
    """Say how a figure grows from (n1, v1) to (n2, v2), by the exponent k of v ∝ n^k.

    k < 0.1: flat; < 0.3: nearly flat; < 0.8: sublinear; ≤ 1.25: linear; above: superlinear.
    """
    if not (v1 > 0 and v2 > 0 and n2 > n1):
        return "cannot be compared"
    k = math.log(v2 / v1) / math.log(n2 / n1)
    if k < 0.1:
        return "stays flat"
    if k < 0.3:
        return "stays nearly flat"
    if k < 0.8:
        return "grows sublinearly"
    if k <= 1.25:
        return "grows linearly"
    return "grows superlinearly"


def trend(label: str, sizes: Sequence[int], values: Sequence[float | None], unit: str,
          digits: int = 1) -> str:
    """Describe a figure over the sizes it was measured at: its shape over the last step and its values."""
    points = [(n, v) for n, v in zip(sizes, values, strict=True)
              if v is not None and not math.isnan(v)]
    if len(points) < 2:
        return f"{label}: measured at {len(points)} size(s) only"
    (n1, v1), (n2, v2) = points[-2], points[-1]
    listed = " → ".join(f"{v:,.{digits}f}" for _, v in points)
    return (f"{label} {shape(n1, v1, n2, v2)} (×{v2 / v1:.1f} from {n1:,} to {n2:,} jobs; "
            f"{listed} {unit})")


def conclusions(sizes: Sequence[int], results: Sequence[SizeResult]) -> dict[str, str]:
    """Return a one-line conclusion per measurement, from the figures."""
    exp = [r.snapshot_export for r in results]
    imp = [r.snapshot_import for r in results]
    exy = [r for r in results if r.expiry.ran]
    st = [r.status_page for r in results]
    out = {
        "export": "; ".join([
            trend("time", sizes, [e.cost.seconds for e in exp], "s"),
            trend("tracemalloc peak", sizes, [e.cost.traced_peak_mib for e in exp], "MiB"),
        ]) + " — streamed: statuses go straight into the upload (8 MiB chunks), jobs "
             "through an 8 MiB spool that spills to disk.",
        "import": "; ".join([
            trend("time", sizes, [i.cost.seconds for i in imp], "s"),
            trend("tracemalloc peak", sizes, [i.cost.traced_peak_mib for i in imp], "MiB"),
            trend("sampled RSS peak", sizes, [i.cost.rss_peak_mib for i in imp], "MiB"),
        ]) + " — the whole file is downloaded, decoded and validated before the first write.",
        "expiry": "; ".join([
            trend("time", [r.n for r in exy], [r.expiry.seconds for r in exy], "s"),
            trend("jobs/s", [r.n for r in exy], [r.expiry.jobs_per_s for r in exy], "jobs/s"),
            trend(f"tracemalloc peak of one pass of {BATCH}", [r.n for r in exy],
                  [r.expiry.pass_traced_peak_mib for r in exy], "MiB", 2),
        ]) + " — one transaction per job; a maintenance run does one pass.",
        "status_page": "; ".join([
            trend("time", sizes, [s.cost.seconds for s in st], "s", 2),
            trend("of which get_state + count", sizes,
                  [s.query_seconds + s.count_seconds for s in st], "s", 2),
            trend("render_html + render_json", sizes,
                  [s.html_seconds + s.json_seconds for s in st], "s", 3),
            trend("tracemalloc peak", sizes, [s.cost.traced_peak_mib for s in st], "MiB"),
        ]) + f" — at most {STATUS_LIMIT:,} rows are read and rendered; what grows with N is "
             "the emulator's answer to the ordered query and the aggregation count.",
    }
    return out


# --------------------------------------------------------------------------- output


def _x(ratio: float | None) -> str:
    return "–" if ratio is None else f"×{ratio:.1f}"


def _mib(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else _f(x, digits)


def render(report: dict[str, Any]) -> str:
    """Return the report as Markdown."""
    m, cfg = report["machine"], report["config"]
    rows = report["sizes"]
    lines = [
        "# Maintenance scale benchmark",
        "",
        (f"- Machine: {m['cpu_count']} CPUs, model `{m['cpu_model'] or '?'}`, "
         f"{m['memory_gib']} GiB, load average at start {m['loadavg_at_start']}; {m['platform']}"),
        (f"- Python: {m['python']}; google-cloud-firestore {m.get('google_cloud_firestore', '?')}, "
         f"google-cloud-storage {m.get('google_cloud_storage', '?')}"),
        (f"- Firestore emulator: {m['emulator']} {m.get('emulator_version', '?')} at "
         f"{m['emulator_host']}, Java heap {cfg['emulator_heap']} ({m.get('java', '?')})"),
        f"- GCS emulator: {m['gcs_emulator']} at {m['gcs_emulator_url']}",
        (f"- Workload: N jobs over {len(BUCKETS) * len(DATATYPES)} sources ({len(BUCKETS)} "
         f"buckets × {len(DATATYPES)} experiment/datatypes), one per source and day from "
         f"{FIRST_DATE}, all in `parsing` (history init → parsing, a detail, a heartbeat), last "
         f"activity 2 days old. Each N on a fresh `demo-bench-<uuid>` project, loaded with "
         f"`create_missing` in chunks of {cfg['load_chunk']:,} (not measured)."),
        ("- Method: time, sampled RSS peak (above the RSS at the call's start) and `ru_maxrss` "
         "growth (0 when the call stayed under the process's earlier high-water mark) come from "
         "an untraced run; the tracemalloc peak from a separate run under tracemalloc, which "
         "slows this Python code 3–8× (its time is in the JSON). Benchmark and emulators share "
         "the CPUs."),
        "",
        "## 0. Loading the jobs (not a measurement)",
        "",
        "| N | load s | jobs/s |",
        "|--:|--:|--:|",
    ]
    for r in rows:
        lines.append(f"| {r['n']:,} | {_f(r['load']['seconds'])} | {_f(r['load']['docs_per_s'], 0)} |")

    exp = [r["snapshot_export"] for r in rows]
    t_growth = growth([e["cost"]["seconds"] for e in exp])
    m_growth = growth([e["cost"]["traced_peak_mib"] for e in exp])
    lines += [
        "",
        "## 1. Snapshot export: `write_snapshot(store, bucket, now)`",
        "",
        ("| N | time s | growth | jobs/s | object MiB | tracemalloc peak MiB | peak growth | "
         "RSS peak +MiB | ru_maxrss +MiB |"),
        "|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for e, tg, mg in zip(exp, t_growth, m_growth, strict=True):
        c = e["cost"]
        lines.append(
            f"| {e['n']:,} | {_f(c['seconds'], 2)} | {_x(tg)} | {_f(e['jobs_per_s'], 0)} | "
            f"{_f(e['bytes'] / MIB, 1)} | {_mib(c['traced_peak_mib'])} | {_x(mg)} | "
            f"{_f(c['rss_peak_mib'])} | {_f(c['maxrss_growth_mib'])} |")
    lines += ["", f"Conclusion: {report['conclusions']['export']}"]

    imp = [r["snapshot_import"] for r in rows]
    t_growth = growth([i["cost"]["seconds"] for i in imp])
    m_growth = growth([i["cost"]["traced_peak_mib"] for i in imp])
    lines += [
        "",
        ("## 2. Snapshot import into an empty project: "
         "`import_snapshot(store2, load_snapshot(\"gs://…/latest.json\"))`"),
        "",
        ("| N | time s | growth | read + validate s | create s | jobs/s | tracemalloc peak MiB | "
         "peak growth | RSS peak +MiB | ru_maxrss +MiB |"),
        "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for i, tg, mg in zip(imp, t_growth, m_growth, strict=True):
        c = i["cost"]
        peak = (_mib(c["traced_peak_mib"]) if c["traced_peak_mib"] is not None
                else "not traced")
        lines.append(
            f"| {i['n']:,} | {_f(c['seconds'], 2)} | {_x(tg)} | {_f(i['read_seconds'], 2)} | "
            f"{_f(i['create_seconds'], 2)} | {_f(i['jobs_per_s'], 0)} | {peak} | {_x(mg)} | "
            f"{_f(c['rss_peak_mib'])} | {_f(c['maxrss_growth_mib'])} |")
    untraced_sizes = [i["n"] for i in imp if i["cost"]["traced_peak_mib"] is None]
    if untraced_sizes:
        lines += ["", (f"Not traced at {', '.join(f'{n:,}' for n in untraced_sizes)} jobs "
                       f"(above --trace-import-max {cfg['trace_import_max']:,}): under "
                       "tracemalloc the import of 100,000 jobs takes some 4 minutes; the "
                       "sampled RSS peak stands in.")]
    lines += ["", f"Conclusion: {report['conclusions']['import']}"]

    exy = [r["expiry"] for r in rows]
    t_growth = growth([x["seconds"] if x["ran"] else None for x in exy])
    lines += [
        "",
        (f"## 3. Expiry: `Tracker(store).expire_stale(cutoff, {BATCH})` in passes until none "
         f"is left, all N jobs stale in `parsing`"),
        "",
        ("| N | time s | growth | jobs/s | ms/job | passes | pass ms median | pass ms max | "
         f"tracemalloc peak of one pass of {BATCH}, MiB | RSS peak +MiB |"),
        "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for x, tg in zip(exy, t_growth, strict=True):
        if not x["ran"]:
            lines.append(f"| {x['n']:,} | {x['note']} | | | | | | | | |")
            continue
        lines.append(
            f"| {x['n']:,} | {_f(x['seconds'], 1)} | {_x(tg)} | {_f(x['jobs_per_s'], 0)} | "
            f"{_f(x['ms_per_job'], 2)} | {x['passes']} | {_f(x['pass_ms_median'], 0)} | "
            f"{_f(x['pass_ms_max'], 0)} | {_mib(x['pass_traced_peak_mib'], 2)} | "
            f"{_f(x['rss_peak_mib'])} |")
    lines += ["", ("Every job expired and was found `failed` afterwards (an aggregation count); "
                   "the time includes the last, empty pass. The traced pass ran on the "
                   "imported copy of the jobs."),
              "", f"Conclusion: {report['conclusions']['expiry']}"]

    st = [r["status_page"] for r in rows]
    t_growth = growth([s["cost"]["seconds"] for s in st])
    lines += [
        "",
        (f"## 4. Status page, default limit {STATUS_LIMIT:,}: `list(tracker.get_state("
         f"limit={STATUS_LIMIT}))`, the count, `render_html`, `render_json` + `json.dumps`"),
        "",
        ("| N | time s | growth | get_state s | count s | render_html s | render_json s | "
         "HTML KiB | JSON KiB | tracemalloc peak MiB | RSS peak +MiB |"),
        "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for s, tg in zip(st, t_growth, strict=True):
        c = s["cost"]
        lines.append(
            f"| {s['n']:,} | {_f(c['seconds'], 3)} | {_x(tg)} | {_f(s['query_seconds'], 3)} | "
            f"{_f(s['count_seconds'], 3)} | {_f(s['html_seconds'], 3)} | "
            f"{_f(s['json_seconds'], 3)} | {_f(s['html_bytes'] / 1024, 0)} | "
            f"{_f(s['json_bytes'] / 1024, 0)} | {_mib(c['traced_peak_mib'])} | "
            f"{_f(c['rss_peak_mib'])} |")
    lines += ["", (f"Median of {st[0]['repeats'] if st else STATUS_REPEATS} untraced runs; the "
                   "count runs because the page is full (as `/status` does)."),
              "", f"Conclusion: {report['conclusions']['status_page']}"]
    lines += ["", f"Run time: {report['run_seconds']:.1f} s. JSON: {report['json_path']}"]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line; ``--quick`` means sizes 1,000 and 10,000 unless ``--sizes`` is given."""
    p = argparse.ArgumentParser(prog="python -m bench.maintenance",
                                description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=size_list(MAX_SIZE),
                   help="job counts, one fresh project each (default 1000,10000,100000)")
    p.add_argument("--quick", action="store_true", help="sizes 1000,10000")
    p.add_argument("--expiry-max", type=int, default=DEFAULT_EXPIRY_MAX,
                   help="largest N the expiry pass runs at (default %(default)s)")
    p.add_argument("--trace-import-max", type=int, default=DEFAULT_TRACE_IMPORT_MAX,
                   help="largest N whose import also runs under tracemalloc (default %(default)s)")
    p.add_argument("--emulator-heap", default=DEFAULT_HEAP,
                   help="Java heap of the Firestore emulator started here (default %(default)s)")
    p.add_argument("--json", type=Path, default=RESULTS_JSON, help="where to write the JSON")
    args = p.parse_args(argv)
    if args.sizes is None:
        args.sizes = list(QUICK_SIZES if args.quick else DEFAULT_SIZES)
    if not re.fullmatch(r"[1-9][0-9]*[mMgG]", args.emulator_heap):
        p.error("--emulator-heap takes a Java size such as 4g or 3072m")
    return args


def wipe_contexts(contexts: list[Context]) -> Callable[[str, bool], None]:
    """A ``run_on_emulator`` clean-up: wipe every context's projects (an external emulator
    keeps nothing; ours frees memory)."""

    def cleanup(host: str, own_emulator: bool) -> None:
        for ctx in contexts:
            ctx.wipe_all()

    return cleanup


def measure(args: argparse.Namespace, stack: ExitStack, host: str, own_emulator: bool,
            ctx_out: list[Context]) -> dict[str, Any]:
    """Start the GCS emulator, run every size, return the report (without run time)."""
    GCS_LOG.unlink(missing_ok=True)
    gcs = GcsEmulator(log_path=GCS_LOG)
    stack.callback(gcs.stop)  # registered first: stopped even if its start is interrupted
    with deferred_interrupts():
        gcs.start()
    gcs_client = gcs_client_for(gcs.url)
    bucket = gcs_client.create_bucket(f"bench-snapshots-{uuid.uuid4().hex[:8]}")
    ctx = Context(host, gcs_client, bucket)
    ctx_out.append(ctx)
    _progress(f"emulators {host} and {gcs.url}; sizes {args.sizes}")

    results: list[SizeResult] = []
    for n in args.sizes:
        rates = [r.expiry.jobs_per_s for r in results if r.expiry.ran]
        results.append(bench_size(n, args, ctx, rates[-1] if rates else None))

    machine = machine_facts(host, own_emulator)
    machine.update(gcs_facts(), gcs_emulator_url=gcs.url)
    for irrelevant in ("server", "http_client"):  # no function server here
        machine.pop(irrelevant, None)
    return {
        "machine": machine,
        "config": {
            "sizes": args.sizes,
            "quick": args.quick,
            "expiry_max": args.expiry_max,
            "trace_import_max": args.trace_import_max,
            "emulator_heap": (f"-Xmx{args.emulator_heap}" if own_emulator
                              else "external emulator (not set here)"),
            "load_chunk": LOAD_CHUNK,
            "batch": BATCH,
            "status_limit": STATUS_LIMIT,
            "status_repeats": STATUS_REPEATS,
            "expiration": str(EXPIRATION),
            "stale_age": str(STALE_AGE),
            "snapshot_bucket": bucket.name,
            "projects": list(ctx.projects),
        },
        "sizes": [asdict(r) for r in results],
        "conclusions": conclusions(args.sizes, results),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the tables, write the JSON; return the exit status."""
    args = parse_args(argv)
    started = time.perf_counter()
    contexts: list[Context] = []
    report = run_on_emulator(
        lambda stack, host, own: measure(args, stack, host, own, contexts),
        wipe_contexts(contexts), EMULATOR_LOG, heap=args.emulator_heap)
    if report is None:
        return 130

    publish(report, args.json, started, render)
    return 0


if __name__ == "__main__":
    sys.exit(main())
