"""Checks a real answer against the OpenAPI document: its status is documented for the
operation, its content type is one the answer lists, and a JSON body has the documented
shape (every field's type, required fields, no undocumented field where none is allowed).
"""

from __future__ import annotations

import functools
from typing import Any

from openapi_schema_validator import OAS30Validator, oas30_format_checker

from shared.web import openapi
from shared.web.routes import enabled, groups_of


@functools.cache
def served_document() -> dict[str, Any]:
    """The document of every route (what the ``api`` router serves by default)."""
    routes = enabled(None)
    return openapi.document(routes, groups_of(routes))


def documented_schema(path: str, method: str, status: int, mimetype: str) -> dict[str, Any]:
    """The schema the document gives the answer; AssertionError if it is not documented."""
    operation = served_document()["paths"][path][method.lower()]
    responses = operation["responses"]
    assert str(status) in responses, f"{method} {path}: {status} not in {sorted(responses)}"
    content = responses[str(status)]["content"]
    kinds = {kind.split(";")[0].strip(): kind for kind in content}
    assert mimetype in kinds, f"{method} {path} {status}: {mimetype} not in {sorted(content)}"
    schema: dict[str, Any] = content[kinds[mimetype]]["schema"]
    return schema


def check_answer(response: Any, path: str, method: str) -> Any:
    """Assert that a Flask test client's ``response`` to ``method path`` is documented;
    return its JSON body (None if it is not JSON)."""
    schema = documented_schema(path, method, response.status_code, response.mimetype)
    if response.mimetype != "application/json":
        return None
    body = response.get_json()
    rooted = {"allOf": [schema], "components": served_document()["components"]}
    OAS30Validator(rooted, format_checker=oas30_format_checker).validate(body)
    return body
