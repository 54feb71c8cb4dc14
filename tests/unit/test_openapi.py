"""The OpenAPI document: served, valid, and true to the routes, methods, schemas and errors."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

import flask
import pytest
from functions_framework import create_app
from openapi_spec_validator import validate

from functions import main
from shared.errors import Conflict, NotFound
from shared.postprocess import TickSummary
from shared.snapshot import ImportResult, SnapshotResult
from shared.web import openapi
from shared.web.endpoint import Answer, App, endpoint
from shared.web.errors import MISSING_STATUS
from shared.web.routes import ROUTE_GROUPS, enabled, groups_of

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
    assert served == openapi.document(ROUTES, groups_of(ROUTES), "http://localhost")


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


def test_responses_are_the_answers_and_the_errors_each_endpoint_can_give(served):
    for path, handler in ROUTES.items():
        expected = set(handler.error_statuses) | set(handler.answers)
        for method in handler.methods:
            codes = {int(c) for c in served["paths"][path][method.lower()]["responses"]}
            assert codes == expected, (path, method)


#: The error statuses of each operation, from what its handler can raise: the wrapper's
#: 405 and 500 everywhere; 400 and the missing-parameter codes only with parameters;
#: 409 and 410 only where a job's state or existence is at stake (the job page, a page,
#: answers an unknown job with 404); 401 where the
#: operator is named; 503 wherever Firestore is read (and next's no-job answer).
ERRORS = {
    "/openapi.json": {405, 500},
    "/metrics": {405, 500, 503},
    "/status": {400, 405, 500, 503},
    "/status/job": {400, 404, 405, 422, 500, 503},
    "/maintain": {405, 500, 503},
    "/postprocess": {405, 500, 503},
    "/v2/job/next": {405, 500, 503},
    "/v2/job/update": {400, 405, 409, 410, 422, 424, 500, 503},
    "/v2/job/error": {400, 405, 409, 410, 422, 424, 500, 503},
    "/v2/job/heartbeat": {400, 405, 409, 410, 422, 500, 503},
    "/admin/jobs": {400, 401, 405, 500, 503},
    "/admin/jobs/retry": {400, 401, 405, 500, 503},
    "/admin/jobs/fail": {400, 401, 405, 500, 503},
    "/admin/job": {400, 401, 405, 410, 422, 500, 503},
    "/admin/job/retry": {400, 401, 405, 409, 410, 422, 500, 503},
    "/admin/job/fail": {400, 401, 405, 409, 410, 422, 500, 503},
    "/admin/reprocess": {400, 401, 405, 500, 503},
    "/admin/reprocess/cancel": {400, 401, 405, 500, 503},
    "/admin/pause": {400, 401, 405, 409, 500, 503},
    "/admin/resume": {400, 401, 405, 409, 500, 503},
    "/admin/controls": {401, 405, 500, 503},
    "/admin/snapshot/export": {401, 405, 409, 500, 503},
    "/admin/snapshot/import": {400, 401, 405, 409, 500, 503},
}


def test_each_operation_lists_only_the_errors_its_handler_can_answer(served):
    assert set(ERRORS) <= set(served["paths"])
    for path, item in served["paths"].items():
        handler = ROUTES[path]
        for method, operation in item.items():
            errors = {
                int(code)
                for code, answer in operation["responses"].items()
                if answer["content"].get("application/json", {}).get("schema")
                == {"$ref": "#/components/schemas/ErrorBody"}
            }
            expected = ERRORS.get(path, ERRORS.get(_canonical(path)))
            assert errors <= handler.error_statuses, (path, method)
            assert errors == expected, (path, method)
    metrics = served["paths"]["/metrics"]["get"]["responses"]
    assert not {"400", "409", "410", "422", "424"} & set(metrics)


def _canonical(path: str) -> str:
    """An alias's canonical path (``/update`` → ``/v2/job/update``, ``/`` → ``/status``)."""
    return {"/": "/status", "/next_job": "/v2/job/next"}.get(path, f"/v2/job{path}")


def test_missing_parameter_codes_only_where_that_parameter_is_required(served):
    for path, handler in ROUTES.items():
        required = (
            {n for n, f in handler.params.fields.items() if f.required}
            if handler.params is not None
            else set()
        )
        for method in handler.methods:
            codes = {int(c) for c in served["paths"][path][method.lower()]["responses"]}
            for code in {c for _, c in MISSING_STATUS} & codes:
                assert {n for n, c in MISSING_STATUS if c == code} & required, (path, code)


def test_declared_raises_give_their_status():
    @endpoint(["POST"], raises=(Conflict, NotFound, 401))
    def acting(request: flask.Request, app: App) -> flask.Response:
        """Act."""
        return flask.Response("")

    @endpoint(["GET"])
    def pure(request: flask.Request, app: App) -> flask.Response:
        """Answer."""
        return flask.Response("")

    assert acting.error_statuses == {405, 500, 409, 410, 401}
    assert pure.error_statuses == {405, 500}


def test_every_200_answer_has_a_schema_for_each_content_type(served):
    for path, item in served["paths"].items():
        for method, operation in item.items():
            content = operation["responses"]["200"]["content"]
            assert content, (path, method)
            for kind, media in content.items():
                assert media.get("schema"), (path, method, kind)
                if kind == "application/json" and path != "/openapi.json":
                    assert "$ref" in media["schema"], (path, method)


def test_every_admin_and_scheduled_answer_has_a_named_schema(served):
    names = {
        "/admin/jobs": "JobList",
        "/admin/job": "AdminJob",
        "/admin/job/retry": "AdminJob",
        "/admin/job/fail": "FailedJob",
        "/admin/reprocess": "ReprocessAnswer",
        "/admin/reprocess/cancel": "CancelAnswer",
        "/admin/pause": "PausedAnswer",
        "/admin/resume": "ResumedAnswer",
        "/admin/controls": "ControlsAnswer",
        "/admin/snapshot/export": "ExportAnswer",
        "/admin/snapshot/import": "ImportAnswer",
        "/maintain": "MaintainAnswer",
        "/postprocess": "PostprocessAnswer",
        "/status": "StatusAnswer",
        "/v2/job/next": "NextJobAnswer",
    }
    for path, name in names.items():
        (operation,) = [op for method, op in served["paths"][path].items() if method != "head"]
        schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
        assert schema["$ref"] == f"#/components/schemas/{name}", path
    job = served["components"]["schemas"]["Job"]["properties"]["Date"]
    assert job == {"type": "string", "format": "date-time"}


def test_answer_schemas_follow_the_results_they_show():
    assert set(openapi.SnapshotAnswer().fields) == {
        f.name for f in dataclasses.fields(SnapshotResult)
    }
    assert set(openapi.ImportAnswer().fields) - {"Source", "Who"} == {
        "".join(w.title() for w in f.name.split("_")) for f in dataclasses.fields(ImportResult)
    }
    assert set(openapi.PostprocessAnswer().fields) == {
        f.name for f in dataclasses.fields(TickSummary)
    } | {"duration_seconds", "time"}


def test_no_summary_or_description_carries_restructuredtext(served):
    markup = re.compile(r"``|:\w+:`")
    for path, item in served["paths"].items():
        for method, operation in item.items():
            assert not markup.search(operation["summary"]), (path, method, operation["summary"])
            assert "`" not in operation["summary"], (path, method)
            assert not markup.search(operation.get("description", "")), (path, method)
    assert served["paths"]["/v2/job/update"]["post"]["summary"] == (
        "Report progress or a new state (parser states only)."
    )
    assert served["paths"]["/maintain"]["post"]["summary"] == (
        "Expire stale jobs, remove old complete ones, snapshot (Cloud Scheduler)."
    )


def test_plain_takes_out_roles_and_literals():
    assert openapi.plain("see :class:`~shared.errors.Conflict` and ``x``") == (
        "see shared.errors.Conflict and `x`"
    )
    assert openapi.plain("``/a?b=``: say ``No job found.`` and :func:`f`", summary=True) == (
        'Say "No job found." and f'
    )


def test_every_operation_has_its_route_group_as_tag(served):
    group_of = {path: group for group, paths in ROUTE_GROUPS.items() for path in paths}
    for path, item in served["paths"].items():
        for method, operation in item.items():
            assert operation["tags"] == [group_of[path]], (path, method)
    assert [t["name"] for t in served["tags"]] == list(ROUTE_GROUPS)
    assert all(t["description"] for t in served["tags"])


def test_servers_and_bearer_security(served, monkeypatch):
    assert served["servers"][0]["url"] == "http://localhost"
    scheme = served["components"]["securitySchemes"]["bearerAuth"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    assert served["security"] == [{"bearerAuth": []}, {}]  # locally, a token is optional
    monkeypatch.setenv("K_SERVICE", "api")
    app = create_app("api", main.__file__)
    deployed = app.test_client().get("/openapi.json", base_url="http://api-x.a.run.app").get_json()
    validate(deployed)
    assert deployed["servers"][0]["url"] == "https://api-x.a.run.app"
    assert deployed["security"] == [{"bearerAuth": []}]  # deployed, every call needs one


def test_a_json_answer_without_a_schema_fails_loudly():
    @endpoint(["GET"], answers={200: Answer("something")})
    def shapeless(request: flask.Request, app: App) -> flask.Response:
        """Answer something."""
        return flask.Response("")

    with pytest.raises(openapi.UndocumentedRoute, match="/shapeless: its 200 JSON answer"):
        openapi.document({"/shapeless": shapeless})


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
            # a whole sentence: a docstring whose first line wraps leaves it cut mid-phrase
            assert operation["summary"].endswith("."), (path, method, operation["summary"])
            assert operation["responses"], (path, method)


def test_next_job_documents_its_no_job_answer(served):
    responses = served["paths"]["/v2/job/next"]["post"]["responses"]
    assert "text/plain" in responses["503"]["content"]
    assert "application/json" in responses["503"]["content"]  # Unavailable
    assert responses["503"]["content"]["text/plain"]["schema"] == {"type": "string"}
    assert responses["503"]["headers"]["Retry-After"]["schema"] == {"type": "integer"}
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
