"""The job service's two streams of candidates, as pure functions of a position and the time.

A **position** is (cycle, day, source index). The *daily* stream starts at
yesterday and offers every source for day D once D + 24 h + the daily delay
has passed. The *historical* stream starts at the config's ``start_date`` and
offers every source that is not ``daily_only``; a day older than one year is
offered only to sources with ``full_history``; when the next day is within
36 hours of now the stream starts over at ``start_date`` in the next cycle,
but not before the config's ``min_cycle_interval`` has passed since the
previous cycle started (:func:`next_cycle_at`).

Positions encode to integers that grow in iteration order, so a stored cursor
can only move forward with Firestore's ``Maximum`` transform: concurrent
callers never contend on it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from shared.model import UTC, Job, midnight

if TYPE_CHECKING:
    from shared.config import Config, Source

#: The historical stream starts over when its next day is this close to now.
RESTART_WINDOW = timedelta(hours=36)

_DAYS = 10_000_000  # more than any date ordinal
#: Sources a config may have at most: a position numbers its source below this.
MAX_SOURCES = 1_000


class Stream(str, enum.Enum):
    """Which stream a candidate comes from."""

    DAILY = "daily"
    HISTORICAL = "historical"


@dataclass(frozen=True, order=True)
class Position:
    """A place in a stream: the cycle (historical only), the day and the source index."""

    cycle: int
    day: date
    source: int

    def encode(self) -> int:
        """Return an integer that orders positions as the stream visits them."""
        return (self.cycle * _DAYS + self.day.toordinal()) * MAX_SOURCES + self.source

    @classmethod
    def decode(cls, value: int) -> Position:
        """Return the position :meth:`encode` gave ``value`` for."""
        rest, source = divmod(value, MAX_SOURCES)
        cycle, ordinal = divmod(rest, _DAYS)
        return cls(cycle, date.fromordinal(ordinal), source)

    def following(self) -> Position:
        """Return the position right after this one (normalised by :func:`candidate`)."""
        return replace(self, source=self.source + 1)


@dataclass(frozen=True)
class Candidate:
    """A job a stream offers at a position."""

    stream: Stream
    position: Position
    job: Job

    @property
    def offer(self) -> str:
        """The id of this offer, unique per stream, cycle, day and source: ``daily/0/20190102/3``."""
        p = self.position
        return f"{self.stream.value}/{p.cycle}/{p.day:%Y%m%d}/{p.source}"


def _one_year_before(now: datetime) -> datetime:
    """Go's ``now.AddDate(-1, 0, 0)``: Feb 29 becomes Mar 1."""
    try:
        return now.replace(year=now.year - 1)
    except ValueError:
        return now.replace(year=now.year - 1, month=3, day=1)


def _first_recent_day(now: datetime) -> date:
    """The first day not older than a year: the first a source without full history is offered."""
    return (_one_year_before(now) - timedelta(microseconds=1)).date() + timedelta(days=1)


def cycle_days(config: Config, source: Source, now: datetime) -> tuple[date, date]:
    """Return the first and last day the historical stream offers ``source`` in a cycle now.

    The first is ``start_date``, or the first day not older than a year for a
    source without ``full_history``; the last is the last day before the
    stream starts over (36 h before now). The first is after the last when the
    cycle holds no day of the source.
    """
    first = config.start_date
    if not source.full_history:
        first = max(first, _first_recent_day(now))
    return first, (now - RESTART_WINDOW).astimezone(UTC).date()


def initial_position(stream: Stream, config: Config, now: datetime) -> Position:
    """Return where a stream starts when it has no stored cursor."""
    if stream is Stream.DAILY:
        return Position(0, now.astimezone(UTC).date() - timedelta(days=1), 0)
    return Position(0, config.start_date, 0)


def candidate(
    stream: Stream, config: Config, position: Position, now: datetime
) -> Candidate | None:
    """Return the first candidate at or after ``position``, or None if none is available now."""
    if stream is Stream.DAILY:
        return _daily(config, position, now)
    return _historical(config, position, now)


def _daily(config: Config, pos: Position, now: datetime) -> Candidate | None:
    if pos.source >= len(config.sources):
        pos = Position(pos.cycle, pos.day + timedelta(days=1), 0)
    if now < midnight(pos.day) + timedelta(days=1) + config.daily_delay:
        return None
    return Candidate(Stream.DAILY, pos, config.sources[pos.source].job(pos.day))


def _historical(config: Config, pos: Position, now: datetime) -> Candidate | None:
    sources = config.sources
    eligible = [i for i, s in enumerate(sources) if not s.daily_only]
    if not eligible:
        return None
    full = [i for i in eligible if sources[i].full_history]
    year_ago = _one_year_before(now)
    # Without full-history sources the stream jumps to the first recent day
    # instead of stepping through years of days.
    recent_start = _first_recent_day(now)
    if pos.day < config.start_date:
        pos = Position(pos.cycle, config.start_date, 0)
    wrapped = False
    while True:
        if midnight(pos.day) > now - RESTART_WINDOW:
            if wrapped or midnight(config.start_date) > now - RESTART_WINDOW:
                return None
            pos, wrapped = Position(pos.cycle + 1, config.start_date, 0), True
            continue
        old = midnight(pos.day) < year_ago
        if old and not full:
            pos = Position(pos.cycle, recent_start, 0)
            continue
        for i in full if old else eligible:
            if i >= pos.source:
                return Candidate(Stream.HISTORICAL, replace(pos, source=i), sources[i].job(pos.day))
        pos = Position(pos.cycle, pos.day + timedelta(days=1), 0)


def next_cycle_at(
    previous_start: datetime | None, min_interval: timedelta, now: datetime
) -> datetime | None:
    """When the historical stream may start its next cycle: None if now, else the time.

    ``previous_start``: when the cycle that just ended started (None: not
    known, so no wait); ``min_interval``: the config's ``min_cycle_interval``
    (0: no pacing).
    """
    if previous_start is None or min_interval <= timedelta(0):
        return None
    allowed = previous_start + min_interval
    return allowed if now < allowed else None
