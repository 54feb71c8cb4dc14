"""What importing the functions' module costs and loads, in a fresh interpreter each time
(the cold-start benchmark, the tests of the entry points' module graph)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

#: Libraries no parser request uses: importing ``functions.main`` must not load them (the
#: web layer imports them when a request needs them). Jinja2 cannot be among them: Flask
#: itself imports it.
HEAVY = (
    "google.cloud.bigquery",
    "google.cloud.bigquery_storage_v1",
    "pyarrow",
    "numpy",
    "google.cloud.storage",
    "apispec",
    "prometheus_client",
    "shared.snapshot",
)

_PROBE = """
import json, sys, time
t0 = time.perf_counter()
import functions.main
t1 = time.perf_counter()
loaded = sorted(sys.modules)
for name in {then!r}:
    __import__(name)
print(json.dumps({{"main": t1 - t0, "then": time.perf_counter() - t1, "modules": loaded}}))
"""


def fresh_import(then: tuple[str, ...] = ()) -> dict[str, Any]:
    """Import ``functions.main``, then the modules ``then``, in a fresh interpreter: the seconds
    of each (``main``, ``then``) and the ``modules`` loaded by the first import."""
    command = [sys.executable, "-c", _PROBE.format(then=then)]
    out = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=120, check=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def heavy(modules: list[str]) -> list[str]:
    """The :data:`HEAVY` libraries among ``modules``."""
    return [m for m in HEAVY if m in modules]
