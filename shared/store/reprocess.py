"""The operator's reprocessing queue: jobs next-job hands out ahead of history."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from datetime import datetime
from typing import Any, cast

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1.aggregation import AggregationQuery
from google.cloud.firestore_v1.base_aggregation import AggregationResult
from google.cloud.firestore_v1.base_query import FieldFilter

from shared.model import UTC, ReprocessItem, midnight
from shared.store.common import MAX_BATCH, StoreStats, delete_if_unchanged
from shared.store.cursors import CURSORS_COLLECTION
from shared.store.documents import doc_id
from shared.store.errors import guarded, transient_as_unavailable
from shared.store.owed import OwedHint, OwedHintStore

#: Default collection of queued reprocessing, one document per job key.
REPROCESS_COLLECTION = "reprocess"


def item_to_document(item: ReprocessItem) -> dict[str, Any]:
    """Return the Firestore document of a queued item (``source`` and ``key`` for queries and ids)."""
    return {
        "bucket": item.bucket,
        "experiment": item.experiment,
        "datatype": item.datatype,
        "date": midnight(item.date),
        "source": item.source,
        "token": item.token,
        "rank": item.rank,
        "who": item.who,
        "queued_at": item.queued_at,
        "key": item.key,
    }


def item_from_snapshot(snap: Any) -> ReprocessItem:
    """Return the queued item a document snapshot holds, with its update time."""
    d = snap.to_dict()
    return ReprocessItem(
        d["bucket"],
        d["experiment"],
        d["datatype"],
        d["date"].astimezone(UTC).date(),
        d["token"],
        d["rank"],
        d["who"],
        d["queued_at"],
        snap.update_time,
        d.get("claimed_at"),
    )


#: Most values one Firestore ``in`` filter takes.
MAX_IN_VALUES = 30


class ReprocessQueue:
    """Queued reprocessing: one document per job key, so enqueueing twice queues once.

    Nothing here is a hot document: next-job reads the head of the queue with
    a query and removes what it handed out with a delete guarded by the
    item's update time.
    """

    def __init__(self, client: firestore.Client, collection: str = REPROCESS_COLLECTION) -> None:
        self.client = client
        self.collection = client.collection(collection)
        self.stats = StoreStats()
        #: The hint that tells ``next`` whether to look at the queue; noted by every enqueueing.
        self.hint = OwedHintStore(client, CURSORS_COLLECTION, stats=self.stats)

    @guarded
    def add(self, items: list[ReprocessItem]) -> list[str]:
        """Queue the items whose job keys are not queued yet; return the keys queued.

        Writes go in batches of at most :data:`MAX_BATCH`; queued items are left as they are.
        """
        created: list[str] = []
        for start in range(0, len(items), MAX_BATCH):
            chunk = items[start : start + MAX_BATCH]
            refs = [self.collection.document(doc_id(i.key)) for i in chunk]
            present = {snap.id for snap in self.client.get_all(refs) if snap.exists}
            self.stats.add(reads=len(refs))
            todo = [(ref, i) for ref, i in zip(refs, chunk, strict=True) if ref.id not in present]
            if not todo:
                continue
            batch = self.client.batch()
            for ref, item in todo:
                batch.create(ref, item_to_document(item))
            try:
                batch.commit()
                created.extend(i.key for _, i in todo)
            except gexc.Conflict:  # queued meanwhile by someone else: one by one
                for ref, item in todo:
                    with contextlib.suppress(gexc.Conflict):
                        ref.create(item_to_document(item))
                        created.append(item.key)
            self.stats.add(writes=len(todo))
        if created:  # after the commit: a clear of the hint that missed these is undone
            self.hint.note_queued()
        return created

    def head(self, sources: list[str], limit: int) -> list[ReprocessItem]:
        """Return the first ``limit`` items of ``sources`` (``experiment/datatype``) in queue order."""
        found: list[ReprocessItem] = []
        with transient_as_unavailable():
            for start in range(0, len(sources), MAX_IN_VALUES):
                query = (
                    self.collection.where(
                        filter=FieldFilter("source", "in", sources[start : start + MAX_IN_VALUES])
                    )
                    .order_by("rank")
                    .limit(limit)
                )
                for snap in query.stream():
                    self.stats.add(reads=1)
                    found.append(item_from_snapshot(snap))
        return sorted(found, key=lambda i: i.rank)[:limit]

    def found_empty(self, read: OwedHint, now: datetime) -> bool:
        """Note on the hint, read as ``read``, that the head of the queue was empty at ``now``.

        Refused (False) if reprocessing was queued since ``read``.
        """
        return self.hint.clear_queued(read, now)

    @guarded
    def remove(self, item: ReprocessItem) -> bool:
        """Remove the item unless it was queued again since it was read; return whether it was."""
        return delete_if_unchanged(
            self.collection.document(doc_id(item.key)), item.update_time, self.stats
        )

    @guarded
    def claim(self, item: ReprocessItem, now: datetime) -> ReprocessItem | None:
        """Mark the item as being handed out, unless it changed or went since it was read.

        Returns the claimed item (with its new update time, for the guarded
        :meth:`remove`), or None when another caller claimed it first or it
        was cancelled. The update is guarded by the item's update time, as is
        :meth:`cancel`'s delete: of a claim and a cancel, exactly one wins.
        """
        option = self.client.write_option(last_update_time=item.update_time)
        try:
            result = self.collection.document(doc_id(item.key)).update(
                {"claimed_at": now}, option=option
            )
        except (gexc.FailedPrecondition, gexc.NotFound):
            return None
        finally:
            self.stats.add(writes=1)
        return dataclasses.replace(item, claimed_at=now, update_time=result.update_time)

    @guarded
    def cancel(self, keys: list[str]) -> tuple[list[str], list[str]]:
        """Remove the queued items of job ``keys`` that no hand-out has claimed.

        Returns the keys cancelled and the keys found claimed by next-job
        (being handed out, so left to it). Each delete is guarded by the
        update time read, so an item claimed or removed meanwhile is not
        cancelled either; the deletes go in batches of at most :data:`MAX_BATCH`.
        """
        cancelled: list[str] = []
        claimed: list[str] = []
        for start in range(0, len(keys), MAX_BATCH):
            refs = [self.collection.document(doc_id(k)) for k in keys[start : start + MAX_BATCH]]
            found = [item_from_snapshot(s) for s in self.client.get_all(refs) if s.exists]
            self.stats.add(reads=len(refs))
            claimed.extend(i.key for i in found if i.claimed_at is not None)
            todo = [i for i in found if i.claimed_at is None]
            if not todo:
                continue
            batch = self.client.batch()
            for item in todo:
                batch.delete(
                    self.collection.document(doc_id(item.key)),
                    option=self.client.write_option(last_update_time=item.update_time),
                )
            try:
                batch.commit()
                cancelled.extend(i.key for i in todo)
                self.stats.add(writes=len(todo))
            except (gexc.FailedPrecondition, gexc.NotFound):  # one changed meanwhile: one by one
                cancelled.extend(i.key for i in todo if self.remove(i))
        order = {k: n for n, k in enumerate(keys)}
        return sorted(cancelled, key=order.__getitem__), sorted(claimed, key=order.__getitem__)

    @guarded
    def queued(self, keys: list[str]) -> set[str]:
        """Return which of the job ``keys`` are queued (lookups by id: one read per key)."""
        found: set[str] = set()
        for start in range(0, len(keys), MAX_BATCH):
            refs = [self.collection.document(doc_id(k)) for k in keys[start : start + MAX_BATCH]]
            found.update(item_from_snapshot(s).key for s in self.client.get_all(refs) if s.exists)
            self.stats.add(reads=len(refs))
        return found

    @guarded
    def count_of(self, bucket: str, source: str) -> int:
        """Return the number of items queued for one source (``experiment/datatype``) of
        ``bucket`` (an aggregation query: one read per 1,000 items)."""
        query = self.collection.where(filter=FieldFilter("source", "==", source)).where(
            filter=FieldFilter("bucket", "==", bucket)
        )
        # As in JobStore.count: the library's annotations do not match what get() returns.
        aggregation = cast(AggregationQuery, query.count())
        result = cast("list[list[AggregationResult]]", aggregation.get())
        self.stats.add(reads=1)
        return int(result[0][0].value)

    @guarded
    def count(self) -> int:
        """Return the number of queued items (an aggregation query)."""
        result = self.collection.count().get()
        self.stats.add(reads=1)
        return int(result[0][0].value)

    def stream(self, limit: int) -> Iterator[ReprocessItem]:
        """Stream the first ``limit`` items of the whole queue, in queue order."""
        with transient_as_unavailable():
            for snap in self.collection.order_by("rank").limit(limit).stream():
                self.stats.add(reads=1)
                yield item_from_snapshot(snap)
