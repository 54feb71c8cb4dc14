"""The operator command line's parser, its API calls and tables."""

from __future__ import annotations

import datetime as dt
import json
import os

import google.auth.exceptions
import pytest
import requests

from shared import cli, transport


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
        (
            ["retry", "--state", "failed", "--datatype", "ndt7", "--from", "2026-01-01"],
            (
                "POST",
                "/admin/jobs/retry",
                {"state": "failed", "datatype": "ndt7", "from": "2026-01-01"},
            ),
        ),
        (
            ["fail", "--experiment", "ndt", "--to", "2026-01-02", "--reason", "r", "--dry-run"],
            (
                "POST",
                "/admin/jobs/fail",
                {"experiment": "ndt", "to": "2026-01-02", "reason": "r", "dry_run": "true"},
            ),
        ),
        (
            ["retry", "--state", "failed", "--limit", "7", "--yes"],
            ("POST", "/admin/jobs/retry", {"state": "failed", "limit": 7}),
        ),
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


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["retry"], "give a job ID, or filters"),
        (["fail", "--reason", "r"], "give a job ID, or filters"),
        (["retry", "b/e/t/20260102", "--state", "failed"], "not both"),
        (["retry", "b/e/t/20260102", "--dry-run"], "not both"),
        (["fail", "b/e/t/20260102", "--reason", "r", "--yes"], "not both"),
    ],
)
def test_retry_and_fail_take_an_id_or_filters_not_neither_nor_both(argv, problem, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2 and problem in capsys.readouterr().err


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.2, "just now"),
        (42, "42 s ago"),
        (185, "3 min ago"),
        (7300, "2 h ago"),
        (3 * 86400 + 5, "3 d ago"),
        (-600, "in 10 min"),
    ],
)
def test_times_read_relative_to_now(seconds, text):
    assert cli.ago(dt.timedelta(seconds=seconds)) == text


def test_tables_show_relative_times_unless_absolute():
    now = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)
    body = {
        "Shown": 1,
        "Jobs": [
            {
                "ID": "b/e/t/20261127",
                "State": "parsing",
                "Attempts": 1,
                "LastActivity": "2026-11-28T11:57:00Z",
                "Detail": "",
            }
        ],
    }
    assert "3 min ago" in cli.SHOW["jobs"](body, cli.relative(now))
    shown = cli.SHOW["jobs"](body, cli.absolute)
    assert "2026-11-28T11:57:00Z" in shown and "ago" not in shown
    assert cli.parser().parse_args(["jobs", "--absolute"]).absolute is True
    assert cli.relative(now)(None) == "" and cli.relative(now)("not a time") == "not a time"


def test_a_bulk_answer_lists_what_changed_and_what_did_not_with_why():
    body = {
        "Action": "retry",
        "DryRun": False,
        "Matched": 2,
        "Changed": ["b/e/t/20261126"],
        "Unchanged": [{"ID": "b/e/t/20261127", "Why": "job is parsing, not failed"}],
        "Who": "carol",
    }
    text = cli.SHOW["retry"](body, cli.absolute)
    assert text.splitlines() == [
        "retried 1 jobs",
        "  b/e/t/20261126",
        "left 1 jobs unchanged:",
        "  b/e/t/20261127: job is parsing, not failed",
    ]
    dry = cli.SHOW["fail"](body | {"DryRun": True, "Matched": 2}, cli.absolute)
    assert dry.splitlines() == [
        "2 jobs match; nothing changed (dry run)",
        "1 would be retried:",
        "  b/e/t/20261126",
        "would be left 1 jobs unchanged:",
        "  b/e/t/20261127: job is parsing, not failed",
    ]


def test_a_repeated_pause_shows_the_reason_it_replaced():
    pause = {"Target": "ndt/a", "Who": "alice", "Since": "2026-11-28T11:00:00Z", "Reason": "new"}
    text = cli.SHOW["pause"](
        {"Paused": pause, "PreviousReason": "old", "UpdatedBy": "bob"}, cli.absolute
    )
    assert "paused by alice" in text and "reason changed by bob, was: old" in text


class FakeSession(requests.Session):
    """A session that answers every request with one status and JSON body, and keeps the headers."""

    def __init__(self, status: int, body: object, content_type: str = "application/json") -> None:
        super().__init__()
        self.status, self.body, self.content_type = status, body, content_type
        self.sent: list[dict[str, str]] = []

    def request(self, method, url, **kwargs):  # type: ignore[override]
        self.sent.append(dict(self.headers))
        response = requests.Response()
        response.status_code = self.status
        text = self.body if isinstance(self.body, str) else json.dumps(self.body)
        response._content = text.encode()
        response.headers["Content-Type"] = self.content_type
        response.url = url
        return response


DEPLOYED = "https://admin-xyz.a.run.app"


def test_an_id_token_from_the_operator_is_sent_as_the_bearer(monkeypatch, capsys):
    monkeypatch.setenv("GARDENER_TOKEN", "tok123")
    assert cli.parser().parse_args(["controls"]).token == "tok123"
    session = FakeSession(200, {"Paused": None, "Resumed": None})
    monkeypatch.setattr(cli, "token_session", lambda token: session)
    cli.main(["jobs", "--url", DEPLOYED, "--json"])
    assert transport.token_session(" abc\n").headers["Authorization"] == "Bearer abc"
    assert len(session.sent) == 1


def test_no_credentials_is_one_line_saying_how_to_log_in(monkeypatch, capsys):
    monkeypatch.delenv("GARDENER_TOKEN", raising=False)

    def no_credentials(audience: str, impersonate: str = "") -> requests.Session:
        raise google.auth.exceptions.DefaultCredentialsError(
            "Neither metadata server or valid service account credentials are found."
        )

    monkeypatch.setattr(cli, "identity_session", no_credentials)
    monkeypatch.setattr("shutil.which", lambda name: None)  # no gcloud either
    assert cli.main(["jobs", "--url", DEPLOYED]) == cli.EXIT_REJECTED
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "gcloud auth print-identity-token" in err and "application-default login" in err


def test_impersonation_asks_for_the_service_accounts_id_token(monkeypatch):
    asked: list[tuple[str, str]] = []

    def fake(audience: str, impersonate: str = "") -> requests.Session:
        asked.append((audience, impersonate))
        return FakeSession(200, {"Shown": 0, "Jobs": []})

    monkeypatch.delenv("GARDENER_TOKEN", raising=False)
    monkeypatch.setattr(cli, "identity_session", fake)
    monkeypatch.setattr("shutil.which", lambda name: None)  # the person: the login name
    sa = "ops@p.iam.gserviceaccount.com"
    assert cli.main(["jobs", "--url", DEPLOYED + "/", "--impersonate-service-account", sa]) == 0
    monkeypatch.setenv("GARDENER_IMPERSONATE", "env@p.iam.gserviceaccount.com")
    assert cli.main(["jobs", "--url", DEPLOYED]) == 0
    assert asked == [(DEPLOYED, sa), (DEPLOYED, "env@p.iam.gserviceaccount.com")]


@pytest.mark.parametrize(
    ("status", "hint"),
    [(401, "expired"), (403, "roles/run.invoker")],
)
def test_a_refused_token_is_one_line_saying_what_to_do(monkeypatch, capsys, status, hint):
    session = FakeSession(status, {"error": "the ID token is not valid: expired"})
    monkeypatch.setattr(cli, "token_session", lambda token: session)
    assert cli.main(["jobs", "--url", DEPLOYED, "--token", "t"]) == cli.EXIT_REJECTED
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and f"HTTP {status}" in err and hint in err


def test_no_tracker_at_the_url_says_to_set_it(capsys):
    code = cli.main(["controls", "--url", "http://127.0.0.1:9", "--timeout", "1"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_REJECTED
    assert err.strip().splitlines()[-1] == (
        "error: no tracker at http://127.0.0.1:9; set --url or GARDENER_URL"
    )


def test_a_closed_pipe_ends_quietly(monkeypatch, capsys):
    monkeypatch.setattr(
        cli, "token_session", lambda token: FakeSession(200, {"Shown": 0, "Jobs": []})
    )

    def closed(*args: object, **kwargs: object) -> None:
        raise BrokenPipeError

    monkeypatch.setattr("builtins.print", closed)
    assert cli.main(["jobs", "--url", DEPLOYED, "--token", "t"]) == cli.EXIT_OK


def test_impersonation_mints_the_service_accounts_id_token_for_the_url(monkeypatch):
    from google.auth import impersonated_credentials
    from google.oauth2 import credentials as user_credentials

    mine = user_credentials.Credentials(token="user-token")
    monkeypatch.setattr("google.auth.default", lambda scopes=None: (mine, "project"))
    sa = "ops@p.iam.gserviceaccount.com"
    session = transport.identity_session(DEPLOYED, sa)
    credentials = session.credentials  # type: ignore[attr-defined]
    assert isinstance(credentials, impersonated_credentials.IDTokenCredentials)
    assert credentials._target_audience == DEPLOYED and credentials._include_email
    assert credentials._target_credentials._target_principal == sa
    assert credentials._target_credentials._source_credentials.token == "user-token"


def no_id_tokens(audience: str, impersonate: str = "") -> requests.Session:
    """Application Default Credentials of a person: they cannot mint ID tokens."""
    raise google.auth.exceptions.DefaultCredentialsError(
        "Neither metadata server or valid service account credentials are found."
    )


def fake_gcloud(monkeypatch, tmp_path, script: str) -> None:
    """Put a ``gcloud`` running ``script`` (sh) where the command line looks for it."""
    gcloud = tmp_path / "gcloud"
    gcloud.write_text("#!/bin/sh\n" + script + "\n")
    gcloud.chmod(0o755)
    monkeypatch.setattr("shutil.which", lambda name: str(gcloud) if name == "gcloud" else None)


def test_a_persons_own_login_calls_with_gcloud_identity_token(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("GARDENER_TOKEN", raising=False)
    monkeypatch.setattr(cli, "identity_session", no_id_tokens)
    fake_gcloud(monkeypatch, tmp_path, 'test "$*" = "auth print-identity-token" && echo tok-of-ann')
    session = FakeSession(200, {"Shown": 0, "Jobs": []})
    used: list[str] = []

    def sends(token: str) -> requests.Session:
        used.append(token)
        return session

    monkeypatch.setattr(cli, "token_session", sends)
    assert cli.main(["jobs", "--url", DEPLOYED]) == cli.EXIT_OK
    assert used == ["tok-of-ann"] and len(session.sent) == 1


@pytest.mark.parametrize(
    ("script", "said"),
    [
        (
            "echo 'ERROR: (gcloud.auth.print-identity-token) You do not currently have an "
            "active account selected.' >&2; exit 1",
            "You do not currently have an active account selected.): run `gcloud auth login`",
        ),
        ("exit 0", "(exit status 0): run `gcloud auth login`"),
        ("sleep 5", "gave no token within 0.5 s"),
        (
            "echo 'WARNING: Python 3.8 is no longer supported' >&2; echo 'ERROR: "
            "(gcloud.auth.print-identity-token) Reauthentication failed.' >&2; exit 1",
            "failed (Reauthentication failed.): run `gcloud auth login`",
        ),
        ("printf 'Fehler: \\374ber\\377\\n' >&2; exit 1", "failed (Fehler: \ufffdber\ufffd)"),
        ("printf '\\377\\376tok\\n'; exit 1", "run `gcloud auth login`"),
        ("printf '\\377\\376tok\\n'", "(exit status 0): run `gcloud auth login`"),
    ],
    ids=[
        "not-logged-in",
        "no-token",
        "hangs",
        "warning-before-the-error",
        "not-utf8",
        "binary",
        "binary-token",
    ],
)
def test_gcloud_that_cannot_give_a_token_is_one_line(monkeypatch, tmp_path, capsys, script, said):
    monkeypatch.delenv("GARDENER_TOKEN", raising=False)
    monkeypatch.setattr(cli, "identity_session", no_id_tokens)
    monkeypatch.setattr("shared.defaults.GCLOUD_TOKEN_TIMEOUT", 0.5)
    fake_gcloud(monkeypatch, tmp_path, script)
    assert cli.main(["jobs", "--url", DEPLOYED]) == cli.EXIT_REJECTED
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert said in err


def test_impersonation_sends_the_person_for_the_audit(monkeypatch):
    session = FakeSession(200, {"Shown": 0, "Jobs": []})
    monkeypatch.setattr(cli, "identity_session", lambda audience, impersonate="": session)
    monkeypatch.setenv("GARDENER_OPERATOR", "ann@example.org")
    sa = "ops@p.iam.gserviceaccount.com"
    assert cli.main(["jobs", "--url", DEPLOYED, "--impersonate-service-account", sa]) == 0
    assert session.sent[0]["X-Operator"] == "ann@example.org"
    assert (
        cli.main(
            ["jobs", "--url", DEPLOYED, "--impersonate-service-account", sa, "--operator", "bo"]
        )
        == 0
    )
    assert session.sent[1]["X-Operator"] == "bo"


def test_impersonation_without_credentials_is_one_line(monkeypatch, capsys):
    monkeypatch.setattr(cli, "identity_session", no_id_tokens)
    sa = "ops@p.iam.gserviceaccount.com"
    assert cli.main(["jobs", "--url", DEPLOYED, "--impersonate-service-account", sa]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert f"no credentials to impersonate {sa}" in err and "application-default login" in err


@pytest.mark.parametrize(
    ("status", "body", "content_type", "said"),
    [
        (401, "<html><body>401 Unauthorized</body></html>", "text/html", "the platform"),
        (
            403,
            "<html><body>Forbidden</body></html>",
            "text/html",
            "roles/iap.httpsResourceAccessor",
        ),
        (401, {"error": "the ID token is not valid: expired"}, "application/json", "the tracker"),
    ],
    ids=["cloud-run-401", "cloud-run-403", "tracker-401"],
)
def test_who_refused_the_call_is_said_in_one_line(
    monkeypatch, capsys, status, body, content_type, said
):
    session = FakeSession(status, body, content_type)
    monkeypatch.setattr(cli, "token_session", lambda token: session)
    assert cli.main(["jobs", "--url", DEPLOYED, "--token", "t"]) == cli.EXIT_REJECTED
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert said in err and f"HTTP {status}" in err and "<html>" not in err


@pytest.mark.parametrize(
    "body",
    ["<!DOCTYPE html><html><title>Sign in - Google Accounts</title></html>", "[1, 2]", ""],
    ids=["sign-in-page", "json-not-an-object", "empty"],
)
def test_a_200_answer_that_is_not_the_trackers_json_is_one_line(monkeypatch, capsys, body):
    session = FakeSession(200, body, "text/html; charset=utf-8")
    monkeypatch.setattr(cli, "token_session", lambda token: session)
    assert cli.main(["jobs", "--url", DEPLOYED, "--token", "t"]) == cli.EXIT_REJECTED
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "answered HTTP 200 but not with the tracker's JSON (text/html" in err
    assert "admin_url" in err


@pytest.mark.parametrize(
    ("status", "body"),
    [(404, "<html>\n<body>\nNot Found\n</body>\n</html>"), (502, "<html>\n\nBad\nGateway</html>")],
    ids=["html-404", "html-502-after-retries"],
)
def test_an_html_error_page_is_one_line(monkeypatch, capsys, status, body):
    session = FakeSession(status, body, "text/html")
    monkeypatch.setattr(cli, "token_session", lambda token: session)
    monkeypatch.setattr("tenacity.nap.time.sleep", lambda seconds: None)
    assert cli.main(["jobs", "--url", DEPLOYED, "--token", "t"]) == cli.EXIT_REJECTED
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and f"HTTP {status}" in err


def test_ctrl_c_while_gcloud_runs_stops_gcloud_too(monkeypatch, tmp_path):
    import subprocess
    import time

    pid_file = tmp_path / "pid"
    fake_gcloud(monkeypatch, tmp_path, f"echo $$ > {pid_file}; exec sleep 30")
    communicate = subprocess.Popen.communicate

    def interrupted(
        self: subprocess.Popen[str], input: str | None = None, timeout: float | None = None
    ) -> tuple[str, str]:
        if timeout is None:
            return communicate(self, input)
        for _ in range(100):
            if pid_file.exists() and pid_file.read_text().strip():
                break
            time.sleep(0.05)
        raise KeyboardInterrupt  # as Ctrl-C arrives to gardener alone

    monkeypatch.setattr(subprocess.Popen, "communicate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cli.gcloud_identity_token(DEPLOYED, RuntimeError("no ADC"))
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_ctrl_c_is_one_line_and_exit_status_130(monkeypatch, capsys):
    def interrupted(args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "run", interrupted)
    assert cli.main(["jobs", "--url", DEPLOYED, "--token", "t"]) == cli.EXIT_INTERRUPTED == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("gardener: interrupted")
