"""The parser entry points' module graph: no client library a parser request does not use."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_functions_loads_no_heavy_client_library(tmp_path: Path) -> None:
    out = tmp_path / "cold_start.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.cold_start",
            "--samples",
            "1",
            "--entry-points",
            "api",
            "--json",
            str(out),
        ],
        capture_output=True,
        cwd=ROOT,
        timeout=120,
        check=True,
    )
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
    out = subprocess.run(
        [sys.executable, "-c", _BUILD_A_STEP],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=True,
    ).stdout.split()
    assert out == ["False", "True", "LoadJobConfig"]


#: Libraries no parser request uses, which the web layer imports only when a request needs
#: them: the OpenAPI generator, the Prometheus client, GCS and BigQuery, snapshots.
#: (Jinja2 cannot be among them: Flask itself imports it; the status page's template
#: environment is built by the first page served.)
NOT_AT_IMPORT = (
    "apispec",
    "prometheus_client",
    "google.cloud.storage",
    "google.cloud.bigquery",
    "shared.snapshot",
)

_IMPORT_THE_ENTRY_POINTS = """
import json, sys
import functions.main
print(json.dumps({"web": sorted(m for m in sys.modules if m.startswith("shared.web.")),
                  "heavy": sorted(m for m in %r if m in sys.modules)}))
"""


def test_the_web_layer_loads_no_library_a_parser_request_does_not_use():
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", _IMPORT_THE_ENTRY_POINTS % (NOT_AT_IMPORT,)],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=120,
        check=True,
    ).stdout
    loaded = json.loads(out.strip().splitlines()[-1])
    every_web_module = sorted(
        f"shared.web.{p.stem}"
        for p in (root / "shared" / "web").glob("*.py")
        if p.stem != "__init__"
    )
    assert loaded["web"] == every_web_module  # the entry points' import covers all of shared.web
    assert loaded["heavy"] == []
