"""The BigQuery emulator (PyPI ``bqemulator``), started as a process for the tests and local runs.

``bqemulator`` serves BigQuery's REST API on 127.0.0.1 and runs GoogleSQL on
DuckDB. We start it ourselves, one process we own, ready when ``GET /readyz``
answers 200, stopped with SIGTERM. Two things make it work offline:

* ``BQEMU_ENABLE_FORMAT_EXTENSIONS=false``: no download of DuckDB's ``avro``
  extension (Avro loads are not used here);
* the ``spatial`` extension, which the emulator insists on at start-up and
  would download, is loaded only if DuckDB already has it: the emulator runs
  through a small launcher (:data:`LAUNCHER`) that makes that load best-effort.
  GEOGRAPHY columns and ``ST_*`` functions then fail; nothing here uses them.

``gs://bucket/path`` URIs in load jobs are read from ``{gcs_root}/bucket/path``
(``BQEMU_GCS_LOCAL_ROOT``). Clients reach the emulator through :func:`client`.

``BQEMULATOR_PYTHON`` may name another interpreter that has ``bqemulator``
installed (its dependency pins differ from the runtime's); by default the
current interpreter runs it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from local.emulator import EmulatorError, EmulatorProcess

if TYPE_CHECKING:
    from google.cloud import bigquery

PACKAGE = "bqemulator"
VERSION = "1.4.0"

INSTALL_HINT = (
    f"Install it with `pip install {PACKAGE}=={VERSION}` (requirements-dev.txt), or set "
    f"BQEMULATOR_PYTHON to a Python interpreter that has {PACKAGE} installed."
)

#: Project the emulator's clients use by default (any id works with the emulator).
DEMO_PROJECT = "demo-gardener"

#: Python source run with ``-c`` to start the emulator: the spatial extension becomes
#: optional (it cannot be downloaded offline), then the ``bqemulator`` command line runs.
LAUNCHER = """\
import sys
try:
    from bqemulator.cli import main
    from bqemulator.storage import engine
except ImportError as exc:
    sys.exit(f"cannot import bqemulator: {exc}")

def _load_spatial_if_present(self):
    try:
        self._connection.execute("LOAD spatial")
    except Exception:
        pass  # GEOGRAPHY is unavailable; everything else works

engine.DuckDBEngine._load_spatial = _load_spatial_if_present
sys.argv[0] = "bqemulator"
main()
"""


def python() -> str:
    """Return the interpreter that runs the emulator: ``BQEMULATOR_PYTHON`` or this one."""
    return os.environ.get("BQEMULATOR_PYTHON") or sys.executable


def check_installed(interpreter: str | None = None) -> None:
    """Raise EmulatorError naming the pip package unless ``interpreter`` can import it."""
    interpreter = interpreter or python()
    if interpreter == sys.executable:
        import importlib.util

        if importlib.util.find_spec(PACKAGE) is None:
            raise EmulatorError(
                f"The BigQuery emulator ({PACKAGE}) is not installed. {INSTALL_HINT}"
            )
        return
    try:
        done = subprocess.run(
            [interpreter, "-c", f"import {PACKAGE}"], check=False, capture_output=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EmulatorError(f"cannot run BQEMULATOR_PYTHON={interpreter}: {exc}") from exc
    if done.returncode != 0:
        raise EmulatorError(f"{PACKAGE} is not importable by {interpreter}. {INSTALL_HINT}")


def _status(url: str, timeout: float = 1.0) -> int:
    with urllib.request.urlopen(url, timeout=timeout) as r:  # loopback only
        return int(r.status)


class BqEmulator(EmulatorProcess):
    """One bqemulator process on 127.0.0.1, in memory; ``gs://`` loads read under ``gcs_root``."""

    name = "BigQuery emulator"

    def __init__(
        self, port: int | None = None, gcs_root: Path | None = None, log_path: Path | None = None
    ) -> None:
        super().__init__(port, log_path)
        self.gcs_root = Path(gcs_root) if gcs_root is not None else None

    def command(self) -> list[str]:
        """Return the command line that starts this emulator (gRPC on a random free port)."""
        return [
            python(),
            "-c",
            LAUNCHER,
            "start",
            "--rest-host",
            "127.0.0.1",
            "--rest-port",
            str(self.port),
            "--grpc-host",
            "127.0.0.1",
            "--grpc-port",
            "0",
            "--ephemeral",
            "--project",
            DEMO_PROJECT,
            "--log-format",
            "console",
            "--log-level",
            "warning",
        ]

    def environment(self) -> dict[str, str]:
        """Return the process environment: ours plus the emulator's offline settings."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("BQEMU_")}
        env["BQEMU_ENABLE_FORMAT_EXTENSIONS"] = "false"
        if self.gcs_root is not None:
            env["BQEMU_GCS_LOCAL_ROOT"] = str(self.gcs_root.resolve())
        return env

    def cwd(self) -> str:
        """A folder without ``.bqemu.toml``, so only our settings apply."""
        return tempfile.gettempdir()

    def prepare(self) -> None:
        """Check the package is installed; create the folder ``gs://`` loads read from."""
        check_installed()
        if self.gcs_root is not None:
            self.gcs_root.mkdir(parents=True, exist_ok=True)

    def is_ready(self) -> bool:
        """The emulator answers ``/readyz``."""
        return _status(f"{self.url}/readyz") == 200


def client(url: str, project: str = DEMO_PROJECT) -> bigquery.Client:
    """Return a BigQuery client bound to the emulator at ``url``, without credentials."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    return bigquery.Client(
        project=project, credentials=AnonymousCredentials(), client_options={"api_endpoint": url}
    )
