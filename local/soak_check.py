"""The soak's invariants: a pure function of the request log, the fault windows and the final state.

:func:`check` reads nothing but its arguments, so a hand-made log can test
it. A job ID is ``key`` or ``key~run``; a *run* here is one hand-out, named
by the sequence number of the ``next`` call whose answer gave it out (the
soak tags each parser call with the hand-out it works on), so the checks hold
whether or not the server puts the run in the ID. A call that got no answer
has status 0. Times are Unix seconds on the one clock of the machine.

The invariants (docs/testing.md, "Soak"):

``no-duplicate-handout``
    Two hand-outs of one key need, between them, something that may have
    ended the first run: a ``maintain`` answer that expired the key, a
    ``postprocess`` answer that completed or failed it, an operator ``fail``
    or a parser update of it to a terminal state answered 200, or any such call whose
    outcome is unknown (no answer or 5xx) and whose time overlaps.
``acked-updates-kept``
    The final document's run (the hand-out whose call brackets its
    ``start_time``) has ``UpdateCount`` ≥ the updates and errors of that run
    answered 200.
``no-stale-write``
    No update, heartbeat or error is answered 200 for a run after another
    hand-out of the same key, asked for after this run's was answered, was
    answered before the call was sent.
``parser-states``
    No parser update is answered 200 for a state other than ``parsing``,
    ``parseError``, ``postProcessing`` or ``failed``.
``history-transitions``
    Each final history starts at ``init``, every two adjacent entries are an
    allowed change (``shared.transitions.is_allowed``; entries left out of a
    bounded history are skipped), and the job's state is the last entry's.
``no-stale-in-flight``
    After the final ``maintain``, no job in flight had been inactive, when
    that call started, for longer than the tracker timeout plus one maintain
    interval.
``no-orphan-lease``
    No lease is still held at the end unless the tick that took it (the
    ``postprocess`` call whose time brackets ``lease_until − lease``) died
    (no answer) or lost Firestore (503): a tick that answered anything else
    released every lease it took.
``counters``
    Per source, ``started = completed + failed + jobs in flight``; in all,
    ``started`` lies between the 200 hand-outs and those plus the ``next``
    calls with unknown outcome; ``completed`` and ``failed`` are at least
    the completions and failures the 200 answers report.
``state-counts``
    The job counts kept per source and state (``state_counts``) equal the
    final jobs' tally by source and state, and no ``maintain`` answer
    reports a count drift it found.
``server-errors``
    Every 5xx but ``next``'s ``No job found`` 503 is a 503 during a fault
    window (Firestore faults, emulator pause, server kill, each with a
    margin: 3 s, 8 s, and 65 s for a kill, whose open transactions hold their
    locks for 60 s on the emulator); a call without an answer overlaps a
    server kill, or timed out (``client_timeout``) in a fault window.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from shared.model import State
from shared.transitions import TERMINAL, is_allowed

NO_JOB_FOUND = "No job found. Try again."

#: States a parser may set; any other answered 200 to a parser is a violation.
PARSER_STATES = frozenset({"parsing", "parseError", "postProcessing", "failed"})

#: The calls a parser makes on a run.
RUN_CALLS = frozenset({"update", "heartbeat", "error"})

INVARIANTS = (
    "no-duplicate-handout",
    "acked-updates-kept",
    "no-stale-write",
    "parser-states",
    "history-transitions",
    "no-stale-in-flight",
    "no-orphan-lease",
    "counters",
    "state-counts",
    "server-errors",
)


@dataclass
class Entry:
    """One request and its answer: ``call`` is ``next``, ``update``, ``maintain``, ``admin/job/fail``, …"""

    seq: int
    t0: float
    t1: float
    actor: str
    call: str
    params: dict[str, str]
    status: int
    body: str = ""
    run: int | None = None  # seq of the hand-out a parser call works on

    def json(self) -> Any:
        """The answer's JSON, or None."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    @property
    def unknown(self) -> bool:
        """No answer or a 5xx: the call may or may not have taken effect."""
        return self.status == 0 or self.status >= 500


@dataclass(frozen=True)
class Fault:
    """A window during which 5xx answers are legitimate: ``firestore``, ``pause`` or ``kill``."""

    kind: str
    start: float
    end: float


@dataclass
class JobDoc:
    """What the checks need of one final job document."""

    key: str
    experiment: str
    datatype: str
    state: str
    history: list[tuple[int, str]]  # (index, state), by index
    update_count: int
    start_time: float
    last_activity: float
    lease_owner: str = ""
    lease_until: float = 0.0


@dataclass
class Final:
    """The final state: jobs by key, counter totals by source, when read, the final maintain's
    start, and the job counts by source and state (None: not read)."""

    jobs: dict[str, JobDoc]
    counters: dict[tuple[str, str], dict[str, int]]
    read_at: float
    final_maintain: float
    state_counts: dict[tuple[str, str], dict[str, int]] | None = None


@dataclass(frozen=True)
class Limits:
    """Settings of the run the checks depend on (seconds)."""

    timeout: float
    maintain_interval: float
    lease: float = 300.0
    #: Seconds after a fault window during which a 503 still counts as the fault's: a killed
    #: server's open transaction keeps its documents locked for up to 60 s on the emulator.
    margins: tuple[tuple[str, float], ...] = (("firestore", 3.0), ("pause", 8.0), ("kill", 65.0))
    slack: float = 1.0
    #: The client's timeout: a call without an answer after it timed out, not a dead server.
    client_timeout: float = 30.0

    def margin(self, kind: str) -> float:
        """The margin after a fault window of ``kind``."""
        return dict(self.margins).get(kind, 3.0)


@dataclass
class Report:
    """How many times each invariant was checked, and the violations."""

    checked: Counter[str] = field(default_factory=Counter)
    violations: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def fail(self, invariant: str, message: str) -> None:
        """Record a violation."""
        self.violations.append((invariant, message))

    def violated(self) -> Counter[str]:
        """Violations per invariant."""
        return Counter(name for name, _ in self.violations)


#: The names of the terminal states.
TERMINAL_STATES = frozenset(s.value for s in TERMINAL)


def in_flight(state: str) -> bool:
    """Whether a job in ``state`` is in flight (not terminal; an unknown state counts)."""
    return state not in TERMINAL_STATES


def split_id(job_id: str) -> tuple[str, str | None]:
    """Return the key and the run of a job ID (``key`` or ``key~run``)."""
    key, sep, run = job_id.partition("~")
    return key, (run if sep else None)


@dataclass(frozen=True)
class Handout:
    """A ``next`` answered 200."""

    seq: int
    key: str
    run: str | None
    t0: float
    t1: float


def handouts(log: Sequence[Entry]) -> list[Handout]:
    """Every hand-out of the log, in the order the answers came."""
    found = []
    for e in log:
        if e.call == "next" and e.status == 200:
            body = e.json() or {}
            if isinstance(body.get("ID"), str):
                key, run = split_id(body["ID"])
                found.append(Handout(e.seq, key, run, e.t0, e.t1))
    return sorted(found, key=lambda h: h.t1)


def _key(e: Entry) -> str:
    return split_id(e.params.get("id", ""))[0]


def run_ends(log: Sequence[Entry]) -> dict[str, list[Entry]]:
    """Per key, the calls that ended a run of it for sure (200) or may have (unknown outcome).

    Calls with unknown outcome of ``maintain`` and ``postprocess`` may have ended
    any job: they are listed under the key ``*``.
    """
    ends: dict[str, list[Entry]] = defaultdict(list)
    for e in log:
        body = e.json() if e.status == 200 else None
        if e.call == "maintain":
            if e.unknown:
                ends["*"].append(e)
            elif isinstance(body, dict):
                for key in body.get("expired") or []:
                    ends[key].append(e)
        elif e.call == "postprocess":
            if e.unknown:
                ends["*"].append(e)
            elif isinstance(body, dict):
                moved = body.get("moved") or {}
                for key in [k for k, s in moved.items() if s == "complete"] + list(
                    body.get("failed") or {}
                ):
                    ends[key].append(e)
        elif (
            e.call == "admin/job/fail"
            or (e.call == "update" and e.params.get("state") in TERMINAL_STATES)
        ) and (e.status == 200 or e.unknown):
            ends[_key(e)].append(e)
    return ends


def _check_handouts(log: Sequence[Entry], hs: list[Handout], r: Report) -> None:
    ends = run_ends(log)
    by_key: dict[str, list[Handout]] = defaultdict(list)
    for h in hs:
        by_key[h.key].append(h)
    for key, mine in by_key.items():
        for first, second in pairwise(mine):
            r.checked["no-duplicate-handout"] += 1
            if not any(e.t1 > first.t0 and e.t0 < second.t1 for e in ends[key] + ends["*"]):
                r.fail(
                    "no-duplicate-handout",
                    f"{key} handed out by #{first.seq} and again by #{second.seq} "
                    f"({second.t1 - first.t1:.1f} s later) with nothing that ended the first run",
                )
            if first.run is not None and first.run == second.run:
                r.fail("no-duplicate-handout", f"{key}: run {first.run} handed out twice")


def _run_of(doc: JobDoc, mine: list[Handout], slack: float) -> Handout | None:
    for h in reversed(mine):
        if h.t0 - slack <= doc.start_time <= h.t1 + slack:
            return h
    return None


def _check_runs(
    log: Sequence[Entry], hs: list[Handout], final: Final, limits: Limits, r: Report
) -> None:
    by_key: dict[str, list[Handout]] = defaultdict(list)
    for handed in hs:
        by_key[handed.key].append(handed)
    acked: Counter[int] = Counter()
    for e in log:
        if e.call in ("update", "error") and e.status == 200 and e.run is not None:
            acked[e.run] += 1
    unmatched = 0
    for key, doc in final.jobs.items():
        h = _run_of(doc, by_key.get(key, []), limits.slack)
        if h is None:
            unmatched += 1
            continue
        r.checked["acked-updates-kept"] += 1
        if doc.update_count < acked[h.seq]:
            r.fail(
                "acked-updates-kept",
                f"{key}: run #{h.seq} had {acked[h.seq]} updates "
                f"answered 200 but UpdateCount is {doc.update_count}",
            )
    if unmatched:
        r.notes.append(
            f"acked-updates-kept: {unmatched} final job(s) started by a hand-out "
            "without an answer (or not by next): not checked"
        )
    handout_at = {h.seq: h for h in hs}
    for e in log:
        if e.call not in RUN_CALLS or e.status != 200 or e.run not in handout_at:
            continue
        r.checked["no-stale-write"] += 1
        mine = handout_at[e.run]
        later = [h for h in by_key[mine.key] if h.t0 > mine.t1 and h.t1 < e.t0]
        if later:
            r.fail(
                "no-stale-write",
                f"{e.call} #{e.seq} of {mine.key} for run #{mine.seq} "
                f"answered 200 after run #{later[0].seq} was handed out",
            )
    for e in log:
        if e.call == "update" and e.status == 200:
            r.checked["parser-states"] += 1
            if e.params.get("state") not in PARSER_STATES:
                r.fail(
                    "parser-states",
                    f"update #{e.seq} of {_key(e)} to {e.params.get('state')!r} answered 200",
                )


def _check_docs(log: Sequence[Entry], final: Final, limits: Limits, r: Report) -> None:
    oldest = final.final_maintain - limits.timeout - limits.maintain_interval
    ticks = [e for e in log if e.call == "postprocess"]
    for key, doc in final.jobs.items():
        r.checked["history-transitions"] += 1
        states = [s for _, s in doc.history]
        if not doc.history or (doc.history[0][0] == 0 and states[0] != State.INIT.value):
            r.fail("history-transitions", f"{key}: history does not start at init: {states[:3]}")
        elif states[-1] != doc.state:
            r.fail("history-transitions", f"{key}: state {doc.state} but last entry {states[-1]}")
        for (i, a), (j, b) in pairwise(doc.history):
            if j != i + 1:
                continue
            try:
                ok = a != b and is_allowed(State(a), State(b))
            except ValueError:
                ok = False
            if not ok:
                r.fail("history-transitions", f"{key}: history[{i}] {a} → history[{j}] {b}")
        if in_flight(doc.state):
            r.checked["no-stale-in-flight"] += 1
            if doc.last_activity < oldest:
                r.fail(
                    "no-stale-in-flight",
                    f"{key} in {doc.state}, inactive for "
                    f"{final.final_maintain - doc.last_activity:.1f} s when the final "
                    "maintain started",
                )
        if doc.lease_owner and doc.lease_until > final.read_at:
            r.checked["no-orphan-lease"] += 1
            claimed = doc.lease_until - limits.lease
            by = [e for e in ticks if e.t0 - limits.slack <= claimed <= e.t1 + limits.slack]
            if not any(e.status in (0, 503) for e in by):
                r.fail(
                    "no-orphan-lease",
                    f"{key} leased by {doc.lease_owner} until "
                    f"{doc.lease_until - final.read_at:.0f} s after the end; claimed by "
                    + (f"tick #{by[0].seq}, which answered {by[0].status}" if by else "no tick"),
                )


def _count_events(log: Sequence[Entry]) -> tuple[int, int, int, int]:
    """200 hand-outs, unknown nexts, completions and failures reported by 200 answers."""
    handed = unknown = completed = failed = 0
    for e in log:
        body = e.json() if e.status == 200 else None
        if e.call == "next":
            handed += e.status == 200
            unknown += e.unknown and NO_JOB_FOUND not in e.body
        elif isinstance(body, dict) and e.call == "maintain":
            failed += len(body.get("expired") or [])
        elif isinstance(body, dict) and e.call == "postprocess":
            completed += sum(1 for s in (body.get("moved") or {}).values() if s == "complete")
            failed += len(body.get("failed") or {})
        elif e.status == 200 and (
            e.call == "admin/job/fail" or (e.call == "update" and e.params.get("state") == "failed")
        ):
            failed += 1
        elif e.status == 200 and e.call == "update" and e.params.get("state") == "complete":
            completed += 1
    return handed, unknown, completed, failed


def _check_counters(log: Sequence[Entry], final: Final, r: Report) -> None:
    imported = 0
    for e in log:
        body = e.json() if e.call == "admin/snapshot/import" and e.status == 200 else None
        if isinstance(body, dict):
            imported += int(body.get("Created") or 0)
    in_flight_by: Counter[tuple[str, str]] = Counter()
    for doc in final.jobs.values():
        if in_flight(doc.state):
            in_flight_by[(doc.experiment, doc.datatype)] += 1
    sources = set(final.counters) | set(in_flight_by)
    if imported:
        r.notes.append(
            f"counters: {imported} job(s) created by import: per-source balance not checked"
        )
    for source in sorted(sources):
        if imported:
            break
        c = final.counters.get(source, {})
        r.checked["counters"] += 1
        started, ended = c.get("started", 0), c.get("completed", 0) + c.get("failed", 0)
        if started != ended + in_flight_by[source]:
            r.fail(
                "counters",
                f"{'/'.join(source)}: started {started} ≠ completed + failed "
                f"{ended} + in flight {in_flight_by[source]}",
            )
    total = {
        n: sum(c.get(n, 0) for c in final.counters.values())
        for n in ("started", "completed", "failed")
    }
    handed, unknown, completed, failed = _count_events(log)
    r.checked["counters"] += 3
    if not handed <= total["started"] <= handed + unknown + imported:
        r.fail(
            "counters",
            f"started {total['started']} outside [{handed}, {handed + unknown}] "
            "(hand-outs answered 200, plus next calls without an answer)",
        )
    if total["completed"] < completed:
        r.fail("counters", f"completed {total['completed']} < {completed} completions answered 200")
    if total["failed"] < failed:
        r.fail("counters", f"failed {total['failed']} < {failed} failures answered 200")


def _check_errors(log: Sequence[Entry], faults: Sequence[Fault], limits: Limits, r: Report) -> None:
    def during(e: Entry, kinds: Iterable[str], margin: float | None = None) -> bool:
        return any(
            f.kind in kinds
            and e.t1 >= f.start - limits.slack
            and e.t0 <= f.end + (limits.margin(f.kind) if margin is None else margin)
            for f in faults
        )

    for e in log:
        r.checked["server-errors"] += 1
        if e.status == 0 and e.t1 - e.t0 >= limits.client_timeout - limits.slack:
            if not during(e, ("firestore", "pause", "kill")):
                r.fail(
                    "server-errors",
                    f"{e.call} #{e.seq} got no answer in "
                    f"{limits.client_timeout:g} s outside a fault window",
                )
        elif e.status == 0:
            if not during(e, ("kill",), limits.slack):
                r.fail("server-errors", f"{e.call} #{e.seq} got no answer outside a server kill")
        elif e.status >= 500 and not (
            e.call == "next" and e.status == 503 and NO_JOB_FOUND in e.body
        ):
            if e.status != 503:
                r.fail("server-errors", f"{e.call} #{e.seq} answered {e.status}: {e.body[:200]}")
            elif not during(e, ("firestore", "pause", "kill")):
                r.fail(
                    "server-errors",
                    f"{e.call} #{e.seq} answered 503 outside a fault window: {e.body[:200]}",
                )


def _check_state_counts(log: Sequence[Entry], final: Final, r: Report) -> None:
    for e in log:
        body = e.json() if e.call == "maintain" and e.status == 200 else None
        counts = body.get("counts") if isinstance(body, dict) else None
        if isinstance(counts, dict):
            r.checked["state-counts"] += 1
            if counts.get("drift"):
                r.fail(
                    "state-counts",
                    f"maintain at {e.t0:.1f} found drift {counts['drift']} "
                    f"in {counts.get('source')}",
                )
    if final.state_counts is None:
        r.notes.append("state-counts: the final job counts were not read")
        return
    tally: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for doc in final.jobs.values():
        tally[(doc.experiment, doc.datatype)][doc.state] += 1
    for source in sorted(set(tally) | set(final.state_counts)):
        kept = {k: n for k, n in final.state_counts.get(source, {}).items() if n}
        r.checked["state-counts"] += 1
        if kept != dict(tally[source]):
            r.fail(
                "state-counts", f"{'/'.join(source)}: counts {kept} ≠ jobs {dict(tally[source])}"
            )


def check(log: Sequence[Entry], faults: Sequence[Fault], final: Final, limits: Limits) -> Report:
    """Check every invariant over the request log, the fault windows and the final state."""
    r = Report()
    hs = handouts(log)
    _check_handouts(log, hs, r)
    _check_runs(log, hs, final, limits, r)
    _check_docs(log, final, limits, r)
    _check_counters(log, final, r)
    _check_state_counts(log, final, r)
    _check_errors(log, faults, limits, r)
    return r
