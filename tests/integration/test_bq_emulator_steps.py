"""Which post-processing steps the BigQuery emulator runs: what ``make run`` tells the operator.

Each step of the standard chain is run on the emulator against the tables
:func:`local.bq_emulator.create_tables` makes and rows :func:`write_rows` puts
where the load reads; the steps listed in :data:`UNSUPPORTED` must be refused
and every other one must succeed, so that list stays a measurement.
"""

from __future__ import annotations

import time
import uuid
from datetime import date, timedelta
from pathlib import Path

import pytest

from local import bq_emulator
from local.bq_emulator import UNSUPPORTED, create_tables, unsupported_steps, write_rows
from shared.config import Config, Source
from shared.model import Datasets, Job, State
from shared.postprocess import STANDARD_PIPELINE
from shared.warehouse import StepOutcome, StepRejected, StepResult, Warehouse, job_id

PROJECT = "demo-gardener"
INPUT_BUCKET = "parser-output"
DAY = date(2026, 11, 20)


@pytest.fixture
def setup(bq_url: str, bq_gcs_root: Path) -> tuple[Warehouse, Job, list[str]]:
    """A warehouse on the emulator, a job of a source of its own, its tables and rows."""
    tag = uuid.uuid4().hex[:8]
    datasets = Datasets(f"tmp_{tag}", f"raw_{tag}", f"join_{tag}")
    source = Source(f"archive-{tag}", "ndt", "ndt7", "", datasets)
    config = Config(DAY, timedelta(hours=5), timedelta(minutes=1), (source,))
    bq = bq_emulator.client(bq_url, PROJECT)
    tables = create_tables(bq, config)
    assert create_tables(bq, config) == tables  # a second run finds them and changes nothing
    job = Job(source.bucket, "ndt", "ndt7", DAY, datasets=datasets)
    write_rows(bq_gcs_root, INPUT_BUCKET, job, "rows.json", ["a", "b", "a"])
    return Warehouse(bq, PROJECT, INPUT_BUCKET), job, tables


def run(warehouse: Warehouse, job: Job, step: State) -> StepResult:
    """Run one step to its end as post-processing would; a refused start is its result."""
    if step is State.DELETING:
        return warehouse.delete_partition(job)
    jid = job_id(job.key(), step, "2026-11-27T12:00:00Z", 0)
    try:
        warehouse.start(step, job, jid)
    except StepRejected as exc:
        return exc.result
    deadline = time.monotonic() + 30
    while (result := warehouse.result(jid)).outcome is StepOutcome.RUNNING:
        assert time.monotonic() < deadline, result.detail
        time.sleep(0.1)
    return result


def test_tables_for_every_step_of_the_source(setup):
    _, job, tables = setup
    tmp, raw, _ = job.datasets.tmp, job.datasets.raw, job.datasets.join
    assert tables == [
        f"{PROJECT}.{tmp}.ndt7",
        f"{PROJECT}.{raw}.ndt7",
        f"{PROJECT}.{raw}.annotation2",
    ]


def test_the_emulator_runs_exactly_the_steps_not_listed_as_unsupported(setup):
    warehouse, job, _ = setup
    outcomes = {step: run(warehouse, job, step) for step in STANDARD_PIPELINE}
    done = [s for s, r in outcomes.items() if r.outcome is StepOutcome.DONE]
    refused = [s for s, r in outcomes.items() if r.outcome is StepOutcome.FAILED]
    assert done == [State.LOADING, State.DEDUPLICATING], outcomes
    assert refused == list(UNSUPPORTED), outcomes
    assert "3 rows" in outcomes[State.LOADING].detail
    assert outcomes[State.DEDUPLICATING].detail.startswith("Dedup took ")
    assert "Not found: table" in outcomes[State.COPYING].detail
    assert "Invalid table id" in outcomes[State.DELETING].detail
    assert "Schema update options" in outcomes[State.JOINING].detail
    assert list(unsupported_steps(STANDARD_PIPELINE)) == [
        State.COPYING,
        State.DELETING,
        State.JOINING,
    ]
    assert unsupported_steps([State.LOADING]) == {}
