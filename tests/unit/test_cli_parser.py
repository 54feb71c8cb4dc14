"""The operator command line's parser, its API calls and tables."""

from __future__ import annotations

import pytest

from shared import cli


def call(*argv: str) -> cli.Request:
    return cli.build_request(cli.parser().parse_args(list(argv)))


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["jobs"], ("GET", "/admin/jobs", {"limit": 100})),
        (
            [
                "jobs",
                "--state",
                "failed",
                "--experiment",
                "ndt",
                "--from",
                "2026-01-02",
                "--limit",
                "5",
            ],
            (
                "GET",
                "/admin/jobs",
                {"state": "failed", "experiment": "ndt", "from": "2026-01-02", "limit": 5},
            ),
        ),
        (["job", "b/e/t/20260102"], ("GET", "/admin/job", {"id": "b/e/t/20260102"})),
        (["retry", "b/e/t/20260102"], ("POST", "/admin/job/retry", {"id": "b/e/t/20260102"})),
        (
            ["fail", "b/e/t/20260102", "--reason", "stuck"],
            ("POST", "/admin/job/fail", {"id": "b/e/t/20260102", "reason": "stuck"}),
        ),
        (
            [
                "reprocess",
                "--from",
                "2026-01-01",
                "--to",
                "2026-01-31",
                "--source",
                "ndt/ndt7",
                "--source",
                "wehe/scamper1",
            ],
            (
                "POST",
                "/admin/reprocess",
                {"from": "2026-01-01", "to": "2026-01-31", "sources": "ndt/ndt7,wehe/scamper1"},
            ),
        ),
        (
            ["reprocess", "--from", "2026-01-01", "--to", "2026-01-01"],
            ("POST", "/admin/reprocess", {"from": "2026-01-01", "to": "2026-01-01"}),
        ),
        (
            [
                "cancel-reprocess",
                "--from",
                "2026-01-01",
                "--to",
                "2026-01-31",
                "--source",
                "ndt/ndt7",
            ],
            (
                "POST",
                "/admin/reprocess/cancel",
                {"from": "2026-01-01", "to": "2026-01-31", "sources": "ndt/ndt7"},
            ),
        ),
        (
            ["cancel-reprocess", "--from", "2026-01-01", "--to", "2026-01-01"],
            ("POST", "/admin/reprocess/cancel", {"from": "2026-01-01", "to": "2026-01-01"}),
        ),
        (
            ["pause", "historical", "--reason", "quota"],
            ("POST", "/admin/pause", {"target": "historical", "reason": "quota"}),
        ),
        (["resume", "ndt/ndt7"], ("POST", "/admin/resume", {"target": "ndt/ndt7"})),
        (["controls"], ("GET", "/admin/controls", {})),
        (["export"], ("POST", "/admin/snapshot/export", {})),
        (
            ["import", "gs://b/snapshots/latest.json"],
            ("POST", "/admin/snapshot/import", {"source": "gs://b/snapshots/latest.json"}),
        ),
    ],
)
def test_each_command_makes_its_api_call(argv, expected):
    assert call(*argv) == expected


def test_common_options_go_before_or_after_the_command(monkeypatch):
    monkeypatch.delenv("GARDENER_URL", raising=False)
    default = cli.parser().parse_args(["controls"])
    assert default.url == cli.DEFAULT_URL and default.json is False and default.timeout == 60
    before = cli.parser().parse_args(["--json", "--url", "http://h:1", "controls"])
    after = cli.parser().parse_args(["controls", "--json", "--url", "http://h:1"])
    assert (before.url, before.json) == (after.url, after.json) == ("http://h:1", True)
    monkeypatch.setenv("GARDENER_URL", "https://tracker.example")
    assert cli.parser().parse_args(["jobs"]).url == "https://tracker.example"


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["nope"],
        ["fail", "x"],
        ["reprocess", "--from", "2026-01-01"],
        ["reprocess", "--from", "2026-02-30", "--to", "2026-03-01"],
        ["jobs", "--state", "nope"],
        ["jobs", "--limit", "0"],
        ["pause"],
        ["job"],
        ["cancel-reprocess", "--to", "2026-01-01"],
        ["cancel-reprocess", "--from", "2026-01-01", "--to", "soon"],
    ],
)
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.parser().parse_args(argv)
    assert exit_.value.code == 2 and "usage: gardener" in capsys.readouterr().err


def test_tables_align_columns():
    text = cli.table(("A", "LONGER"), [("xxxx", 1), ("y", None)])
    assert text.splitlines() == ["A     LONGER", "xxxx  1", "y"]
