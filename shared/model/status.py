"""A job's status: its history of states, heartbeat and update count (the Go tracker's ``Status``).

Nothing here does I/O; every change takes ``now``. The failure label is Go's
``{prev}-failed``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from shared.model.job import State, utcnow

#: Go's zero ``time.Time``; the heartbeat time of a job that never sent one.
ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)

#: Detail that touches the detail time but keeps the detail text (Go rule).
KEEP_DETAIL = "-"

#: History entries kept besides the first: older ones are dropped and counted.
HISTORY_KEEP = 100
#: The latest entries whose details are kept whole; older kept ones are cut to
#: :data:`OLD_DETAIL_LENGTH` characters, so a job's history stays far below
#: Firestore's 1 MiB document limit whatever its details.
HISTORY_FULL_DETAILS = 10
OLD_DETAIL_LENGTH = 200


@dataclass(frozen=True)
class StateInfo:
    """One entry of a job's history: a state, when it began, and its latest detail."""

    #: The state.
    state: State
    #: When the job entered it.
    start: datetime
    #: When the detail was last set.
    detail_time: datetime
    #: What the job reported last in this state.
    detail: str = ""

    def with_detail(self, detail: str, now: datetime) -> StateInfo:
        """Return a copy with the detail time set to ``now`` and, unless ``-``, the detail."""
        text = self.detail if detail == KEEP_DETAIL else detail
        return replace(self, detail=text, detail_time=now)


@dataclass
class Status:
    """A job's progress: heartbeat time, update count and state history (oldest first)."""

    #: The states the job went through, oldest first; the last is the current one.
    history: list[StateInfo]
    #: The last heartbeat (:data:`ZERO_TIME`: none yet).
    heartbeat_time: datetime = ZERO_TIME
    #: Updates counted since the job was started.
    update_count: int = 0
    #: Entries dropped between the first and the kept ones (see :data:`HISTORY_KEEP`).
    dropped: int = 0

    @classmethod
    def new(cls, now: datetime | None = None) -> Status:
        """Return the status of a fresh job: one ``init`` entry."""
        now = now or utcnow()
        return cls(history=[StateInfo(State.INIT, now, now)])

    @property
    def current_index(self) -> int:
        """The absolute index of the current entry, counting dropped entries."""
        return len(self.history) - 1 + self.dropped

    def index_of(self, position: int) -> int:
        """The absolute index of ``history[position]`` (the first entry is always 0)."""
        return position + self.dropped if position > 0 else 0

    @property
    def last_state_info(self) -> StateInfo:
        """The entry of the current state."""
        return self.history[-1]

    @property
    def state(self) -> State:
        """The current state."""
        return self.history[-1].state

    @property
    def prev(self) -> State:
        """The state before the current one, or ``init``."""
        return self.history[-2].state if len(self.history) > 1 else State.INIT

    @property
    def label(self) -> str:
        """The state for metrics; ``{prev}-failed`` when failed, e.g. ``loading-failed``."""
        if self.state is State.FAILED:
            return f"{self.prev.value}-{State.FAILED.value}"
        return str(self.state)  # State.__str__ is its wire string

    @property
    def detail(self) -> str:
        """The current entry's detail, or the previous entry's when the current is empty."""
        last = self.history[-1]
        if not last.detail and len(self.history) > 1:
            return self.history[-2].detail
        return last.detail

    @property
    def detail_time(self) -> datetime:
        """When the current entry's detail was last set."""
        return self.history[-1].detail_time

    @property
    def state_change_time(self) -> datetime:
        """When the current state was entered."""
        return self.history[-1].start

    @property
    def start_time(self) -> datetime:
        """When the job was started (its first entry)."""
        return self.history[0].start

    @property
    def elapsed(self) -> timedelta:
        """Latest detail time minus start time, rounded to the second (halves away from zero, as Go)."""
        micros = (self.detail_time - self.start_time) // timedelta(microseconds=1)
        seconds = (abs(micros) + 500_000) // 1_000_000
        return timedelta(seconds=seconds if micros >= 0 else -seconds)

    @property
    def error(self) -> str:
        """The detail of a failed job, else empty."""
        last = self.history[-1]
        return last.detail if last.state is State.FAILED else ""

    def set_detail(self, detail: str, now: datetime) -> StateInfo:
        """Set the current entry's detail (``-`` keeps the text); return the previous entry."""
        old = self.history[-1]
        self.history[-1] = old.with_detail(detail, now)
        return old

    def new_state(self, state: State, now: datetime) -> StateInfo:
        """Append an entry for ``state`` unless it is the current state; return the previous entry.

        The history is then bounded (:meth:`bound_history`).
        """
        old = self.history[-1]
        if state is not old.state:
            self.history.append(StateInfo(state, now, now))
            self.bound_history()
        return old

    def bound_history(self) -> None:
        """Keep the first entry and the latest :data:`HISTORY_KEEP`, counting the others in :attr:`dropped`.

        Details of the kept entries older than the latest :data:`HISTORY_FULL_DETAILS`
        (the first entry aside) are cut to :data:`OLD_DETAIL_LENGTH` characters.
        Applied on every new state and to an imported history, whatever its length.
        """
        excess = len(self.history) - 1 - HISTORY_KEEP
        if excess > 0:
            del self.history[1 : 1 + excess]
            self.dropped += excess
        for i in range(1, len(self.history) - HISTORY_FULL_DETAILS):
            entry = self.history[i]
            if len(entry.detail) > OLD_DETAIL_LENGTH:
                self.history[i] = replace(entry, detail=entry.detail[: OLD_DETAIL_LENGTH - 1] + "…")
