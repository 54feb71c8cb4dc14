"""What the stores of this package share: the batch limit, the read/write counts, the
delete guarded by an update time."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

#: Most writes Firestore accepts in one batch commit (the emulator does not enforce it).
MAX_BATCH = 500


@dataclass
class StoreStats:
    """Counts of Firestore document reads and writes made through one store.

    ``writes_by_path`` counts the writes of each document path that callers
    name (the job documents and their progress shards do), so a test or a
    benchmark can find the busiest document.
    """

    reads: int = 0
    writes: int = 0
    writes_by_path: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def add(self, reads: int = 0, writes: int = 0, path: str | None = None) -> None:
        """Count ``reads`` document reads and ``writes`` document writes (of ``path``, if named)."""
        with self._lock:
            self.reads += reads
            self.writes += writes
            if path is not None and writes:
                self.writes_by_path[path] += writes


def delete_if_unchanged(ref: Any, update_time: datetime | None, stats: StoreStats) -> bool:
    """Delete the document at ``ref`` unless it changed (or went) since ``update_time``.

    Returns whether it was deleted; counts one write either way.
    """
    option = firestore.Client.write_option(last_update_time=update_time)
    try:
        ref.delete(option=option)
        return True
    except (gexc.FailedPrecondition, gexc.NotFound):
        return False
    finally:
        stats.add(writes=1)
