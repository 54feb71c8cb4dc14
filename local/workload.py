"""A seeded next-job workload: a Go-format config of four sources and archives for three of
every four (source, day) pairs, so that the job service passes over the rest.

Used by the next-job and lifecycle benchmarks and by the tests that drain ``next``.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

#: The sources: (experiment, datatype, tmp, raw, join), all in one bucket.
SOURCES: tuple[tuple[str, str, str, str, str], ...] = (
    ("ndt", "ndt7", "tmp_ndt", "raw_ndt", "ndt"),
    ("ndt", "scamper1", "tmp_ndt", "raw_ndt", "ndt"),
    ("wehe", "scamper1", "tmp_wehe", "raw_wehe", "wehe"),
    ("msak", "tcpinfo", "tmp_msak", "raw_msak", "msak"),
)

#: One (source, day) pair in this many has no archive.
SKIP_EVERY = 4


def config_yaml(bucket: str, start: date) -> str:
    """The workload's config in the Go gardener's YAML format."""
    lines = [f"start_date: {start:%Y-%m-%d}", "tracker:", "  timeout: 6h", "monitor:",
             "  polling_interval: 1m", "sources:"]
    for experiment, datatype, tmp, raw, join in SOURCES:
        lines += [f"- bucket: {bucket}", f"  experiment: {experiment}",
                  f"  datatype: {datatype}", "  target_datasets:", f"    tmp: {tmp}",
                  f"    raw: {raw}", f"    join: {join}"]
    return "\n".join(lines) + "\n"


def has_archive(source: int, day: date) -> bool:
    """Whether source index ``source`` has an archive on ``day`` (the skipped source rotates)."""
    return (day.toordinal() + source) % SKIP_EVERY != 0


def archive_names(start: date, end: date) -> list[str]:
    """Object names to seed: one small archive per (source, day) with one, both ends included."""
    names = []
    for offset in range((end - start).days + 1):
        day = start + timedelta(days=offset)
        for i, (experiment, datatype, *_) in enumerate(SOURCES):
            if has_archive(i, day):
                names.append(f"{experiment}/{datatype}/{day:%Y/%m/%d}/"
                             f"{day:%Y%m%d}T000000Z-{datatype}-mlab1-bench-{experiment}.tgz")
    return names


def candidates(config: Any, now: datetime) -> list[Any]:
    """Every candidate the streams offer at ``now``: daily, then one historical cycle."""
    from shared.iterators import Stream, candidate, initial_position

    found = []
    for stream in (Stream.DAILY, Stream.HISTORICAL):
        position = initial_position(stream, config, now)
        for _ in range(100_000):
            c = candidate(stream, config, position, now)
            if c is None or c.position.cycle != 0:
                break
            found.append(c)
            position = c.position.following()
    return found


def expected_keys(config: Any, now: datetime) -> set[str]:
    """The keys of the candidates at ``now`` with an archive: what ``next`` hands out."""
    return {c.job.key() for c in candidates(config, now)
            if has_archive(c.position.source, c.position.day)}
