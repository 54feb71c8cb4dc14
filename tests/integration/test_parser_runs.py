"""Parsers on the emulator: runs fence stale parsers, parsers keep to their states,
the history stays bounded, and a late detail write never lands in the wrong place."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest

from shared.model import (
    HISTORY_FULL_DETAILS,
    HISTORY_KEEP,
    OLD_DETAIL_LENGTH,
    AuditEntry,
    Job,
    JobRecord,
    RunId,
    State,
    Status,
)
from shared.postprocess import STANDARD_PIPELINE
from shared.store import doc_id

JOB = Job("archive-bucket", "ndt", "ndt7", date(2019, 1, 2))
KEY = JOB.key()


def documents(firestore_client) -> dict[str, Any]:
    """Every job and counter document, exactly as stored."""
    return {
        f"{name}/{s.id}": s.to_dict()
        for name in ("jobs", "counters")
        for s in firestore_client.collection(name).stream()
    }


def raw(store) -> dict[str, Any]:
    """The job's document exactly as stored."""
    data: dict[str, Any] | None = store.collection.document(doc_id(KEY)).get().to_dict()
    assert data is not None
    return data


def hand_out(tracker) -> str:
    """Add (or restart) the job; return the ID ``next`` would hand out for it."""
    record = tracker.add_job(JOB)
    return str(RunId.of(record.key, record.run))


# --- Item: a stale parser is fenced -------------------------------------------------


@pytest.fixture
def runs(http, tracker, clock):
    """The job handed out, parsed a little, expired and handed out again: (old ID, new ID)."""
    old = hand_out(tracker)
    assert (
        http.post(
            "/v2/job/update",
            query_string={"id": old, "state": "parsing", "detail": "starting tasks"},
        ).status_code
        == 200
    )
    clock.advance(hours=7)
    tracker.set_job_error(KEY, "expired")
    clock.advance(minutes=1)
    new = hand_out(tracker)
    return old, new


STALE_CALLS = [
    ("late parsing detail", "/v2/job/update", {"state": "parsing", "detail": "gs://b/late.tgz"}),
    ("late postProcessing", "/v2/job/update", {"state": "postProcessing", "detail": ""}),
    ("late parseError", "/v2/job/update", {"state": "parseError", "detail": "x"}),
    ("late heartbeat", "/v2/job/heartbeat", {}),
    ("late error", "/v2/job/error", {"error": "corrupt gzip"}),
]


@pytest.mark.parametrize("new_state", [State.INIT, State.PARSING], ids=lambda s: f"new run in {s}")
@pytest.mark.parametrize(("name", "path", "params"), STALE_CALLS, ids=[c[0] for c in STALE_CALLS])
def test_a_stale_run_is_refused_and_writes_nothing(
    http, tracker, firestore_client, runs, new_state, name, path, params
):
    old, new = runs
    if new_state is State.PARSING:
        assert (
            http.post("/v2/job/update", query_string={"id": new, "state": "parsing"}).status_code
            == 200
        )
    before = documents(firestore_client)
    response = http.post(path, query_string={"id": old, **params})
    assert response.status_code == 409, response.get_json()
    old_run, new_run = old.split("~")[1], new.split("~")[1]
    assert response.get_json()["error"] == (
        f"job {KEY}: run {old_run} is no longer current (run {new_run} started "
        f"2026-11-27T19:01:00Z); nothing was written"
    )
    assert documents(firestore_client) == before


def test_the_new_run_owns_its_history(http, tracker, runs):
    old, new = runs
    for job_id, state, detail in (
        (old, "postProcessing", "old parser done"),
        (new, "parsing", "new start"),
        (old, "parsing", "old file"),
        (new, "parsing", "new file"),
    ):
        http.post("/v2/job/update", query_string={"id": job_id, "state": state, "detail": detail})
    status = tracker.get_status(KEY)
    assert [(e.state, e.detail) for e in status.history] == [
        (State.INIT, "new start"),
        (State.PARSING, "new file"),
    ]
    assert status.update_count == 2


@pytest.mark.parametrize(
    ("name", "path", "params"),
    [
        ("update", "/v2/job/update", {"state": "parsing", "detail": "by hand"}),
        ("heartbeat", "/v2/job/heartbeat", {}),
        ("error", "/v2/job/error", {"error": "by hand"}),
    ],
    ids=["update", "heartbeat", "error"],
)
def test_a_bare_key_is_not_fenced_and_answers_the_key(http, runs, name, path, params):
    response = http.post(path, query_string={"id": KEY, **params})
    assert response.status_code == 200 and response.get_json()["ID"] == KEY


def test_the_current_run_is_echoed(http, runs):
    _, new = runs
    assert re.fullmatch(re.escape(KEY) + r"~[0-9a-f]{8}", new)
    response = http.post("/v2/job/update", query_string={"id": new, "state": "parsing"})
    assert response.status_code == 200 and response.get_json()["ID"] == new


def test_every_start_gets_a_fresh_run(tracker, store, clock):
    runs = set()
    for _ in range(3):
        record = tracker.add_job(JOB)
        assert raw(store)["run"] == record.run and re.fullmatch(r"[0-9a-f]{8}", record.run)
        runs.add(record.run)
        tracker.set_job_error(KEY, "gave up")
        clock.advance(days=1)
    assert len(runs) == 3


def test_a_job_stored_without_a_run_takes_bare_keys_only(
    http, tracker, store, clock, firestore_client
):
    store.create_missing([JobRecord(JOB, Status.new(clock()), clock())])  # as a snapshot import
    assert "run" not in raw(store) or raw(store)["run"] == ""
    before = documents(firestore_client)
    response = http.post(
        "/v2/job/update", query_string={"id": KEY + "~0a1b2c3d", "state": "parsing"}
    )
    assert response.status_code == 409
    assert (
        "run 0a1b2c3d is no longer current (a run without a token started"
        in (response.get_json()["error"])
    )
    assert documents(firestore_client) == before
    assert (
        http.post(
            "/v2/job/update", query_string={"id": KEY, "state": "parsing", "detail": "x"}
        ).status_code
        == 200
    )
    assert (
        http.post(
            "/v2/job/update", query_string={"id": KEY, "state": "parsing", "detail": "y"}
        ).status_code
        == 200
    )
    assert tracker.get_status(KEY).detail == "y" and tracker.get_status(KEY).update_count == 2
    tracker.set_job_error(KEY, "gave up")
    clock.advance(days=1)
    assert tracker.add_job(JOB).run  # the restart gives it one


def test_a_run_that_ends_between_the_read_and_the_transaction_is_refused(
    http, tracker, store, clock, firestore_client, monkeypatch
):
    old = hand_out(tracker)
    assert (
        http.post("/v2/job/update", query_string={"id": old, "state": "parsing"}).status_code == 200
    )
    transact = store.transact

    def restarted_first(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(store, "transact", transact)
        tracker.set_job_error(KEY, "expired")
        clock.advance(minutes=1)
        tracker.add_job(JOB)
        return transact(*args, **kwargs)

    monkeypatch.setattr(store, "transact", restarted_first)
    response = http.post("/v2/job/update", query_string={"id": old, "state": "postProcessing"})
    assert response.status_code == 409 and "is no longer current" in response.get_json()["error"]
    status = tracker.get_status(KEY)
    assert [e.state for e in status.history] == [State.INIT] and status.update_count == 0


# --- Item: parsers cannot set post-processing states -------------------------------


OPERATOR_PATH = {
    State.INIT: [],
    State.PARSING: [State.PARSING],
    State.POST_PROCESSING: [State.PARSING, State.POST_PROCESSING],
    State.LOADING: [State.PARSING, State.POST_PROCESSING, State.LOADING],
    State.JOINING: [State.PARSING, State.POST_PROCESSING, *STANDARD_PIPELINE],
}

# (name, the job's state, path, params, expected status, the answer's error or Previous)
PARSER_REQUESTS = [
    (
        "complete from postProcessing",
        State.POST_PROCESSING,
        "/v2/job/update",
        {"state": "complete"},
        409,
        f"job {KEY}: complete is set by post-processing (or an operator), not by a parser "
        f"(the job is postProcessing)",
    ),
    (
        "loading from postProcessing",
        State.POST_PROCESSING,
        "/v2/job/update",
        {"state": "loading"},
        409,
        "loading is set by post-processing (or an operator)",
    ),
    (
        "detail while loading",
        State.LOADING,
        "/v2/job/update",
        {"state": "loading", "detail": "x"},
        409,
        f"job {KEY} is loading, which post-processing (or an operator) owns; "
        f"a parser cannot update it",
    ),
    (
        "deduplicating from loading",
        State.LOADING,
        "/v2/job/update",
        {"state": "deduplicating"},
        409,
        "a parser cannot move it to deduplicating",
    ),
    (
        "failed from loading",
        State.LOADING,
        "/v2/job/update",
        {"state": "failed"},
        409,
        "a parser cannot move it to failed",
    ),
    (
        "error while loading",
        State.LOADING,
        "/v2/job/error",
        {"error": "boom"},
        409,
        "a parser cannot move it to parseError",
    ),
    (
        "complete from joining",
        State.JOINING,
        "/v2/job/update",
        {"state": "complete"},
        409,
        "a parser cannot move it to complete",
    ),
    (
        "postProcessing straight from init",
        State.INIT,
        "/v2/job/update",
        {"state": "postProcessing", "detail": ""},
        200,
        "init",
    ),
    (
        "giving up while parsing",
        State.PARSING,
        "/v2/job/update",
        {"state": "failed"},
        200,
        "parsing",
    ),
    (
        "a repeated postProcessing",
        State.POST_PROCESSING,
        "/v2/job/update",
        {"state": "postProcessing"},
        200,
        "postProcessing",
    ),
]


@pytest.mark.parametrize(
    ("name", "state", "path", "params", "code", "answer"),
    PARSER_REQUESTS,
    ids=[r[0] for r in PARSER_REQUESTS],
)
def test_parsers_set_only_their_own_states(
    http, tracker, firestore_client, name, state, path, params, code, answer
):
    job_id = hand_out(tracker)
    for step in OPERATOR_PATH[state]:
        tracker.set_status(KEY, step)
    before = documents(firestore_client)
    response = http.post(path, query_string={"id": job_id, **params})
    assert response.status_code == code, response.get_json()
    if code == 200:
        assert response.get_json()["Previous"] == answer
        return
    assert answer in response.get_json()["error"]
    assert documents(firestore_client) == before


def test_a_heartbeat_is_allowed_in_every_state_in_flight(http, tracker, clock):
    job_id = hand_out(tracker)
    for step in OPERATOR_PATH[State.JOINING]:
        tracker.set_status(KEY, step)
        clock.advance(seconds=10)
        assert http.post("/v2/job/heartbeat", query_string={"id": job_id}).status_code == 200


# --- Item: the history stays bounded -----------------------------------------------


def test_a_bouncing_job_stays_well_under_the_document_limit(http, tracker, store):
    job_id = hand_out(tracker)
    detail = "d" * 4000
    codes = [
        http.post(
            "/v2/job/update", query_string={"id": job_id, "state": "parsing", "detail": detail}
        ).status_code
    ]
    for _ in range(600):
        for state in ("parseError", "parsing"):
            codes.append(
                http.post(
                    "/v2/job/update", query_string={"id": job_id, "state": state, "detail": detail}
                ).status_code
            )
    assert set(codes) == {200}

    document = raw(store)
    assert len(json.dumps(document, default=str).encode()) < 128 * 1024
    assert document["history_dropped"] == 1 + 1200 - HISTORY_KEEP
    status = tracker.get_status(KEY)
    assert len(status.history) == 1 + HISTORY_KEEP
    assert status.history[0].state is State.INIT and status.state is State.PARSING
    assert status.history[0].detail == detail
    assert [len(e.detail) for e in status.history[1:]] == (
        [OLD_DETAIL_LENGTH] * (HISTORY_KEEP - HISTORY_FULL_DETAILS)
        + [4000] * (HISTORY_FULL_DETAILS - 1)
        + [0]
    )
    assert status.update_count == 1201

    # The hot path still writes the current entry by its absolute index.
    assert (
        http.post(
            "/v2/job/update", query_string={"id": job_id, "state": "parsing", "detail": "last.tgz"}
        ).status_code
        == 200
    )
    assert tracker.get_status(KEY).history[-1].detail == "last.tgz"

    page = http.get("/status")
    assert page.status_code == 200 and KEY in page.get_data(as_text=True)
    shown = http.get("/status?format=json")
    assert shown.status_code == 200
    assert [j["ID"] for j in shown.get_json()["Jobs"]] == [KEY]


# --- Item: a late detail write --------------------------------------------------------


def late(store, monkeypatch, meanwhile: Callable[[], object]) -> None:
    """Make the next hot-path detail write land after ``meanwhile`` ran (read, meanwhile, write)."""
    write = store.write_detail

    def hooked(*args: Any, **kwargs: Any) -> None:
        monkeypatch.setattr(store, "write_detail", write)
        meanwhile()
        write(*args, **kwargs)

    monkeypatch.setattr(store, "write_detail", hooked)


def restart_and_start(tracker, clock) -> None:
    tracker.set_job_error(KEY, "expired")
    clock.advance(minutes=1)
    tracker.add_job(JOB)
    tracker.set_status(KEY, State.PARSING, "new start")


def note(tracker) -> None:
    tracker.administer(KEY, lambda rec, now: rec.note(AuditEntry(now, "op", "look", "")))


# (name, what happens between the late update's read and its write, the history's
#  (state, detail) after it, the update count after it)
LATE_WRITES = [
    (
        "a state change",
        lambda t, c: t.set_status(KEY, State.POST_PROCESSING, ""),
        [(State.INIT, "starting"), (State.PARSING, ""), (State.POST_PROCESSING, "")],
        3,
    ),
    ("a restart", restart_and_start, [(State.INIT, "new start"), (State.PARSING, "")], 1),
    (
        "a transaction that keeps the state",
        lambda t, c: note(t),
        [(State.INIT, "starting"), (State.PARSING, "gs://b/late.tgz")],
        2,
    ),
]


@pytest.mark.parametrize(
    ("name", "meanwhile", "history", "count"), LATE_WRITES, ids=[w[0] for w in LATE_WRITES]
)
def test_a_late_detail_write_lands_only_where_it_was_accepted(
    tracker, store, clock, monkeypatch, name, meanwhile, history, count
):
    tracker.add_job(JOB)
    tracker.set_status(KEY, State.PARSING, "starting")
    clock.advance(seconds=1)
    late(store, monkeypatch, lambda: meanwhile(tracker, clock))
    tracker.set_status(KEY, State.PARSING, "gs://b/late.tgz")  # read, meanwhile, then write
    status = tracker.get_status(KEY)
    assert [(e.state, e.detail) for e in status.history] == history
    assert status.update_count == count
    # The next state change folds what counts and drops the rest.
    if status.state is State.PARSING:
        tracker.set_status(KEY, State.POST_PROCESSING, "")
        after = tracker.get_status(KEY)
        assert after.update_count == count + 1
        assert [(e.state, e.detail) for e in after.history][:-1] == [
            *history[:-1],
            (State.PARSING, ""),
        ]
        assert raw(store)["live"] == {}
