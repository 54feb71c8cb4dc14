"""Monthly cost at M-Lab's scale, from the counted operations (:mod:`local.cost`) and list prices.

``python -m bench.cost`` (``make bench-cost``; last in ``make bench``, so it
reads that run's results in ``bench/results/``). Nothing is started.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.harness import RESULTS_DIR, arguments, publish
from local.cost import (
    DAYS_PER_MONTH,
    PRICES,
    PRICES_AS_OF,
    SCALE,
    SOURCES,
    counted_from_results,
    monthly,
)


def render(report: dict[str, Any]) -> str:
    """The report as Markdown."""
    s, r = report["scale"], report["result"]
    lines = [
        "## Cost per month at M-Lab's scale (`python -m bench.cost`)",
        "",
        "Counted operations:",
        "",
        "| unit | Firestore reads | writes | deletes | GCS lists | function requests |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    j, a = r["per_job"], r["per_archive"]
    lines.append(
        f"| per job (lifecycle and post-processing) | {j['reads']:.1f} | {j['writes']:.1f}"
        f" | {j['deletes']:.0f} | {j['gcs_lists']:.2f} | {j['requests']:.0f} |"
    )
    lines.append(
        f"| per archive (heartbeat + update) | {a['reads']:.2f} | {a['writes']:.2f} | 0 "
        f"| 0 | {a['requests']:.2f} |"
    )
    lines += [
        "",
        (
            f"Assumed: {s['sources']} sources, {s['jobs_per_day']:,.0f} jobs a day, "
            f"{s['archives_per_job']:,.0f} archives a job, {s['parsers']} parsers (idle "
            f"{s['idle_fraction']:.0%} of the day, polling every "
            f"{s['idle_poll_seconds']:g} s), `maintain` {s['maintain_per_day']}×/day, "
            f"`postprocess` {s['postprocess_per_day']}×/day, `/metrics` every 15 s, "
            f"{s['status_loads_per_day']} status loads a day, {s['live_jobs']:,.0f} live "
            f"jobs per snapshot; {DAYS_PER_MONTH}-day month."
        ),
        "",
        "| item | per month | cost (USD) |",
        "|---|--:|--:|",
    ]
    ops, cost = r["ops_per_month"], r["cost_per_month"]
    amounts = [
        ops["firestore_reads"],
        ops["firestore_writes"],
        ops["firestore_deletes"],
        ops["function_requests"],
        ops["vcpu_seconds"],
        ops["gib_seconds"],
        ops["gcs_class_a"],
        ops["gcs_class_b"],
        2,
    ]
    for (item, usd), amount in zip(cost.items(), amounts, strict=True):
        lines.append(f"| {item} | {amount:,.0f} | {usd:,.2f} |")
    lines.append(f"| **total** | | **{r['total_per_month']:,.2f}** |")
    lines += [
        "",
        f"Counts from: {', '.join(report['counts_from']) or 'the constants in local/cost.py'}."
        f" Prices: {report['prices_note']}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Compute the table, print it, write its JSON."""
    p = arguments("cost", __doc__)
    p.add_argument(
        "--results",
        type=Path,
        default=RESULTS_DIR,
        help="where the benchmarks' results are read from",
    )
    args = p.parse_args(argv)
    started = time.perf_counter()
    counted, used = counted_from_results(args.results)
    prices = f"{PRICES_AS_OF}; " + "; ".join(f"{k}: {v}" for k, v in SOURCES.items())
    report = {
        "scale": asdict(SCALE),
        "counted": asdict(counted),
        "prices": asdict(PRICES),
        "prices_note": prices,
        "counts_from": used,
        "result": monthly(counted, SCALE, PRICES),
    }
    publish(report, args.json, started, render)
    return 0


if __name__ == "__main__":
    sys.exit(main())
