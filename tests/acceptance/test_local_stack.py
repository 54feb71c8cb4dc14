"""The local stack as ``make run`` starts it, called the way the Go parsers call it."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import timedelta
from typing import Any

import pytest

from local.emulator import free_port
from local.stack import ROOT, launched
from shared.model import utcnow


def post(url: str) -> tuple[int, dict[str, Any]]:
    """POST with an empty body and no content type, as the Go client does."""
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, data=b"", method="POST"), timeout=30
        ) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        body = e.read()
        if e.headers.get_content_type() != "application/json":
            return e.code, {"text": body.decode()}
        return e.code, json.loads(body or b"{}")


def test_stack_serves_go_client_calls_and_stops_on_ctrl_c(emulator_host, gcs_url, project):
    port = free_port()
    env = {
        **os.environ,
        "FIRESTORE_EMULATOR_HOST": emulator_host,
        "PORT": str(port),
        "GOOGLE_CLOUD_PROJECT": project,
        "STORAGE_EMULATOR_HOST": gcs_url,
        "POSTPROCESS_INTERVAL": "0.5",
    }
    env.pop("GARDENER_CONFIG", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "local.stack"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None  # stdout=PIPE
    try:
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "Ctrl-C" in line or not line:
                break
        output = "".join(lines)
        assert f"http://127.0.0.1:{port}" in output, output
        base = f"http://127.0.0.1:{port}"

        # The demo bucket has archives: the first next hands out a job in the Go shape,
        # yesterday's first daily job at any hour (the demo config's daily_delay is 0s).
        code, job = post(f"{base}/v2/job/next")
        assert code == 200, job
        job_id = job["ID"]
        yesterday = utcnow().date() - timedelta(days=1)
        assert job_id.startswith(f"archive-demo/ndt/annotation2/{yesterday:%Y%m%d}~"), job_id
        key = job_id.partition("~")[0]  # the status page shows the key
        assert set(job) == {"ID", "Job"}
        assert job["Job"]["Bucket"] == "archive-demo" and job["Job"]["Date"].endswith("T00:00:00Z")
        handed = {job_id}
        while (answer := post(f"{base}/v2/job/next"))[0] == 200:
            assert answer[1]["ID"] not in handed
            handed.add(answer[1]["ID"])
        assert len(handed) > 3

        assert (
            post(f"{base}/v2/job/update?id={job_id}&state=parsing&detail=starting+tasks")[0] == 200
        )
        assert post(f"{base}/v2/job/heartbeat?id={job_id}")[0] == 200
        assert (
            post(f"{base}/v2/job/update?id={job_id}&state=parsing&detail=gs%3A%2F%2Fa.tgz")[0]
            == 200
        )
        assert post(f"{base}/v2/job/update?id={job_id}")[0] == 424
        assert post(f"{base}/v2/job/update?state=parsing")[0] == 422
        assert (
            post(f"{base}/v2/job/heartbeat?id=archive-measurement-lab/ndt/ndt7/20000101")[0] == 410
        )
        code, body = post(f"{base}/v2/job/update?id={job_id}&state=complete")
        assert code == 409 and "complete is set by post-processing" in body["error"]
        assert post(f"{base}/v2/job/update?id={job_id}&state=postProcessing")[0] == 200

        # The demo sources have no BigQuery steps: the post-processing ticks complete the job.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"{base}/status?format=json", timeout=30) as r:
                jobs = {j["ID"]: j for j in json.loads(r.read())["Jobs"]}
            if jobs[key]["State"] == "complete":
                break
            time.sleep(0.3)
        states = [e["State"] for e in jobs[key]["Status"]["History"]]
        assert states == ["init", "parsing", "postProcessing", "complete"]
        assert jobs[key]["Status"]["UpdateCount"] == 4
        with urllib.request.urlopen(f"{base}/status", timeout=30) as r:
            assert "complete" in r.read().decode()

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        try:
            urllib.request.urlopen(f"{base}/status", timeout=2)
            raise AssertionError("the function server still answers after Ctrl-C")
        except OSError:
            pass
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_silent_job_fails_is_handed_out_again_and_snapshots_appear(
    emulator_host, gcs_url, gcs_client, project, tmp_path
):
    day = utcnow().date() - timedelta(days=3)
    bucket = "archive-accept-" + project[-8:]
    gcs_client.create_bucket(bucket)
    gcs_client.bucket(bucket).blob(f"ndt/ndt7/{day:%Y/%m/%d}/a.tgz").upload_from_string(b"x")
    config = tmp_path / "gardener.yml"
    config.write_text(
        f"start_date: {day:%Y-%m-%d}\ntracker: {{timeout: 2s}}\nmonitor: {{polling_interval: 1m}}\n"
        f"sources:\n  - bucket: {bucket}\n    experiment: ndt\n    datatype: ndt7\n"
        f"    target_datasets: {{tmp: tmp_ndt, raw: raw_ndt}}\n    pipeline: []\n"
    )
    env = {
        **os.environ,
        "FIRESTORE_EMULATOR_HOST": emulator_host,
        "GOOGLE_CLOUD_PROJECT": project,
        "STORAGE_EMULATOR_HOST": gcs_url,
        "GARDENER_CONFIG": str(config),
        "MAINTAIN_INTERVAL": "0.5",
        "RETRY_BACKOFF": "1s",
    }
    with launched(env, free_port()) as (base, _):
        code, job = post(f"{base}/v2/job/next")
        assert code == 200
        job_id = job["ID"]
        assert post(f"{base}/v2/job/update?id={job_id}&state=parsing&detail=starting")[0] == 200

        # The parser goes silent: maintain expires the job, next hands it out again.
        again, deadline = None, time.monotonic() + 30
        while time.monotonic() < deadline:
            code, answer = post(f"{base}/v2/job/next")
            if code == 200:
                again = answer
                break
            time.sleep(0.5)
        assert again is not None and again["ID"].partition("~")[0] == job_id.partition("~")[0]
        assert again["ID"] != job_id  # a new run: the silent parser's ID is stale now
        assert post(f"{base}/v2/job/heartbeat?id={job_id}")[0] == 409
        with urllib.request.urlopen(f"{base}/status?format=json", timeout=30) as r:
            status = json.loads(r.read())["Jobs"][0]
        assert status["Attempts"] == 2
        assert status["LastError"].startswith("expired in parsing: no heartbeat or update since")

        names = [b.name for b in gcs_client.list_blobs("gardener-snapshots")]
        assert "snapshots/latest.json" in names and len(names) >= 2


def _own_emulators_env(port: int) -> dict[str, str]:
    """The environment of a stack that starts its own emulators, as a plain ``make run``."""
    env = {**os.environ, "PORT": str(port), "GOOGLE_CLOUD_PROJECT": "demo-stack-signals"}
    for name in ("FIRESTORE_EMULATOR_HOST", "STORAGE_EMULATOR_HOST", "GARDENER_CONFIG"):
        env.pop(name, None)
    return env


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2).close()
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True


def test_busy_port_is_refused_before_anything_starts():
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "local.stack"],
            cwd=ROOT,
            env=_own_emulators_env(port),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr
    assert f"port {port} is in use" in done.stderr and "PORT=" in done.stderr
    assert time.monotonic() - started < 20  # no emulator was started


def test_bad_switch_is_refused_before_anything_starts():
    env = {**_own_emulators_env(free_port()), "MAINTAIN_INTERVAL": "soon"}
    done = subprocess.run(
        [sys.executable, "-m", "local.stack"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert "MAINTAIN_INTERVAL must be a number of seconds" in done.stderr


@pytest.mark.parametrize(
    "signals",
    [
        # kill -TERM -- -PGID: make and the stack both get it, and make passes its own on.
        (signal.SIGTERM, signal.SIGTERM),
        # A closed terminal, then a supervisor's TERM while the stack cleans up.
        (signal.SIGHUP, signal.SIGTERM),
    ],
    ids=["term-twice", "hup"],
)
def test_stop_signals_stop_everything_the_stack_started(signals):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "local.stack"],
        cwd=ROOT,
        env=_own_emulators_env(port),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as make's under a shell
    )
    assert proc.stdout is not None
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.put(line)
        lines.put("")  # end of output

    threading.Thread(target=read, daemon=True).start()

    def wait_for(text: str) -> list[str]:
        seen: list[str] = []
        while text not in (line := lines.get(timeout=90)):
            assert line, f"output ended before {text!r}:\n" + "".join(seen)
            seen.append(line)
        return seen

    try:
        printed = wait_for("Ctrl-C")
        first = next(x for x in printed if x.startswith("Firestore emulator:"))
        firestore = "http://" + first.split()[2]
        gcs = first.rsplit("GCS emulator: ", 1)[1].strip()
        base = f"http://127.0.0.1:{port}"
        assert _answers(firestore) and _answers(gcs) and _answers(f"{base}/status")

        os.killpg(proc.pid, signals[0])
        wait_for("stopping")
        os.kill(proc.pid, signals[1])  # in the middle of the clean-up
        assert proc.wait(timeout=60) == 0
        for url in (firestore, gcs, f"{base}/status"):
            assert not _answers(url), f"{url} still answers after the stack stopped"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_tickers_and_snapshots_have_switches(emulator_host, gcs_url, project):
    env = {
        **os.environ,
        "FIRESTORE_EMULATOR_HOST": emulator_host,
        "GOOGLE_CLOUD_PROJECT": project,
        "STORAGE_EMULATOR_HOST": gcs_url,
        "POSTPROCESS_INTERVAL": "off",
        "MAINTAIN_INTERVAL": "0.5",
        "SNAPSHOTS": "off",
    }
    env.pop("GARDENER_CONFIG", None)
    with launched(env, free_port()) as (base, output):
        printed = "".join(output)
        assert "Not calling /postprocess (POSTPROCESS_INTERVAL=off)" in printed
        assert "Calling /maintain every 0.5 s" in printed
        assert "Snapshots: off (SNAPSHOTS=off)" in printed
        assert "BigQuery" not in printed  # no source of the demo config needs it
        code, summary = post(f"{base}/maintain")
        assert code == 200 and summary["snapshot"] is None

        code, job = post(f"{base}/v2/job/next")
        assert code == 200
        job_id = job["ID"]
        assert post(f"{base}/v2/job/update?id={job_id}&state=postProcessing")[0] == 200
        time.sleep(3)  # several maintain ticks, no post-processing tick
        with urllib.request.urlopen(f"{base}/status?format=json", timeout=30) as r:
            jobs = {j["ID"]: j for j in json.loads(r.read())["Jobs"]}
        assert jobs[job_id.partition("~")[0]]["State"] == "postProcessing"


def test_a_bigquery_config_runs_post_processing_on_the_emulator_to_its_documented_stop(
    emulator_host, gcs_url, project
):
    env = {
        **os.environ,
        "FIRESTORE_EMULATOR_HOST": emulator_host,
        "GOOGLE_CLOUD_PROJECT": project,
        "STORAGE_EMULATOR_HOST": gcs_url,
        "GARDENER_CONFIG": str(ROOT / "local" / "demo-bigquery-config.yml"),
        "POSTPROCESS_INTERVAL": "0.5",
        "MAINTAIN_INTERVAL": "off",
        # Credentials that cannot be read: a client that looked for any would fail its step.
        "GOOGLE_APPLICATION_CREDENTIALS": "/nonexistent/credentials.json",
    }
    for name in ("BIGQUERY_EMULATOR_HOST", "BIGQUERY", "INPUT_BUCKET", "BIGQUERY_PROJECT"):
        env.pop(name, None)
    with launched(env, free_port()) as (base, output):
        printed = "".join(output)
        assert "BigQuery emulator: http://127.0.0.1:" in printed, printed
        cannot = [line for line in output if line.startswith("The BigQuery emulator cannot run")]
        assert [line.split(":")[0].rsplit(" ", 1)[1] for line in cannot] == [
            "copying",
            "deleting",
            "joining",
        ]
        assert "Historical cycles start at least 5m0s apart" in printed

        code, job = post(f"{base}/v2/job/next")
        assert code == 200, job
        job_id = job["ID"]
        key = job_id.partition("~")[0]
        assert post(f"{base}/v2/job/update?id={job_id}&state=postProcessing")[0] == 200

        # Loaded and deduplicated on the emulator, then refused at the copy: failed, saying why.
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"{base}/status?format=json", timeout=30) as r:
                jobs = {j["ID"]: j for j in json.loads(r.read())["Jobs"]}
            if jobs[key]["State"] == "failed":
                break
            time.sleep(0.5)
        history = jobs[key]["Status"]["History"]
        assert [e["State"] for e in history] == [
            "init",
            "postProcessing",
            "loading",
            "deduplicating",
            "copying",
            "failed",
        ], history
        details = {e["State"]: e["Detail"] for e in history}
        assert "3 rows" in details["loading"], details
        assert details["deduplicating"].startswith("Dedup took "), details
        assert "copying: Copy job" in jobs[key]["Detail"], jobs[key]
        assert "Not found: table" in jobs[key]["Detail"]


def test_bigquery_off_starts_no_emulator_and_says_so(emulator_host, gcs_url, project):
    env = {
        **os.environ,
        "FIRESTORE_EMULATOR_HOST": emulator_host,
        "GOOGLE_CLOUD_PROJECT": project,
        "STORAGE_EMULATOR_HOST": gcs_url,
        "GARDENER_CONFIG": str(ROOT / "local" / "demo-bigquery-config.yml"),
        "POSTPROCESS_INTERVAL": "off",
        "MAINTAIN_INTERVAL": "off",
        "BIGQUERY": "off",
    }
    for name in ("BIGQUERY_EMULATOR_HOST", "INPUT_BUCKET"):
        env.pop(name, None)
    with launched(env, free_port()) as (_, output):
        printed = "".join(output)
        assert "BigQuery emulator" not in printed
        assert "BigQuery: off (BIGQUERY=off)" in printed and "no INPUT_BUCKET" in printed
