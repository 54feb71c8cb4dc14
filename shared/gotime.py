"""Times in the Go tracker's JSON format (RFC 3339 with up to nanoseconds, ``Z`` for UTC)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from shared.model import UTC, ZERO_TIME

_GO_TIME_RE = re.compile(
    r"^(?P<base>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(?P<frac>\d{1,9}))?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})\Z",
    re.ASCII,
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
    except OverflowError:
        if base.year == 1:  # before year 1 in UTC: Go's zero time in another zone
            return ZERO_TIME
        raise ValueError(f"time out of range (after year 9999 in UTC): {text!r}") from None


def clock_parts(seconds: int) -> tuple[int, int, int, int]:
    """Whole ``seconds`` (not negative) as days, hours, minutes and seconds."""
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return days, hours, minutes, seconds


def format_duration(value: timedelta) -> str:
    """Format a duration as Go's ``time.Duration.String`` does for whole seconds (``1h2m3s``)."""
    total = int(value.total_seconds())
    sign, total = ("-", -total) if total < 0 else ("", total)
    days, hours, minutes, seconds = clock_parts(total)
    hours += 24 * days
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}s"
    if minutes:
        return f"{sign}{minutes}m{seconds}s"
    return f"{sign}{seconds}s"


#: Nanoseconds per unit of Go's ``time.ParseDuration``.
_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # µs, MICRO SIGN
    "\u03bcs": 1_000,  # μs, GREEK SMALL LETTER MU
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}
_DURATION_PAIR = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:ns|us|\u00b5s|\u03bcs|ms|s|m|h)"
_DURATION_RE = re.compile(rf"[-+]?(?:0|(?:{_DURATION_PAIR})+)")
_DURATION_PAIR_RE = re.compile(
    r"(?P<int>[0-9]*)(?:\.(?P<frac>[0-9]*))?(?P<unit>ns|us|\u00b5s|\u03bcs|ms|s|m|h)"
)
#: Go durations are int64 nanoseconds.
_MAX_DURATION_NS = 2**63 - 1


def parse_duration(text: str) -> timedelta:
    """Parse a Go ``time.ParseDuration`` string (``5h``, ``10h30m``, ``1.5h``, ``500ms``, ``0``).

    A leading ``+`` or ``-`` is allowed, as in Go; units are ns, us, µs, ms, s, m, h.
    Arithmetic is exact; precision below a microsecond is dropped (towards zero).
    Raises ValueError for anything else, including values beyond Go's int64 range.
    """
    if not isinstance(text, str) or not _DURATION_RE.fullmatch(text):
        raise ValueError(
            f"invalid duration {text!r}: expected a Go duration such as "
            '"5h", "10h30m", "1.5h", "90s", "500ms" or "0"'
        )
    negative = text.startswith("-")
    nanos = 0
    for m in _DURATION_PAIR_RE.finditer(text.lstrip("+-")):
        unit = _DURATION_UNITS[m["unit"]]
        frac = m["frac"] or ""
        # Exact: (int.frac) * unit, truncated to whole nanoseconds as Go does.
        nanos += int(m["int"] or "0") * unit + int(frac or "0") * unit // 10 ** len(frac)
    if nanos > _MAX_DURATION_NS + (1 if negative else 0):
        raise ValueError(
            f"invalid duration {text!r}: out of range (Go durations are at most ~292 years)"
        )
    micros = nanos // 1_000
    return timedelta(microseconds=-micros if negative else micros)
