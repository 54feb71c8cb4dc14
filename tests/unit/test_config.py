"""Unit tests for shared.config (the job service's YAML config) and gotime.parse_duration."""

from __future__ import annotations

import copy
import dataclasses
import re
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from marshmallow import ValidationError

from shared import defaults
from shared.config import (
    CONFIG_ENV,
    Config,
    ConfigError,
    ConfigSchema,
    Source,
    default_config_path,
    load_config,
    parse_config,
)
from shared.gotime import parse_duration
from shared.model import Datasets, State

ROOT = Path(__file__).resolve().parent.parent.parent
GO_CONFIG = ROOT / "tests" / "data" / "go-gardener-config.yml"
DEPLOYED_CONFIG = ROOT / "config" / "gardener.yml"
GO_ENV = {"ANNOTATION_SOURCE_PROJECT": "mlab-oti", "NDT_SOURCE_PROJECT": "mlab-oti"}

#: A valid config; tests change one value at a time.
BASE: dict[str, Any] = {
    "start_date": "2019-03-01",
    "tracker": {"timeout": "5h"},
    "monitor": {"polling_interval": "1m"},
    "sources": [
        {
            "bucket": "archive-measurement-lab",
            "experiment": "ndt",
            "datatype": "ndt7",
            "target_datasets": {"tmp": "tmp_ndt", "raw": "raw_ndt", "join": "ndt"},
            "daily_only": True,
        },
        {
            "bucket": "archive-measurement-lab",
            "experiment": "ndt",
            "datatype": "annotation2",
            "target_datasets": {"tmp": "tmp_ndt", "raw": "raw_ndt"},
        },
    ],
}

DELETE = object()
_PART_RE = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _parts(path: str) -> list[str | int]:
    return [int(i) if i else key for key, i in _PART_RE.findall(path)]


def with_changes(*changes: tuple[str, Any], base: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return a copy of ``base`` (default BASE) with ``(dotted path, value)`` applied."""
    data = copy.deepcopy(BASE if base is None else base)
    for path, value in changes:
        *parents, last = _parts(path)
        node: Any = data
        for part in parents:
            node = node[part]
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
    return data


def dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False)


def parse(data: Any, env: dict[str, str] | None = None) -> Config:
    return parse_config(dump(data), env or {})


def rejected(text: str, env: dict[str, str] | None = None) -> ConfigError:
    """Parse ``text`` and return the ConfigError it must raise."""
    with pytest.raises(ConfigError) as info:
        parse_config(text, env or {})
    error = info.value
    assert str(error) == "\n".join(error.problems)
    return error


def assert_problem(error: ConfigError, path: str, fragment: str) -> None:
    """Assert that one problem line is exactly at ``path`` and contains ``fragment``."""
    at_path = [p for p in error.problems if p.startswith(f"{path}: ")]
    assert at_path, f"no problem at {path!r} in:\n{error}"
    assert any(fragment in p for p in at_path), f"{fragment!r} not in {at_path}"


def test_base_config_is_valid() -> None:
    config = parse(BASE)
    assert config == Config(
        start_date=date(2019, 3, 1),
        tracker_timeout=timedelta(hours=5),
        polling_interval=timedelta(minutes=1),
        sources=(
            Source(
                "archive-measurement-lab",
                "ndt",
                "ndt7",
                "",
                Datasets("tmp_ndt", "raw_ndt", "ndt"),
                True,
                False,
            ),
            Source(
                "archive-measurement-lab",
                "ndt",
                "annotation2",
                "",
                Datasets("tmp_ndt", "raw_ndt", ""),
                False,
                False,
            ),
        ),
        daily_delay=timedelta(hours=10, minutes=30),
    )
    assert config.daily_delay == defaults.DAILY_DELAY


LONG = "a" * 64
DOTTED_222 = ".".join(["a" * 63] * 3 + ["b" * 30])  # the longest valid bucket name
DOTTED_223 = DOTTED_222 + "b"

# (id, changes, path of the problem, fragment of its message)
INVALID: list[tuple[str, list[tuple[str, Any]], str, str]] = [
    # start_date
    ("start-missing", [("start_date", DELETE)], "start_date", "missing"),
    ("start-empty", [("start_date", None)], "start_date", "missing"),
    ("start-impossible", [("start_date", "2019-02-30")], "start_date", "invalid date"),
    ("start-slashes", [("start_date", "2019/03/01")], "start_date", "expected a date YYYY-MM-DD"),
    (
        "start-datetime-text",
        [("start_date", "2019-03-01T00:00:00Z")],
        "start_date",
        "expected a date",
    ),
    ("start-number", [("start_date", 20190301)], "start_date", "expected a date"),
    (
        "start-before-1970",
        [("start_date", "1960-01-01")],
        "start_date",
        (
            "job date 1960-01-01 is outside the dates the tracker accepts: 1970-01-01 up to,"
            " not including, 2200-01-01"
        ),
    ),
    ("start-day-before-1970", [("start_date", "1969-12-31")], "start_date", "is outside"),
    ("start-2200", [("start_date", "2200-01-01")], "start_date", "is outside"),
    # tracker / monitor / daily_delay
    ("tracker-missing", [("tracker", DELETE)], "tracker", "missing"),
    ("tracker-not-mapping", [("tracker", "5h")], "tracker", "expected a mapping"),
    ("timeout-missing", [("tracker.timeout", DELETE)], "tracker.timeout", "missing"),
    ("timeout-zero", [("tracker.timeout", "0s")], "tracker.timeout", "greater than 0"),
    ("timeout-zero-int", [("tracker.timeout", 0)], "tracker.timeout", "greater than 0"),
    ("timeout-negative", [("tracker.timeout", "-5h")], "tracker.timeout", "greater than 0"),
    ("timeout-words", [("tracker.timeout", "5 hours")], "tracker.timeout", "invalid duration"),
    ("timeout-bare-number", [("tracker.timeout", 5)], "tracker.timeout", "bare number"),
    ("timeout-bool", [("tracker.timeout", True)], "tracker.timeout", "Go duration"),
    ("monitor-missing", [("monitor", DELETE)], "monitor", "missing"),
    (
        "polling-missing",
        [("monitor.polling_interval", DELETE)],
        "monitor.polling_interval",
        "missing",
    ),
    (
        "polling-zero",
        [("monitor.polling_interval", "0")],
        "monitor.polling_interval",
        "greater than 0",
    ),
    (
        "polling-no-unit",
        [("monitor.polling_interval", "60")],
        "monitor.polling_interval",
        "invalid duration",
    ),
    ("delay-negative", [("daily_delay", "-1m")], "daily_delay", "must not be negative"),
    ("delay-bad", [("daily_delay", "10x")], "daily_delay", "invalid duration"),
    (
        "cycle-interval-negative",
        [("min_cycle_interval", "-1h")],
        "min_cycle_interval",
        "must not be negative",
    ),
    ("cycle-interval-bad", [("min_cycle_interval", "1 day")], "min_cycle_interval", "invalid"),
    ("cycle-interval-number", [("min_cycle_interval", 60)], "min_cycle_interval", "bare number"),
    # sources
    ("sources-missing", [("sources", DELETE)], "sources", "at least one source is required"),
    ("sources-empty", [("sources", [])], "sources", "at least one source is required"),
    ("sources-null", [("sources", None)], "sources", "at least one source is required"),
    ("sources-not-list", [("sources", "ndt")], "sources", "expected a list"),
    ("source-not-mapping", [("sources[1]", "ndt")], "sources[1]", "expected a mapping"),
    (
        "duplicate-source",
        [("sources[1].datatype", "ndt7")],
        "sources[1]",
        "same bucket, experiment and datatype as sources[0]",
    ),
    # bucket
    ("bucket-missing", [("sources[0].bucket", DELETE)], "sources[0].bucket", "missing"),
    ("bucket-empty", [("sources[0].bucket", "")], "sources[0].bucket", "3-63 characters"),
    ("bucket-short", [("sources[0].bucket", "ab")], "sources[0].bucket", "3-63 characters"),
    ("bucket-long", [("sources[0].bucket", LONG)], "sources[0].bucket", "3-63 characters"),
    (
        "bucket-long-dotted",
        [("sources[0].bucket", DOTTED_223)],
        "sources[0].bucket",
        "3-222 characters",
    ),
    (
        "bucket-long-part",
        [("sources[0].bucket", f"{LONG}.b")],
        "sources[0].bucket",
        "at most 63 characters",
    ),
    (
        "bucket-uppercase",
        [("sources[0].bucket", "Archive-x")],
        "sources[0].bucket",
        "lowercase letters",
    ),
    (
        "bucket-bad-char",
        [("sources[0].bucket", "arch!ve")],
        "sources[0].bucket",
        "lowercase letters",
    ),
    (
        "bucket-slash",
        [("sources[0].bucket", "archive/ndt")],
        "sources[0].bucket",
        "lowercase letters",
    ),
    (
        "bucket-leading-dash",
        [("sources[0].bucket", "-archive")],
        "sources[0].bucket",
        "start and end with a letter or digit",
    ),
    (
        "bucket-trailing-underscore",
        [("sources[0].bucket", "archive_")],
        "sources[0].bucket",
        "start and end with a letter or digit",
    ),
    (
        "bucket-trailing-dot",
        [("sources[0].bucket", "archive.")],
        "sources[0].bucket",
        "start and end with a letter or digit",
    ),
    (
        "bucket-double-dot",
        [("sources[0].bucket", "arch..ive")],
        "sources[0].bucket",
        "empty dot-separated parts",
    ),
    ("bucket-ip", [("sources[0].bucket", "192.168.5.4")], "sources[0].bucket", "IP address"),
    (
        "bucket-goog",
        [("sources[0].bucket", "goog-archive")],
        "sources[0].bucket",
        "must not start with 'goog'",
    ),
    (
        "bucket-google",
        [("sources[0].bucket", "my-google-archive")],
        "sources[0].bucket",
        "must not contain 'google'",
    ),
    ("bucket-number", [("sources[0].bucket", 12345)], "sources[0].bucket", "expected a string"),
    # experiment
    ("experiment-missing", [("sources[0].experiment", DELETE)], "sources[0].experiment", "missing"),
    (
        "experiment-empty",
        [("sources[0].experiment", "")],
        "sources[0].experiment",
        "invalid experiment",
    ),
    (
        "experiment-leading-underscore",
        [("sources[0].experiment", "_ndt")],
        "sources[0].experiment",
        "starting and ending with a letter or digit",
    ),
    (
        "experiment-trailing-dash",
        [("sources[0].experiment", "ndt-")],
        "sources[0].experiment",
        "invalid experiment",
    ),
    (
        "experiment-slash",
        [("sources[0].experiment", "n/dt")],
        "sources[0].experiment",
        "invalid experiment",
    ),
    (
        "experiment-newline",
        [("sources[0].experiment", "ndt\n")],
        "sources[0].experiment",
        "invalid experiment",
    ),
    (
        "experiment-too-long",
        [("sources[0].experiment", "n" * 101)],
        "sources[0].experiment",
        "1-100",
    ),
    # datatype
    ("datatype-missing", [("sources[0].datatype", DELETE)], "sources[0].datatype", "missing"),
    ("datatype-empty", [("sources[0].datatype", "")], "sources[0].datatype", "BigQuery table name"),
    (
        "datatype-dash",
        [("sources[0].datatype", "ndt-7")],
        "sources[0].datatype",
        "BigQuery table name",
    ),
    (
        "datatype-dot",
        [("sources[0].datatype", "ndt.7")],
        "sources[0].datatype",
        "BigQuery table name",
    ),
    (
        "datatype-leading-underscore",
        [("sources[0].datatype", "_ndt7")],
        "sources[0].datatype",
        "job id rule",
    ),
    (
        "datatype-trailing-underscore",
        [("sources[0].datatype", "ndt7_")],
        "sources[0].datatype",
        "job id rule",
    ),
    (
        "datatype-too-long",
        [("sources[0].datatype", "d" * 101)],
        "sources[0].datatype",
        "at most 100 characters",
    ),
    # target_datasets
    (
        "datasets-missing",
        [("sources[1].target_datasets", DELETE)],
        "sources[1].target_datasets",
        "missing",
    ),
    (
        "datasets-not-mapping",
        [("sources[1].target_datasets", "tmp_ndt")],
        "sources[1].target_datasets",
        "expected a mapping",
    ),
    (
        "tmp-missing",
        [("sources[1].target_datasets.tmp", DELETE)],
        "sources[1].target_datasets.tmp",
        "missing",
    ),
    (
        "raw-missing",
        [("sources[1].target_datasets.raw", DELETE)],
        "sources[1].target_datasets.raw",
        "missing",
    ),
    (
        "tmp-empty",
        [("sources[1].target_datasets.tmp", "")],
        "sources[1].target_datasets.tmp",
        "invalid BigQuery dataset id",
    ),
    (
        "raw-dash",
        [("sources[1].target_datasets.raw", "raw-ndt")],
        "sources[1].target_datasets.raw",
        "invalid BigQuery dataset id",
    ),
    (
        "join-dot",
        [("sources[0].target_datasets.join", "ndt.join")],
        "sources[0].target_datasets.join",
        "invalid BigQuery dataset id",
    ),
    (
        "tmp-too-long",
        [("sources[1].target_datasets.tmp", "t" * 1025)],
        "sources[1].target_datasets.tmp",
        "invalid BigQuery dataset id",
    ),
    # filter
    (
        "filter-bad-regex",
        [("sources[0].filter", "([a-z")],
        "sources[0].filter",
        "invalid regular expression '([a-z': RE2, the parsers' regexp syntax, refuses it: missing ]",
    ),
    (
        "filter-bad-group",
        [("sources[0].filter", "a)")],
        "sources[0].filter",
        "RE2, the parsers' regexp syntax, refuses it: unexpected )",
    ),
    # Python's re accepts these; the parsers' RE2 does not
    (
        "filter-lookbehind",
        [("sources[0].filter", r"(?<=ndt)\.tgz$")],
        "sources[0].filter",
        "RE2, the parsers' regexp syntax, refuses it: invalid perl operator: (?<=",
    ),
    (
        "filter-lookahead",
        [("sources[0].filter", r"^(?!x).*")],
        "sources[0].filter",
        "RE2, the parsers' regexp syntax, refuses it: invalid perl operator: (?!",
    ),
    (
        "filter-backreference",
        [("sources[0].filter", r"(a)\1")],
        "sources[0].filter",
        "RE2, the parsers' regexp syntax, refuses it: invalid escape sequence: \\1",
    ),
    # RE2 accepts these; Go's regexp, which the parsers use, does not
    (
        "filter-any-byte",
        [("sources[0].filter", r"a\C*\.tgz$")],
        "sources[0].filter",
        (
            "the parsers compile it with Go's regexp, which refuses it: \\C (any byte) is not"
            " supported by Go's regexp"
        ),
    ),
    (
        "filter-any-byte-after-escaped-backslash",
        [("sources[0].filter", r"\\\C")],
        "sources[0].filter",
        "\\C (any byte)",
    ),
    (
        "filter-angle-named-group",
        [("sources[0].filter", r"(?<day>\d{8}).*\.tgz$")],
        "sources[0].filter",
        ("a named group (?<name>...) needs Go 1.22 or later; write (?P<name>...)"),
    ),
    (
        "filter-angle-named-group-after-class",
        [("sources[0].filter", r"[]x](?<d>y)")],
        "sources[0].filter",
        "needs Go 1.22",
    ),
    ("filter-number", [("sources[0].filter", 5)], "sources[0].filter", "expected a string"),
    # flags
    (
        "daily-only-text",
        [("sources[0].daily_only", "maybe")],
        "sources[0].daily_only",
        "expected true or false",
    ),
    (
        "full-history-number",
        [("sources[1].full_history", 1)],
        "sources[1].full_history",
        "expected true or false",
    ),
    (
        "both-flags",
        [("sources[0].full_history", True)],
        "sources[0]",
        "daily_only and full_history cannot both be true",
    ),
    # unknown keys anywhere
    ("unknown-top", [("tracker_timeout", "5h")], "tracker_timeout", "unknown key"),
    ("unknown-tracker", [("tracker.timeut", "5h")], "tracker.timeut", "unknown key"),
    ("unknown-monitor", [("monitor.interval", "1m")], "monitor.interval", "unknown key"),
    (
        "unknown-source",
        [("sources[1].bukket", "x")],
        "sources[1].bukket",
        (
            "unknown key (expected one of: bucket, daily_only, datatype, experiment, filter,"
            " full_history, pipeline, target_datasets)"
        ),
    ),
    # the source as a whole
    (
        "key-too-long",
        [
            ("sources[0].bucket", DOTTED_222),
            ("sources[0].experiment", "e" * 100),
            ("sources[0].datatype", "d" * 100),
        ],
        "sources[0]",
        "the job ids of this source would be invalid: job id longer than 400 characters",
    ),
    (
        "unknown-datasets",
        [("sources[0].target_datasets.jion", "ndt")],
        "sources[0].target_datasets.jion",
        "unknown key (expected one of: join, raw, tmp)",
    ),
]


@pytest.mark.parametrize(
    ("changes", "path", "fragment"),
    [case[1:] for case in INVALID],
    ids=[case[0] for case in INVALID],
)
def test_invalid_config_is_rejected_naming_the_field(
    changes: list[tuple[str, Any]], path: str, fragment: str
) -> None:
    error = rejected(dump(with_changes(*changes)))
    assert_problem(error, path, fragment)
    assert isinstance(error, ValueError)


VALID_EDGES: list[tuple[str, list[tuple[str, Any]], str, Any]] = [
    ("bucket-63", [("sources[0].bucket", "a" * 63)], "bucket", "a" * 63),
    ("bucket-3", [("sources[0].bucket", "a-1")], "bucket", "a-1"),
    ("bucket-dotted-222", [("sources[0].bucket", DOTTED_222)], "bucket", DOTTED_222),
    ("bucket-underscore", [("sources[0].bucket", "archive_ndt.v2")], "bucket", "archive_ndt.v2"),
    ("bucket-three-numbers", [("sources[0].bucket", "1.2.3")], "bucket", "1.2.3"),
    ("experiment-one-char", [("sources[0].experiment", "x")], "experiment", "x"),
    (
        "experiment-punctuation",
        [("sources[0].experiment", "ndt.v2-x_y")],
        "experiment",
        "ndt.v2-x_y",
    ),
    ("experiment-100", [("sources[0].experiment", "e" * 100)], "experiment", "e" * 100),
    ("datatype-underscore", [("sources[0].datatype", "tcp_info7")], "datatype", "tcp_info7"),
    ("datatype-100", [("sources[0].datatype", "d" * 100)], "datatype", "d" * 100),
    ("filter", [("sources[0].filter", r".*\.tgz$")], "filter", r".*\.tgz$"),
    ("filter-null", [("sources[0].filter", None)], "filter", ""),
    (
        "filter-re2-named-group",
        [("sources[0].filter", r"(?P<day>\d{8}).*\.tgz$")],
        "filter",
        r"(?P<day>\d{8}).*\.tgz$",
    ),
    # what only looks like \C or (?<name>: an escaped backslash, a literal, a class
    ("filter-escaped-backslash-then-c", [("sources[0].filter", r"a\\C")], "filter", r"a\\C"),
    ("filter-quoted-literal", [("sources[0].filter", r"\Q\C(?<x>\E")], "filter", r"\Q\C(?<x>\E"),
    (
        "filter-class",
        [("sources[0].filter", r"[(?<x>)][[:alpha:](?<]")],
        "filter",
        r"[(?<x>)][[:alpha:](?<]",
    ),
    (
        "join-null",
        [("sources[0].target_datasets.join", None)],
        "datasets",
        Datasets("tmp_ndt", "raw_ndt", ""),
    ),
    (
        "join-empty",
        [("sources[0].target_datasets.join", "")],
        "datasets",
        Datasets("tmp_ndt", "raw_ndt", ""),
    ),
    ("daily-only-false", [("sources[0].daily_only", False)], "daily_only", False),
    ("daily-only-text", [("sources[0].daily_only", "True")], "daily_only", True),
    (
        "full-history",
        [("sources[0].daily_only", False), ("sources[0].full_history", True)],
        "full_history",
        True,
    ),
]


@pytest.mark.parametrize(
    ("changes", "attribute", "expected"),
    [case[1:] for case in VALID_EDGES],
    ids=[case[0] for case in VALID_EDGES],
)
def test_valid_edge_values_are_accepted(
    changes: list[tuple[str, Any]], attribute: str, expected: Any
) -> None:
    config = parse(with_changes(*changes))
    assert getattr(config.sources[0], attribute) == expected


@pytest.mark.parametrize("text", ["1970-01-01", "2199-12-31"])
def test_start_date_may_be_any_job_date_a_snapshot_carries(text: str) -> None:
    assert parse(with_changes(("start_date", text))).start_date == date.fromisoformat(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", timedelta(0)),
        ("0s", timedelta(0)),
        ("36h", timedelta(hours=36)),
        ("1h30m", timedelta(hours=1, minutes=30)),
    ],
)
def test_daily_delay_may_be_set(text: str, expected: timedelta) -> None:
    assert parse(with_changes(("daily_delay", text))).daily_delay == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0s", timedelta(0)), ("10m", timedelta(minutes=10)), ("24h", timedelta(hours=24))],
)
def test_min_cycle_interval_may_be_set_and_is_off_by_default(
    text: str, expected: timedelta
) -> None:
    assert parse(BASE).min_cycle_interval == timedelta(0)
    assert parse(with_changes(("min_cycle_interval", text))).min_cycle_interval == expected


def test_unquoted_yaml_date_and_quoted_string_both_load() -> None:
    text = dump(BASE).replace("start_date: '2019-03-01'", "start_date: 2019-03-01")
    assert "start_date: 2019-03-01\n" in text
    assert parse_config(text, {}).start_date == date(2019, 3, 1)
    assert parse_config(dump(BASE), {}).start_date == date(2019, 3, 1)


def test_unquoted_yaml_date_and_time_is_rejected() -> None:
    text = dump(BASE).replace("start_date: '2019-03-01'", "start_date: 2019-03-01 10:00:00")
    assert_problem(rejected(text), "start_date", "expected a date")


def test_every_problem_is_reported_sorted_by_path() -> None:
    data = with_changes(
        ("start_date", DELETE),
        ("tracker.timeout", "0"),
        ("sources[0].full_history", True),
        ("sources[0].bucket", "UPPER"),
        ("sources[1].target_datasets.tmp", "tmp-ndt"),
        ("extra", 1),
    )
    data["sources"] = data["sources"] + [copy.deepcopy(data["sources"][1]) for _ in range(9)]
    for i in range(2, 11):
        data["sources"][i]["datatype"] = f"type{i}"
    data["sources"][10]["experiment"] = "-bad"
    data["sources"][2]["target_datasets"]["tmp"] = "tmp_ok"
    error = rejected(dump(data))
    assert [p.split(":")[0] for p in error.problems] == [
        "extra",
        "sources[0]",
        "sources[0].bucket",
        "sources[1].target_datasets.tmp",
        "sources[3].target_datasets.tmp",
        "sources[4].target_datasets.tmp",
        "sources[5].target_datasets.tmp",
        "sources[6].target_datasets.tmp",
        "sources[7].target_datasets.tmp",
        "sources[8].target_datasets.tmp",
        "sources[9].target_datasets.tmp",
        "sources[10].experiment",
        "sources[10].target_datasets.tmp",
        "start_date",
        "tracker.timeout",
    ]
    assert str(error).splitlines() == error.problems


def test_the_config_must_be_a_mapping() -> None:
    assert rejected("").problems == ["config: the config is empty"]
    assert_problem(rejected("- start_date: 2019-03-01\n"), "config", "expected a mapping")
    assert_problem(rejected("just text\n"), "config", "expected a mapping")


def test_yaml_syntax_error_names_the_line() -> None:
    text = "start_date: 2019-03-01\ntracker:\n  timeout: 5h\n monitor: [\n"
    error = rejected(text)
    assert len(error.problems) == 1
    assert error.problems[0].startswith("config: invalid YAML at line ")
    assert re.search(r"line [34]\b", error.problems[0])


def test_repeated_key_is_a_yaml_error_naming_both_lines() -> None:
    text = dump(BASE).replace("  daily_only: true\n", "  daily_only: true\n  daily_only: false\n")
    first = text.splitlines().index("  daily_only: true") + 1
    (problem,) = rejected(text).problems
    assert problem.startswith(f"config: invalid YAML at line {first + 1}, column 3: ")
    assert problem.endswith(f"found duplicate key 'daily_only' (first at line {first})")


def test_yaml_anchors_and_merge_keys_work_and_may_override() -> None:
    text = dump({k: v for k, v in BASE.items() if k != "sources"}) + (
        "sources:\n"
        "- &ndt {bucket: archive-x, experiment: ndt, datatype: a,"
        " target_datasets: {tmp: t, raw: r}}\n"
        "- {<<: *ndt, datatype: b}\n"
    )
    config = parse_config(text, {})
    assert [(s.bucket, s.datatype) for s in config.sources] == [
        ("archive-x", "a"),
        ("archive-x", "b"),
    ]


def test_anchors_cannot_smuggle_in_unknown_keys() -> None:
    text = dump({k: v for k, v in BASE.items() if k != "sources"}) + (
        "common: &common {bucket: archive-x, experiment: ndt, target_datasets: {tmp: t, raw: r}}\n"
        "sources:\n- {<<: *common, datatype: a}\n"
    )
    assert rejected(text).problems == [
        (
            "common: unknown key (expected one of: daily_delay, min_cycle_interval, monitor,"
            " sources, start_date, tracker)"
        )
    ]


# --- placeholders --------------------------------------------------------------


def _with_bucket(bucket: str) -> str:
    return dump(with_changes(("sources[0].bucket", bucket)))


@pytest.mark.parametrize(
    ("bucket", "env", "expected"),
    [
        ("archive-{{P}}", {"P": "mlab-oti"}, "archive-mlab-oti"),
        ("archive-{{ P }}", {"P": "mlab-oti"}, "archive-mlab-oti"),
        ("archive-{{P  }}", {"P": "mlab-oti"}, "archive-mlab-oti"),
        ("archive-{{\tP}}", {"P": "mlab-oti"}, "archive-mlab-oti"),
        ("{{A}}-{{ B }}-{{A}}", {"A": "archive", "B": "mlab"}, "archive-mlab-archive"),
        ("{{WHOLE}}", {"WHOLE": "archive-measurement-lab"}, "archive-measurement-lab"),
    ],
)
def test_placeholders_are_filled(bucket: str, env: dict[str, str], expected: str) -> None:
    assert parse_config(_with_bucket(bucket), env).sources[0].bucket == expected


def test_placeholders_in_nested_and_non_bucket_values() -> None:
    data = with_changes(
        ("sources[1].target_datasets.tmp", "tmp_{{EXP}}"),
        ("sources[1].experiment", "{{EXP}}"),
        ("sources[1].daily_only", "{{DAILY}}"),
        ("tracker.timeout", "{{TIMEOUT}}"),
    )
    config = parse(data, {"EXP": "wehe", "DAILY": "true", "TIMEOUT": "6h"})
    assert config.sources[1].experiment == "wehe"
    assert config.sources[1].datasets.tmp == "tmp_wehe"
    assert config.sources[1].daily_only is True
    assert config.tracker_timeout == timedelta(hours=6)


def test_substitution_is_after_yaml_parsing_and_not_recursive() -> None:
    special = r"^.*: #[ab]{2}\.tgz' \"{{OTHER}}"
    config = parse(with_changes(("sources[0].filter", "{{F}}")), {"F": special, "OTHER": "x"})
    assert config.sources[0].filter == special


def test_missing_placeholder_names_variable_and_field_once() -> None:
    error = rejected(_with_bucket("archive-{{ANNOTATION_SOURCE_PROJECT}}"))
    assert error.problems == [
        "sources[0].bucket: environment variable ANNOTATION_SOURCE_PROJECT is not set"
    ]


def test_every_missing_placeholder_is_reported() -> None:
    data = with_changes(
        ("sources[0].bucket", "{{A}}-{{B}}-{{A}}"),
        ("sources[1].target_datasets.raw", "raw_{{ C }}"),
    )
    error = rejected(dump(data), {"B": "b"})
    assert error.problems == [
        "sources[0].bucket: environment variable A is not set",
        "sources[1].target_datasets.raw: environment variable C is not set",
    ]


def test_malformed_placeholder_is_an_error() -> None:
    error = rejected(_with_bucket("archive-{{NOT-A-NAME}}"), {"NOT-A-NAME": "x"})
    assert_problem(error, "sources[0].bucket", "malformed placeholder '{{NOT-A-NAME}}'")


def test_filled_value_is_still_validated() -> None:
    error = rejected(_with_bucket("archive-{{P}}"), {"P": "Mlab_OTI"})
    assert_problem(error, "sources[0].bucket", "invalid bucket name 'archive-Mlab_OTI'")


def test_unquoted_whole_value_placeholder_explains_quoting() -> None:
    text = dump(BASE).replace("bucket: archive-measurement-lab", "bucket: {{BUCKET}}", 1)
    (problem,) = rejected(text, {"BUCKET": "archive-x"}).problems
    assert problem.startswith("config: invalid YAML at line ")
    assert 'must be quoted, e.g. "{{NAME}}"' in problem


def test_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GARDENER_TEST_PROJECT", "mlab-sandbox")
    config = parse_config(_with_bucket("archive-{{GARDENER_TEST_PROJECT}}"))
    assert config.sources[0].bucket == "archive-mlab-sandbox"
    monkeypatch.delenv("GARDENER_TEST_PROJECT")
    with pytest.raises(ConfigError, match="GARDENER_TEST_PROJECT is not set"):
        parse_config(_with_bucket("archive-{{GARDENER_TEST_PROJECT}}"))


# --- the Go production config ----------------------------------------------------

GO_SOURCES = [
    ("archive-mlab-oti", "ndt", "annotation2", ""),
    ("archive-mlab-oti", "ndt", "ndt5", "ndt"),
    ("archive-mlab-oti", "ndt", "ndt7", "ndt"),
    ("archive-mlab-oti", "ndt", "pcap", ""),
    ("archive-mlab-oti", "ndt", "hopannotation2", ""),
    ("archive-measurement-lab", "ndt", "scamper1", "ndt"),
    ("archive-measurement-lab", "utilization", "switch", ""),
    ("archive-mlab-oti", "ndt", "tcpinfo", "ndt"),
    ("archive-mlab-oti", "wehe", "annotation2", ""),
    ("archive-mlab-oti", "wehe", "hopannotation2", ""),
    ("archive-mlab-oti", "wehe", "scamper1", "wehe"),
    ("archive-mlab-oti", "msak", "annotation2", ""),
    ("archive-mlab-oti", "msak", "scamper1", "msak"),
    ("archive-mlab-oti", "msak", "hopannotation2", ""),
    ("archive-mlab-oti", "msak", "pcap", ""),
    ("archive-mlab-oti", "msak", "tcpinfo", "msak"),
]


@pytest.mark.parametrize("path", [GO_CONFIG, DEPLOYED_CONFIG], ids=["go-sample", "deployed"])
def test_go_production_config_loads(path: Path) -> None:
    config = load_config(path, GO_ENV)
    assert config.start_date == date(2015, 11, 19)
    assert config.tracker_timeout == timedelta(hours=5)
    assert config.polling_interval == timedelta(minutes=1)
    assert config.daily_delay == timedelta(hours=10, minutes=30)
    assert len(config.sources) == 16
    assert [(s.bucket, s.experiment, s.datatype, s.datasets.join) for s in config.sources] == (
        GO_SOURCES
    )
    first = config.sources[0]
    assert first == Source(
        "archive-mlab-oti",
        "ndt",
        "annotation2",
        "",
        Datasets("tmp_ndt", "raw_ndt", ""),
        True,
        False,
    )
    for source in config.sources:
        assert source.daily_only and not source.full_history and source.filter == ""
        assert source.datasets.tmp == f"tmp_{source.experiment}"
        assert source.datasets.raw == f"raw_{source.experiment}"


def test_deployed_config_is_the_go_production_config() -> None:
    assert load_config(DEPLOYED_CONFIG, GO_ENV) == load_config(GO_CONFIG, GO_ENV)


def test_go_production_config_without_env_names_each_variable() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(GO_CONFIG, {})
    problems = info.value.problems
    assert len(problems) == 14  # every source except the two archive-measurement-lab ones
    assert problems[0] == (
        "sources[0].bucket: environment variable ANNOTATION_SOURCE_PROJECT is not set"
    )
    assert problems[1] == "sources[1].bucket: environment variable NDT_SOURCE_PROJECT is not set"


def test_go_production_config_with_one_variable_names_the_other() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(GO_CONFIG, {"ANNOTATION_SOURCE_PROJECT": "mlab-oti"})
    assert {p.split(": ", 1)[1] for p in info.value.problems} == {
        "environment variable NDT_SOURCE_PROJECT is not set"
    }
    assert [p.split(":")[0] for p in info.value.problems] == [
        "sources[1].bucket",
        "sources[2].bucket",
        "sources[3].bucket",
        "sources[7].bucket",
    ]


# --- files -------------------------------------------------------------------------


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "gardener.yml"
    with pytest.raises(ConfigError) as info:
        load_config(missing)
    assert info.value.problems == [f"config: config file {missing} not found"]


def test_load_config_accepts_str_paths(tmp_path: Path) -> None:
    path = tmp_path / "gardener.yml"
    path.write_text(dump(BASE))
    assert load_config(str(path), {}) == parse(BASE)


def test_default_config_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    assert default_config_path() == DEPLOYED_CONFIG
    assert default_config_path().is_file()
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "other.yml"))
    assert default_config_path() == tmp_path / "other.yml"


def test_config_objects_are_frozen() -> None:
    config = parse(BASE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.sources[0].bucket = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.daily_delay = timedelta(0)  # type: ignore[misc]
    assert isinstance(config.sources, tuple)


def test_yaml_date_object_is_accepted_by_the_schema() -> None:
    data = with_changes(("start_date", date(2019, 3, 1)))
    assert ConfigSchema().load(data).start_date == date(2019, 3, 1)
    with pytest.raises(ValidationError, match="not a date and time"):
        ConfigSchema().load(with_changes(("start_date", datetime(2019, 3, 1))))


# --- parse_duration -----------------------------------------------------------------

DURATIONS = [
    ("5h", timedelta(hours=5)),
    ("1m", timedelta(minutes=1)),
    ("10h30m", timedelta(hours=10, minutes=30)),
    ("90s", timedelta(seconds=90)),
    ("1.5h", timedelta(hours=1, minutes=30)),
    ("500ms", timedelta(milliseconds=500)),
    ("0", timedelta(0)),
    ("+0", timedelta(0)),
    ("-0", timedelta(0)),
    ("0s", timedelta(0)),
    ("-1.5h", -timedelta(hours=1, minutes=30)),
    ("+5m", timedelta(minutes=5)),
    ("1h2m3.5s", timedelta(hours=1, minutes=2, seconds=3.5)),
    (".5s", timedelta(milliseconds=500)),
    ("5.s", timedelta(seconds=5)),
    ("1.000001s", timedelta(seconds=1, microseconds=1)),
    ("0.1h", timedelta(minutes=6)),  # exact: not 5m59.999999s
    ("2.3h", timedelta(hours=2, minutes=18)),
    ("1us", timedelta(microseconds=1)),
    ("1\u00b5s", timedelta(microseconds=1)),
    ("1\u03bcs", timedelta(microseconds=1)),
    ("1500ns", timedelta(microseconds=1)),  # below a microsecond is dropped
    ("-1500ns", -timedelta(microseconds=1)),
    ("999ns", timedelta(0)),
    ("1h1h", timedelta(hours=2)),
    ("2562047h", timedelta(hours=2562047)),
]


@pytest.mark.parametrize(("text", "expected"), DURATIONS)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "h",
        "5",
        "1.5",
        "5 h",
        " 5h",
        "5h ",
        "5H",
        "5d",
        "5hh",
        "1e3s",
        ".s",
        ".",
        "-",
        "+",
        "--5h",
        "5h-3m",
        "1.h.5",
        "5h\n",
        "\u0665h",
        "2562048h",
        "9223372036854775808ns",
    ],
)
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


PIPELINE_BASE = """
start_date: 2019-01-01
tracker: {timeout: 5h}
monitor: {polling_interval: 1m}
sources:
  - bucket: archive-a
    experiment: ndt
    datatype: ndt7
    target_datasets: {tmp: tmp_ndt, raw: raw_ndt}
"""


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("", None),
        ("    pipeline: []\n", ()),
        (
            "    pipeline: [loading, deduplicating, copying, deleting, joining, finishing]\n",
            (
                State.LOADING,
                State.DEDUPLICATING,
                State.COPYING,
                State.DELETING,
                State.JOINING,
                State.FINISHING,
            ),
        ),
    ],
)
def test_source_pipeline(line: str, expected: tuple[State, ...] | None) -> None:
    assert parse_config(PIPELINE_BASE + line, {}).sources[0].pipeline == expected


@pytest.mark.parametrize(
    "steps", ["[copying, loading]", "[bogus]", "[loading, loading]", "[failed]"]
)
def test_a_pipeline_the_table_forbids_names_the_source(steps: str) -> None:
    with pytest.raises(ConfigError, match=r"sources\[0\]\.pipeline: .*transition table"):
        parse_config(PIPELINE_BASE + f"    pipeline: {steps}\n", {})


def _sources(n: int) -> list[dict[str, Any]]:
    """``n`` distinct sources like BASE's second one."""
    return [{**copy.deepcopy(BASE["sources"][1]), "datatype": f"type{i}"} for i in range(n)]


@pytest.mark.parametrize(
    ("count", "problem"),
    [
        (1, None),
        (1000, None),
        (1001, "sources: at most 1000 sources (stream positions number them below 1000); got 1001"),
        (2500, "sources: at most 1000 sources (stream positions number them below 1000); got 2500"),
    ],
    ids=["one", "1000", "1001", "2500"],
)
def test_the_number_of_sources_is_capped_by_the_position_encoding(
    count: int, problem: str | None
) -> None:
    """Positions count sources in base 1,000: a 1001st source would collide with the next day's first."""
    text = dump(with_changes(("sources", _sources(count))))
    if problem is None:
        assert len(parse_config(text, {}).sources) == count
    else:
        assert rejected(text).problems == [problem]
