"""Unit tests for shared.transitions: every state pair against a hand-written edge list."""

from __future__ import annotations

import itertools

import pytest

from shared.errors import IllegalTransition, NotParserState, TrackerError
from shared.model import State
from shared.transitions import TERMINAL, Role, as_markdown, check, check_path, is_allowed

# Written out by hand from the brief; deliberately not derived from TRANSITIONS.
ALL_STATES = [
    "init",
    "parsing",
    "parseError",
    "postProcessing",
    "stabilizing",
    "loading",
    "deduplicating",
    "copying",
    "joining",
    "deleting",
    "finishing",
    "failed",
    "complete",
]
NON_TERMINAL = [s for s in ALL_STATES if s not in ("failed", "complete")]
PARSER_EDGES = {
    ("init", "parsing"),
    ("init", "parseError"),
    ("init", "postProcessing"),  # the parser's first parsing update was lost
    ("parsing", "postProcessing"),
    ("parsing", "parseError"),
    ("parseError", "parsing"),
    ("parseError", "postProcessing"),
}
CHAIN_EDGES = {
    ("postProcessing", "loading"),
    ("loading", "deduplicating"),
    ("deduplicating", "copying"),
    ("copying", "deleting"),
    ("deleting", "joining"),
    ("joining", "complete"),
}
OPTIONAL_EDGES = {
    ("postProcessing", "stabilizing"),
    ("stabilizing", "loading"),
    ("joining", "finishing"),
    ("finishing", "complete"),
    ("postProcessing", "complete"),  # a source without BigQuery steps
}
FAILURE_EDGES = {(s, "failed") for s in NON_TERMINAL}
SAME_STATE = {(s, s) for s in NON_TERMINAL}
ALLOWED = PARSER_EDGES | CHAIN_EDGES | OPTIONAL_EDGES | FAILURE_EDGES | SAME_STATE

ALL_PAIRS = list(itertools.product(ALL_STATES, repeat=2))
FORBIDDEN = [pair for pair in ALL_PAIRS if pair not in ALLOWED]
KEY = "pusher-mlab-oti/ndt/ndt7/20190102"


def pair_id(pair: tuple[str, str]) -> str:
    return f"{pair[0]}->{pair[1]}"


def test_expected_table_is_consistent() -> None:
    assert {s.value for s in State} == set(ALL_STATES)
    assert len(ALLOWED) == 7 + 6 + 5 + 11 + 11
    assert len(ALL_PAIRS) == 169
    assert len(FORBIDDEN) == 169 - 40


@pytest.mark.parametrize("pair", ALL_PAIRS, ids=pair_id)
def test_is_allowed_every_pair(pair: tuple[str, str]) -> None:
    current, requested = pair
    assert is_allowed(State(current), State(requested)) is (pair in ALLOWED)


@pytest.mark.parametrize("pair", sorted(ALLOWED), ids=pair_id)
def test_check_passes_allowed(pair: tuple[str, str]) -> None:
    check(KEY, State(pair[0]), State(pair[1]))  # raises if refused


@pytest.mark.parametrize("pair", FORBIDDEN, ids=pair_id)
def test_check_rejects_forbidden(pair: tuple[str, str]) -> None:
    current, requested = State(pair[0]), State(pair[1])
    with pytest.raises(IllegalTransition) as info:
        check(KEY, current, requested)
    error = info.value
    assert isinstance(error, TrackerError)
    assert error.key == KEY
    assert error.current is current
    assert error.requested is requested
    message = str(error)
    assert KEY in message
    assert current.value in message
    assert requested.value in message
    if current is requested:
        assert "terminal" in message
    if current.value in NON_TERMINAL:
        assert "terminal" not in message


@pytest.mark.parametrize("state", ["complete", "failed"])
def test_terminal_same_state_message(state: str) -> None:
    with pytest.raises(IllegalTransition, match=rf"job {KEY} is {state}, a terminal state"):
        check(KEY, State(state), State(state))


def test_non_terminal_message() -> None:
    with pytest.raises(IllegalTransition, match=rf"^job {KEY} cannot go from init to complete$"):
        check(KEY, State.INIT, State.COMPLETE)


def test_terminal_set() -> None:
    assert {State.COMPLETE, State.FAILED} == TERMINAL
    assert isinstance(TERMINAL, frozenset)


def test_markdown_has_header_and_one_row_per_state() -> None:
    lines = as_markdown().splitlines()
    assert lines[0].startswith("| from |")
    assert lines[1] == "|---|---|---|"
    rows = lines[2:]
    assert len(rows) == len(ALL_STATES)
    assert [row.split("|")[1].strip() for row in rows] == [f"`{s.value}`" for s in State]


@pytest.mark.parametrize("state", ALL_STATES)
def test_markdown_row_lists_targets(state: str) -> None:
    rows = [line for line in as_markdown().splitlines() if line.startswith(f"| `{state}` |")]
    assert len(rows) == 1
    cell = rows[0].split("|")[3].strip()
    expected = {b for a, b in ALLOWED if a == state and b != state}
    if expected:
        assert {t.strip().strip("`") for t in cell.split(",")} == expected
    else:
        assert "terminal" in cell


@pytest.mark.parametrize(
    ("path", "ok"),
    [
        (
            [
                "postProcessing",
                "loading",
                "deduplicating",
                "copying",
                "deleting",
                "joining",
                "complete",
            ],
            True,
        ),
        (["postProcessing", "complete"], True),
        (["postProcessing", "copying", "complete"], False),
        (["postProcessing", "loading", "loading", "deduplicating"], False),
    ],
)
def test_check_path(path: list[str], ok: bool) -> None:
    states = [State(s) for s in path]
    if ok:
        check_path(states)
    else:
        with pytest.raises(ValueError, match="cannot follow"):
            check_path(states)


# What a parser may ask for, by hand: the table's edges among init and the
# parser's states, same-state updates in its own states, and giving up.
PARSER_OWNED = ["parsing", "parseError", "postProcessing"]
PARSER_MAY = (
    {(a, b) for a, b in PARSER_EDGES}
    | {(s, s) for s in PARSER_OWNED}
    | {(s, "failed") for s in ["init", *PARSER_OWNED]}
)


@pytest.mark.parametrize("pair", ALL_PAIRS, ids=pair_id)
def test_parser_may_set_only_its_own_states(pair: tuple[str, str]) -> None:
    current, requested = State(pair[0]), State(pair[1])
    if pair in PARSER_MAY:
        check(KEY, current, requested, Role.PARSER)  # raises if refused
        return
    with pytest.raises((NotParserState, IllegalTransition)) as info:
        check(KEY, current, requested, Role.PARSER)
    if pair in ALLOWED:  # the table allows it, only the role forbids it
        assert isinstance(info.value, NotParserState)


REFUSALS = [
    (
        "postProcessing",
        "complete",
        f"job {KEY}: complete is set by post-processing (or an operator), not by a parser "
        f"(the job is postProcessing)",
    ),
    (
        "postProcessing",
        "loading",
        f"job {KEY}: loading is set by post-processing (or an operator), not by a parser "
        f"(the job is postProcessing)",
    ),
    (
        "loading",
        "loading",
        f"job {KEY} is loading, which post-processing (or an operator) owns; "
        f"a parser cannot update it",
    ),
    (
        "loading",
        "deduplicating",
        f"job {KEY} is loading, which post-processing (or an operator) owns; "
        f"a parser cannot move it to deduplicating",
    ),
    (
        "copying",
        "failed",
        f"job {KEY} is copying, which post-processing (or an operator) owns; "
        f"a parser cannot move it to failed",
    ),
    ("init", "init", f"job {KEY} is init, which next (a hand-out) owns; a parser cannot update it"),
]


@pytest.mark.parametrize(
    ("current", "requested", "message"), REFUSALS, ids=[f"{c}->{r}" for c, r, _ in REFUSALS]
)
def test_parser_refusal_names_the_owner(current: str, requested: str, message: str) -> None:
    with pytest.raises(NotParserState) as info:
        check(KEY, State(current), State(requested), Role.PARSER)
    assert str(info.value) == message


@pytest.mark.parametrize("terminal", ["complete", "failed"])
def test_parser_on_a_terminal_job_gets_the_terminal_message(terminal: str) -> None:
    with pytest.raises(IllegalTransition, match="a terminal state"):
        check(KEY, State(terminal), State.PARSING, Role.PARSER)


def test_markdown_names_who_sets_each_state() -> None:
    owners = {
        line.split("|")[1].strip().strip("`"): line.split("|")[2].strip()
        for line in as_markdown().splitlines()[2:]
    }
    assert {s for s, who in owners.items() if who == "the parser"} == set(PARSER_OWNED)
    assert owners["loading"].startswith("post-processing")
    assert owners["complete"].startswith("post-processing")
