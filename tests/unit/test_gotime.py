"""Unit tests for shared.gotime: Go RFC 3339 times and durations."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from shared.gotime import format_duration, format_time, parse_time
from shared.model import UTC, ZERO_TIME

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "go-gardener-state-v2.json"
EDT = timezone(timedelta(hours=-4))
IST = timezone(timedelta(hours=5, minutes=30))


def sample_times() -> list[str]:
    """Every time string in the Go sample state file."""
    data = json.loads(SAMPLE.read_text())
    times = [data["SaveTime"]]
    for status in data["Statuses"].values():
        times.append(status["HeartbeatTime"])
        for info in status["History"]:
            times += [info["Start"], info["DetailTime"]]
    times += [job["Date"] for job in data["Jobs"].values()]
    return times


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (datetime(2019, 1, 2, tzinfo=UTC), "2019-01-02T00:00:00Z"),
        (datetime(2019, 1, 2, 3, 4, 5, tzinfo=UTC), "2019-01-02T03:04:05Z"),
        (datetime(2022, 7, 22, 20, 56, 0, 577268, tzinfo=UTC), "2022-07-22T20:56:00.577268Z"),
        (datetime(2019, 1, 2, 0, 0, 0, 500000, tzinfo=UTC), "2019-01-02T00:00:00.5Z"),
        (datetime(2019, 1, 2, 0, 0, 0, 120000, tzinfo=UTC), "2019-01-02T00:00:00.12Z"),
        (datetime(2019, 1, 2, 0, 0, 0, 100, tzinfo=UTC), "2019-01-02T00:00:00.0001Z"),
        (datetime(2019, 1, 2, 0, 0, 0, 1, tzinfo=UTC), "2019-01-02T00:00:00.000001Z"),
        (datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "9999-12-31T23:59:59.999999Z"),
        (ZERO_TIME, "0001-01-01T00:00:00Z"),
        (datetime(1, 1, 1, tzinfo=UTC), "0001-01-01T00:00:00Z"),
        (datetime(999, 3, 4, 5, 6, 7, tzinfo=UTC), "0999-03-04T05:06:07Z"),
        (datetime(2022, 7, 22, 16, 56, 0, 586307, tzinfo=EDT), "2022-07-22T20:56:00.586307Z"),
        (datetime(2019, 1, 1, 2, 0, tzinfo=IST), "2018-12-31T20:30:00Z"),
        (
            datetime(2019, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-2))),
            "2020-01-01T01:00:00Z",
        ),
    ],
)
def test_format_time(value: datetime, text: str) -> None:
    assert format_time(value) == text


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("2019-01-02T00:00:00Z", datetime(2019, 1, 2, tzinfo=UTC)),
        ("2019-01-02T03:04:05Z", datetime(2019, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2019-01-02T00:00:00.5Z", datetime(2019, 1, 2, 0, 0, 0, 500000, tzinfo=UTC)),
        ("2019-01-02T00:00:00.000001Z", datetime(2019, 1, 2, 0, 0, 0, 1, tzinfo=UTC)),
        ("2019-01-02T00:00:00.0000001Z", datetime(2019, 1, 2, tzinfo=UTC)),
        ("2019-01-02T00:00:00.123456789Z", datetime(2019, 1, 2, 0, 0, 0, 123456, tzinfo=UTC)),
        ("2019-01-02T00:00:00.999999999Z", datetime(2019, 1, 2, 0, 0, 0, 999999, tzinfo=UTC)),
        ("2019-01-02T00:00:00.000000000Z", datetime(2019, 1, 2, tzinfo=UTC)),
        ("2022-07-22T16:56:00.586307-04:00", datetime(2022, 7, 22, 20, 56, 0, 586307, tzinfo=UTC)),
        ("2019-01-01T02:00:00+05:30", datetime(2018, 12, 31, 20, 30, tzinfo=UTC)),
        ("2019-12-31T23:00:00-02:00", datetime(2020, 1, 1, 1, 0, tzinfo=UTC)),
        ("2019-01-02T00:00:00+00:00", datetime(2019, 1, 2, tzinfo=UTC)),
        ("2019-01-02T00:00:00-00:00", datetime(2019, 1, 2, tzinfo=UTC)),
        ("0001-01-01T00:00:00Z", ZERO_TIME),
        # Go's zero time shown in a zone east of UTC is before year 1 in UTC: clamped.
        ("0001-01-01T00:00:00+01:00", ZERO_TIME),
        ("0001-01-01T03:00:00+05:00", ZERO_TIME),
        # West of UTC the instant is representable, so it is kept.
        ("0001-01-01T00:00:00-04:00", datetime(1, 1, 1, 4, 0, tzinfo=UTC)),
    ],
)
def test_parse_time(text: str, value: datetime) -> None:
    parsed = parse_time(text)
    assert parsed == value
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2019-01-02",
        "2019-01-02T00:00:00",
        "2019-01-02 00:00:00Z",
        "2019-01-02T00:00Z",
        "2019-01-02T00:00:00.Z",
        "2019-01-02T00:00:00.1234567890Z",
        "2019-01-02T00:00:00+0400",
        "2019-01-02T00:00:00+04",
        "2019-01-02T00:00:00UTC",
        "19-01-02T00:00:00Z",
        "2019-1-2T00:00:00Z",
        "2019-13-01T00:00:00Z",
        "2019-02-30T00:00:00Z",
        "2019-01-02T24:00:00Z",
        "2019-01-02T00:60:00Z",
        "2019-01-02T00:00:61Z",
        "2019-01-02T00:00:00+24:00",
        " 2019-01-02T00:00:00Z",
        "2019-01-02T00:00:00Z ",
        "2019-01-02T00:00:00Z\n",
        "2019-01-02T00:00:00Zjunk",
        "\uff12\uff10\uff11\uff19-01-02T00:00:00Z",
        "2019-01-02T00:00:00.\uff11Z",
    ],
)
def test_parse_time_rejects(text: str) -> None:
    # Text of the wrong shape is refused in parse_time's words; a field out of range
    # (month 13, 24:00, second 61, offset +24:00) in datetime's own.
    with pytest.raises(
        ValueError, match=r"not an RFC 3339 time|does not match format|out of range|must be"
    ):
        parse_time(text)


@pytest.mark.parametrize(
    "text",
    [
        "2019-01-02T00:00:00Z",
        "2022-07-22T20:56:00.577268Z",
        "2022-07-22T20:56:00.5Z",
        "2022-07-22T20:56:00.000001Z",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59.999999Z",
    ],
)
def test_canonical_text_round_trips(text: str) -> None:
    assert format_time(parse_time(text)) == text


@pytest.mark.parametrize(
    "value",
    [
        datetime(2019, 1, 2, tzinfo=UTC),
        datetime(2019, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        datetime(2022, 7, 22, 16, 56, 0, 586307, tzinfo=EDT),
        datetime(2019, 1, 1, 2, 0, 0, 999999, tzinfo=IST),
        ZERO_TIME,
    ],
)
def test_datetime_round_trips(value: datetime) -> None:
    assert parse_time(format_time(value)) == value


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("2022-07-22T16:56:00.586307-04:00", "2022-07-22T20:56:00.586307Z"),
        ("2022-07-22T16:56:00.577268-04:00", "2022-07-22T20:56:00.577268Z"),
        ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00Z"),
        ("2011-01-01T00:00:00Z", "2011-01-01T00:00:00Z"),
    ],
)
def test_sample_file_times(text: str, canonical: str) -> None:
    assert text in sample_times()
    assert format_time(parse_time(text)) == canonical


def test_every_sample_file_time_round_trips() -> None:
    times = sample_times()
    assert len(times) == 6
    for text in times:
        value = parse_time(text)
        assert parse_time(format_time(value)) == value
        assert format_time(value).endswith("Z")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(seconds=1), "1s"),
        (timedelta(seconds=45), "45s"),
        (timedelta(seconds=59, microseconds=999999), "59s"),
        (timedelta(seconds=60), "1m0s"),
        (timedelta(minutes=2), "2m0s"),
        (timedelta(minutes=59, seconds=59), "59m59s"),
        (timedelta(hours=1), "1h0m0s"),
        (timedelta(hours=1, minutes=2, seconds=3), "1h2m3s"),
        (timedelta(hours=1, seconds=3), "1h0m3s"),
        (timedelta(days=1, seconds=1), "24h0m1s"),
        (timedelta(hours=100), "100h0m0s"),
        (timedelta(seconds=-45), "-45s"),
        (timedelta(hours=-1, minutes=-2, seconds=-3), "-1h2m3s"),
    ],
)
def test_format_duration(value: timedelta, text: str) -> None:
    assert format_duration(value) == text


@pytest.mark.parametrize("text", ["9999-12-31T23:00:00-05:00", "9999-12-31T23:59:59.999999-00:01"])
def test_parse_time_refuses_a_time_after_year_9999_in_utc(text: str) -> None:
    # Not Go's zero time: refused, not turned into year 1.
    with pytest.raises(ValueError, match="out of range"):
        parse_time(text)
