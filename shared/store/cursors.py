"""The job service's stream cursors: forward-only positions, one document per stream."""

from __future__ import annotations

from google.cloud import firestore

from shared.store._common import StoreStats
from shared.store.errors import IDEMPOTENT_WRITE_RETRY, _guarded

#: Default collection of the job service's cursors.
CURSORS_COLLECTION = "cursors"


class CursorStore:
    """Forward-only cursors of the job service: one document per stream.

    A cursor is a hint, not a lock: it only moves forward (Firestore's
    ``Maximum`` transform, a single write that cannot conflict), so any number
    of callers read and advance it at once.
    """

    def __init__(self, client: firestore.Client, collection: str = CURSORS_COLLECTION) -> None:
        self.collection = client.collection(collection)
        self.stats = StoreStats()

    @_guarded
    def get(self, name: str) -> int | None:
        """Return the cursor's position, or None if it was never set (one read)."""
        snap = self.collection.document(name).get()
        self.stats.add(reads=1)
        return snap.get("position") if snap.exists else None

    @_guarded
    def advance(self, name: str, position: int) -> None:
        """Move the cursor to ``position`` unless it is already further (one blind write)."""
        self.collection.document(name).set({"position": firestore.Maximum(position)}, merge=True,
                                           retry=IDEMPOTENT_WRITE_RETRY)
        self.stats.add(writes=1)
