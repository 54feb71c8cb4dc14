"""The Firestore emulator, started from its jar for the local stack, the tests and benchmarks.

Starting the jar directly (not ``gcloud emulators firestore start``) means one
Java process that we own: it is ready when ``GET /`` answers ``Ok`` and stops
on ``POST /shutdown``, and a signal cannot orphan it.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

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
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    m = re.search(r'version "(\d+)', out)
    if not m or int(m.group(1)) < 17:
        raise EmulatorError(f"Java 17 or newer is needed, found: {out.splitlines()[:1]}")
    return java


def _get(url: str, timeout: float = 1.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 (loopback only)
        return r.read().decode()


class FirestoreEmulator:
    """One Firestore emulator process on 127.0.0.1."""

    def __init__(self, port: int | None = None, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> FirestoreEmulator:
        """Start the emulator and wait until it answers; EmulatorError if it cannot."""
        cmd = [check_java(), "-Xmx512m", "-cp", str(find_jar()), _MAIN, "start",
               "--host=127.0.0.1", f"--port={self.port}"]
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self._proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise EmulatorError(f"the Firestore emulator exited with {self._proc.returncode}")
            try:
                if _get(f"http://{self.host}/").strip() == "Ok":
                    return self
            except (OSError, urllib.error.URLError):
                time.sleep(0.2)
        self.stop()
        raise EmulatorError(f"the Firestore emulator did not answer on {self.host} in {timeout}s")

    def wipe(self, project: str) -> None:
        """Delete every document of ``project``'s default database."""
        req = urllib.request.Request(
            f"http://{self.host}/emulator/v1/projects/{project}/databases/(default)/documents",
            method="DELETE",
        )
        urllib.request.urlopen(req, timeout=10).close()  # noqa: S310

    def stop(self) -> None:
        """Shut the emulator down (``POST /shutdown``, then signals if needed)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            urllib.request.urlopen(  # noqa: S310
                urllib.request.Request(f"http://{self.host}/shutdown", method="POST"), timeout=5
            ).close()
            proc.wait(timeout=10)
        except (OSError, urllib.error.URLError, subprocess.TimeoutExpired):
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def __enter__(self) -> FirestoreEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
