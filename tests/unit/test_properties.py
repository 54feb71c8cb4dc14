"""Property tests of the pure model and the transition table (hypothesis).

A state machine applies any sequence of the tracker's operations — updates to
any state (legal or not), details, heartbeats, parser errors, expiry,
post-processing steps, retries — to one job, the way the tracker applies them
inside a transaction (:meth:`Tracker.move`, :meth:`Tracker.fail`,
:meth:`RetryPolicy.retry_at`), and checks after every step that:

* the history starts with ``init`` and only edges of the table follow each other;
* a terminal state stays terminal until the job is added again (a retry);
* ``UpdateCount`` never shrinks within a run, and grows by exactly one per update;
* an illegal operation raises :class:`IllegalTransition` and changes nothing.
"""

from __future__ import annotations

import copy
import itertools
from datetime import date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from shared import transitions
from shared.errors import IllegalTransition
from shared.model import KEEP_DETAIL, UTC, Job, JobRecord, State, Status
from shared.tracker import RetryPolicy, Tracker

JOB = Job("archive-bucket", "ndt", "ndt7", date(2019, 1, 2))
START = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
RETRY = RetryPolicy(max_attempts=3, backoff=timedelta(minutes=10))

states = st.sampled_from(list(State))
#: Details as parsers send them, plus the keep-the-text marker, unicode and markup.
details = st.one_of(st.just(KEEP_DETAIL), st.just(""), st.text(max_size=40))
steps = st.integers(min_value=0, max_value=3_600_000)  # milliseconds the clock moves


def snapshot(record: JobRecord) -> JobRecord:
    """A deep copy to compare against after an operation that must change nothing."""
    return copy.deepcopy(record)


class JobLifecycle(RuleBasedStateMachine):
    """One job under any sequence of tracker operations."""

    def __init__(self) -> None:
        super().__init__()
        self.now = START
        self.record = JobRecord.new(JOB, self.now)
        self.count_floor = 0  # the update count may never fall below it (within a run)
        self.terminal_seen: State | None = None

    # ---------------------------------------------------------------- helpers

    def _tick(self, ms: int) -> datetime:
        self.now += timedelta(milliseconds=ms)
        return self.now

    def _refused(self, operation) -> None:
        before = snapshot(self.record)
        with pytest.raises(IllegalTransition):
            operation()
        assert self.record == before, "an illegal operation changed the job"

    def _failed(self, detail: str) -> None:
        """Move to failed as the tracker's transactions do, and set the retry time."""
        Tracker.fail(self.record, detail, self.now)
        self.record.retry_at = RETRY.retry_at(self.record.attempts, self.record.last_update)

    # ---------------------------------------------------------------- operations

    @rule(state=states, detail=details, ms=steps)
    def update(self, state: State, detail: str, ms: int) -> None:
        """``/v2/job/update``: a detail update, a table edge, or a refused change."""
        now = self._tick(ms)
        current = self.record.status.state
        if not transitions.is_allowed(current, state):
            self._refused(lambda: Tracker.move(self.record, state, detail, now))
            return
        count, length = self.record.status.update_count, len(self.record.status.history)
        left_detail = self.record.status.history[-1].detail
        Tracker.move(self.record, state, detail, now)
        status = self.record.status
        assert status.update_count == count + 1
        assert status.state is state
        assert len(status.history) == length + (state is not current)
        left = status.history[length - 1]
        assert left.detail == (left_detail if detail == KEEP_DETAIL else detail)
        assert left.detail_time == now

    @rule(ms=steps)
    def heartbeat(self, ms: int) -> None:
        """``/v2/job/heartbeat``: refused on a terminal job; never touches history or count."""
        now = self._tick(ms)
        state = self.record.status.state
        if state in transitions.TERMINAL:
            self._refused(lambda: transitions.check(JOB.key(), state, state))
            return
        before = snapshot(self.record)
        self.record.status.heartbeat_time = now
        assert self.record.status.history == before.status.history
        assert self.record.status.update_count == before.status.update_count
        assert self.record.last_activity == now

    @rule(error=st.text(max_size=40), ms=steps)
    def parser_error(self, error: str, ms: int) -> None:
        """``/v2/job/error``: an update to ``parseError`` with the error as detail."""
        self.update(State.PARSE_ERROR, error, ms)

    @rule(error=st.text(max_size=40), ms=steps)
    def mark_failed(self, error: str, ms: int) -> None:
        """``set_job_error``: failed from any state in flight, not counted as an update."""
        self._tick(ms)
        old = self.record.status.state
        if old in transitions.TERMINAL:
            self._refused(lambda: Tracker.fail(self.record, error, self.now))
            return
        count = self.record.status.update_count
        self._failed(f"{old.value}: {error}")
        assert self.record.status.update_count == count
        assert self.record.status.error == f"{old.value}: {error}"
        assert self.record.status.label == f"{old.value}-failed"

    @rule(ms=steps)
    def expire(self, ms: int) -> None:
        """Expiry: a job in flight becomes failed with the reason; a terminal one is left alone."""
        self._tick(ms)
        old = self.record.status.state
        if old in transitions.TERMINAL:
            return  # expiry never queries terminal jobs
        self._failed(f"expired in {old.value}: no heartbeat or update")
        assert self.record.status.error.startswith(f"expired in {old.value}")

    @rule(ms=steps)
    def retry(self, ms: int) -> None:
        """A retry (or any restart by ``add_job``): only from a terminal state, fresh history."""
        now = self._tick(ms)
        old = self.record
        if old.status.state not in transitions.TERMINAL:
            return  # add_job refuses a job in flight: JobAlreadyExists, nothing written
        fresh = JobRecord.new(JOB, now, offer=f"retry/{old.attempts + 1}")
        if old.status.state is State.FAILED:
            if old.retry_at is None:
                return  # out of attempts: not retried
            fresh.attempts, fresh.last_error = old.attempts + 1, old.status.error
        self.record, self.count_floor, self.terminal_seen = fresh, 0, None
        assert [e.state for e in fresh.status.history] == [State.INIT]

    # ---------------------------------------------------------------- invariants

    @invariant()
    def history_follows_the_table(self) -> None:
        history = self.record.status.history
        assert history and history[0].state is State.INIT
        transitions.check_path([e.state for e in history])  # raises on a non-edge or repeat
        assert all(a.start <= b.start for a, b in itertools.pairwise(history))
        assert all(e.detail_time >= e.start for e in history)

    @invariant()
    def terminal_stays_terminal(self) -> None:
        state = self.record.status.state
        if self.terminal_seen is not None:
            assert state is self.terminal_seen
        if state in transitions.TERMINAL:
            self.terminal_seen = state

    @invariant()
    def update_count_only_grows(self) -> None:
        count = self.record.status.update_count
        assert count >= self.count_floor
        self.count_floor = count

    @invariant()
    def retries_are_bounded(self) -> None:
        assert 1 <= self.record.attempts <= RETRY.max_attempts


JobLifecycle.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestJobLifecycle = JobLifecycle.TestCase


@settings(max_examples=300, deadline=None)
@given(st.lists(states, min_size=1, max_size=12))
def test_check_path_accepts_exactly_the_chains_of_table_edges(path: list[State]) -> None:
    legal = all(b is not a and transitions.is_allowed(a, b) for a, b in itertools.pairwise(path))
    if legal:
        transitions.check_path(path)
    else:
        with pytest.raises(ValueError, match="cannot follow"):
            transitions.check_path(path)


@settings(max_examples=300, deadline=None)
@given(states, states)
def test_check_raises_exactly_when_the_table_forbids(current: State, requested: State) -> None:
    allowed = current not in transitions.TERMINAL and (
        requested is current or requested in transitions.TRANSITIONS[current]
    )
    if allowed:
        transitions.check("k", current, requested)
    else:
        with pytest.raises(IllegalTransition) as info:
            transitions.check("k", current, requested)
        assert current.value in str(info.value) and requested.value in str(info.value)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(details, steps), max_size=20))
def test_details_never_change_the_state_or_history_length(ops: list[tuple[str, int]]) -> None:
    now = START
    status = Status.new(now)
    for detail, ms in ops:
        now += timedelta(milliseconds=ms)
        kept = status.history[-1].detail
        status.set_detail(detail, now)
        assert len(status.history) == 1 and status.state is State.INIT
        assert status.detail == (kept if detail == KEEP_DETAIL else detail)
        assert status.detail_time == now


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=6), st.integers(min_value=1, max_value=6))
def test_retry_backoff_doubles_and_stops_at_the_limit(attempts: int, limit: int) -> None:
    policy = RetryPolicy(max_attempts=limit, backoff=timedelta(minutes=10))
    at = policy.retry_at(attempts, START)
    if attempts >= limit:
        assert at is None
    else:
        assert at == START + timedelta(minutes=10) * 2 ** (attempts - 1)
