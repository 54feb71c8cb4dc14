"""The ``gardener`` command line against a real function server on the emulators."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from shared import cli
from shared.model import utcnow

GARDENER = Path(sys.executable).parent / "gardener"
#: The command line of this tree (the console script may import another checkout's package).
THIS_GARDENER = [sys.executable, "-m", "shared.cli"]
ROOT = Path(__file__).resolve().parents[2]

COMMANDS = (
    "jobs",
    "job",
    "retry",
    "fail",
    "reprocess",
    "cancel-reprocess",
    "pause",
    "resume",
    "controls",
    "export",
    "import",
)


@pytest.fixture
def server(start_server, gcs_client, gcs_url, tmp_path):
    """A server with a two-source config on a fresh archive bucket and a snapshot bucket."""
    archive = f"archive-{uuid.uuid4().hex[:12]}"
    snapshots = f"snap-{uuid.uuid4().hex[:12]}"
    gcs_client.create_bucket(archive)
    gcs_client.create_bucket(snapshots)
    config = tmp_path / "config.yml"
    start = utcnow().date() - timedelta(days=5)
    sources = "".join(
        f"""
  - bucket: {archive}
    experiment: ndt
    datatype: {dt}
    target_datasets: {{tmp: tmp_ndt, raw: raw_ndt}}
    pipeline: []"""
        for dt in ("a", "b")
    )
    config.write_text(
        f"start_date: '{start}'\ntracker: {{timeout: 1h}}\n"
        f"monitor: {{polling_interval: 1m}}\nsources:{sources}\n"
    )
    for day in (start, start + timedelta(days=1)):
        gcs_client.bucket(archive).blob(f"ndt/a/{day:%Y/%m/%d}/x.tgz").upload_from_string(b"x")
    url = start_server(
        GARDENER_CONFIG=str(config), STORAGE_EMULATOR_HOST=gcs_url, SNAPSHOT_BUCKET=snapshots
    )
    return {"url": url, "archive": archive, "snapshots": snapshots, "start": start}


def run(capsys, url: str, *args: str) -> tuple[int, str, str]:
    """Run the command line in this process; return (exit status, stdout, stderr)."""
    code = cli.main([*args, "--url", url, "--operator", "carol"])
    out, err = capsys.readouterr()
    return code, out, err


def next_job(url: str) -> str:
    """Take the next job; return its key (the handed-out ID without its run)."""
    with urllib.request.urlopen(
        urllib.request.Request(f"{url}/v2/job/next", data=b"", method="POST"), timeout=30
    ) as r:
        return str(json.loads(r.read())["ID"]).partition("~")[0]


def test_the_console_script_is_installed_and_every_command_has_help() -> None:
    assert GARDENER.exists(), "run `make test` (it installs the gardener console script)"
    top = subprocess.run(
        [str(GARDENER), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert top.returncode == 0 and all(c in top.stdout for c in COMMANDS)
    for command in COMMANDS:
        with pytest.raises(SystemExit) as exit_:
            cli.parser().parse_args([command, "--help"])
        assert exit_.value.code == 0


def test_operator_session_through_the_cli(server, capsys):
    url = server["url"]
    key = next_job(url)
    assert key.endswith(f"/ndt/a/{server['start']:%Y%m%d}")

    code, out, _ = run(capsys, url, "jobs")
    assert code == 0 and key in out and "1 jobs" in out
    code, out, _ = run(capsys, url, "jobs", "--state", "init", "--json")
    assert code == 0 and [j["ID"] for j in json.loads(out)["Jobs"]] == [key]

    code, out, _ = run(capsys, url, "fail", key, "--reason", "stuck archive")
    assert code == 0 and "init -> failed" in out and "carol" in out
    code, _, err = run(capsys, url, "fail", key, "--reason", "again")
    assert code == 1 and "failed already" in err and f"gardener retry {key}" in err
    assert "HTTP 409" in err
    code, out, _ = run(capsys, url, "retry", key, "--json")
    assert code == 0 and json.loads(out)["Audit"][-1]["Action"] == "retry"
    assert next_job(url) == key  # due now

    code, out, _ = run(capsys, url, "job", key, "--json")
    body = json.loads(out)
    assert [a["Action"] for a in body["Audit"]] == ["fail", "retry"]
    assert {a["Who"] for a in body["Audit"]} == {"carol (unverified)"} and body["Attempts"] == 2
    code, out, _ = run(capsys, url, "job", key)
    assert code == 0 and "History:" in out and "Audit:" in out and "stuck archive" in out

    code, out, _ = run(capsys, url, "pause", "ndt/b", "--reason", "schema change")
    assert code == 0 and "paused by carol" in out
    code, out, _ = run(capsys, url, "controls", "--json")
    assert json.loads(out)["Sources"][1]["Paused"]["Reason"] == "schema change"
    code, out, _ = run(capsys, url, "resume", "ndt/b")
    assert code == 0 and "resumed" in out
    code, _, err = run(capsys, url, "resume", "ndt/b")
    assert code == 1 and "not paused" in err

    start = server["start"]
    code, out, _ = run(
        capsys, url, "reprocess", "--from", f"{start}", "--to", f"{start}", "--source", "ndt/a"
    )
    assert code == 0 and "queued 1 jobs" in out
    code, out, _ = run(capsys, url, "controls")
    assert code == 0 and "Reprocessing queued: 1" in out and "historical" in out
    code, _, err = run(
        capsys, url, "reprocess", "--from", f"{start}", "--to", f"{start}", "--source", "ndt/zz"
    )
    assert code == 1 and "unknown sources ndt/zz" in err
    second = start + timedelta(days=1)
    code, out, _ = run(capsys, url, "reprocess", "--from", f"{start}", "--to", f"{second}")
    assert code == 0 and "queued 3 jobs" in out and "(1 were queued already)" in out
    code, out, _ = run(
        capsys, url, "cancel-reprocess", "--from", f"{second}", "--to", f"{second}", "--json"
    )
    cancelled = json.loads(out)
    assert code == 0 and cancelled["Cancelled"] == 2 and cancelled["Who"] == "carol (unverified)"
    assert sorted(cancelled["Jobs"]) == [
        f"{server['archive']}/ndt/{dt}/{second:%Y%m%d}" for dt in "ab"
    ]
    code, out, _ = run(capsys, url, "cancel-reprocess", "--from", f"{second}", "--to", f"{second}")
    assert code == 0 and "cancelled 0 queued reprocessing jobs" in out
    code, _, err = run(capsys, url, "cancel-reprocess", "--from", f"{second}", "--to", f"{start}")
    assert code == 1 and "after to" in err and "HTTP 400" in err
    code, out, _ = run(capsys, url, "controls", "--json")
    assert [i["ID"] for i in json.loads(out)["ReprocessNext"]] == [
        f"{server['archive']}/ndt/a/{start:%Y%m%d}",
        f"{server['archive']}/ndt/b/{start:%Y%m%d}",
    ]

    code, out, _ = run(capsys, url, "export", "--json")
    exported = json.loads(out)
    assert code == 0 and exported["jobs"] == 1 and exported["Who"] == "carol (unverified)"
    code, out, _ = run(capsys, url, "import", f"gs://{server['snapshots']}/{exported['latest']}")
    assert code == 0 and "1 already present" in out


def test_exit_codes_for_usage_errors_and_an_unreachable_tracker(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["reprocess", "--from", "yesterday", "--to", "2026-01-01"])
    assert exit_.value.code == 2
    unreachable = subprocess.run(
        [*THIS_GARDENER, "controls", "--url", "http://127.0.0.1:9", "--timeout", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert unreachable.returncode == 1
    assert (
        unreachable.stderr == "error: no tracker at http://127.0.0.1:9; set --url or GARDENER_URL\n"
    )
    assert cli.main(["controls", "--url", "ftp://h"]) == 2
    script = subprocess.run(
        [str(GARDENER), "fail", "x"], capture_output=True, text=True, timeout=60, check=False
    )
    assert script.returncode == 2 and "--reason" in script.stderr


def test_bulk_retry_and_fail_by_filter_with_a_dry_run_and_a_confirmation(
    server, capsys, monkeypatch
):
    url = server["url"]
    first = next_job(url)
    second = next_job(url)  # both of ndt/a
    code, out, _ = run(capsys, url, "fail", "--datatype", "a", "--reason", "bad", "--dry-run")
    assert code == 0 and "2 jobs match; nothing changed (dry run)" in out
    code, out, _ = run(capsys, url, "jobs", "--state", "failed")
    assert "0 jobs" in out

    monkeypatch.setattr("builtins.input", lambda *question: "n")
    code, out, err = run(capsys, url, "fail", "--datatype", "a", "--reason", "bad")
    assert code == 1 and "2 jobs would change:" in err and "not confirmed" in err
    monkeypatch.setattr("builtins.input", lambda: "y")
    code, out, err = run(capsys, url, "fail", "--datatype", "a", "--reason", "bad")
    # The question goes to stderr, so that stdout (--json) holds the answer alone.
    assert code == 0 and "fail these 2 jobs? [y/N] " in err and "failed 2 jobs" in out
    assert "[y/N]" not in out
    assert first in out and second in out

    code, out, _ = run(capsys, url, "fail", "--datatype", "a", "--reason", "again", "--dry-run")
    assert code == 0 and "would be left 2 jobs unchanged" in out  # the real run's refusal
    assert f"gardener retry {first}" in out
    code, out, _ = run(capsys, url, "fail", "--datatype", "a", "--reason", "again", "--yes")
    assert code == 0 and "failed 0 jobs" in out and "left 2 jobs unchanged" in out
    assert f"gardener retry {first}" in out
    code, out, _ = run(capsys, url, "retry", "--state", "failed", "--yes", "--json")
    body = json.loads(out)
    assert code == 0 and sorted(body["Changed"]) == sorted([first, second])
    assert body["Unchanged"] == [] and body["Who"] == "carol (unverified)"
    code, out, _ = run(capsys, url, "retry", "--state", "complete")
    assert code == 0 and "no jobs to change; nothing changed" in out


def test_unknown_sources_are_refused_with_the_valid_list(server, capsys):
    url = server["url"]
    for args in (
        ("jobs", "--datatype", "ndt8"),
        ("retry", "--datatype", "ndt8", "--yes"),
        ("fail", "--experiment", "wehe", "--reason", "r", "--dry-run"),
    ):
        code, _, err = run(capsys, url, *args)
        assert code == 1 and "the sources are ndt/a, ndt/b" in err and "HTTP 400" in err, args


def test_times_are_relative_unless_absolute_and_a_pause_can_change_its_reason(server, capsys):
    url = server["url"]
    key = next_job(url)
    code, out, _ = run(capsys, url, "jobs")
    assert code == 0 and ("s ago" in out or "just now" in out)
    code, out, _ = run(capsys, url, "job", key, "--absolute")
    assert code == 0 and "ago" not in out and "LastActivity: 20" in out

    run(capsys, url, "pause", "ndt/b", "--reason", "schema change")
    code, out, _ = run(capsys, url, "pause", "ndt/b", "--reason", "schema change, until Monday")
    assert code == 0 and "until Monday" in out and "was: schema change" in out
    code, out, _ = run(capsys, url, "controls")
    assert "paused by carol (unverified) since" in out and "until Monday" in out


def test_a_heartbeat_to_a_finished_job_says_what_to_do(server, capsys):
    url = server["url"]
    key = next_job(url)
    run(capsys, url, "fail", key, "--reason", "stuck")
    request = urllib.request.Request(f"{url}/v2/job/heartbeat?id={key}", data=b"", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    text = refused.value.read().decode()
    assert (
        refused.value.code == 409 and "nothing to keep alive" in text and "gardener retry" in text
    )


def test_a_reader_that_stops_early_gets_no_traceback(server):
    """``gardener jobs | head -1``: the reader closes the pipe before the output is written."""
    process = subprocess.Popen(
        [*THIS_GARDENER, "jobs", "--url", server["url"], "--operator", "carol"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    err = process.stderr.read().decode()
    assert process.wait(timeout=60) == 0 and "Traceback" not in err and "BrokenPipe" not in err, err


class _Canned(http.server.BaseHTTPRequestHandler):
    """Answers every request with the server's canned status, content type and body."""

    def do_GET(self) -> None:
        status, content_type, body = self.server.canned  # type: ignore[attr-defined]
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def canned():
    """A local server whose answer a test sets: ``serve(status, content_type, body) -> url``."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Canned)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def serve(status: int, content_type: str, body: bytes) -> str:
        server.canned = (status, content_type, body)  # type: ignore[attr-defined]
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield serve
    server.shutdown()
    server.server_close()


def gardener(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run this tree's command line as a process."""
    return subprocess.run(
        [*THIS_GARDENER, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


@pytest.mark.parametrize(
    ("status", "content_type", "body", "said"),
    [
        (
            200,
            "text/html; charset=utf-8",
            b"<!DOCTYPE html><html><title>Sign in</title></html>",
            "answered HTTP 200 but not with the tracker's JSON (text/html",
        ),
        (200, "application/json", b"[]", "not with the tracker's JSON (application/json"),
        (401, "text/html", b"<html>Unauthorized</html>", "the platform (Cloud Run, or IAP)"),
        (403, "application/json", b'{"error": "no"}', "the tracker at"),
    ],
    ids=["sign-in-page", "json-list", "platform-401", "tracker-403"],
)
def test_answers_that_are_not_the_trackers_are_one_line_without_a_traceback(
    canned, status, content_type, body, said
):
    done = gardener("jobs", "--url", canned(status, content_type, body))
    assert done.returncode == 1 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr
    assert said in done.stderr


def test_deployed_without_credentials_is_one_line_saying_what_to_run(tmp_path):
    """A person's login cannot mint ID tokens: gcloud is asked, and when it cannot help, one line."""
    env = {
        "PATH": str(tmp_path),  # no gcloud
        "HOME": str(tmp_path),
        "GCE_METADATA_HOST": "127.0.0.1:9",  # no metadata server
        "GCE_METADATA_IP": "127.0.0.1:9",
    }
    url = "https://gardener-admin-abc123-uc.a.run.app"
    done = gardener("jobs", "--url", url, env=env)
    assert done.returncode == 1 and len(done.stderr.splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr and "no gcloud to ask" in done.stderr
    assert "gcloud auth print-identity-token" in done.stderr
    (tmp_path / "gcloud").write_text(
        "#!/bin/sh\necho 'ERROR: (gcloud.auth.print-identity-token) You do not currently have"
        " an active account selected.' >&2\nexit 1\n"
    )
    (tmp_path / "gcloud").chmod(0o755)
    done = gardener("jobs", "--url", url, env=env)
    assert done.returncode == 1 and len(done.stderr.splitlines()) == 1, done.stderr
    assert "an active account selected.): run `gcloud auth login`" in done.stderr
