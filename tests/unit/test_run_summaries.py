"""The earlier runs kept on a job: their bounds (runs, history, details, error), order, the job
document and the snapshot's ``Runs``, and the worst case of a document against Firestore's limit."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from marshmallow import ValidationError

from shared import defaults
from shared.limits import MAX_DOCUMENT_BYTES, MAX_TEXT_BYTES, document_size, value_size
from shared.model import (
    AUDIT_KEEP,
    HISTORY_KEEP,
    OLD_DETAIL_LENGTH,
    UTC,
    AuditEntry,
    Job,
    JobRecord,
    RunSummary,
    State,
)
from shared.schemas import RunSummarySchema
from shared.snapshot import SnapshotError, parse_snapshot, record_problems
from shared.store.documents import from_document, to_document

JOB = Job("archive-bucket", "ndt", "ndt7", date(2019, 1, 2))
T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def failed_run(started: float, error: str, bounces: int = 0, attempt: int = 1) -> JobRecord:
    """A run started at minute ``started`` that bounced parsing ↔ parseError ``bounces`` times
    (each detail 300 characters), then failed with ``error``."""
    record = JobRecord.new(JOB, at(started), offer=f"retry/{attempt}" if attempt > 1 else "")
    record.attempts = attempt
    record.status.new_state(State.PARSING, at(started + 1))
    for i in range(bounces):
        state = State.PARSE_ERROR if i % 2 == 0 else State.PARSING
        record.status.set_detail(f"bounce {i} " + "d" * 300, at(started + 1))
        record.status.new_state(state, at(started + 1))
    record.status.update_count = 7
    record.status.new_state(State.FAILED, at(started + 2))
    record.status.set_detail(error, at(started + 2))
    return record


def restarted(ended: JobRecord, minutes: float) -> JobRecord:
    """The job started again after ``ended``, as the tracker's restart keeps its runs."""
    record = JobRecord.new(JOB, at(minutes))
    record.attempts = ended.attempts + 1
    record.keep_run(ended)
    return record


def test_a_restart_keeps_the_ended_run_with_its_error_and_history() -> None:
    first = failed_run(0, "parsing: corrupt archive")
    second = restarted(first, 10)

    [kept] = second.runs
    assert kept == RunSummary(
        run=first.run,
        attempt=1,
        offer="",
        started=at(0),
        ended=at(2),
        state=State.FAILED,
        error="parsing: corrupt archive",
        history=tuple(first.status.history),
        dropped=0,
        updates=7,
    )
    assert second.status.state is State.INIT and len(second.status.history) == 1


def test_runs_are_kept_oldest_first_and_capped_at_runs_keep() -> None:
    record = failed_run(0, "error 1")
    for n in range(2, defaults.RUNS_KEEP + 4):
        record = restarted(record, 10 * n)
        ended = failed_run(10 * n, f"error {n}", attempt=n)
        ended.runs = record.runs
        record = ended
    last = restarted(record, 1000)

    assert len(last.runs) == defaults.RUNS_KEEP
    errors = [r.error for r in last.runs]
    total = defaults.RUNS_KEEP + 3
    assert errors == [f"error {n}" for n in range(total - defaults.RUNS_KEEP + 1, total + 1)]
    assert [r.attempt for r in last.runs] == sorted(r.attempt for r in last.runs)


def test_a_long_run_keeps_its_first_entry_and_the_latest_with_details_cut() -> None:
    long = failed_run(0, "x" * (defaults.RUN_ERROR_LENGTH + 50), bounces=40)
    long.status.dropped = 3  # entries the job's own history had dropped already
    before = list(long.status.history)

    kept = RunSummary.of(long)

    assert len(kept.history) == defaults.RUN_HISTORY_KEEP
    assert kept.history[0] == before[0]
    assert [e.state for e in kept.history[1:]] == [e.state for e in before[-11:]]
    assert kept.dropped == 3 + len(before) - defaults.RUN_HISTORY_KEEP
    assert all(len(e.detail) <= OLD_DETAIL_LENGTH for e in kept.history)
    assert kept.history[-3].detail.endswith("…")  # a 300-character detail, cut
    assert len(kept.error) == defaults.RUN_ERROR_LENGTH and kept.error.endswith("…")
    assert kept.bounded() == kept  # bounding twice changes nothing


def test_runs_round_trip_through_the_job_document_and_old_documents_have_none() -> None:
    record = restarted(restarted(failed_run(0, "first <error>", bounces=3), 10), 20)
    document = to_document(record)

    assert [r["error"] for r in document["runs"]] == ["first <error>", ""]
    assert from_document(document).runs == record.runs
    del document["runs"]  # a document written before runs were kept
    assert from_document(document).runs == []


def test_the_snapshot_schema_round_trips_a_run_and_refuses_a_bad_one() -> None:
    kept = RunSummary.of(failed_run(0, "parsing: boom", bounces=2))
    schema = RunSummarySchema()
    dumped = schema.dump(kept)

    assert list(dumped) == [
        "Run",
        "Attempt",
        "Offer",
        "Started",
        "Ended",
        "State",
        "Error",
        "History",
        "Dropped",
        "Updates",
    ]
    assert schema.load(dumped) == kept
    with pytest.raises(ValidationError) as refused:
        schema.load({**dumped, "Run": "NOT A TOKEN", "State": "nope", "Dropped": -1})
    assert set(refused.value.messages) == {"Run", "State", "Dropped"}


def snapshot_with_runs(runs: list[dict[str, object]]) -> dict[str, object]:
    """A state file of one job in ``init`` whose status carries ``runs``."""
    status = {
        "HeartbeatTime": "0001-01-01T00:00:00Z",
        "UpdateCount": 0,
        "History": [
            {"State": "init", "Start": "2026-11-27T13:00:00Z", "DetailTime": "2026-11-27T13:00:00Z"}
        ],
        "Runs": runs,
    }
    job = {
        "Bucket": JOB.bucket,
        "Experiment": "ndt",
        "Datatype": "ndt7",
        "Date": "2019-01-02T00:00:00Z",
    }
    key = JOB.key()
    return {"SaveTime": "2026-11-27T13:00:00Z", "Statuses": {key: status}, "Jobs": {key: job}}


def test_a_snapshot_restores_runs_bounded_as_the_tracker_bounds_them() -> None:
    runs = [RunSummarySchema().dump(RunSummary.of(failed_run(i, f"e{i}"))) for i in range(9)]
    runs[-1]["Error"] = "y" * (defaults.RUN_ERROR_LENGTH * 3)
    [record] = parse_snapshot(snapshot_with_runs(runs))

    assert len(record.runs) == defaults.RUNS_KEEP
    assert [r.error for r in record.runs[:-1]] == ["e4", "e5", "e6", "e7"]
    assert len(record.runs[-1].error) == defaults.RUN_ERROR_LENGTH


def test_the_worst_case_job_document_stays_well_inside_firestores_limit() -> None:
    """Every bounded part at its largest, with 4-byte characters: the history (the first entry
    and the latest HISTORY_KEEP, details of MAX_TEXT_BYTES), the audit, the last error and
    RUNS_KEEP runs of long histories and errors."""
    wide = "𝄞" * (MAX_TEXT_BYTES // 4)  # MAX_TEXT_BYTES of UTF-8, the longest accepted detail

    def worst_run(started: float, attempt: int) -> JobRecord:
        record = failed_run(started, wide * 4, bounces=HISTORY_KEEP * 2, attempt=attempt)
        record.status.history = [
            e.__class__(e.state, e.start, e.detail_time, wide) for e in record.status.history
        ]
        record.status.bound_history()
        return record

    record = worst_run(0, 1)
    for n in range(2, defaults.RUNS_KEEP + 2):
        nxt = restarted(record, 10 * n)
        ended = worst_run(10 * n, n)
        ended.runs = nxt.runs
        record = ended
    record.last_error = wide * 4
    for i in range(AUDIT_KEEP):
        record.note(AuditEntry(at(i), "operator@example.com", "fail", wide))
    assert len(record.runs) == defaults.RUNS_KEEP

    document = to_document(record)
    size = document_size(document, 1600)
    runs = value_size(document["runs"])

    assert record_problems(record) == []
    assert runs < 100_000, runs  # the runs: about 72 KB at worst
    assert size < MAX_DOCUMENT_BYTES // 2, size  # the whole document: well inside 1 MiB


def snapshot_with_run(**run: object) -> dict[str, object]:
    """A state file of one job whose status carries one earlier run, ``run`` overriding it."""
    kept = RunSummarySchema().dump(RunSummary.of(failed_run(0, "parsing: boom", bounces=1)))
    return snapshot_with_runs([{**kept, **run}])


@pytest.mark.parametrize(
    ("run", "problem"),
    [
        pytest.param(
            {"State": "parsing"},
            "Runs[0].State: must be complete or failed, not parsing",
            id="a run still in flight",
        ),
        pytest.param(
            {"Offer": "o" * 1501},
            "Runs[0].Offer: 1501 bytes; an offer holds at most 1500",
            id="an offer longer than a job's own",
        ),
        pytest.param(
            {"Error": "parsing: \ud800"},
            "runs[0].error: not valid Unicode text (a lone surrogate)",
            id="a lone surrogate in the error",
        ),
        pytest.param(
            {"Offer": "retry/\udfff"},
            "runs[0].offer: not valid Unicode text (a lone surrogate)",
            id="a lone surrogate in the offer",
        ),
        pytest.param(
            {
                "History": [
                    {
                        "State": "init",
                        "Start": "2026-11-27T12:00:00Z",
                        "DetailTime": "2026-11-27T12:00:00Z",
                        "Detail": "\ud83d",
                    }
                ]
            },
            "runs[0].history[0].detail: not valid Unicode text (a lone surrogate)",
            id="a lone surrogate in a detail",
        ),
    ],
)
def test_a_snapshot_run_the_store_cannot_hold_is_refused_before_any_write(run, problem) -> None:
    """Refused when the file is read, so an import stops before its first batch: a lone
    surrogate would otherwise pass every check and fail the import part-way through."""
    with pytest.raises(SnapshotError) as refused:
        parse_snapshot(snapshot_with_run(**run))
    [message] = refused.value.problems
    assert message.startswith(f'Statuses["{JOB.key()}"]') and problem in message, message


def test_runs_keep_of_zero_keeps_no_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bound switched off is no run kept, not every run (a slice from -0 is the whole list)."""
    record = restarted(restarted(failed_run(0, "first"), 10), 20)
    assert len(record.runs) == 2
    monkeypatch.setattr(defaults, "RUNS_KEEP", 0)

    assert restarted(record, 30).runs == []
    record.restore_runs(record.runs)
    assert record.runs == []
