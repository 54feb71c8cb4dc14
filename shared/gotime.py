"""Times in the Go tracker's JSON format (RFC 3339 with up to nanoseconds, ``Z`` for UTC)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from shared.model import UTC, ZERO_TIME

_GO_TIME_RE = re.compile(
    r"^(?P<base>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(?P<frac>\d{1,9}))?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})\Z", re.ASCII
)


def format_time(value: datetime) -> str:
    """Format an aware datetime as Go's ``time.Time`` marshals it (UTC, trailing zeros cut)."""
    value = value.astimezone(UTC)
    text = f"{value.year:04d}-{value:%m-%dT%H:%M:%S}"
    nanos = getattr(value, "nanosecond", None)
    frac = f"{nanos:09d}" if nanos else f"{value.microsecond:06d}"
    frac = frac.rstrip("0")
    return f"{text}.{frac}Z" if frac else f"{text}Z"


def parse_time(text: str) -> datetime:
    """Parse a Go RFC 3339 time (nanoseconds and offsets allowed) into an aware UTC datetime.

    Precision beyond microseconds is dropped. Raises ValueError for anything else.
    """
    m = _GO_TIME_RE.match(text)
    if not m:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    base = datetime.strptime(m["base"], "%Y-%m-%dT%H:%M:%S")
    micros = int((m["frac"] or "0").ljust(9, "0")[:6])
    if m["tz"] == "Z":
        tz = UTC
    else:
        sign = 1 if m["tz"][0] == "+" else -1
        hours, minutes = int(m["tz"][1:3]), int(m["tz"][4:6])
        tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        return base.replace(microsecond=micros, tzinfo=tz).astimezone(UTC)
    except OverflowError:  # before year 1 in UTC: Go's zero time in another zone
        return ZERO_TIME


def format_duration(value: timedelta) -> str:
    """Format a duration as Go's ``time.Duration.String`` does for whole seconds (``1h2m3s``)."""
    total = int(value.total_seconds())
    sign, total = ("-", -total) if total < 0 else ("", total)
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}s"
    if minutes:
        return f"{sign}{minutes}m{seconds}s"
    return f"{sign}{seconds}s"
