"""Unit tests of runs (the handed-out ID), the bounded history and the job document's live values."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from shared.model import (
    HISTORY_FULL_DETAILS,
    HISTORY_KEEP,
    OLD_DETAIL_LENGTH,
    UTC,
    Job,
    JobRecord,
    RunId,
    State,
    StateInfo,
    Status,
    new_run,
)
from shared.store.documents import (
    from_document,
    live_fields,
    live_sum_fields,
    shard_fields,
    to_document,
)

JOB = Job("archive-bucket", "ndt", "ndt7", date(2019, 1, 2))
KEY = JOB.key()
T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# --- RunId -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key", "run"),
    [
        pytest.param(KEY, KEY, None, id="bare key"),
        pytest.param(KEY + "~0a1b2c3d", KEY, "0a1b2c3d", id="key and run"),
        pytest.param(KEY + "~" + "z" * 32, KEY, "z" * 32, id="longest run"),
    ],
)
def test_run_id_round_trips(text: str, key: str, run: str | None) -> None:
    parsed = RunId.parse(text)
    assert (parsed.key, parsed.run) == (key, run) and str(parsed) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(KEY + "~", "malformed run ''", id="empty run"),
        pytest.param(KEY + "~0A1B", "malformed run '0A1B'", id="upper case"),
        pytest.param(KEY + "~" + "a" * 33, "1 to 32 characters", id="too long"),
        pytest.param(KEY + "~a-b", "malformed run 'a-b'", id="punctuation"),
        pytest.param("bucket/x~1/y/20190102", "malformed job id", id="separator inside the key"),
    ],
)
def test_run_id_rejects_what_next_never_hands_out(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        RunId.parse(text)


def test_new_runs_are_8_hex_characters_and_differ() -> None:
    runs = {new_run() for _ in range(100)}
    assert len(runs) == 100 and all(re.fullmatch(r"[0-9a-f]{8}", r) for r in runs)


def test_the_id_of_a_job_without_a_run_is_its_key() -> None:
    assert str(RunId.of(KEY, "")) == KEY and str(RunId.of(KEY, "ab12")) == KEY + "~ab12"


# --- The bounded history ---------------------------------------------------------


def bounced(times: int, detail: str = "") -> Status:
    status = Status.new(T0)
    for n in range(times):
        status.set_detail(detail, at(n))
        status.new_state(State.PARSING if n % 2 == 0 else State.PARSE_ERROR, at(n))
    return status


@pytest.mark.parametrize(
    ("changes", "kept", "dropped"),
    [
        pytest.param(HISTORY_KEEP, 1 + HISTORY_KEEP, 0, id="exactly full"),
        pytest.param(HISTORY_KEEP + 1, 1 + HISTORY_KEEP, 1, id="one over"),
        pytest.param(1200, 1 + HISTORY_KEEP, 1200 - HISTORY_KEEP, id="far over"),
    ],
)
def test_the_history_keeps_the_first_entry_and_the_latest(
    changes: int, kept: int, dropped: int
) -> None:
    status = bounced(changes)
    assert len(status.history) == kept and status.dropped == dropped
    assert status.history[0].state is State.INIT
    assert status.current_index == changes
    assert status.history[-1].start == at(changes - 1)
    assert status.index_of(0) == 0 and status.index_of(1) == dropped + 1


def test_old_details_are_cut_and_recent_ones_kept_whole() -> None:
    status = bounced(300, "d" * 4000)
    lengths = [len(e.detail) for e in status.history]
    assert lengths[0] == 4000
    assert lengths[1:-HISTORY_FULL_DETAILS] == [OLD_DETAIL_LENGTH] * (
        HISTORY_KEEP - HISTORY_FULL_DETAILS
    )
    assert lengths[-HISTORY_FULL_DETAILS:-1] == [4000] * (HISTORY_FULL_DETAILS - 1)
    assert status.history[1].detail.endswith("…")


def test_a_new_state_cuts_every_old_detail_not_only_the_latest_aged_one() -> None:
    entries = [
        StateInfo(State.PARSING if n % 2 else State.PARSE_ERROR, at(n), at(n), "d" * 4000)
        for n in range(1, 30)
    ]
    status = Status([StateInfo(State.INIT, T0, T0, "first"), *entries])
    status.new_state(State.FAILED, at(40))
    lengths = [len(e.detail) for e in status.history]
    assert lengths[1:-HISTORY_FULL_DETAILS] == [OLD_DETAIL_LENGTH] * (
        len(status.history) - 1 - HISTORY_FULL_DETAILS
    )
    assert lengths[-HISTORY_FULL_DETAILS:-1] == [4000] * (HISTORY_FULL_DETAILS - 1)


@pytest.mark.parametrize(
    ("entries", "dropped"),
    [
        pytest.param(1 + HISTORY_KEEP, 0, id="exactly full"),
        pytest.param(2 + HISTORY_KEEP, 1, id="one over"),
        pytest.param(3000, 3000 - 1 - HISTORY_KEEP, id="a long Go history"),
    ],
)
def test_bounding_a_given_history_keeps_the_first_and_the_latest(
    entries: int, dropped: int
) -> None:
    history = [StateInfo(State.INIT, T0, T0, "i" * 500)] + [
        StateInfo(State.PARSING if n % 2 else State.PARSE_ERROR, at(n), at(n), f"{n:05d}" * 100)
        for n in range(1, entries)
    ]
    status = Status(list(history))
    status.bound_history()
    assert status.dropped == dropped and len(status.history) == min(entries, 1 + HISTORY_KEEP)
    assert status.history[0] == history[0]  # the first entry whole
    assert status.history[-HISTORY_FULL_DETAILS:] == history[-HISTORY_FULL_DETAILS:]
    for kept, given in zip(
        status.history[1:-HISTORY_FULL_DETAILS],
        history[dropped + 1 : -HISTORY_FULL_DETAILS],
        strict=True,
    ):
        assert kept.detail == given.detail[: OLD_DETAIL_LENGTH - 1] + "…"
        assert (kept.state, kept.start) == (given.state, given.start)
    status.bound_history()
    assert status.dropped == dropped  # bounding again changes nothing


# --- The document: absolute indexes and live values ---------------------------------


def stored(record: JobRecord, **changes: Any) -> dict[str, Any]:
    """The record's document with field-path ``changes`` applied, as Firestore would."""
    doc = to_document(record)
    for path, value in changes.items():
        node = doc
        *parents, leaf = [p.strip("`") for p in path.split(".")]
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = value
    return doc


def parsing_record(run: str = "0a1b2c3d") -> JobRecord:
    record = JobRecord.new(JOB, T0)
    record.run = run
    record.status.set_detail("starting", at(1))
    record.status.new_state(State.PARSING, at(1))
    record.status.update_count = 1
    return record


def with_live(
    record: JobRecord, run: str, index: int, detail: str | None, when: datetime, updates: int = 1
) -> dict[str, Any]:
    return stored(
        record, **live_fields(run, index, detail, when), **{f"live.{run or '-'}.updates": updates}
    )


def test_a_bounced_history_round_trips_with_absolute_indexes() -> None:
    record = JobRecord(JOB, bounced(250, "x"), T0, run="0a1b2c3d")
    doc = to_document(record)
    assert doc["history_dropped"] == 250 - HISTORY_KEEP
    assert sorted(map(int, doc["history"]))[:2] == [0, 250 - HISTORY_KEEP + 1]
    assert max(map(int, doc["history"])) == 250
    back = from_document(doc)
    assert (
        back.status.history == record.status.history
        and back.status.dropped == record.status.dropped
    )


# (name, live write: run, entry index, detail, time; expected current detail, update count)
LIVE = [
    ("the current run and entry", "0a1b2c3d", 1, "a.tgz", at(5), "a.tgz", 2),
    ("a touch keeps the text", "0a1b2c3d", 1, None, at(5), "", 2),
    ("an entry already left", "0a1b2c3d", 0, "late.tgz", at(5), "", 2),
    ("an old run", "ffff0000", 1, "old.tgz", at(5), "", 1),
    ("older than the entry's own detail", "0a1b2c3d", 1, "stale.tgz", at(0), "", 2),
]


@pytest.mark.parametrize(
    ("name", "run", "index", "detail", "when", "shown", "count"), LIVE, ids=[c[0] for c in LIVE]
)
def test_readers_fold_in_only_the_current_run_and_entry(
    name: str, run: str, index: int, detail: str | None, when: datetime, shown: str, count: int
) -> None:
    record = parsing_record()
    back = from_document(with_live(record, run, index, detail, when))
    assert back.status.history[-1].detail == shown
    assert back.status.history[0].detail == "starting"
    assert back.status.update_count == count
    if shown and detail is not None:
        assert back.status.detail_time == when


def test_a_job_without_a_run_uses_its_own_live_slot() -> None:
    record = parsing_record(run="")
    back = from_document(with_live(record, "", 1, "a.tgz", at(5)))
    assert back.run == "" and back.status.detail == "a.tgz" and back.status.update_count == 2


def test_a_written_document_has_no_live_values() -> None:
    record = parsing_record()
    folded = from_document(with_live(record, record.run, 1, "a.tgz", at(5), updates=3))
    doc = to_document(folded)
    assert doc["live"] == {} and doc["update_count"] == 4
    assert doc["history"]["1"]["detail"] == "a.tgz"


# --- Progress shards: folded by state changes and single-job views, summed for lists ---------


def shard(
    run: str, index: int | None, detail: str | None, when: datetime, updates: int
) -> dict[str, Any]:
    """A progress shard as Firestore holds it after ``updates`` increments and this last write."""
    return {**shard_fields(run, index, detail, when), "updates": updates}


def test_shards_read_add_their_updates_and_the_latest_detail_and_heartbeat() -> None:
    record = parsing_record()
    doc = with_live(record, record.run, 1, "doc.tgz", at(5), updates=2)
    shards = [
        shard(record.run, 1, "older.tgz", at(4), 3),
        shard(record.run, 1, "newest.tgz", at(7), 4),
        shard(record.run, None, None, at(9), 0),
    ]
    back = from_document(doc, shards=shards)
    assert back.status.update_count == 1 + 2 + 7
    assert back.status.detail == "newest.tgz" and back.status.detail_time == at(7)
    assert back.status.heartbeat_time == at(9) and back.last_update == at(7)
    assert back.last_activity == at(9)
    assert back.progress_folded == 7


def test_a_state_change_folds_shards_once_and_later_shard_updates_count_once() -> None:
    record = parsing_record()
    folded = from_document(to_document(record), shards=[shard(record.run, 1, "a.tgz", at(5), 5)])
    doc = to_document(folded)  # what the transaction writes
    assert doc["update_count"] == 6 and doc["progress_folded"] == 5
    again = from_document(doc, shards=[shard(record.run, 1, "b.tgz", at(6), 7)])
    assert again.status.update_count == 8
    assert from_document(doc).status.update_count == 6  # the document alone


def test_lists_use_the_recorded_sum_beyond_what_was_folded() -> None:
    record = parsing_record()
    record.progress_folded = 5
    late_sum = stored(record, **live_sum_fields(record.run, 4, at(5)))  # summed before the fold
    assert from_document(late_sum).status.update_count == 1
    newer_sum = stored(record, **live_sum_fields(record.run, 9, at(6)))
    assert from_document(newer_sum).status.update_count == 1 + 4
    assert from_document(newer_sum).progress_summed_at == at(6)


def test_a_kept_text_in_one_shard_touches_the_time_of_a_text_in_another() -> None:
    record = parsing_record()
    shards = [shard(record.run, 1, "file-1", at(5), 1), shard(record.run, 1, None, at(6), 1)]
    back = from_document(to_document(record), shards=shards)
    assert back.status.detail == "file-1" and back.status.detail_time == at(6)
