"""The BigQuery side of post-processing (shared.warehouse) against the real BigQuery emulator.

The emulator (PyPI ``bqemulator``) runs loads from a local folder standing in
for GCS, DML and plain queries. It cannot run partition decorators
(``table$YYYYMMDD``: copies and deletes of a partition are refused), does not
write a query's destination table, and refuses the join job's schema update
options for the same reason; so the copy, the partition delete and the join's
destination are checked on :meth:`Warehouse.build`, and the join's SQL is run
without a destination. It also runs a job id twice instead of answering 409,
and finishes every job before answering the insert, so Conflict, RUNNING and
retryable job errors are checked with job resources in BigQuery's own format
and a stand-in client."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import requests
from google.api_core import exceptions as gexc
from google.cloud import bigquery

from local import bq_emulator
from local.bq_emulator import BqEmulator
from local.emulator import EmulatorError, free_port
from shared.errors import Unavailable
from shared.model import Datasets, Job, State
from shared.postprocess import STANDARD_PIPELINE
from shared.warehouse import (
    STEPS,
    StepOutcome,
    StepRejected,
    StepResult,
    Warehouse,
    WarehouseUnavailable,
    is_retryable,
    job_id,
    skip_detail,
    step_of,
)

PROJECT = "demo-gardener"
INPUT_BUCKET = "etl-mlab-sandbox"
DAY = date(2024, 1, 2)
T1, T2, T3 = "2024-01-03T01:00:00Z", "2024-01-03T02:00:00Z", "2024-01-03T03:00:00Z"

PARSER = bigquery.SchemaField(
    "parser",
    "RECORD",
    fields=[bigquery.SchemaField("Version", "STRING"), bigquery.SchemaField("Time", "TIMESTAMP")],
)
NDT7_SCHEMA = [
    bigquery.SchemaField("id", "STRING"),
    bigquery.SchemaField("date", "DATE"),
    PARSER,
    bigquery.SchemaField(
        "a", "RECORD", fields=[bigquery.SchemaField("MeanThroughputMbps", "FLOAT64")]
    ),
]
ANNOTATION_SCHEMA = [
    bigquery.SchemaField("id", "STRING"),
    bigquery.SchemaField("date", "DATE"),
    PARSER,
    bigquery.SchemaField(
        "client", "RECORD", fields=[bigquery.SchemaField("CountryCode", "STRING")]
    ),
]


# -- Fixtures -----------------------------------------------------------------


@pytest.fixture
def gcs_root(bq_gcs_root: Path) -> Path:
    """The folder the emulator reads ``gs://bucket/path`` from, as ``{root}/bucket/path``."""
    return bq_gcs_root


@pytest.fixture
def bq(bq_url: str) -> bigquery.Client:
    """A BigQuery client bound to this module's emulator."""
    return bq_emulator.client(bq_url, PROJECT)


@pytest.fixture
def warehouse(bq: bigquery.Client) -> Warehouse:
    """A warehouse on the emulator."""
    return Warehouse(bq, PROJECT, INPUT_BUCKET)


@pytest.fixture
def job(bq: bigquery.Client) -> Job:
    """An ndt7 job of its own: fresh tmp/raw/join datasets and experiment name."""
    tag = uuid.uuid4().hex[:8]
    datasets = Datasets(tmp=f"tmp_ndt_{tag}", raw=f"raw_ndt_{tag}", join=f"ndt_{tag}")
    for name in (datasets.tmp, datasets.raw, datasets.join):
        bq.create_dataset(f"{PROJECT}.{name}")
    return Job("archive-mlab-sandbox", f"ndt-{tag}", "ndt7", DAY, datasets=datasets)


def make_table(
    bq: bigquery.Client, dataset: str, name: str, schema: list[bigquery.SchemaField]
) -> str:
    """Create a date-partitioned table; return its id."""
    table = bigquery.Table(f"{PROJECT}.{dataset}.{name}", schema=schema)
    table.time_partitioning = bigquery.TimePartitioning(field="date")
    bq.create_table(table)
    return table.table_id


def row(id_: str, time_: str, day: str = "2024-01-02", mbps: float = 1.0) -> dict[str, Any]:
    """One ndt7 row."""
    return {
        "id": id_,
        "date": day,
        "parser": {"Version": "v1", "Time": time_},
        "a": {"MeanThroughputMbps": mbps},
    }


def put_files(
    gcs_root: Path, job: Job, files: dict[str, list[dict[str, Any]]], day: date = DAY
) -> None:
    """Write NDJSON files where the job's load looks for them (under another ``day`` if given)."""
    folder = (
        gcs_root / INPUT_BUCKET / job.bucket / job.experiment / job.datatype / f"{day:%Y/%m/%d}"
    )
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in files.items():
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows))


def wait(warehouse: Warehouse, jid: str, timeout: float = 30.0) -> StepResult:
    """Poll a job until it is no longer RUNNING."""
    deadline = time.monotonic() + timeout
    while True:
        result = warehouse.result(jid)
        if result.outcome is not StepOutcome.RUNNING or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


def rows_of(bq: bigquery.Client, sql: str) -> list[tuple[Any, ...]]:
    """Run a query on the emulator; return its rows as tuples."""
    return [tuple(r.values()) for r in bq.query(sql, job_retry=None).result()]


def jid(job: Job, step: State, attempt: int = 0) -> str:
    """A job id for ``job`` at ``step`` in a fixed run."""
    return job_id(job.key(), step, "2026-11-27T12:00:00Z", attempt)


# -- Load --------------------------------------------------------------------


def test_load_appends_the_days_files(
    warehouse: Warehouse, bq: bigquery.Client, job: Job, gcs_root: Path
) -> None:
    make_table(bq, job.datasets.tmp, "ndt7", NDT7_SCHEMA)
    put_files(gcs_root, job, {"a.json": [row("a", T1), row("b", T1)], "b.json": [row("c", T2)]})
    put_files(gcs_root, job, {"x.json": [row("x", T1, "2024-01-03")]}, day=date(2024, 1, 3))

    load_id = jid(job, State.LOADING)
    warehouse.start(State.LOADING, job, load_id)
    result = wait(warehouse, load_id)

    assert result.outcome is StepOutcome.DONE, result.detail
    assert result.detail.startswith("Load took ")
    assert "3 rows" in result.detail
    got = rows_of(bq, f"SELECT id FROM `{PROJECT}.{job.datasets.tmp}.ndt7` ORDER BY id")
    assert got == [("a",), ("b",), ("c",)]


def test_start_twice_with_one_id_runs_one_job(
    warehouse: Warehouse, bq: bigquery.Client, job: Job, gcs_root: Path
) -> None:
    make_table(bq, job.datasets.tmp, "ndt7", NDT7_SCHEMA)
    put_files(gcs_root, job, {"a.json": [row("a", T1), row("b", T1)]})
    load_id = jid(job, State.LOADING)

    warehouse.start(State.LOADING, job, load_id)
    warehouse.start(State.LOADING, job, load_id)

    assert wait(warehouse, load_id).outcome is StepOutcome.DONE
    assert bq.get_job(load_id).job_id == load_id
    assert [j.job_id for j in bq.list_jobs(max_results=1000)].count(load_id) == 1
    assert rows_of(bq, f"SELECT COUNT(*) FROM `{PROJECT}.{job.datasets.tmp}.ndt7`") == [(2,)]


def test_load_into_a_missing_table_fails(warehouse: Warehouse, job: Job, gcs_root: Path) -> None:
    put_files(gcs_root, job, {"a.json": [row("a", T1)]})
    load_id = jid(job, State.LOADING)
    warehouse.start(State.LOADING, job, load_id)

    result = wait(warehouse, load_id)

    assert result.outcome is StepOutcome.FAILED
    assert result.detail.startswith(f"Load job {load_id} failed: ")
    assert "ndt7" in result.detail


def test_load_without_files_fails(warehouse: Warehouse, bq: bigquery.Client, job: Job) -> None:
    make_table(bq, job.datasets.tmp, "ndt7", NDT7_SCHEMA)
    load_id = jid(job, State.LOADING)
    warehouse.start(State.LOADING, job, load_id)

    result = wait(warehouse, load_id)

    assert result.outcome is StepOutcome.FAILED
    assert result.detail.startswith("Load job ") and "No files found" in result.detail


def test_load_plan() -> None:
    wh = Warehouse(offline_client(), PROJECT, INPUT_BUCKET)
    job = Job(
        "archive-mlab-oti", "ndt", "ndt7", DAY, datasets=Datasets("tmp_ndt", "raw_ndt", "ndt")
    )

    plan = wh.build(State.LOADING, job)

    assert plan.kind == "load"
    assert plan.source == "gs://etl-mlab-sandbox/archive-mlab-oti/ndt/ndt7/2024/01/02/*"
    assert plan.destination == "demo-gardener.tmp_ndt.ndt7"
    assert isinstance(plan.config, bigquery.LoadJobConfig)
    assert plan.config.source_format == "NEWLINE_DELIMITED_JSON"
    assert plan.config.write_disposition == "WRITE_APPEND"
    assert plan.config.create_disposition == "CREATE_NEVER"
    assert not plan.config.autodetect and plan.config.schema is None


# -- Dedup -------------------------------------------------------------------


def test_dedup_keeps_the_latest_parse_per_id(
    warehouse: Warehouse, bq: bigquery.Client, job: Job, gcs_root: Path
) -> None:
    make_table(bq, job.datasets.tmp, "ndt7", NDT7_SCHEMA)
    put_files(
        gcs_root,
        job,
        {
            "a.json": [
                row("a", T1, mbps=1),
                row("a", T3, mbps=3),
                row("a", T2, mbps=2),
                row("b", T1, mbps=4),
                row("c", T2, mbps=5),
                row("c", T1, mbps=6),
                # Another date in the same table: not touched, duplicates and all.
                row("a", T1, "2024-01-01", mbps=7),
                row("a", T2, "2024-01-01", mbps=8),
            ]
        },
    )
    load_id = jid(job, State.LOADING)
    warehouse.start(State.LOADING, job, load_id)
    assert wait(warehouse, load_id).outcome is StepOutcome.DONE

    dedup_id = jid(job, State.DEDUPLICATING)
    warehouse.start(State.DEDUPLICATING, job, dedup_id)
    result = wait(warehouse, dedup_id)

    assert result.outcome is StepOutcome.DONE, result.detail
    assert result.detail.startswith("Dedup took ")
    assert "3 Rows affected" in result.detail
    got = rows_of(
        bq,
        f"SELECT CAST(date AS STRING), id, a.MeanThroughputMbps "
        f"FROM `{PROJECT}.{job.datasets.tmp}.ndt7` ORDER BY 1, 2, 3",
    )
    assert got == [
        ("2024-01-01", "a", 7.0),
        ("2024-01-01", "a", 8.0),
        ("2024-01-02", "a", 3.0),
        ("2024-01-02", "b", 4.0),
        ("2024-01-02", "c", 5.0),
    ]


def test_dedup_of_a_missing_table_fails(warehouse: Warehouse, job: Job) -> None:
    dedup_id = jid(job, State.DEDUPLICATING)
    warehouse.start(State.DEDUPLICATING, job, dedup_id)

    result = wait(warehouse, dedup_id)

    assert result.outcome is StepOutcome.FAILED
    assert result.detail.startswith(f"Dedup job {dedup_id} failed: ")


def test_dedup_plan() -> None:
    wh = Warehouse(offline_client(), PROJECT, INPUT_BUCKET)
    job = Job(
        "archive-mlab-oti", "ndt", "ndt7", DAY, datasets=Datasets("tmp_ndt", "raw_ndt", "ndt")
    )

    plan = wh.build(State.DEDUPLICATING, job)

    assert plan.kind == "query"
    assert isinstance(plan.config, bigquery.QueryJobConfig)
    assert plan.config.priority == "BATCH" and plan.config.destination is None
    assert plan.sql.count("`demo-gardener.tmp_ndt.ndt7`") == 2
    assert plan.sql.count('date = DATE "2024-01-02"') == 2
    assert "ORDER BY parser.Time DESC" in plan.sql


# -- Copy and delete (partition decorators: plans only) -----------------------


def test_copy_plan() -> None:
    wh = Warehouse(offline_client(), PROJECT, INPUT_BUCKET)
    job = Job(
        "archive-mlab-oti", "ndt", "ndt7", DAY, datasets=Datasets("tmp_ndt", "raw_ndt", "ndt")
    )

    plan = wh.build(State.COPYING, job)

    assert plan.kind == "copy"
    assert plan.source == "demo-gardener.tmp_ndt.ndt7$20240102"
    assert plan.destination == "demo-gardener.raw_ndt.ndt7$20240102"
    assert isinstance(plan.config, bigquery.CopyJobConfig)
    assert plan.config.write_disposition == "WRITE_TRUNCATE"


def test_delete_plan_and_start_refuses_it() -> None:
    wh = Warehouse(offline_client(), PROJECT, INPUT_BUCKET)
    job = Job(
        "archive-mlab-oti", "ndt", "ndt7", DAY, datasets=Datasets("tmp_ndt", "raw_ndt", "ndt")
    )

    plan = wh.build(State.DELETING, job)

    assert (plan.kind, plan.config, plan.destination) == (
        "delete",
        None,
        "demo-gardener.tmp_ndt.ndt7$20240102",
    )
    with pytest.raises(ValueError, match="delete_partition"):
        wh.start(State.DELETING, job, jid(job, State.DELETING))


# -- Join --------------------------------------------------------------------


def test_join_sql_takes_annotations_of_the_day_and_the_day_before(
    warehouse: Warehouse, bq: bigquery.Client, job: Job
) -> None:
    raw = make_table(bq, job.datasets.raw, "ndt7", NDT7_SCHEMA)
    ann = make_table(bq, job.datasets.raw, "annotation2", ANNOTATION_SCHEMA)
    bq.insert_rows_json(
        f"{PROJECT}.{job.datasets.raw}.{raw}",
        [
            row("a", T1, mbps=1),
            row("b", T1, mbps=2),
            row("c", T1, mbps=3),
            row("d", T1, mbps=4),
            row("e", T1, "2024-01-01", mbps=5),  # another date: not in the output
        ],
    )

    def annotation(id_: str, day: str, cc: str) -> dict[str, Any]:
        return {
            "id": id_,
            "date": day,
            "parser": {"Version": "ann", "Time": T1},
            "client": {"CountryCode": cc},
        }

    bq.insert_rows_json(
        f"{PROJECT}.{job.datasets.raw}.{ann}",
        [
            annotation("a", "2024-01-02", "US"),
            annotation("b", "2024-01-01", "DE"),
            annotation("c", "2023-12-31", "old"),
            annotation("d", "2024-01-03", "new"),
            annotation("e", "2024-01-01", "FR"),
        ],
    )

    plan = warehouse.build(State.JOINING, job)
    got = [
        (
            r["id"],
            str(r["date"]),
            r["parser"]["Version"],
            r["client"] and r["client"]["CountryCode"],
            r["a"]["MeanThroughputMbps"],
        )
        for r in bq.query(plan.sql, job_retry=None).result()
    ]

    assert sorted(got) == [
        ("a", "2024-01-02", "v1", "US", 1.0),
        ("b", "2024-01-02", "v1", "DE", 2.0),
        ("c", "2024-01-02", "v1", None, 3.0),
        ("d", "2024-01-02", "v1", None, 4.0),
    ]


def test_join_plan() -> None:
    wh = Warehouse(offline_client(), PROJECT, INPUT_BUCKET)
    job = Job(
        "archive-mlab-oti", "ndt", "ndt7", DAY, datasets=Datasets("tmp_ndt", "raw_ndt", "ndt")
    )

    plan = wh.build(State.JOINING, job)

    assert plan.kind == "query"
    config = plan.config
    assert isinstance(config, bigquery.QueryJobConfig)
    assert plan.destination == "demo-gardener.ndt.ndt7$20240102"
    assert config.destination is not None
    assert (config.destination.dataset_id, config.destination.table_id) == ("ndt", "ndt7$20240102")
    assert config.write_disposition == "WRITE_TRUNCATE"
    assert config.create_disposition == "CREATE_IF_NEEDED"
    assert config.time_partitioning is not None
    assert (config.time_partitioning.type_, config.time_partitioning.field) == ("DAY", "date")
    assert config.schema_update_options == ["ALLOW_FIELD_ADDITION", "ALLOW_FIELD_RELAXATION"]
    assert config.priority == "BATCH"
    assert "`demo-gardener.raw_ndt.ndt7`" in plan.sql
    assert "`demo-gardener.raw_ndt.annotation2`" in plan.sql
    assert 'BETWEEN DATE "2024-01-01" AND DATE "2024-01-02"' in plan.sql
    assert "LEFT JOIN ann USING (id)" in plan.sql


def test_join_without_a_join_dataset_is_skipped() -> None:
    wh = Warehouse(offline_client(), PROJECT, INPUT_BUCKET)
    job = Job(
        "archive-mlab-oti", "ndt", "annotation2", DAY, datasets=Datasets("tmp_ndt", "raw_ndt")
    )

    assert skip_detail(State.JOINING, job) == "annotation2 does not require join"
    assert skip_detail(State.LOADING, job) is None
    with pytest.raises(ValueError, match="does not require join"):
        wh.build(State.JOINING, job)


# -- Names -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tmp", "tmp-ndt"),
        ("tmp", "tmp`; DROP"),
        ("tmp", ""),
        ("raw", "raw.ndt"),
        ("datatype", "ndt7.x"),
        ("datatype", "nd`t7"),
        ("datatype", ""),
        ("experiment", "nd*t"),
        ("experiment", "a/b"),
        ("bucket", "Archive"),
    ],
)
def test_bad_names_never_reach_bigquery(field: str, value: str) -> None:
    wh = Warehouse(offline_client(), PROJECT, INPUT_BUCKET)
    datasets = {"tmp": "tmp_ndt", "raw": "raw_ndt", "join": "ndt"}
    parts = {"bucket": "archive-mlab-oti", "experiment": "ndt", "datatype": "ndt7"}
    if field in datasets:
        datasets[field] = value
    else:
        parts[field] = value
    job = Job(
        parts["bucket"], parts["experiment"], parts["datatype"], DAY, datasets=Datasets(**datasets)
    )
    step = State.COPYING if field == "raw" else State.LOADING
    if field == "tmp":
        step = State.DEDUPLICATING

    with pytest.raises(ValueError, match="invalid"):
        wh.build(step, job)


@pytest.mark.parametrize("project", ["Demo", "ab", "1project", "demo_gardener", "demo-", "a" * 31])
def test_bad_projects_are_refused(project: str) -> None:
    with pytest.raises(ValueError, match="project id"):
        Warehouse(offline_client(), project, INPUT_BUCKET)


def test_domain_scoped_project_is_accepted() -> None:
    assert Warehouse(offline_client(), "example.com:my-project", INPUT_BUCKET).project


# -- Job ids -----------------------------------------------------------------


JOB_ID_RE = r"[A-Za-z0-9_-]{1,1024}"


@pytest.mark.parametrize("run", ["2026-11-27T12:00:00.123456Z", "r1", "", "x" * 500, "ü ü/ü"])
def test_job_ids_are_valid_and_deterministic(run: str) -> None:
    import re

    key = "archive-mlab-oti/ndt/ndt7/20240102"
    first = job_id(key, State.LOADING, run, 3)

    assert first == job_id(key, State.LOADING, run, 3)
    assert re.fullmatch(JOB_ID_RE, first)
    assert first.startswith("gardener_loading_") and first.endswith("_3")
    assert step_of(first) == STEPS[State.LOADING]


def test_job_ids_differ_for_keys_steps_runs_and_attempts() -> None:
    key = "archive-mlab-oti/ndt/ndt7/20240102"
    ids = {
        job_id(key, State.LOADING, "r", 0),
        job_id("archive-mlab-oti/ndt/ndt7/20240103", State.LOADING, "r", 0),
        job_id(key, State.JOINING, "r", 0),
        job_id(key, State.LOADING, "r2", 0),
        job_id(key, State.LOADING, "r", 1),
        job_id(key, State.LOADING, "a:b", 0),
        job_id(key, State.LOADING, "a.b", 0),
    }
    assert len(ids) == 7
    assert job_id(key, "deduplicating", "r", 0).startswith("gardener_deduplicating_")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("step", "attempt", "message"),
    [
        (State.PARSING, 0, "parsing is not a post-processing step"),
        (State.LOADING, -1, "attempt must be a non-negative integer"),
    ],
)
def test_job_id_refuses_other_states_and_negative_attempts(
    step: State, attempt: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        job_id("k", step, "r", attempt)


def test_steps_cover_the_post_processing_states() -> None:
    assert set(STEPS) == set(STANDARD_PIPELINE)
    assert STEPS["copying"].kind == "copy"  # type: ignore[index]
    assert step_of("someone_elses_job") is None


# -- Results -----------------------------------------------------------------


def test_unknown_job_is_missing(warehouse: Warehouse) -> None:
    """Not RETRY: a new attempt would run under a new id, and the step could run twice."""
    result = warehouse.result("gardener_copying_0123456789abcdef_r_0")

    assert result.outcome is StepOutcome.MISSING
    assert result.detail == "Copy job gardener_copying_0123456789abcdef_r_0 not found"


def test_a_missing_load_is_started_again_under_its_id_and_runs_once(
    bq: bigquery.Client, job: Job, gcs_root: Path
) -> None:
    """What a tick does with a stored id BigQuery answers NotFound for: the same id, never a new one."""
    warehouse = Warehouse(bq, PROJECT, INPUT_BUCKET, location="US")
    make_table(bq, job.datasets.tmp, "ndt7", NDT7_SCHEMA)
    put_files(gcs_root, job, {"a.json": [row("a", T1), row("b", T1)]})
    load_id = jid(job, State.LOADING)  # stored, but the start never reached BigQuery

    assert warehouse.result(load_id).outcome is StepOutcome.MISSING
    warehouse.start(State.LOADING, job, load_id)
    assert wait(warehouse, load_id).outcome is StepOutcome.DONE
    warehouse.start(State.LOADING, job, load_id)  # a look that missed it again: nothing runs

    assert [j.job_id for j in bq.list_jobs(max_results=1000)].count(load_id) == 1
    assert rows_of(bq, f"SELECT COUNT(*) FROM `{PROJECT}.{job.datasets.tmp}.ndt7`") == [(2,)]


def test_bigquery_that_does_not_answer_is_unavailable() -> None:
    dead = bq_emulator.client(f"http://127.0.0.1:{free_port()}", PROJECT)
    wh = Warehouse(dead, PROJECT, INPUT_BUCKET, timeout=1.0, deadline=0.5)
    job = Job(
        "archive-mlab-oti", "ndt", "ndt7", DAY, datasets=Datasets("tmp_ndt", "raw_ndt", "ndt")
    )

    with pytest.raises(WarehouseUnavailable) as info:
        wh.result("gardener_loading_x_r_0")
    assert isinstance(info.value, Unavailable)
    with pytest.raises(WarehouseUnavailable):
        wh.start(State.LOADING, job, "gardener_loading_x_r_0")
    with pytest.raises(WarehouseUnavailable):
        wh.delete_partition(job)


def offline_client() -> bigquery.Client:
    """A client that is never asked anything (it builds jobs from resources)."""
    return bq_emulator.client("http://127.0.0.1:9", PROJECT)


def resource(
    job_type: str,
    state: str = "DONE",
    error: dict[str, str] | None = None,
    errors: list[dict[str, str]] | None = None,
    stats: dict[str, Any] | None = None,
    jid: str = "gardener_loading_x_r_0",
) -> dict[str, Any]:
    """A jobs.get answer in BigQuery's format."""
    status: dict[str, Any] = {"state": state}
    if error:
        status["errorResult"] = error
        status["errors"] = errors or [error]
    config = {
        "load": {
            "sourceUris": ["gs://b/x/*"],
            "destinationTable": {"projectId": PROJECT, "datasetId": "t", "tableId": "x"},
        },
        "query": {"query": "SELECT 1"},
        "copy": {
            "sourceTables": [{"projectId": PROJECT, "datasetId": "t", "tableId": "x"}],
            "destinationTable": {"projectId": PROJECT, "datasetId": "r", "tableId": "x"},
        },
    }[job_type]
    return {
        "jobReference": {"projectId": PROJECT, "jobId": jid, "location": "US"},
        "configuration": {job_type: config},
        "status": status,
        "statistics": {
            "creationTime": "1700000000000",
            "startTime": "1700000000000",
            "endTime": "1700000083400",
            **(stats or {}),
        },
    }


@dataclass
class FakeClient:
    """Answers get_job from a resource, and each start or delete with ``answer`` (raised if an exception)."""

    job: dict[str, Any] | BaseException = field(default_factory=lambda: gexc.NotFound("no job"))
    answer: BaseException | None = None
    calls: list[str] | None = None

    def __post_init__(self) -> None:
        self.calls = []
        self.locations: list[str | None] = []
        self._real = offline_client()

    def get_job(self, job_id: str, **kwargs: Any) -> Any:
        assert self.calls is not None
        self.calls.append("get_job")
        self.locations.append(kwargs.get("location"))
        if isinstance(self.job, BaseException):
            raise self.job
        return self._real.job_from_resource(self.job)

    def _call(self, name: str, **kwargs: Any) -> None:
        assert self.calls is not None
        self.calls.append(name)
        if name != "delete":  # a table is where its dataset is: no location to name
            self.locations.append(kwargs.get("location"))
        if self.answer is not None:
            raise self.answer

    def load_table_from_uri(self, *args: Any, **kwargs: Any) -> None:
        self._call("load", **kwargs)

    def query(self, *args: Any, **kwargs: Any) -> None:
        self._call("query", **kwargs)

    def copy_table(self, *args: Any, **kwargs: Any) -> None:
        self._call("copy", **kwargs)

    def delete_table(self, table: str, **kwargs: Any) -> None:
        assert kwargs.get("not_found_ok") is True
        self._call("delete", **kwargs)


def fake_warehouse(client: FakeClient) -> Warehouse:
    """A warehouse on a stand-in client."""
    return Warehouse(client, PROJECT, INPUT_BUCKET)  # type: ignore[arg-type]


JOB = Job("archive-mlab-oti", "ndt", "ndt7", DAY, datasets=Datasets("tmp_ndt", "raw_ndt", "ndt"))

STREAMING = {
    "reason": "invalidQuery",
    "message": (
        "UPDATE or DELETE statement over table p.tmp_ndt.ndt7 would affect rows in the "
        "streaming buffer, which is not supported"
    ),
}


@pytest.mark.parametrize(
    ("res", "outcome", "detail"),
    [
        (
            resource("load", state="PENDING"),
            StepOutcome.RUNNING,
            "Load job gardener_loading_x_r_0 pending",
        ),
        (
            resource("query", state="RUNNING", jid="gardener_joining_x_r_0"),
            StepOutcome.RUNNING,
            "Join job gardener_joining_x_r_0 running",
        ),
        (
            resource(
                "load",
                stats={
                    "load": {
                        "outputRows": "12",
                        "outputBytes": "3400",
                        "inputFiles": "2",
                        "inputFileBytes": "5600",
                    }
                },
            ),
            StepOutcome.DONE,
            "Load took 1m23.4s, 12 rows with 3400 bytes, from 2 files with 5600 bytes",
        ),
        (
            resource(
                "query",
                jid="gardener_deduplicating_x_r_0",
                stats={
                    "totalSlotMs": "90000",
                    "query": {
                        "totalSlotMs": "90000",
                        "numDmlAffectedRows": "7",
                        "totalBytesProcessed": "25000000",
                        "totalBytesBilled": "26000000",
                    },
                },
            ),
            StepOutcome.DONE,
            "Dedup took 1m23.4s, 1.50 Slot Minutes, 7 Rows affected, 25 MB Processed, 26 MB Billed",
        ),
        (
            resource(
                "copy",
                jid="gardener_copying_x_r_0",
                stats={"copy": {"copiedRows": "12", "copiedLogicalBytes": "3000000"}},
            ),
            StepOutcome.DONE,
            "Copy took 1m23.4s, 12 rows, 3 MB copied",
        ),
        (
            resource("query", jid="gardener_deduplicating_x_r_0", error=STREAMING),
            StepOutcome.RETRY,
            "Dedup job gardener_deduplicating_x_r_0 will be retried: UPDATE or DELETE",
        ),
        (
            resource(
                "query",
                jid="gardener_joining_x_r_0",
                error={"reason": "backendError", "message": "Backend error."},
            ),
            StepOutcome.RETRY,
            "Join job gardener_joining_x_r_0 will be retried: Backend error. [backendError]",
        ),
        (
            resource(
                "load",
                error={"reason": "invalid", "message": "Error while reading data"},
                errors=[
                    {"reason": "invalid", "message": "Error while reading data"},
                    {"reason": "invalid", "message": "No such field: foo."},
                ],
            ),
            StepOutcome.FAILED,
            (
                "Load job gardener_loading_x_r_0 failed: Error while reading data "
                "[invalid]; No such field: foo. [invalid]"
            ),
        ),
        (
            resource(
                "copy", jid="other", error={"reason": "notFound", "message": "Not found: Table"}
            ),
            StepOutcome.FAILED,
            "BigQuery job other failed: Not found: Table [notFound]",
        ),
    ],
)
def test_result_maps_job_states(res: dict[str, Any], outcome: StepOutcome, detail: str) -> None:
    wh = fake_warehouse(FakeClient(job=res))

    result = wh.result(res["jobReference"]["jobId"])

    assert result.outcome is outcome
    assert result.detail.startswith(detail), result.detail


def test_result_of_a_refused_read_is_failed() -> None:
    wh = fake_warehouse(
        FakeClient(
            job=gexc.Forbidden(
                "denied", errors=[{"reason": "accessDenied", "message": "Access Denied"}]
            )
        )
    )

    result = wh.result("gardener_loading_x_r_0")

    assert result.outcome is StepOutcome.FAILED
    assert result.detail == "Load job gardener_loading_x_r_0 failed: Access Denied [accessDenied]"


@pytest.mark.parametrize("step", [State.LOADING, State.DEDUPLICATING, State.COPYING, State.JOINING])
def test_start_tolerates_conflict(step: State) -> None:
    client = FakeClient(answer=gexc.Conflict("Already Exists: Job"))

    fake_warehouse(client).start(step, JOB, jid(JOB, step))

    kind = {"query": "query", "load": "load", "copy": "copy"}[STEPS[step].kind]
    assert client.calls == ["get_job", kind]


@pytest.mark.parametrize("step", [State.LOADING, State.DEDUPLICATING, State.COPYING, State.JOINING])
def test_every_start_and_lookup_names_the_location(step: State) -> None:
    client = FakeClient()
    wh = Warehouse(client, PROJECT, INPUT_BUCKET, location="EU")  # type: ignore[arg-type]

    wh.start(step, JOB, jid(JOB, step))
    wh.result(jid(JOB, step))

    assert client.locations == ["EU", "EU", "EU"]  # lookup, insert, lookup


def test_start_of_an_existing_job_asks_nothing_more() -> None:
    client = FakeClient(job=resource("load"))

    fake_warehouse(client).start(State.LOADING, JOB, "gardener_loading_x_r_0")

    assert client.calls == ["get_job"]


@pytest.mark.parametrize(
    ("answer", "outcome"),
    [
        (
            gexc.BadRequest("bad", errors=[{"reason": "invalid", "message": "Invalid table"}]),
            StepOutcome.FAILED,
        ),
        (gexc.NotFound("Not found: Dataset p:tmp_ndt"), StepOutcome.FAILED),
        (gexc.BadRequest("streaming buffer", errors=[STREAMING]), StepOutcome.RETRY),
    ],
)
def test_start_refused_by_bigquery(answer: BaseException, outcome: StepOutcome) -> None:
    client = FakeClient(answer=answer)

    with pytest.raises(StepRejected) as info:
        fake_warehouse(client).start(State.COPYING, JOB, "gardener_copying_x_r_0")

    assert info.value.result.outcome is outcome
    assert info.value.result.detail.startswith("Copy job gardener_copying_x_r_0 ")


@pytest.mark.parametrize(
    "answer",
    [
        gexc.ServiceUnavailable("down"),
        gexc.TooManyRequests("slow down"),
        gexc.Forbidden(
            "quota", errors=[{"reason": "rateLimitExceeded", "message": "Exceeded rate limits"}]
        ),
        requests.exceptions.ConnectionError("refused"),
    ],
)
def test_start_when_bigquery_is_unavailable(answer: BaseException) -> None:
    with pytest.raises(WarehouseUnavailable):
        fake_warehouse(FakeClient(answer=answer)).start(
            State.JOINING, JOB, "gardener_joining_x_r_0"
        )


@pytest.mark.parametrize(
    ("answer", "outcome"),
    [
        (None, StepOutcome.DONE),
        (gexc.BadRequest("Invalid table id"), StepOutcome.FAILED),
        (gexc.BadRequest("rows in the streaming buffer"), StepOutcome.RETRY),
    ],
)
def test_delete_partition(answer: BaseException | None, outcome: StepOutcome) -> None:
    client = FakeClient(answer=answer)

    result = fake_warehouse(client).delete_partition(JOB)

    assert client.calls == ["delete"]
    assert result.outcome is outcome
    assert "demo-gardener.tmp_ndt.ndt7$20240102" in result.detail


def test_delete_partition_when_bigquery_is_unavailable() -> None:
    with pytest.raises(WarehouseUnavailable):
        fake_warehouse(FakeClient(answer=gexc.InternalServerError("oops"))).delete_partition(JOB)


# -- Retryable errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (STREAMING, True),
        ({"reason": "rateLimitExceeded", "message": "Exceeded rate limits"}, True),
        ({"reason": "backendError", "message": "Backend error"}, True),
        ({"reason": "internalError", "message": "Internal error"}, True),
        ({"reason": "jobInternalError", "message": "Internal error"}, True),
        ({"reason": "invalid", "message": "No such field: foo"}, False),
        ({"reason": "invalidQuery", "message": "Syntax error"}, False),
        ({"reason": "notFound", "message": "Not found: Table"}, False),
        ({"reason": "quotaExceeded", "message": "Quota exceeded: too many tables"}, False),
        ({}, False),
        (gexc.ServiceUnavailable("x"), True),
        (gexc.InternalServerError("x"), True),
        (gexc.BadGateway("x"), True),
        (gexc.GatewayTimeout("x"), True),
        (gexc.TooManyRequests("x"), True),
        (gexc.Forbidden("x", errors=[{"reason": "rateLimitExceeded"}]), True),
        (gexc.Forbidden("x", errors=[{"reason": "accessDenied"}]), False),
        (gexc.BadRequest("would affect rows in the streaming buffer"), True),
        (gexc.BadRequest("x"), False),
        (gexc.NotFound("x"), False),
        (gexc.Conflict("x"), False),
        (gexc.RetryError("deadline", cause=None), True),
        (requests.exceptions.ConnectionError("x"), True),
        (requests.exceptions.Timeout("x"), True),
        (requests.exceptions.SSLError("x"), False),
        (ConnectionResetError("x"), True),
        (ValueError("x"), False),
    ],
)
def test_is_retryable(error: Any, retryable: bool) -> None:
    assert is_retryable(error) is retryable


# -- The emulator manager --------------------------------------------------------


def test_missing_emulator_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BQEMULATOR_PYTHON", "/bin/false")

    with pytest.raises(EmulatorError, match=r"pip install bqemulator==1\.4\.0"):
        BqEmulator().start(timeout=5)


def test_emulator_starts_and_stops(tmp_path: Path) -> None:
    emulator = BqEmulator(gcs_root=tmp_path / "gcs", log_path=tmp_path / "bq.log")
    env = emulator.environment()
    assert env["BQEMU_ENABLE_FORMAT_EXTENSIONS"] == "false"
    assert env["BQEMU_GCS_LOCAL_ROOT"] == str((tmp_path / "gcs").resolve())

    with emulator:
        assert emulator.running
        assert list(bq_emulator.client(emulator.url).list_datasets()) == []
    assert not emulator.running


# -- The post-processing engine on the emulator ------------------------------


def test_ticks_carry_a_job_through_real_load_and_dedup(
    warehouse: Warehouse, bq: bigquery.Client, job: Job, gcs_root: Path, tracker, clock
) -> None:
    """Load and dedup really run; the copy is where the emulator stops (partition decorators)."""
    from datetime import timedelta

    from shared.postprocess import PostProcessor, PostProcessPolicy

    make_table(bq, job.datasets.tmp, "ndt7", NDT7_SCHEMA)
    put_files(gcs_root, job, {"a.json": [row("x1", T1), row("x1", T3), row("x2", T2)]})
    tracker.add_job(job)
    tracker.set_status(job.key(), State.PARSING)
    tracker.set_status(job.key(), State.POST_PROCESSING)
    processor = PostProcessor(tracker, warehouse, PostProcessPolicy(poll=timedelta(0)), clock=clock)
    for _ in range(8):
        processor.tick()
        clock.advance(seconds=1)
        if tracker.get_status(job.key()).state in (State.COPYING, State.FAILED):
            break

    history = tracker.get_status(job.key()).history
    states = [e.state for e in history]
    assert states[2:5] == [State.POST_PROCESSING, State.LOADING, State.DEDUPLICATING]
    assert history[3].detail.startswith("Load took ") and "3 rows" in history[3].detail
    assert history[4].detail.startswith("Dedup took ")
    got = rows_of(
        bq,
        f"SELECT id, CAST(parser.Time AS STRING) FROM "
        f"`{PROJECT}.{job.datasets.tmp}.ndt7` ORDER BY id",
    )
    assert [r[0] for r in got] == ["x1", "x2"] and "03:00:00" in got[0][1]
    prefix = job_id(job.key(), State.LOADING, "x", 0).rsplit("_", 2)[0]
    loads = [j.job_id for j in bq.list_jobs() if j.job_id.startswith(prefix)]
    assert len(loads) == 1  # one BigQuery load job for the job, however many ticks
