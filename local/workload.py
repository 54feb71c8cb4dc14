"""Workloads of the benchmarks and tests.

The next-job workload: a Go-format config of four sources and archives for
three of every four (source, day) pairs, so that the job service passes over
the rest (the next-job and lifecycle benchmarks, the tests that drain
``next``). The maintenance workload: stale ``parsing`` jobs over 24 sources.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from shared.model import Datasets, Job, State, StateInfo

#: The sources: (experiment, datatype, tmp, raw, join), all in one bucket.
SOURCES: tuple[tuple[str, str, str, str, str], ...] = (
    ("ndt", "ndt7", "tmp_ndt", "raw_ndt", "ndt"),
    ("ndt", "scamper1", "tmp_ndt", "raw_ndt", "ndt"),
    ("wehe", "scamper1", "tmp_wehe", "raw_wehe", "wehe"),
    ("msak", "tcpinfo", "tmp_msak", "raw_msak", "msak"),
)

#: One (source, day) pair in this many has no archive.
SKIP_EVERY = 4


def config_yaml(bucket: str, start: date) -> str:
    """The workload's config in the Go gardener's YAML format."""
    lines = [
        f"start_date: {start:%Y-%m-%d}",
        "tracker:",
        "  timeout: 6h",
        "monitor:",
        "  polling_interval: 1m",
        "sources:",
    ]
    for experiment, datatype, tmp, raw, join in SOURCES:
        lines += [
            f"- bucket: {bucket}",
            f"  experiment: {experiment}",
            f"  datatype: {datatype}",
            "  target_datasets:",
            f"    tmp: {tmp}",
            f"    raw: {raw}",
            f"    join: {join}",
        ]
    return "\n".join(lines) + "\n"


def seed_workload(gcs_client: Any, directory: Path, start: date, end: date) -> tuple[Path, Any]:
    """Write the config (a fresh bucket, ``start_date`` ``start``) to ``directory`` and seed
    the bucket's archives up to ``end``; the config's path and the config loaded."""
    from local.gcs_emulator import seed
    from shared.config import load_config

    bucket = f"archive-bench-{uuid.uuid4().hex[:8]}"
    path = directory / "gardener.yml"
    path.write_text(config_yaml(bucket, start))
    seed(gcs_client, bucket, archive_names(start, end))
    return path, load_config(path, {})


def has_archive(source: int, day: date) -> bool:
    """Whether source index ``source`` has an archive on ``day`` (the skipped source rotates)."""
    return (day.toordinal() + source) % SKIP_EVERY != 0


def archive_names(start: date, end: date) -> list[str]:
    """Object names to seed: one small archive per (source, day) with one, both ends included."""
    names = []
    for offset in range((end - start).days + 1):
        day = start + timedelta(days=offset)
        for i, (experiment, datatype, *_) in enumerate(SOURCES):
            if has_archive(i, day):
                names.append(
                    f"{experiment}/{datatype}/{day:%Y/%m/%d}/"
                    f"{day:%Y%m%d}T000000Z-{datatype}-mlab1-bench-{experiment}.tgz"
                )
    return names


def candidates(config: Any, now: datetime) -> list[Any]:
    """Every candidate the streams offer at ``now``: daily, then one historical cycle."""
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
    """The keys of the candidates at ``now`` with an archive: what ``next`` hands out."""
    return {
        c.job.key()
        for c in candidates(config, now)
        if has_archive(c.position.source, c.position.day)
    }


#: The tracker's owed-run queries a ``next`` may make (billed one read each when empty).
OWED_QUERIES = ("pending_reoffers", "unretried_reoffers", "retryable")
#: What :meth:`CountedService.counts` counts: Firestore documents, GCS lists, owed-run queries.
COUNTS = ("job_reads", "job_writes", "cursor_reads", "cursor_writes", "gcs_lists", "queries")


def count_calls(owner: Any, names: Iterable[str]) -> Callable[[], int]:
    """Count the calls of the methods ``names`` on this instance ``owner``; return a reader."""
    calls = [0]

    def wrap(method: Any) -> Any:
        def counted(*args: Any, **kwargs: Any) -> Any:
            calls[0] += 1
            return method(*args, **kwargs)

        return counted

    for name in names:
        setattr(owner, name, wrap(getattr(owner, name)))
    return lambda: calls[0]


class CountedService:
    """A job service of ``tracker`` whose job and cursor documents read and written, GCS
    lists and owed-run queries are counted (the next-job and lifecycle benchmarks, the tests)."""

    def __init__(self, tracker: Any, cursors: Any, lister: Any, config: Any, **options: Any):
        from shared.job_service import JobService

        self.tracker, self.cursors, self.lister = tracker, cursors, lister
        self.queries = count_calls(tracker, OWED_QUERIES)
        self.service = JobService(tracker, cursors, lister, config, **options)

    def counts(self, since: dict[str, int] | None = None) -> dict[str, int]:
        """The counts so far (less those of an earlier ``since``), by the names of :data:`COUNTS`."""
        jobs, cursors, before = self.tracker.store.stats, self.cursors.stats, since or {}
        now = (jobs.reads, jobs.writes, cursors.reads, cursors.writes, self.lister.calls)
        counted = (*now, self.queries())
        return {k: v - before.get(k, 0) for k, v in zip(COUNTS, counted, strict=True)}


#: The maintenance workload's 24 sources; job ``i`` is on day ``i // 24`` from :data:`FIRST_DATE`.
BUCKETS = ("archive-measurement-lab", "archive-mlab-oti", "archive-mlab-sandbox")
DATATYPES = (
    ("ndt", "ndt7"),
    ("ndt", "scamper1"),
    ("ndt", "tcpinfo"),
    ("ndt", "annotation2"),
    ("ndt", "hopannotation2"),
    ("wehe", "scamper1"),
    ("msak", "tcpinfo"),
    ("host", "nodeinfo1"),
)
FIRST_DATE = date(2013, 1, 1)
#: How old the stale jobs' last activity is.
STALE_AGE = timedelta(days=2)


def stale_parsing_record(index: int, now: datetime) -> Any:
    """Job ``index`` as a record in ``parsing`` (a detail, a heartbeat, some updates) whose
    last activity is over :data:`STALE_AGE` old."""
    from shared.model import JobRecord

    experiment, datatype = DATATYPES[(index // len(BUCKETS)) % len(DATATYPES)]
    job = Job(
        BUCKETS[index % len(BUCKETS)],
        experiment,
        datatype,
        FIRST_DATE + timedelta(days=index // (len(BUCKETS) * len(DATATYPES))),
        datasets=Datasets(f"tmp_{experiment}", f"raw_{experiment}", experiment),
    )
    added = now - STALE_AGE - timedelta(hours=1) + timedelta(seconds=index % 1800)
    record = JobRecord.new(job, added)
    parsing = added + timedelta(seconds=30)
    detail_at = parsing + timedelta(seconds=index % 1500)
    record.status.history.append(
        StateInfo(State.PARSING, parsing, detail_at, f"parsing archive {index % 40 + 1} of 40")
    )
    record.status.heartbeat_time = record.last_update = detail_at
    record.status.update_count = index % 40 + 1
    return record


def post_processing_record(job: Job, added: datetime) -> Any:
    """``job`` as a record in ``postProcessing`` (init → parsing → postProcessing), added at
    ``added``."""
    from shared.model import JobRecord

    record = JobRecord.new(job, added)
    parsing, parsed = added + timedelta(seconds=10), added + timedelta(seconds=70)
    record.status.history += [
        StateInfo(State.PARSING, parsing, parsed, "parsed 40 archives"),
        StateInfo(State.POST_PROCESSING, parsed, parsed),
    ]
    record.status.heartbeat_time = record.last_update = parsed
    record.status.update_count = 2
    return record


def load(store: Any, records: Iterable[Any], chunk: int = 5_000) -> float:
    """Create ``records`` in ``store``, ``chunk`` at a time; the seconds taken. RuntimeError if
    one existed already (the project was not empty)."""
    start, remaining, created, total = time.perf_counter(), iter(records), 0, 0
    while part := list(itertools.islice(remaining, chunk)):
        total, created = total + len(part), created + len(store.create_missing(part))
    if created != total:
        raise RuntimeError(f"created {created} jobs of {total}: the project was not empty")
    return time.perf_counter() - start


def bench_job(index: int, experiment: str = "ndt") -> Any:
    """Benchmark job number ``index``: ``ndt7`` in ``archive-bench``, one date per index."""
    return Job(
        "archive-bench",
        experiment,
        "ndt7",
        date(2020, 1, 1) + timedelta(days=index),
        datasets=Datasets("tmp_ndt", "raw_ndt", "ndt"),
    )


def create_parsing_jobs(tracker: Any, jobs: Sequence[Any]) -> list[str]:
    """Add ``jobs`` and move each to ``parsing`` (8 threads); their keys, in order."""
    from concurrent.futures import ThreadPoolExecutor

    from shared.model import State

    def one(job: Any) -> str:
        tracker.add_job(job)
        tracker.set_status(job.key(), State.PARSING, "start")
        return str(job.key())

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, jobs))
