"""The job service's stream cursors: forward-only positions, one document per stream."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from google.cloud import firestore

from shared.store.common import StoreStats
from shared.store.errors import IDEMPOTENT_WRITE_RETRY, guarded
from shared.store.owed import OWED_DOCUMENT, OwedHint, hint_from

#: Default collection of the job service's cursors.
CURSORS_COLLECTION = "cursors"


@dataclass(frozen=True)
class CursorState:
    """What a cursor document holds.

    ``position``: every position below it is resolved (None if never set).
    ``handed``: positions at or above it already handed out by a caller that
    jumped ahead of the cursor. ``quiet_from``: no hand-out is known from this
    position on. ``idle_until``: the stream came a whole cycle round from
    ``quiet_from`` without a hand-out; it is not walked again before this time.
    ``cycle_started``: when each recent cycle of the stream started, by cycle
    (kept only while the config paces cycles, ``min_cycle_interval``).
    """

    position: int | None = None
    handed: frozenset[int] = frozenset()
    quiet_from: int | None = None
    idle_until: datetime | None = None
    cycle_started: Mapping[int, datetime] = field(default_factory=dict)


def _state(snap: Any) -> CursorState:
    data = (snap.to_dict() or {}) if snap.exists else {}
    handed = frozenset(int(k) for k in (data.get("handed") or {}))
    cycles = {int(k): v for k, v in (data.get("cycle_started") or {}).items()}
    return CursorState(
        data.get("position"), handed, data.get("quiet_from"), data.get("idle_until"), cycles
    )


class CursorStore:
    """Forward-only cursors of the job service: one document per stream.

    A cursor is a hint, not a lock: it only moves forward (Firestore's
    ``Maximum`` transform, a single write that cannot conflict), so any number
    of callers read and advance it at once.
    """

    def __init__(self, client: firestore.Client, collection: str = CURSORS_COLLECTION) -> None:
        self.client = client
        self.collection = client.collection(collection)
        self.stats = StoreStats()

    @guarded
    def get(self, name: str) -> int | None:
        """Return the cursor's position, or None if it was never set (one read)."""
        return self.state(name).position

    @guarded
    def state(self, name: str) -> CursorState:
        """Return the whole cursor document (one read); empty if it was never written."""
        snap = self.collection.document(name).get()
        self.stats.add(reads=1)
        return _state(snap)

    @guarded
    def states_and_hint(self, names: Sequence[str]) -> tuple[dict[str, CursorState], OwedHint]:
        """Return the cursors ``names`` and the owed-runs hint, in one call (a read each)."""
        refs = [self.collection.document(n) for n in (*names, OWED_DOCUMENT)]
        snaps = {snap.id: snap for snap in self.client.get_all(refs)}
        self.stats.add(reads=len(refs))
        return {n: _state(snaps[n]) for n in names}, hint_from(snaps[OWED_DOCUMENT])

    @guarded
    def advance(
        self,
        name: str,
        position: int | None,
        *,
        handed: int | None = None,
        passed: Iterable[int] = (),
        quiet_from: int | None = None,
        idle_until: datetime | None = None,
        wake: bool = False,
        cycle_started: tuple[int, datetime] | None = None,
        forget_cycles: Iterable[int] = (),
    ) -> None:
        """Move the cursor forward and note what the stream's walk learnt (one blind write).

        ``position`` and ``quiet_from`` move only forward (``Maximum``);
        ``handed`` is added to the positions handed out ahead of the cursor and
        ``passed`` removed from them; ``idle_until`` is set when given, and
        removed with ``wake``; ``cycle_started`` (cycle, time) records when a
        cycle started, and ``forget_cycles`` drops older records.
        """
        fields: dict[str, object] = {}
        if position is not None:
            fields["position"] = firestore.Maximum(position)
        if quiet_from is not None:
            fields["quiet_from"] = firestore.Maximum(quiet_from)
        if idle_until is not None:
            fields["idle_until"] = idle_until
        elif wake:
            fields["idle_until"] = firestore.DELETE_FIELD
        marks: dict[str, object] = {str(p): firestore.DELETE_FIELD for p in passed}
        if handed is not None:
            marks[str(handed)] = True
        if marks:
            fields["handed"] = marks
        cycles: dict[str, object] = {str(c): firestore.DELETE_FIELD for c in forget_cycles}
        if cycle_started is not None:
            cycles[str(cycle_started[0])] = cycle_started[1]
        if cycles:
            fields["cycle_started"] = cycles
        if not fields:
            return
        self.collection.document(name).set(fields, merge=True, retry=IDEMPOTENT_WRITE_RETRY)
        self.stats.add(writes=1)
