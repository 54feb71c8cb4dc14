"""The BigQuery emulator (PyPI ``bqemulator``), started as a process for the tests and local runs.

``bqemulator`` serves BigQuery's REST API on 127.0.0.1 and runs GoogleSQL on
DuckDB. We start it ourselves, one process we own, ready when ``GET /readyz``
answers 200, stopped with SIGTERM. Two things make it work offline:

* ``BQEMU_ENABLE_FORMAT_EXTENSIONS=false``: no download of DuckDB's ``avro``
  extension (Avro loads are not used here);
* the ``spatial`` extension, which the emulator insists on at start-up and
  would download, is loaded only if DuckDB already has it: the emulator runs
  through a small launcher (:data:`LAUNCHER`) that makes that load best-effort.
  GEOGRAPHY columns and ``ST_*`` functions then fail; nothing here uses them.

``gs://bucket/path`` URIs in load jobs are read from ``{gcs_root}/bucket/path``
(``BQEMU_GCS_LOCAL_ROOT``). Clients reach the emulator through :func:`client`.

Of the post-processing steps, the emulator runs the load and the dedup; the
copy, the partition delete and the join it refuses (:data:`UNSUPPORTED`,
measured: ``tests/integration/test_bq_emulator_steps.py``). :func:`create_tables`
creates the datasets and tables a config's steps need, :func:`write_rows` rows
for a load to find.

``BQEMULATOR_PYTHON`` may name another interpreter that has ``bqemulator``
installed (its dependency pins differ from the runtime's); by default the
current interpreter runs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from local.emulator import EmulatorError, EmulatorProcess
from shared.model import Job, State
from shared.warehouse import ANNOTATION_TABLE, DATE_COLUMN

if TYPE_CHECKING:
    from google.cloud import bigquery

    from shared.config import Config

PACKAGE = "bqemulator"
VERSION = "1.4.0"

INSTALL_HINT = (
    f"Install it with `pip install {PACKAGE}=={VERSION}` (requirements-dev.txt), or set "
    f"BQEMULATOR_PYTHON to a Python interpreter that has {PACKAGE} installed."
)

#: Project the emulator's clients use by default (any id works with the emulator).
DEMO_PROJECT = "demo-gardener"

#: Python source run with ``-c`` to start the emulator: the spatial extension becomes
#: optional (it cannot be downloaded offline), then the ``bqemulator`` command line runs.
LAUNCHER = """\
import sys
try:
    from bqemulator.cli import main
    from bqemulator.storage import engine
except ImportError as exc:
    sys.exit(f"cannot import bqemulator: {exc}")

def _load_spatial_if_present(self):
    try:
        self._connection.execute("LOAD spatial")
    except Exception:
        pass  # GEOGRAPHY is unavailable; everything else works

engine.DuckDBEngine._load_spatial = _load_spatial_if_present
sys.argv[0] = "bqemulator"
main()
"""


def python() -> str:
    """Return the interpreter that runs the emulator: ``BQEMULATOR_PYTHON`` or this one."""
    return os.environ.get("BQEMULATOR_PYTHON") or sys.executable


def check_installed(interpreter: str | None = None) -> None:
    """Raise EmulatorError naming the pip package unless ``interpreter`` can import it."""
    interpreter = interpreter or python()
    if interpreter == sys.executable:
        import importlib.util

        if importlib.util.find_spec(PACKAGE) is None:
            raise EmulatorError(
                f"The BigQuery emulator ({PACKAGE}) is not installed. {INSTALL_HINT}"
            )
        return
    try:
        done = subprocess.run(
            [interpreter, "-c", f"import {PACKAGE}"], check=False, capture_output=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EmulatorError(f"cannot run BQEMULATOR_PYTHON={interpreter}: {exc}") from exc
    if done.returncode != 0:
        raise EmulatorError(f"{PACKAGE} is not importable by {interpreter}. {INSTALL_HINT}")


def _status(url: str, timeout: float = 1.0) -> int:
    with urllib.request.urlopen(url, timeout=timeout) as r:  # loopback only
        return int(r.status)


class BqEmulator(EmulatorProcess):
    """One bqemulator process on 127.0.0.1, in memory; ``gs://`` loads read under ``gcs_root``."""

    name = "BigQuery emulator"

    def __init__(
        self, port: int | None = None, gcs_root: Path | None = None, log_path: Path | None = None
    ) -> None:
        super().__init__(port, log_path)
        self.gcs_root = Path(gcs_root) if gcs_root is not None else None

    def command(self) -> list[str]:
        """Return the command line that starts this emulator (gRPC on a random free port)."""
        return [
            python(),
            "-c",
            LAUNCHER,
            "start",
            "--rest-host",
            "127.0.0.1",
            "--rest-port",
            str(self.port),
            "--grpc-host",
            "127.0.0.1",
            "--grpc-port",
            "0",
            "--ephemeral",
            "--project",
            DEMO_PROJECT,
            "--log-format",
            "console",
            "--log-level",
            "warning",
        ]

    def environment(self) -> dict[str, str]:
        """Return the process environment: ours plus the emulator's offline settings."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("BQEMU_")}
        env["BQEMU_ENABLE_FORMAT_EXTENSIONS"] = "false"
        if self.gcs_root is not None:
            env["BQEMU_GCS_LOCAL_ROOT"] = str(self.gcs_root.resolve())
        return env

    def cwd(self) -> str:
        """A folder without ``.bqemu.toml``, so only our settings apply."""
        return tempfile.gettempdir()

    def prepare(self) -> None:
        """Check the package is installed; create the folder ``gs://`` loads read from."""
        check_installed()
        if self.gcs_root is not None:
            self.gcs_root.mkdir(parents=True, exist_ok=True)

    def is_ready(self) -> bool:
        """The emulator answers ``/readyz``."""
        return _status(f"{self.url}/readyz") == 200


def client(url: str, project: str = DEMO_PROJECT) -> bigquery.Client:
    """Return a BigQuery client bound to the emulator at ``url``, without credentials."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    return bigquery.Client(
        project=project, credentials=AnonymousCredentials(), client_options={"api_endpoint": url}
    )


#: The post-processing steps this emulator version cannot run, and why: a job
#: whose pipeline reaches one of them fails there, with BigQuery's error as its detail.
UNSUPPORTED: dict[State, str] = {
    State.COPYING: (
        "copies one partition (table$YYYYMMDD), and the emulator addresses no "
        "partition: 'Not found: table'"
    ),
    State.DELETING: (
        "deletes one partition (table$YYYYMMDD), and the emulator refuses the "
        "decorator: 'Invalid table id'"
    ),
    State.JOINING: (
        "writes a partition of its destination with schema update options, which "
        "the emulator refuses: 'Schema update options should only be specified with "
        "WRITE_APPEND disposition'"
    ),
}


def row_schema() -> list[bigquery.SchemaField]:
    """The columns of the tables :func:`create_tables` makes: what the steps read and write."""
    from google.cloud import bigquery

    parser = bigquery.SchemaField(
        "parser",
        "RECORD",
        fields=[
            bigquery.SchemaField("Version", "STRING"),
            bigquery.SchemaField("Time", "TIMESTAMP"),
        ],
    )
    return [
        bigquery.SchemaField("id", "STRING"),
        bigquery.SchemaField(DATE_COLUMN, "DATE"),
        parser,
    ]


def create_tables(bq: bigquery.Client, config: Config, deadline: float = 30.0) -> list[str]:
    """Create what ``config``'s BigQuery steps need; return the table ids, existing ones too.

    For each source with BigQuery steps: its ``tmp``, ``raw`` and ``join``
    datasets, a table named after its datatype in ``tmp`` (the load appends to
    it) and in ``raw`` (the copy's destination), and the annotations' table in
    ``raw`` when it has a join. Tables are partitioned by day on ``date``.
    Each call, its retries included, ends within ``deadline`` seconds.
    """
    from google.cloud import bigquery
    from google.cloud.bigquery.retry import DEFAULT_RETRY

    limits: dict[str, Any] = {"timeout": deadline, "retry": DEFAULT_RETRY.with_timeout(deadline)}

    tables: dict[str, None] = {}
    for source in config.sources:
        if source.pipeline == ():
            continue
        datasets = source.datasets
        for name in (datasets.tmp, datasets.raw, datasets.join):
            if name:
                bq.create_dataset(f"{bq.project}.{name}", exists_ok=True, **limits)
        tables[f"{bq.project}.{datasets.tmp}.{source.datatype}"] = None
        tables[f"{bq.project}.{datasets.raw}.{source.datatype}"] = None
        if datasets.join:
            tables[f"{bq.project}.{datasets.raw}.{ANNOTATION_TABLE}"] = None
    for table_id in tables:
        table = bigquery.Table(table_id, schema=row_schema())
        table.time_partitioning = bigquery.TimePartitioning(field=DATE_COLUMN)
        bq.create_table(table, exists_ok=True, **limits)
    return list(tables)


def unsupported_steps(steps: Iterable[State]) -> dict[State, str]:
    """The steps among ``steps`` that the emulator cannot run, in chain order, with why."""
    wanted = set(steps)
    return {step: why for step, why in UNSUPPORTED.items() if step in wanted}


def write_rows(gcs_root: Path, input_bucket: str, job: Job, name: str, ids: Iterable[str]) -> Path:
    """Write one NDJSON file of rows for ``job`` where its load reads (``gs://input_bucket/…``).

    The file is ``{gcs_root}/{input_bucket}/{bucket}/{experiment}/{datatype}/YYYY/MM/DD/{name}``;
    each row has an ``id``, the job's date and a parser time.
    """
    folder = gcs_root / input_bucket / job.bucket / job.experiment / job.datatype
    folder = folder / f"{job.date:%Y/%m/%d}"
    folder.mkdir(parents=True, exist_ok=True)
    day: date = job.date
    rows = (
        {
            "id": i,
            DATE_COLUMN: f"{day:%Y-%m-%d}",
            "parser": {"Version": "demo", "Time": f"{day:%Y-%m-%d}T12:00:00Z"},
        }
        for i in ids
    )
    path = folder / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
