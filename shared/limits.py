"""Firestore's limits on a job document, and the bounds the tracker puts on stored values.

One place for each: the snapshot import checks every job against these before
its first write, and the HTTP parameter schemas bound texts so that a document
built from them stays within them. Pure: nothing here talks to Firestore.

Sizes are counted as Firestore counts them
(https://firebase.google.com/docs/firestore/storage-size): a string is its
UTF-8 bytes + 1, an integer, float or timestamp 8 bytes, a boolean or null 1,
a map the sizes of its keys and values, an array the sizes of its values, a
document its name + its fields + 32, a document name its path segments (each
a string) + 16.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import date, datetime, timedelta
from typing import Any

from shared.model import UTC, ZERO_TIME

#: Firestore's largest document (1 MiB), as counted by :func:`document_size`.
MAX_DOCUMENT_BYTES = 1_048_576

#: Firestore indexes at most this many bytes of a string value; a longer one is cut
#: in the index, and queries on it go wrong. Fields in :data:`UNINDEXED_FIELDS` are exempt.
MAX_INDEXED_STRING_BYTES = 1_500

#: Firestore's longest collection id, in bytes: the size bound of a document name
#: when the collection is not known (the collection is configurable).
MAX_COLLECTION_ID_BYTES = 1_500

#: Firestore integers are signed 64-bit.
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

#: Longest detail, error or operator reason accepted over HTTP, in UTF-8 bytes. A GCS
#: object name is at most 1,024 bytes, so a detail naming one archive always fits;
#: a bounded history of such details stays far below :data:`MAX_DOCUMENT_BYTES`.
MAX_TEXT_BYTES = 4096

#: The window a job's times (and job dates) must lie in: the Unix epoch up to (not
#: including) the year 2200. Go's zero time stands for "no heartbeat" and is allowed there.
MIN_TIME = datetime(1970, 1, 1, tzinfo=UTC)
MAX_TIME = datetime(2200, 1, 1, tzinfo=UTC)
#: The job dates of that window: from :data:`MIN_DATE` up to, not including, :data:`MAX_DATE`.
#: Every source of a job date (a job id, the config's ``start_date``, a reprocessing range)
#: is held to it, so every job the tracker makes can be exported and imported again.
MIN_DATE = MIN_TIME.date()
MAX_DATE = MAX_TIME.date()

#: How far ahead of the clock a stored time may be before it counts as corrupt (clock skew
#: between instances, with a wide margin). Expiry fails jobs whose last activity is later
#: than now + this; a snapshot pointer naming a later time may be moved back.
MAX_CLOCK_SKEW = timedelta(days=1)

#: Top-level fields of a job document with no single-field index (the
#: ``google_firestore_field`` exemptions in terraform/firestore.tf): free texts, never
#: queried. Every other string (key, names, datasets, offers, …) must stay within
#: :data:`MAX_INDEXED_STRING_BYTES`.
#: ``live`` holds the hot path's per-run details (up to :data:`MAX_TEXT_BYTES` each), ``runs``
#: the summaries of earlier runs (their errors and histories). A field
#: added here is added to ``unindexed_job_fields`` in terraform/firestore.tf too (a test keeps
#: the two in step).
UNINDEXED_FIELDS = frozenset({"history", "audit", "last_error", "filter", "live", "runs"})

#: Bytes a timestamp, integer or float takes.
_NUMBER_BYTES = 8


def string_size(text: str) -> int:
    """Firestore's size of a string: its UTF-8 bytes + 1."""
    return len(text.encode("utf-8", "surrogatepass")) + 1


def value_size(value: Any) -> int:
    """Firestore's size of a field value."""
    if value is None or isinstance(value, bool):
        return 1
    if isinstance(value, int | float | datetime):
        return _NUMBER_BYTES
    if isinstance(value, str):
        return string_size(value)
    if isinstance(value, bytes):
        return len(value)
    if isinstance(value, Mapping):
        return sum(string_size(str(k)) + value_size(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return sum(value_size(v) for v in value)
    raise TypeError(f"no Firestore size for {type(value).__name__}")


def name_size(*segments: str) -> int:
    """Firestore's size of a document name: its collection and document ids + 16."""
    return sum(string_size(s) for s in segments) + 16


def document_size(fields: Mapping[str, Any], name_bytes: int) -> int:
    """Firestore's size of a document with ``fields`` and a name of ``name_bytes``."""
    return name_bytes + value_size(fields) + 32


def time_problem(value: datetime, zero_allowed: bool = False) -> str | None:
    """Describe why ``value`` is outside :data:`MIN_TIME`–:data:`MAX_TIME`, or None if inside."""
    if zero_allowed and value == ZERO_TIME:
        return None
    if MIN_TIME <= value < MAX_TIME:
        return None
    return f"{value.isoformat()} is outside {MIN_TIME.year}-01-01 to {MAX_TIME.year}-01-01" + (
        " (or the zero time)" if zero_allowed else ""
    )


def date_problem(day: date) -> str | None:
    """Describe why job date ``day`` is outside :data:`MIN_DATE`–:data:`MAX_DATE`, or None if inside."""
    if MIN_DATE <= day < MAX_DATE:
        return None
    return (
        f"job date {day.isoformat()} is outside the dates the tracker accepts: "
        f"{MIN_DATE.isoformat()} up to, not including, {MAX_DATE.isoformat()}"
    )


def is_utf8(text: str) -> bool:
    """Whether ``text`` encodes as UTF-8: it holds no lone surrogate (``\\ud800``), which JSON
    can carry and Firestore (like any UTF-8 text) cannot."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _leaves(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from _leaves(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from _leaves(v, f"{path}[{i}]")
    else:
        yield path, value


def document_problems(fields: Mapping[str, Any], name_bytes: int) -> list[str]:
    """List what Firestore would refuse (or index wrongly) in a job document; empty if nothing.

    Checks integers against int64, every string for a lone surrogate (JSON can carry one,
    UTF-8 cannot: the client would fail mid-write), strings of indexed fields against
    :data:`MAX_INDEXED_STRING_BYTES` and the whole against :data:`MAX_DOCUMENT_BYTES`.
    """
    problems = []
    for path, value in _leaves(fields, ""):
        if isinstance(value, int) and not isinstance(value, bool):
            if not INT64_MIN <= value <= INT64_MAX:
                problems.append(f"{path}: {value} does not fit in a 64-bit integer")
        elif isinstance(value, str) and not is_utf8(value):
            problems.append(
                f"{path}: not valid Unicode text (a lone surrogate); Firestore stores UTF-8"
            )
        elif isinstance(value, str) and path.split(".")[0].split("[")[0] not in UNINDEXED_FIELDS:
            size = string_size(value) - 1
            if size > MAX_INDEXED_STRING_BYTES:
                problems.append(
                    f"{path}: {size} bytes; an indexed string holds at most "
                    f"{MAX_INDEXED_STRING_BYTES}"
                )
    size = document_size(fields, name_bytes)
    if size > MAX_DOCUMENT_BYTES:
        biggest = max(fields, key=lambda k: string_size(k) + value_size(fields[k]))
        problems.append(
            f"document of {size} bytes; Firestore's limit is {MAX_DOCUMENT_BYTES} "
            f"(largest field: {biggest})"
        )
    return problems
