"""The Firestore emulator, started from its jar for the local stack, the tests and benchmarks.

Starting the jar directly (not ``gcloud emulators firestore start``) means one
Java process that we own: it is ready when ``GET /`` answers ``Ok`` and stops
on ``POST /shutdown``, and a signal cannot orphan it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Self

_JAR = "platform/cloud-firestore-emulator/cloud-firestore-emulator.jar"
_SDK_ROOTS = ("/usr/lib/google-cloud-sdk", "/usr/share/google-cloud-sdk", "~/google-cloud-sdk")
_MAIN = "com.google.cloud.datastore.emulator.firestore.CloudFirestore"

INSTALL_HINT = (
    "Install it with the Debian/Ubuntu package google-cloud-cli-firestore-emulator "
    "(apt-get install google-cloud-cli-firestore-emulator) or with "
    "`gcloud components install cloud-firestore-emulator`, plus Java 17 or newer; "
    "or set FIRESTORE_EMULATOR_JAR to the jar's path."
)


class EmulatorError(RuntimeError):
    """The emulator is missing, cannot run here, or did not start."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_jar() -> Path:
    """Return the emulator jar: ``FIRESTORE_EMULATOR_JAR``, else the gcloud SDK's."""
    explicit = os.environ.get("FIRESTORE_EMULATOR_JAR")
    if explicit:
        if Path(explicit).is_file():
            return Path(explicit)
        raise EmulatorError(f"FIRESTORE_EMULATOR_JAR={explicit} is not a file. {INSTALL_HINT}")
    roots = [Path(r).expanduser() for r in _SDK_ROOTS]
    gcloud = shutil.which("gcloud")
    if gcloud:
        roots.insert(0, Path(gcloud).resolve().parent.parent)
    for root in roots:
        if (root / _JAR).is_file():
            return root / _JAR
    raise EmulatorError(f"The Firestore emulator is not installed. {INSTALL_HINT}")


def check_java() -> str:
    """Return the java binary; EmulatorError unless it is Java 17 or newer."""
    java = shutil.which("java")
    if not java:
        raise EmulatorError(f"java is not on PATH. {INSTALL_HINT}")
    found = java_version(java)
    m = re.search(r'version "(\d+)', found)
    if not m or int(m.group(1)) < 17:
        raise EmulatorError(f"Java 17 or newer is needed, found: {found or 'no version'}")
    return java


def java_version(java: str) -> str:
    """The first line ``java -version`` prints (empty if none)."""
    out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=20).stderr
    return out.splitlines()[0] if out else ""


def emulator_version(jar: Path) -> str:
    """The version of the emulator ``jar`` as the Cloud SDK's install record gives it."""
    snapshot = jar.parents[2] / ".install" / "cloud-firestore-emulator.snapshot.json"
    found = {c.get("id"): c for c in json.loads(snapshot.read_text())["components"]}
    emulator = found.get("cloud-firestore-emulator")
    return str(emulator["version"]["version_string"]) if emulator else "unknown"


@contextlib.contextmanager
def running(log_path: Path, heap: str = "512m") -> Iterator[tuple[str, bool]]:
    """The Firestore emulator ``FIRESTORE_EMULATOR_HOST`` names, else one started for the block
    (a fresh log ``log_path``, Java heap ``heap``) and named there meanwhile: its host, and
    whether it was started here."""
    if host := os.environ.get("FIRESTORE_EMULATOR_HOST"):
        yield host, False
        return
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.unlink(missing_ok=True)
    emulator = FirestoreEmulator(log_path=log_path, heap=heap)
    try:
        os.environ["FIRESTORE_EMULATOR_HOST"] = emulator.start().host
        yield emulator.host, True
    finally:
        emulator.stop()
        os.environ.pop("FIRESTORE_EMULATOR_HOST", None)


def wipe(host: str, project: str) -> None:
    """Delete every document of ``project``'s default database on the emulator at ``host``."""
    url = f"http://{host}/emulator/v1/projects/{project}/databases/(default)/documents"
    urllib.request.urlopen(urllib.request.Request(url, method="DELETE"), timeout=10).close()


def _get(url: str, timeout: float = 1.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        body: bytes = r.read()
    return body.decode()


class EmulatorProcess:
    """An emulator run as one child process on 127.0.0.1 that we start, wait for and stop.

    Subclasses give the :meth:`command`, what :meth:`is_ready` asks, and
    optionally an :meth:`environment`, a working directory and checks in
    :meth:`prepare`.
    """

    #: Name used in messages.
    name = "emulator"
    #: Seconds between readiness checks.
    poll = 0.2

    def __init__(self, port: int | None = None, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        """Return the command line that starts the emulator."""
        raise NotImplementedError

    def environment(self) -> dict[str, str] | None:
        """Return the process environment (None: ours)."""
        return None

    def cwd(self) -> str | None:
        """Return the working directory of the process (None: ours)."""
        return None

    def prepare(self) -> None:
        """Check and create what the process needs; EmulatorError if something is missing."""

    def is_ready(self) -> bool:
        """Return whether the emulator answers; OSError while it cannot be reached."""
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        """The process id of the emulator started here, or None."""
        return self._proc.pid if self.running and self._proc is not None else None

    @property
    def running(self) -> bool:
        """Whether the process started here is still alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 60.0) -> Self:
        """Start the emulator and wait until it answers; EmulatorError if it cannot."""
        if self.running:
            return self
        self.prepare()
        cmd = self.command()
        log: IO[bytes] | None = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115
        try:
            self._proc = subprocess.Popen(
                cmd,
                stdout=log or subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
                env=self.environment(),
                cwd=self.cwd(),
                start_new_session=True,
            )
        except OSError as exc:
            raise EmulatorError(f"cannot run {cmd[0]}: {exc}") from exc
        finally:
            if log is not None:
                log.close()  # the child has its own copy
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                code, self._proc = self._proc.returncode, None
                where = f" (see {self.log_path})" if self.log_path else ""
                raise EmulatorError(f"the {self.name} exited with {code}{where}")
            try:
                if self.is_ready():
                    return self
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(self.poll)
        self.stop()
        raise EmulatorError(f"the {self.name} did not answer on {self.url} in {timeout}s")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the emulator: SIGTERM, then SIGKILL after ``timeout`` seconds."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class FirestoreEmulator(EmulatorProcess):
    """One Firestore emulator process on 127.0.0.1 (``heap``: its Java heap, such as ``4g``)."""

    name = "Firestore emulator"

    def __init__(
        self, port: int | None = None, log_path: Path | None = None, heap: str = "512m"
    ) -> None:
        super().__init__(port, log_path)
        self.host, self.heap = f"127.0.0.1:{self.port}", heap

    def command(self) -> list[str]:
        """Return the java command line that runs the emulator's jar."""
        return [
            check_java(),
            f"-Xmx{self.heap}",
            "-cp",
            str(find_jar()),
            _MAIN,
            "start",
            "--host=127.0.0.1",
            f"--port={self.port}",
        ]

    def is_ready(self) -> bool:
        """The emulator answers ``Ok`` on ``/``."""
        return _get(f"{self.url}/").strip() == "Ok"

    def wipe(self, project: str) -> None:
        """Delete every document of ``project``'s default database."""
        wipe(self.host, project)

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the emulator to shut down (``POST /shutdown``), then stop the process."""
        if self.running:
            try:
                urllib.request.urlopen(
                    urllib.request.Request(f"{self.url}/shutdown", method="POST"), timeout=5
                ).close()
                self._proc.wait(timeout=timeout)  # type: ignore[union-attr]
            except (OSError, urllib.error.URLError, subprocess.TimeoutExpired):
                pass
        super().stop(timeout)
