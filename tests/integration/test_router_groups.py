"""The ``api`` router serves only the route groups ``API_ROUTES`` enables."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT

#: A well-formed key of a job that does not exist.
MISSING_KEY = "archive-bucket/ndt/ndt7/20200101"

pytestmark = pytest.mark.emulator


@pytest.fixture
def parser_only(tracker, monkeypatch):
    """A test client of ``api`` deployed the way Terraform deploys it: ``API_ROUTES=parser``."""
    from functions_framework import create_app

    from shared import runtime

    monkeypatch.setenv("API_ROUTES", "parser")
    monkeypatch.setattr(runtime, "tracker", lambda: tracker)
    return create_app("api", str(ROOT / "functions" / "main.py")).test_client()


@pytest.mark.parametrize("path", ["/maintain", "/postprocess", "/status", "/"])
def test_paths_of_other_groups_are_not_found(parser_only, path: str) -> None:
    response = parser_only.post(path)
    assert response.status_code == 404
    served = response.get_json()["error"].split("paths: ")[1].split(", ")
    assert "/v2/job/next" in served and "/maintain" not in served and "/status" not in served


def test_parser_paths_are_served(parser_only, tracker) -> None:
    for path, params in [
        ("/v2/job/heartbeat", {"id": MISSING_KEY}),
        ("/update", {"id": MISSING_KEY, "state": "parsing"}),
    ]:
        response = parser_only.post(path, query_string=params)
        assert response.status_code == 410, path  # served, and answered by the tracker
