"""The one declaration of which state may follow which.

A request for the current state is a detail-only update, allowed in every
non-terminal state. ``complete`` and ``failed`` are terminal: nothing follows
them, and a job leaves them only by being added again (a restart).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from shared.errors import IllegalTransition
from shared.model import State

S = State

#: Every allowed change of state, by current state. ``failed`` is reachable from
#: every non-terminal state; the parser owns init/parsing/parseError, the
#: post-processing chain owns the rest. ``stabilizing`` and ``finishing`` are
#: optional steps the Go tracker declared; they may sit before loading and
#: before complete. ``postProcessing → complete`` serves sources whose
#: pipeline has no BigQuery step.
TRANSITIONS: Mapping[State, frozenset[State]] = {
    S.INIT: frozenset({S.PARSING, S.PARSE_ERROR, S.FAILED}),
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


def is_allowed(current: State, requested: State) -> bool:
    """Return whether a job in ``current`` may be updated to ``requested``."""
    if current in TERMINAL:
        return False
    return requested is current or requested in TRANSITIONS[current]


def check(key: str, current: State, requested: State) -> None:
    """Raise :class:`IllegalTransition` unless ``current → requested`` is allowed."""
    if not is_allowed(current, requested):
        raise IllegalTransition(key, current, requested, terminal=current in TERMINAL)


def check_path(path: Sequence[State]) -> None:
    """Raise ValueError unless each state of ``path`` may follow the one before it."""
    for current, following in zip(path, path[1:]):
        if following is current or not is_allowed(current, following):
            raise ValueError(f"{following.value} cannot follow {current.value}")


def as_markdown() -> str:
    """Return the table as Markdown, as the README shows it."""
    lines = ["| from | may become |", "|---|---|"]
    for state in State:
        nxt = TRANSITIONS[state]
        targets = ", ".join(f"`{s.value}`" for s in State if s in nxt)
        lines.append(f"| `{state.value}` | {targets or '— (terminal)'} |")
    return "\n".join(lines)
