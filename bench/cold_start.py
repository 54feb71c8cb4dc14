"""Cold start: how long importing the functions' module takes, and what each entry point adds.

Fresh interpreters (median of ``--samples``) import ``functions.main``, then what each entry
point's first request defers; and which heavy libraries the import alone loads."""

from __future__ import annotations

import argparse
import statistics
import time

from bench import harness as h
from local.imports import fresh_import, heavy

#: Modules the first request of each entry point imports beyond ``functions.main``.
DEFERRED: dict[str, tuple[str, ...]] = dict.fromkeys(
    ("api", "update", "heartbeat", "error", "next_job", "status", "metrics", "maintain"), ()
)
DEFERRED |= {"next_job": ("google.cloud.storage",), "maintain": ("shared.snapshot",)}
DEFERRED |= {"postprocess": ("google.cloud.bigquery",), "admin": ("shared.snapshot",)}
#: Entry points the parsers call; their import must stay light.
PARSER_ENTRY_POINTS = ("api", "next_job", "update", "heartbeat", "error")
#: Target for the import of ``functions.main`` (seconds).
TARGET_SECONDS = 0.3


def measure(samples: int, entry_points: list[str]) -> h.Report:
    """Sample each entry point ``samples`` times; medians in seconds."""
    rows = []
    for entry in entry_points:
        got = [fresh_import(DEFERRED[entry]) for _ in range(samples)]
        main = statistics.median(g["main"] for g in got)
        extra = statistics.median(g["then"] for g in got)
        row = {"entry_point": entry, "parser": entry in PARSER_ENTRY_POINTS, "import_main_s": main}
        row |= {"first_request_imports": list(DEFERRED[entry]), "first_request_import_s": extra}
        row |= {"total_s": main + extra, "heavy_loaded_by_import": heavy(got[0]["modules"])}
        rows.append(row)
    return {"samples": samples, "target_s": TARGET_SECONDS, "rows": rows}


def render(report: h.Report) -> str:
    title = f"## Cold start: import time per entry point (median of {report['samples']} fresh "
    lines = [title + "interpreters; `python -m bench.cold_start`)", ""]
    lines += h.grid(
        report["rows"],
        "entry point@entry | import functions.main (s)@import_main_s:3 | "
        "<first request imports@imports | their import (s)@first_request_import_s:3 | "
        "total (s)@total_s:3 | <heavy modules after import@heavy",
        entry=lambda r: f"{r['entry_point']}{' (parser)' if r['parser'] else ''}",
        imports=lambda r: ", ".join(r["first_request_imports"]) or "—",
        heavy=lambda r: ", ".join(r["heavy_loaded_by_import"]) or "none",
    )
    f, target = report["machine"], f"Target: import of functions.main ≤ {report['target_s']} s."
    machine = f"{f['cpu_count']} CPUs ({f['cpu_model']}), load at start {f['loadavg_at_start']}"
    return "\n".join([*lines, "", f"{target} Machine: {machine}, {f['python']}."])


def entry_points(text: str) -> list[str]:
    """An argparse type: comma-separated entry points of :data:`DEFERRED`."""
    if not set(names := text.split(",")) <= set(DEFERRED):
        raise argparse.ArgumentTypeError(f"entry points are {', '.join(DEFERRED)}")
    return names


def main(argv: list[str] | None = None) -> int:
    options = [
        ("--samples", h.number(int, 1), 7, "fresh interpreters per entry point"),
        ("--entry-points", entry_points, list(DEFERRED), "comma-separated"),
    ]
    args, started = h.arguments("cold_start", __doc__, argv, "", *options), time.perf_counter()
    report = measure(args.samples, args.entry_points)
    report["machine"] = h.machine_facts("none (no emulator used)", False)
    h.publish(report, args.json, started, render)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
