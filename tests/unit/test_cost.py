"""The cost table's arithmetic (local/cost.py)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from local.cost import COUNTED, DAYS_PER_MONTH, PRICES, SCALE, counted_from_results, monthly


def test_archives_dominate_and_each_line_is_operations_times_price() -> None:
    free = replace(
        PRICES,
        firestore_free_reads_per_day=0,
        firestore_free_writes_per_day=0,
        free_requests_per_month=0,
    )
    quiet = replace(
        SCALE,
        idle_fraction=0,
        scrapes_per_day=0,
        status_loads_per_day=0,
        live_jobs=0,
        maintain_per_day=0,
        postprocess_per_day=0,
    )
    r = monthly(COUNTED, quiet, free)
    jobs = quiet.jobs_per_day * DAYS_PER_MONTH
    archives = jobs * quiet.archives_per_job
    reads = (
        jobs * (COUNTED.job_reads + COUNTED.postprocess_reads) + archives * COUNTED.archive_reads
    )
    assert r["ops_per_month"]["firestore_reads"] == pytest.approx(reads)
    assert r["cost_per_month"]["Firestore reads"] == pytest.approx(reads / 1e5 * 0.03)
    requests = jobs * 3 + archives * COUNTED.archive_requests
    assert r["cost_per_month"]["Function requests"] == pytest.approx(requests / 1e6 * 0.40)
    assert r["total_per_month"] == pytest.approx(sum(r["cost_per_month"].values()))


def test_the_free_tier_is_taken_off_first() -> None:
    none = replace(
        SCALE,
        jobs_per_day=0,
        idle_fraction=0,
        scrapes_per_day=0,
        status_loads_per_day=0,
        live_jobs=0,
        maintain_per_day=0,
        postprocess_per_day=0,
    )
    assert monthly(COUNTED, none, PRICES)["total_per_month"] == 0


def test_counts_are_read_from_benchmark_results(tmp_path) -> None:
    (tmp_path / "lifecycle.json").write_text(
        json.dumps(
            {
                "config": {"archives": 10},
                "per_job": {
                    "reads_per_job": 36.0,
                    "writes_per_job": 15.0,
                    "gcs_lists_per_job": 1.5,
                    "job_reads_per_job": 6.0,
                    "job_writes_per_job": 5.0,
                },
            }
        )
    )
    (tmp_path / "hot_job.json").write_text(
        json.dumps(
            {
                "scenarios": [
                    {
                        "name": "one hot job",
                        "reads_per_archive": 9.0,
                        "writes_per_archive": 9.0,
                        "requests_per_archive": 9.0,
                    },
                    {
                        "name": "m-lab shape",
                        "reads_per_archive": 2.9,
                        "writes_per_archive": 1.02,
                        "requests_per_archive": 2.1,
                    },
                ]
            }
        )
    )
    (tmp_path / "next_job.json").write_text(
        json.dumps(
            {
                "per_call": [
                    {
                        "call": "hand-out, all",
                        "reads": 9.0,
                        "writes": 9.0,
                        "queries": 9.0,
                        "gcs_lists": 9.0,
                    },
                    {
                        "call": "no job, every candidate out, stream resting",
                        "reads": 2.0,
                        "writes": 0.0,
                        "queries": 3.0,
                        "gcs_lists": 0.0,
                    },
                ]
            }
        )
    )
    counted, used = counted_from_results(tmp_path)
    assert (counted.job_reads, counted.job_writes, counted.job_gcs_lists) == (6.0, 5.0, 1.5)
    assert (counted.archive_reads, counted.archive_writes, counted.archive_requests) == (
        2.9,
        1.02,
        2.1,
    )  # the m-lab shape, not the first scenario
    assert (counted.idle_next_reads, counted.idle_next_writes) == (5.0, 0.0)
    assert counted.postprocess_reads == COUNTED.postprocess_reads and len(used) == 3
