"""The parser entry points' module graph: no client library a parser request does not use."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from local.imports import fresh_import, heavy

ROOT = Path(__file__).resolve().parents[2]


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


def test_importing_the_functions_loads_the_web_layer_and_no_heavy_client_library() -> None:
    modules = fresh_import()["modules"]
    every_web_module = sorted(
        f"shared.web.{p.stem}"
        for p in (ROOT / "shared" / "web").glob("*.py")
        if p.stem != "__init__"
    )
    # The entry points' import covers all of shared.web, yet no library a parser request
    # does not use (the web layer imports those when a request needs them).
    assert [m for m in modules if m.startswith("shared.web.")] == every_web_module
    assert heavy(modules) == []
