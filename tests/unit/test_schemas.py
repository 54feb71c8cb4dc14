"""Unit tests for shared.schemas: request parameters and the Go-shaped Job/Status JSON."""

from __future__ import annotations

import dataclasses
import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from marshmallow import Schema, ValidationError

from shared.model import UTC, ZERO_TIME, Datasets, Job, JobFilter, RunId, State, StateInfo, Status
from shared.schemas import (
    MAX_DETAIL_LENGTH,
    MISSING,
    AdminCancelReprocessParams,
    AdminFailParams,
    AdminJobParams,
    AdminJobsQuery,
    AdminPauseParams,
    AdminReprocessParams,
    ErrorParams,
    ErrorReport,
    FailRequest,
    Heartbeat,
    HeartbeatParams,
    JobRef,
    JobSchema,
    PauseRequest,
    ReprocessRange,
    StatusQuery,
    StatusRequest,
    StatusSchema,
    Update,
    UpdateParams,
)

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "go-gardener-state-v2.json"
KEY = "pusher-mlab-oti/ndt/ndt7/20190102"


def sample() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SAMPLE.read_text())
    return data


def load_errors(schema: Schema, data: dict[str, Any]) -> dict[str, Any]:
    """Load ``data`` expecting failure; return the per-field messages."""
    with pytest.raises(ValidationError) as info:
        schema.load(data)
    messages = info.value.messages
    assert isinstance(messages, dict)
    return messages


# --- Request parameters: success -------------------------------------------------


@pytest.mark.parametrize(
    ("schema", "data", "expected"),
    [
        (UpdateParams(), {"id": KEY, "state": "parsing"}, Update(RunId(KEY), State.PARSING, "")),
        (
            UpdateParams(),
            {"id": KEY, "state": "postProcessing", "detail": "gs://b/x.tgz"},
            Update(RunId(KEY), State.POST_PROCESSING, "gs://b/x.tgz"),
        ),
        (
            UpdateParams(),
            {"id": KEY, "state": "failed", "detail": ""},
            Update(RunId(KEY), State.FAILED, ""),
        ),
        (
            UpdateParams(),
            {"id": KEY, "state": "parsing", "detail": "-"},
            Update(RunId(KEY), State.PARSING, "-"),
        ),
        (HeartbeatParams(), {"id": KEY}, Heartbeat(RunId(KEY))),
        (ErrorParams(), {"id": KEY, "error": "boom"}, ErrorReport(RunId(KEY), "boom")),
    ],
)
def test_params_load(schema: Schema, data: dict[str, Any], expected: object) -> None:
    assert schema.load(data) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (KEY, RunId(KEY)),
        (KEY + "~0a1b2c3d", RunId(KEY, "0a1b2c3d")),
        (KEY + "~z", RunId(KEY, "z")),
        (KEY + "~" + "9" * 32, RunId(KEY, "9" * 32)),
    ],
    ids=["bare key", "key and run", "one-character run", "32-character run"],
)
@pytest.mark.parametrize(
    "schema", [UpdateParams(), HeartbeatParams(), ErrorParams()], ids=lambda s: type(s).__name__
)
def test_parser_id_carries_the_run(schema: Schema, text: str, expected: RunId) -> None:
    loaded = schema.load({"id": text, "state": "parsing", "error": "boom"}).id
    assert loaded == expected and str(loaded) == text


@pytest.mark.parametrize("wire", [s.value for s in State])
def test_update_accepts_every_state(wire: str) -> None:
    assert UpdateParams().load({"id": KEY, "state": wire}).state is State(wire)


@pytest.mark.parametrize(
    ("schema", "data", "expected"),
    [
        (
            UpdateParams(),
            {"id": KEY, "state": "loading", "foo": "bar", "callback": "x"},
            Update(RunId(KEY), State.LOADING, ""),
        ),
        (HeartbeatParams(), {"id": KEY, "state": "loading", "detail": "x"}, Heartbeat(RunId(KEY))),
        (
            ErrorParams(),
            {"id": KEY, "error": "e", "state": "nonsense", "detail": "d"},
            ErrorReport(RunId(KEY), "e"),
        ),
    ],
)
def test_unknown_params_ignored(schema: Schema, data: dict[str, Any], expected: object) -> None:
    assert schema.load(data) == expected


TEXTS = [
    "<script>alert('x')</script>",
    "<b>bold</b> &amp; &lt;",
    "a&b\"c'd",
    "ünïcödé ✓ 日本語 🚀",
    "line1\nline2\ttab",
    "gs://pusher-mlab-oti/ndt/ndt7/2019/01/02/20190102T000000.000000Z-ndt7-mlab1-abc0t-ndt.tgz",
    " leading and trailing ",
]


@pytest.mark.parametrize("text", TEXTS)
def test_detail_and_error_are_plain_text(text: str) -> None:
    assert UpdateParams().load({"id": KEY, "state": "parsing", "detail": text}).detail == text
    assert ErrorParams().load({"id": KEY, "error": text}).error == text


@pytest.mark.parametrize("char", ["x", "é", "日", "🚀"])
def test_max_detail_length_counts_utf8_bytes(char: str) -> None:
    # Bytes, as Firestore counts them: 4,096 four-byte characters would be 16 KiB per entry.
    text = char * (MAX_DETAIL_LENGTH // len(char.encode()))
    assert UpdateParams().load({"id": KEY, "state": "parsing", "detail": text}).detail == text
    assert ErrorParams().load({"id": KEY, "error": text}).error == text
    over = text + "x" * (MAX_DETAIL_LENGTH - len(text.encode()) + 1)
    assert set(load_errors(UpdateParams(), {"id": KEY, "state": "parsing", "detail": over})) == {
        "detail"
    }
    assert set(load_errors(ErrorParams(), {"id": KEY, "error": over})) == {"error"}


def test_max_detail_length_value() -> None:
    assert MAX_DETAIL_LENGTH == 4096


# --- Request parameters: failure -------------------------------------------------


@pytest.mark.parametrize(
    ("schema", "data", "missing"),
    [
        (UpdateParams(), {}, {"id", "state"}),
        (UpdateParams(), {"state": "parsing"}, {"id"}),
        (UpdateParams(), {"id": "", "state": "parsing"}, {"id"}),
        (UpdateParams(), {"id": KEY}, {"state"}),
        (UpdateParams(), {"id": KEY, "state": ""}, {"state"}),
        (UpdateParams(), {"id": "", "state": "", "detail": "x"}, {"id", "state"}),
        (HeartbeatParams(), {}, {"id"}),
        (HeartbeatParams(), {"id": ""}, {"id"}),
        (ErrorParams(), {}, {"id", "error"}),
        (ErrorParams(), {"id": KEY}, {"error"}),
        (ErrorParams(), {"id": KEY, "error": ""}, {"error"}),
        (ErrorParams(), {"id": "", "error": "boom"}, {"id"}),
    ],
)
def test_missing_params(schema: Schema, data: dict[str, Any], missing: set[str]) -> None:
    messages = load_errors(schema, data)
    assert set(messages) == missing
    for name in missing:
        assert messages[name] == [MISSING]


@pytest.mark.parametrize(
    ("bad_id", "fragment"),
    [
        ("not-a-key", "malformed job id"),
        ("bucket/exp/type", "malformed job id"),
        ("Bucket/exp/type/20190102", "malformed job id"),
        ("bucket/exp/type/2019010x", "malformed job id"),
        (KEY + "\n", "malformed job id"),
        ("x" * 401, "longer than 400"),
        ("bucket/exp/type/20190230", "invalid date"),
        (123, "Not a valid string"),
        (KEY + "~", "malformed run ''"),
        (KEY + "~ABCD1234", "malformed run 'ABCD1234'"),
        (KEY + "~0a1b~2c3d", "malformed run"),
        (KEY + "~" + "a" * 33, "1 to 32 characters"),
        (KEY + "~%7E", "malformed run"),
        ("~0a1b2c3d", "malformed job id"),
    ],
)
@pytest.mark.parametrize(
    "schema", [UpdateParams(), HeartbeatParams(), ErrorParams()], ids=lambda s: type(s).__name__
)
def test_malformed_id(schema: Schema, bad_id: Any, fragment: str) -> None:
    data = {"id": bad_id, "state": "parsing", "error": "boom"}
    messages = load_errors(schema, data)
    assert set(messages) == {"id"}
    assert messages["id"] != [MISSING]
    assert fragment in messages["id"][0]


@pytest.mark.parametrize(
    "state", ["cleaning", "Parsing", "ParseComplete", "done", " parsing", "parsing "]
)
def test_unknown_state(state: str) -> None:
    messages = load_errors(UpdateParams(), {"id": KEY, "state": state})
    assert set(messages) == {"state"}
    text = messages["state"][0]
    assert "unknown state" in text
    assert repr(state) in text
    assert "postProcessing" in text and "complete" in text


@pytest.mark.parametrize("char", ["x", "é", "🚀"])
def test_too_long_detail_and_error(char: str) -> None:
    text = char * (MAX_DETAIL_LENGTH + 1)
    assert set(load_errors(UpdateParams(), {"id": KEY, "state": "parsing", "detail": text})) == {
        "detail"
    }
    assert set(load_errors(ErrorParams(), {"id": KEY, "error": text})) == {"error"}


def test_null_detail_rejected() -> None:
    assert set(load_errors(UpdateParams(), {"id": KEY, "state": "parsing", "detail": None})) == {
        "detail"
    }


# --- Status page query ------------------------------------------------------------


QUERY_DEFAULTS = {
    "format": "html",
    "state": None,
    "experiment": None,
    "datatype": None,
    "limit": 1000,
    "refresh": 30,
    "days": 14,
}


@pytest.mark.parametrize(
    ("data", "changes"),
    [
        ({}, {}),
        ({"format": "", "state": "", "experiment": "", "datatype": "", "limit": ""}, {}),
        ({"format": "json"}, {"format": "json"}),
        ({"state": "failed"}, {"state": State.FAILED}),
        ({"experiment": "ndt", "datatype": "ndt7"}, {"experiment": "ndt", "datatype": "ndt7"}),
        ({"experiment": "a" * 100}, {"experiment": "a" * 100}),
        ({"datatype": "tcp_info-1.x"}, {"datatype": "tcp_info-1.x"}),
        ({"limit": "5"}, {"limit": 5}),
        ({"limit": "1"}, {"limit": 1}),
        ({"limit": "100000"}, {"limit": 100000}),
        ({"days": ""}, {}),
        ({"days": "1"}, {"days": 1}),
        ({"days": "90"}, {"days": 90}),
        ({"unknown": "x"}, {}),
    ],
)
def test_status_query(data: dict[str, Any], changes: dict[str, Any]) -> None:
    assert StatusQuery().load(data) == StatusRequest(**{**QUERY_DEFAULTS, **changes})


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"format": "xml"}, "format"),
        ({"format": "JSON"}, "format"),
        ({"state": "bogus"}, "state"),
        ({"experiment": "a/b"}, "experiment"),
        ({"experiment": "a" * 101}, "experiment"),
        ({"datatype": "<script>"}, "datatype"),
        ({"limit": "0"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "100001"}, "limit"),
        ({"limit": "abc"}, "limit"),
        ({"days": "0"}, "days"),
        ({"days": "91"}, "days"),
        ({"days": "-3"}, "days"),
        ({"days": "two"}, "days"),
        ({"days": "1.5"}, "days"),
    ],
)
def test_status_query_rejects(data: dict[str, Any], field: str) -> None:
    assert set(load_errors(StatusQuery(), data)) == {field}


def test_status_query_days_out_of_range_says_the_range() -> None:
    assert load_errors(StatusQuery(), {"days": "365"}) == {
        "days": ["days of the grid must be 1 to 90"]
    }


# --- JobSchema --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("job", "expected"),
    [
        (
            Job(
                "pusher-mlab-oti",
                "ndt",
                "ndt7",
                date(2019, 1, 2),
                datasets=Datasets("tmp_ndt", "raw_ndt", "ndt"),
            ),
            {
                "Bucket": "pusher-mlab-oti",
                "Experiment": "ndt",
                "Datatype": "ndt7",
                "Date": "2019-01-02T00:00:00Z",
                "Datasets": {"Tmp": "tmp_ndt", "Raw": "raw_ndt", "Join": "ndt"},
            },
        ),
        (
            Job("b", "e", "t", date(2011, 12, 31)),
            {
                "Bucket": "b",
                "Experiment": "e",
                "Datatype": "t",
                "Date": "2011-12-31T00:00:00Z",
                "Datasets": {"Tmp": "", "Raw": "", "Join": ""},
            },
        ),
        (
            Job("b", "e", "t", date(2019, 1, 2), filter=r".*-mlab1-.*\.tgz"),
            {
                "Bucket": "b",
                "Experiment": "e",
                "Datatype": "t",
                "Date": "2019-01-02T00:00:00Z",
                "Filter": r".*-mlab1-.*\.tgz",
                "Datasets": {"Tmp": "", "Raw": "", "Join": ""},
            },
        ),
    ],
)
def test_job_dump_is_go_json(job: Job, expected: dict[str, Any]) -> None:
    dumped = JobSchema().dump(job)
    assert dumped == expected
    assert json.loads(json.dumps(dumped)) == expected


SAMPLE_JOBS = {
    "bucket/exp/type/20110101": {
        "bucket": "bucket",
        "experiment": "exp",
        "datatype": "type",
        "date": date(2011, 1, 1),
        "filter": "",
        "datasets": {"tmp": "tmp_ndt", "raw": "raw_ndt", "join": ""},
    },
    "bucket/exp/type/20110102": {
        "bucket": "bucket",
        "experiment": "exp2",
        "datatype": "type2",
        "date": date(2011, 1, 1),
        "filter": "",
        "datasets": {"tmp": "", "raw": "", "join": ""},
    },
}


@pytest.mark.parametrize("key", sorted(SAMPLE_JOBS))
def test_job_load_sample_file(key: str) -> None:
    raw = sample()["Jobs"][key]
    loaded = JobSchema().load(raw)
    assert loaded == SAMPLE_JOBS[key]
    job = Job(**{**loaded, "datasets": Datasets(**loaded["datasets"])})
    assert JobSchema().dump(job) == raw


def test_sample_file_has_exactly_these_jobs() -> None:
    assert set(sample()["Jobs"]) == set(SAMPLE_JOBS)


@pytest.mark.parametrize(
    ("text", "day"),
    [
        ("2019-01-02T00:00:00Z", date(2019, 1, 2)),
        ("2019-01-02T00:00:00.000000001Z", date(2019, 1, 2)),
        ("2019-01-01T22:00:00-04:00", date(2019, 1, 2)),
    ],
)
def test_job_load_date(text: str, day: date) -> None:
    loaded = JobSchema().load({"Bucket": "b", "Experiment": "e", "Datatype": "t", "Date": text})
    assert loaded["date"] == day
    assert loaded["filter"] == ""
    assert loaded["datasets"] == {}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"Bucket": None}, "Bucket"),
        ({"Date": "2019-01-02"}, "Date"),
        ({"Date": 20190102}, "Date"),
        ({"Date": None}, "Date"),
    ],
)
def test_job_load_rejects(change: dict[str, Any], field: str) -> None:
    data = {
        "Bucket": "b",
        "Experiment": "e",
        "Datatype": "t",
        "Date": "2019-01-02T00:00:00Z",
        **change,
    }
    assert set(load_errors(JobSchema(), data)) == {field}


@pytest.mark.parametrize("field", ["Bucket", "Experiment", "Datatype", "Date"])
def test_job_load_requires(field: str) -> None:
    data = {"Bucket": "b", "Experiment": "e", "Datatype": "t", "Date": "2019-01-02T00:00:00Z"}
    del data[field]
    assert load_errors(JobSchema(), data) == {field: [MISSING]}


# --- StatusSchema -----------------------------------------------------------------


SAMPLE_STATUS_DUMP = {
    "HeartbeatTime": "0001-01-01T00:00:00Z",
    "UpdateCount": 0,
    "History": [
        {
            "State": "init",
            "Start": "2022-07-22T20:56:00.577268Z",
            "DetailTime": "2022-07-22T20:56:00.577268Z",
            "Detail": "",
        }
    ],
}


def test_status_load_sample_file() -> None:
    loaded = StatusSchema().load(sample()["Statuses"]["bucket/exp/type/20110101"])
    t = datetime(2022, 7, 22, 20, 56, 0, 577268, tzinfo=UTC)
    assert loaded == {
        "heartbeat_time": ZERO_TIME,
        "update_count": 0,
        "history": [{"state": State.INIT, "start": t, "detail_time": t, "detail": ""}],
    }


@pytest.mark.parametrize("key", sorted(sample()["Statuses"]))
def test_status_round_trip_sample_file(key: str) -> None:
    raw = sample()["Statuses"][key]
    schema = StatusSchema()
    loaded = schema.load(raw)
    dumped = schema.dump(loaded)
    assert dumped == SAMPLE_STATUS_DUMP
    assert schema.load(dumped) == loaded
    assert schema.dump(schema.load(dumped)) == dumped
    status = Status(
        history=[StateInfo(**info) for info in loaded["history"]],
        heartbeat_time=loaded["heartbeat_time"],
        update_count=loaded["update_count"],
    )
    assert schema.dump(status) == dumped


def test_status_dump_model_object() -> None:
    t0 = datetime(2019, 1, 2, 3, 4, 5, tzinfo=UTC)
    t1 = datetime(2019, 1, 2, 3, 5, 6, 700000, tzinfo=UTC)
    status = Status(
        history=[
            StateInfo(State.INIT, t0, t0, ""),
            StateInfo(State.LOADING, t1, t1, "job <b>x</b> ✓"),
            StateInfo(State.FAILED, t1, t1, "loading: boom"),
        ],
        heartbeat_time=t1,
        update_count=7,
    )
    dumped = StatusSchema().dump(status)
    assert dumped == {
        "HeartbeatTime": "2019-01-02T03:05:06.7Z",
        "UpdateCount": 7,
        "History": [
            {
                "State": "init",
                "Start": "2019-01-02T03:04:05Z",
                "DetailTime": "2019-01-02T03:04:05Z",
                "Detail": "",
            },
            {
                "State": "loading",
                "Start": "2019-01-02T03:05:06.7Z",
                "DetailTime": "2019-01-02T03:05:06.7Z",
                "Detail": "job <b>x</b> ✓",
            },
            {
                "State": "failed",
                "Start": "2019-01-02T03:05:06.7Z",
                "DetailTime": "2019-01-02T03:05:06.7Z",
                "Detail": "loading: boom",
            },
        ],
    }
    loaded = StatusSchema().load(json.loads(json.dumps(dumped)))
    assert [StateInfo(**info) for info in loaded["history"]] == status.history
    assert loaded["heartbeat_time"] == t1
    assert loaded["update_count"] == 7


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"History": []}, "History"),
        ({"History": None}, "History"),
        ({"HeartbeatTime": None}, "HeartbeatTime"),
        ({"HeartbeatTime": "yesterday"}, "HeartbeatTime"),
        ({"UpdateCount": "many"}, "UpdateCount"),
        (
            {
                "History": [
                    {
                        "State": "cleaning",
                        "Start": "2019-01-02T00:00:00Z",
                        "DetailTime": "2019-01-02T00:00:00Z",
                    }
                ]
            },
            "History",
        ),
        (
            {
                "History": [
                    {"State": "init", "Start": "2019-01-02", "DetailTime": "2019-01-02T00:00:00Z"}
                ]
            },
            "History",
        ),
        ({"History": [{"State": "init", "Start": "2019-01-02T00:00:00Z"}]}, "History"),
    ],
)
def test_status_load_rejects(change: dict[str, Any], field: str) -> None:
    data = {**SAMPLE_STATUS_DUMP, **change}
    assert set(load_errors(StatusSchema(), data)) == {field}


# --- Job dates: every source within the window a snapshot carries ---------------------


@pytest.mark.parametrize("schema", [AdminReprocessParams(), AdminCancelReprocessParams()])
@pytest.mark.parametrize(
    ("first", "last", "field"),
    [
        ("1960-01-01", "2019-01-01", "from"),
        ("1969-12-31", "1970-01-01", "from"),
        ("2019-01-01", "2200-01-01", "to"),
    ],
)
def test_reprocess_dates_outside_the_window_are_refused(
    schema: Schema, first: str, last: str, field: str
) -> None:
    messages = load_errors(schema, {"from": first, "to": last})
    assert list(messages) == [field]
    assert (
        "is outside the dates the tracker accepts: 1970-01-01 up to, not including, "
        "2200-01-01" in messages[field][0]
    )


def test_reprocess_dates_at_the_window_edges_are_accepted() -> None:
    loaded = AdminReprocessParams().load({"from": "1970-01-01", "to": "2199-12-31"})
    assert (loaded.first, loaded.last, loaded.sources) == (date(1970, 1, 1), date(2199, 12, 31), ())


def test_an_admin_id_before_1970_is_refused() -> None:
    messages = load_errors(AdminJobParams(), {"id": "archive-x/ndt/ndt7/19691231"})
    assert "job date 1969-12-31 is outside" in messages["id"][0]


def test_admin_params_load_into_frozen_dataclasses() -> None:
    reprocess = AdminReprocessParams().load(
        {"from": "2019-01-01", "to": "2019-01-02", "sources": "ndt/a,ndt/b"}
    )
    assert reprocess == ReprocessRange(date(2019, 1, 1), date(2019, 1, 2), ("ndt/a", "ndt/b"))
    assert AdminJobsQuery().load({"state": "failed", "from": "2019-01-01"}) == JobFilter(
        State.FAILED, None, None, date(2019, 1, 1), None, 100
    )
    assert AdminJobParams().load({"id": KEY}) == JobRef(KEY)
    assert AdminFailParams().load({"id": KEY, "reason": "bad"}) == FailRequest(KEY, "bad")
    assert AdminPauseParams().load({"target": "historical"}) == PauseRequest("historical", "")
    with pytest.raises(dataclasses.FrozenInstanceError):
        reprocess.first = date(2020, 1, 1)
