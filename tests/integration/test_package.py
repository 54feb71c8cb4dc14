"""The packaged function source serves every entry point on its own.

The artifact is built into a temporary folder and each entry point is served
from it by functions-framework with the working directory elsewhere and no
``PYTHONPATH``, so nothing of the repository can be imported by accident; the
config is the one inside the artifact (no ``GARDENER_CONFIG``).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.package import build
from local.emulator import free_port
from local.stack import stop_process
from tests.conftest import ROOT

pytestmark = pytest.mark.emulator

#: A well-formed key of a job that does not exist.
MISSING = "archive-bucket/ndt/ndt7/20200101"

#: What each known entry point answers: (method, path, status). Others get the default probe.
PROBES: dict[str, tuple[str, str, int]] = {
    "status": ("GET", "/?format=json", 200),
    "update": ("POST", f"/?id={MISSING}&state=parsing", 410),
    "heartbeat": ("POST", f"/?id={MISSING}", 410),
    "error": ("POST", f"/?id={MISSING}&error=e", 410),
    "next_job": ("POST", "/", 503),  # no archive files anywhere: "No job found"
    "maintain": ("POST", "/", 200),
    "postprocess": ("POST", "/", 200),
    "api": ("POST", f"/v2/job/heartbeat?id={MISSING}", 410),
}


def entry_points(main_py: Path) -> list[str]:
    """Names of the functions of ``main_py`` decorated with ``functions_framework.http``."""
    tree = ast.parse(main_py.read_text())
    return [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and any(ast.unparse(d) == "functions_framework.http" for d in node.decorator_list)
    ]


def call(url: str, method: str) -> tuple[int, str]:
    """Send one request; return the status and the body."""
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The function source built by ``deploy.package`` into a temporary folder."""
    out = tmp_path_factory.mktemp("package") / "function"
    build(out)
    return out


def test_entry_points_are_found_in_the_code() -> None:
    names = entry_points(ROOT / "functions" / "main.py")
    assert {"api", "next_job", "update", "heartbeat", "error", "status"} <= set(names)


def test_artifact_holds_the_source_the_requirements_and_the_config(artifact: Path) -> None:
    assert (artifact / "main.py").read_bytes() == (ROOT / "functions" / "main.py").read_bytes()
    assert (artifact / "shared" / "web" / "templates" / "status.html").is_file()
    assert (artifact / "requirements.txt").read_text() == (ROOT / "requirements.txt").read_text()
    assert (artifact / "config" / "gardener.yml").is_file()
    assert not list(artifact.rglob("__pycache__"))
    with zipfile.ZipFile(artifact.with_name("function.zip")) as zf:
        names = set(zf.namelist())
    assert {
        "main.py",
        "requirements.txt",
        "config/gardener.yml",
        "shared/runtime.py",
        "shared/store/__init__.py",
        "shared/store/jobs.py",
    } <= names
    assert not any(n.startswith(("tests/", "local/", "functions/")) for n in names)


def test_the_zip_is_reproducible(tmp_path: Path, artifact: Path) -> None:
    again = build(tmp_path / "function")
    assert again.read_bytes() == artifact.with_name("function.zip").read_bytes()


@pytest.fixture
def servers(
    artifact: Path, tmp_path: Path, project: str, emulator_host: str, gcs_url: str
) -> Iterator[dict[str, str]]:
    """Serve every entry point of the artifact, one server each; yield name → base URL."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # Credentials that parse offline and are never used: BigQuery needs some to build a client.
    adc = tmp_path / "adc.json"
    adc.write_text(
        json.dumps(
            {
                "type": "authorized_user",
                "client_id": "x",
                "client_secret": "x",
                "refresh_token": "x",
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GARDENER_CONFIG")}
    env.update(
        FIRESTORE_EMULATOR_HOST=emulator_host,
        STORAGE_EMULATOR_HOST=gcs_url,
        GOOGLE_CLOUD_PROJECT=project,
        GOOGLE_APPLICATION_CREDENTIALS=str(adc),
        ANNOTATION_SOURCE_PROJECT=f"none-{uuid.uuid4().hex[:8]}",
        NDT_SOURCE_PROJECT=f"none-{uuid.uuid4().hex[:8]}",
        INPUT_BUCKET="unused",
    )
    # The development environment may make the repository's `shared` importable (the
    # console script's editable install); the artifact's main.py must load its own copy.
    probe = (
        f"import runpy; runpy.run_path({str(artifact / 'main.py')!r}); "
        "import shared; print(shared.__file__)"
    )
    check = subprocess.run(
        [sys.executable, "-c", probe], cwd=elsewhere, env=env, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    assert Path(check.stdout.strip().splitlines()[-1]).is_relative_to(artifact), check.stdout
    procs, urls = [], {}
    try:
        for name in entry_points(artifact / "main.py"):
            port = free_port()
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "functions_framework",
                        f"--target={name}",
                        f"--source={artifact / 'main.py'}",
                        "--host=127.0.0.1",
                        f"--port={port}",
                    ],
                    cwd=elsewhere,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    start_new_session=True,
                )
            )
            urls[name] = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        for (name, url), proc in zip(urls.items(), procs, strict=True):
            while True:
                if proc.poll() is not None:
                    assert proc.stderr is not None  # stderr=PIPE
                    pytest.fail(
                        f"{name} exited with {proc.returncode}: {proc.stderr.read().decode()}"
                    )
                try:
                    urllib.request.urlopen(url + "/", timeout=2).close()
                    break
                except urllib.error.HTTPError:
                    break  # an error status is still an answer
                except OSError:
                    assert time.monotonic() < deadline, f"{name} did not start"
                    time.sleep(0.2)
        yield urls
    finally:
        for proc in procs:
            stop_process(proc)


def test_every_entry_point_is_served_from_the_artifact(servers: dict[str, str]) -> None:
    assert set(servers) >= set(PROBES), "an entry point of the probes is not in the artifact"
    for name, url in servers.items():
        method, path, expected = PROBES.get(name, ("GET", "/", 0))
        status, body = call(url + path, method)
        if expected:
            assert status == expected, f"{name}: {status} {body}"
        else:
            assert status < 500, f"{name}: {status} {body}"
    status, body = call(servers["next_job"], "POST")
    assert "No job found" in body
    status, body = call(servers["maintain"], "POST")
    assert json.loads(body)  # the run's summary: the artifact's own config was found
