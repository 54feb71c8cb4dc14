"""Cold start: how long importing the functions' module takes, and what each entry point adds.

In fresh interpreters (median of ``--samples``): the import of ``functions.main``, then of
the modules each entry point's first request defers, and the heavy libraries the import
alone loads. ``make bench-cold-start``.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from typing import Any

from bench.harness import ROOT, arguments, grid, machine_facts, publish

#: The module every entry point is imported from.
MAIN = "functions.main"

#: Modules the first request of each entry point imports beyond ``functions.main``.
DEFERRED: dict[str, tuple[str, ...]] = {
    "api": (),
    "update": (),
    "heartbeat": (),
    "error": (),
    "next_job": ("google.cloud.storage",),
    "status": (),
    "metrics": (),
    "maintain": ("shared.snapshot",),
    "postprocess": ("google.cloud.bigquery",),
    "admin": ("shared.snapshot",),
}

#: Entry points the parsers call; their import must stay light.
PARSER_ENTRY_POINTS = ("api", "next_job", "update", "heartbeat", "error")

#: Libraries no parser request needs; importing ``functions.main`` must not load them.
HEAVY = (
    "google.cloud.bigquery",
    "google.cloud.bigquery_storage_v1",
    "pyarrow",
    "numpy",
    "google.cloud.storage",
    "apispec",
    "shared.snapshot",
)

#: Target for the import of ``functions.main`` (seconds).
TARGET_SECONDS = 0.3

_PROBE = """
import json, sys, time
t0 = time.perf_counter()
import {main}
t1 = time.perf_counter()
loaded = sorted(m for m in {heavy!r} if m in sys.modules)
for name in {deferred!r}:
    __import__(name)
t2 = time.perf_counter()
print(json.dumps({{"main": t1 - t0, "deferred": t2 - t1, "heavy": loaded}}))
"""


def probe(deferred: tuple[str, ...], python: str = sys.executable) -> dict[str, Any]:
    """Import ``functions.main`` and then ``deferred`` in a fresh interpreter; their times."""
    code = _PROBE.format(main=MAIN, heavy=HEAVY, deferred=deferred)
    out = subprocess.run(
        [python, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120, check=True
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def measure(samples: int, entry_points: list[str]) -> dict[str, Any]:
    """Sample each entry point ``samples`` times; medians in seconds."""
    rows = []
    for entry in entry_points:
        deferred = DEFERRED[entry]
        got = [probe(deferred) for _ in range(samples)]
        main = statistics.median(g["main"] for g in got)
        extra = statistics.median(g["deferred"] for g in got)
        rows.append(
            {
                "entry_point": entry,
                "parser": entry in PARSER_ENTRY_POINTS,
                "import_main_s": main,
                "first_request_imports": list(deferred),
                "first_request_import_s": extra,
                "total_s": main + extra,
                "heavy_loaded_by_import": got[0]["heavy"],
            }
        )
    return {"samples": samples, "target_s": TARGET_SECONDS, "rows": rows}


def render(report: dict[str, Any]) -> str:
    """The report as Markdown."""
    lines = [
        f"## Cold start: import time per entry point (median of {report['samples']} fresh "
        "interpreters; `python -m bench.cold_start`)",
        "",
    ]
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
    lines += [
        "",
        f"Target: import of functions.main ≤ {report['target_s']} s. Machine: "
        f"{f['cpu_count']} CPUs ({f['cpu_model']}), load at start {f['loadavg_at_start']}, "
        f"{f['python']}.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print its table, write its JSON."""
    p = arguments("cold_start", __doc__)
    p.add_argument("--samples", type=int, default=7, help="fresh interpreters per entry point")
    p.add_argument(
        "--entry-points",
        type=lambda s: s.split(","),
        default=list(DEFERRED),
        help="comma-separated entry points (default: every one)",
    )
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
