"""The totals of state changes, and the number of jobs in each state, per source, in sharded counter documents."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1.field_path import FieldPath

from shared import defaults
from shared.store.common import StoreStats
from shared.store.documents import doc_id, key_from_doc_id
from shared.store.errors import guarded

#: Default collection of the state-change totals' shard documents.
COUNTERS_COLLECTION = "counters"


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

    def __init__(
        self,
        client: firestore.Client,
        collection: str = COUNTERS_COLLECTION,
        shards: int = defaults.COUNTER_SHARDS,
    ) -> None:
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
            _counter_id(experiment, datatype, random.randrange(self.shards))
        )
        writer.set(
            ref,
            {
                "experiment": experiment,
                "datatype": datatype,
                **{name: firestore.Increment(1) for name in names},
            },
            merge=True,
        )
        return 1

    @guarded
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


#: Default collection of the job counts' shard documents (per source and state).
STATE_COUNTS_COLLECTION = "state_counts"

#: The map field of a shard that holds its counts: ``{source: {state: n}}``.
_BY_SOURCE = "by_source"

#: The document (beside the shards) that holds the source the reconciliation checked last.
_RECONCILE_CURSOR = "reconcile"

#: A (experiment, datatype) pair.
Source = tuple[str, str]


def source_field(experiment: str, datatype: str) -> str:
    """Return the map key of a source in a shard (``<experiment>%2F<datatype>``, never empty)."""
    return doc_id(f"{experiment}/{datatype}")


def source_of_field(name: str) -> Source:
    """Return the (experiment, datatype) a shard's map key names."""
    experiment, _, datatype = key_from_doc_id(name).partition("/")
    return experiment, datatype


@dataclass(frozen=True)
class StateCountsRead:
    """The job counts as read from every shard: per source and state, and each shard's update time."""

    #: Sum over the shards, per (experiment, datatype) and state name; may hold
    #: negative values while drift is not yet repaired.
    counts: dict[Source, dict[str, int]]
    #: Per shard id: its counts for each source and state, and its update time (None if absent).
    shards: dict[str, tuple[dict[Source, dict[str, int]], datetime | None]]

    def of(self, experiment: str | None = None, datatype: str | None = None) -> dict[str, int]:
        """Return the count per state name of the sources matching the filters (None: any)."""
        total: dict[str, int] = {}
        for (exp, dt), states in self.counts.items():
            if (experiment is None or exp == experiment) and (datatype is None or dt == datatype):
                for state, n in states.items():
                    total[state] = total.get(state, 0) + n
        return total


class StateCountStore:
    """The number of jobs in each state per source, in shard documents moved in the jobs' own commits.

    :data:`~shared.defaults.STATE_COUNT_SHARDS` documents, ids ``shard-00`` …, each with a map
    ``by_source`` of ``{"<experiment>%2F<datatype>": {state: n}}``. Creating a
    job adds one to its state, deleting it takes one away, a change of state
    does both, as blind ``Increment`` writes by field path to one shard picked
    at random, in the same transaction or batch as the job document — so the
    counts move exactly when the jobs do, and nothing reads them in a
    transaction. A count is the sum over the shards; a reader reads all
    shards (:meth:`read`). :meth:`repair` adds a correction found by a
    reconciliation.
    """

    def __init__(
        self,
        client: firestore.Client,
        collection: str = STATE_COUNTS_COLLECTION,
        shards: int = defaults.STATE_COUNT_SHARDS,
    ) -> None:
        self.client = client
        self.collection = client.collection(collection)
        self.shards = shards
        self.stats = StoreStats()

    def shard_ids(self) -> list[str]:
        """Return the ids of the shard documents."""
        return [f"shard-{i:02d}" for i in range(self.shards)]

    def move(
        self, writer: Any, experiment: str, datatype: str, old: str | None, new: str | None
    ) -> int:
        """Move one job of the source from state ``old`` to ``new`` (None: created / deleted) in ``writer``.

        Returns the number of document writes added (0 when nothing moves, else 1).
        """
        if old == new:
            return 0
        deltas = {
            state: firestore.Increment(n) for state, n in ((old, -1), (new, 1)) if state is not None
        }
        ref = self.collection.document(self.shard_ids()[random.randrange(self.shards)])
        writer.set(ref, {_BY_SOURCE: {source_field(experiment, datatype): deltas}}, merge=True)
        return 1

    def add_many(self, writer: Any, moves: dict[Source, dict[str, int]]) -> int:
        """Add ``moves`` (per source, per state: how many jobs were created) in ``writer``; 1 write or 0."""
        fields = {
            source_field(*source): {
                state: firestore.Increment(n) for state, n in states.items() if n
            }
            for source, states in moves.items()
        }
        fields = {k: v for k, v in fields.items() if v}
        if not fields:
            return 0
        ref = self.collection.document(self.shard_ids()[random.randrange(self.shards)])
        writer.set(ref, {_BY_SOURCE: fields}, merge=True)
        return 1

    @guarded
    def read(self) -> StateCountsRead:
        """Read every shard (:data:`~shared.defaults.STATE_COUNT_SHARDS` reads, in one call) and sum them."""
        refs = [self.collection.document(i) for i in self.shard_ids()]
        counts: dict[Source, dict[str, int]] = {}
        shards: dict[str, tuple[dict[Source, dict[str, int]], datetime | None]] = {}
        for snap in self.client.get_all(refs):
            data = (snap.to_dict() or {}).get(_BY_SOURCE, {}) if snap.exists else {}
            mine: dict[Source, dict[str, int]] = {}
            for name, states in data.items():
                source = source_of_field(name)
                mine[source] = {s: int(n) for s, n in states.items() if isinstance(n, int)}
                total = counts.setdefault(source, {})
                for state, n in mine[source].items():
                    total[state] = total.get(state, 0) + n
            shards[snap.id] = (mine, snap.update_time if snap.exists else None)
        self.stats.add(reads=len(refs))
        return StateCountsRead(counts, shards)

    @guarded
    def reconcile_cursor(self) -> Source | None:
        """Return the source the last reconciliation checked, or None (one read)."""
        snap = self.collection.document(_RECONCILE_CURSOR).get()
        self.stats.add(reads=1)
        data = snap.to_dict() if snap.exists else None
        if not data or "last" not in data:
            return None
        return source_of_field(str(data["last"]))

    @guarded
    def set_reconcile_cursor(self, experiment: str, datatype: str) -> None:
        """Record that the reconciliation checked the source last (one blind write)."""
        self.collection.document(_RECONCILE_CURSOR).set(
            {"last": source_field(experiment, datatype)}
        )
        self.stats.add(writes=1)

    @guarded
    def repair(
        self,
        experiment: str,
        datatype: str,
        deltas: dict[str, int],
        shard: str,
        if_update_time: datetime | None,
    ) -> bool:
        """Add ``deltas`` (per state) to the source's counts in ``shard``, unless the shard changed.

        ``if_update_time`` is the shard's update time as read (None: it did not
        exist). Returns False, writing nothing, if the shard was written since.
        """
        ref = self.collection.document(shard)
        try:
            if if_update_time is None:
                ref.create({_BY_SOURCE: {source_field(experiment, datatype): deltas}})
            else:
                option = self.client.write_option(last_update_time=if_update_time)
                ref.update(
                    {
                        FieldPath(
                            _BY_SOURCE, source_field(experiment, datatype), state
                        ).to_api_repr(): firestore.Increment(n)
                        for state, n in deltas.items()
                    },
                    option=option,
                )
            return True
        except (gexc.Conflict, gexc.FailedPrecondition, gexc.NotFound):
            return False
        finally:
            self.stats.add(writes=1)
