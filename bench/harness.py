"""What every benchmark shares: latencies, callers, machine facts, memory, emulators, publishing.

A benchmark's ``main`` parses its :func:`arguments` and calls :func:`run_measured` with its
``measure(args, run)`` (``run`` a :class:`Run`, all undone at the end), its ``render(report)``,
the Markdown tables, and what makes the exit status 1."""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import ipaddress
import itertools
import json
import math
import os
import platform
import re
import resource
import sys
import tempfile
import threading
import time
import tracemalloc
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple, TypeVar
from urllib.parse import urlsplit

from google.cloud import firestore

from local import emulator as fs_emulator
from local import gcs_emulator
from local.fleet import Call
from local.stack import start_functions, stop_on_signals, stop_process
from local.workload import seed_workload
from shared.model import utcnow

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
MIB = 2**20
T = TypeVar("T")
TRACED_NOT_YET = {"traced_peak_mib": None, "traced_seconds": None}
LATENCY_KEYS = ("count", "p50_ms", "p99_ms", "mean_ms", "max_ms", "p95_ms")
#: A benchmark's report, or a part of it (a row of a table): JSON-ready values by name.
Report = dict[str, Any]


def latencies(seconds: Sequence[float]) -> dict[str, float]:
    """count, then p50/p99/mean/max/p95 in ms (nearest-rank percentiles) of ``seconds``."""
    s = sorted(seconds)
    if not s:
        return dict.fromkeys(LATENCY_KEYS, math.nan) | {"count": 0}

    def ms(p: float) -> float:
        return s[min(max(1, math.ceil(p / 100 * len(s))), len(s)) - 1] * 1000

    values = (len(s), ms(50), ms(99), sum(s) / len(s) * 1000, s[-1] * 1000, ms(95))
    return dict(zip(LATENCY_KEYS, values, strict=True))


def fmt(x: float | None, digits: int = 1) -> str:
    """``x`` with thousands separators, or a dash for a missing value."""
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:,.{digits}f}"


def growth(values: Sequence[float | None]) -> list[str]:
    """Each value's ratio to the previous one, as ``×1.2`` (a dash for the first or a gap)."""
    out = ["–"]
    for a, b in itertools.pairwise(values):
        out.append(f"×{b / a:.1f}" if a and b is not None and a > 0 and not math.isnan(b) else "–")
    return out


def table(header: str, rows: Sequence[Sequence[object]], align: str = "") -> list[str]:
    """A Markdown table; ``align`` an ``l``/``r``/``c`` per column (default: first left)."""
    align = align or "l" + "r" * header.count(" | ")
    rule = "|".join({"l": "---", "r": "--:", "c": ":-:"}[a] for a in align)
    return [f"| {header} |", f"|{rule}|", *("| " + " | ".join(map(str, r)) + " |" for r in rows)]


def dig(row: Any, path: str) -> Any:
    """The value at dotted ``path`` of nested mappings; None where a key is missing."""
    for key in path.split("."):
        row = row.get(key) if isinstance(row, Mapping) else None
    return row


def grid(rows: Sequence[Mapping[str, Any]], spec: str, **derived: Any) -> list[str]:
    """A Markdown table of ``rows``, one column per ``header@expr`` of ``spec`` (joined by
    `` | ``; a header led by ``<``, ``>`` or ``^`` aligns its column left, right or centre,
    else the first is left and the rest right). An expr is a name of ``derived`` (called with
    the row), a dotted key of the row, optionally ``/divisor``, then ``:,`` (thousands),
    ``:digits`` (:func:`fmt`) or ``:×`` (:func:`growth` down the column); or dotted keys joined
    by ``+`` (shown ``a / b / …``) or by ``&`` (``a (b)``), optionally ``:digits``."""
    header, columns, align = list[str](), list[Any](), ""
    for column in spec.split(" | "):
        head, _, expr = column.rpartition("@")
        side = {"<": "l", ">": "r", "^": "c"}.get(head[:1])
        align += side or ("r" if header else "l")
        header.append(head[1:] if side else head)
        if expr in derived:
            columns.append([derived[expr](r) for r in rows])
            continue
        expr, _, how = expr.partition(":")
        if "+" in expr or "&" in expr:
            split = [[dig(r, p) for p in re.split("[+&]", expr)] for r in rows]
            shown = [[fmt(v, int(how)) if how else str(v) for v in values] for values in split]
            join = " / ".join if "+" in expr else lambda v: f"{v[0]} ({v[1]})"
            columns.append([join(values) for values in shown])
            continue
        path, _, divisor = expr.partition("/")
        values = [dig(r, path) for r in rows]
        if divisor:
            values = [None if v is None else v / float(divisor) for v in values]
        if how == "×":
            values = growth(values)
        elif how == ",":
            values = [f"{v:,}" for v in values]
        elif how:
            values = [fmt(v, int(how)) for v in values]
        columns.append(values)
    return table(" | ".join(header), list(zip(*columns, strict=True)), align)


def section(title: str, rows: Any, spec: str, **derived: Any) -> list[str]:
    """A blank line, ``title``, another and the :func:`grid` of ``rows``."""
    return ["", title, "", *grid(rows, spec, **derived)]


def heading(title: str, m: Report, *notes: str) -> list[str]:
    """The ``title``, the machine facts ``m`` and ``notes`` as list items (no blank line after)."""
    return [
        f"# {title}",
        "",
        f"- Machine: {m['cpu_count']} CPUs `{m['cpu_model'] or '?'}`, {m['memory_gib']} GiB, "
        f"load average at start {m['loadavg_at_start']}; {m['platform']}; {m['python']}",
        f"- Firestore emulator {m.get('emulator_version', '?')} at {m['emulator_host']} "
        f"({m.get('java', '?')}); google-cloud-firestore {m['google_cloud_firestore']}"
        + (f"; {m['gcs_emulator']}" if "gcs_emulator" in m else ""),
        *(f"- {n}" for n in notes),
    ]


def machine_facts(host: str, own_emulator: bool, gcs_url: str | None = None) -> Report:
    """What the figures depend on: CPU, memory, load, Python, emulators, library versions."""

    def read(path: str, pattern: str) -> str:
        with contextlib.suppress(OSError):
            if m := re.search(pattern, Path(path).read_text(), re.MULTILINE):
                return m.group(1).strip()
        return ""

    def version(package: str) -> str:
        with contextlib.suppress(metadata.PackageNotFoundError):
            return metadata.version(package)
        return "?"

    memory, cpus, env = read("/proc/meminfo", r"^MemTotal:\s+(\d+) kB"), os.cpu_count(), os.environ
    facts: Report = {
        "cpu_count": cpus,
        "cpu_model": read("/proc/cpuinfo", r"^model name\s*:(.*)$"),
    }
    facts["memory_gib"] = round(int(memory) / 2**20, 1) if memory else None
    facts["loadavg_at_start"] = [round(x, 2) for x in os.getloadavg()]
    facts |= {"platform": platform.platform(), "platform_processor": platform.processor()}
    facts["python"] = f"{platform.python_implementation()} {platform.python_version()}"
    facts["emulator"] = "Firestore emulator jar" + ("" if own_emulator else " (external)")
    facts |= {"emulator_host": host, "http_client": f"requests {version('requests')}"}
    threads = f"workers={env.get('WORKERS', '1')}, threads={env.get('THREADS', (cpus or 1) * 4)}"
    facts["server"] = f"functions-framework (gunicorn gthread), {threads}"
    for p in ("functions-framework", "google-cloud-firestore", "google-cloud-storage"):
        facts[p.replace("-", "_")] = version(p)
    facts |= {"gcs_emulator_url": gcs_url} if gcs_url else {}
    try:
        jar = facts["emulator_jar"] = fs_emulator.find_jar()
        facts["emulator_version"] = fs_emulator.emulator_version(jar)
        facts["java"] = fs_emulator.java_version(fs_emulator.check_java()) or "unknown"
        if gcs_url:
            binary = gcs_emulator.find_binary().name
            facts["gcs_emulator"] = f"fake-gcs-server, memory backend ({binary})"
    except Exception as exc:  # noqa: BLE001 - facts are best effort
        facts.setdefault("java", f"unknown ({exc.__class__.__name__})")
    return facts


def summary(calls: Sequence[Call], *keys: str) -> Report:
    """How many ``calls``, how many not answered 200, and the ``keys`` of their latencies."""
    lat, errors = latencies([c.seconds for c in calls]), sum(c.status != 200 for c in calls)
    return {"requests": len(calls), "errors": errors} | {k: lat[k] for k in keys}


def status_codes(calls: Iterable[Call]) -> dict[str, int]:
    """How many ``calls`` got each status (``"0"``: no answer)."""
    return dict(sorted(Counter(str(c.status) for c in calls).items()))


def timed_ops(op: Callable[[int], object], n: int) -> tuple[float, list[float]]:
    """Run ``op(0) … op(n-1)`` sequentially; the wall time and each call's latency."""
    lat, start = [], time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter()
        op(i)
        lat.append(time.perf_counter() - t0)
    return time.perf_counter() - start, lat


def bench_floor(client: Any, n: int, warmup: int = 10) -> list[Report]:
    """Measure bare ``set``, ``get`` and read+write transactions on one document each."""
    floor = client.collection("bench_floor")
    set_ref, txn_ref = floor.document("set"), floor.document("transaction")
    for ref in (set_ref, txn_ref):
        ref.set({"n": 0, "heartbeat_time": utcnow()})

    @firestore.transactional
    def bump(transaction: Any) -> None:
        snap = txn_ref.get(transaction=transaction)
        transaction.set(txn_ref, {"n": snap.get("n") + 1, "heartbeat_time": utcnow()})

    results = []
    for name, op in (
        ("document.set (one write)", lambda i: set_ref.set({"n": i, "heartbeat_time": utcnow()})),
        ("document.get (one read)", lambda i: set_ref.get()),
        ("transaction: get + set (one read, one write)", lambda i: bump(client.transaction())),
    ):
        timed_ops(op, warmup)
        seconds, lat = timed_ops(op, n)
        row = {"operation": name, "ops": n, "seconds": seconds, "ops_per_s": n / seconds}
        results.append(row | {k: latencies(lat)[k] for k in ("p50_ms", "p99_ms")})
    return results


def rss_mib() -> float:
    """The process's resident set size now, in MiB (NaN where /proc is absent)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / MIB
    except (OSError, IndexError, ValueError):
        return math.nan


def maxrss_mib() -> float:
    """The process's peak resident set size so far (``ru_maxrss``), in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MIB if sys.platform == "darwin" else peak / 1024


def settle() -> None:
    """Collect garbage and hand freed heap back to the OS, so RSS starts from the live set."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # glibc only


def untraced(call: Callable[[], T]) -> tuple[T, Report]:
    """Run ``call`` once; its value and cost: seconds, the peak RSS sampled every 5 ms above
    the start's, the growth of ``ru_maxrss`` (traced figures left for :func:`traced`)."""
    settle()
    before, start_rss = maxrss_mib(), rss_mib()
    peak, done = [start_rss], threading.Event()

    def sample() -> None:
        while not done.wait(0.005):
            peak[0] = max(peak[0], rss_mib())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    try:
        value = call()
        seconds = time.perf_counter() - start
    finally:
        done.set()
        sampler.join(timeout=5)
    peak[0] = max(peak[0], rss_mib())
    cost = {"seconds": seconds, "rss_peak_mib": peak[0] - start_rss}
    return value, cost | {"maxrss_growth_mib": maxrss_mib() - before} | TRACED_NOT_YET


def traced(cost: Report, call: Callable[[], T]) -> T:
    """Run ``call`` under tracemalloc; its value. Its peak in MiB and its time go into ``cost``
    (``traced_peak_mib``, ``traced_seconds``)."""
    settle()
    tracemalloc.start()
    try:
        base, start = tracemalloc.get_traced_memory()[0], time.perf_counter()
        value = call()
        cost["traced_seconds"] = time.perf_counter() - start
        cost["traced_peak_mib"] = (tracemalloc.get_traced_memory()[1] - base) / MIB
    finally:
        tracemalloc.stop()
    return value


def progress(message: str) -> None:
    """Say what the benchmark is doing, on stderr."""
    print(message, file=sys.stderr, flush=True)


@dataclass
class Run:
    """One benchmark run's emulator and what it started; everything is undone at the end."""

    stack: ExitStack
    host: str
    own_emulator: bool
    log: Path
    projects: list[str] = field(default_factory=list)
    gcs_url: str | None = None

    def project(self) -> str:
        """A fresh ``demo-bench-<uuid>`` project (wiped at the end from an external emulator)."""
        self.projects.append(f"demo-bench-{uuid.uuid4().hex[:12]}")
        return self.projects[-1]

    def firestore(self, project: str | None = None) -> Any:
        """A Firestore client on ``project`` (default: a fresh one)."""
        return firestore.Client(project=project or self.project())

    def gcs(self) -> Any:
        """Start a GCS emulator (fake-gcs-server, memory backend) for the run; its client."""
        log = self.log.with_name(self.log.name.replace("firestore", "gcs"))
        log.unlink(missing_ok=True)
        emulator = gcs_emulator.GcsEmulator(log_path=log)
        self.stack.callback(emulator.stop)  # registered first: stopped even if interrupted
        emulator.start()
        self.gcs_url = emulator.url
        return gcs_emulator.client(emulator.url)

    def workload(self, start: date, end: date) -> tuple[Any, Any, dict[str, str]]:
        """The next-job workload from ``start`` to ``end`` (:func:`local.workload.seed_workload`)
        on a GCS emulator of the run: its client, the config, a server's environment for it."""
        directory = Path(self.stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
        path, config = seed_workload(gcs := self.gcs(), directory, start, end)
        env = {"STORAGE_EMULATOR_HOST": self.gcs_url or "", "GARDENER_CONFIG": str(path)}
        return gcs, config, env

    @contextlib.contextmanager
    def server(self, env: dict[str, str]) -> Iterator[tuple[str, Any]]:
        """A function server of the ``api`` router with ``env``; its base URL and process."""
        port = fs_emulator.free_port()  # start_functions stops the server itself if interrupted
        proc = start_functions(port, {"FIRESTORE_EMULATOR_HOST": self.host, **env}, quiet=True)
        try:
            yield f"http://127.0.0.1:{port}", proc
        finally:
            stop_process(proc)

    def wipe(self, project: str) -> None:
        """Delete ``project``'s documents (frees the emulator's memory)."""
        try:
            fs_emulator.wipe(self.host, project)
        except OSError as exc:
            progress(f"could not wipe {project}: {exc}")


def run_measured(
    args: Any,
    measure: Callable[[Any, Run], Report],
    render: Callable[[Report], str],
    log_prefix: str,
    failure: Callable[[Report], str | None] = lambda report: None,
) -> int:
    """Run ``measure`` on the emulator ``FIRESTORE_EMULATOR_HOST`` names (on this machine) or
    one started here (Java heap ``--emulator-heap``, log ``bench/results/<log_prefix>firestore-emulator.log``),
    then publish its report. The exit status: 130 if interrupted; 1, after saying why, if
    ``failure`` names a problem in the report; else 0."""
    stop_on_signals()
    started, log = time.perf_counter(), RESULTS_DIR / f"{log_prefix}firestore-emulator.log"
    try:
        with ExitStack() as stack:
            heap = getattr(args, "emulator_heap", "512m")
            host, own = stack.enter_context(fs_emulator.running(log, heap))
            name = urlsplit(f"//{host}").hostname or ""
            with contextlib.suppress(ValueError):
                name = "localhost" if ipaddress.ip_address(name).is_loopback else name
            if name != "localhost":
                raise SystemExit(f"FIRESTORE_EMULATOR_HOST={host} is not on this machine")
            run = Run(stack, host, own, log)
            try:
                report = measure(args, run)
                config = {k: v for k, v in vars(args).items() if k != "json"}
                config |= {"projects": list(run.projects), **report.get("config", {})}
                machine = machine_facts(run.host, run.own_emulator, run.gcs_url)
                report = {"machine": machine, **report, "config": config}
            finally:
                for project in [] if run.own_emulator else run.projects:
                    run.wipe(project)
    except KeyboardInterrupt:
        progress("interrupted")
        return 130
    publish(report, args.json, started, render)
    if problem := failure(report):
        progress(problem)
        return 1
    return 0


def publish(report: Report, path: Path, started: float, render: Callable[..., str]) -> None:
    """Note the run time, write ``report`` as JSON to ``path`` (NaN as null), print its tables."""

    def finite(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: finite(v) for k, v in value.items()}
        if isinstance(value, list):
            return [finite(v) for v in value]
        return None if isinstance(value, float) and math.isnan(value) else value

    report["run_seconds"] = time.perf_counter() - started
    path.parent.mkdir(parents=True, exist_ok=True)
    resolved = path.resolve()
    report["json_path"] = str(resolved.relative_to(ROOT) if resolved.is_relative_to(ROOT) else path)
    path.write_text(json.dumps(finite(report), indent=2, default=str) + "\n")
    print(render(report))
    print(f"\nRun time: {report['run_seconds']:.1f} s. JSON: {report['json_path']}")


def number(
    kind: type[int | float], low: float = 0, high: float = math.inf, many: bool = False
) -> Any:
    """An argparse type: a ``kind`` from ``low`` to ``high`` (a float above a ``low`` of 0), or
    with ``many`` comma-separated ones, sorted, distinct."""
    above = kind is float and low == 0  # no time, no rate
    bounds = f"from {low:g} to {high:,g}" if high < math.inf else f"at least {low:g}"
    what = ("comma-separated numbers " if many else "a number ") + ("above 0" if above else bounds)

    def parse(text: str) -> Any:
        with contextlib.suppress(ValueError):
            values = sorted({kind(x.replace("_", "")) for x in text.split(",") if x.strip()})
            fits = values and low <= values[0] <= values[-1] <= high and (many or len(values) == 1)
            if fits and (not above or values[0] > 0):
                return values if many else values[0]
        raise argparse.ArgumentTypeError(f"takes {what}")

    return parse


def int_list(maximum: int) -> Any:
    """An argparse type: comma-separated integers from 1 to ``maximum``, sorted, distinct."""
    return number(int, 1, maximum, many=True)


class Quick(NamedTuple):
    """An option's default: ``full``, or ``quick`` with ``--quick``."""

    full: Any
    quick: Any


def arguments(name: str, doc: str | None, argv: list[str] | None, quick: str, *options: Any) -> Any:
    """A benchmark's arguments: ``--json`` (default ``bench/results/<name>.json``), ``--quick``
    when ``quick`` says what it does, and each ``(flag, type, default, help)`` (a
    :class:`Quick` default as ``--quick`` says)."""
    p = argparse.ArgumentParser(f"python -m bench.{name}", description=(doc or "").split("\n")[0])
    if quick:
        p.add_argument("--quick", action="store_true", help=quick)
    p.add_argument("--json", type=Path, default=RESULTS_DIR / f"{name}.json", help="JSON file")
    for flag, kind, value, text in options:
        text += f" ({value.full}; quick {value.quick})" if isinstance(value, Quick) else ""
        p.add_argument(flag, type=kind, default=value, help=text)
    args = p.parse_args(argv)
    for key, value in vars(args).items():
        if isinstance(value, Quick):
            setattr(args, key, value.quick if args.quick else value.full)
    return args
