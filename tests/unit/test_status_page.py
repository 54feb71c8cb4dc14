"""The status page's pure parts: age colouring, expiry, spans, counts in the page and JSON."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from urllib.parse import quote

from shared.model import UTC, Job, JobRecord, Pause, State, StateInfo
from shared.progress import Overview
from shared.web.pages import span
from shared.web.status import age_class, render_html, render_json
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
    assert span(timedelta(seconds=12)) == "12s"
    assert span(timedelta(minutes=4, seconds=10)) == "4m 10s"
    assert span(timedelta(hours=3, minutes=5, seconds=9)) == "3h 5m"
    assert span(timedelta(days=2, hours=3)) == "2d 3h"
    assert span(timedelta(seconds=-5)) == "0s"


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


# --- per-source progress, the grid, retry times ---------------------------------------


def overview() -> Overview:
    """Two sources: ndt7 done yesterday in its 2nd historical cycle, an evil-named daily-only
    one paused with yesterday deferred to the queue; a grid of two days."""
    from shared.config import Source
    from shared.progress import (
        DailyProgress,
        GridCell,
        GridDay,
        HistoricalProgress,
        SourceProgress,
    )
    from shared.streams import Position

    yesterday, before = date(2026, 11, 26), date(2026, 11, 25)
    ndt7 = Source("archive-b", "ndt", "ndt7")
    evil = Source("archive-b", "ndt", "<i>x</i>", daily_only=True)
    paused = Pause("ndt/<i>x</i>", "bob", NOW, "parser <b>bug</b>")
    cycle = Pause("historical", "alice", NOW, "quota")
    sources = (
        SourceProgress(
            ndt7,
            DailyProgress(yesterday, yesterday, State.COMPLETE, True),
            HistoricalProgress(date(2024, 3, 1), 2, 37.5, cycle),
            None,
            0,
        ),
        SourceProgress(
            evil, DailyProgress(yesterday, yesterday, None, False, True), None, paused, 1
        ),
    )

    def key(source: Source, day: date) -> str:
        return Job(source.bucket, source.experiment, source.datatype, day).key()

    grid = (
        GridDay(
            yesterday,
            (GridCell(key(ndt7, yesterday), State.COMPLETE), GridCell(key(evil, yesterday), None)),
        ),
        GridDay(
            before,
            (GridCell(key(ndt7, before), State.FAILED), GridCell(key(evil, before), State.PARSING)),
        ),
    )
    return Overview(
        sources, grid, (cycle, paused), Position(0, yesterday, 2), Position(2, date(2024, 3, 1), 1)
    )


def test_page_shows_each_sources_progress_escaped():
    page = render_html([], 0, {}, NOW, overview=overview())
    table = page[page.index('<table class="progress">') : page.index("</table>")]
    ndt7, evil = table.split('<tr>\n    <th scope="row"')[1:]
    assert ">ndt/ndt7</th>" in ndt7 and "2026-11-26" in ndt7
    assert '<a class="badge ok" href="/status/job?id=archive-b%2Fndt%2Fndt7%2F20261126"' in ndt7
    assert ">done</a>" in ndt7
    assert "2024-03-01" in ndt7 and "37.5 %" in ndt7 and 'style="width: 37.5%"' in ndt7
    assert "historical paused" in ndt7
    # the paused source: yesterday deferred, not done; its names and reason escaped
    assert "ndt/&lt;i&gt;x&lt;/i&gt;" in evil and "<i>x" not in evil
    assert '<a class="badge late"' in evil and ">queued</a>" in evil
    assert "daily only" in evil
    assert (
        "paused</strong> by bob since 2026-11-27T12:00:00Z: parser &lt;b&gt;bug&lt;/b&gt;" in evil
    )
    assert '<td class="num">1</td>' in evil
    assert "<b>bug" not in page


def test_grid_cells_link_to_the_job_and_are_empty_without_one():
    counts = dict.fromkeys(State, 0)
    page = render_html([], 0, {}, NOW, counts, overview=overview(), days=2)
    grid = page[page.index('<table class="grid">') :]
    grid = grid[: grid.index("</table>")]
    rows = grid.split("<tr>")[2:]
    assert [r[r.index('scope="row">') + 12 :][:10] for r in rows] == ["2026-11-26", "2026-11-25"]
    assert (
        '<a class="cell s-complete" href="/status/job?id=archive-b%2Fndt%2Fndt7%2F20261126" '
        'title="archive-b/ndt/ndt7/20261126: complete">complete</a>' in rows[0]
    )
    assert rows[0].count("<td></td>") == 1  # no job: an empty cell
    assert "s-failed" in rows[1] and "s-parsing" in rows[1]
    assert "&lt;i&gt;x&lt;/i&gt;%2F" not in grid and "%3Ci%3Ex%3C%2Fi%3E" in grid  # quoted
    assert "the last 2 days" in page
    # the days chosen stay in every link the page makes
    assert 'href="?days=30"' in page and "days=2&amp;state=failed" in page


def test_page_without_an_overview_has_no_progress_or_grid():
    page = render_html([], 0, {}, NOW)
    assert 'class="progress"' not in page and 'class="grid"' not in page


def test_json_carries_sources_and_grid():
    body = render_json([], 0, {}, overview=overview())
    ndt7, evil = body["Sources"]
    assert ndt7 == {
        "Bucket": "archive-b",
        "Experiment": "ndt",
        "Datatype": "ndt7",
        "Daily": {
            "Date": "2026-11-26T00:00:00Z",
            "Yesterday": "2026-11-26T00:00:00Z",
            "YesterdayState": "complete",
            "YesterdayComplete": True,
        },
        "Historical": {
            "Date": "2024-03-01T00:00:00Z",
            "Cycle": 2,
            "CyclePercent": 37.5,
            "Paused": {
                "Target": "historical",
                "Who": "alice",
                "Since": "2026-11-27T12:00:00Z",
                "Reason": "quota",
            },
        },
        "Paused": None,
        "Queued": 0,
    }
    assert evil["Historical"] is None and evil["Paused"]["Who"] == "bob"
    assert evil["Daily"]["YesterdayComplete"] is False and evil["Queued"] == 1
    assert body["Grid"][1] == {
        "Date": "2026-11-25T00:00:00Z",
        "Jobs": [
            {"ID": "archive-b/ndt/ndt7/20261125", "State": "failed"},
            {"ID": "archive-b/ndt/<i>x</i>/20261125", "State": "parsing"},
        ],
    }
    assert body["Grid"][0]["Jobs"][1]["State"] is None
    assert render_json([], 0, {})["Sources"] == [] and render_json([], 0, {})["Grid"] == []


def test_failed_rows_say_when_they_are_retried():
    due_later = record(1, State.PARSING, State.FAILED, day=2)
    due_later.retry_at = NOW + timedelta(minutes=8)
    due = record(1, State.PARSING, State.FAILED, day=3)
    due.retry_at = NOW - timedelta(minutes=1)
    final = record(1, State.PARSING, State.FAILED, day=4)
    running = record(1, State.PARSING, day=5)
    page = render_html([due_later, due, final, running], 4, {}, NOW, timeout=TIMEOUT)

    def row(rec: JobRecord) -> str:
        start = page.index(f'title="{rec.key}"')
        return page[page.rindex("<tr", 0, start) : page.index("</tr>", start)]

    assert '<span class="retry">retry in 8m 0s</span>' in row(due_later)
    assert 'title="2026-11-27T12:08:00Z"' in row(due_later)
    assert '<span class="retry">retry due</span>' in row(due)
    assert '<span class="retry">not retried</span>' in row(final)
    assert 'class="retry"' not in row(running)
    assert f'href="/status/job?id={quote(running.key, safe="")}"' in row(running)
    jobs = render_json([due_later, final], 2, {})["Jobs"]
    assert jobs[0]["RetryAt"] == "2026-11-27T12:08:00Z" and jobs[1]["RetryAt"] is None
