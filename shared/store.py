"""The Firestore job store: the only module that talks to Firestore.

One document per job in the ``jobs`` collection (name configurable). The
document id is the job key with ``%`` and ``/`` percent-encoded, so it is
reversible and never contains ``/``. Beside the Go-shaped status the document
keeps the fields queries need: ``state``, ``experiment``, ``datatype``,
``date``, ``start_time``, ``last_update`` and ``last_activity`` (the later of
the last heartbeat and the last update).

The history is a map from entry index (``"0"``, ``"1"``, …) to entry, not an
array, so a detail can be written to one entry by field path without reading
the document in a transaction. Writes come in two kinds:

* :meth:`JobStore.transact` — a read-write transaction for state changes: read,
  let the caller decide, write the whole document.
* :meth:`JobStore.write_detail` and :meth:`JobStore.write_heartbeat` — single
  writes that cannot conflict (field paths, ``Increment``, the implicit
  ``exists`` precondition of ``update``): the hot path of parsers.

Creating, restarting and transacting may also add one to named totals of the
job's source (:class:`CounterStore`) in the same commit, by a blind
``Increment`` to one of its shard documents.
"""

from __future__ import annotations

import contextlib
import functools
import random
import secrets
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any, ParamSpec, TypeVar
from urllib.parse import quote, unquote

from google.api_core import exceptions as gexc
from google.api_core.retry import Retry, if_exception_type
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter
from google.cloud.firestore_v1.field_path import FieldPath

from shared.errors import StoreUnavailable
from shared.model import UTC, ZERO_TIME, Datasets, Job, State, StateInfo, Status

#: Default collection of job documents.
JOBS_COLLECTION = "jobs"

#: Default collection of queued reprocessing, one document per job key.
REPROCESS_COLLECTION = "reprocess"

#: The lease time of a job no post-processing tick holds (a time always in the past).
FREE = datetime(1970, 1, 1, tzinfo=UTC)

#: Most writes Firestore accepts in one batch commit (the emulator does not enforce it).
MAX_BATCH = 500

#: Composite indexes the queries of this module need in production Firestore
#: (the emulator needs none). Each is (collection, ((field, direction), …)).
INDEXES: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    (JOBS_COLLECTION, (("state", "ASCENDING"), ("start_time", "ASCENDING"))),
    (JOBS_COLLECTION, (("experiment", "ASCENDING"), ("start_time", "ASCENDING"))),
    (JOBS_COLLECTION, (("datatype", "ASCENDING"), ("start_time", "ASCENDING"))),
    (JOBS_COLLECTION, (("state", "ASCENDING"), ("reoffer", "ASCENDING"))),
    (JOBS_COLLECTION, (("state", "ASCENDING"), ("last_activity", "ASCENDING"))),
    (JOBS_COLLECTION, (("state", "ASCENDING"), ("last_update", "ASCENDING"))),
    (JOBS_COLLECTION, (("state", "ASCENDING"), ("retry_at", "ASCENDING"))),
    (JOBS_COLLECTION, (("state", "ASCENDING"), ("lease_until", "ASCENDING"))),
    (JOBS_COLLECTION, (("state", "ASCENDING"), ("date", "ASCENDING"))),
    (JOBS_COLLECTION, (("experiment", "ASCENDING"), ("date", "ASCENDING"))),
    (JOBS_COLLECTION, (("datatype", "ASCENDING"), ("date", "ASCENDING"))),
    (REPROCESS_COLLECTION, (("source", "ASCENDING"), ("rank", "ASCENDING"))),
)


class DocumentMissing(Exception):
    """The job document does not exist."""


class DocumentExists(Exception):
    """A create-only write found the job document already there."""


class DocumentChanged(Exception):
    """A compare-and-set write found the job document changed since it was read."""


#: Firestore errors that say "try again later", not "your request is wrong".
TRANSIENT = (
    gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.InternalServerError,
    gexc.Aborted, gexc.TooManyRequests, gexc.ResourceExhausted, gexc.RetryError,
)

#: Retry of the single writes of the hot path (detail, heartbeat, re-offer) and of the
#: cursors: the client library retries a commit on UNAVAILABLE and RESOURCE_EXHAUSTED;
#: this adds ABORTED (a write refused under contention, never applied, so safe to
#: repeat even for an ``Increment``), with exponential backoff for at most 20 s.
WRITE_RETRY = Retry(
    predicate=if_exception_type(gexc.Aborted, gexc.ServiceUnavailable, gexc.ResourceExhausted),
    initial=0.1, maximum=2.0, multiplier=2.0, timeout=20.0,
)

#: Idempotent single writes (heartbeat, re-offer, cursor ``Maximum``) are also repeated after
#: DEADLINE_EXCEEDED: applying one twice changes nothing.
IDEMPOTENT_WRITE_RETRY = WRITE_RETRY.with_predicate(if_exception_type(
    gexc.Aborted, gexc.ServiceUnavailable, gexc.ResourceExhausted, gexc.DeadlineExceeded))

_P = ParamSpec("_P")
_R = TypeVar("_R")


@contextlib.contextmanager
def _transient_as_unavailable() -> Iterator[None]:
    try:
        yield
    except TRANSIENT as exc:
        raise StoreUnavailable(f"Firestore unavailable: {exc}") from exc


def _transient_cause(exc: BaseException) -> BaseException | None:
    """The transient Firestore error behind a ``ValueError`` of the client's transaction runner.

    The runner wraps a commit aborted on every attempt in ``ValueError`` (``from`` the
    last ``Aborted``), and a failure before the transaction began becomes the
    ``ValueError`` of its own rollback (with the failure as context).
    """
    for cause in (exc.__cause__, exc.__context__):
        if isinstance(cause, TRANSIENT):
            return cause
    return None


def _guarded(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """Raise :class:`StoreUnavailable` for a transient Firestore error in ``method``."""

    @functools.wraps(method)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with _transient_as_unavailable():
            return method(*args, **kwargs)

    return wrapper


def doc_id(key: str) -> str:
    """Return the Firestore document id of a job key (reversible percent-encoding)."""
    return quote(key, safe="")


def key_from_doc_id(document_id: str) -> str:
    """Return the job key a document id encodes."""
    return unquote(document_id)


#: Operator actions kept on a job document, newest last; older ones are dropped.
AUDIT_KEEP = 20


@dataclass(frozen=True)
class AuditEntry:
    """One operator action on a job: who did what, when."""

    time: datetime
    who: str
    action: str
    detail: str = ""


@dataclass
class JobRecord:
    """A job, its status and the store's bookkeeping, as read from one document."""

    job: Job
    status: Status
    last_update: datetime
    update_time: datetime | None = None  # Firestore's, for compare-and-set
    #: The next-job offer that handed this run of the job out ("" if added otherwise).
    offer: str = ""
    #: An offer that came while the job was in flight; it is made again when the job ends.
    reoffer: str = ""
    #: Runs of this job since it last completed: 1 for the first, +1 per retry of a failure.
    attempts: int = 1
    #: The error of the previous run, when this run is a retry.
    last_error: str = ""
    #: When a failed job may be handed out again; None if it is not to be retried.
    retry_at: datetime | None = None
    #: The post-processing tick that holds the job, and until when (``FREE`` when none).
    lease_owner: str = ""
    lease_until: datetime = FREE
    #: The BigQuery job of the current post-processing step, and the step's attempt.
    step_job: str = ""
    step_attempt: int = 0
    #: Operator actions on this job, oldest first, at most :data:`AUDIT_KEEP` (kept across restarts).
    audit: list[AuditEntry] = field(default_factory=list)

    def note(self, entry: AuditEntry) -> None:
        """Append an operator action to the audit, dropping the oldest beyond :data:`AUDIT_KEEP`."""
        self.audit = [*self.audit, entry][-AUDIT_KEEP:]

    @property
    def key(self) -> str:
        """The job key."""
        return self.job.key()

    @property
    def last_activity(self) -> datetime:
        """The later of the last heartbeat and the last update."""
        return max(self.last_update, self.status.heartbeat_time)

    @classmethod
    def new(cls, job: Job, now: datetime, offer: str = "") -> JobRecord:
        """Return the record of a freshly added job."""
        return cls(job=job, status=Status.new(now), last_update=now, offer=offer)


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


def _entry_path(index: int, name: str) -> str:
    return FieldPath("history", str(index), name).to_api_repr()


def _entry_to_doc(info: StateInfo) -> dict[str, Any]:
    return {
        "state": info.state.value,
        "start": info.start,
        "detail_time": info.detail_time,
        "detail": info.detail,
    }


def _midnight(day: Any) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def to_document(record: JobRecord) -> dict[str, Any]:
    """Return the Firestore document of a record."""
    job, status = record.job, record.status
    hb = status.heartbeat_time
    return {
        "key": job.key(),
        "bucket": job.bucket,
        "experiment": job.experiment,
        "datatype": job.datatype,
        "date": _midnight(job.date),
        "filter": job.filter,
        "datasets": {"tmp": job.datasets.tmp, "raw": job.datasets.raw, "join": job.datasets.join},
        "state": status.state.value,
        "history": {str(i): _entry_to_doc(e) for i, e in enumerate(status.history)},
        "heartbeat_time": None if hb == ZERO_TIME else hb,
        "update_count": status.update_count,
        "start_time": status.start_time,
        "last_update": record.last_update,
        "last_activity": record.last_activity,
        "offer": record.offer,
        "reoffer": record.reoffer,
        "attempts": record.attempts,
        "last_error": record.last_error,
        "retry_at": record.retry_at,
        "lease_owner": record.lease_owner,
        "lease_until": record.lease_until,
        "step_job": record.step_job,
        "step_attempt": record.step_attempt,
        "audit": [{"time": a.time, "who": a.who, "action": a.action, "detail": a.detail}
                  for a in record.audit],
    }


def from_document(data: dict[str, Any], update_time: datetime | None = None) -> JobRecord:
    """Return the record a Firestore document holds.

    History entries without a state (left by a detail write that raced with a
    restart) are ignored; the next state change rewrites the history whole.
    """
    ds = data.get("datasets") or {}
    job = Job(
        bucket=data["bucket"],
        experiment=data["experiment"],
        datatype=data["datatype"],
        date=data["date"].astimezone(UTC).date(),
        filter=data.get("filter", ""),
        datasets=Datasets(ds.get("tmp", ""), ds.get("raw", ""), ds.get("join", "")),
    )
    entries = sorted(
        ((int(i), e) for i, e in data["history"].items() if "state" in e), key=lambda p: p[0]
    )
    history = [
        StateInfo(State(e["state"]), e["start"], e["detail_time"], e.get("detail", ""))
        for _, e in entries
    ]
    status = Status(
        history=history,
        heartbeat_time=data.get("heartbeat_time") or ZERO_TIME,
        update_count=data.get("update_count", 0),
    )
    return JobRecord(job, status, data["last_update"], update_time,
                     offer=data.get("offer", ""), reoffer=data.get("reoffer", ""),
                     attempts=data.get("attempts", 1), last_error=data.get("last_error", ""),
                     retry_at=data.get("retry_at"), lease_owner=data.get("lease_owner", ""),
                     lease_until=data.get("lease_until") or FREE,
                     step_job=data.get("step_job", ""), step_attempt=data.get("step_attempt", 0),
                     audit=[AuditEntry(a["time"], a["who"], a["action"], a.get("detail", ""))
                            for a in data.get("audit") or ()])


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


class JobStore:
    """Job documents in one Firestore collection, and the totals of their state changes."""

    def __init__(self, client: firestore.Client, collection: str = JOBS_COLLECTION,
                 counters: CounterStore | None = None) -> None:
        self.client = client
        self.collection = client.collection(collection)
        self.stats = StoreStats()
        #: Where :meth:`create`, :meth:`replace` and :meth:`transact` add their totals.
        self.counters = counters or CounterStore(client)

    def _ref(self, key: str) -> firestore.DocumentReference:
        return self.collection.document(doc_id(key))

    @_guarded
    def get(self, key: str) -> JobRecord | None:
        """Return the job's record, or None if there is no such job (one read)."""
        snap = self._ref(key).get()
        self.stats.add(reads=1)
        if not snap.exists:
            return None
        return from_document(snap.to_dict(), snap.update_time)

    def _count(self, writer: Any, record: JobRecord, names: Sequence[str]) -> int:
        return self.counters.add(writer, record.job.experiment, record.job.datatype, names)

    @_guarded
    def create(self, record: JobRecord, count: Sequence[str] = ()) -> None:
        """Write a new job document; :class:`DocumentExists` if the key is taken.

        The totals named in ``count`` grow by one in the same commit.
        """
        batch = self.client.batch()
        batch.create(self._ref(record.key), to_document(record))
        writes = 1 + self._count(batch, record, count)
        try:
            batch.commit()
        except gexc.Conflict:
            writes = 1  # refused whole: counted as the one refused create
            raise DocumentExists(record.key) from None
        finally:
            self.stats.add(writes=writes)

    @_guarded
    def replace(self, record: JobRecord, if_update_time: datetime,
                count: Sequence[str] = ()) -> None:
        """Overwrite a job document only if it is unchanged since ``if_update_time``.

        Raises :class:`DocumentChanged` if someone else wrote it first. The
        totals named in ``count`` grow by one in the same commit.
        """
        option = self.client.write_option(last_update_time=if_update_time)
        batch = self.client.batch()
        batch.update(self._ref(record.key), to_document(record), option=option)
        writes = 1 + self._count(batch, record, count)
        try:
            batch.commit()
        except (gexc.FailedPrecondition, gexc.NotFound):
            writes = 1  # refused whole: counted as the one refused update
            raise DocumentChanged(record.key) from None
        finally:
            self.stats.add(writes=writes)

    @_guarded
    def transact(self, key: str, change: Callable[[JobRecord], JobRecord],
                 count: Callable[[JobRecord], Sequence[str]] | None = None) -> JobRecord:
        """Apply ``change`` to the job's record in one read-write transaction.

        ``change`` may raise to abort without writing; it may run more than once
        if the transaction is retried, so it must not have side effects.
        ``count``, given the changed record, names the totals that grow by one
        in the same transaction (a blind write: the counters are not read).
        Raises :class:`DocumentMissing` if there is no such job.
        """
        ref = self._ref(key)

        @firestore.transactional
        def run(transaction: firestore.Transaction) -> JobRecord:
            snap = ref.get(transaction=transaction)
            self.stats.add(reads=1)
            if not snap.exists:
                raise DocumentMissing(key)
            record = change(from_document(snap.to_dict(), snap.update_time))
            transaction.set(ref, to_document(record))
            writes = 1 + (self._count(transaction, record, count(record)) if count else 0)
            self.stats.add(writes=writes)
            return record

        try:
            return run(self.client.transaction())
        except ValueError as exc:
            cause = _transient_cause(exc)
            if cause is None:
                raise
            raise StoreUnavailable(f"Firestore unavailable: {cause}") from exc

    def write_detail(self, key: str, index: int, detail: str | None, now: datetime) -> None:
        """Count an update that sets history entry ``index``'s detail, in one blind write.

        The entry's detail time becomes ``now`` and its detail ``detail`` (kept
        when None); the update count grows by one. Raises
        :class:`DocumentMissing` if the job is gone.
        """
        fields: dict[str, Any] = {
            _entry_path(index, "detail_time"): now,
            "update_count": firestore.Increment(1),
            "last_update": now,
            "last_activity": now,
        }
        if detail is not None:
            fields[_entry_path(index, "detail")] = detail
        self._update(key, fields, WRITE_RETRY)

    def write_reoffer(self, key: str, offer: str) -> None:
        """Ask, in one blind write, that the job be offered again as ``offer`` when it ends."""
        self._update(key, {"reoffer": offer}, IDEMPOTENT_WRITE_RETRY)

    def query_reoffers(self, states: list[State], limit: int) -> Iterator[JobRecord]:
        """Stream jobs in ``states`` that wait to be offered again."""
        return self._stream(self._in_states(states).where(filter=FieldFilter("reoffer", ">", "")),
                            limit)

    def query_before(
        self, states: list[State], field: str, cutoff: datetime, limit: int
    ) -> Iterator[JobRecord]:
        """Stream jobs in ``states`` whose time ``field`` is before ``cutoff``, earliest first.

        ``field`` is ``last_activity``, ``last_update``, ``retry_at`` or ``lease_until`` (each has an index
        with ``state``); jobs whose field is null never match.
        """
        query = (self._in_states(states).where(filter=FieldFilter(field, "<", cutoff))
                 .order_by(field))
        return self._stream(query, limit)

    def _in_states(self, states: list[State]) -> firestore.Query:
        return self.collection.where(filter=FieldFilter("state", "in", [s.value for s in states]))

    def _stream(self, query: firestore.Query, limit: int | None) -> Iterator[JobRecord]:
        if limit is not None:
            query = query.limit(limit)
        with _transient_as_unavailable():
            for snap in query.stream():
                self.stats.add(reads=1)
                yield from_document(snap.to_dict(), snap.update_time)

    @_guarded
    def lease_if_unchanged(self, record: JobRecord, owner: str, until: datetime) -> bool:
        """Lease the job to ``owner`` until ``until`` unless it changed since ``record`` was read.

        A single compare-and-set write: of concurrent callers exactly one wins,
        and the losers fail at once instead of waiting on a lock.
        """
        option = self.client.write_option(last_update_time=record.update_time)
        try:
            self._ref(record.key).update({"lease_owner": owner, "lease_until": until},
                                         option=option)
            return True
        except (gexc.FailedPrecondition, gexc.NotFound):
            return False
        finally:
            self.stats.add(writes=1)

    @_guarded
    def delete_if_unchanged(self, record: JobRecord) -> bool:
        """Delete the job's document unless it changed since ``record`` was read."""
        option = self.client.write_option(last_update_time=record.update_time)
        try:
            self._ref(record.key).delete(option=option)
            return True
        except (gexc.FailedPrecondition, gexc.NotFound):
            return False
        finally:
            self.stats.add(writes=1)

    def write_heartbeat(self, key: str, now: datetime) -> None:
        """Record a heartbeat at ``now`` in one blind write; DocumentMissing if the job is gone."""
        self._update(key, {"heartbeat_time": now, "last_activity": now}, IDEMPOTENT_WRITE_RETRY)

    @_guarded
    def _update(self, key: str, fields: dict[str, Any], retry: Retry) -> None:
        try:
            self._ref(key).update(fields, retry=retry)
        except gexc.NotFound:
            raise DocumentMissing(key) from None
        finally:
            self.stats.add(writes=1)

    @_guarded
    def delete(self, key: str) -> None:
        """Delete the job's document (no error if absent)."""
        self._ref(key).delete()
        self.stats.add(writes=1)

    def stream_all(self) -> Iterator[JobRecord]:
        """Stream every job document, in document id order, without holding them in memory."""
        return self._stream(self.collection.order_by("__name__"), None)

    @_guarded
    def create_missing(self, records: list[JobRecord]) -> list[str]:
        """Create the records whose keys have no document yet; return the keys created.

        Existing documents are never touched. Reads and writes go in batches of
        at most :data:`MAX_BATCH` documents (Firestore's limit on one commit).
        """
        created: list[str] = []
        for start in range(0, len(records), MAX_BATCH):
            chunk = records[start:start + MAX_BATCH]
            refs = [self._ref(r.key) for r in chunk]
            present = {snap.id for snap in self.client.get_all(refs) if snap.exists}
            self.stats.add(reads=len(refs))
            batch = self.client.batch()
            todo = [(ref, r) for ref, r in zip(refs, chunk, strict=True) if ref.id not in present]
            for ref, record in todo:
                batch.create(ref, to_document(record))
            if not todo:
                continue
            try:
                batch.commit()
                created.extend(r.key for _, r in todo)
            except gexc.Conflict:  # created meanwhile by someone else: one by one
                for ref, record in todo:
                    try:
                        ref.create(to_document(record))
                        created.append(record.key)
                    except gexc.Conflict:
                        pass
            self.stats.add(writes=len(todo))
        return created

    def _query(
        self, state: State | None, experiment: str | None, datatype: str | None
    ) -> firestore.Query:
        query: firestore.Query = self.collection
        for name, value in (("state", state and state.value), ("experiment", experiment),
                            ("datatype", datatype)):
            if value is not None:
                query = query.where(filter=FieldFilter(name, "==", value))
        return query

    def query(
        self,
        state: State | None = None,
        experiment: str | None = None,
        datatype: str | None = None,
        limit: int | None = None,
    ) -> Iterator[JobRecord]:
        """Stream matching jobs, oldest start first."""
        return self._stream(self._query(state, experiment, datatype).order_by("start_time"), limit)

    def query_dates(
        self,
        first: date,
        last: date,
        state: State | None = None,
        experiment: str | None = None,
        datatype: str | None = None,
        limit: int | None = None,
    ) -> Iterator[JobRecord]:
        """Stream matching jobs whose date is from ``first`` to ``last`` (inclusive), by date."""
        query = (self._query(state, experiment, datatype)
                 .where(filter=FieldFilter("date", ">=", _midnight(first)))
                 .where(filter=FieldFilter("date", "<=", _midnight(last))).order_by("date"))
        return self._stream(query, limit)

    @_guarded
    def count(
        self,
        state: State | None = None,
        experiment: str | None = None,
        datatype: str | None = None,
    ) -> int:
        """Count matching jobs with an aggregation query (no documents read)."""
        result = self._query(state, experiment, datatype).count().get()
        self.stats.add(reads=1)
        return int(result[0][0].value)


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


@dataclass(frozen=True)
class ReprocessItem:
    """A job queued for reprocessing by an operator: handed out by next-job ahead of history."""

    bucket: str
    experiment: str
    datatype: str
    date: date
    #: Unique per enqueue: the hand-out's offer is ``reprocess/<token>``.
    token: str
    #: Orders the queue: the enqueue time, then the item's place in its request.
    rank: str
    who: str
    queued_at: datetime
    update_time: datetime | None = None  # Firestore's, for the guarded delete

    @classmethod
    def new(cls, job: Job, who: str, now: datetime, seq: int = 0) -> ReprocessItem:
        """Return a fresh item for ``job``, queued at ``now`` as the ``seq``-th of its request."""
        rank = f"{now.astimezone(UTC):%Y%m%dT%H%M%S.%f}/{seq:06d}"
        return cls(job.bucket, job.experiment, job.datatype, job.date, secrets.token_hex(8), rank,
                   who, now)

    @property
    def source(self) -> str:
        """The source's name, ``experiment/datatype``."""
        return f"{self.experiment}/{self.datatype}"

    @property
    def key(self) -> str:
        """The key of the job to reprocess."""
        return Job(self.bucket, self.experiment, self.datatype, self.date).key()


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

    @staticmethod
    def _to_document(item: ReprocessItem) -> dict[str, Any]:
        return {"bucket": item.bucket, "experiment": item.experiment, "datatype": item.datatype,
                "date": _midnight(item.date), "source": item.source, "token": item.token,
                "rank": item.rank, "who": item.who, "queued_at": item.queued_at, "key": item.key}

    @staticmethod
    def _from_snapshot(snap: Any) -> ReprocessItem:
        d = snap.to_dict()
        return ReprocessItem(d["bucket"], d["experiment"], d["datatype"],
                             d["date"].astimezone(UTC).date(), d["token"], d["rank"], d["who"],
                             d["queued_at"], snap.update_time)

    @_guarded
    def add(self, items: list[ReprocessItem]) -> list[str]:
        """Queue the items whose job keys are not queued yet; return the keys queued.

        Writes go in batches of at most :data:`MAX_BATCH`; queued items are left as they are.
        """
        created: list[str] = []
        for start in range(0, len(items), MAX_BATCH):
            chunk = items[start:start + MAX_BATCH]
            refs = [self.collection.document(doc_id(i.key)) for i in chunk]
            present = {snap.id for snap in self.client.get_all(refs) if snap.exists}
            self.stats.add(reads=len(refs))
            todo = [(ref, i) for ref, i in zip(refs, chunk, strict=True) if ref.id not in present]
            if not todo:
                continue
            batch = self.client.batch()
            for ref, item in todo:
                batch.create(ref, self._to_document(item))
            try:
                batch.commit()
                created.extend(i.key for _, i in todo)
            except gexc.Conflict:  # queued meanwhile by someone else: one by one
                for ref, item in todo:
                    with contextlib.suppress(gexc.Conflict):
                        ref.create(self._to_document(item))
                        created.append(item.key)
            self.stats.add(writes=len(todo))
        return created

    def head(self, sources: list[str], limit: int) -> list[ReprocessItem]:
        """Return the first ``limit`` items of ``sources`` (``experiment/datatype``) in queue order."""
        found: list[ReprocessItem] = []
        with _transient_as_unavailable():
            for start in range(0, len(sources), MAX_IN_VALUES):
                query = (self.collection
                         .where(filter=FieldFilter("source", "in", sources[start:start + MAX_IN_VALUES]))
                         .order_by("rank").limit(limit))
                for snap in query.stream():
                    self.stats.add(reads=1)
                    found.append(self._from_snapshot(snap))
        return sorted(found, key=lambda i: i.rank)[:limit]

    @_guarded
    def remove(self, item: ReprocessItem) -> bool:
        """Remove the item unless it was queued again since it was read; return whether it was."""
        option = self.client.write_option(last_update_time=item.update_time)
        try:
            self.collection.document(doc_id(item.key)).delete(option=option)
            return True
        except (gexc.FailedPrecondition, gexc.NotFound):
            return False
        finally:
            self.stats.add(writes=1)

    @_guarded
    def count(self) -> int:
        """Return the number of queued items (an aggregation query)."""
        result = self.collection.count().get()
        self.stats.add(reads=1)
        return int(result[0][0].value)

    def stream(self, limit: int) -> Iterator[ReprocessItem]:
        """Stream the first ``limit`` items of the whole queue, in queue order."""
        with _transient_as_unavailable():
            for snap in self.collection.order_by("rank").limit(limit).stream():
                self.stats.add(reads=1)
                yield self._from_snapshot(snap)


#: Default collection of the operator's pauses.
CONTROLS_COLLECTION = "controls"


@dataclass(frozen=True)
class Pause:
    """A pause of a source (``experiment/datatype``) or of the whole historical cycle."""

    target: str
    who: str
    since: datetime
    reason: str = ""


class ControlStore:
    """The operator's pauses: one document per paused target, present while it is paused.

    Next-job reads them all with one query per call; pausing and resuming are
    single create-only or guarded writes, so nothing contends.
    """

    def __init__(self, client: firestore.Client, collection: str = CONTROLS_COLLECTION) -> None:
        self.collection = client.collection(collection)
        self.stats = StoreStats()

    @_guarded
    def pause(self, pause: Pause) -> Pause | None:
        """Record the pause unless its target is paused already; return the pause in force before, if any."""
        ref = self.collection.document(doc_id(pause.target))
        try:
            ref.create({"target": pause.target, "who": pause.who, "since": pause.since,
                        "reason": pause.reason})
            return None
        except gexc.Conflict:
            snap = ref.get()
            self.stats.add(reads=1)
            return self._from(snap.to_dict()) if snap.exists else None
        finally:
            self.stats.add(writes=1)

    @_guarded
    def resume(self, target: str) -> Pause | None:
        """Lift the pause of ``target``; return it, or None if ``target`` was not paused."""
        ref = self.collection.document(doc_id(target))
        snap = ref.get()
        self.stats.add(reads=1)
        if not snap.exists:
            return None
        try:
            ref.delete(option=firestore.Client.write_option(last_update_time=snap.update_time))
        except (gexc.FailedPrecondition, gexc.NotFound):
            return None  # lifted (or replaced) meanwhile by someone else
        finally:
            self.stats.add(writes=1)
        return self._from(snap.to_dict())

    @_guarded
    def all(self) -> list[Pause]:
        """Return every pause in force."""
        pauses = [self._from(snap.to_dict()) for snap in self.collection.stream()]
        self.stats.add(reads=max(1, len(pauses)))
        return pauses

    @staticmethod
    def _from(data: dict[str, Any]) -> Pause:
        return Pause(data["target"], data["who"], data["since"], data.get("reason", ""))
