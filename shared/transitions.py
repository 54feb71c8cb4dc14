"""The one declaration of which state may follow which.

A request for the current state is a detail-only update, allowed in every
non-terminal state. ``complete`` and ``failed`` are terminal: nothing follows
them, and a job leaves them only by being added again (a restart). Parsers may
only set the states they own (:data:`PARSER_STATES`); the others belong to
post-processing and operators.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from itertools import pairwise

from shared.errors import IllegalTransition, NotParserState
from shared.model import State

S = State

#: Every allowed change of state, by current state. ``failed`` is reachable from
#: every non-terminal state; the parser owns init/parsing/parseError, the
#: post-processing chain owns the rest. ``stabilizing`` and ``finishing`` are
#: optional steps the Go tracker declared; they may sit before loading and
#: before complete. ``postProcessing → complete`` serves sources whose
#: pipeline has no BigQuery step. ``init → postProcessing`` serves a parser
#: whose first ``parsing`` update was lost (the Go tracker accepts it too).
TRANSITIONS: Mapping[State, frozenset[State]] = {
    S.INIT: frozenset({S.PARSING, S.PARSE_ERROR, S.POST_PROCESSING, S.FAILED}),
    S.PARSING: frozenset({S.POST_PROCESSING, S.PARSE_ERROR, S.FAILED}),
    S.PARSE_ERROR: frozenset({S.PARSING, S.POST_PROCESSING, S.FAILED}),
    S.POST_PROCESSING: frozenset({S.STABILIZING, S.LOADING, S.COMPLETE, S.FAILED}),
    S.STABILIZING: frozenset({S.LOADING, S.FAILED}),
    S.LOADING: frozenset({S.DEDUPLICATING, S.FAILED}),
    S.DEDUPLICATING: frozenset({S.COPYING, S.FAILED}),
    S.COPYING: frozenset({S.DELETING, S.FAILED}),
    S.DELETING: frozenset({S.JOINING, S.FAILED}),
    S.JOINING: frozenset({S.FINISHING, S.COMPLETE, S.FAILED}),
    S.FINISHING: frozenset({S.COMPLETE, S.FAILED}),
    S.COMPLETE: frozenset(),
    S.FAILED: frozenset(),
}

#: States a job never leaves except by being added again.
TERMINAL: frozenset[State] = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)

#: Terminal states that mean the job's work is done (``failed`` is terminal, not done).
SUCCEEDED: frozenset[State] = frozenset({S.COMPLETE})

#: The states parsers own: the only ones ``update`` and ``error`` may set, or
#: update in place. A parser may also give up (``failed``) on a job in one of
#: them or in ``init``; every other state is set by post-processing or an operator.
PARSER_STATES: frozenset[State] = frozenset({S.PARSING, S.PARSE_ERROR, S.POST_PROCESSING})


class Role(str, enum.Enum):
    """Who asks for a change: a parser (limited to :data:`PARSER_STATES`) or anyone else."""

    PARSER = "parser"
    OPERATOR = "operator"  # operators, post-processing, expiry: bound by the table only


class Action(str, enum.Enum):
    """An operator's action on one job, named as the ``gardener`` command that takes it."""

    FAIL = "fail"
    RETRY = "retry"
    REPROCESS = "reprocess"


def operator_actions(state: State) -> tuple[Action, ...]:
    """The operator's actions a job in ``state`` allows, in the order to offer them.

    ``fail``: a state the table lets become ``failed`` (every state in flight);
    ``retry``: ``failed`` alone; ``reprocess``: a terminal state, which it
    restarts (a job in flight would only be owed a re-offer when it ends).
    """
    actions = []
    if is_allowed(state, S.FAILED) and state is not S.FAILED:
        actions.append(Action.FAIL)
    if state is S.FAILED:
        actions.append(Action.RETRY)
    if state in TERMINAL:
        actions.append(Action.REPROCESS)
    return tuple(actions)


def owner(state: State) -> str:
    """Name who sets ``state``, as the transitions table and refusals say it."""
    if state is S.INIT:
        return "next (a hand-out)"
    if state in PARSER_STATES:
        return "the parser"
    if state is S.FAILED:
        return "anyone (parser, post-processing, expiry, operator)"
    return "post-processing (or an operator)"


def is_allowed(current: State, requested: State) -> bool:
    """Return whether a job in ``current`` may be updated to ``requested``."""
    if current in TERMINAL:
        return False
    return requested is current or requested in TRANSITIONS[current]


def parser_may(current: State, requested: State) -> bool:
    """Return whether a parser may ask for ``current → requested`` (the table aside)."""
    if requested is S.FAILED:
        return current is S.INIT or current in PARSER_STATES
    return requested in PARSER_STATES and (current is S.INIT or current in PARSER_STATES)


def check(key: str, current: State, requested: State, by: Role = Role.OPERATOR) -> None:
    """Raise unless ``by`` may change a job in ``current`` to ``requested``.

    :class:`IllegalTransition` if the table forbids it (or the job is
    terminal), :class:`NotParserState` if a parser asks for a state it does
    not own or updates a job in such a state.
    """
    terminal = current in TERMINAL
    if by is Role.PARSER and not terminal and not parser_may(current, requested):
        owns_current = current is not S.INIT and current not in PARSER_STATES
        raise NotParserState(
            key, current, requested, owner(current if owns_current else requested), owns_current
        )
    if not is_allowed(current, requested):
        raise IllegalTransition(key, current, requested, terminal=terminal)


def check_path(path: Sequence[State]) -> None:
    """Raise ValueError unless each state of ``path`` may follow the one before it."""
    for current, following in pairwise(path):
        if following is current or not is_allowed(current, following):
            raise ValueError(f"{following.value} cannot follow {current.value}")


def as_markdown() -> str:
    """Return the table as Markdown, as docs/design.md shows it."""
    lines = ["| from | set by | may become |", "|---|---|---|"]
    for state in State:
        nxt = TRANSITIONS[state]
        targets = ", ".join(f"`{s.value}`" for s in State if s in nxt)
        lines.append(f"| `{state.value}` | {owner(state)} | {targets or '— (terminal)'} |")
    return "\n".join(lines)
