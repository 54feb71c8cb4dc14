"""Which totals a change of state adds to (``shared.tracker.counted``)."""

from __future__ import annotations

import pytest

from shared.model import State
from shared.tracker import COMPLETED, FAILED, STARTED, counted
from shared.transitions import TERMINAL


def test_a_new_job_is_started():
    assert counted(None, State.INIT) == (STARTED,)


@pytest.mark.parametrize("old", sorted(TERMINAL))
def test_a_finished_job_started_again_is_started(old: State):
    assert counted(old, State.INIT) == (STARTED,)


@pytest.mark.parametrize("old", [s for s in State if s is not State.COMPLETE])
def test_a_change_into_complete_is_completed(old: State):
    assert counted(old, State.COMPLETE) == (COMPLETED,)


@pytest.mark.parametrize("old", [s for s in State if s is not State.FAILED])
def test_a_change_into_failed_is_failed(old: State):
    assert counted(old, State.FAILED) == (FAILED,)


@pytest.mark.parametrize("state", list(State))
def test_staying_in_a_state_counts_nothing(state: State):
    assert counted(state, state) == ()


def test_moves_between_states_in_flight_count_nothing():
    assert counted(State.INIT, State.PARSING) == ()
    assert counted(State.LOADING, State.DEDUPLICATING) == ()
