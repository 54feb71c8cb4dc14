"""The operator's pauses of a source or of the whole historical cycle."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

from shared.store._common import StoreStats
from shared.store.documents import doc_id, streamed_fields
from shared.store.errors import _guarded

#: Default collection of the operator's pauses.
CONTROLS_COLLECTION = "controls"


@dataclass(frozen=True)
class Pause:
    """A pause of a source (``experiment/datatype``) or of the whole historical cycle."""

    target: str
    who: str
    since: datetime
    reason: str = ""


class ControlStore:
    """The operator's pauses: one document per paused target, present while it is paused.

    Next-job reads them all with one query per call; pausing and resuming are
    single create-only or guarded writes, so nothing contends.
    """

    def __init__(self, client: firestore.Client, collection: str = CONTROLS_COLLECTION) -> None:
        self.collection = client.collection(collection)
        self.stats = StoreStats()

    @_guarded
    def pause(self, pause: Pause) -> Pause | None:
        """Record the pause unless its target is paused already; return the pause in force before, if any."""
        ref = self.collection.document(doc_id(pause.target))
        try:
            ref.create({"target": pause.target, "who": pause.who, "since": pause.since,
                        "reason": pause.reason})
            return None
        except gexc.Conflict:
            snap = ref.get()
            self.stats.add(reads=1)
            data = snap.to_dict()  # None if the pause was lifted since the conflict
            return self._from(data) if data is not None else None
        finally:
            self.stats.add(writes=1)

    @_guarded
    def resume(self, target: str) -> Pause | None:
        """Lift the pause of ``target``; return it, or None if ``target`` was not paused."""
        ref = self.collection.document(doc_id(target))
        snap = ref.get()
        self.stats.add(reads=1)
        data = snap.to_dict()
        if data is None:  # no such document: not paused
            return None
        try:
            ref.delete(option=firestore.Client.write_option(last_update_time=snap.update_time))
        except (gexc.FailedPrecondition, gexc.NotFound):
            return None  # lifted (or replaced) meanwhile by someone else
        finally:
            self.stats.add(writes=1)
        return self._from(data)

    @_guarded
    def all(self) -> list[Pause]:
        """Return every pause in force."""
        pauses = [self._from(streamed_fields(snap.to_dict())) for snap in self.collection.stream()]
        self.stats.add(reads=max(1, len(pauses)))
        return pauses

    @staticmethod
    def _from(data: dict[str, Any]) -> Pause:
        return Pause(data["target"], data["who"], data["since"], data.get("reason", ""))
