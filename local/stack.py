"""The local stack: the Firestore emulator and every function behind one base URL.

``make run`` runs ``python -m local.stack``. It starts the emulator (unless
``FIRESTORE_EMULATOR_HOST`` points at a running one), serves the ``api`` router
with functions-framework on ``http://127.0.0.1:$PORT`` (default 8080), adds a
few example jobs so the endpoints have something to act on, and stops
everything on Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path

from local.emulator import EmulatorError, FirestoreEmulator

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "functions" / "main.py"
DEFAULT_PROJECT = "demo-gardener"


def start_functions(
    port: int, env: dict[str, str], target: str = "api", quiet: bool = False
) -> subprocess.Popen[bytes]:
    """Serve ``target`` from ``functions/main.py`` on 127.0.0.1:``port``; wait until it answers."""
    full_env = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "functions_framework", f"--target={target}",
           f"--source={SOURCE}", "--host=127.0.0.1", f"--port={port}"]
    out = subprocess.DEVNULL if quiet else None
    proc = subprocess.Popen(cmd, env=full_env, cwd=ROOT, stdout=out, stderr=out,
                            start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"functions-framework exited with {proc.returncode}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/status?format=json", timeout=2).close()
            return proc
        except urllib.error.HTTPError:
            return proc  # it answers; an error status is still an answer
        except OSError:
            time.sleep(0.2)
    stop_process(proc)
    raise RuntimeError(f"functions-framework did not answer on port {port}")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """Stop a process group started by this module: SIGTERM, then SIGKILL."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def seed_examples(project: str, emulator_host: str) -> list[str]:
    """Add a few example jobs (yesterday's date) so the endpoints have work; return their keys."""
    os.environ["FIRESTORE_EMULATOR_HOST"] = emulator_host
    from google.cloud import firestore

    from shared.errors import JobAlreadyExists
    from shared.model import Datasets, Job, yesterday_date
    from shared.store import JobStore
    from shared.tracker import Tracker

    tracker = Tracker(JobStore(firestore.Client(project=project)))
    day = yesterday_date()
    keys = []
    for offset, datatype in enumerate(("ndt7", "annotation2", "tcpinfo")):
        job = Job("archive-measurement-lab", "ndt", datatype, day - timedelta(days=offset),
                  datasets=Datasets("tmp_ndt", "raw_ndt", "ndt" if datatype != "annotation2" else ""))
        try:
            tracker.add_job(job)
        except JobAlreadyExists:
            pass
        keys.append(job.key())
    return keys


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run the local stack until Ctrl-C."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")),
                        help="port of the base URL (default: $PORT or 8080)")
    parser.add_argument("--project", default=os.environ.get("GOOGLE_CLOUD_PROJECT", DEFAULT_PROJECT),
                        help="Firestore project (default: %(default)s)")
    parser.add_argument("--no-examples", action="store_true", help="do not add example jobs")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)

    emulator = None
    host = os.environ.get("FIRESTORE_EMULATOR_HOST")
    try:
        if not host:
            emulator = FirestoreEmulator(log_path=ROOT / ".local" / "firestore-emulator.log")
            (ROOT / ".local").mkdir(exist_ok=True)
            emulator.start()
            host = emulator.host
        print(f"Firestore emulator: {host} (project {args.project})", flush=True)
        env = {"FIRESTORE_EMULATOR_HOST": host, "GOOGLE_CLOUD_PROJECT": args.project}
        server = start_functions(args.port, env)
    except (EmulatorError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        if emulator:
            emulator.stop()
        return 1

    base = f"http://127.0.0.1:{args.port}"
    keys = [] if args.no_examples else seed_examples(args.project, host)
    print(f"Tracker at {base}  (status page: {base}/status, JSON: {base}/status?format=json)")
    if keys:
        print(f"Example jobs: {', '.join(keys)}. Try:")
        print(f"  curl -X POST '{base}/v2/job/update?id={keys[0]}&state=parsing&detail=starting'")
        print(f"  curl -X POST '{base}/v2/job/heartbeat?id={keys[0]}'")
    print("Ctrl-C stops everything.", flush=True)
    try:
        while server.poll() is None:
            time.sleep(0.5)
        print(f"error: the function server exited with {server.returncode}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping", flush=True)
        return 0
    finally:
        stop_process(server)
        if emulator:
            emulator.stop()


if __name__ == "__main__":
    sys.exit(main())
