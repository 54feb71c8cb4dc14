"""Every HTTP status path of the entry points, through the ``api`` router, on the emulator."""

from __future__ import annotations

import json
from datetime import date

import pytest
from google.api_core import exceptions as gexc

from shared.model import Job, State
from shared.schemas import MAX_DETAIL_LENGTH
from shared.store import doc_id, key_from_doc_id

JOB = Job("archive-bucket", "ndt", "ndt7", date(2019, 1, 2))
KEY = JOB.key()
MISSING_KEY = "archive-bucket/ndt/ndt7/20200101"
LONG = "x" * (MAX_DETAIL_LENGTH + 1)


@pytest.fixture
def job(tracker):
    """A job in ``parsing``."""
    tracker.add_job(JOB)
    tracker.set_status(KEY, State.PARSING, "starting tasks")
    return KEY


def snapshot(store):
    """Every job document, exactly as stored."""
    return {s.id: s.to_dict() for s in store.collection.stream()}


# (method, path, params, expected status, substring of the error message)
REJECTED = [
    ("GET", "/v2/job/update", {"id": KEY, "state": "parsing"}, 405, "not allowed"),
    ("PUT", "/v2/job/heartbeat", {"id": KEY}, 405, "not allowed"),
    ("GET", "/v2/job/error", {"id": KEY, "error": "e"}, 405, "not allowed"),
    ("POST", "/status", {}, 405, "not allowed"),
    ("POST", "/v2/job/update", {"state": "parsing"}, 422, "'id'"),
    ("POST", "/v2/job/update", {"id": "", "state": "parsing"}, 422, "'id'"),
    ("POST", "/v2/job/heartbeat", {}, 422, "'id'"),
    ("POST", "/v2/job/error", {"error": "e"}, 422, "'id'"),
    ("POST", "/v2/job/update", {"id": KEY}, 424, "'state'"),
    ("POST", "/v2/job/update", {"id": KEY, "state": ""}, 424, "'state'"),
    ("POST", "/v2/job/error", {"id": KEY}, 424, "'error'"),
    ("POST", "/v2/job/update", {"id": MISSING_KEY, "state": "parsing"}, 410, "not found"),
    ("POST", "/v2/job/heartbeat", {"id": MISSING_KEY}, 410, "not found"),
    ("POST", "/v2/job/error", {"id": MISSING_KEY, "error": "e"}, 410, "not found"),
    ("POST", "/v2/job/update", {"id": KEY, "state": "bogus"}, 400, "unknown state 'bogus'"),
    ("POST", "/v2/job/update", {"id": KEY, "state": "Parsing"}, 400, "unknown state"),
    ("POST", "/v2/job/update", {"id": "no-slashes", "state": "parsing"}, 400, "malformed job id"),
    (
        "POST",
        "/v2/job/update",
        {"id": "Bucket/ndt/ndt7/20190102", "state": "parsing"},
        400,
        "malformed",
    ),
    ("POST", "/v2/job/heartbeat", {"id": "archive-bucket/ndt/ndt7/20190230"}, 400, "invalid date"),
    ("POST", "/v2/job/heartbeat", {"id": "a/b/c/2019010"}, 400, "malformed"),
    ("POST", "/v2/job/heartbeat", {"id": "<script>/x/y/20190102"}, 400, "malformed"),
    ("POST", "/v2/job/update", {"id": KEY, "state": "parsing", "detail": LONG}, 400, "detail"),
    ("POST", "/v2/job/error", {"id": KEY, "error": LONG}, 400, "error"),
    (
        "POST",
        "/v2/job/update",
        {"id": KEY, "state": "complete"},
        409,
        "complete is set by post-processing (or an operator), not by a parser",
    ),
    (
        "POST",
        "/v2/job/update",
        {"id": KEY, "state": "init"},
        409,
        "init is set by next (a hand-out), not by a parser",
    ),
    ("POST", "/v2/job/update", {"id": KEY + "~", "state": "parsing"}, 400, "malformed run ''"),
    ("POST", "/v2/job/heartbeat", {"id": KEY + "~ABC"}, 400, "malformed run 'ABC'"),
    ("POST", "/v2/job/error", {"id": KEY + "~a~b", "error": "e"}, 400, "malformed run"),
    (
        "POST",
        "/v2/job/update",
        {"id": KEY + "~00000000", "state": "parsing"},
        409,
        "run 00000000 is no longer current",
    ),
    (
        "POST",
        "/v2/job/heartbeat",
        {"id": KEY + "~00000000"},
        409,
        "run 00000000 is no longer current",
    ),
    ("GET", "/status", {"state": "nope"}, 400, "unknown state"),
    ("GET", "/status", {"format": "xml"}, 400, "format"),
    ("GET", "/status", {"limit": "0"}, 400, "limit"),
    ("GET", "/status", {"experiment": "a b"}, 400, "experiment"),
    ("POST", "/v2/job/nothing", {}, 404, "no such path"),
]


@pytest.mark.parametrize(("method", "path", "params", "code", "message"), REJECTED)
def test_rejected_requests_answer_precisely_and_write_nothing(
    http, store, job, method, path, params, code, message
):
    before = snapshot(store)
    response = http.open(path, method=method, query_string=params)
    assert response.status_code == code
    body = response.get_json()
    assert body["status"] == code
    assert message in body["error"]
    assert snapshot(store) == before


#: The parsers' rejected requests, whose parameters may also come as a JSON body.
REJECTED_AS_JSON = [
    r for r in REJECTED if r[0] == "POST" and r[1].startswith("/v2/job/") and r[3] != 404
]


@pytest.mark.parametrize(("method", "path", "params", "code", "message"), REJECTED_AS_JSON)
def test_json_body_is_judged_as_the_query_string_is(
    http, store, job, method, path, params, code, message
):
    before = snapshot(store)
    response = http.post(path, json=params)
    assert response.status_code == code
    assert message in response.get_json()["error"]
    assert snapshot(store) == before


def test_json_body_as_requests_sends_it(http, tracker, job):
    # What requests.post(url, json={...}) sends: Content-Type application/json, an object.
    response = http.post(
        "/v2/job/update",
        data=json.dumps({"id": KEY, "state": "parsing", "detail": "from-json"}),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 200
    assert response.get_json() == {"ID": KEY, "State": "parsing", "Previous": "parsing"}
    assert tracker.get_status(KEY).detail == "from-json"
    assert http.post("/v2/job/heartbeat", json={"id": KEY}).get_json()["ID"] == KEY
    response = http.post("/v2/job/error", json={"id": KEY, "error": "bad archive"})
    assert response.status_code == 200
    assert tracker.get_status(KEY).state is State.PARSE_ERROR


def test_json_body_may_repeat_the_query_string_and_null_is_absent(http, tracker, job):
    response = http.post(
        f"/v2/job/update?id={KEY}", json={"id": KEY, "state": "parsing", "detail": None}
    )
    assert response.status_code == 200
    assert tracker.get_status(KEY).detail == "starting tasks"  # as with no detail in the query
    assert http.post("/v2/job/update", json={"id": None, "state": "parsing"}).status_code == 422


def test_whitespace_body_is_no_body_and_an_empty_query_value_is_absent(http, tracker, job):
    # A client that always sends a JSON content type, with nothing but a newline as body.
    response = http.post(
        f"/v2/job/update?id={KEY}&state=parsing&detail=from-query",
        data=" \n",
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 200
    assert tracker.get_status(KEY).detail == "from-query"
    # A template that leaves ?id= empty and sends the id in the body.
    response = http.post("/v2/job/update?id=", json={"id": KEY, "state": "parseError"})
    assert response.status_code == 200
    assert tracker.get_status(KEY).state is State.PARSE_ERROR


@pytest.mark.parametrize(
    ("query", "body", "message", "field"),
    [
        ("?state=parsing", {"id": KEY, "state": "postProcessing"}, "'state' differs", "state"),
        (f"?id={KEY}~abc", {"id": KEY, "state": "parsing"}, "'id' differs", "id"),
        ("", '{"id": "' + KEY + '", "state": ', "malformed JSON body", None),
        ("", "[1, 2]", "must be an object", None),
        ("", {"id": KEY, "state": "parsing", "detail": 7}, "'detail' must be a string", "detail"),
        ("", {"id": [KEY], "state": "parsing"}, "'id' must be a string", "id"),
        # A lone surrogate, as json= sends text decoded with surrogateescape: not UTF-8.
        (
            "",
            '{"id": "' + KEY + '", "state": "parsing", "detail": "f\\udcff"}',
            "'detail' is not valid Unicode text",
            "detail",
        ),
        ("", "[" * 100_000 + "]" * 100_000, "nested too deeply", None),
    ],
)
def test_bad_json_body_answers_400_and_writes_nothing(
    http, store, job, query, body, message, field
):
    before = snapshot(store)
    data = body if isinstance(body, str) else json.dumps(body)
    response = http.post(
        "/v2/job/update" + query, data=data, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    answer = response.get_json()
    assert message in answer["error"]
    if field:
        assert field in answer["fields"]
    assert snapshot(store) == before


def test_json_sent_as_a_form_body_says_which_content_type(http, store, job):
    # curl -d '{"id": ...}' without -H 'Content-Type: application/json'.
    before = snapshot(store)
    response = http.post(
        "/v2/job/update",
        data=json.dumps({"id": KEY, "state": "parsing"}),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400
    assert "Content-Type: application/json" in response.get_json()["error"]
    assert snapshot(store) == before


def test_json_body_is_not_read_by_the_other_endpoints(http):
    # Only the parsers' endpoints take a JSON body; the status page still reads its query.
    response = http.get("/status", json={"format": "xml"})
    assert response.status_code == 200


def test_method_not_allowed_names_the_allowed_method(http):
    response = http.get("/v2/job/update")
    assert response.headers["Allow"] == "POST"


def test_go_client_update_in_query_string_with_empty_body(http, tracker, job):
    response = http.post(
        "/v2/job/update",
        query_string={
            "id": KEY,
            "state": "parsing",
            "detail": "gs://archive-bucket/ndt/ndt7/2019/01/02/a.tgz",
        },
    )
    assert response.status_code == 200
    assert response.get_json() == {"ID": KEY, "State": "parsing", "Previous": "parsing"}
    assert tracker.get_status(KEY).detail == "gs://archive-bucket/ndt/ndt7/2019/01/02/a.tgz"


def test_form_body_is_accepted_and_wins_over_the_query(http, tracker, job):
    response = http.post(
        "/v2/job/update?detail=from-query",
        data={"id": KEY, "state": "parsing", "detail": "from-form"},
    )
    assert response.status_code == 200
    assert tracker.get_status(KEY).detail == "from-form"


def test_state_change_through_http(http, tracker, job):
    response = http.post("/v2/job/update", query_string={"id": KEY, "state": "postProcessing"})
    assert response.status_code == 200
    assert response.get_json()["Previous"] == "parsing"
    assert tracker.get_status(KEY).state is State.POST_PROCESSING


def test_heartbeat_ok(http, tracker, job):
    response = http.post("/v2/job/heartbeat", query_string={"id": KEY})
    assert response.status_code == 200
    # The job was just updated: it is known to be alive, so the heartbeat costs no write.
    assert response.get_json() == {"ID": KEY, "Recorded": False}
    tracker.clock.advance(minutes=1)
    response = http.post("/v2/job/heartbeat", query_string={"id": KEY})
    assert response.get_json() == {"ID": KEY, "Recorded": True}
    assert tracker.get_status(KEY).heartbeat_time == tracker.clock()


def test_error_sets_parse_error_with_the_error_as_detail(http, tracker, job):
    response = http.post("/v2/job/error", query_string={"id": KEY, "error": "corrupt archive"})
    assert response.status_code == 200
    status = tracker.get_status(KEY)
    assert status.state is State.PARSE_ERROR
    assert status.detail == "corrupt archive"


def test_unicode_detail_is_kept_exactly(http, tracker, job):
    text = 'gs://b/ü/日本/\u00e9\t"quoted"'
    response = http.post(
        "/v2/job/update", query_string={"id": KEY, "state": "parsing", "detail": text}
    )
    assert response.status_code == 200
    assert tracker.get_status(KEY).detail == text


def test_entry_point_names_are_routes_too(http, tracker, job):
    assert http.post("/heartbeat", query_string={"id": KEY}).status_code == 200
    assert http.post("/update", query_string={"id": KEY, "state": "parsing"}).status_code == 200
    assert http.post("/error", query_string={"id": KEY, "error": "e"}).status_code == 200
    assert http.get("/status").status_code == 200


def test_status_html_escapes_and_highlights(http, tracker, clock):
    evil = Job("archive-bucket", "ndt", "ndt5", date(2019, 1, 1))
    tracker.add_job(evil)
    tracker.set_status(evil.key(), State.PARSING, "<script>alert(1)</script>")
    clock.advance(seconds=1)
    tracker.add_job(JOB)
    response = http.get("/status")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    for header in ("Job", "Elapsed", "Update Time", "State", "Detail", "Updates", "Error"):
        assert f"<th>{header}</th>" in page
    # Oldest start first; the init job is highlighted, the parsing one is not.
    assert page.index("20190101:ndt/ndt5") < page.index("20190102:ndt/ndt7")
    rows = page.split("<tr")[2:]
    assert 'class="highlight' not in rows[0] and 'class="highlight' in rows[1]


def test_status_json_has_go_shapes_and_filters(http, tracker, clock):
    tracker.add_job(JOB)
    other = Job("archive-bucket", "wehe", "scamper1", date(2019, 1, 3))
    clock.advance(seconds=1)
    tracker.add_job(other)
    tracker.set_job_error(other.key(), "broken")

    body = http.get("/status", query_string={"format": "json"}).get_json()
    assert body["Count"] == 2 and [j["ID"] for j in body["Jobs"]] == [KEY, other.key()]
    first = body["Jobs"][0]
    assert first["Job"] == {
        "Bucket": "archive-bucket",
        "Experiment": "ndt",
        "Datatype": "ndt7",
        "Date": "2019-01-02T00:00:00Z",
        "Datasets": {"Tmp": "", "Raw": "", "Join": ""},
    }
    assert first["Status"]["HeartbeatTime"] == "0001-01-01T00:00:00Z"
    assert first["Status"]["History"][0]["State"] == "init"

    failed = http.get("/status", query_string={"format": "json", "state": "failed"}).get_json()
    assert [j["ID"] for j in failed["Jobs"]] == [other.key()]
    assert failed["Jobs"][0]["Error"] == "init: broken"
    assert failed["Jobs"][0]["Label"] == "init-failed"
    wehe = http.get("/status?format=json&experiment=wehe&datatype=scamper1").get_json()
    assert wehe["Count"] == 1
    limited = http.get("/status?format=json&limit=1").get_json()
    assert limited["Count"] == 2 and limited["Shown"] == 1
    assert json.loads(http.get("/status?format=json&datatype=none").data)["Jobs"] == []


@pytest.mark.parametrize("key", [KEY, "b/e%2F/t/20190102", "b/e/t/20190102%"])
def test_document_id_round_trips_and_has_no_slash(key):
    assert "/" not in doc_id(key)
    assert key_from_doc_id(doc_id(key)) == key


def test_document_id_is_readable():
    assert doc_id(KEY) == "archive-bucket%2Fndt%2Fndt7%2F20190102"


class _Broken:
    """A document reference whose every call fails the way a sick service does."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def __getattr__(self, name: str):
        def fail(*args, **kwargs):
            raise self.exc

        return fail


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (gexc.ServiceUnavailable("down"), 503),
        (gexc.DeadlineExceeded("slow"), 503),
        (RuntimeError("bug"), 500),
    ],
)
def test_storage_failures_answer_5xx_in_json(http, store, job, monkeypatch, exc, code):
    before = snapshot(store)
    monkeypatch.setattr(store, "_ref", lambda key: _Broken(exc))
    response = http.post("/v2/job/update", query_string={"id": KEY, "state": "parsing"})
    assert response.status_code == code
    assert response.get_json()["status"] == code
    assert snapshot(store) == before  # read through the collection, not the broken refs
