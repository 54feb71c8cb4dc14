"""``API_ROUTES``, ``POSTPROCESS_BATCH`` and ``POSTPROCESS_TICK_SECONDS``: parsing, and the
router's groups covering its paths."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from shared.config import ConfigError
from shared.postprocess import PostProcessPolicy
from shared.runtime import Settings
from shared.web.routes import ROUTE_GROUPS, ROUTES, enabled

MAIN = Path(__file__).resolve().parents[2] / "functions" / "main.py"


def _load_main():
    spec = importlib.util.spec_from_file_location("main_under_test", MAIN)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_defaults_enable_every_group_and_the_policy_batch() -> None:
    s = Settings.from_env({})
    assert s.api_routes is None
    assert s.postprocess_batch == PostProcessPolicy.batch == 50


def test_values_are_read() -> None:
    s = Settings.from_env(
        {
            "API_ROUTES": " parser, status ,",
            "POSTPROCESS_BATCH": "200",
            "POSTPROCESS_TICK_SECONDS": "90.5",
        }
    )
    assert s.api_routes == frozenset({"parser", "status"})
    assert s.postprocess_batch == 200
    assert s.postprocess_tick == 90.5


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("API_ROUTES", " , "),
        ("POSTPROCESS_BATCH", "0"),
        ("POSTPROCESS_BATCH", "many"),
        ("POSTPROCESS_TICK_SECONDS", "0"),
        ("POSTPROCESS_TICK_SECONDS", "481"),
        ("POSTPROCESS_TICK_SECONDS", "nan"),
    ],
)
def test_malformed_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name):
        Settings.from_env({name: value})


def test_every_route_is_in_exactly_one_group() -> None:
    grouped = [path for paths in ROUTE_GROUPS.values() for path in paths]
    paths = [route.path for route in ROUTES]
    assert len(set(paths)) == len(paths), "a path is routed twice"
    assert sorted(grouped) == sorted(paths), "ROUTES and ROUTE_GROUPS differ"


def test_parser_group_holds_only_the_parser_paths() -> None:
    routes = enabled(frozenset({"parser"}))
    assert set(routes) == {
        "/v2/job/next",
        "/v2/job/update",
        "/v2/job/heartbeat",
        "/v2/job/error",
        "/next_job",
        "/update",
        "/heartbeat",
        "/error",
    }
    assert {h.__name__ for h in routes.values()} == {"next_job", "update", "heartbeat", "error"}


def test_no_groups_given_means_every_route() -> None:
    assert enabled(None) == {route.path: route.handler for route in ROUTES}


def test_unknown_group_is_a_config_error_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"API_ROUTES: unknown route group 'admins'.*parser"):
        enabled(frozenset({"parser", "admins"}))


def test_unknown_group_stops_the_module_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_ROUTES", "parser,sheduled")
    with pytest.raises(ConfigError, match="sheduled"):
        _load_main()
    sys.modules.pop("main_under_test", None)
