"""The daily and historical date iterators, on a fixed clock."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from shared.config import Config, Source
from shared.model import UTC, Datasets
from shared.streams import Position, Stream, candidate, initial_position, next_cycle_at

DS = Datasets("tmp_ndt", "raw_ndt", "")


def source(datatype: str, daily_only: bool = False, full_history: bool = False) -> Source:
    return Source("archive-bucket", "ndt", datatype, "", DS, daily_only, full_history)


def config(
    *sources: Source,
    start: date = date(2026, 11, 1),
    delay: timedelta = timedelta(hours=10, minutes=30),
) -> Config:
    return Config(
        start_date=start,
        tracker_timeout=timedelta(hours=6),
        polling_interval=timedelta(minutes=1),
        sources=tuple(sources),
        daily_delay=delay,
    )


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def walk(
    stream: Stream, cfg: Config, now: datetime, n: int, start: Position | None = None
) -> list[tuple[int, date, str]]:
    """The first ``n`` candidates as (cycle, day, datatype)."""
    pos = start or initial_position(stream, cfg, now)
    out = []
    for _ in range(n):
        found = candidate(stream, cfg, pos, now)
        if found is None:
            break
        out.append((found.position.cycle, found.position.day, found.job.datatype))
        pos = found.position.following()
    return out


ABC = config(source("a"), source("b", daily_only=True), source("c"))


def test_daily_starts_at_yesterday():
    assert initial_position(Stream.DAILY, ABC, at(2026, 11, 27, 12)) == Position(
        0, date(2026, 11, 26), 0
    )


@pytest.mark.parametrize(
    ("now", "available"),
    [
        (at(2026, 11, 27, 10, 29), False),  # D + 24 h + 10 h 29 min
        (at(2026, 11, 27, 10, 30), True),  # D + 24 h + 10 h 30 min exactly
        (at(2026, 11, 28, 0, 0), True),
    ],
)
def test_daily_availability_delay(now, available):
    found = candidate(Stream.DAILY, ABC, Position(0, date(2026, 11, 26), 0), now)
    assert (found is not None) is available


def test_daily_delay_is_configurable():
    cfg = config(source("a"), delay=timedelta(0))
    assert (
        candidate(Stream.DAILY, cfg, Position(0, date(2026, 11, 26), 0), at(2026, 11, 27))
        is not None
    )
    assert (
        candidate(Stream.DAILY, cfg, Position(0, date(2026, 11, 26), 0), at(2026, 11, 26, 23, 59))
        is None
    )


def test_daily_offers_every_source_in_config_order_then_the_next_day():
    got = walk(Stream.DAILY, ABC, at(2026, 11, 29, 10), 10, Position(0, date(2026, 11, 26), 0))
    assert got == [
        (0, date(2026, 11, 26), "a"),
        (0, date(2026, 11, 26), "b"),
        (0, date(2026, 11, 26), "c"),
        (0, date(2026, 11, 27), "a"),
        (0, date(2026, 11, 27), "b"),
        (0, date(2026, 11, 27), "c"),
    ]  # 28 Nov opens at 29 Nov 10:30 (D + 24 h + 10 h 30 min)


def test_historical_skips_daily_only_and_starts_over_within_36_hours():
    now = at(2026, 11, 5, 6)  # 36 h before: 3 Nov 18:00, so 3 Nov (midnight) is the last day
    got = walk(Stream.HISTORICAL, ABC, now, 9)
    assert got == [
        (0, date(2026, 11, 1), "a"),
        (0, date(2026, 11, 1), "c"),
        (0, date(2026, 11, 2), "a"),
        (0, date(2026, 11, 2), "c"),
        (0, date(2026, 11, 3), "a"),
        (0, date(2026, 11, 3), "c"),
        (1, date(2026, 11, 1), "a"),
        (1, date(2026, 11, 1), "c"),
        (1, date(2026, 11, 2), "a"),
    ]


def test_historical_one_year_window_and_full_history():
    cfg = config(source("limited"), source("full", full_history=True), start=date(2025, 11, 25))
    now = at(2026, 11, 27, 12)  # a year ago: 2025-11-27 12:00
    got = walk(Stream.HISTORICAL, cfg, now, 6)
    assert got == [
        (0, date(2025, 11, 25), "full"),
        (0, date(2025, 11, 26), "full"),
        (0, date(2025, 11, 27), "full"),  # midnight is before 12:00 a year ago
        (0, date(2025, 11, 28), "limited"),
        (0, date(2025, 11, 28), "full"),
        (0, date(2025, 11, 29), "limited"),
    ]


def test_historical_jumps_over_years_without_full_history_sources():
    cfg = config(source("limited"), start=date(2015, 11, 19))
    found = candidate(
        Stream.HISTORICAL,
        cfg,
        initial_position(Stream.HISTORICAL, cfg, at(2026, 11, 27)),
        at(2026, 11, 27),
    )
    assert found is not None and found.position.day == date(2025, 11, 27)


def test_historical_with_nothing_to_offer_is_none():
    assert (
        candidate(
            Stream.HISTORICAL,
            config(source("a", daily_only=True)),
            Position(0, date(2026, 11, 1), 0),
            at(2026, 11, 27),
        )
        is None
    )
    recent = config(source("a"), start=date(2026, 11, 26))
    assert (
        candidate(Stream.HISTORICAL, recent, Position(0, date(2026, 11, 26), 0), at(2026, 11, 27))
        is None
    )


def test_resume_from_a_stored_position_repeats_and_skips_nothing():
    now = at(2026, 11, 10)
    whole = walk(Stream.HISTORICAL, ABC, now, 12)
    pos = initial_position(Stream.HISTORICAL, ABC, now)
    for _ in range(5):
        found = candidate(Stream.HISTORICAL, ABC, pos, now)
        assert found is not None
        pos = found.position.following()
    # The cursor is stored as an integer, as in Firestore, and read back after a restart.
    resumed = walk(Stream.HISTORICAL, ABC, now, 7, Position.decode(pos.encode()))
    assert whole[:5] + resumed == whole


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (Position(0, date(2026, 1, 1), 5), Position(0, date(2026, 1, 2), 0)),
        (Position(0, date(9999, 12, 31), 999), Position(1, date(2015, 1, 1), 0)),
        (Position(3, date(2020, 2, 29), 1), Position(3, date(2020, 2, 29), 2)),
    ],
)
def test_encoding_orders_positions_as_the_streams_visit_them(a, b):
    assert a < b and a.encode() < b.encode()
    assert Position.decode(a.encode()) == a and Position.decode(b.encode()) == b


def test_offer_ids_are_distinct_per_stream_cycle_day_and_source():
    now = at(2026, 11, 5, 6)
    offers = []
    pos = initial_position(Stream.HISTORICAL, ABC, now)
    for _ in range(8):
        found = candidate(Stream.HISTORICAL, ABC, pos, now)
        assert found is not None
        offers.append(found.offer)
        pos = found.position.following()
    assert len(set(offers)) == len(offers)
    assert offers[0] == "historical/0/20261101/0"
    daily = candidate(Stream.DAILY, ABC, Position(0, date(2026, 11, 1), 1), now)
    assert daily is not None and daily.offer == "daily/0/20261101/1"


T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("previous_start", "interval", "now", "expected"),
    [
        # Off (the default): a cycle starts over at once.
        (T0, timedelta(0), T0 + timedelta(seconds=1), None),
        # The previous start is not known (a cursor from before the setting): no wait.
        (None, timedelta(hours=1), T0, None),
        # Too early: the next cycle waits until the interval has passed since the last start.
        (T0, timedelta(hours=1), T0 + timedelta(seconds=5), T0 + timedelta(hours=1)),
        (T0, timedelta(hours=1), T0, T0 + timedelta(hours=1)),
        (
            T0,
            timedelta(minutes=10),
            T0 + timedelta(minutes=9, seconds=59),
            T0 + timedelta(minutes=10),
        ),
        # Exactly at, or after, the interval: now.
        (T0, timedelta(hours=1), T0 + timedelta(hours=1), None),
        (T0, timedelta(hours=1), T0 + timedelta(days=3), None),
        # A start in the future (clocks apart): wait for it plus the interval.
        (T0 + timedelta(minutes=5), timedelta(minutes=10), T0, T0 + timedelta(minutes=15)),
    ],
)
def test_next_cycle_waits_for_the_min_cycle_interval(previous_start, interval, now, expected):
    assert next_cycle_at(previous_start, interval, now) == expected
