"""When each scheduled task last succeeded: one small document per task."""

from __future__ import annotations

from datetime import datetime

from google.cloud import firestore

from shared.store.common import StoreStats
from shared.store.errors import IDEMPOTENT_WRITE_RETRY, guarded

#: Default collection of the tasks' last successes.
TASKS_COLLECTION = "tasks"

#: The tasks whose successes are recorded: a maintenance run, a post-processing tick, a
#: snapshot written (by maintenance or an operator's export).
MAINTAIN = "maintain"
POSTPROCESS = "postprocess"
SNAPSHOT = "snapshot"
TASKS = (MAINTAIN, POSTPROCESS, SNAPSHOT)


class TaskStore:
    """The time each task last succeeded, one document per task written at the end of
    each successful run (one blind write); the metrics read them all with one query."""

    def __init__(self, client: firestore.Client, collection: str = TASKS_COLLECTION) -> None:
        self.collection = client.collection(collection)
        self.stats = StoreStats()

    @guarded
    def succeeded(self, task: str, when: datetime) -> None:
        """Record that ``task`` succeeded at ``when`` (a later success never goes back)."""
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; one of {', '.join(TASKS)}")
        self.collection.document(task).set(
            {"last_success": when}, merge=True, retry=IDEMPOTENT_WRITE_RETRY
        )
        self.stats.add(writes=1)

    @guarded
    def last_successes(self) -> dict[str, datetime]:
        """Return each task's last success; a task that never succeeded is absent (one query)."""
        found: dict[str, datetime] = {}
        reads = 0
        for snap in self.collection.stream():
            reads += 1
            data = snap.to_dict() or {}
            if snap.id in TASKS and data.get("last_success") is not None:
                found[snap.id] = data["last_success"]
        self.stats.add(reads=max(1, reads))
        return found
