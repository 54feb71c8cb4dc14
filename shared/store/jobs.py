"""The job documents: reads, queries, and the writes of state changes and of the hot path.

Writes come in two kinds:

* :meth:`JobStore.transact` — a read-write transaction for state changes: read,
  let the caller decide, write the whole document.
* :meth:`JobStore.write_detail` and :meth:`JobStore.write_heartbeat` — single
  writes that cannot conflict (field paths, ``Increment``, the implicit
  ``exists`` precondition of ``update``): the hot path of parsers. Details go
  under ``live.{run}`` (:func:`~shared.store.documents.live_fields`), never
  into the history a transaction writes; a write that is not ``due`` goes to
  one of :data:`~shared.defaults.PROGRESS_SHARDS` progress shards of the job and run instead,
  so the job document is written about once a second whatever the fan-out.
  Transactions and :meth:`JobStore.get` with ``progress`` read the shards
  and are exact; queries read the document alone.

Creating, restarting and transacting may also add one to named totals of the
job's source (:class:`~shared.store.counters.CounterStore`) in the same commit,
by a blind ``Increment`` to one of its shard documents. Every write that
creates a job, deletes one or changes its state also moves the number of jobs
per source and state (:class:`~shared.store.counters.StateCountStore`) in the
same commit, so those counts are read, not counted over every job.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from google.cloud import firestore
from google.cloud.firestore_v1.aggregation import AggregationQuery
from google.cloud.firestore_v1.base_aggregation import AggregationResult
from google.cloud.firestore_v1.base_query import FieldFilter

from shared import defaults
from shared.model import JobFilter, JobRecord, State, midnight
from shared.store.common import MAX_BATCH, StoreStats
from shared.store.counters import CounterStore, StateCountStore
from shared.store.cursors import CURSORS_COLLECTION
from shared.store.documents import (
    NO_RUN,
    doc_id,
    from_document,
    live_fields,
    live_sum_fields,
    live_updates_path,
    shard_fields,
    shard_id,
    streamed_fields,
    to_document,
)
from shared.store.errors import (
    IDEMPOTENT_WRITE_RETRY,
    WRITE_RETRY,
    DocumentChanged,
    DocumentExists,
    DocumentMissing,
    guarded,
    run_transaction,
    transient_as_unavailable,
)
from shared.store.owed import OwedHintStore, Owing, owing

#: Default collection of job documents.
JOBS_COLLECTION = "jobs"

#: Jobs :meth:`JobStore.create_missing` creates per commit: one write of a batch
#: of :data:`~shared.store.MAX_BATCH` is the counts per state.
CREATE_BATCH = MAX_BATCH - 1

#: A time after every retry time: the bound of a query for the earliest.
_LATEST = datetime(9999, 12, 31, tzinfo=UTC)

#: The subcollection of a job document holding its progress shards.
PROGRESS_COLLECTION = "progress"


def _page(query: firestore.Query, field: str, after: JobRecord | None) -> firestore.Query:
    """Order ``query`` by ``field`` then document id, and start it after the job ``after``."""
    query = query.order_by(field).order_by("__name__")
    if after is None:
        return query
    return query.start_after({field: getattr(after, field), "__name__": doc_id(after.key)})


class JobStore:
    """Job documents in one Firestore collection, and the totals of their state changes."""

    def __init__(
        self,
        client: firestore.Client,
        collection: str = JOBS_COLLECTION,
        counters: CounterStore | None = None,
        state_counts: StateCountStore | None = None,
        owed: OwedHintStore | None = None,
    ) -> None:
        self.client = client
        self.collection = client.collection(collection)
        self.stats = StoreStats()
        #: Where :meth:`create`, :meth:`replace` and :meth:`transact` add their totals.
        self.counters = counters or CounterStore(client)
        #: The jobs per source and state, moved by every write that creates, deletes or
        #: changes the state of a job.
        self.state_counts = state_counts or StateCountStore(client)
        #: The owed-runs hint, written by every commit that makes a run owed.
        self.owed = owed or OwedHintStore(client, CURSORS_COLLECTION, stats=self.stats)

    def _ref(self, key: str) -> firestore.DocumentReference:
        return self.collection.document(doc_id(key))

    def _shard_refs(self, key: str, run: str) -> list[firestore.DocumentReference]:
        progress = self._ref(key).collection(PROGRESS_COLLECTION)
        return [progress.document(shard_id(run, n)) for n in range(defaults.PROGRESS_SHARDS)]

    @guarded
    def _read_shards(self, key: str, run: str) -> list[dict[str, Any]]:
        """Read the progress shards ``run`` has written (one query: as many reads as shards, at least one).

        A query rather than a lookup of every possible shard: most runs write
        few shards or none, and Firestore bills a lookup of a missing document
        as a read but a query by the documents it returns (one when none).
        """
        query = (
            self._ref(key)
            .collection(PROGRESS_COLLECTION)
            .where(filter=FieldFilter("run", "==", run))
        )
        shards = [data for snap in query.stream() if (data := snap.to_dict()) is not None]
        self.stats.add(reads=max(1, len(shards)))
        return shards

    @guarded
    def _sum_shard_updates(self, key: str, run: str) -> int:
        """Return the updates counted on ``run``'s progress shards, summed by Firestore.

        An aggregation query: one read per 1,000 index entries, so however many
        concurrent callers find the sum due, each costs one read, not one per shard.
        """
        query = (
            self._ref(key)
            .collection(PROGRESS_COLLECTION)
            .where(filter=FieldFilter("run", "==", run))
        )
        # As in count(): the library's annotations do not match what get() returns.
        aggregation = cast(AggregationQuery, query.sum("updates", alias="updates"))
        result = cast("list[list[AggregationResult]]", aggregation.get())
        self.stats.add(reads=1)
        return int(result[0][0].value or 0)

    @guarded
    def get(self, key: str, progress: bool = False) -> JobRecord | None:
        """Return the job's record, or None if there is no such job (one read).

        ``progress``: also read the run's progress shards (one query, a read
        per shard written and at least one), so the update count, detail and
        activity times are exact rather than as of the document's last write.
        """
        snap = self._ref(key).get()
        self.stats.add(reads=1)
        data = snap.to_dict()
        if data is None:  # no such document
            return None
        shards = self._read_shards(key, data.get("run", "")) if progress else None
        return from_document(data, snap.update_time, shards)

    @guarded
    def get_many(self, keys: Sequence[str]) -> dict[str, JobRecord]:
        """Return the jobs of ``keys`` that exist, by key: batched lookups by document id.

        No query: one read per key, a missing document included, in lookups of at
        most :data:`MAX_BATCH` documents; the progress shards are not read.
        """
        found: dict[str, JobRecord] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), MAX_BATCH):
            refs = [self._ref(k) for k in unique[start : start + MAX_BATCH]]
            for snap in self.client.get_all(refs):
                data = snap.to_dict() if snap.exists else None
                if data is not None:
                    record = from_document(data, snap.update_time)
                    found[record.key] = record
            self.stats.add(reads=len(refs))
        return found

    def _count(self, writer: Any, record: JobRecord, names: Sequence[str]) -> int:
        return self.counters.add(writer, record.job.experiment, record.job.datatype, names)

    def _move(self, writer: Any, record: JobRecord, old: State | None, new: State | None) -> int:
        return self.state_counts.move(
            writer, record.job.experiment, record.job.datatype, old and old.value, new and new.value
        )

    def _note_owed(self, writer: Any, before: Owing | None, record: JobRecord) -> int:
        """Note on the owed-runs hint, in ``writer``, a run ``record`` owes that it did not
        owe ``before``; return the writes added (0 or 1)."""
        owes = owing(record)
        if owes is None or owes == before:
            return 0
        return self.owed.note(writer, owes)

    @guarded
    def note_owed(self, records: Sequence[JobRecord]) -> None:
        """Note on the owed-runs hint, in one blind write, the runs ``records`` owe (if any).

        For writes that could not carry the note in their own commit: made
        after it, so a clear of the hint in between is undone (a clear reads
        no owed run only before the commit, and this write comes after it).
        """
        owed = [o for r in records if (o := owing(r)) is not None]
        if not owed:
            return
        retries = [at for _, at in owed if at is not None]
        batch = self.client.batch()
        self.owed.note(batch, (any(r for r, _ in owed), min(retries, default=None)))
        batch.commit()
        self.stats.add(writes=1)

    @guarded
    def create(self, record: JobRecord, count: Sequence[str] = ()) -> None:
        """Write a new job document; :class:`DocumentExists` if the key is taken.

        The totals named in ``count`` grow by one in the same commit.
        """
        batch = self.client.batch()
        batch.create(self._ref(record.key), to_document(record))
        writes = 1 + self._count(batch, record, count)
        writes += self._move(batch, record, None, record.status.state)
        writes += self._note_owed(batch, None, record)
        try:
            batch.commit()
        except gexc.Conflict:
            writes = 1  # refused whole: counted as the one refused create
            raise DocumentExists(record.key) from None
        finally:
            self.stats.add(writes=writes)

    @guarded
    def replace(
        self,
        record: JobRecord,
        if_update_time: datetime,
        count: Sequence[str] = (),
        replacing: State | None = None,
    ) -> None:
        """Overwrite a job document only if it is unchanged since ``if_update_time``.

        Raises :class:`DocumentChanged` if someone else wrote it first. The
        totals named in ``count`` grow by one in the same commit, and the job
        moves from ``replacing`` (the state of the document as read at
        ``if_update_time``) to its new state in the counts per state; the
        progress shards of earlier runs are deleted after it.
        """
        option = self.client.write_option(last_update_time=if_update_time)
        batch = self.client.batch()
        batch.update(self._ref(record.key), to_document(record), option=option)
        writes = 1 + self._count(batch, record, count)
        if replacing is not None:
            writes += self._move(batch, record, replacing, record.status.state)
        writes += self._note_owed(batch, None, record)
        try:
            batch.commit()
        except (gexc.FailedPrecondition, gexc.NotFound):
            writes = 1  # refused whole: counted as the one refused update
            raise DocumentChanged(record.key) from None
        finally:
            self.stats.add(writes=writes)
        self.delete_progress(record.key, keep_run=record.run)

    @guarded
    def transact(
        self,
        key: str,
        change: Callable[[JobRecord], JobRecord],
        count: Callable[[JobRecord], Sequence[str]] | None = None,
    ) -> JobRecord:
        """Apply ``change`` to the job's record in one read-write transaction.

        ``change`` may raise to abort without writing; it may run more than once
        if the transaction is retried, so it must not have side effects.
        ``count``, given the changed record, names the totals that grow by one
        in the same transaction (a blind write: the counters are not read); a
        change of state also moves the job in the counts per state.
        Raises :class:`DocumentMissing` if there is no such job.
        """
        ref = self._ref(key)

        def run(transaction: firestore.Transaction) -> JobRecord:
            snap = ref.get(transaction=transaction)
            self.stats.add(reads=1)
            data = snap.to_dict()
            if data is None:  # no such document
                raise DocumentMissing(key)
            # The shards are read outside the transaction, so hot-path shard writes never wait
            # on its locks. Exact all the same: shard counts only grow, and the document keeps
            # update_count - progress_folded invariant, so a shard write this read misses is
            # counted by the next reader, once.
            shards = self._read_shards(key, data.get("run", ""))
            record = from_document(data, snap.update_time, shards)
            old, owed = record.status.state, owing(record)
            record = change(record)
            transaction.set(ref, to_document(record))
            self.stats.add(writes=1, path=ref.path)
            writes = self._count(transaction, record, count(record)) if count else 0
            writes += self._move(transaction, record, old, record.status.state)
            writes += self._note_owed(transaction, owed, record)
            self.stats.add(writes=writes)
            return record

        return run_transaction(self.client, run)

    def write_detail(
        self,
        key: str,
        run: str,
        index: int,
        detail: str | None,
        now: datetime,
        due: datetime | None = None,
        sum_shards: bool = False,
    ) -> None:
        """Count an update of run ``run`` that sets history entry ``index``'s detail, in one blind write.

        The entry's detail time becomes ``now`` and its detail ``detail`` (kept
        when None); the run's update count grows by one. Readers apply it only
        while ``run`` is the job's run and ``index`` its current entry.

        ``due``: the update time of the job document as read, when the caller
        found it old enough to write again. The document is then written only
        if still unchanged since (a compare-and-set: of concurrent due callers
        one writes it); otherwise, or without ``due``, the update goes to a
        progress shard (:meth:`write_progress`). A document write with
        ``sum_shards`` also records the sum of the run's shards on it, for
        readers that do not read them. Raises :class:`DocumentMissing` if the
        job is gone.
        """
        if due is None:
            self.write_progress(key, run, index, detail, now)
            return
        fields = live_fields(run, index, detail, now)
        fields.update(
            {
                live_updates_path(run): firestore.Increment(1),
                "last_update": now,
                "last_activity": now,
            }
        )
        if sum_shards:
            total = self._sum_shard_updates(key, run)
            summed = live_sum_fields(run, total, now)
            fields.update(
                {
                    path: firestore.Maximum(value) if isinstance(value, int) else value
                    for path, value in summed.items()
                }
            )
        try:
            self._update(key, fields, WRITE_RETRY, if_update_time=due)
        except DocumentChanged:  # another write came first: this one waits in a shard
            self.write_progress(key, run, index, detail, now)

    def write_progress(
        self, key: str, run: str, index: int | None, detail: str | None, now: datetime
    ) -> None:
        """Record an update (``index`` given) or a heartbeat of ``run`` on a random progress shard.

        One blind merge (an ``Increment``; times are the writer's, and readers
        take the latest over all shards) that creates the shard if needed. Raises
        :class:`DocumentMissing` if the job is gone (one more read, to tell a gone job
        from a new shard).
        """
        ref = random.choice(self._shard_refs(key, run))
        fields = shard_fields(run, index, detail, now)
        if index is not None:
            fields["updates"] = firestore.Increment(1)
        self._write_shard(ref, fields)
        if self.get(key) is None:  # gone meanwhile: the shard must not outlive it
            ref.delete()
            self.stats.add(writes=1)
            raise DocumentMissing(key)

    @guarded
    def _write_shard(self, ref: firestore.DocumentReference, fields: dict[str, Any]) -> None:
        try:
            ref.set(fields, merge=True, retry=WRITE_RETRY)
        finally:
            self.stats.add(writes=1, path=ref.path)

    @guarded
    def delete_progress(self, key: str, keep_run: str | None = None) -> int:
        """Delete the job's progress shards (those of runs other than ``keep_run``); return how many."""
        gone = [
            ref
            for ref in self._ref(key).collection(PROGRESS_COLLECTION).list_documents()
            if keep_run is None or ref.id.rsplit("-", 1)[0] != (keep_run or NO_RUN)
        ]
        for start in range(0, len(gone), MAX_BATCH):
            batch = self.client.batch()
            for ref in gone[start : start + MAX_BATCH]:
                batch.delete(ref)
            batch.commit()
        self.stats.add(writes=len(gone))
        return len(gone)

    def write_reoffer(self, key: str, offer: str, if_update_time: datetime | None = None) -> None:
        """Ask, in one write, that the job be offered again as ``offer`` when it ends.

        A blind write, or with ``if_update_time`` one only if the job is
        unchanged since (else :class:`DocumentChanged`).
        """
        self._update(key, {"reoffer": offer}, IDEMPOTENT_WRITE_RETRY, if_update_time)

    def query_reoffers(
        self,
        state: State,
        limit: int,
        after: JobRecord | None = None,
        no_retry: bool = False,
        equal: Mapping[str, Any] | None = None,
    ) -> Iterator[JobRecord]:
        """Stream jobs in ``state`` that wait to be offered again, by re-offer then key.

        ``after``: the last job of the previous page. ``no_retry``: only jobs
        without a retry time (a failed job that is not retried automatically).
        ``equal``: fields that must have the given values (``experiment`` and
        ``datatype`` together have their indexes).
        """
        query = self.collection.where(filter=FieldFilter("state", "==", state.value))
        for name, value in (equal or {}).items():
            query = query.where(filter=FieldFilter(name, "==", value))
        if no_retry:
            query = query.where(filter=FieldFilter("retry_at", "==", None))
        query = query.where(filter=FieldFilter("reoffer", ">", ""))
        return self._stream(_page(query, "reoffer", after), limit)

    def query_before(
        self,
        states: list[State],
        field: str,
        cutoff: datetime,
        limit: int,
        after: JobRecord | None = None,
        equal: Mapping[str, Any] | None = None,
    ) -> Iterator[JobRecord]:
        """Stream jobs in ``states`` whose time ``field`` is before ``cutoff``, earliest first.

        ``field`` is ``last_activity``, ``last_update``, ``retry_at`` or ``lease_until`` (each has an index
        with ``state``); jobs whose field is null never match. ``after``: the
        last job of the previous page. ``equal``: fields that must have the
        given values (``reoffer`` with ``last_update``, and ``experiment`` and
        ``datatype`` together with ``retry_at``, have their indexes).
        """
        query = self._in_states(states)
        for name, value in (equal or {}).items():
            query = query.where(filter=FieldFilter(name, "==", value))
        query = query.where(filter=FieldFilter(field, "<", cutoff))
        return self._stream(_page(query, field, after), limit)

    def query_after(
        self, states: list[State], field: str, bound: datetime, limit: int
    ) -> Iterator[JobRecord]:
        """Stream jobs in ``states`` whose time ``field`` is after ``bound``, latest first.

        The mirror of :meth:`query_before`, on the same indexes.
        """
        query = (
            self._in_states(states)
            .where(filter=FieldFilter(field, ">", bound))
            .order_by(field, direction=firestore.Query.DESCENDING)
        )
        return self._stream(query, limit)

    def earliest_retry(self) -> datetime | None:
        """Return the earliest retry time of a failed job, or None if none has one (one read)."""
        found = next(self.query_before([State.FAILED], "retry_at", _LATEST, 1), None)
        if found is None:
            self.stats.add(reads=1)  # an empty query is billed as one read
            return None
        return found.retry_at

    @guarded
    def oldest_started(
        self, states: list[State], experiment: str, datatype: str
    ) -> JobRecord | None:
        """Return the job of the source in ``states`` whose run started first, or None.

        One indexed query with limit 1 (experiment, datatype, state, start_time):
        one document read, or one read's charge when there is none.
        """
        query = (
            self._in_states(states)
            .where(filter=FieldFilter("experiment", "==", experiment))
            .where(filter=FieldFilter("datatype", "==", datatype))
            .order_by("start_time")
        )
        found = next(self._stream(query, 1), None)
        if found is None:
            self.stats.add(reads=1)
        return found

    def _in_states(self, states: list[State]) -> firestore.Query:
        return self.collection.where(filter=FieldFilter("state", "in", [s.value for s in states]))

    def _stream(self, query: firestore.Query, limit: int | None) -> Iterator[JobRecord]:
        if limit is not None:
            query = query.limit(limit)
        with transient_as_unavailable():
            for snap in query.stream():
                self.stats.add(reads=1)
                yield from_document(streamed_fields(snap.to_dict()), snap.update_time)

    @guarded
    def lease_if_unchanged(self, record: JobRecord, owner: str, until: datetime) -> bool:
        """Lease the job to ``owner`` until ``until`` unless it changed since ``record`` was read.

        A single compare-and-set write: of concurrent callers exactly one wins,
        and the losers fail at once instead of waiting on a lock.
        """
        option = self.client.write_option(last_update_time=record.update_time)
        try:
            self._ref(record.key).update(
                {"lease_owner": owner, "lease_until": until}, option=option
            )
            return True
        except (gexc.FailedPrecondition, gexc.NotFound):
            return False
        finally:
            self.stats.add(writes=1)

    @guarded
    def delete_if_unchanged(self, record: JobRecord) -> bool:
        """Delete the job's document, and then its progress shards, unless it changed since ``record`` was read.

        One batch: the guarded delete and the job's removal from the counts per
        state (its state as read), so both happen or neither. Returns whether it was deleted.
        """
        option = self.client.write_option(last_update_time=record.update_time)
        batch = self.client.batch()
        batch.delete(self._ref(record.key), option=option)
        writes = 1 + self._move(batch, record, record.status.state, None)
        try:
            batch.commit()
        except (gexc.FailedPrecondition, gexc.NotFound):
            writes = 1  # refused whole: counted as the one refused delete
            return False
        finally:
            self.stats.add(writes=writes)
        self.delete_progress(record.key)
        return True

    def write_heartbeat(
        self, key: str, now: datetime, run: str = "", due: datetime | None = None
    ) -> None:
        """Record a heartbeat at ``now`` in one write; DocumentMissing if the job is gone.

        ``due`` as for :meth:`write_detail`: the job document is written if
        unchanged since ``due``, else the heartbeat goes to a progress shard
        of ``run``.
        """
        if due is not None:
            try:
                self._update(
                    key,
                    {"heartbeat_time": now, "last_activity": now},
                    IDEMPOTENT_WRITE_RETRY,
                    if_update_time=due,
                )
                return
            except DocumentChanged:
                pass
        self.write_progress(key, run, None, None, now)

    @guarded
    def _update(
        self, key: str, fields: dict[str, Any], retry: Retry, if_update_time: datetime | None = None
    ) -> None:
        """Update fields of the job document; with ``if_update_time``, only if unchanged since.

        Raises :class:`DocumentMissing` if it is gone, :class:`DocumentChanged`
        if it changed.
        """
        ref = self._ref(key)
        option = (
            None
            if if_update_time is None
            else self.client.write_option(last_update_time=if_update_time)
        )
        landed = False
        try:
            ref.update(fields, option=option, retry=retry)
            landed = True
        except gexc.FailedPrecondition:
            raise DocumentChanged(key) from None
        except gexc.NotFound:
            if if_update_time is not None:
                raise DocumentChanged(key) from None  # gone: told apart by write_progress
            raise DocumentMissing(key) from None
        finally:  # a refused write counts, but not against the document's write rate
            self.stats.add(writes=1, path=ref.path if landed else None)

    @guarded
    def delete(self, key: str) -> None:
        """Delete the job's document and its progress shards (no error if absent),
        leaving the counts per state alone.

        For tests and repairs only; a reconciliation in maintenance brings the counts right.
        """
        self._ref(key).delete()
        self.stats.add(writes=1)
        self.delete_progress(key)

    def stream_all(self) -> Iterator[JobRecord]:
        """Stream every job document, in document id order, without holding them in memory."""
        return self._stream(self.collection.order_by("__name__"), None)

    @guarded
    def create_missing(self, records: list[JobRecord]) -> list[str]:
        """Create the records whose keys have no document yet; return the keys created.

        Existing documents are never touched. Reads and writes go in batches of
        at most :data:`CREATE_BATCH` jobs, each with one more write that adds
        the created jobs to the counts per state (:data:`MAX_BATCH` writes,
        Firestore's limit on one commit), so a batch's jobs are counted exactly
        when they are created.
        """
        created: list[str] = []
        for start in range(0, len(records), CREATE_BATCH):
            chunk = records[start : start + CREATE_BATCH]
            refs = [self._ref(r.key) for r in chunk]
            present = {snap.id for snap in self.client.get_all(refs) if snap.exists}
            self.stats.add(reads=len(refs))
            batch = self.client.batch()
            todo = [(ref, r) for ref, r in zip(refs, chunk, strict=True) if ref.id not in present]
            for ref, record in todo:
                batch.create(ref, to_document(record))
            if not todo:
                continue
            moves: dict[tuple[str, str], dict[str, int]] = {}
            for _, record in todo:
                states = moves.setdefault((record.job.experiment, record.job.datatype), {})
                states[record.status.state.value] = states.get(record.status.state.value, 0) + 1
            writes = len(todo) + self.state_counts.add_many(batch, moves)
            try:
                batch.commit()
                created.extend(r.key for _, r in todo)
                self.note_owed([r for _, r in todo])
            except gexc.Conflict:  # created meanwhile by someone else: one by one
                writes = 0  # each create counts its own
                for _ref, record in todo:
                    try:
                        self.create(record)
                        created.append(record.key)
                    except DocumentExists:
                        pass
            self.stats.add(writes=writes)
        return created

    def _query(self, f: JobFilter) -> firestore.Query | firestore.CollectionReference:
        """The query of the jobs ``f`` selects, its limit aside; by job date with a date range."""
        query: firestore.Query | firestore.CollectionReference = self.collection
        for name, value in (
            ("state", f.state and f.state.value),
            ("experiment", f.experiment),
            ("datatype", f.datatype),
        ):
            if value is not None:
                query = query.where(filter=FieldFilter(name, "==", value))
        if f.dated:
            first, last = f.dates
            query = query.where(filter=FieldFilter("date", ">=", midnight(first))).where(
                filter=FieldFilter("date", "<=", midnight(last))
            )
        return query

    def query(self, f: JobFilter) -> Iterator[JobRecord]:
        """Stream the jobs ``f`` selects: by job date with a date range, else oldest start first."""
        return self._stream(self._query(f).order_by("date" if f.dated else "start_time"), f.limit)

    @guarded
    def count(self, f: JobFilter) -> int:
        """Count the jobs ``f`` selects, its limit aside, with an aggregation query (no documents read)."""
        # The library annotates Query.count() as returning the AggregationQuery class and
        # AggregationQuery.get() as a list of results; they return an instance and a list of
        # result lists (one per aggregation), as used here.
        aggregation = cast(AggregationQuery, self._query(f).count())
        result = cast("list[list[AggregationResult]]", aggregation.get())
        self.stats.add(reads=1)
        return int(result[0][0].value)
