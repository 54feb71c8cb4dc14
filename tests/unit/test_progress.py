"""The per-source progress's pure parts: where each stream is, yesterday done, the cycle's share."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pytest

from shared.config import Config, Source
from shared.model import UTC, Job, JobRecord, State, StateInfo
from shared.progress import cycle_percent, stream_dates, yesterday_done
from shared.streams import Position, Stream, cycle_days

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
YESTERDAY = date(2026, 11, 26)


def config(start: date, *sources: Source) -> Config:
    return Config(
        start_date=start,
        tracker_timeout=timedelta(hours=1),
        polling_interval=timedelta(minutes=1),
        sources=sources,
    )


def job_in(state: State | None) -> JobRecord | None:
    """Yesterday's job, moved to ``state``; None: no document."""
    if state is None:
        return None
    record = JobRecord.new(Job("b", "ndt", "ndt7", YESTERDAY), NOW)
    if state is not State.INIT:
        record.status.history.append(StateInfo(state, NOW, NOW, ""))
    return record


@dataclass(frozen=True)
class YesterdayCase:
    name: str
    resolved: date | None
    state: State | None
    queued: bool
    done: bool


YESTERDAY_CASES = [
    YesterdayCase("complete", YESTERDAY, State.COMPLETE, False, True),
    YesterdayCase(
        "complete, resolved beyond", YESTERDAY + timedelta(1), State.COMPLETE, False, True
    ),
    YesterdayCase("cleaned up after completing", YESTERDAY, None, False, True),
    YesterdayCase("paused source: deferred to the queue", YESTERDAY, None, True, False),
    YesterdayCase("queued again while complete", YESTERDAY, State.COMPLETE, True, True),
    YesterdayCase("reprocessing in flight", YESTERDAY, State.PARSING, True, False),
    YesterdayCase("in flight", YESTERDAY, State.PARSING, False, False),
    YesterdayCase("handed out, not started", YESTERDAY, State.INIT, False, False),
    YesterdayCase("post-processing", YESTERDAY, State.LOADING, False, False),
    YesterdayCase("failed", YESTERDAY, State.FAILED, False, False),
    YesterdayCase("daily stream not there yet", YESTERDAY - timedelta(1), None, False, False),
    YesterdayCase(
        "complete but stream behind", YESTERDAY - timedelta(1), State.COMPLETE, False, False
    ),
    YesterdayCase("daily stream never walked", None, None, False, False),
]


@pytest.mark.parametrize("case", YESTERDAY_CASES, ids=lambda c: c.name)
def test_yesterday_is_done_only_when_its_job_is(case: YesterdayCase) -> None:
    assert yesterday_done(case.resolved, YESTERDAY, job_in(case.state), case.queued) is case.done


def test_stream_dates_split_at_the_cursor_source() -> None:
    cfg = config(
        date(2020, 1, 1),
        Source("b", "e", "a"),
        Source("b", "e", "b", daily_only=True),
        Source("b", "e", "c"),
    )
    at = Position(0, date(2020, 1, 5), 1)
    assert stream_dates(cfg, Stream.DAILY, at) == {
        0: date(2020, 1, 5),
        1: date(2020, 1, 4),
        2: date(2020, 1, 4),
    }
    assert stream_dates(cfg, Stream.HISTORICAL, at) == {0: date(2020, 1, 5), 2: date(2020, 1, 4)}


@dataclass(frozen=True)
class CycleCase:
    name: str
    start: date
    full_history: bool
    resolved: date | None
    percent: float


#: The last day of a cycle at NOW is 36 h before, 2026-11-26 (from 2026-11-17: 10 days).
CYCLE_CASES = [
    CycleCase("before the first walk", date(2026, 11, 17), True, None, 0.0),
    CycleCase("a new cycle, nothing resolved", date(2026, 11, 17), True, date(2026, 11, 16), 0.0),
    CycleCase("first day resolved", date(2026, 11, 17), True, date(2026, 11, 17), 10.0),
    CycleCase("half way", date(2026, 11, 17), True, date(2026, 11, 21), 50.0),
    CycleCase("last day resolved", date(2026, 11, 17), True, date(2026, 11, 26), 100.0),
    CycleCase(
        "past the end, waiting to start over", date(2026, 11, 17), True, date(2026, 11, 27), 100.0
    ),
    CycleCase("start within 36 h: no day to do", date(2026, 11, 27), True, None, 0.0),
    # 2025-11-28 is the first day not older than a year at NOW: 364 days to 2026-11-26
    CycleCase("no full history: old days skipped", date(2020, 1, 1), False, date(2024, 1, 1), 0.0),
    CycleCase("no full history: the recent year", date(2020, 1, 1), False, date(2026, 5, 28), 50.0),
    CycleCase("full history from 2020", date(2020, 1, 1), True, date(2023, 6, 14), 50.0),
]


@pytest.mark.parametrize("case", CYCLE_CASES, ids=lambda c: c.name)
def test_cycle_percent_is_the_share_of_the_sources_days_resolved(case: CycleCase) -> None:
    source = Source("b", "e", "d", full_history=case.full_history)
    assert cycle_percent(config(case.start, source), source, case.resolved, NOW) == pytest.approx(
        case.percent, abs=0.2
    )


def test_cycle_days_follow_the_restart_window_and_the_year_of_recent_days() -> None:
    full = Source("b", "e", "full", full_history=True)
    recent = Source("b", "e", "recent")
    cfg = config(date(2020, 1, 1), full, recent)
    assert cycle_days(cfg, full, NOW) == (date(2020, 1, 1), date(2026, 11, 26))
    assert cycle_days(cfg, recent, NOW) == (date(2025, 11, 28), date(2026, 11, 26))
    # at midnight exactly, the day a year before is not older than a year
    midnight = datetime(2026, 11, 27, tzinfo=UTC)
    assert cycle_days(cfg, recent, midnight)[0] == date(2025, 11, 27)


def test_cycle_percent_is_100_only_once_the_last_day_is_resolved() -> None:
    # 2,522 days from 2020-01-01 to 2026-11-26: one day short of the end is 99.96 %, which
    # rounds to 100 although the cycle is not done
    source = Source("b", "e", "d", full_history=True)
    cfg = config(date(2020, 1, 1), source)
    first, last = cycle_days(cfg, source, NOW)
    assert (last - first).days + 1 == 2522
    assert cycle_percent(cfg, source, last - timedelta(1), NOW) < 100.0
    assert cycle_percent(cfg, source, last, NOW) == 100.0
    assert cycle_percent(cfg, source, first, NOW) > 0.0  # one day resolved is not none
    assert cycle_percent(cfg, source, first - timedelta(1), NOW) == 0.0
