"""Cold start: how long importing the functions' module takes, and what each entry point adds.

Fresh interpreters (median of ``--samples``) import ``functions.main``, then what each entry
point's first request defers; and which heavy libraries the import alone loads."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from typing import Any

from bench.harness import ROOT, arguments, grid, machine_facts, publish

#: Modules the first request of each entry point imports beyond ``functions.main``.
DEFERRED: dict[str, tuple[str, ...]] = dict.fromkeys(
    ("api", "update", "heartbeat", "error", "next_job", "status", "metrics", "maintain"), ()
)
DEFERRED |= {"next_job": ("google.cloud.storage",), "maintain": ("shared.snapshot",)}
DEFERRED |= {"postprocess": ("google.cloud.bigquery",), "admin": ("shared.snapshot",)}
#: Entry points the parsers call; their import must stay light.
PARSER_ENTRY_POINTS = ("api", "next_job", "update", "heartbeat", "error")
#: Libraries no parser request needs; importing ``functions.main`` must not load them.
HEAVY: tuple[str, ...] = ("google.cloud.bigquery", "google.cloud.bigquery_storage_v1", "pyarrow")
HEAVY += ("numpy", "google.cloud.storage", "apispec", "shared.snapshot")
#: Target for the import of ``functions.main`` (seconds).
TARGET_SECONDS = 0.3

_PROBE = """
import json, sys, time
t0 = time.perf_counter()
import functions.main
t1 = time.perf_counter()
loaded = sorted(m for m in {heavy!r} if m in sys.modules)
for name in {deferred!r}:
    __import__(name)
t2 = time.perf_counter()
print(json.dumps({{"main": t1 - t0, "deferred": t2 - t1, "heavy": loaded}}))
"""


def probe(deferred: tuple[str, ...]) -> dict[str, Any]:
    """Import ``functions.main`` and then ``deferred`` in a fresh interpreter; their times."""
    command = [sys.executable, "-c", _PROBE.format(heavy=HEAVY, deferred=deferred)]
    out = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=120, check=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def measure(samples: int, entry_points: list[str]) -> dict[str, Any]:
    """Sample each entry point ``samples`` times; medians in seconds."""
    rows = []
    for entry in entry_points:
        got = [probe(DEFERRED[entry]) for _ in range(samples)]
        main = statistics.median(g["main"] for g in got)
        extra = statistics.median(g["deferred"] for g in got)
        row = {"entry_point": entry, "parser": entry in PARSER_ENTRY_POINTS, "import_main_s": main}
        row |= {"first_request_imports": list(DEFERRED[entry]), "first_request_import_s": extra}
        rows.append(row | {"total_s": main + extra, "heavy_loaded_by_import": got[0]["heavy"]})
    return {"samples": samples, "target_s": TARGET_SECONDS, "rows": rows}


def render(report: dict[str, Any]) -> str:
    title = f"## Cold start: import time per entry point (median of {report['samples']} fresh "
    lines = [title + "interpreters; `python -m bench.cold_start`)", ""]
    lines += grid(
        report["rows"],
        "entry point@entry | import functions.main (s)@import_main_s:3 | "
        "first request imports@imports | their import (s)@first_request_import_s:3 | "
        "total (s)@total_s:3 | heavy modules after import@heavy",
        "lrlrrl",
        entry=lambda r: f"{r['entry_point']}{' (parser)' if r['parser'] else ''}",
        imports=lambda r: ", ".join(r["first_request_imports"]) or "—",
        heavy=lambda r: ", ".join(r["heavy_loaded_by_import"]) or "none",
    )
    f = report["machine"]
    lines.append(f"\nTarget: import of functions.main ≤ {report['target_s']} s. Machine: ")
    lines[-1] += (
        f"{f['cpu_count']} CPUs ({f['cpu_model']}), load at start {f['loadavg_at_start']}, "
    )
    lines[-1] += f"{f['python']}."
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    options = [
        ("--samples", int, 7, "fresh interpreters per entry point"),
        ("--entry-points", lambda s: s.split(","), list(DEFERRED), "comma-separated"),
    ]
    p = arguments("cold_start", __doc__, "", *options)
    args = p.parse_args(argv)
    if not set(args.entry_points) <= set(DEFERRED):
        p.error(f"entry points are {', '.join(DEFERRED)}")
    started = time.perf_counter()
    report = measure(args.samples, args.entry_points)
    report["machine"] = machine_facts("none (no emulator used)", False)
    publish(report, args.json, started, render)
    return 0


if __name__ == "__main__":
    sys.exit(main())
