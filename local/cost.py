"""The monthly cost at M-Lab's scale: counted operations times published prices.

Operation counts per job and per archive come from the benchmarks' results
(``lifecycle.json``, ``hot_job.json``, ``next_job.json``, ``postprocess.json``)
when they exist, else from :data:`COUNTED`. Everything else is an assumption
named in :data:`SCALE` and :data:`PRICES`; change them there. ``python -m
bench.cost`` prints the table.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

#: The hot-job scenario whose per-archive counts the table uses (8 jobs × 100 tasks).
MLAB_SHAPE = "m-lab shape"

#: The next-job benchmark's row of a "no job" answer while the stream rests.
RESTING = "no job, every candidate out, stream resting"
DAYS_PER_MONTH = 30


@dataclass(frozen=True)
class Counted:
    """Operations counted by the benchmarks (``StoreStats``, the GCS lister's count)."""

    #: One job's lifecycle without its archives (next, ``parsing``, ``postProcessing``):
    #: lifecycle's per-job figures less its archives' heartbeats and updates.
    job_reads: float = 7.0
    job_writes: float = 5.0
    job_gcs_lists: float = 1.31
    #: Post-processing, postProcessing to complete (14 visits).
    postprocess_reads: float = 29.0
    postprocess_writes: float = 29.0
    #: Clean-up of a complete job by ``maintain``.
    cleanup_deletes: float = 1.0
    #: Per archive at m-lab's fan-out (100 tasks on a job, 10 finishing a second): an
    #: update (one read; one write, to the job document at most once a second, else a
    #: progress shard, whose writer reads the job once more) and its heartbeat (one read;
    #: coalesced, no write). Shard sums and state-change folds are in these counts.
    archive_requests: float = 2.0
    archive_reads: float = 3.0
    archive_writes: float = 1.0
    #: A ``next`` answering "no job" while every job is in flight and the stream rests: the two
    #: stream cursors and the owed-runs hint; no owed-run query while nothing is owed, and no
    #: query of the pauses while none is in force (the hint says so).
    idle_next_reads: float = 3.0
    idle_next_writes: float = 0.0
    idle_next_gcs_lists: float = 0.0
    #: A ``/metrics`` scrape: the 16 job-count shards, per source its totals' shards (up to
    #: 16), the oldest job in flight, yesterday's daily job and (without a document) its
    #: lookup in the reprocessing queue, and 6 more (cursors, pauses, the queue's count, the
    #: tasks' last successes): 16 + 19 x 16 sources + 6.
    scrape_reads: float = 326.0
    #: A ``/status`` load: its rows, plus the 16 job-count shards, the pauses, the 2 stream
    #: cursors, the grid's 14 days x 16 sources, and per source a count of its queued
    #: reprocessing and at most one lookup of yesterday's job in the queue: 16 + 1 + 2 +
    #: 224 + 32.
    status_rows: float = 1000.0
    status_reads: float = 275.0


#: The counts as measured (docs/performance.md); results files override the first five.
COUNTED = Counted()


@dataclass(frozen=True)
class Scale:
    """M-Lab's shape, assumed (see docs/performance.md, "Cost", for the reasons)."""

    sources: int = 16  # the production config's sources
    jobs_per_day: float = 1000.0  # 16 daily + historical reprocessing
    archives_per_job: float = 5000.0  # ndt7: ~1,000-10,000 archives a day-job
    parsers: int = 8
    idle_poll_seconds: float = 10.0  # an idle parser asks for a job every 10 s
    idle_fraction: float = 0.5  # of the day a parser waits for work
    maintain_per_day: int = 144  # every 10 min
    postprocess_per_day: int = 1440  # every minute
    scrapes_per_day: int = 5760  # /metrics every 15 s
    status_loads_per_day: int = 100  # people looking at /status
    live_jobs: float = 500.0  # jobs in the collection at a time (each snapshot reads them)
    request_seconds: float = 0.1  # billed time per parser request (rounded up to 100 ms)
    request_vcpu: float = 0.333  # `api`: 512 MiB
    request_gib: float = 0.5
    tick_seconds: float = 5.0  # mean billed time of a scheduled call
    tick_vcpu: float = 0.583  # 1 GiB
    tick_gib: float = 1.0


SCALE = Scale()


@dataclass(frozen=True)
class Prices:
    """List prices in USD: us-central1, Firestore Standard edition, Cloud Run tier 1, GCS
    Standard class (:data:`PRICES_AS_OF`, :data:`SOURCES`)."""

    firestore_read_per_100k: float = 0.03
    firestore_write_per_100k: float = 0.09
    firestore_delete_per_100k: float = 0.01
    firestore_free_reads_per_day: float = 50_000
    firestore_free_writes_per_day: float = 20_000
    firestore_free_deletes_per_day: float = 20_000
    requests_per_million: float = 0.40
    free_requests_per_month: float = 2_000_000
    vcpu_second: float = 0.000024
    free_vcpu_seconds_per_month: float = 180_000
    gib_second: float = 0.0000025
    free_gib_seconds_per_month: float = 360_000
    gcs_class_a_per_1000: float = 0.005  # list, upload
    gcs_class_b_per_1000: float = 0.0004  # get
    gcs_free_class_a_per_month: float = 5_000
    gcs_free_class_b_per_month: float = 50_000
    scheduler_job_per_month: float = 0.10
    scheduler_free_jobs: int = 3


PRICES = Prices()

#: Where the prices come from, and when they were taken.
PRICES_AS_OF = (
    "list prices as published in 2025 (not re-checked for this table; the Firestore "
    "free tier was checked on its pricing page in November 2026)"
)

SOURCES = {
    "Firestore": "https://cloud.google.com/firestore/pricing",
    "Cloud Run functions": "https://cloud.google.com/functions/pricing",
    "Cloud Storage": "https://cloud.google.com/storage/pricing",
    "Cloud Scheduler": "https://cloud.google.com/scheduler/pricing",
}


def counted_from_results(results: Path) -> tuple[Counted, list[str]]:
    """:data:`COUNTED`, with the per-job and per-archive counts of this machine's benchmark
    results where present."""
    values, used = asdict(COUNTED), []
    lifecycle = results / "lifecycle.json"
    if lifecycle.exists():
        report = json.loads(lifecycle.read_text())
        per_job = report["per_job"]
        values["job_reads"] = per_job["job_reads_per_job"]
        values["job_writes"] = per_job["job_writes_per_job"]
        values["job_gcs_lists"] = per_job["gcs_lists_per_job"]
        used.append(str(lifecycle))
    hot_job = results / "hot_job.json"
    if hot_job.exists():
        scenarios = json.loads(hot_job.read_text())["scenarios"]
        shape = next((s for s in scenarios if s["name"] == MLAB_SHAPE), scenarios[-1])
        values["archive_reads"] = shape["reads_per_archive"]
        values["archive_writes"] = shape["writes_per_archive"]
        values["archive_requests"] = shape["requests_per_archive"]
        used.append(str(hot_job))
    next_job = results / "next_job.json"
    if next_job.exists():
        resting = [c for c in json.loads(next_job.read_text())["per_call"] if c["call"] == RESTING]
        if resting:
            # Owed-run queries made are billed one read each (when empty). The pauses are read
            # only while one is in force, which the resting state does not assume.
            values["idle_next_reads"] = resting[0]["reads"] + resting[0]["queries"]
            values["idle_next_writes"] = resting[0]["writes"]
            values["idle_next_gcs_lists"] = resting[0]["gcs_lists"]
            used.append(str(next_job))
    postprocess = results / "postprocess.json"
    if postprocess.exists():
        series = [
            s for s in json.loads(postprocess.read_text())["series"] if not s["stopped_early"]
        ]
        if series:
            values["postprocess_reads"] = series[-1]["reads_per_job_chain"]
            values["postprocess_writes"] = series[-1]["writes_per_job_chain"]
            used.append(str(postprocess))
    return Counted(**values), used


def monthly(c: Counted, s: Scale, p: Prices) -> dict[str, Any]:
    """Operations and cost per month, per service, from counts ``c`` at scale ``s``."""
    d = DAYS_PER_MONTH
    jobs = s.jobs_per_day * d
    archives = jobs * s.archives_per_job
    idle_polls = s.parsers * s.idle_fraction * 86_400 / s.idle_poll_seconds * d
    scheduled = (s.maintain_per_day + s.postprocess_per_day) * d
    snapshot_reads = s.live_jobs * s.maintain_per_day * d
    reads = (
        jobs * (c.job_reads + c.postprocess_reads)
        + archives * c.archive_reads
        + idle_polls * c.idle_next_reads
        + snapshot_reads
        + s.scrapes_per_day * d * c.scrape_reads
        + s.status_loads_per_day * d * (c.status_rows + c.status_reads)
    )
    writes = (
        jobs * (c.job_writes + c.postprocess_writes)
        + archives * c.archive_writes
        + idle_polls * c.idle_next_writes
    )
    deletes = jobs * c.cleanup_deletes
    parser_requests = jobs * (3 + s.archives_per_job * c.archive_requests) + idle_polls
    requests = parser_requests + scheduled + s.scrapes_per_day * d + s.status_loads_per_day * d
    gcs_a = jobs * c.job_gcs_lists + idle_polls * c.idle_next_gcs_lists + s.maintain_per_day * d * 3
    gcs_b = s.maintain_per_day * d  # the snapshot pointer read

    def over(used: float, free: float) -> float:
        return max(0.0, used - free)

    ops = {
        "firestore_reads": reads,
        "firestore_writes": writes,
        "firestore_deletes": deletes,
        "function_requests": requests,
        "gcs_class_a": gcs_a,
        "gcs_class_b": gcs_b,
    }
    vcpu_s = (
        requests * s.request_seconds * s.request_vcpu + scheduled * s.tick_seconds * s.tick_vcpu
    )
    gib_s = requests * s.request_seconds * s.request_gib + scheduled * s.tick_seconds * s.tick_gib
    cost = {
        "Firestore reads": over(reads, p.firestore_free_reads_per_day * d)
        / 1e5
        * p.firestore_read_per_100k,
        "Firestore writes": over(writes, p.firestore_free_writes_per_day * d)
        / 1e5
        * p.firestore_write_per_100k,
        "Firestore deletes": over(deletes, p.firestore_free_deletes_per_day * d)
        / 1e5
        * p.firestore_delete_per_100k,
        "Function requests": over(requests, p.free_requests_per_month)
        / 1e6
        * p.requests_per_million,
        "Function vCPU-seconds": over(vcpu_s, p.free_vcpu_seconds_per_month) * p.vcpu_second,
        "Function GiB-seconds": over(gib_s, p.free_gib_seconds_per_month) * p.gib_second,
        "GCS class A (lists, uploads)": over(gcs_a, p.gcs_free_class_a_per_month)
        / 1000
        * p.gcs_class_a_per_1000,
        "GCS class B (gets)": over(gcs_b, p.gcs_free_class_b_per_month)
        / 1000
        * p.gcs_class_b_per_1000,
        "Cloud Scheduler (2 jobs)": max(0, 2 - p.scheduler_free_jobs) * p.scheduler_job_per_month,
    }
    ops["vcpu_seconds"], ops["gib_seconds"] = vcpu_s, gib_s
    per = {
        "per_job": {
            "reads": c.job_reads + c.postprocess_reads,
            "writes": c.job_writes + c.postprocess_writes,
            "deletes": c.cleanup_deletes,
            "gcs_lists": c.job_gcs_lists,
            "requests": 3.0,
        },
        "per_archive": {
            "reads": c.archive_reads,
            "writes": c.archive_writes,
            "requests": c.archive_requests,
        },
    }
    return {
        "ops_per_month": ops,
        "cost_per_month": cost,
        "total_per_month": sum(cost.values()),
        **per,
    }
