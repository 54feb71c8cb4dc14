"""The operator's pauses of a source or of the whole historical cycle."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from google.cloud import firestore

from shared.model import Pause
from shared.store.common import StoreStats
from shared.store.documents import doc_id, streamed_fields
from shared.store.errors import guarded, run_transaction

#: Default collection of the operator's pauses.
CONTROLS_COLLECTION = "controls"


def pause_to_document(pause: Pause) -> dict[str, Any]:
    """Return the Firestore document of a pause."""
    document: dict[str, Any] = {
        "target": pause.target,
        "who": pause.who,
        "since": pause.since,
        "reason": pause.reason,
    }
    if pause.reason_by:
        document |= {"reason_by": pause.reason_by, "reason_at": pause.reason_at}
    return document


def pause_from_document(data: dict[str, Any]) -> Pause:
    """Return the pause a Firestore document holds."""
    return Pause(
        data["target"],
        data["who"],
        data["since"],
        data.get("reason", ""),
        data.get("reason_by", ""),
        data.get("reason_at"),
    )


class ControlStore:
    """The operator's pauses: one document per paused target, present while it is paused.

    Next-job reads them all with one query per call; pausing and resuming are
    each one transaction on the target's document, so a pause, a change of
    its reason and a resume of the same target happen one after the other,
    never half of each.
    """

    def __init__(self, client: firestore.Client, collection: str = CONTROLS_COLLECTION) -> None:
        self.client = client
        self.collection = client.collection(collection)
        self.stats = StoreStats()

    @guarded
    def pause(self, pause: Pause) -> tuple[Pause | None, Pause]:
        """Pause ``pause.target``, or change the reason of its pause in force.

        Return the pause in force before (None: the target was not paused) and
        the one in force now. A target paused already keeps who paused it and
        since when; a non-blank reason replaces the one in force (recorded with
        ``pause.who`` and ``pause.since`` as who changed it and when); a blank
        one leaves the pause as it is, unwritten.
        """
        ref = self.collection.document(doc_id(pause.target))

        def change(transaction: firestore.Transaction) -> tuple[Pause | None, Pause]:
            data = ref.get(transaction=transaction).to_dict()
            self.stats.add(reads=1)
            if data is None:  # not paused
                transaction.create(ref, pause_to_document(pause))
                self.stats.add(writes=1)
                return None, pause
            before = pause_from_document(data)
            if not pause.reason.strip():
                return before, before
            after = replace(before, reason=pause.reason, reason_by=pause.who, reason_at=pause.since)
            transaction.set(ref, pause_to_document(after))
            self.stats.add(writes=1)
            return before, after

        return run_transaction(self.client, change)

    @guarded
    def resume(self, target: str) -> Pause | None:
        """Lift the pause of ``target``; return it, or None if ``target`` was not paused."""
        ref = self.collection.document(doc_id(target))

        def lift(transaction: firestore.Transaction) -> Pause | None:
            data = ref.get(transaction=transaction).to_dict()
            self.stats.add(reads=1)
            if data is None:  # no such document: not paused
                return None
            transaction.delete(ref)
            self.stats.add(writes=1)
            return pause_from_document(data)

        return run_transaction(self.client, lift)

    @guarded
    def all(self) -> list[Pause]:
        """Return every pause in force."""
        pauses = [
            pause_from_document(streamed_fields(snap.to_dict()))
            for snap in self.collection.stream()
        ]
        self.stats.add(reads=max(1, len(pauses)))
        return pauses
