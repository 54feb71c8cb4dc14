"""JobMap snapshots: every job exported to GCS in the Go tracker's state-file format, and back.

The format is the Go Gardener's "saver struct v2" (``tracker.saverStructV2``)::

    {"SaveTime": "<RFC 3339>",
     "Statuses": {key: {"HeartbeatTime", "UpdateCount",
                        "History": [{"State", "Start", "DetailTime", "Detail"}, ...]}},
     "Jobs": {key: {"Bucket", "Experiment", "Datatype", "Date", "Filter" (omitted when empty),
                    "Datasets": {"Tmp", "Raw", "Join"}}}}

so a Go tracker can start from one of our snapshots and we can start from a Go
state file. Times are Go's (``0001-01-01T00:00:00Z`` is the zero time: no
heartbeat yet). Bookkeeping that Go has no field for (the offer and re-offer of
the job service, retry counters) is not exported and comes back empty. The one
addition: a status entry of a job with earlier runs carries them as ``Runs``
(:class:`~shared.schemas.RunSummarySchema`; omitted when there are none), a
field Go's decoder ignores, and an import restores them (bounded as the
tracker bounds them).

**Export** (:func:`write_snapshot`) reads every job in one streamed query and
writes a new, create-only object ``<prefix>YYYY-MM-DDTHH-MM-SS.ffffffZ.json``
(names sort by time); memory stays bounded whatever the job count (statuses go
straight into the upload, jobs through a temporary file that spills to disk
beyond 8 MiB). Then ``<prefix>latest.json`` is pointed at it (the pointer only
moves forward, to a later name, except away from a snapshot named more than
:data:`~shared.limits.MAX_CLOCK_SKEW` after the export's time: a clock far ahead
wrote it) and all but the newest ``keep`` snapshots are deleted (such far-ahead
snapshots counting as the oldest). A failed export leaves no partial object.

**Import** (:func:`read_snapshot` / :func:`load_snapshot`, then
:func:`import_snapshot`) validates the whole file first. A malformed file is
refused with :class:`SnapshotError`, which lists every problem with its path
(``Statuses["b/e/t/20190102"].History[0].State: unknown state 'x'``), and
nothing is written. Refused:

* not JSON, not an object, unknown top-level fields, missing ``SaveTime``,
  ``Statuses`` or ``Jobs``;
* a status or job entry with a bad or missing field (times must be RFC 3339;
  nanoseconds and offsets are accepted, precision beyond microseconds is
  dropped), an empty ``History`` or an unknown state, a negative ``UpdateCount``;
* anything Firestore would refuse (:mod:`shared.limits`): an ``UpdateCount``
  beyond int64, a job document over 1 MiB, an indexed string over 1,500 bytes;
  and times (job dates too) outside 1970 to 2200 (a ``HeartbeatTime`` may be
  Go's zero time);
* a history step the transition table does not allow, or a repeated state,
  except after ``failed`` (see :func:`_illegal_edge`);
* a key that is not a valid job key (``bucket/experiment/datatype/YYYYMMDD``);
* a job (with a status) whose fields do not match its key;
* a status without a ``Jobs`` entry: the job's bucket and datasets are unknown,
  and making them up would send its data to the wrong place. Go never writes one.

**Skipped, not refused:** a ``Jobs`` entry without a ``Statuses`` entry. It has
no state to restore, and a Go tracker does not track it either: its first
``GetState`` drops it as stale (its detail time is the zero time). The Go
sample state file has one such leftover (``bucket/exp/type/20110102``, whose
fields do not even match its key). Such entries must still be well-formed job
objects, but their key is not checked; their keys are reported in
:attr:`Snapshot.skipped` and :attr:`ImportResult.skipped`.

**Existing jobs win:** import only creates jobs that are not in Firestore yet
(:meth:`JobStore.create_missing`); a job already there is left untouched
whatever its state, because the live state is newer than any snapshot.
Importing the same file twice therefore changes nothing the second time, and an
interrupted import (:class:`ImportInterrupted` lists the jobs created and not
written) can simply be run again. To restore a job from a snapshot
over a live one, delete the live one first.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, ClassVar

import google.cloud.storage as storage  # the name form mypy resolves
import ijson
from google.api_core import exceptions as gexc
from google.cloud.storage.exceptions import InvalidResponse
from google.cloud.storage.retry import DEFAULT_RETRY
from marshmallow import RAISE, Schema, ValidationError, fields

from shared import defaults, limits, transitions
from shared.config import error_leaves, format_path
from shared.errors import Unavailable
from shared.gcs import TRANSIENT
from shared.gotime import format_time
from shared.model import (
    UTC,
    Datasets,
    Job,
    JobRecord,
    RunSummary,
    State,
    StateInfo,
    Status,
    bucket_problem,
)
from shared.schemas import GoTime, JobSchema, RunSummarySchema, StatusSchema, in_window
from shared.store import MAX_BATCH, JobStore, doc_id, to_document

#: Name of the pointer object under the snapshot prefix.
POINTER_NAME = "latest.json"

_SNAPSHOT_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}\.\d{6}Z(?:_[0-9a-f]{8})?\.json\Z", re.ASCII
)


class SnapshotStatusSchema(StatusSchema):
    """A ``Statuses`` entry: Go's ``Status`` and, for a job with earlier runs, their ``Runs``."""

    runs = fields.List(fields.Nested(RunSummarySchema), data_key="Runs", load_default=list)


_STATUS = SnapshotStatusSchema()
_GO_STATUS = StatusSchema()
_RUNS = RunSummarySchema(many=True)
_JOB = JobSchema()


class SnapshotError(ValueError):
    """A snapshot file is malformed; :attr:`problems` lists every problem found."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        head = f"snapshot refused ({count} problem{'s' if count != 1 else ''}, nothing written)"
        super().__init__(head + ":\n  " + "\n  ".join(self.problems))


class ImportInterrupted(Exception):
    """An import stopped mid-way (Firestore failed): the jobs created, those already there, those not written.

    Batches are written whole or not at all, so :attr:`not_written` is exact
    (a job created meanwhile by someone else aside). Importing the same file
    again creates exactly the jobs still missing.
    """

    def __init__(
        self,
        created: list[str],
        already_present: list[str],
        not_written: list[str],
        cause: BaseException,
    ) -> None:
        self.created, self.already_present, self.not_written = created, already_present, not_written
        self.cause = cause
        super().__init__(
            f"import stopped by {type(cause).__name__}: {cause}; {len(created)} jobs created, "
            f"{len(already_present)} already present, {len(not_written)} not written; "
            "import the same file again to finish (only missing jobs are created)"
        )


class SnapshotUnavailable(Unavailable):
    """GCS did not answer, or asked to be retried later, while reading or writing a snapshot."""


@dataclass
class SnapshotResult:
    """What :func:`write_snapshot` did; every field is JSON-able."""

    bucket: str
    #: Name of the snapshot object written.
    object: str
    #: Jobs in it.
    jobs: int
    #: Its size in bytes.
    bytes: int
    #: Its ``SaveTime``, in Go's format.
    save_time: str
    #: Name of the pointer object.
    latest: str
    #: Whether the pointer now names this snapshot (False: it already named a later one).
    latest_updated: bool
    #: Old snapshot objects deleted, oldest first.
    deleted: list[str] = field(default_factory=list)


@dataclass
class ImportResult:
    """What :func:`import_snapshot` did."""

    #: Jobs the snapshot holds (skipped entries not counted).
    total: int
    #: Jobs created.
    created: int
    #: Jobs already in Firestore, left untouched.
    already_present: int
    #: Keys of ``Jobs`` entries without a status, not imported.
    skipped: list[str] = field(default_factory=list)


class Snapshot(list[JobRecord]):
    """The jobs of a snapshot file (a list of records, by key), with its save time and skipped keys."""

    def __init__(
        self,
        records: Iterable[JobRecord] = (),
        save_time: datetime | None = None,
        skipped: Iterable[str] = (),
    ) -> None:
        super().__init__(records)
        #: The file's ``SaveTime``.
        self.save_time = save_time
        #: Keys of ``Jobs`` entries without a ``Statuses`` entry (see the module docstring).
        self.skipped = list(skipped)


class SnapshotSchema(Schema):
    """The top level of a state file: ``SaveTime`` and the ``Statuses`` and ``Jobs`` maps.

    Entries are objects here; :func:`parse_snapshot` validates each with
    :class:`~shared.schemas.StatusSchema` or :class:`~shared.schemas.JobSchema`.
    """

    class Meta:
        unknown = RAISE

    save_time = GoTime(data_key="SaveTime", required=True, validate=in_window)
    statuses = fields.Dict(
        keys=fields.String(), values=fields.Raw(), data_key="Statuses", required=True
    )
    jobs = fields.Dict(keys=fields.String(), values=fields.Raw(), data_key="Jobs", required=True)


# --- reading ---------------------------------------------------------------------------------


def _problems(messages: Any, where: str) -> Iterator[str]:
    """Yield ``path: message`` for every message of a marshmallow error tree, under ``where``."""
    for path, message in error_leaves(messages):
        yield f"{format_path(path, where) or '(file)'}: {message}"


def _dumps(value: Any) -> str:
    """Compact JSON, non-ASCII kept as UTF-8 (as Go writes it)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _where(kind: str, key: str) -> str:
    return f"{kind}[{json.dumps(key, ensure_ascii=False)}]"


def _load_entry(schema: Schema, raw: Any, where: str, problems: list[str]) -> dict[str, Any] | None:
    try:
        loaded: dict[str, Any] = schema.load(raw)  # a Schema without many=True loads a dict
        return loaded
    except ValidationError as exc:
        problems.extend(_problems(exc.messages, where))
        return None


def _status(data: dict[str, Any]) -> Status:
    """The loaded status, its history bounded as the tracker bounds it (:meth:`Status.bound_history`)."""
    history = [
        StateInfo(e["state"], e["start"], e["detail_time"], e["detail"]) for e in data["history"]
    ]
    status = Status(
        history=history, heartbeat_time=data["heartbeat_time"], update_count=data["update_count"]
    )
    status.bound_history()
    return status


def _job(data: dict[str, Any]) -> Job:
    ds = data["datasets"]
    return Job(
        data["bucket"],
        data["experiment"],
        data["datatype"],
        data["date"],
        data["filter"],
        Datasets(ds.get("tmp", ""), ds.get("raw", ""), ds.get("join", "")),
    )


def _mismatch(key: str, job: Job) -> str | None:
    """Describe how ``job``'s fields differ from what ``key`` names, or None if they agree."""
    named = Job.from_key(key)
    diffs = [
        f"{name} {getattr(job, name)!s} (key: {getattr(named, name)!s})"
        for name in ("bucket", "experiment", "datatype", "date")
        if getattr(job, name) != getattr(named, name)
    ]
    return "fields do not match the key: " + ", ".join(diffs) if diffs else None


def _restored(job: Job, status: Status, runs: list[RunSummary]) -> JobRecord:
    """The record of a job restored from a snapshot, with its earlier runs (bounded)."""
    record = JobRecord(job, status, last_update_of(status))
    record.restore_runs(runs)
    return record


def last_update_of(status: Status) -> datetime:
    """Return a restored job's last update: its latest detail time, or the last start if later."""
    return max(max(e.detail_time for e in status.history), status.history[-1].start)


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _check_statuses(
    entries: Iterable[tuple[str, Any]], has_job: Callable[[str], bool], problems: list[str]
) -> Iterator[tuple[str, tuple[Status, list[RunSummary]]]]:
    """Validate ``Statuses`` entries; yield the good ones, add a problem for each bad one."""
    for key, raw in entries:
        where = _where("Statuses", key)
        try:
            Job.from_key(key)
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
        if not has_job(key):
            problems.append(
                f"{where}: no Jobs entry for this key (a status cannot be restored "
                "without its job's bucket and datasets)"
            )
        loaded = _load_entry(_STATUS, raw, where, problems)
        if loaded is None:
            continue
        edge = _illegal_edge(loaded["history"])
        if edge:
            problems.append(f"{where}.History{edge}")
            continue
        yield key, (_status(loaded), loaded["runs"])


def _check_jobs(
    entries: Iterable[tuple[str, Any]],
    has_status: Callable[[str], bool],
    problems: list[str],
    skipped: list[str],
) -> Iterator[tuple[str, Job]]:
    """Validate ``Jobs`` entries; yield the good ones with a status, note those without."""
    for key, raw in entries:
        where = _where("Jobs", key)
        loaded = _load_entry(_JOB, raw, where, problems)
        if not has_status(key):
            skipped.append(key)  # no status: not restorable, and Go drops it too
            continue
        if loaded is None:
            continue
        job = _job(loaded)
        try:
            mismatch = _mismatch(key, job)
        except ValueError:
            continue  # an invalid key, reported with its status
        if mismatch:
            problems.append(f"{where}: {mismatch}")
            continue
        yield key, job


def _check_records(records: Iterable[JobRecord], problems: list[str]) -> None:
    """Add what Firestore would refuse in each whole record's document to ``problems``."""
    for record in records:
        problems.extend(
            f"{_where('Statuses', record.key)}: the job's document: {p}"
            for p in record_problems(record)
        )


def _check_top(top: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    try:
        loaded: dict[str, Any] = SnapshotSchema().load(top)
        return loaded
    except ValidationError as exc:
        problems.extend(_problems(exc.messages, ""))
        return {}


def parse_snapshot(data: Any) -> Snapshot:
    """Validate decoded state-file JSON and return its jobs; :class:`SnapshotError` lists every problem."""
    if not isinstance(data, dict):
        raise SnapshotError([f"(file): expected a JSON object, got {type(data).__name__}"])
    problems: list[str] = []
    top = _check_top(data, problems)
    raw_statuses: dict[str, Any] = _mapping(data.get("Statuses"))
    raw_jobs: dict[str, Any] = _mapping(data.get("Jobs"))
    statuses = dict(_check_statuses(raw_statuses.items(), raw_jobs.__contains__, problems))
    skipped: list[str] = []
    jobs = dict(_check_jobs(raw_jobs.items(), raw_statuses.__contains__, problems, skipped))
    records = [
        _restored(jobs[key], status, runs)
        for key, (status, runs) in sorted(statuses.items())
        if key in jobs
    ]
    if not problems:  # only whole records: each problem above is reported once
        _check_records(records, problems)
    if problems:
        raise SnapshotError(problems)
    return Snapshot(records, top.get("save_time"), sorted(skipped))


def _illegal_edge(history: list[dict[str, Any]]) -> str | None:
    """Describe the first step of a loaded history the transition table does not allow.

    The one exception: any state may follow ``failed``. The Go tracker accepted
    every change, and its parsers kept updating a job after another task had
    failed it, so Go histories hold such steps; the job's state is its last entry.
    """
    for i in range(1, len(history)):
        before, after = history[i - 1]["state"], history[i]["state"]
        if before is State.FAILED:
            continue
        if after is before or not transitions.is_allowed(before, after):
            return (
                f"[{i}].State: {after.value} cannot follow {before.value} "
                "(see the transition table)"
            )
    return None


def record_problems(record: JobRecord) -> list[str]:
    """List what Firestore would refuse in the record's document (:func:`shared.limits.document_problems`).

    The document name is bounded by Firestore's longest collection id, as the
    collection is configurable.
    """
    name = limits.name_size("c" * limits.MAX_COLLECTION_ID_BYTES, doc_id(record.key))
    return limits.document_problems(to_document(record), name)


def _decode(content: str | bytes) -> Any:
    try:
        return json.loads(content)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise SnapshotError([f"(file): not valid JSON: {exc}"]) from None


def read_snapshot(content: str | bytes) -> Snapshot:
    """Validate a state file's text and return its jobs as records (a :class:`Snapshot` list).

    Each record's last update is the latest detail time of its history.
    Raises :class:`SnapshotError` listing every problem; see the module docstring.
    """
    return parse_snapshot(_decode(content))


def _split_gs(url: str) -> tuple[str, str]:
    bucket, _, name = url.removeprefix("gs://").partition("/")
    if not bucket or not name:
        raise ValueError(f"{url!r} is not gs://BUCKET/OBJECT")
    problem = bucket_problem(bucket)
    if problem:
        raise ValueError(f"{url!r} is not gs://BUCKET/OBJECT: the bucket name {problem}")
    return bucket, name


def _download(client: storage.Client, bucket: str, name: str, into: IO[bytes]) -> None:
    """Stream ``gs://bucket/name`` into the file ``into`` (from its start, truncating it)."""
    into.seek(0)
    into.truncate()
    try:
        with _gcs_errors(f"reading gs://{bucket}/{name}"):
            client.bucket(bucket).blob(name).download_to_file(
                into,
                retry=DEFAULT_RETRY.with_timeout(defaults.SNAPSHOT_GCS_DEADLINE),
                timeout=defaults.SNAPSHOT_GCS_DEADLINE,
            )
    except gexc.NotFound:
        raise FileNotFoundError(f"no such object gs://{bucket}/{name}") from None
    into.flush()
    into.seek(0)


#: Largest object read as a possible pointer (``latest.json``); a snapshot is larger.
POINTER_MAX = 64 * 1024


def _pointed_object(path: Path) -> str | None:
    """The snapshot a small pointer file names, or None if the file is not a pointer."""
    if path.stat().st_size > POINTER_MAX:
        return None
    try:
        data = json.loads(path.read_bytes())
    except ValueError:
        return None
    return data["object"] if _is_pointer(data) else None


def _is_pointer(data: Any) -> bool:
    return (
        isinstance(data, dict)
        and isinstance(data.get("object"), str)
        and "Statuses" not in data
        and "Jobs" not in data
    )


# --- streaming a state file ------------------------------------------------------------------

_STARTS, _ENDS = frozenset({"start_map", "start_array"}), frozenset({"end_map", "end_array"})
_JSON_TYPES = {
    "start_array": "list",
    "null": "NoneType",
    "boolean": "bool",
    "string": "str",
    "number": "float",
    "integer": "int",
    "double": "float",
}

_Events = Iterator[tuple[str, str, Any]]


def _value(event: str, value: Any, events: _Events) -> Any:
    """Build the JSON value that starts with ``event`` from the rest of ``events``."""
    if event not in _STARTS:
        return value
    builder = ijson.ObjectBuilder()
    builder.event(event, value)
    depth = 1
    for _, event, value in events:
        builder.event(event, value)
        depth += (event in _STARTS) - (event in _ENDS)
        if depth == 0:
            break
    return builder.value


def _skip(event: str, value: Any, events: _Events) -> Any:
    """Pass over the JSON value that starts with ``event``; return a stand-in of its type."""
    if event not in _STARTS:
        return value
    depth = 1
    for _, inner, _ in events:
        depth += (inner in _STARTS) - (inner in _ENDS)
        if depth == 0:
            break
    return {} if event == "start_map" else []


class _Overflow(Exception):
    """The JSON parser met an integer beyond its range."""


class SpooledSnapshot:
    """A state file validated in a streaming pass, its entries spooled to a temporary database.

    Iterating yields its jobs as records in key order, built one at a time,
    so memory stays bounded whatever the file's size (:func:`load_snapshot`).
    Use it as a context manager, or :meth:`close` it, to delete the spool.
    """

    _TABLES: ClassVar[dict[str, str]] = {"Statuses": "statuses", "Jobs": "jobs"}

    def __init__(self, stream: IO[bytes]) -> None:
        """Read ``stream`` (a state file) once and validate it; :class:`SnapshotError` lists every problem."""
        self._dir = tempfile.TemporaryDirectory(prefix="snapshot-")
        self._db = sqlite3.connect(os.path.join(self._dir.name, "entries.db"))
        try:
            for table in self._TABLES.values():
                self._db.execute(
                    f"CREATE TABLE {table} (key TEXT PRIMARY KEY, raw TEXT, ok INTEGER DEFAULT 0)"
                )
            self.save_time: datetime | None = None
            self.skipped: list[str] = []
            self._count = 0
            try:
                top = self._spool(stream, ijson)
            except _Overflow:  # the fast parser's integers stop at int64; the exact one's do not
                stream.seek(0)
                for table in self._TABLES.values():
                    self._db.execute(f"DELETE FROM {table}")
                top = self._spool(stream, ijson.get_backend("python"))
            self._validate(top)
        except BaseException:
            self.close()
            raise

    def _spool(self, stream: IO[bytes], parser: Any) -> dict[str, Any]:
        """Copy every ``Statuses`` and ``Jobs`` entry into the database; return the top level
        with stand-ins for the two maps (a later duplicate key wins, as in ``json.loads``).

        ``parser``: an ijson backend. :class:`_Overflow` if it cannot hold an integer."""
        events: _Events = iter(parser.parse(stream, use_float=True))
        top: dict[str, Any] = {}
        try:
            _, event, value = next(events)
            if event != "start_map":
                raise SnapshotError(
                    [f"(file): expected a JSON object, got {_JSON_TYPES.get(event, event)}"]
                )
            for _, event, name in events:
                if event == "end_map":
                    break
                _, event, value = next(events)
                table = self._TABLES.get(name)
                if table is not None and event == "start_map":
                    top[name] = {}
                    self._spool_map(table, events)
                elif name == "SaveTime":
                    top[name] = _value(event, value, events)
                else:
                    top[name] = _skip(event, value, events)
            for _ in events:  # anything after the object is an error of the parser's
                pass
        except StopIteration:
            raise SnapshotError(["(file): not valid JSON: incomplete"]) from None
        except (ijson.JSONError, ValueError) as exc:
            if isinstance(exc, SnapshotError):
                raise
            if "integer overflow" in str(exc):
                raise _Overflow from exc
            raise SnapshotError([f"(file): not valid JSON: {exc}"]) from None
        self._db.commit()
        return top

    def _spool_map(self, table: str, events: _Events) -> None:
        upsert = (
            f"INSERT INTO {table} (key, raw) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET raw = excluded.raw"
        )
        for _, event, key in events:
            if event == "end_map":
                return
            _, event, value = next(events)
            self._db.execute(upsert, (key, json.dumps(_value(event, value, events))))

    def _entries(self, table: str) -> Iterator[tuple[str, Any]]:
        for key, raw in self._db.execute(f"SELECT key, raw FROM {table} ORDER BY rowid"):
            yield key, json.loads(raw)

    def _has(self, table: str) -> Callable[[str], bool]:
        def has(key: str) -> bool:
            return (
                self._db.execute(f"SELECT 1 FROM {table} WHERE key = ?", (key,)).fetchone()
                is not None
            )

        return has

    def _mark(self, table: str, keys: Iterable[tuple[str, object]]) -> None:
        self._db.executemany(
            f"UPDATE {table} SET ok = 1 WHERE key = ?", ((key,) for key, _ in keys)
        )

    def _validate(self, top: dict[str, Any]) -> None:
        """Every check of :func:`parse_snapshot`, entry by entry, from the database."""
        problems: list[str] = []
        checked = _check_top(top, problems)
        self._mark(
            "statuses", _check_statuses(self._entries("statuses"), self._has("jobs"), problems)
        )
        skipped: list[str] = []
        self._mark(
            "jobs", _check_jobs(self._entries("jobs"), self._has("statuses"), problems, skipped)
        )
        self._db.commit()
        if not problems:  # only whole records: each problem above is reported once
            _check_records(self, problems)
        if problems:
            raise SnapshotError(problems)
        self.save_time = checked.get("save_time")
        self.skipped = sorted(skipped)
        self._count = self._db.execute(
            "SELECT count(*) FROM statuses JOIN jobs USING (key) WHERE statuses.ok AND jobs.ok"
        ).fetchone()[0]

    def __iter__(self) -> Iterator[JobRecord]:
        """The snapshot's jobs as records, in key order, one at a time."""
        rows = self._db.execute(
            "SELECT key, statuses.raw, jobs.raw FROM statuses JOIN jobs "
            "USING (key) WHERE statuses.ok AND jobs.ok ORDER BY key"
        )
        for _key, status_raw, job_raw in rows:
            loaded = _STATUS.load(json.loads(status_raw))
            yield _restored(_job(_JOB.load(json.loads(job_raw))), _status(loaded), loaded["runs"])

    def __len__(self) -> int:
        """The number of jobs (records) in the snapshot."""
        return self._count

    def close(self) -> None:
        """Delete the spool."""
        self._db.close()
        self._dir.cleanup()

    def __enter__(self) -> SpooledSnapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load_snapshot(source: str, storage_client: storage.Client | None = None) -> SpooledSnapshot:
    """Read and validate a state file from a local path or ``gs://BUCKET/OBJECT``, streaming.

    A ``gs://`` object is downloaded to a temporary file first; a pointer
    object (``latest.json``) is followed to the snapshot it names. The file is
    read once, its entries spooled to a temporary database, then validated
    entry by entry: memory stays bounded whatever its size. Raises
    :class:`SnapshotError` for a malformed file, :class:`FileNotFoundError`
    if there is none, :class:`SnapshotUnavailable` if GCS does not answer.
    Close the result (or use it in a ``with``) to delete its spool.
    """
    if not source.startswith("gs://"):
        with open(source, "rb") as stream:
            return SpooledSnapshot(stream)
    bucket, name = _split_gs(source)
    client = storage_client or storage.Client()
    with tempfile.TemporaryDirectory(prefix="snapshot-") as tmp:
        path = Path(tmp) / "object.json"
        with open(path, "w+b") as stream:
            _download(client, bucket, name, stream)
            pointed = _pointed_object(path)
            if pointed is not None:
                _download(client, bucket, pointed, stream)
            return SpooledSnapshot(stream)


def import_snapshot(store: JobStore, records: Iterable[JobRecord]) -> ImportResult:
    """Create the records' jobs that Firestore does not have yet; leave existing ones untouched.

    Importing the same records again creates nothing. ``records`` usually is a
    :class:`Snapshot` or a :class:`SpooledSnapshot` (read one at a time), whose
    skipped keys are passed on in the result. ValueError if two records of a
    list share a key (a spooled snapshot's keys are distinct). Records go in
    batches of :data:`~shared.store.MAX_BATCH`, each written whole or not at
    all; if Firestore fails mid-way, :class:`ImportInterrupted` says which jobs
    were created and which not, and importing again finishes the job.
    """
    if not isinstance(records, SpooledSnapshot):
        records = list(records)
        if len({r.key for r in records}) != len(records):
            raise ValueError("records to import must have distinct keys")
    keys: list[str] = []
    created: list[str] = []
    batch: list[JobRecord] = []
    it = iter(records)
    try:
        for record in it:
            batch.append(record)
            if len(batch) == MAX_BATCH:
                created.extend(store.create_missing(batch))
                keys.extend(r.key for r in batch)
                batch = []
        if batch:
            created.extend(store.create_missing(batch))
            keys.extend(r.key for r in batch)
    except Exception as exc:
        made = set(created)
        raise ImportInterrupted(
            created=created,
            already_present=[k for k in keys if k not in made],
            not_written=[r.key for r in batch] + [r.key for r in it],
            cause=exc,
        ) from exc
    skipped = list(getattr(records, "skipped", []))
    return ImportResult(
        total=len(keys),
        created=len(created),
        already_present=len(keys) - len(created),
        skipped=skipped,
    )


# --- writing ---------------------------------------------------------------------------------


class _NameTaken(Exception):
    """The create-only upload found an object of that name."""


@contextlib.contextmanager
def _gcs_errors(what: str) -> Iterator[None]:
    """Turn transient GCS errors into :class:`SnapshotUnavailable`, raw upload errors into API errors."""
    try:
        yield
    except InvalidResponse as exc:  # raised raw by the streaming uploader
        response = exc.response
        status = getattr(response, "status_code", 500)
        converted = gexc.from_http_status(status, f"{what}: {exc}", response=response)
        if isinstance(converted, TRANSIENT):
            raise SnapshotUnavailable(f"GCS unavailable {what}: {exc}") from exc
        raise converted from exc
    except TRANSIENT as exc:
        raise SnapshotUnavailable(f"GCS unavailable {what}: {exc}") from exc


def snapshot_name(prefix: str, now: datetime, tag: str) -> str:
    """Return the object name of a snapshot saved at ``now``.

    ``<prefix>YYYY-MM-DDTHH-MM-SS.ffffffZ_<tag>.json``: names sort by time, and
    the random ``tag`` keeps two exports at the same instant apart.
    """
    now = now.astimezone(UTC)
    return f"{prefix}{now.year:04d}-{now:%m-%dT%H-%M-%S}.{now.microsecond:06d}Z_{tag}.json"


def _normal_prefix(prefix: str) -> str:
    return prefix if not prefix or prefix.endswith("/") else prefix + "/"


def _is_precondition_failure(exc: BaseException) -> bool:
    if isinstance(exc, gexc.PreconditionFailed):
        return True
    return isinstance(exc, InvalidResponse) and getattr(exc.response, "status_code", 0) == 412


def _upload(
    store: JobStore, blob: storage.Blob, save_time: str, retry: Any = DEFAULT_RETRY
) -> tuple[int, int]:
    """Stream every job into ``blob`` (create-only); return (jobs, bytes). No object on failure.

    Raises :class:`_NameTaken` if the object exists after all.
    """
    count = 0
    with tempfile.SpooledTemporaryFile(max_size=defaults.SNAPSHOT_SPOOL_MAX, mode="w+b") as spool:
        writer: IO[bytes] = blob.open(
            "wb",
            chunk_size=defaults.SNAPSHOT_UPLOAD_CHUNK,
            if_generation_match=0,
            content_type="application/json",
            retry=retry,
        )
        try:
            writer.write(b'{"SaveTime":' + json.dumps(save_time).encode() + b',"Statuses":{')
            for record in store.stream_all():
                key = _dumps(record.key)
                sep = "," if count else ""
                status = _GO_STATUS.dump(record.status)
                if record.runs:
                    status["Runs"] = _RUNS.dump(record.runs)
                writer.write(f"{sep}{key}:{_dumps(status)}".encode())
                spool.write(f"{sep}{key}:{_dumps(_JOB.dump(record.job))}".encode())
                count += 1
            writer.write(b'},"Jobs":{')
            spool.seek(0)
            shutil.copyfileobj(spool, writer, 1024 * 1024)
            writer.write(b"}}")
            size = writer.tell()
            writer.close()  # uploads the rest and creates the object
        except BaseException as exc:
            with contextlib.suppress(Exception):
                writer.terminate()  # type: ignore[attr-defined]  # cancel: no partial object
            if _is_precondition_failure(exc):
                raise _NameTaken(blob.name) from exc
            raise
    return count, size


def _name_time(name: str) -> datetime | None:
    """The time a snapshot object name (without its prefix) carries, or None if it is not one."""
    if not _SNAPSHOT_RE.match(name):
        return None
    try:
        return datetime.strptime(name[:26], "%Y-%m-%dT%H-%M-%S.%f").replace(tzinfo=UTC)
    except ValueError:
        return None


def _ahead(name: str, now: datetime) -> bool:
    """Whether snapshot ``name`` (without prefix) is named more than the clock skew after ``now``.

    Such a snapshot was written by a clock far ahead; it must not pin the
    pointer nor outlive the real ones when pruning.
    """
    when = _name_time(name)
    return when is not None and when > now + limits.MAX_CLOCK_SKEW


def _write_pointer(
    bucket: storage.Bucket,
    pointer: str,
    name: str,
    body: bytes,
    now: datetime,
    retry: Any = DEFAULT_RETRY,
) -> bool:
    """Point ``pointer`` at ``name`` unless it names a later snapshot; return whether it was written.

    A later snapshot named more than :data:`~shared.limits.MAX_CLOCK_SKEW` after ``now``
    does not count: the pointer moves back from it.
    """
    prefix = pointer[: -len(POINTER_NAME)]
    for _ in range(3):
        current = bucket.get_blob(pointer, retry=retry)
        generation = 0
        if current is not None:
            generation = current.generation
            try:
                named = json.loads(current.download_as_bytes(retry=retry)).get("object")
            except (ValueError, AttributeError, gexc.NotFound):
                named = None
            if (
                isinstance(named, str)
                and named.startswith(prefix)
                and _SNAPSHOT_RE.match(named[len(prefix) :])
                and named > name
                and not _ahead(named[len(prefix) :], now)
            ):
                return False
        try:
            bucket.blob(pointer).upload_from_string(
                body,
                content_type="application/json",
                if_generation_match=generation,
                retry=retry,
            )
            return True
        except gexc.PreconditionFailed:
            continue  # another export moved it meanwhile: look again
    raise SnapshotUnavailable(f"gs://{bucket.name}/{pointer} keeps changing; try again")


def _prune(
    bucket: storage.Bucket,
    prefix: str,
    keep: int,
    mine: str,
    now: datetime,
    retry: Any = DEFAULT_RETRY,
) -> list[str]:
    """Delete all but the newest ``keep`` snapshots under ``prefix`` (never ``mine``).

    Snapshots named more than the clock skew after ``now`` count as the oldest.
    """
    blobs = {
        b.name: b
        for b in bucket.list_blobs(prefix=prefix, delimiter="/", retry=retry)
        if _SNAPSHOT_RE.match(b.name[len(prefix) :])
    }
    names = sorted(blobs, key=lambda n: (not _ahead(n[len(prefix) :], now), n))
    deleted = []
    for name in names[: max(0, len(names) - keep)]:
        if name == mine:
            continue
        try:
            blobs[name].delete(if_generation_match=blobs[name].generation, retry=retry)
            deleted.append(name)
        except (gexc.NotFound, gexc.PreconditionFailed):
            pass  # gone or replaced meanwhile (another export pruning)
    return deleted


def write_snapshot(
    store: JobStore,
    bucket: storage.Bucket,
    now: datetime,
    prefix: str = defaults.SNAPSHOT_PREFIX,
    keep: int = defaults.SNAPSHOT_KEEP,
    deadline: float = defaults.SNAPSHOT_GCS_DEADLINE,
) -> SnapshotResult:
    """Export every job to a new object under ``prefix``, point ``latest.json`` at it, prune old ones.

    Reads ``store.stream_all()`` once; memory stays bounded. The object name
    carries the time and a random tag, and is created only if free (a
    create-only precondition). ``prefix`` gets a trailing ``/`` if it lacks one;
    ``keep`` (at least 1) snapshots remain. Transient GCS errors raise
    :class:`SnapshotUnavailable`, Firestore ones ``StoreUnavailable``; a failed
    export leaves no snapshot object behind. Each GCS request is retried for
    at most ``deadline`` seconds.
    """
    if keep < 1:
        raise ValueError("keep must be at least 1")
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    prefix = _normal_prefix(prefix)
    name = snapshot_name(prefix, now, secrets.token_hex(4))
    save_time = format_time(now)
    where = f"writing a snapshot to gs://{bucket.name}/{prefix}"
    retry = DEFAULT_RETRY.with_timeout(deadline)
    with _gcs_errors(where):
        try:
            jobs, size = _upload(store, bucket.blob(name), save_time, retry)
        except _NameTaken:
            raise SnapshotUnavailable(f"{where}: {name} exists; try again later") from None
        pointer = prefix + POINTER_NAME
        body = json.dumps({"object": name, "SaveTime": save_time, "jobs": jobs}).encode()
        updated = _write_pointer(bucket, pointer, name, body, now, retry)
        deleted = _prune(bucket, prefix, keep, name, now, retry)
    return SnapshotResult(
        bucket=bucket.name,
        object=name,
        jobs=jobs,
        bytes=size,
        save_time=save_time,
        latest=pointer,
        latest_updated=updated,
        deleted=deleted,
    )
