"""Firestore's limits in one place: sizes counted as Firestore counts them, and what is refused."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from shared.limits import (
    INT64_MAX,
    MAX_DOCUMENT_BYTES,
    MAX_TEXT_BYTES,
    UNINDEXED_FIELDS,
    date_problem,
    document_problems,
    document_size,
    name_size,
    time_problem,
)
from shared.model import UTC, ZERO_TIME


def test_sizes_follow_firestores_storage_size_example():
    # The documented example: users/jeff/tasks/my_task_id with four fields is 147 bytes.
    name = name_size("users", "jeff", "tasks", "my_task_id")
    assert name == 44
    fields = {
        "type": "Personal",
        "done": False,
        "priority": 1,
        "description": "Learn Cloud Firestore",
    }
    assert document_size(fields, name) == 147


def test_maps_arrays_times_and_nulls_count_too():
    when = datetime(2026, 1, 1, tzinfo=UTC)
    assert document_size({"m": {"a": [1, "é"], "t": when, "n": None}}, 0) == (
        2 + (2 + 8 + 3) + (2 + 8) + (2 + 1) + 32
    )


def test_problems_name_the_field():
    assert document_problems({"update_count": INT64_MAX, "key": "k" * 1500}, 100) == []
    assert document_problems({"update_count": INT64_MAX + 1}, 100) == [
        "update_count: 9223372036854775808 does not fit in a 64-bit integer"
    ]
    assert document_problems({"datasets": {"tmp": "é" * 751}}, 100) == [
        "datasets.tmp: 1502 bytes; an indexed string holds at most 1500"
    ]
    assert document_problems({"history": {"0": {"detail": "x" * 5000}}}, 100) == []
    [big] = document_problems({"history": {"0": {"detail": "x" * MAX_DOCUMENT_BYTES}}}, 100)
    assert big.startswith("document of 1048") and big.endswith("(largest field: history)")


def test_time_window():
    assert time_problem(datetime(1970, 1, 1, tzinfo=UTC)) is None
    assert time_problem(datetime(2199, 12, 31, 23, 59, tzinfo=UTC)) is None
    assert time_problem(datetime(2200, 1, 1, tzinfo=UTC))
    assert time_problem(ZERO_TIME)
    assert time_problem(ZERO_TIME, zero_allowed=True) is None


def test_job_dates_are_the_days_of_the_time_window():
    assert date_problem(date(1970, 1, 1)) is None
    assert date_problem(date(2199, 12, 31)) is None
    assert date_problem(date(1969, 12, 31)) == (
        "job date 1969-12-31 is outside the dates the tracker accepts: 1970-01-01 up to,"
        " not including, 2200-01-01"
    )
    assert date_problem(date(2200, 1, 1))
    assert date_problem(date(1, 1, 1))


@pytest.mark.parametrize("field", sorted(UNINDEXED_FIELDS))
def test_texts_of_the_longest_accepted_size_fit_in_every_unindexed_field(field):
    text = "é" * (MAX_TEXT_BYTES // 2)
    assert document_problems({field: {"a": {"b": {"3": {"detail": text}}}}}, 100) == []


def test_the_hot_paths_live_details_are_unindexed():
    # live.{run}.entries.{index}.detail holds a parser's detail of up to MAX_TEXT_BYTES
    detail = {"live": {"0a1b2c3d": {"entries": {"3": {"detail": "x" * MAX_TEXT_BYTES}}}}}
    assert document_problems(detail, 100) == []


def test_a_lone_surrogate_is_a_problem_in_any_field():
    """JSON can carry ``\\ud800``, UTF-8 cannot: Firestore's client fails on it mid-write."""
    assert document_problems({"runs": [{"error": "ok 𝄞"}], "filter": "é"}, 100) == []
    assert document_problems(
        {"runs": [{"error": "bad \ud800"}], "history": {"3": {"detail": "\udfff"}}}, 100
    ) == [
        "runs[0].error: not valid Unicode text (a lone surrogate); Firestore stores UTF-8",
        "history.3.detail: not valid Unicode text (a lone surrogate); Firestore stores UTF-8",
    ]
