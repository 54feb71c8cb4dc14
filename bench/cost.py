"""Monthly cost at M-Lab's scale, from the counted operations (:mod:`local.cost`) and list prices.

``make bench-cost``, last in ``make bench``: it reads that run's results in ``bench/results/``."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.harness import RESULTS_DIR, arguments, publish, table
from local import cost

#: The monthly amounts in the order of the cost items, Cloud Scheduler's 2 jobs last.
AMOUNTS: tuple[str, ...] = ("firestore_reads", "firestore_writes", "firestore_deletes")
AMOUNTS += ("function_requests", "vcpu_seconds", "gib_seconds", "gcs_class_a", "gcs_class_b")


def render(report: dict[str, Any]) -> str:
    s, r = report["scale"], report["result"]
    j, a = r["per_job"], r["per_archive"]
    lines = ["## Cost per month at M-Lab's scale (`python -m bench.cost`)", ""]
    lines += ["Counted operations:", ""]
    job = [
        f"{j['reads']:.1f}",
        f"{j['writes']:.1f}",
        f"{j['deletes']:.0f}",
        f"{j['gcs_lists']:.2f}",
    ]
    archive = [f"{a['reads']:.2f}", f"{a['writes']:.2f}", "0", "0", f"{a['requests']:.2f}"]
    rows = [["per job (lifecycle and post-processing)", *job, f"{j['requests']:.0f}"]]
    rows += [["per archive (heartbeat + update)", *archive]]
    head = "unit | Firestore reads | writes | deletes | GCS lists | function requests"
    lines += table(head, rows)
    lines += [
        "",
        f"Assumed: {s['sources']} sources, {s['jobs_per_day']:,.0f} jobs a day, "
        f"{s['archives_per_job']:,.0f} archives a job, {s['parsers']} parsers (idle "
        f"{s['idle_fraction']:.0%} of the day, polling every "
        f"{s['idle_poll_seconds']:g} s), `maintain` {s['maintain_per_day']}×/day, "
        f"`postprocess` {s['postprocess_per_day']}×/day, `/metrics` every 15 s, "
        f"{s['status_loads_per_day']} status loads a day, {s['live_jobs']:,.0f} live "
        f"jobs per snapshot; {cost.DAYS_PER_MONTH}-day month.",
        "",
    ]
    amounts = [r["ops_per_month"][k] for k in AMOUNTS] + [2]
    items = zip(r["cost_per_month"].items(), amounts, strict=True)
    rows = [[item, f"{amount:,.0f}", f"{usd:,.2f}"] for (item, usd), amount in items]
    lines += table("item | per month | cost (USD)", rows)
    lines.append(f"| **total** | | **{r['total_per_month']:,.2f}** |")
    counts_from = ", ".join(report["counts_from"]) or "the constants in local/cost.py"
    lines += ["", f"Counts from: {counts_from}. Prices: {report['prices_note']}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    where = "where the benchmarks' results are read from"
    args = arguments("cost", __doc__, argv, "", ("--results", Path, RESULTS_DIR, where))
    started = time.perf_counter()
    counted, used = cost.counted_from_results(args.results)
    prices = f"{cost.PRICES_AS_OF}; " + "; ".join(f"{k}: {v}" for k, v in cost.SOURCES.items())
    report: dict[str, Any] = {"scale": asdict(cost.SCALE), "counted": asdict(counted)}
    report |= {"prices": asdict(cost.PRICES), "prices_note": prices, "counts_from": used}
    report["result"] = cost.monthly(counted, cost.SCALE, cost.PRICES)
    publish(report, args.json, started, render)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
