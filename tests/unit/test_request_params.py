"""How the parsers' endpoints merge the query string with a JSON body (``shared.web.endpoint.params``)."""

from __future__ import annotations

import flask
import pytest

from shared.web.endpoint import params
from shared.web.errors import HttpError

APP = flask.Flask(__name__)
KEY = "archive-bucket/ndt/ndt7/20190102"
JSON = "application/json"


@pytest.mark.parametrize(
    ("query", "body", "expected"),
    [
        # A body that is empty or only whitespace is no body.
        (f"id={KEY}", "", {"id": KEY}),
        (f"id={KEY}&state=parsing", "   ", {"id": KEY, "state": "parsing"}),
        (f"id={KEY}", " \n\t\r\n", {"id": KEY}),
        # An empty query value is not a value: the body's wins.
        ("id=", '{"id": "' + KEY + '"}', {"id": KEY}),
        (
            "id=&state=",
            '{"id": "' + KEY + '", "state": "parsing"}',
            {"id": KEY, "state": "parsing"},
        ),
        ("detail=", '{"detail": "from the body"}', {"detail": "from the body"}),
        # The same value twice is fine; an empty query value without a body value stays empty.
        (f"id={KEY}", '{"id": "' + KEY + '"}', {"id": KEY}),
        ("id=", '{"state": "parsing"}', {"id": "", "state": "parsing"}),
        ("", "  {}  ", {}),
    ],
)
def test_json_body_joins_the_query_string(query: str, body: str, expected: dict[str, str]) -> None:
    with APP.test_request_context(
        f"/v2/job/update?{query}", method="POST", data=body, content_type=JSON
    ):
        assert params(flask.request, json_body=True) == expected


@pytest.mark.parametrize(
    ("query", "body", "message"),
    [
        (f"id={KEY}~abc", '{"id": "' + KEY + '"}', "'id' differs"),
        ("state=parsing", '{"state": "postProcessing"}', "'state' differs"),
        ("", '  {"id": ', "malformed JSON body"),
        ("", " [] ", "must be an object"),
    ],
)
def test_a_conflicting_or_malformed_body_is_refused(query: str, body: str, message: str) -> None:
    with (
        APP.test_request_context(
            f"/v2/job/update?{query}", method="POST", data=body, content_type=JSON
        ),
        pytest.raises(HttpError) as caught,
    ):
        params(flask.request, json_body=True)
    assert caught.value.status == 400
    assert message in caught.value.message


def test_whitespace_is_no_body_without_json_body_either() -> None:
    with APP.test_request_context("/status?format=json", method="GET", data=" ", content_type=JSON):
        assert params(flask.request) == {"format": "json"}


@pytest.mark.parametrize(
    "query",
    ["id=&id=other-bucket/ndt/ndt7/20190102", "id=other-bucket/ndt/ndt7/20190102&id="],
)
def test_a_repeated_query_parameter_must_agree_with_the_body_in_every_value(query: str) -> None:
    body = '{"id": "' + KEY + '"}'
    with (
        APP.test_request_context(
            f"/v2/job/update?{query}", method="POST", data=body, content_type=JSON
        ),
        pytest.raises(HttpError) as caught,
    ):
        params(flask.request, json_body=True)
    assert caught.value.status == 400
    assert "'id' differs" in caught.value.message


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/octet-stream"])
def test_a_json_object_without_a_json_content_type_names_the_header(
    content_type: str | None,
) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}
    with (
        APP.test_request_context(
            "/v2/job/update", method="POST", data=' {"id": "' + KEY + '"}', headers=headers
        ),
        pytest.raises(HttpError) as caught,
    ):
        params(flask.request, json_body=True)
    assert caught.value.status == 400
    assert "Content-Type: application/json" in caught.value.message


@pytest.mark.parametrize(
    ("body", "kind"),
    [("null", "null"), ("[1]", "an array"), ("5", "a number"), ('"s"', "a string")],
)
def test_a_body_that_is_not_an_object_is_named_in_json_terms(body: str, kind: str) -> None:
    with (
        APP.test_request_context("/v2/job/update", method="POST", data=body, content_type=JSON),
        pytest.raises(HttpError) as caught,
    ):
        params(flask.request, json_body=True)
    assert caught.value.status == 400
    assert caught.value.message == f"the JSON body must be an object, not {kind}"
