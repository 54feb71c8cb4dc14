"""Every composite index the store's queries need, in one list (``terraform/firestore.tf`` declares it)."""

from __future__ import annotations

from shared.store.jobs import JOBS_COLLECTION, PROGRESS_COLLECTION
from shared.store.reprocess import REPROCESS_COLLECTION

#: Composite indexes the queries of this package need in production Firestore
#: (the emulator needs none). Each is (collection, ((field, direction), …)).
INDEXES: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    (JOBS_COLLECTION, (("state", "ASCENDING"), ("start_time", "ASCENDING"))),
    (JOBS_COLLECTION, (("experiment", "ASCENDING"), ("start_time", "ASCENDING"))),
    (JOBS_COLLECTION, (("datatype", "ASCENDING"), ("start_time", "ASCENDING"))),
    (JOBS_COLLECTION, (("state", "ASCENDING"), ("reoffer", "ASCENDING"))),
    (
        JOBS_COLLECTION,
        (("state", "ASCENDING"), ("retry_at", "ASCENDING"), ("reoffer", "ASCENDING")),
    ),
    (
        JOBS_COLLECTION,
        (("state", "ASCENDING"), ("reoffer", "ASCENDING"), ("last_update", "ASCENDING")),
    ),
    (JOBS_COLLECTION, (("state", "ASCENDING"), ("last_activity", "ASCENDING"))),
    (JOBS_COLLECTION, (("state", "ASCENDING"), ("last_update", "ASCENDING"))),
    (JOBS_COLLECTION, (("state", "ASCENDING"), ("retry_at", "ASCENDING"))),
    (JOBS_COLLECTION, (("state", "ASCENDING"), ("lease_until", "ASCENDING"))),
    (JOBS_COLLECTION, (("state", "ASCENDING"), ("date", "ASCENDING"))),
    (JOBS_COLLECTION, (("experiment", "ASCENDING"), ("date", "ASCENDING"))),
    (JOBS_COLLECTION, (("datatype", "ASCENDING"), ("date", "ASCENDING"))),
    # The owed runs of one source, read while another source is paused.
    (
        JOBS_COLLECTION,
        (
            ("experiment", "ASCENDING"),
            ("datatype", "ASCENDING"),
            ("state", "ASCENDING"),
            ("reoffer", "ASCENDING"),
        ),
    ),
    (
        JOBS_COLLECTION,
        (
            ("experiment", "ASCENDING"),
            ("datatype", "ASCENDING"),
            ("state", "ASCENDING"),
            ("retry_at", "ASCENDING"),
            ("reoffer", "ASCENDING"),
        ),
    ),
    (
        JOBS_COLLECTION,
        (
            ("experiment", "ASCENDING"),
            ("datatype", "ASCENDING"),
            ("state", "ASCENDING"),
            ("retry_at", "ASCENDING"),
        ),
    ),
    # The oldest job in flight of one source (the metrics, limit 1 per source).
    (
        JOBS_COLLECTION,
        (
            ("experiment", "ASCENDING"),
            ("datatype", "ASCENDING"),
            ("state", "ASCENDING"),
            ("start_time", "ASCENDING"),
        ),
    ),
    (REPROCESS_COLLECTION, (("source", "ASCENDING"), ("rank", "ASCENDING"))),
    # The sum of a run's updates over its progress shards (a SUM aggregation).
    (PROGRESS_COLLECTION, (("run", "ASCENDING"), ("updates", "ASCENDING"))),
)
