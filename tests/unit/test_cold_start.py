"""The parser entry points' module graph: no client library a parser request does not use."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_functions_loads_no_heavy_client_library(tmp_path: Path) -> None:
    out = tmp_path / "cold_start.json"
    subprocess.run([sys.executable, "-m", "bench.cold_start", "--samples", "1",
                    "--entry-points", "api", "--json", str(out)], capture_output=True, cwd=ROOT,
                   timeout=120, check=True)
    (row,) = json.loads(out.read_text())["rows"]
    assert row["heavy_loaded_by_import"] == []


_BUILD_A_STEP = """
import sys
from datetime import date
from shared.model import Datasets, Job, State
from shared.warehouse import Warehouse
before = "google.cloud.bigquery" in sys.modules
job = Job("bucket", "ndt", "ndt7", date(2026, 11, 2), datasets=Datasets("tmp_ndt", "raw_ndt", "ndt"))
plan = Warehouse(None, "my-project", "input-bucket").build(State.LOADING, job)
print(before, "google.cloud.bigquery" in sys.modules, type(plan.config).__name__)
"""


def test_bigquery_is_imported_by_the_first_step_built():
    out = subprocess.run([sys.executable, "-c", _BUILD_A_STEP], capture_output=True, text=True,
                         cwd=ROOT, timeout=120, check=True).stdout.split()
    assert out == ["False", "True", "LoadJobConfig"]
