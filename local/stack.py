"""The local stack: the emulators and every function behind one base URL.

``make run`` runs ``python -m local.stack``. It starts the Firestore emulator
(unless ``FIRESTORE_EMULATOR_HOST`` points at a running one) and the GCS
emulator (files kept under ``.local/gcs``), seeds a demo bucket with archives
for yesterday and for days of the last ten, checks the job-service config
(``local/demo-config.yml`` unless ``GARDENER_CONFIG`` names another), serves
the ``api`` router with functions-framework on ``http://127.0.0.1:$PORT``
(default 8080), calls the scheduled functions on a timer as Cloud Scheduler
would (``/maintain`` every ``MAINTAIN_INTERVAL`` seconds and ``/postprocess``
every ``POSTPROCESS_INTERVAL``, default 10; ``0`` or ``off`` turns one off;
``SNAPSHOTS=off`` turns the snapshots of ``maintain`` off), and stops
everything on Ctrl-C, SIGTERM or SIGHUP (it first checks that the port is
free). When a source of the config has BigQuery steps, it also starts the
BigQuery emulator (unless ``BIGQUERY_EMULATOR_HOST`` points at a running one,
or ``BIGQUERY=off``), creates the datasets and tables the steps need, points
the functions at it without credentials and says which steps the emulator
cannot run; ``local/demo-bigquery-config.yml`` is the demo config with the
standard chain, for which it also writes rows for the loads to find. With
``--fleet N`` (or ``FLEET=N``) it also runs N simulated parsers
(:mod:`local.fleet`) and, with a demo config, shortens the tracker timeout
to 20 s, the timers to 5 s and the retry backoff to 10 s so every state shows
within a minute.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from local import bq_emulator
from local.bq_emulator import BqEmulator
from local.emulator import EmulatorError, FirestoreEmulator
from local.fleet import Fleet
from local.gcs_emulator import GcsEmulator, client, seed
from shared.config import Config, ConfigError, load_config
from shared.gotime import format_duration
from shared.model import Job, State, utcnow
from shared.postprocess import STANDARD_PIPELINE
from shared.runtime import Settings

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "functions" / "main.py"
DEFAULT_PROJECT = "demo-gardener"
DEMO_CONFIG = ROOT / "local" / "demo-config.yml"
#: The demo config with the standard chain of BigQuery steps (the BigQuery emulator runs them).
DEMO_BIGQUERY_CONFIG = ROOT / "local" / "demo-bigquery-config.yml"
DEMO_CONFIGS = (DEMO_CONFIG, DEMO_BIGQUERY_CONFIG)
DEMO_BUCKET = "archive-demo"
SNAPSHOT_BUCKET = "gardener-snapshots"

#: Settings of the functions on the local stack, unless the environment sets them:
#: snapshots into the emulated bucket, a quick retry, and an early clean-up.
LOCAL_SETTINGS = {
    "SNAPSHOT_BUCKET": SNAPSHOT_BUCKET,
    "RETRY_BACKOFF": "30s",
    "CLEANUP_DELAY": "10m",
}

#: Settings of the functions when the stack runs the BigQuery emulator, unless the environment
#: sets them: the bucket the loads read rows from (a folder under ``.local/bq-gcs``).
BIGQUERY_SETTINGS = {"INPUT_BUCKET": "parser-output"}

#: The scheduled functions and the environment variable that sets each one's interval.
SCHEDULED = {"/maintain": "MAINTAIN_INTERVAL", "/postprocess": "POSTPROCESS_INTERVAL"}

#: Values of ``MAINTAIN_INTERVAL``, ``POSTPROCESS_INTERVAL`` and ``SNAPSHOTS`` that turn them off.
OFF = ("0", "off")

#: Values of ``SNAPSHOTS`` that keep snapshots on (the default).
ON = ("1", "on")


class SettingError(ValueError):
    """A local stack switch with a value it does not take."""


def intervals(environ: dict[str, str] | os._Environ[str], fleet: bool) -> dict[str, float | None]:
    """Seconds between the calls of each scheduled path (None: off), from ``*_INTERVAL``.

    Default 10 s, 5 s with a fleet; ``0`` or ``off`` turns a ticker off.
    """
    defaults = FLEET_INTERVALS if fleet else {}
    result: dict[str, float | None] = {}
    for path, variable in SCHEDULED.items():
        raw = environ.get(variable, defaults.get(variable, "10")).strip()
        if raw.lower() in OFF:
            result[path] = None
            continue
        try:
            seconds = float(raw)
        except ValueError:
            seconds = -1.0
        if not 0 < seconds < float("inf"):
            raise SettingError(
                f"{variable} must be a number of seconds, or 0 or off to turn the calls "
                f"to {path} off, not {raw!r}"
            )
        result[path] = seconds
    return result


def _switch(environ: dict[str, str] | os._Environ[str], variable: str) -> bool:
    raw = environ.get(variable, "on").strip().lower()
    if raw not in ON + OFF:
        raise SettingError(f"{variable} must be on or off (or 1 or 0), not {raw!r}")
    return raw in ON


def snapshots_on(environ: dict[str, str] | os._Environ[str]) -> bool:
    """Whether ``SNAPSHOTS`` (default on) keeps the snapshots of ``maintain`` on."""
    return _switch(environ, "SNAPSHOTS")


def bigquery_on(environ: dict[str, str] | os._Environ[str]) -> bool:
    """Whether ``BIGQUERY`` (default on) lets the stack start the BigQuery emulator when needed."""
    return _switch(environ, "BIGQUERY")


def function_settings(environ: Mapping[str, str]) -> None:
    """Check the settings the functions will read from ``environ``; :class:`SettingError` if bad.

    The function server would refuse them only once the emulators are up.
    """
    try:
        Settings.from_env(environ)
    except ValueError as exc:
        raise SettingError(str(exc)) from None


def bigquery_steps(config: Config) -> list[State]:
    """The BigQuery steps the config's sources run, in chain order (none: no emulator needed)."""
    used = {
        step
        for source in config.sources
        for step in (STANDARD_PIPELINE if source.pipeline is None else source.pipeline)
    }
    return [step for step in STANDARD_PIPELINE if step in used]


def bigquery_warnings(config: Config) -> list[str]:
    """One line per step of the config that the BigQuery emulator cannot run."""
    return [
        f"The BigQuery emulator cannot run {step.value}: it {why}; "
        f"a job fails there, with that error as its detail"
        for step, why in bq_emulator.unsupported_steps(bigquery_steps(config)).items()
    ]


def demo_rows(gcs_root: Path, input_bucket: str, names: list[str]) -> int:
    """Write rows for each demo archive where its job's load reads them; return the files written."""
    for name in names:
        experiment, datatype, year, month, day, archive = name.split("/")
        job = Job(DEMO_BUCKET, experiment, datatype, date(int(year), int(month), int(day)))
        stem = archive.removesuffix(".tgz")
        bq_emulator.write_rows(
            gcs_root, input_bucket, job, f"{stem}.json", [f"{stem}-{i}" for i in range(3)]
        )
    return len(names)


#: The demo config's tracker timeout (``DEMO_TIMEOUT``), without and with a fleet.
DEMO_TIMEOUT, FLEET_DEMO_TIMEOUT = "3m", "20s"

#: Seconds between scheduled calls while a fleet runs, unless the environment sets them.
FLEET_INTERVALS = {"MAINTAIN_INTERVAL": "5", "POSTPROCESS_INTERVAL": "5"}

#: Settings of the functions that a fleet shortens further, unless the environment sets them.
FLEET_SETTINGS = {"RETRY_BACKOFF": "10s"}


def start_functions(
    port: int,
    env: dict[str, str],
    target: str = "api",
    quiet: bool = False,
    module: str = "functions_framework",
    log_path: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Serve ``target`` from ``functions/main.py`` on 127.0.0.1:``port``; wait until it answers.

    ``module`` is what runs the server (``local.faults``: functions-framework
    with injected Firestore faults); ``log_path``, if given, gets its output
    (appended), else ``quiet`` discards it.
    """
    full_env = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
    cmd = [
        sys.executable,
        "-m",
        module,
        f"--target={target}",
        f"--source={SOURCE}",
        "--host=127.0.0.1",
        f"--port={port}",
    ]
    out: Any = subprocess.DEVNULL if quiet else None
    if log_path is not None:
        out = open(log_path, "ab")  # noqa: SIM115 - the child keeps its own copy
    try:
        proc = subprocess.Popen(
            cmd, env=full_env, cwd=ROOT, stdout=out, stderr=out, start_new_session=True
        )
    finally:
        if log_path is not None:
            out.close()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"functions-framework exited with {proc.returncode}")
            try:
                urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/status?format=json", timeout=2
                ).close()
                return proc
            except urllib.error.HTTPError:
                return proc  # it answers; an error status is still an answer
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"functions-framework did not answer on port {port}")
    except BaseException:  # a stop asked for while it starts (KeyboardInterrupt) too
        stop_process(proc)
        raise


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


@contextlib.contextmanager
def launched(env: dict[str, str], port: int) -> Iterator[tuple[str, list[str]]]:
    """Run ``python -m local.stack`` on ``port`` with environment ``env``, as ``make run`` does.

    Yields the base URL, once the stack says it is ready, and the lines it
    printed until then; Ctrl-C (SIGINT) stops it at the end, a kill if it
    does not stop in 30 s.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "local.stack"],
        cwd=ROOT,
        env={**env, "PORT": str(port)},
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    output: list[str] = []
    try:
        while "Ctrl-C" not in (line := proc.stdout.readline()):
            if not line:
                raise RuntimeError("the stack stopped before it was ready:\n" + "".join(output))
            output.append(line)
        # Keep reading, so the stack never blocks on a full pipe.
        threading.Thread(target=proc.stdout.read, daemon=True).start()
        yield f"http://127.0.0.1:{port}", output
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def demo_archives(today: date) -> list[str]:
    """Object names of the demo bucket: yesterday for every source, and a scatter of older days."""
    names = []
    yesterday = today - timedelta(days=1)
    for back in range(1, 11):
        day = today - timedelta(days=back)
        stamp = f"{day:%Y%m%d}T000000Z"
        kinds = [("ndt", "ndt7")] if back % 3 else []
        if back % 2 == 0:
            kinds.append(("wehe", "scamper1"))
        if day == yesterday:
            kinds = [("ndt", "annotation2"), ("ndt", "ndt7"), ("wehe", "scamper1")]
        for exp, datatype in kinds:
            names.append(f"{exp}/{datatype}/{day:%Y/%m/%d}/{stamp}-{datatype}-mlab1-demo-{exp}.tgz")
    return names


def demo_env(today: date, timeout: str = DEMO_TIMEOUT) -> dict[str, str]:
    """Environment that fills the demo config's placeholders (``DEMO_TIMEOUT`` wins if set)."""
    return {
        "DEMO_BUCKET": DEMO_BUCKET,
        "DEMO_START_DATE": f"{today - timedelta(days=10):%Y-%m-%d}",
        "DEMO_TIMEOUT": os.environ.get("DEMO_TIMEOUT", timeout),
    }


def tick(base: str, path: str, interval: float, stop: threading.Event) -> None:
    """POST ``base + path`` every ``interval`` seconds until ``stop`` is set, as Cloud Scheduler does."""
    while not stop.wait(interval):
        try:
            with urllib.request.urlopen(
                urllib.request.Request(base + path, data=b"", method="POST"),
                timeout=max(interval, 30),
            ) as r:
                summary = json.loads(r.read())
            for kind in ("expired", "moved", "failed"):
                if summary.get(kind):
                    print(f"{path}: {kind} {summary[kind]}", flush=True)
        except (OSError, ValueError) as exc:
            print(f"{path}: {exc}", file=sys.stderr, flush=True)


#: The signals that stop the stack: Ctrl-C, a supervisor's or a script's TERM, a closed terminal.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def stop_on_signals() -> threading.Event:
    """Turn the first of :data:`STOP_SIGNALS` into ``KeyboardInterrupt``; ignore the later ones.

    ``kill -TERM -- -PGID`` reaches both ``make`` and the stack, and ``make``
    passes its own on: the second signal must not interrupt the clean-up. The
    returned event is set once a stop is asked for.
    """
    stopping = threading.Event()

    def interrupt(signum: int, frame: object) -> None:
        if not stopping.is_set():
            stopping.set()
            raise KeyboardInterrupt

    for signum in STOP_SIGNALS:
        signal.signal(signum, interrupt)
    return stopping


def port_number(text: str) -> int:
    """A TCP port, 1 to 65535 (``--port`` and ``PORT``)."""
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"PORT must be a TCP port (1 to 65535), not {text!r}")
    return port


def port_in_use(port: int) -> bool:
    """Whether something already listens on 127.0.0.1:``port`` (or it cannot be bound)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def say(text: str) -> None:
    """Print ``text``; a closed terminal (SIGHUP) must not stop the clean-up."""
    with contextlib.suppress(OSError):
        print(text, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the local stack until Ctrl-C."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--port",
        type=port_number,
        default=os.environ.get("PORT", "8080"),  # argparse checks a string default with type
        help="port of the base URL (default: $PORT or 8080)",
    )
    parser.add_argument(
        "--project",
        default=os.environ.get("GOOGLE_CLOUD_PROJECT", DEFAULT_PROJECT),
        help="Firestore project (default: %(default)s)",
    )
    parser.add_argument(
        "--fleet",
        type=int,
        default=os.environ.get("FLEET") or "0",  # checked with type, as PORT
        help="simulated parsers to run against the stack (default: $FLEET or 0)",
    )
    args = parser.parse_args(argv)
    try:
        schedule = intervals(os.environ, bool(args.fleet))
        snapshots = snapshots_on(os.environ)
        bigquery = bigquery_on(os.environ)
    except SettingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if port_in_use(args.port):
        print(
            f"error: port {args.port} is in use; stop what listens there or choose "
            f"another port with PORT= (make run PORT={args.port + 1})",
            file=sys.stderr,
        )
        return 1
    stop_on_signals()

    local_dir = ROOT / ".local"
    local_dir.mkdir(exist_ok=True)
    env = {
        "GOOGLE_CLOUD_PROJECT": args.project,
        **{k: v for k, v in LOCAL_SETTINGS.items() if k not in os.environ},
    }
    if args.fleet:
        env.update({k: v for k, v in FLEET_SETTINGS.items() if k not in os.environ})
    if not snapshots:
        env["SNAPSHOT_BUCKET"] = ""
    config_path = os.environ.get("GARDENER_CONFIG") or str(DEMO_CONFIG)
    demo = Path(config_path).resolve() in DEMO_CONFIGS
    if demo:
        env.update(demo_env(utcnow().date(), FLEET_DEMO_TIMEOUT if args.fleet else DEMO_TIMEOUT))
    env["GARDENER_CONFIG"] = config_path
    try:
        config = load_config(config_path, {**os.environ, **env})
    except ConfigError as exc:
        print(f"error: bad config {config_path}:\n{exc}", file=sys.stderr)
        return 1
    use_bigquery = config.needs_bigquery and bigquery
    if use_bigquery:
        env.update({k: v for k, v in BIGQUERY_SETTINGS.items() if k not in os.environ})
    input_bucket = os.environ.get("INPUT_BUCKET") or env.get("INPUT_BUCKET", "")
    try:
        function_settings({**os.environ, **env})
    except SettingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    firestore_emulator = gcs = bq = server = None
    bq_url = bq_note = ""
    try:
        host = os.environ.get("FIRESTORE_EMULATOR_HOST")
        if not host:
            firestore_emulator = FirestoreEmulator(log_path=local_dir / "firestore-emulator.log")
            host = firestore_emulator.start().host
        gcs_url = os.environ.get("STORAGE_EMULATOR_HOST")
        if not gcs_url:
            gcs = GcsEmulator(root=local_dir / "gcs", log_path=local_dir / "gcs-emulator.log")
            gcs_url = gcs.start().url
        gcs_client = client(gcs_url, args.project)
        if demo:
            seed(gcs_client, DEMO_BUCKET, demo_archives(utcnow().date()))
        if env.get("SNAPSHOT_BUCKET") == SNAPSHOT_BUCKET:
            seed(gcs_client, SNAPSHOT_BUCKET, [])
        env.update(FIRESTORE_EMULATOR_HOST=host, STORAGE_EMULATOR_HOST=gcs_url)
        if use_bigquery:
            bq_url = os.environ.get("BIGQUERY_EMULATOR_HOST", "")
            if not bq_url:
                rows = local_dir / "bq-gcs"
                bq = BqEmulator(gcs_root=rows, log_path=local_dir / "bq-emulator.log")
                bq_url = bq.start().url
                bq_note = f"loads read gs://{input_bucket}/… from {rows}/{input_bucket}/…"
                if demo:
                    demo_rows(rows, input_bucket, demo_archives(utcnow().date()))
            try:
                tables = bq_emulator.create_tables(bq_emulator.client(bq_url, args.project), config)
            except Exception as exc:  # any failure here is one line to the operator
                raise EmulatorError(f"cannot create the tables on {bq_url}: {exc}") from exc
            bq_note = "; ".join(filter(None, [f"{len(tables)} tables", bq_note]))
            env["BIGQUERY_EMULATOR_HOST"] = bq_url
        server = start_functions(args.port, env)
    except (EmulatorError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        say("\nstopping")
        return 0
    finally:
        if server is None:
            for emulator in (bq, gcs, firestore_emulator):
                if emulator:
                    emulator.stop()

    stop = threading.Event()
    fleet: Fleet | None = None
    try:
        base = f"http://127.0.0.1:{args.port}"
        print(f"Firestore emulator: {host} (project {args.project}); GCS emulator: {gcs_url}")
        print(f"Config: {config_path}")
        if use_bigquery:
            print(f"BigQuery emulator: {bq_url} ({bq_note}; BIGQUERY=off to not start it)")
            for line in bigquery_warnings(config):
                print(line)
        elif config.needs_bigquery:
            where = f"gs://{input_bucket}/" if input_bucket else "no INPUT_BUCKET: set it"
            print(f"BigQuery: off (BIGQUERY=off); the BigQuery steps use your access ({where})")
        if config.min_cycle_interval:
            print(
                f"Historical cycles start at least {format_duration(config.min_cycle_interval)} apart "
                "(min_cycle_interval)"
            )
        print(f"Tracker at {base}  (status page: {base}/status, JSON: {base}/status?format=json)")
        print("Try:")
        print(f"  curl -X POST {base}/v2/job/next")
        print(f"  curl -X POST '{base}/v2/job/update?id=<ID>&state=parsing&detail=starting'")
        print(f"  curl -X POST '{base}/v2/job/heartbeat?id=<ID>'")
        print(f"  curl {base}/metrics            # Prometheus text")
        print(f"  curl {base}/openapi.json       # the API's OpenAPI 3 document")
        print(f"  .venv/bin/gardener --url {base} jobs    # operator control (gardener --help)")
        for path, interval in schedule.items():
            variable = SCHEDULED[path]
            if interval is None:
                print(f"Not calling {path} ({variable}=off)")
                continue
            threading.Thread(target=tick, args=(base, path, interval, stop), daemon=True).start()
            print(f"Calling {path} every {interval:g} s ({variable})")
        if not env.get("SNAPSHOT_BUCKET"):
            print("Snapshots: off (SNAPSHOTS=off)")
        elif schedule["/maintain"] is None:
            print(f"Snapshots: none while /maintain is off (bucket gs://{env['SNAPSHOT_BUCKET']}/)")
        else:
            print(f"Snapshots go to gs://{env['SNAPSHOT_BUCKET']}/ (SNAPSHOTS=off to stop them)")
        fleet = Fleet(base, args.fleet).start() if args.fleet > 0 else None
        if fleet:
            timeout = f" (tracker timeout {env['DEMO_TIMEOUT']})" if "DEMO_TIMEOUT" in env else ""
            print(f"Demo fleet: {args.fleet} simulated parsers{timeout}; watch {base}/status")
        print("Ctrl-C stops everything.", flush=True)
        while server.poll() is None:
            time.sleep(0.5)
        print(f"error: the function server exited with {server.returncode}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        say("\nstopping")
        return 0
    finally:
        # A second Ctrl-C, TERM or HUP must not orphan the emulators.
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
        stop.set()
        if fleet:
            fleet.stop(timeout=5)
        stop_process(server)
        for emulator in (bq, gcs, firestore_emulator):
            if emulator:
                emulator.stop()


if __name__ == "__main__":
    sys.exit(main())
