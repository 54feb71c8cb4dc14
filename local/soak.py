"""Seeded, randomized soak: parsers, ticks, an operator and injected faults at once, then invariants.

``make soak [SECONDS=600] [SEED=n]`` (``python -m local.soak --seconds 600
--seed N``) starts its own Firestore emulator, a GCS emulator seeded with the
demo archives, and two function servers (``python -m local.faults``:
functions-framework with Firestore faults from a schedule file) on the demo
config (``pipeline: []``, a tracker timeout of a few seconds, snapshots into
the GCS emulator). For the given time, at once:

* parsers (``--parsers``) take jobs and work them, go silent, report errors
  and go on or give up, come back late with old IDs, or try states a parser
  may not set;
* two ``maintain`` and two ``postprocess`` tickers call the servers directly,
  overlapping;
* an operator fails, retries, reprocesses (and cancels), pauses and resumes,
  exports and imports snapshots over ``/admin/...``;
* faults: windows in which the servers' Firestore calls fail with
  ``Aborted``/``ServiceUnavailable``/``DeadlineExceeded``, the emulator
  stopped with SIGSTOP for a few seconds, a server killed with SIGKILL and
  started again.

Every request and answer is logged; the faults stop well before the end, the
final ``postprocess`` and ``maintain`` run, the final state is read from
Firestore, and :func:`local.soak_check.check` checks the invariants. A
table of requests by call and status, invariants checked and violations is
printed, the log written to ``bench/results/soak-<seed>.json``; on a
violation the exit status is 1 and the seed is printed for a replay.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from local.emulator import FirestoreEmulator, free_port
from local.faults import FAULTS_ENV, Window, write_schedule
from local.fleet import Call, Fate, ParserPolicy, SimulatedParser
from local.gcs_emulator import GcsEmulator, client, seed
from local.soak_check import (
    INVARIANTS,
    Entry,
    Fault,
    Final,
    JobDoc,
    Limits,
    Report,
    check,
    split_id,
)
from local.stack import (
    DEMO_BUCKET,
    DEMO_CONFIG,
    ROOT,
    SNAPSHOT_BUCKET,
    demo_archives,
    demo_env,
    start_functions,
    stop_process,
)
from shared.model import utcnow

#: Where the soak writes its logs (beside the benchmarks' results).
RESULTS_DIR = ROOT / "bench" / "results"

#: The tracker timeout of the run, and the mean interval of each ticker (seconds).
TIMEOUT, TICK = 6.0, 1.5

#: The retry backoff of the run (seconds).
RETRY_BACKOFF = 2.0

#: Seconds at the end without faults, so the run settles before it is checked.
CALM = 12.0

#: Seconds the emulator keeps the locks of a transaction whose server was killed.
LOCK_HELD = 60.0

#: Per-request client timeout (seconds): longer than any pause, so only a kill leaves a call unanswered.
CLIENT_TIMEOUT = 30.0

#: The settings the invariants depend on.
LIMITS = Limits(timeout=TIMEOUT, maintain_interval=2 * TICK, client_timeout=CLIENT_TIMEOUT)

#: What a parser does with a job it is handed, and how often (weights).
FATES = {"finish": 55, "silent": 10, "error": 10, "error-go-on": 8, "late": 10, "rogue": 7}

#: Operator actions and their weights.
ACTIONS = {
    "fail": 3,
    "retry": 3,
    "reprocess": 2,
    "cancel": 1,
    "pause": 2,
    "export": 2,
    "import": 2,
    "status": 1,
}


@dataclass
class Servers:
    """The function servers: one port each, the process of each (restarted in place)."""

    env: dict[str, str]
    ports: list[int]
    procs: list[Any] = field(default_factory=list)

    def _start(self, i: int) -> Any:
        log = RESULTS_DIR / f"soak-server-{i}.log"
        return start_functions(self.ports[i], self.env, module="local.faults", log_path=log)

    def start(self) -> Servers:
        """Start every server (output to ``bench/results/soak-server-<i>.log``)."""
        for i in range(len(self.ports)):
            (RESULTS_DIR / f"soak-server-{i}.log").unlink(missing_ok=True)
        self.procs = [self._start(i) for i in range(len(self.ports))]
        return self

    def url(self, i: int) -> str:
        """The base URL of server ``i`` (modulo their number)."""
        return f"http://127.0.0.1:{self.ports[i % len(self.ports)]}"

    def kill_and_restart(self, i: int) -> None:
        """SIGKILL server ``i``'s process group, then start it again on its port."""
        proc = self.procs[i]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        self.procs[i] = self._start(i)

    def stop(self) -> None:
        """Stop every server."""
        for proc in self.procs:
            stop_process(proc)


class Recorder:
    """Makes every call of the soak and logs it (thread-safe).

    Each request has a connection of its own: a kept-alive connection that
    the server closes while idle would fail the next request without an
    answer, which only a killed server may cause.
    """

    def __init__(self, servers: Servers) -> None:
        self.servers = servers
        self.log: list[Entry] = []
        self._lock = threading.Lock()
        self._local = threading.local()

    def call(
        self,
        actor: str,
        call: str,
        path: str,
        params: dict[str, str] | None = None,
        method: str = "POST",
        server: int = 0,
        run: int | None = None,
    ) -> Entry:
        """Make one request to server ``server`` and log it; status 0 when there is no answer."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        params = params or {}
        t0 = time.time()
        try:
            response = session.request(
                method,
                self.servers.url(server) + path,
                params=params,
                headers={"X-Operator": "soak", "Connection": "close"},
                timeout=CLIENT_TIMEOUT,
            )
            status, body = response.status_code, response.text
        except requests.RequestException:
            status, body = 0, ""
            session.close()
            self._local.session = None
        with self._lock:
            entry = Entry(len(self.log), t0, time.time(), actor, call, params, status, body, run)
            self.log.append(entry)
        return entry


@dataclass
class World:
    """What the actors share: the recorder, the stop event, hand-outs to pick from, old IDs."""

    rec: Recorder
    stop: threading.Event
    deadline: float
    recent: list[tuple[str, int]] = field(default_factory=list)  # (ID, hand-out seq)
    late: list[tuple[str, int, float]] = field(default_factory=list)  # (ID, seq, when silenced)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def running(self) -> bool:
        """Whether actors should go on."""
        return not self.stop.is_set() and time.time() < self.deadline


class SoakParser(SimulatedParser):
    """A parser of the soak: every call logged by the recorder and tagged with its hand-out;
    some jobs come back late, with their old IDs."""

    def __init__(self, world: World, n: int, rng: random.Random) -> None:
        policy = ParserPolicy(
            archives=(1, 4),
            seconds_per_archive=(0.1, 0.5),
            idle=(0.3, 1.0),
            retries=3,
            retry_pause=0.3,
            timeout=CLIENT_TIMEOUT,
        )
        super().__init__(
            "",
            policy,
            name=f"parser-{n}",
            rng=rng,
            stop=world.stop,
            fate=lambda rng: Fate(rng.choices(list(FATES), list(FATES.values()))[0]),
        )
        self.world, self.server, self.run_seq, self.last_seq = world, n, 0, 0

    def running(self) -> bool:
        """Until the soak's deadline."""
        return self.world.running()

    def send(self, endpoint: str, path: str, params: dict[str, str]) -> Call:
        """Make the call through the recorder, tagged with the hand-out it works on."""
        call = path.rsplit("/", 1)[-1]
        e = self.world.rec.call(
            self.name,
            call,
            path,
            params,
            server=self.server,
            run=None if call == "next" else self.run_seq,
        )
        self.last_seq = e.seq
        return Call(
            endpoint, e.status, e.t1 - e.t0, split_id(params.get("id", ""))[0], params, e.body
        )

    def work(self, job_id: str, fate: Fate) -> None:
        """Remember the hand-out (the operator picks from them), then work the job."""
        self.run_seq = self.last_seq
        with self.world.lock:
            self.world.recent = [*self.world.recent[-30:], (job_id, self.run_seq)]
        super().work(job_id, fate)

    def silenced(self, job_id: str, fate: Fate) -> None:
        """A ``LATE`` job is kept, to be reported on later."""
        if fate is Fate.LATE:
            with self.world.lock:
                self.world.late.append((job_id, self.run_seq, time.time()))

    def before_next(self) -> bool:
        """Half the time, report on an old job ID: one whose job was handed out again since,
        else one silenced long ago (twice what expiry and a retry take)."""
        world = self.world
        if not world.late or self.rng.random() >= 0.5:
            return False
        with world.lock:
            again = {split_id(job_id)[0]: seq for job_id, seq in world.recent}
            old = [x for x in world.late if again.get(split_id(x[0])[0], -1) > x[1]] or [
                x for x in world.late if time.time() - x[2] > 2 * (TIMEOUT + TICK + RETRY_BACKOFF)
            ]
            if not old:
                return False
            job_id, self.run_seq, _ = pick = self.rng.choice(old)
            world.late.remove(pick)
        self.call("heartbeat", "/v2/job/heartbeat", {"id": job_id})
        self.update("update parsing (archive)", job_id, "parsing", "late")
        self.update("update postProcessing", job_id, "postProcessing", "late, done")
        return True


def ticker(world: World, call: str, n: int, rng: random.Random) -> None:
    """Call ``/maintain`` or ``/postprocess`` about every :data:`TICK` seconds."""
    while world.running():
        world.rec.call(f"{call}-{n}", call, f"/{call}", server=n + rng.randrange(2))
        world.stop.wait(rng.uniform(0.3, 2 * TICK - 0.3))


def operator(world: World, rng: random.Random, days: list[date]) -> None:
    """An operator acting over ``/admin/...`` every couple of seconds."""
    paused: list[str] = []
    while world.running():
        world.stop.wait(rng.uniform(1.0, 3.0))
        action = rng.choices(list(ACTIONS), weights=list(ACTIONS.values()))[0]
        with world.lock:
            recent = list(world.recent)
        key = split_id(rng.choice(recent)[0])[0] if recent else ""
        first = rng.choice(days)
        last = min(first + timedelta(days=2), max(days))
        span = {"from": f"{first:%Y-%m-%d}", "to": f"{last:%Y-%m-%d}"}
        server = rng.randrange(2)

        def admin(
            call: str,
            params: dict[str, str] | None = None,
            method: str = "POST",
            server: int = server,
        ) -> None:
            world.rec.call("operator", "admin/" + call, "/admin/" + call, params, method, server)

        if action == "fail" and key:
            admin("job/fail", {"id": key, "reason": "operator: soak"})
        elif action == "retry" and key:
            admin("job/retry", {"id": key})
        elif action == "reprocess":
            admin("reprocess", span)
        elif action == "cancel":
            admin("reprocess/cancel", span)
        elif action == "pause":
            if paused:
                admin("resume", {"target": paused.pop()})
            else:
                paused.append(rng.choice(["historical", "ndt/ndt7", "wehe/scamper1"]))
                admin("pause", {"target": paused[-1], "reason": "soak"})
        elif action == "export":
            admin("snapshot/export")
        elif action == "import":
            admin("snapshot/import", {"source": f"gs://{SNAPSHOT_BUCKET}/snapshots/latest.json"})
        else:
            admin("controls", method="GET")
    for target in paused:
        world.rec.call("operator", "admin/resume", "/admin/resume", {"target": target})


@dataclass(frozen=True)
class Plan:
    """The seeded fault plan: Firestore fault windows, emulator pauses, server kills (offsets, s)."""

    firestore: list[tuple[float, float, float]]  # (offset, seconds, rate)
    pauses: list[tuple[float, float]]  # (offset, seconds)
    kills: list[tuple[float, int]]  # (offset, server)

    @classmethod
    def draw(cls, rng: random.Random, seconds: float) -> Plan:
        """Spread faults over the run but its first 3 s and its last :data:`CALM` s.

        Kills come early enough, when the run allows, for the locks of a killed
        transaction (:data:`LOCK_HELD`) to be gone before the end.
        """
        span = max(1.0, seconds - CALM - 3)
        n = max(1, int(seconds // 30))
        return cls(
            firestore=sorted(
                (3 + rng.uniform(0, span - 5), rng.uniform(2, 5), rng.uniform(0.15, 0.5))
                for _ in range(2 * n)
            ),
            pauses=sorted((3 + rng.uniform(0, span - 8), rng.uniform(2, 7)) for _ in range(n)),
            kills=sorted(
                (3 + rng.uniform(0, max(7.0, span - LOCK_HELD)), rng.randrange(2)) for _ in range(n)
            ),
        )


def chaos(
    world: World,
    plan: Plan,
    started: float,
    servers: Servers,
    emulator: FirestoreEmulator,
    faults: list[Fault],
) -> None:
    """Pause the emulator and kill servers as planned; record each window."""
    events = sorted(
        [(o, "pause", d) for o, d in plan.pauses] + [(o, "kill", float(s)) for o, s in plan.kills]
    )
    for offset, kind, arg in events:
        if world.stop.wait(max(0.0, started + offset - time.time())):
            return
        t0 = time.time()
        try:
            if kind == "pause" and emulator.pid:
                os.kill(emulator.pid, signal.SIGSTOP)
                try:
                    time.sleep(arg)
                finally:
                    os.kill(emulator.pid, signal.SIGCONT)
            elif kind == "kill":
                servers.kill_and_restart(int(arg))
        finally:  # a server that did not come back shows as a violation, not a lost window
            faults.append(Fault(kind, t0, time.time()))


def _epoch(value: Any) -> float:
    return value.timestamp() if isinstance(value, datetime) else 0.0


def read_final(host: str, project: str, final_maintain: float) -> Final:
    """Read every job document and the counters straight from the emulator at ``host``."""
    from google.cloud import firestore

    from shared.store import JOBS_COLLECTION, CounterStore, StateCountStore, from_document
    from shared.store.jobs import PROGRESS_COLLECTION

    before = os.environ.get("FIRESTORE_EMULATOR_HOST")
    os.environ["FIRESTORE_EMULATOR_HOST"] = host  # the client finds the emulator only there
    try:
        fs = firestore.Client(project=project)
    finally:
        if before is None:
            os.environ.pop("FIRESTORE_EMULATOR_HOST", None)
        else:
            os.environ["FIRESTORE_EMULATOR_HOST"] = before
    read_at = time.time()
    jobs = {}
    for snap in fs.collection(JOBS_COLLECTION).stream():
        d = snap.to_dict() or {}
        history = sorted(
            (int(i), h["state"])
            for i, h in (d.get("history") or {}).items()
            if isinstance(h, dict) and h.get("state")
        )
        # The update count as a single job's view sees it: the stored base plus the current
        # run's hot-path updates not yet folded in by a state change, its progress shards too.
        shards = [
            s
            for doc in snap.reference.collection(PROGRESS_COLLECTION).stream()
            if (s := doc.to_dict() or {}).get("run") == d.get("run", "")
        ]
        updates = from_document(d, snap.update_time, shards).status.update_count
        jobs[d["key"]] = JobDoc(
            d["key"],
            d["experiment"],
            d["datatype"],
            d["state"],
            history,
            updates,
            _epoch(d.get("start_time")),
            _epoch(d.get("last_activity")),
            d.get("lease_owner") or "",
            _epoch(d.get("lease_until")),
        )
    return Final(
        jobs, CounterStore(fs).totals(), read_at, final_maintain, StateCountStore(fs).read().counts
    )


def settle(rec: Recorder) -> float:
    """The final ``postprocess`` and ``maintain``, each repeated until it is done (bounded in time).

    Done: a 200, and for ``maintain`` no stale job left for the next run: a
    transaction cut off by a fault (a paused emulator cannot take its rollback)
    keeps its job's document locked for up to :data:`LOCK_HELD`, so that job's
    expiry waits for the lock to go. Returns the start of the last ``maintain``.
    """
    deadline = time.time() + LOCK_HELD + 15
    for call in ("postprocess", "maintain"):
        for _ in range(30):
            entry = rec.call("final", call, f"/{call}")
            if time.time() > deadline:
                break
            if entry.status == 200 and not _left_stale(entry):
                break
            time.sleep(2)
    return entry.t0


def _left_stale(entry: Entry) -> bool:
    """Whether a ``maintain`` answer names stale jobs it could not expire."""
    try:
        return bool(json.loads(entry.body).get("not_expired"))
    except (ValueError, AttributeError):
        return False


@dataclass
class Outcome:
    """The soak's log, faults, final state and report."""

    seed: int
    seconds: float
    log: list[Entry]
    faults: list[Fault]
    final: Final
    report: Report
    plan: Plan


@contextmanager
def emulators() -> Iterator[tuple[FirestoreEmulator, str]]:
    """A Firestore emulator of our own (it gets paused) and a GCS emulator; stopped after."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        fs = stack.enter_context(FirestoreEmulator(log_path=RESULTS_DIR / "soak-firestore.log"))
        gcs = stack.enter_context(GcsEmulator(log_path=RESULTS_DIR / "soak-gcs.log"))
        stack.callback(lambda: os.kill(fs.pid, signal.SIGCONT) if fs.pid else None)
        yield fs, gcs.url


def server_env(
    fs_host: str, gcs_url: str, project: str, today: date, schedule: Path
) -> dict[str, str]:
    """The function servers' environment: the demo config with the soak's short times."""
    return {
        "FIRESTORE_EMULATOR_HOST": fs_host,
        "STORAGE_EMULATOR_HOST": gcs_url,
        "GOOGLE_CLOUD_PROJECT": project,
        "GARDENER_CONFIG": str(DEMO_CONFIG),
        **demo_env(today),
        "DEMO_TIMEOUT": f"{TIMEOUT:g}s",
        "SNAPSHOT_BUCKET": SNAPSHOT_BUCKET,
        "SNAPSHOT_KEEP": "5",
        "RETRY_BACKOFF": f"{RETRY_BACKOFF:g}s",
        "RETRY_MAX_ATTEMPTS": "5",
        "CLEANUP_DELAY": "1h",
        "HEARTBEAT_COALESCE_SECONDS": "1",
        "FIRESTORE_DEADLINE_SECONDS": "5",
        FAULTS_ENV: str(schedule),
    }


def actors(
    world: World, rng: random.Random, parsers: int, days: list[date], chaos_args: tuple[Any, ...]
) -> list[threading.Thread]:
    """Start the parsers, the tickers, the operator and the chaos, each with a seed of ``rng``."""

    def seeded() -> random.Random:
        return random.Random(rng.random())

    threads = [threading.Thread(target=SoakParser(world, n, seeded()).run) for n in range(parsers)]
    threads += [
        threading.Thread(target=ticker, args=(world, call, n, seeded()))
        for call in ("maintain", "postprocess")
        for n in range(2)
    ]
    threads.append(threading.Thread(target=operator, args=(world, seeded(), days)))
    threads.append(threading.Thread(target=chaos, args=(world, *chaos_args)))
    for t in threads:
        t.daemon = True
        t.start()
    return threads


def run(seconds: float, seed_value: int, parsers: int = 4) -> Outcome:
    """Run the soak for ``seconds`` with seed ``seed_value``; return what happened and the report."""
    rng = random.Random(seed_value)
    plan = Plan.draw(random.Random(seed_value + 1), seconds)
    today = utcnow().date()
    days = [today - timedelta(days=d) for d in range(1, 11)]
    project = f"demo-soak-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp, emulators() as (fs, gcs_url):
        gcs = client(gcs_url, project)
        seed(gcs, DEMO_BUCKET, demo_archives(today))
        seed(gcs, SNAPSHOT_BUCKET, [])
        schedule = Path(tmp) / "faults.json"
        write_schedule(schedule, seed_value, [])
        servers = Servers(
            server_env(fs.host, gcs_url, project, today, schedule), [free_port(), free_port()]
        ).start()
        try:
            started = time.time()
            windows = [Window(started + o, started + o + d, r) for o, d, r in plan.firestore]
            write_schedule(schedule, seed_value, windows)
            faults = [Fault("firestore", w.start, w.end) for w in windows]
            world = World(Recorder(servers), threading.Event(), started + seconds)
            threads = actors(world, rng, parsers, days, (plan, started, servers, fs, faults))
            while time.time() < world.deadline:
                time.sleep(0.5)
            world.stop.set()
            for t in threads:
                t.join(CLIENT_TIMEOUT + 15)
            final_maintain = settle(world.rec)
            final = read_final(fs.host, project, final_maintain)
        finally:
            servers.stop()
    log = sorted(world.rec.log, key=lambda e: e.seq)
    return Outcome(seed_value, seconds, log, faults, final, check(log, faults, final, LIMITS), plan)


def table(outcome: Outcome) -> str:
    """Requests by call and status, invariants checked and violations, as text."""
    calls: dict[str, Counter[int]] = {}
    for e in outcome.log:
        calls.setdefault(e.call, Counter())[e.status] += 1
    statuses = sorted({s for c in calls.values() for s in c})
    lines = [
        f"soak: seed {outcome.seed}, {outcome.seconds:g} s, {len(outcome.log)} requests, "
        f"{len(outcome.final.jobs)} jobs; faults: "
        + ", ".join(f"{k} ×{n}" for k, n in Counter(f.kind for f in outcome.faults).items()),
        "",
        f"{'call':24}" + "".join(f"{s or 'none':>7}" for s in statuses),
    ]
    for call in sorted(calls):
        lines.append(f"{call:24}" + "".join(f"{calls[call][s] or '':>7}" for s in statuses))
    violated = outcome.report.violated()
    lines += ["", f"{'invariant':24}{'checked':>9}{'violated':>10}"]
    lines += [
        f"{name:24}{outcome.report.checked[name]:>9}{violated[name]:>10}" for name in INVARIANTS
    ]
    lines += [f"note: {n}" for n in outcome.report.notes]
    shown = outcome.report.violations[:40]
    lines += ["", *(f"VIOLATION {name}: {msg}" for name, msg in shown)]
    if len(outcome.report.violations) > len(shown):
        lines.append(f"… and {len(outcome.report.violations) - len(shown)} more")
    return "\n".join(lines)


def write_log(outcome: Outcome, path: Path) -> None:
    """Write the log, the faults, the plan and the violations as JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "seed": outcome.seed,
                "seconds": outcome.seconds,
                "plan": asdict(outcome.plan),
                "faults": [asdict(f) for f in outcome.faults],
                "log": [asdict(e) for e in outcome.log],
                "violations": outcome.report.violations,
                "final": {k: asdict(v) for k, v in outcome.final.jobs.items()},
                "counters": [[list(src), totals] for src, totals in outcome.final.counters.items()],
                "read_at": outcome.final.read_at,
                "final_maintain": outcome.final.final_maintain,
                "state_counts": (
                    None
                    if outcome.final.state_counts is None
                    else [[list(src), n] for src, n in outcome.final.state_counts.items()]
                ),
            },
            indent=1,
        )
    )


def read_log(path: Path) -> Outcome:
    """Read what :func:`write_log` wrote and check it again (with the current checker)."""
    d = json.loads(path.read_text())
    log = [Entry(**e) for e in d["log"]]
    faults = [Fault(**f) for f in d["faults"]]
    jobs = {
        k: JobDoc(**{**v, "history": [tuple(h) for h in v["history"]]})
        for k, v in d["final"].items()
    }
    kept = d.get("state_counts")
    final = Final(
        jobs,
        {(src[0], src[1]): totals for src, totals in d["counters"]},
        d["read_at"],
        d["final_maintain"],
        None if kept is None else {(src[0], src[1]): n for src, n in kept},
    )
    plan = Plan(**{k: [tuple(x) for x in v] for k, v in d["plan"].items()})
    return Outcome(
        d["seed"], d["seconds"], log, faults, final, check(log, faults, final, LIMITS), plan
    )


def main(argv: list[str] | None = None) -> int:
    """Run the soak, print the table, write the log; 1 on a violation (the seed is printed)."""
    p = argparse.ArgumentParser(prog="python -m local.soak", description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=600.0, help="how long (default %(default)s)")
    p.add_argument("--seed", type=int, default=None, help="seed (default: random, printed)")
    p.add_argument("--parsers", type=int, default=4, help="parser threads (default %(default)s)")
    p.add_argument(
        "--recheck",
        type=Path,
        metavar="LOG",
        help="check the log of an earlier run again instead of running",
    )
    args = p.parse_args(argv)
    if args.recheck:
        outcome = read_log(args.recheck)
        print(table(outcome))
        return 1 if outcome.report.violations else 0
    if not 20 <= args.seconds <= 6 * 3600 or not 1 <= args.parsers <= 32:
        p.error("--seconds must be 20 to 21600, --parsers 1 to 32")
    seed_value = args.seed if args.seed is not None else random.randrange(1_000_000)
    print(
        f"soak: seed {seed_value}, {args.seconds:g} s, {args.parsers} parsers",
        file=sys.stderr,
        flush=True,
    )
    outcome = run(args.seconds, seed_value, args.parsers)
    path = RESULTS_DIR / f"soak-{seed_value}.json"
    write_log(outcome, path)
    print(table(outcome))
    print(f"log: {path}")
    if outcome.report.violations:
        print(
            f"FAILED with seed {seed_value}; replay: make soak SEED={seed_value} "
            f"SECONDS={args.seconds:g}"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
