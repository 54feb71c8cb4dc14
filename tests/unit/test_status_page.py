"""The status page's pure parts: age colouring, expiry, spans, counts in the page and JSON."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from shared.model import UTC, Job, JobRecord, Pause, State, StateInfo
from shared.web.status import _span, age_class, render_html, render_json
from shared.web.views import expires_at

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
TIMEOUT = timedelta(minutes=10)


def record(minutes_silent: float, *states: State, day: int = 1) -> JobRecord:
    """A job last active ``minutes_silent`` ago, moved through ``states``."""
    at = NOW - timedelta(minutes=minutes_silent)
    rec = JobRecord.new(Job("archive-b", "ndt", "ndt7", date(2019, 1, day)), at)
    for state in states:
        rec.status.history.append(StateInfo(state, at, at, ""))
    return rec


def test_age_class_by_silence_against_the_timeout():
    assert age_class(record(1, State.PARSING), TIMEOUT, NOW) == ""
    assert age_class(record(5, State.PARSING), TIMEOUT, NOW) == "aging"
    assert age_class(record(7.5, State.PARSING), TIMEOUT, NOW) == "expiring"
    assert age_class(record(60, State.PARSING), TIMEOUT, NOW) == "expiring"
    assert age_class(record(60, State.PARSING, State.COMPLETE), TIMEOUT, NOW) == ""
    assert age_class(record(0, State.FAILED), TIMEOUT, NOW) == "failed"
    assert age_class(record(60, State.PARSING), None, NOW) == ""


def test_expiry_only_for_jobs_in_flight():
    assert expires_at(record(4, State.PARSING), TIMEOUT) == NOW + timedelta(minutes=6)
    assert expires_at(record(4, State.FAILED), TIMEOUT) is None
    assert expires_at(record(4, State.PARSING), None) is None


def test_span_is_short_and_human():
    assert _span(timedelta(seconds=12)) == "12s"
    assert _span(timedelta(minutes=4, seconds=10)) == "4m 10s"
    assert _span(timedelta(hours=3, minutes=5, seconds=9)) == "3h 5m"
    assert _span(timedelta(days=2, hours=3)) == "2d 3h"
    assert _span(timedelta(seconds=-5)) == "0s"


def test_page_has_counts_filters_refresh_and_escaped_history():
    evil = record(8, State.PARSING, day=2)
    evil.status.history[0] = StateInfo(State.INIT, NOW, NOW, "<b>bold</b>")
    counts = dict.fromkeys(State, 0) | {State.PARSING: 1, State.FAILED: 3}
    page = render_html(
        [evil], 1, {"state": None, "experiment": "ndt", "datatype": None}, NOW, counts, TIMEOUT, 15
    )
    assert '<meta http-equiv="refresh" content="15">' in page
    assert 'href="?experiment=ndt&amp;refresh=15&amp;state=failed"><span class="n">3</span>' in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in page and "<b>bold" not in page
    assert "age-expiring" in page and "in 2m 0s" in page
    off = render_html([evil], 1, {}, NOW, counts, TIMEOUT, 0)
    assert 'http-equiv="refresh"' not in off and "refresh every 30 s" in off


def test_json_adds_counts_and_expiry_and_keeps_every_field():
    counts = dict.fromkeys(State, 0) | {State.PARSING: 2}
    body = render_json([record(4, State.PARSING)], 1, {}, counts, TIMEOUT)
    assert body["StateCounts"]["parsing"] == 2 and len(body["StateCounts"]) == len(State)
    job = body["Jobs"][0]
    assert job["ExpiresAt"] == "2026-11-27T12:06:00Z"
    assert {
        "ID",
        "Job",
        "Status",
        "State",
        "Label",
        "Detail",
        "Error",
        "ElapsedSeconds",
        "LastActivity",
        "Attempts",
        "LastError",
        "RetryAt",
    } <= set(job)
    assert "StateCounts" not in render_json([], 0, {})


def test_pauses_show_as_an_escaped_banner_and_in_the_json():
    pauses = [Pause("historical", "alice", NOW, "backfill <later>"), Pause("ndt/ndt7", "bob", NOW)]
    page = render_html([], 0, {}, NOW, pauses=pauses)
    assert "Paused:</strong> the historical cycle, by alice" in page
    assert "backfill &lt;later&gt;" in page and "<later>" not in page
    assert "Paused:</strong> ndt/ndt7, by bob" in page
    assert 'class="paused"' not in render_html([], 0, {}, NOW)
    body = render_json([], 0, {}, pauses=pauses)
    assert body["Paused"][0] == {
        "Target": "historical",
        "Who": "alice",
        "Since": "2026-11-27T12:00:00Z",
        "Reason": "backfill <later>",
    }
    assert render_json([], 0, {})["Paused"] == []


def test_expiry_past_year_9999_is_clamped_not_an_overflow():
    from shared.web.views import LATEST

    rec = record(0, State.PARSING)
    rec.last_update = datetime(9999, 12, 31, 23, 55, tzinfo=UTC)  # + 10 minutes: past 9999
    assert expires_at(rec, TIMEOUT) == LATEST
    assert age_class(rec, TIMEOUT, NOW) == ""
    page = render_html([rec], 1, {}, NOW, timeout=TIMEOUT)
    assert "9999-12-31T23:59:59.999999Z" in page
    assert render_json([rec], 1, {}, timeout=TIMEOUT)["Jobs"][0]["ExpiresAt"] == (
        "9999-12-31T23:59:59.999999Z"
    )
