"""Unit tests for shared.model: job naming, key parsing, states and status history."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from shared.model import (
    KEEP_DETAIL,
    MAX_KEY_LENGTH,
    UTC,
    ZERO_TIME,
    Datasets,
    Job,
    State,
    StateInfo,
    Status,
    yesterday_date,
)

T0 = datetime(2019, 1, 2, 3, 4, 5, tzinfo=UTC)
PLUS5 = timezone(timedelta(hours=5))
MINUS5 = timezone(timedelta(hours=-5))


def at(seconds: float) -> datetime:
    """Return T0 plus ``seconds``."""
    return T0 + timedelta(seconds=seconds)


def make_job(
    bucket: str = "pusher-mlab-oti",
    experiment: str = "ndt",
    datatype: str = "ndt7",
    day: date = date(2019, 1, 2),
) -> Job:
    return Job(bucket, experiment, datatype, day)


def make_status(*entries: tuple[str, str]) -> Status:
    """A status whose history has one entry per (state, detail), one minute apart."""
    history = [
        StateInfo(State(state), at(60 * i), at(60 * i + 30), detail)
        for i, (state, detail) in enumerate(entries)
    ]
    return Status(history=history)


# --- Job naming ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("job", "key"),
    [
        (make_job(), "pusher-mlab-oti/ndt/ndt7/20190102"),
        (make_job(day=date(2011, 12, 31)), "pusher-mlab-oti/ndt/ndt7/20111231"),
        (make_job("b-1", "host", "switch", date(2020, 2, 29)), "b-1/host/switch/20200229"),
        (
            Job("bkt", "e", "t", date(2019, 1, 2), filter="x.*", datasets=Datasets("a", "b", "c")),
            "bkt/e/t/20190102",
        ),
    ],
)
def test_key(job: Job, key: str) -> None:
    assert job.key() == key


@pytest.mark.parametrize(
    ("job", "path"),
    [
        (make_job(), "gs://pusher-mlab-oti/ndt/ndt7/2019/01/02/"),
        (make_job(day=date(2011, 12, 31)), "gs://pusher-mlab-oti/ndt/ndt7/2011/12/31/"),
        (make_job(datatype=""), "gs://pusher-mlab-oti/ndt/2019/01/02/"),
        (make_job("b", "e", "", date(2000, 10, 9)), "gs://b/e/2000/10/09/"),
    ],
)
def test_path(job: Job, path: str) -> None:
    assert job.path() == path


@pytest.mark.parametrize(
    ("job", "prefix"),
    [
        (make_job(), "ndt/ndt7/2019/01/02/"),
        (make_job(datatype=""), "ndt/2019/01/02/"),
        (make_job("b", "e", "t", date(1999, 12, 31)), "e/t/1999/12/31/"),
    ],
)
def test_prefix(job: Job, prefix: str) -> None:
    assert job.prefix() == prefix
    assert job.path() == f"gs://{job.bucket}/{prefix}"


@pytest.mark.parametrize("job", [make_job(bucket=""), make_job(bucket="", datatype="")])
def test_prefix_rejects_malformed_path(job: Job) -> None:
    with pytest.raises(ValueError, match="bad GCS path"):
        job.prefix()


@pytest.mark.parametrize(
    ("job", "partition"),
    [
        (make_job(), "ndt7$20190102"),
        (make_job(datatype="tcpinfo", day=date(2021, 11, 30)), "tcpinfo$20211130"),
    ],
)
def test_table_partition(job: Job, partition: str) -> None:
    assert job.table_partition() == partition


@pytest.mark.parametrize(
    ("job", "text"),
    [
        (make_job(), "20190102:ndt/ndt7"),
        (make_job("other-bucket", "host", "switch", date(2020, 3, 1)), "20200301:host/switch"),
        (make_job(datatype=""), "20190102:ndt/"),
    ],
)
def test_str(job: Job, text: str) -> None:
    assert str(job) == text


# --- Daily jobs and UTC day boundaries -----------------------------------------


YESTERDAY_CASES = [
    pytest.param(datetime(2019, 1, 3, 0, 0, tzinfo=UTC), date(2019, 1, 2), id="utc-midnight"),
    pytest.param(
        datetime(2019, 1, 2, 23, 59, 59, 999999, tzinfo=UTC),
        date(2019, 1, 1),
        id="utc-before-midnight",
    ),
    pytest.param(datetime(2019, 1, 1, 0, 0, tzinfo=UTC), date(2018, 12, 31), id="new-year"),
    pytest.param(datetime(2019, 3, 1, 12, 0, tzinfo=UTC), date(2019, 2, 28), id="march-1st"),
    pytest.param(datetime(2020, 3, 1, 0, 0, 1, tzinfo=UTC), date(2020, 2, 29), id="leap-year"),
    # 00:30 at +05:00 is 19:30 UTC the previous day: yesterday is two local days back.
    pytest.param(
        datetime(2019, 1, 3, 0, 30, tzinfo=PLUS5), date(2019, 1, 1), id="after-local-midnight-east"
    ),
    # 23:30 at -05:00 is 04:30 UTC the next day.
    pytest.param(
        datetime(2019, 1, 2, 23, 30, tzinfo=MINUS5),
        date(2019, 1, 2),
        id="before-local-midnight-west",
    ),
    pytest.param(
        datetime(2019, 1, 3, 5, 0, tzinfo=PLUS5), date(2019, 1, 2), id="utc-midnight-seen-from-east"
    ),
]


@pytest.mark.parametrize(("now", "expected"), YESTERDAY_CASES)
def test_yesterday_date(now: datetime, expected: date) -> None:
    assert yesterday_date(now) == expected
    assert Job.yesterday_date(now) == expected


def test_yesterday_date_defaults_to_wall_clock() -> None:
    before = datetime.now(UTC).date() - timedelta(days=1)
    got = yesterday_date()
    after = datetime.now(UTC).date() - timedelta(days=1)
    assert got in {before, after}


@pytest.mark.parametrize(
    ("now", "daily"),
    [
        pytest.param(datetime(2019, 1, 3, 0, 0, tzinfo=UTC), True, id="first-instant-of-next-day"),
        pytest.param(
            datetime(2019, 1, 3, 23, 59, 59, 999999, tzinfo=UTC),
            True,
            id="last-instant-of-next-day",
        ),
        pytest.param(datetime(2019, 1, 2, 23, 59, 59, 999999, tzinfo=UTC), False, id="same-day"),
        pytest.param(datetime(2019, 1, 4, 0, 0, tzinfo=UTC), False, id="two-days-later"),
        # Local 2019-01-04 00:30 at +05:00 is still 2019-01-03 UTC.
        pytest.param(
            datetime(2019, 1, 4, 0, 30, tzinfo=PLUS5), True, id="just-after-local-midnight"
        ),
        # Local 2019-01-03 00:30 at +05:00 is 2019-01-02 UTC: the job's own day.
        pytest.param(
            datetime(2019, 1, 3, 0, 30, tzinfo=PLUS5), False, id="local-next-day-utc-same-day"
        ),
        pytest.param(
            datetime(2019, 1, 2, 19, 0, tzinfo=MINUS5), True, id="west-already-next-utc-day"
        ),
    ],
)
def test_is_daily(now: datetime, daily: bool) -> None:
    assert make_job(day=date(2019, 1, 2)).is_daily(now) is daily


# --- Job.from_key -----------------------------------------------------------------


def key_of_length(n: int) -> str:
    """A well-formed key of exactly ``n`` characters (n from 214 to 433)."""
    fixed = len("/" + "e" * 100 + "/" + "t" * 100 + "/20190102")
    return "b" * (n - fixed) + "/" + "e" * 100 + "/" + "t" * 100 + "/20190102"


@pytest.mark.parametrize(
    ("key", "job"),
    [
        ("pusher-mlab-oti/ndt/ndt7/20190102", make_job()),
        (
            "archive-measurement-lab/host/switch/20200229",
            make_job("archive-measurement-lab", "host", "switch", date(2020, 2, 29)),
        ),
        ("abc/e/t/19991231", make_job("abc", "e", "t", date(1999, 12, 31))),
        (
            "a.b_c-d/Exp.1/Type_2-x/20000101",
            make_job("a.b_c-d", "Exp.1", "Type_2-x", date(2000, 1, 1)),
        ),
        ("123/NDT/NDT7/20190102", make_job("123", "NDT", "NDT7")),
        ("abc/e/t/19700101", make_job("abc", "e", "t", date(1970, 1, 1))),
        ("abc/e/t/21991231", make_job("abc", "e", "t", date(2199, 12, 31))),
        (key_of_length(MAX_KEY_LENGTH), make_job("b" * 189, "e" * 100, "t" * 100)),
    ],
)
def test_from_key_round_trip(key: str, job: Job) -> None:
    parsed = Job.from_key(key)
    assert parsed == job
    assert parsed.filter == ""
    assert parsed.datasets == Datasets("", "", "")
    assert parsed.key() == key
    assert Job.from_key(job.key()) == job


def test_key_of_length_helper() -> None:
    assert len(key_of_length(MAX_KEY_LENGTH)) == MAX_KEY_LENGTH
    assert len(key_of_length(MAX_KEY_LENGTH + 1)) == MAX_KEY_LENGTH + 1


@pytest.mark.parametrize(
    ("key", "message"),
    [
        pytest.param(key_of_length(MAX_KEY_LENGTH + 1), "longer than 400", id="one-too-long"),
        pytest.param("x" * 5000, "longer than 400", id="far-too-long"),
        pytest.param("", "malformed job id", id="empty"),
        pytest.param("bucket/exp/20190102", "malformed job id", id="three-parts"),
        pytest.param("bucket/exp/type/extra/20190102", "malformed job id", id="five-parts"),
        pytest.param("bucket/exp/type/20190102/", "malformed job id", id="trailing-slash"),
        pytest.param("/exp/type/20190102", "malformed job id", id="empty-bucket"),
        pytest.param("bucket//type/20190102", "malformed job id", id="empty-experiment"),
        pytest.param("bucket/exp//20190102", "malformed job id", id="empty-datatype"),
        pytest.param("bucket/exp/type/", "malformed job id", id="empty-date"),
        pytest.param("Bucket/exp/type/20190102", "malformed job id", id="uppercase-bucket"),
        pytest.param("bu/exp/type/20190102", "malformed job id", id="bucket-too-short"),
        pytest.param("-bucket/exp/type/20190102", "malformed job id", id="bucket-leading-dash"),
        pytest.param("bucket-/exp/type/20190102", "malformed job id", id="bucket-trailing-dash"),
        pytest.param("buck$et/exp/type/20190102", "malformed job id", id="bucket-bad-char"),
        pytest.param("gs://bucket/exp/type/20190102", "malformed job id", id="gs-url"),
        pytest.param("bucket/e xp/type/20190102", "malformed job id", id="space-in-experiment"),
        pytest.param("bucket/-exp/type/20190102", "malformed job id", id="experiment-leading-dash"),
        pytest.param("bucket/exp/ty$pe/20190102", "malformed job id", id="datatype-dollar"),
        pytest.param(" bucket/exp/type/20190102", "malformed job id", id="leading-space"),
        pytest.param("bucket/exp/type/20190102 ", "malformed job id", id="trailing-space"),
        pytest.param("bucket/exp/type/20190102\n", "malformed job id", id="trailing-newline"),
        pytest.param("bucket/exp/type/2019010a", "malformed job id", id="non-digit-date"),
        pytest.param("bucket/exp/type/2019-01-02", "malformed job id", id="dashed-date"),
        pytest.param("bucket/exp/type/2019/01/02", "malformed job id", id="path-date"),
        pytest.param("bucket/exp/type/1900102", "malformed job id", id="seven-digit-date"),
        pytest.param("bucket/exp/type/201901021", "malformed job id", id="nine-digit-date"),
        pytest.param(
            "bucket/exp/type/\uff12\uff10\uff11\uff190102",
            "malformed job id",
            id="fullwidth-digits",
        ),
        pytest.param("bucket/exp/type/20190230", "invalid date", id="feb-30"),
        pytest.param("bucket/exp/type/20190229", "invalid date", id="feb-29-non-leap"),
        pytest.param("bucket/exp/type/20191301", "invalid date", id="month-13"),
        pytest.param("bucket/exp/type/20190100", "invalid date", id="day-0"),
        pytest.param("bucket/exp/type/20190431", "invalid date", id="april-31"),
        # job dates outside the window a snapshot can carry (shared.limits)
        pytest.param(
            "bucket/exp/type/19691231",
            "job date 1969-12-31 is outside the dates the "
            "tracker accepts: 1970-01-01 up to, not including, 2200-01-01",
            id="before-1970",
        ),
        pytest.param("bucket/exp/type/00010101", "0001-01-01 is outside", id="year-1"),
        pytest.param("bucket/exp/type/22000101", "2200-01-01 is outside", id="year-2200"),
        pytest.param("bucket/exp/type/99991231", "9999-12-31 is outside", id="year-9999"),
    ],
)
def test_from_key_rejects(key: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Job.from_key(key)


@pytest.mark.parametrize(
    ("day", "key"),
    [(date(1, 1, 1), "bucket/exp/type/00010101"), (date(999, 12, 31), "bucket/exp/type/09991231")],
)
def test_keys_of_small_years_have_four_digits(day: date, key: str) -> None:
    # Job.from_key refuses such dates (outside the window), but a key still formats as Go's.
    assert Job("bucket", "exp", "type", day).key() == key


# --- State --------------------------------------------------------------------------


WIRE = [
    (State.INIT, "init"),
    (State.PARSING, "parsing"),
    (State.PARSE_ERROR, "parseError"),
    (State.POST_PROCESSING, "postProcessing"),
    (State.STABILIZING, "stabilizing"),
    (State.LOADING, "loading"),
    (State.DEDUPLICATING, "deduplicating"),
    (State.COPYING, "copying"),
    (State.JOINING, "joining"),
    (State.DELETING, "deleting"),
    (State.FINISHING, "finishing"),
    (State.FAILED, "failed"),
    (State.COMPLETE, "complete"),
]


@pytest.mark.parametrize(("state", "wire"), WIRE)
def test_state_wire_string(state: State, wire: str) -> None:
    assert state.value == wire
    assert str(state) == wire
    assert f"{state}" == wire
    assert State.parse(wire) is state


def test_state_has_exactly_the_go_states() -> None:
    assert {s.value for s in State} == {wire for _, wire in WIRE}
    assert len(State) == 13


@pytest.mark.parametrize(
    "name",
    ["", "Parsing", "INIT", "ParseComplete", "parse_error", "cleaning", "done", " init", "init "],
)
def test_state_parse_rejects(name: str) -> None:
    with pytest.raises(ValueError, match="unknown state") as info:
        State.parse(name)
    message = str(info.value)
    assert repr(name) in message
    assert "valid states" in message
    for _, wire in WIRE:
        assert wire in message


# --- Status -------------------------------------------------------------------------


def test_new_status_has_one_init_entry() -> None:
    status = Status.new(T0)
    assert status.history == [StateInfo(State.INIT, T0, T0, "")]
    assert status.heartbeat_time == ZERO_TIME
    assert status.update_count == 0
    assert status.state is State.INIT
    assert status.prev is State.INIT
    assert status.label == "init"
    assert status.detail == ""
    assert status.error == ""
    assert status.elapsed == timedelta(0)


def test_new_status_defaults_to_wall_clock() -> None:
    before = datetime.now(UTC)
    status = Status.new()
    after = datetime.now(UTC)
    assert before <= status.start_time <= after
    assert status.start_time.utcoffset() == timedelta(0)
    assert status.detail_time == status.start_time


def test_new_statuses_do_not_share_history() -> None:
    a, b = Status.new(T0), Status.new(T0)
    a.new_state(State.PARSING, at(1))
    assert len(b.history) == 1


@pytest.mark.parametrize(
    ("states", "state", "prev", "label"),
    [
        (["init"], State.INIT, State.INIT, "init"),
        (["init", "parsing"], State.PARSING, State.INIT, "parsing"),
        (
            ["init", "parsing", "postProcessing"],
            State.POST_PROCESSING,
            State.PARSING,
            "postProcessing",
        ),
        (
            ["init", "parsing", "postProcessing", "loading", "failed"],
            State.FAILED,
            State.LOADING,
            "loading-failed",
        ),
        (
            ["init", "parsing", "parseError", "failed"],
            State.FAILED,
            State.PARSE_ERROR,
            "parseError-failed",
        ),
        (["init", "failed"], State.FAILED, State.INIT, "init-failed"),
        (["failed"], State.FAILED, State.INIT, "init-failed"),
        (
            [
                "init",
                "parsing",
                "postProcessing",
                "loading",
                "deduplicating",
                "copying",
                "deleting",
                "joining",
                "complete",
            ],
            State.COMPLETE,
            State.JOINING,
            "complete",
        ),
        (
            ["init", "parsing", "postProcessing", "stabilizing"],
            State.STABILIZING,
            State.POST_PROCESSING,
            "stabilizing",
        ),
    ],
)
def test_state_prev_label(states: list[str], state: State, prev: State, label: str) -> None:
    status = make_status(*[(s, "") for s in states])
    assert status.state is state
    assert status.prev is prev
    assert status.label == label


@pytest.mark.parametrize(
    ("entries", "detail"),
    [
        ([("init", "")], ""),
        ([("init", "a")], "a"),
        ([("init", "a"), ("parsing", "")], "a"),
        ([("init", "a"), ("parsing", "b")], "b"),
        ([("init", "a"), ("parsing", "b"), ("postProcessing", "")], "b"),
        ([("init", "a"), ("parsing", ""), ("postProcessing", "")], ""),
        ([("init", "a"), ("parsing", "b"), ("failed", "boom")], "boom"),
        ([("init", "a"), ("parsing", "b"), ("failed", "")], "b"),
        ([("init", ""), ("parsing", "-")], "-"),
    ],
)
def test_detail_falls_back_to_previous_entry(entries: list[tuple[str, str]], detail: str) -> None:
    assert make_status(*entries).detail == detail


def test_times() -> None:
    history = [
        StateInfo(State.INIT, at(0), at(10), "a"),
        StateInfo(State.PARSING, at(100), at(150), "b"),
        StateInfo(State.POST_PROCESSING, at(200), at(275), "c"),
    ]
    status = Status(history=history)
    assert status.start_time == at(0)
    assert status.state_change_time == at(200)
    assert status.detail_time == at(275)
    assert status.elapsed == timedelta(seconds=275)
    assert status.last_state_info is history[-1]


@pytest.mark.parametrize(
    ("start", "detail_time", "elapsed"),
    [
        (0, 0, 0),
        (0, 0.4, 0),
        (0, 0.6, 1),
        (0, 1.499999, 1),
        (0, 1.5, 2),
        (0, 59.9, 60),
        (10, 70.2, 60),
        (0, 3723, 3723),
        (0, 86400 * 3 + 0.7, 86400 * 3 + 1),
    ],
)
def test_elapsed_rounds_to_second(start: float, detail_time: float, elapsed: int) -> None:
    status = Status(history=[StateInfo(State.INIT, at(start), at(detail_time))])
    assert status.elapsed == timedelta(seconds=elapsed)


def test_elapsed_uses_first_start_and_last_detail_time() -> None:
    status = Status(
        history=[
            StateInfo(State.INIT, at(0), at(5000)),
            StateInfo(State.PARSING, at(10), at(20)),
        ]
    )
    assert status.elapsed == timedelta(seconds=20)


@pytest.mark.parametrize(("detail_time", "elapsed"), [(0.5, 1), (2.5, 3)])
def test_elapsed_rounds_half_away_from_zero_like_go(detail_time: float, elapsed: int) -> None:
    status = Status(history=[StateInfo(State.INIT, at(0), at(detail_time))])
    assert status.elapsed == timedelta(seconds=elapsed)


@pytest.mark.parametrize(
    ("entries", "error"),
    [
        ([("init", "")], ""),
        ([("init", "boom")], ""),
        ([("init", "x"), ("parsing", "boom")], ""),
        ([("init", "x"), ("failed", "parsing: boom")], "parsing: boom"),
        ([("init", "x"), ("failed", "")], ""),
        ([("init", "x"), ("parsing", "y"), ("complete", "done")], ""),
    ],
)
def test_error_only_when_failed(entries: list[tuple[str, str]], error: str) -> None:
    assert make_status(*entries).error == error


@pytest.mark.parametrize(
    ("old", "new", "kept"),
    [
        ("a", "b", "b"),
        ("a", KEEP_DETAIL, "a"),
        ("", KEEP_DETAIL, ""),
        ("a", "", ""),
        ("a", "--", "--"),
        ("a", " - ", " - "),
        ("a", "a", "a"),
    ],
)
def test_set_detail(old: str, new: str, kept: str) -> None:
    status = make_status(("init", "first"), ("parsing", old))
    before = list(status.history)
    returned = status.set_detail(new, at(999))
    assert returned == before[-1]
    assert returned.detail == old
    assert returned.detail_time == at(90)
    assert len(status.history) == 2
    assert status.history[0] == before[0]
    last = status.last_state_info
    assert last.state is State.PARSING
    assert last.start == before[-1].start
    assert last.detail_time == at(999)
    assert last.detail == kept


def test_keep_detail_is_dash() -> None:
    assert KEEP_DETAIL == "-"


def test_state_info_with_detail_returns_copy() -> None:
    info = StateInfo(State.LOADING, at(0), at(1), "old")
    copy = info.with_detail("new", at(2))
    assert copy == StateInfo(State.LOADING, at(0), at(2), "new")
    assert info == StateInfo(State.LOADING, at(0), at(1), "old")
    assert info.with_detail(KEEP_DETAIL, at(3)) == StateInfo(State.LOADING, at(0), at(3), "old")


@pytest.mark.parametrize(
    ("states", "requested", "appended"),
    [
        (["init"], State.PARSING, True),
        (["init"], State.INIT, False),
        (["init", "parsing"], State.PARSING, False),
        (["init", "parsing"], State.PARSE_ERROR, True),
        (["init", "parsing"], State.INIT, True),
        (["init", "parsing", "postProcessing", "loading"], State.FAILED, True),
        (["init", "failed"], State.FAILED, False),
        (["init", "complete"], State.COMPLETE, False),
    ],
)
def test_new_state(states: list[str], requested: State, appended: bool) -> None:
    status = make_status(*[(s, f"d{i}") for i, s in enumerate(states)])
    before = list(status.history)
    returned = status.new_state(requested, at(999))
    assert returned == before[-1]
    assert status.state is requested
    if appended:
        assert status.history == [*before, StateInfo(requested, at(999), at(999), "")]
        assert status.prev is before[-1].state
        assert status.state_change_time == at(999)
    else:
        assert status.history == before
        assert status.detail_time == before[-1].detail_time


def test_new_state_then_detail_sequence() -> None:
    status = Status.new(T0)
    status.set_detail("gs://x/1.tgz", at(1))
    status.new_state(State.PARSING, at(2))
    status.set_detail("gs://x/2.tgz", at(3))
    status.new_state(State.POST_PROCESSING, at(4))
    assert [info.state for info in status.history] == [
        State.INIT,
        State.PARSING,
        State.POST_PROCESSING,
    ]
    assert status.detail == "gs://x/2.tgz"
    assert status.start_time == T0
    assert status.state_change_time == at(4)
    assert status.elapsed == timedelta(seconds=4)
