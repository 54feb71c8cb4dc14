"""The job document: its id, and the mapping between it and a :class:`~shared.model.JobRecord`.

One document per job. The document id is the job key with ``%`` and ``/``
percent-encoded, so it is reversible and never contains ``/``. Beside the
Go-shaped status the document keeps the fields queries need: ``state``,
``experiment``, ``datatype``, ``date``, ``start_time``, ``last_update`` and
``last_activity`` (the later of the last heartbeat and the last update). The
history is a map from entry index (``"0"``, ``"1"``, …) to entry, not an
array, keyed by absolute entry index (entries dropped from a long history,
``history_dropped`` of them, leave gaps after ``"0"``). Every run of a job has
a token, ``run``; the parsers' hot path writes only under ``live.{run}``
(:func:`live_fields`), or, when the job document was written less than a
second before, to one of the run's progress shards (:func:`shard_fields`, in
the job's ``progress`` subcollection); :func:`from_document` folds the current
run's live values, and the shards when given, into the record; writes of an
old run or for an old entry are ignored. Pure: nothing here talks to Firestore.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote

from google.cloud.firestore_v1.field_path import FieldPath

from shared.model import (
    FREE,
    UTC,
    ZERO_TIME,
    AuditEntry,
    Datasets,
    Job,
    JobRecord,
    RunSummary,
    State,
    StateInfo,
    Status,
    midnight,
)


def doc_id(key: str) -> str:
    """Return the Firestore document id of a job key (reversible percent-encoding)."""
    return quote(key, safe="")


def key_from_doc_id(document_id: str) -> str:
    """Return the job key a document id encodes."""
    return unquote(document_id)


#: The ``live`` key of a job without a run token (never a token: tokens are [0-9a-z]).
NO_RUN = "-"


def live_fields(run: str, index: int, detail: str | None, now: datetime) -> dict[str, Any]:
    """Return the field paths of one hot-path update, as :func:`from_document` reads them.

    Under ``live.{run}``: ``updates`` (to be incremented by the caller) and the
    detail time and detail (kept when None) of history entry ``index``, under
    ``entries.{index}``. A state change folds them into the document and drops them.
    """
    slot = run or NO_RUN

    def path(*names: str) -> str:
        return FieldPath("live", slot, *names).to_api_repr()

    fields: dict[str, Any] = {path("entries", str(index), "detail_time"): now}
    if detail is not None:
        fields[path("entries", str(index), "detail")] = detail
    return fields


def live_updates_path(run: str) -> str:
    """Return the field path of the count of hot-path updates of ``run``."""
    return FieldPath("live", run or NO_RUN, "updates").to_api_repr()


def live_sum_fields(run: str, total: int, now: datetime) -> dict[str, Any]:
    """Return the field paths that record ``total``, a sum of ``run``'s shard updates read at ``now``.

    The sum only grows within a run (shards are never decremented), so the
    caller writes it with a ``Maximum`` transform: a late, smaller sum never
    replaces a larger one.
    """
    return {
        FieldPath("live", run or NO_RUN, "sharded").to_api_repr(): total,
        FieldPath("live", run or NO_RUN, "summed_at").to_api_repr(): now,
    }


def shard_id(run: str, shard: int) -> str:
    """Return the document id of progress shard ``shard`` of run ``run``."""
    return f"{run or NO_RUN}-{shard}"


def shard_fields(run: str, index: int | None, detail: str | None, now: datetime) -> dict[str, Any]:
    """Return the fields of one hot-path write to a progress shard (merged, not replacing).

    An update (``index`` given) sets history entry ``index``'s detail time
    and detail (kept when None) and ``last_update``; the caller adds the
    ``updates`` increment. A heartbeat (``index`` None) sets
    ``heartbeat_time``.
    """
    fields: dict[str, Any] = {"run": run}
    if index is None:
        fields["heartbeat_time"] = now
        return fields
    entry: dict[str, Any] = {"detail_time": now}
    if detail is not None:
        entry["detail"] = detail
    fields["entries"] = {str(index): entry}
    fields["last_update"] = now
    return fields


def _entry_to_doc(info: StateInfo) -> dict[str, Any]:
    return {
        "state": info.state.value,
        "start": info.start,
        "detail_time": info.detail_time,
        "detail": info.detail,
    }


def _entry_from_doc(e: dict[str, Any]) -> StateInfo:
    return StateInfo(State(e["state"]), e["start"], e["detail_time"], e.get("detail", ""))


def _run_to_doc(run: RunSummary) -> dict[str, Any]:
    return {
        "run": run.run,
        "attempt": run.attempt,
        "offer": run.offer,
        "started": run.started,
        "ended": run.ended,
        "state": run.state.value,
        "error": run.error,
        "history": [_entry_to_doc(e) for e in run.history],
        "dropped": run.dropped,
        "updates": run.updates,
    }


def _run_from_doc(data: dict[str, Any]) -> RunSummary:
    return RunSummary(
        run=data.get("run", ""),
        attempt=data.get("attempt", 1),
        offer=data.get("offer", ""),
        started=data["started"],
        ended=data["ended"],
        state=State(data["state"]),
        error=data.get("error", ""),
        history=tuple(_entry_from_doc(e) for e in data.get("history") or () if "state" in e),
        dropped=data.get("dropped", 0),
        updates=data.get("updates", 0),
    )


def to_document(record: JobRecord) -> dict[str, Any]:
    """Return the Firestore document of a record."""
    job, status = record.job, record.status
    hb = status.heartbeat_time
    return {
        "key": job.key(),
        "bucket": job.bucket,
        "experiment": job.experiment,
        "datatype": job.datatype,
        "date": midnight(job.date),
        "filter": job.filter,
        "datasets": {"tmp": job.datasets.tmp, "raw": job.datasets.raw, "join": job.datasets.join},
        "state": status.state.value,
        "run": record.run,
        "history": {
            str(status.index_of(i)): _entry_to_doc(e) for i, e in enumerate(status.history)
        },
        "history_dropped": status.dropped,
        "live": {},
        "progress_folded": record.progress_folded,
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
        "audit": [
            {"time": a.time, "who": a.who, "action": a.action, "detail": a.detail}
            for a in record.audit
        ],
        "runs": [_run_to_doc(r) for r in record.runs],
    }


def streamed_fields(data: dict[str, Any] | None) -> dict[str, Any]:
    """Return the fields of a document that a query streamed (``snapshot.to_dict()``).

    A query yields only documents that exist, whose ``to_dict()`` is never None.
    """
    assert data is not None, "a query streamed a missing document"
    return data


def _plain(value: Any) -> Any:
    """Return ``value`` with every datetime a plain one (microseconds), maps and lists walked.

    The client reads times as ``DatetimeWithNanoseconds``, which it cannot write back
    for the last second of year 9999 (it rounds that to year 10000 and Firestore
    refuses the write); a plain datetime it writes correctly.
    """
    if isinstance(value, datetime):
        return datetime(
            value.year,
            value.month,
            value.day,
            value.hour,
            value.minute,
            value.second,
            value.microsecond,
            tzinfo=value.tzinfo,
        )
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


#: Detail of the entry that stands in for a stored history with no entries.
NO_HISTORY = "no history in the stored document"


def _stand_in_entry(data: dict[str, Any]) -> StateInfo:
    """The entry read for a document whose history has none: its ``state``, since its start."""
    when = data.get("start_time") or data["last_update"]
    try:
        state = State(data.get("state"))
    except ValueError:
        state = State.INIT
    return StateInfo(state, when, when, NO_HISTORY)


def from_document(
    data: dict[str, Any],
    update_time: datetime | None = None,
    shards: list[dict[str, Any]] | None = None,
) -> JobRecord:
    """Return the record a Firestore document holds, the current run's live values folded in.

    ``shards``: the current run's progress shard documents, when read. With
    them the record is exact: their updates beyond ``progress_folded`` add to
    the update count, and their latest detail, update and heartbeat times
    count. Without them the document's last sum of the shards
    (``live.{run}.sharded``) stands in, which lags (docs/design.md, "How a job is
    stored").

    History entries without a state are ignored; a history left with no
    entry reads as one entry in the document's ``state`` (detail
    :data:`NO_HISTORY`), so every status has a current state. The live detail
    of the current run applies to the current entry when it was written for
    that entry and is not older; its update count adds to ``update_count``.
    Live values of other runs or entries are ignored (the next state change,
    which writes the document whole, drops them). Times come back as plain
    datetimes (see :func:`_plain`).
    """
    data = _plain(data)
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
    history = [_entry_from_doc(e) for _, e in entries] or [_stand_in_entry(data)]
    run = data.get("run", "")
    live = (data.get("live") or {}).get(run or NO_RUN) or {}
    folded = data.get("progress_folded") or 0
    heartbeat = data.get("heartbeat_time") or ZERO_TIME
    last_update = data["last_update"]
    slots = [live]
    if shards is None:
        sharded = max(0, live.get("sharded", 0) - folded)
    else:
        shards = [_plain(s) for s in shards]
        total = sum(s.get("updates", 0) for s in shards)
        sharded, folded = total - folded, total
        for shard in shards:
            heartbeat = max(heartbeat, shard.get("heartbeat_time") or ZERO_TIME)
            last_update = max(last_update, shard.get("last_update") or last_update)
        slots += shards
    status = Status(
        history=history,
        heartbeat_time=heartbeat,
        update_count=data.get("update_count", 0) + live.get("updates", 0) + sharded,
        dropped=data.get("history_dropped", 0),
    )
    # The latest write for the current entry sets the detail time; the latest that has a
    # text (a write of "-" has none) sets the detail.
    current = status.last_state_info
    when, text, text_time = current.detail_time, current.detail, current.detail_time
    for slot in slots:
        entry = (slot.get("entries") or {}).get(str(status.current_index)) or {}
        if "detail_time" not in entry or entry["detail_time"] < current.detail_time:
            continue
        when = max(when, entry["detail_time"])
        if "detail" in entry and entry["detail_time"] >= text_time:
            text, text_time = entry["detail"], entry["detail_time"]
    if when != current.detail_time or text != current.detail:
        status.history[-1] = StateInfo(current.state, current.start, when, text)
    return JobRecord(
        job,
        status,
        last_update,
        update_time,
        offer=data.get("offer", ""),
        reoffer=data.get("reoffer", ""),
        attempts=data.get("attempts", 1),
        last_error=data.get("last_error", ""),
        retry_at=data.get("retry_at"),
        lease_owner=data.get("lease_owner", ""),
        lease_until=data.get("lease_until") or FREE,
        step_job=data.get("step_job", ""),
        step_attempt=data.get("step_attempt", 0),
        audit=[
            AuditEntry(a["time"], a["who"], a["action"], a.get("detail", ""))
            for a in data.get("audit") or ()
        ],
        run=run,
        progress_folded=folded,
        progress_summed_at=live.get("summed_at"),
        runs=[_run_from_doc(r) for r in data.get("runs") or ()],
    )
