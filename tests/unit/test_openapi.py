"""The OpenAPI document: served, valid, and true to the routes, methods, schemas and errors."""

from __future__ import annotations

import json
import re
from typing import Any

import flask
import pytest
from functions_framework import create_app
from openapi_spec_validator import validate

from functions import main
from shared.web import openapi
from shared.web.endpoint import App, endpoint
from shared.web.errors import ERROR_STATUS, MISSING_STATUS
from shared.web.routes import enabled

#: Every route the router serves by default (every group), by path.
ROUTES = enabled(None)

HTTP_METHODS = {"get", "head", "post", "put", "patch", "delete", "options"}


@pytest.fixture(scope="module")
def served() -> dict[str, Any]:
    """The document the router serves at /openapi.json."""
    app = create_app("api", main.__file__)
    response = app.test_client().get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    document: dict[str, Any] = json.loads(response.get_data(as_text=True))
    return document


def test_served_document_is_valid_openapi_3(served):
    validate(served)
    assert served["openapi"].startswith("3.")
    assert served == openapi.document(ROUTES)


def test_every_route_appears_with_exactly_the_methods_its_handler_allows(served):
    assert set(served["paths"]) == set(ROUTES)
    for path, handler in ROUTES.items():
        documented = set(served["paths"][path]) & HTTP_METHODS
        assert documented == {m.lower() for m in handler.methods}, path


def test_handlers_refuse_the_methods_the_document_leaves_out():
    client = create_app("api", main.__file__).test_client()
    for path, handler in ROUTES.items():
        for method in sorted({"GET", "POST", "PUT", "DELETE"} - set(handler.methods)):
            response = client.open(path, method=method)
            assert response.status_code == 405, (path, method)
            assert response.headers["Allow"] == ", ".join(handler.methods)


def test_parameters_match_the_schema_fields(served):
    for path, handler in ROUTES.items():
        for method in handler.methods:
            operation = served["paths"][path][method.lower()]
            documented = {p["name"]: p for p in operation.get("parameters", [])}
            schema = handler.params
            if schema is None:
                assert documented == {}, path
                continue
            expected = {f.data_key or name: f for name, f in schema.fields.items()}
            assert set(documented) == set(expected), path
            for name, field in expected.items():
                assert documented[name]["in"] == "query"
                assert documented[name]["required"] is field.required, (path, name)


def test_responses_include_every_error_the_code_can_answer(served):
    always = {400, 405, 500, *ERROR_STATUS.values()}
    for path, handler in ROUTES.items():
        required = (
            {n for n, f in handler.params.fields.items() if f.required}
            if handler.params is not None
            else set()
        )
        expected = always | {code for name, code in MISSING_STATUS if name in required}
        expected |= set(handler.answers)
        for method in handler.methods:
            codes = {int(c) for c in served["paths"][path][method.lower()]["responses"]}
            assert codes == expected, (path, method)


def test_update_requires_id_and_state_and_answers_their_missing_codes(served):
    operation = served["paths"]["/v2/job/update"]["post"]
    required = {p["name"] for p in operation["parameters"] if p["required"]}
    assert required == {"id", "state"}
    assert {"422", "424", "409", "410", "503"} <= set(operation["responses"])
    state = next(p for p in operation["parameters"] if p["name"] == "state")
    assert "postProcessing" in state["schema"]["enum"]
    job_id = next(p for p in operation["parameters"] if p["name"] == "id")
    assert job_id["schema"]["maxLength"] == 400 + 1 + 32  # key ~ run
    for text, matches in (
        ("b-1/ndt/ndt7/20190102", True),
        ("b-1/ndt/ndt7/20190102~0a1b2c3d", True),
        ("b-1/ndt/ndt7/20190102~", False),
        ("b-1/ndt/ndt7/20190102~A1", False),
    ):
        assert bool(re.match(job_id["schema"]["pattern"], text)) is matches, text


def test_every_operation_is_described(served):
    for path, item in served["paths"].items():
        for method, operation in item.items():
            assert operation["summary"].strip(), (path, method)
            assert operation["responses"], (path, method)


def test_next_job_documents_its_no_job_answer(served):
    responses = served["paths"]["/v2/job/next"]["post"]["responses"]
    assert "text/plain" in responses["503"]["content"]
    assert "application/json" in responses["503"]["content"]  # Unavailable
    assert responses["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/NextJobAnswer"
    )


def test_a_route_without_description_fails_loudly():
    @endpoint(["GET"])
    def silent(request: flask.Request, app: App) -> flask.Response:
        return flask.Response("")

    silent.__doc__ = None
    with pytest.raises(openapi.UndocumentedRoute, match="/silent: handler silent has no docstring"):
        openapi.document({**ROUTES, "/silent": silent})


def test_a_route_not_wrapped_by_endpoint_fails_loudly():
    def bare(request: flask.Request) -> flask.Response:
        """A bare handler."""
        return flask.Response("")

    with pytest.raises(
        openapi.UndocumentedRoute, match=re.escape("not wrapped by shared.web.endpoint.endpoint")
    ):
        openapi.document({"/bare": bare})


def test_only_the_parsers_endpoints_declare_a_json_body(served):
    declared = {
        path
        for path, item in served["paths"].items()
        for operation in item.values()
        if "requestBody" in operation
    }
    assert declared == {
        "/v2/job/update",
        "/v2/job/heartbeat",
        "/v2/job/error",
        "/update",
        "/heartbeat",
        "/error",
    }
    body = served["paths"]["/v2/job/update"]["post"]["requestBody"]
    assert body["required"] is False
    ref = body["content"]["application/json"]["schema"]["$ref"].rpartition("/")[2]
    assert set(served["components"]["schemas"][ref]["properties"]) == {"id", "state", "detail"}
