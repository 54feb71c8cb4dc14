"""The Firestore store: the only package that talks to Firestore.

One module per kind of document, all re-exported here (import from
``shared.store``):

* :mod:`~shared.store.documents` — the job document: its id, and the mapping
  between it and a :class:`~shared.model.JobRecord` (pure).
* :mod:`~shared.store.jobs` — :class:`JobStore`: the job documents, their
  state-change transactions and the hot path's single writes.
* :mod:`~shared.store.counters` — :class:`CounterStore`: the totals of state
  changes per source, in sharded documents; :class:`StateCountStore`: the
  number of jobs per source and state, in shard documents moved by the jobs'
  own commits.
* :mod:`~shared.store.owed` — :class:`OwedHintStore`: the owed-runs hint, noted
  by every commit that makes a run owed, so ``next`` skips its owed-run
  queries while nothing can be owed.
* :mod:`~shared.store.cursors`, :mod:`~shared.store.reprocess`,
  :mod:`~shared.store.controls` — the job service's cursors and the operator's
  reprocessing queue and pauses (their records are in :mod:`shared.model`).
* :mod:`~shared.store.tasks` — :class:`TaskStore`: when each scheduled task
  last succeeded (read by the metrics).
* :mod:`~shared.store.common` — what the stores share: the batch limit, the
  read and write counts, the delete guarded by an update time.
* :mod:`~shared.store.errors` — what the store raises and how it retries;
  transient Firestore errors become :class:`~shared.errors.StoreUnavailable`.
* :mod:`~shared.store.deadline` — :class:`DeadlineClient`, whose every call is
  bounded, and the per-request :func:`budget` of Firestore time.
* :mod:`~shared.store.indexes` — every composite index the queries need.
"""

from shared.store.common import MAX_BATCH, StoreStats
from shared.store.controls import CONTROLS_COLLECTION, ControlStore
from shared.store.counters import (
    COUNTERS_COLLECTION,
    STATE_COUNTS_COLLECTION,
    CounterStore,
    StateCountsRead,
    StateCountStore,
)
from shared.store.cursors import CURSORS_COLLECTION, CursorState, CursorStore
from shared.store.deadline import DeadlineClient, budget, in_budget
from shared.store.documents import (
    doc_id,
    from_document,
    key_from_doc_id,
    to_document,
)
from shared.store.errors import (
    IDEMPOTENT_WRITE_RETRY,
    TRANSIENT,
    WRITE_RETRY,
    DocumentChanged,
    DocumentExists,
    DocumentMissing,
)
from shared.store.indexes import INDEXES
from shared.store.jobs import CREATE_BATCH, JOBS_COLLECTION, JobStore
from shared.store.owed import OWED_DOCUMENT, OwedHint, OwedHintStore, owing
from shared.store.reprocess import MAX_IN_VALUES, REPROCESS_COLLECTION, ReprocessQueue
from shared.store.tasks import TASKS, TASKS_COLLECTION, TaskStore

__all__ = [
    "CONTROLS_COLLECTION",
    "COUNTERS_COLLECTION",
    "CREATE_BATCH",
    "CURSORS_COLLECTION",
    "IDEMPOTENT_WRITE_RETRY",
    "INDEXES",
    "JOBS_COLLECTION",
    "MAX_BATCH",
    "MAX_IN_VALUES",
    "OWED_DOCUMENT",
    "REPROCESS_COLLECTION",
    "STATE_COUNTS_COLLECTION",
    "TASKS",
    "TASKS_COLLECTION",
    "TRANSIENT",
    "WRITE_RETRY",
    "ControlStore",
    "CounterStore",
    "CursorState",
    "CursorStore",
    "DeadlineClient",
    "DocumentChanged",
    "DocumentExists",
    "DocumentMissing",
    "JobStore",
    "OwedHint",
    "OwedHintStore",
    "ReprocessQueue",
    "StateCountStore",
    "StateCountsRead",
    "StoreStats",
    "TaskStore",
    "budget",
    "doc_id",
    "from_document",
    "in_budget",
    "key_from_doc_id",
    "owing",
    "to_document",
]
