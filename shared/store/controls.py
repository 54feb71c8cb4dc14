"""The operator's pauses of a source or of the whole historical cycle."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

from shared.model import Pause
from shared.store.common import StoreStats
from shared.store.cursors import CURSORS_COLLECTION
from shared.store.documents import doc_id, streamed_fields
from shared.store.errors import guarded
from shared.store.owed import OwedHint, OwedHintStore

#: Default collection of the operator's pauses.
CONTROLS_COLLECTION = "controls"


def pause_to_document(pause: Pause) -> dict[str, Any]:
    """Return the Firestore document of a pause."""
    return {"target": pause.target, "who": pause.who, "since": pause.since, "reason": pause.reason}


def pause_from_document(data: dict[str, Any]) -> Pause:
    """Return the pause a Firestore document holds."""
    return Pause(data["target"], data["who"], data["since"], data.get("reason", ""))


class ControlStore:
    """The operator's pauses: one document per paused target, present while it is paused.

    Next-job reads them all with one query per call while the owed-runs hint
    (:mod:`shared.store.owed`) says a pause may be in force; a pause sets it
    in the same commit. Pausing and resuming are single create-only or guarded
    writes (a pause with the hint's blind write), so nothing contends.
    """

    def __init__(self, client: firestore.Client, collection: str = CONTROLS_COLLECTION) -> None:
        self.client = client
        self.collection = client.collection(collection)
        self.stats = StoreStats()
        #: The hint that tells ``next`` whether to read the pauses; noted by every pause.
        self.hint = OwedHintStore(client, CURSORS_COLLECTION, stats=self.stats)

    @guarded
    def pause(self, pause: Pause) -> Pause | None:
        """Record the pause unless its target is paused already; return the pause in force before, if any."""
        ref = self.collection.document(doc_id(pause.target))
        try:
            batch = self.client.batch()
            batch.create(ref, pause_to_document(pause))
            self.hint.note_paused(batch)  # in the same commit: next never misses the pause
            batch.commit()
            return None
        except gexc.Conflict:
            snap = ref.get()
            self.stats.add(reads=1)
            data = snap.to_dict()  # None if the pause was lifted since the conflict
            return pause_from_document(data) if data is not None else None
        finally:
            self.stats.add(writes=1)

    @guarded
    def set_reason(self, target: str, reason: str) -> Pause | None:
        """Change the reason of ``target``'s pause in force; return it, or None if not paused."""
        ref = self.collection.document(doc_id(target))
        try:
            ref.update({"reason": reason})
        except gexc.NotFound:
            return None
        finally:
            self.stats.add(writes=1)
        data = ref.get().to_dict()
        self.stats.add(reads=1)
        return pause_from_document(data) if data is not None else None

    @guarded
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
        return pause_from_document(data)

    def found_none(self, read: OwedHint, now: datetime) -> bool:
        """Note on the hint, read as ``read``, that no pause was in force at ``now``.

        Refused (False) if a pause was made since ``read``.
        """
        return self.hint.clear_paused(read, now)

    @guarded
    def all(self) -> list[Pause]:
        """Return every pause in force."""
        pauses = [
            pause_from_document(streamed_fields(snap.to_dict()))
            for snap in self.collection.stream()
        ]
        self.stats.add(reads=max(1, len(pauses)))
        return pauses
