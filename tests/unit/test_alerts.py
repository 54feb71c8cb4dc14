"""The alert rules (``deploy/alerts.yml``) and their Cloud Monitoring twins
(``terraform/monitoring.tf``): offline checks.

``promtool check rules`` and ``promtool test rules deploy/alerts_test.yml`` run when
``promtool`` is on PATH (``.ci/run`` installs Debian's ``prometheus`` package for it); the
rules' structure and expressions are checked here either way, and
``tests/integration/test_metrics.py`` checks that every metric they query is served.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from shared.gotime import parse_duration
from tests.offline import ROOT, TERRAFORM_DIR
from tests.unit.test_terraform import Config

ALERTS = ROOT / "deploy" / "alerts.yml"
#: promtool's unit tests of the rules: each alert fires, and not before its time.
ALERTS_TEST = ROOT / "deploy" / "alerts_test.yml"
#: PromQL functions and aggregations the rules may use.
PROMQL_FUNCTIONS = {
    "absent",
    "hour",
    "increase",
    "max",
    "min",
    "rate",
    "sum",
    "time",
}
#: PromQL keywords that are followed by a parenthesis without being functions.
PROMQL_KEYWORDS = {"by", "on", "without", "ignoring", "group_left", "group_right"}
#: Everything a rule has, and nothing more.
RULE_KEYS = {"alert", "expr", "for", "labels", "annotations"}
#: The alerts issue #15 asks for, by rule name.
REQUIRED_ALERTS = {
    "GardenerMaintainNotSucceeding",
    "GardenerDailyJobsLate",
    "GardenerJobInFlightTooLong",
    "GardenerFailuresRising",
    "GardenerSnapshotStale",
}


def rules() -> list[dict[str, Any]]:
    """Every rule of deploy/alerts.yml, its group's name checked on the way."""
    document = yaml.safe_load(ALERTS.read_text())
    assert set(document) == {"groups"}
    found: list[dict[str, Any]] = []
    for group in document["groups"]:
        assert set(group) == {"name", "rules"} and group["name"] == "gardener"
        found.extend(group["rules"])
    return found


def unquoted(expr: str) -> str:
    """The expression with its string literals emptied."""
    return re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)


def balanced(expr: str) -> bool:
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    for char in unquoted(expr):
        if char in "([{":
            stack.append(char)
        elif char in pairs and (not stack or stack.pop() != pairs[char]):
            return False
    return not stack


def test_every_rule_has_the_prometheus_structure() -> None:
    found = rules()
    names = [rule["alert"] for rule in found]
    assert len(names) == len(set(names))
    assert set(names) >= REQUIRED_ALERTS
    for rule in found:
        assert set(rule) == RULE_KEYS, rule["alert"]
        assert re.fullmatch(r"Gardener[A-Z][A-Za-z]+", rule["alert"])
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        assert rule["labels"] == {"severity": rule["labels"]["severity"]}
        assert rule["labels"]["severity"] in {"critical", "warning"}
        assert set(rule["annotations"]) == {"summary", "description"}
        assert all(text.strip() for text in rule["annotations"].values())


@pytest.mark.parametrize("rule", rules(), ids=lambda rule: rule["alert"])
def test_every_expression_is_well_formed(rule: dict[str, Any]) -> None:
    expr = rule["expr"]
    assert balanced(expr), expr
    called = set(re.findall(r"\b([a-z_]+)\s*\(", unquoted(expr))) - PROMQL_KEYWORDS
    assert called <= PROMQL_FUNCTIONS, called - PROMQL_FUNCTIONS
    metrics = set(re.findall(r"\bgardener_[a-z0-9_]+", expr))
    assert metrics, "every rule queries the tracker's metrics"
    # counters are queried by their sample name, and only through rate() or increase()
    for counter in {m for m in metrics if m.endswith("_total")}:
        uses = re.findall(rf"\b{counter}\b", expr)
        assert len(uses) == len(re.findall(rf"\b(?:increase|rate)\({counter}\[", expr)), expr


def test_promtool_accepts_the_rules() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian's prometheus package provides it)")
    done = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian's prometheus package provides it)")
    done = subprocess.run(
        [promtool, "test", "rules", str(ALERTS_TEST)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_a_promtool_unit_test_that_fires_it() -> None:
    document = yaml.safe_load(ALERTS_TEST.read_text())
    assert document["rule_files"] == [ALERTS.name]
    fired = {
        case["alertname"]
        for test in document["tests"]
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert fired == {rule["alert"] for rule in rules()}


# --- the same rules in Cloud Monitoring ---------------------------------------------------


@pytest.fixture(scope="module")
def tf() -> Config:
    return Config(TERRAFORM_DIR)


def with_defaults(query: str, tf: Config) -> str:
    """A Terraform query with each ``${var.name}`` replaced by the variable's default."""

    def default(match: re.Match[str]) -> str:
        value = tf.variables[match.group(1)]["default"]
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)

    return re.sub(r"\$\{var\.([a-z0-9_]+)\}", default, query)


def test_every_rule_is_a_cloud_monitoring_policy_with_the_same_query(tf: Config) -> None:
    policies = tf.locals["alert_policies"]
    found = rules()
    assert set(policies) == {rule["alert"] for rule in found}
    for rule in found:
        policy = policies[rule["alert"]]
        assert with_defaults(policy["query"], tf) == rule["expr"], rule["alert"]
        assert policy["duration"] == f"{int(parse_duration(rule['for']).total_seconds())}s"
        assert policy["severity"] == rule["labels"]["severity"].upper()
    body = tf.resource("google_monitoring_alert_policy", "gardener")
    (condition,) = body["conditions"][0]["condition_prometheus_query_language"]
    assert condition["query"] == "${each.value.query}"
    assert condition["alert_rule"] == "${each.key}"
    assert body["enabled"] == "${var.alerts_enabled}"


def test_the_in_flight_alert_waits_for_the_configs_tracker_timeout(tf: Config) -> None:
    config = yaml.safe_load((ROOT / "config" / "gardener.yml").read_text())
    timeout = parse_duration(config["tracker"]["timeout"]).total_seconds()
    assert tf.variables["alert_in_flight_seconds"]["default"] == timeout


def test_the_dashboard_charts_throughput_failures_in_flight_and_stream_positions(
    tf: Config,
) -> None:
    charts = tf.locals["dashboard_charts"]
    queries = " ".join(chart["query"] for chart in charts)
    for metric in (
        "gardener_completed_total",
        "gardener_fail_total",
        "gardener_tasks_in_flight",
        "gardener_stream_position_timestamp_seconds",
    ):
        assert metric in queries
    assert any("by (state)" in chart["query"] for chart in charts)
    for chart in charts:
        assert balanced(chart["query"]), chart["query"]
        assert chart["plot"] in {"LINE", "STACKED_AREA"}
    assert "monitoring.googleapis.com" in tf.locals["services"]
