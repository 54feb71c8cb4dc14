"""The operator's pauses of a source or of the whole historical cycle."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

from shared.errors import StoreUnavailable
from shared.model import Pause
from shared.store.common import StoreStats
from shared.store.cursors import CURSORS_COLLECTION
from shared.store.documents import doc_id, streamed_fields
from shared.store.errors import guarded
from shared.store.owed import OwedHint, OwedHintStore

#: Default collection of the operator's pauses.
CONTROLS_COLLECTION = "controls"

#: How many times a pause or resume reads again when the pause changed under it.
ATTEMPTS = 10


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

    Next-job reads them all with one query per call while the owed-runs hint
    (:mod:`shared.store.owed`) says a pause may be in force; a pause sets it
    in the same commit. Pausing, changing the reason and resuming are each a
    write guarded by what was read (create-only, or the update time), read
    again when another came in between: none of them is lost, and none is
    refused because of another.
    """

    def __init__(self, client: firestore.Client, collection: str = CONTROLS_COLLECTION) -> None:
        self.client = client
        self.collection = client.collection(collection)
        self.stats = StoreStats()
        #: The hint that tells ``next`` whether to read the pauses; noted by every pause.
        self.hint = OwedHintStore(client, CURSORS_COLLECTION, stats=self.stats)

    @guarded
    def pause(self, pause: Pause) -> tuple[Pause | None, Pause]:
        """Pause ``pause.target``, or change the reason of its pause in force.

        Return the pause in force before (None: the target was not paused) and
        the one in force now. A target paused already keeps who paused it and
        since when; a non-blank reason replaces the one in force (recorded with
        ``pause.who`` and ``pause.since`` as who changed it and when); a blank
        one leaves the pause as it is, unwritten. A create-only write, else a
        write guarded by the update time read: if the pause is lifted or changed
        in between, it is read again (at most :data:`ATTEMPTS` times).
        """
        ref = self.collection.document(doc_id(pause.target))
        for _ in range(ATTEMPTS):
            batch = self.client.batch()
            batch.create(ref, pause_to_document(pause))
            self.hint.note_paused(batch)  # in the same commit: next never misses the pause
            try:
                batch.commit()
                return None, pause
            except gexc.Conflict:  # paused already
                pass
            finally:
                self.stats.add(writes=2)
            snap = ref.get()
            self.stats.add(reads=1)
            data = snap.to_dict()
            if data is None:  # lifted since the conflict: pause anew
                continue
            before = pause_from_document(data)
            if not pause.reason.strip():
                return before, before
            after = replace(before, reason=pause.reason, reason_by=pause.who, reason_at=pause.since)
            try:
                ref.update(
                    {
                        "reason": after.reason,
                        "reason_by": after.reason_by,
                        "reason_at": after.reason_at,
                    },
                    option=self.client.write_option(last_update_time=snap.update_time),
                )
                return before, after
            except (gexc.FailedPrecondition, gexc.NotFound):  # changed or lifted meanwhile
                continue
            finally:
                self.stats.add(writes=1)
        raise StoreUnavailable(f"the pause of {pause.target} kept changing; try again")

    @guarded
    def resume(self, target: str) -> Pause | None:
        """Lift the pause of ``target``; return it, or None if ``target`` was not paused.

        A delete guarded by the update time read: a pause whose reason changed in
        between is read again and lifted as it then is (at most :data:`ATTEMPTS` times).
        """
        ref = self.collection.document(doc_id(target))
        for _ in range(ATTEMPTS):
            snap = ref.get()
            self.stats.add(reads=1)
            data = snap.to_dict()
            if data is None:  # no such document: not paused
                return None
            try:
                ref.delete(option=self.client.write_option(last_update_time=snap.update_time))
                return pause_from_document(data)
            except (gexc.FailedPrecondition, gexc.NotFound):  # changed or lifted meanwhile
                continue
            finally:
                self.stats.add(writes=1)
        raise StoreUnavailable(f"the pause of {target} kept changing; try again")

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
