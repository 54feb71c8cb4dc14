"""The job page's pure parts: the commands each state offers, the page (escaped, its runs, retry
time, expiry and audit), its JSON, and the validation of its query."""

from __future__ import annotations

import re
import shlex
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any

import markupsafe
import pytest
from marshmallow import ValidationError

from shared.model import UTC, AuditEntry, Job, JobRecord, State
from shared.schemas import JobPageQuery, JobPageRequest
from shared.transitions import TERMINAL, TRANSITIONS, Action, operator_actions
from shared.web.job_page import commands, render_error, render_html
from shared.web.views import job_page_json

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
JOB = Job("archive-b", "ndt", "ndt7", date(2026, 11, 26))
KEY = JOB.key()
EVIL = "<script>alert('x')</script>&"

#: The path to each state through the table, from init.
PATHS: dict[State, tuple[State, ...]] = {
    State.INIT: (),
    State.PARSING: (State.PARSING,),
    State.PARSE_ERROR: (State.PARSE_ERROR,),
    State.POST_PROCESSING: (State.PARSING, State.POST_PROCESSING),
    State.STABILIZING: (State.POST_PROCESSING, State.STABILIZING),
    State.LOADING: (State.POST_PROCESSING, State.LOADING),
    State.DEDUPLICATING: (State.POST_PROCESSING, State.LOADING, State.DEDUPLICATING),
    State.COPYING: (State.POST_PROCESSING, State.LOADING, State.DEDUPLICATING, State.COPYING),
    State.DELETING: (
        State.POST_PROCESSING,
        State.LOADING,
        State.DEDUPLICATING,
        State.COPYING,
        State.DELETING,
    ),
    State.JOINING: (
        State.POST_PROCESSING,
        State.LOADING,
        State.DEDUPLICATING,
        State.COPYING,
        State.DELETING,
        State.JOINING,
    ),
    State.FINISHING: (
        State.POST_PROCESSING,
        State.LOADING,
        State.DEDUPLICATING,
        State.COPYING,
        State.DELETING,
        State.JOINING,
        State.FINISHING,
    ),
    State.FAILED: (State.PARSING, State.FAILED),
    State.COMPLETE: (State.PARSING, State.POST_PROCESSING, State.COMPLETE),
}


def record_in(state: State, detail: str = "", started: datetime = NOW) -> JobRecord:
    rec = JobRecord.new(JOB, started - timedelta(minutes=30), offer="daily/0/20261126/0")
    for step in PATHS[state]:
        rec.status.set_detail(detail, started - timedelta(minutes=20))
        rec.status.new_state(step, started - timedelta(minutes=20))
    if state is State.FAILED:
        rec.status.set_detail(f"parsing: {detail or 'died'}", started - timedelta(minutes=20))
    rec.last_update = started - timedelta(minutes=20)
    return rec


def test_every_state_has_a_path_in_the_table() -> None:
    for state, path in PATHS.items():
        assert record_in(state).status.state is state
        previous = State.INIT
        for step in path:
            assert step in TRANSITIONS[previous], (previous, step)
            previous = step


# --- which actions each state allows: one rule, in the transitions module ------------------


@pytest.mark.parametrize(
    ("state", "actions"),
    [pytest.param(s, (Action.FAIL,), id=s.value) for s in State if s not in TERMINAL]
    + [
        pytest.param(State.FAILED, (Action.RETRY, Action.REPROCESS), id="failed"),
        pytest.param(State.COMPLETE, (Action.REPROCESS,), id="complete"),
    ],
)
def test_operator_actions_follow_the_table(state: State, actions: tuple[Action, ...]) -> None:
    assert operator_actions(state) == actions


# --- the commands the page offers ------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        pytest.param(
            State.PARSING,
            [
                f"gardener job {KEY}",
                f"gardener fail {KEY} --reason 'why it is stopped'",
            ],
            id="in flight: fail",
        ),
        pytest.param(
            State.LOADING,
            [
                f"gardener job {KEY}",
                f"gardener fail {KEY} --reason 'why it is stopped'",
            ],
            id="post-processing: fail",
        ),
        pytest.param(
            State.FAILED,
            [
                f"gardener job {KEY}",
                f"gardener retry {KEY}",
                "gardener reprocess --from 2026-11-26 --to 2026-11-26 --source ndt/ndt7",
            ],
            id="failed: retry or reprocess",
        ),
        pytest.param(
            State.COMPLETE,
            [
                f"gardener job {KEY}",
                "gardener reprocess --from 2026-11-26 --to 2026-11-26 --source ndt/ndt7",
            ],
            id="complete: reprocess",
        ),
    ],
)
def test_commands_per_state(state: State, expected: list[str]) -> None:
    offered = commands(record_in(state))
    assert [line for _, line, _ in offered] == expected
    assert [action for action, _, _ in offered] == [
        "show",
        *(a.value for a in operator_actions(state)),
    ]
    page = render_html(record_in(state), NOW)
    for line in expected:
        assert f'<code class="copy">{markupsafe.escape(line)}</code>' in page


@pytest.mark.parametrize("state", [State.PARSING, State.FAILED, State.COMPLETE], ids=str)
def test_commands_are_what_the_cli_parses_into_calls_on_this_job(state: State) -> None:
    """Each command line, split as a shell splits it, is a ``gardener`` call on this job:
    ``job``, ``retry`` and ``fail`` take the bare key (bucket/experiment/datatype/YYYYMMDD)."""
    from shared.cli import build_request, check_usage, parser

    expected = {
        "/admin/job": {"id": KEY},
        "/admin/job/retry": {"id": KEY},
        "/admin/job/fail": {"id": KEY, "reason": "why it is stopped"},
        "/admin/reprocess": {"from": "2026-11-26", "to": "2026-11-26", "sources": "ndt/ndt7"},
    }
    for _, line, _ in commands(record_in(state)):
        words = shlex.split(line)
        assert words[0] == "gardener"
        args = parser().parse_args(words[1:])
        assert check_usage(args) == ""
        _, path, params = build_request(args)
        assert params == expected[path], line


# --- the page --------------------------------------------------------------------------------


def retried_twice() -> JobRecord:
    """A job that failed twice and runs its third attempt, with an audit."""
    first = record_in(State.FAILED, EVIL, started=NOW - timedelta(hours=2))
    second = JobRecord.new(JOB, NOW - timedelta(hours=1), offer="retry/2")
    second.attempts = 2
    second.keep_run(first)
    second.status.new_state(State.PARSING, NOW - timedelta(minutes=50))
    second.status.new_state(State.FAILED, NOW - timedelta(minutes=40))
    second.status.set_detail("expired in parsing: no heartbeat", NOW - timedelta(minutes=40))
    third = JobRecord.new(JOB, NOW - timedelta(minutes=5), offer="retry/3")
    third.attempts = 3
    third.keep_run(second)
    third.note(AuditEntry(NOW - timedelta(minutes=6), EVIL, "retry", "due now as attempt 3"))
    return third


def test_the_page_shows_every_attempt_with_its_error_newest_first_escaped() -> None:
    page = render_html(retried_twice(), NOW, timedelta(hours=1), 3)

    assert "<script>" not in page and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;" in page
    attempts = re.findall(r"<summary>Attempt (\d)", page)
    assert attempts == ["2", "1"]
    assert page.index("expired in parsing: no heartbeat") < page.index("parsing: &lt;script&gt;")
    assert "Attempt 3, this run:" in page and "3 of 3 run automatically" in page
    assert f'<code class="copy" title="select to copy">{KEY}</code>' in page
    assert "handed out as <code>retry/3</code>" in page  # this run
    assert "Handed out as <code>retry/2</code>; started 2026-11-27T11:00:00Z" in page
    assert "<strong>retry</strong> by &lt;script&gt;" in page
    assert (
        "2026-11-27T13:00:00Z (in 1h 0m) if nothing more is heard" not in page
    )  # not in flight long
    assert "Expires</dt><dd>2026-11-27T12:55:00Z (in 55m 0s)" in page


@pytest.mark.parametrize(
    ("retry_at", "shown"),
    [
        pytest.param(None, "not retried (gardener retry runs it again)", id="no retry"),
        pytest.param(NOW + timedelta(minutes=5), "at 2026-11-27T12:05:00Z (in 5m 0s)", id="later"),
        pytest.param(NOW - timedelta(seconds=1), "due since 2026-11-27T11:59:59Z", id="due"),
    ],
)
def test_a_failed_job_shows_when_it_is_retried(retry_at: datetime | None, shown: str) -> None:
    rec = record_in(State.FAILED)
    rec.retry_at = retry_at
    page = render_html(rec, NOW)
    assert f"<dt>Retry</dt><dd>{shown}" in page
    assert "<dt>Expires</dt>" not in page  # a terminal job does not expire


def test_a_job_in_flight_shows_no_retry_and_an_old_document_its_last_error() -> None:
    rec = record_in(State.PARSING)
    rec.attempts, rec.last_error = 2, "parsing: from a document without runs"
    page = render_html(rec, NOW, timedelta(minutes=30))
    assert "<dt>Retry</dt>" not in page
    assert 'The previous run failed: <span class="error">parsing: from a document' in page
    assert "Expires</dt><dd>2026-11-27T12:10:00Z (in 10m 0s)" in page


def test_the_json_has_the_runs_oldest_first_and_the_commands() -> None:
    rec = retried_twice()
    body = job_page_json(rec, timedelta(hours=1), commands(rec))
    assert body["ID"] == KEY and body["Run"] == rec.run and body["Attempts"] == 3
    assert [r["Attempt"] for r in body["Runs"]] == [1, 2]
    assert body["Runs"][0]["Error"] == f"parsing: {EVIL}"
    assert body["Runs"][1]["Offer"] == "retry/2"
    assert [c["Action"] for c in body["Commands"]] == ["show", "fail"]
    assert body["ExpiresAt"] == "2026-11-27T12:55:00Z"


def test_the_error_page_says_what_is_wrong_and_offers_a_lookup() -> None:
    page = render_error(404, f"no job {EVIL}", EVIL)
    assert "<title>Gardener job: 404</title>" in page
    assert "<script>" not in page and "no job &lt;script&gt;" in page
    assert 'name="id" value="&lt;script&gt;' in page


# --- the query -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param({"id": KEY}, JobPageRequest(KEY, "html"), id="key"),
        pytest.param({"id": KEY, "format": "json"}, JobPageRequest(KEY, "json"), id="json"),
        pytest.param({"id": KEY, "format": ""}, JobPageRequest(KEY, "html"), id="empty format"),
    ],
)
def test_job_page_query_loads(data: dict[str, Any], expected: JobPageRequest) -> None:
    assert JobPageQuery().load(data) == expected


@pytest.mark.parametrize(
    ("data", "field", "fragment"),
    [
        pytest.param({}, "id", "Missing data", id="missing"),
        pytest.param({"id": ""}, "id", "Missing data", id="empty"),
        pytest.param({"id": "not-a-key"}, "id", "malformed job id", id="malformed"),
        pytest.param({"id": KEY + "~0a1b2c3d"}, "id", "malformed job id", id="with a run"),
        pytest.param(
            {"id": KEY + "~0a1b2c3d"},
            "id",
            f"names a run of the job; give the job's key, {KEY}",
            id="with a run: the key to give",
        ),
        pytest.param({"id": "archive-b/ndt/ndt7/20261341"}, "id", "invalid date", id="bad date"),
        pytest.param({"id": KEY, "format": "xml"}, "format", "Must be one of", id="format"),
    ],
)
def test_job_page_query_refuses(data: dict[str, Any], field: str, fragment: str) -> None:
    with pytest.raises(ValidationError) as refused:
        JobPageQuery().load(data)
    assert list(refused.value.messages) == [field]
    assert fragment in " ".join(refused.value.messages[field])  # type: ignore[call-overload]


def test_every_text_a_job_carries_is_escaped_in_the_page() -> None:
    """A script in each free text of a job, its earlier runs and its audit is shown as text."""
    record = retried_twice()
    record.status.set_detail(EVIL, NOW - timedelta(minutes=4))
    record.offer, record.reoffer, record.last_error = EVIL, EVIL, EVIL
    record.lease_owner, record.lease_until = EVIL, NOW
    record.note(AuditEntry(NOW, EVIL, EVIL, EVIL))
    ended = record_in(State.FAILED, EVIL)
    ended.offer = EVIL
    record.keep_run(ended)
    record.runs[-1] = replace(record.runs[-1], offer=EVIL, error=EVIL)

    page = render_html(record, NOW, timedelta(hours=1), 3)

    assert "<script" not in page
    escaped = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;"
    # detail, offer, re-offer, lease, audit (who, action, detail), the run's offer, error and
    # history detail: each shown, escaped
    assert page.count(escaped) >= 10, page.count(escaped)
