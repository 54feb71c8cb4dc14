"""What the stores of this package share: the batch limit, the read/write counts, dates as times."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any

from shared.model import UTC

#: Most writes Firestore accepts in one batch commit (the emulator does not enforce it).
MAX_BATCH = 500


@dataclass
class StoreStats:
    """Counts of Firestore document reads and writes made through one store."""

    reads: int = 0
    writes: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def add(self, reads: int = 0, writes: int = 0) -> None:
        """Count ``reads`` document reads and ``writes`` document writes."""
        with self._lock:
            self.reads += reads
            self.writes += writes


def _midnight(day: Any) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)
