"""The totals of state changes per source, in sharded counter documents."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from google.cloud import firestore

from shared.store._common import StoreStats
from shared.store.documents import doc_id
from shared.store.errors import _guarded

#: Default collection of the state-change totals' shard documents.
COUNTERS_COLLECTION = "counters"

#: Shard documents per source (experiment, datatype) for its totals.
#:
#: Firestore sustains about one write per second per document. A job run makes
#: two counted changes (its hand-out, then its completion or failure), each one
#: write to a shard of its source picked at random, so a source's shards share
#: its counted changes: with 16 shards a source may make 16 counted changes a
#: second — 8 job runs started and ended every second — before a shard nears one
#: write a second. A source's jobs are days of archives, handed out a few a
#: minute, so even a burst of 16 parsers finishing at once adds about one write
#: per shard. A scrape reads every shard: 16 reads per source.
COUNTER_SHARDS = 16


def _counter_id(experiment: str, datatype: str, shard: int) -> str:
    return f"{doc_id(f'{experiment}/{datatype}')}#{shard}"


class CounterStore:
    """Totals of named events per source, in sharded documents that nothing reads in a transaction.

    One document per (experiment, datatype, shard) — id
    ``<experiment>%2F<datatype>#<shard>`` — with fields ``experiment``,
    ``datatype`` and one integer per name. An event adds ``Increment(1)`` to a
    random shard as a blind write inside the caller's transaction or batch, so
    counting never makes state changes contend; a total is the sum over the
    shards. The documents are never deleted: totals survive clean-up and restarts.
    """

    def __init__(self, client: firestore.Client, collection: str = COUNTERS_COLLECTION,
                 shards: int = COUNTER_SHARDS) -> None:
        self.collection = client.collection(collection)
        self.shards = shards
        self.stats = StoreStats()

    def add(self, writer: Any, experiment: str, datatype: str, names: Sequence[str]) -> int:
        """Add one to each of ``names`` for the source, as a write in ``writer`` (a transaction or batch).

        Returns the number of document writes added (0 when ``names`` is empty, else 1).
        """
        if not names:
            return 0
        ref = self.collection.document(
            _counter_id(experiment, datatype, random.randrange(self.shards)))
        writer.set(ref, {"experiment": experiment, "datatype": datatype,
                         **{name: firestore.Increment(1) for name in names}}, merge=True)
        return 1

    @_guarded
    def totals(self) -> dict[tuple[str, str], dict[str, int]]:
        """Return every source's totals by name, summed over its shards (one query)."""
        sums: dict[tuple[str, str], dict[str, int]] = {}
        reads = 0
        for snap in self.collection.stream():
            reads += 1
            data = snap.to_dict() or {}
            source = sums.setdefault((data["experiment"], data["datatype"]), {})
            for name, value in data.items():
                if name not in ("experiment", "datatype") and isinstance(value, int):
                    source[name] = source.get(name, 0) + value
        self.stats.add(reads=max(1, reads))
        return sums
