"""The soak's invariant checker on hand-made logs: each invariant passes when kept and fails when broken."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from local.faults import Schedule, Window, write_schedule
from local.soak_check import Entry, Fault, Final, JobDoc, Limits, check, split_id

KEY = "archive-demo/ndt/ndt7/20261120"
LIMITS = Limits(timeout=6, maintain_interval=3, lease=300)


class Log:
    """Builds a log: each call takes one second of its own, in order."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []

    def add(
        self,
        call: str,
        status: int = 200,
        body: object = "",
        run: int | None = None,
        at: float | None = None,
        **params: str,
    ) -> Entry:
        t0 = at if at is not None else float(len(self.entries) * 10)
        text = body if isinstance(body, str) else json.dumps(body)
        entry = Entry(len(self.entries), t0, t0 + 1, "a", call, params, status, text, run)
        self.entries.append(entry)
        return entry

    def handout(self, job_id: str = KEY) -> int:
        return self.add("next", body={"ID": job_id, "Job": {}}).seq


def doc(
    state: str = "complete",
    history: tuple[str, ...] = ("init", "parsing", "postProcessing", "complete"),
    update_count: int = 2,
    start: float = 0.5,
    last: float = 50.0,
    lease_owner: str = "",
    lease_until: float = 0.0,
) -> JobDoc:
    return JobDoc(
        KEY,
        "ndt",
        "ndt7",
        state,
        list(enumerate(history)),
        update_count,
        start,
        last,
        lease_owner,
        lease_until,
    )


def final(*docs: JobDoc, counters: dict[str, int] | None = None, read_at: float = 60.0) -> Final:
    return Final(
        {d.key: d for d in docs},
        {("ndt", "ndt7"): counters if counters is not None else {"started": 1, "completed": 1}},
        read_at,
        read_at - 1,
    )


def clean_log() -> Log:
    log = Log()
    run = log.handout()
    log.add("update", run=run, id=KEY, state="parsing", detail="x")
    log.add("update", run=run, id=KEY, state="postProcessing", detail="y")
    log.add("postprocess", body={"moved": {KEY: "complete"}, "failed": {}})
    return log


def violated(log: Log, fin: Final, faults: list[Fault] | None = None) -> dict[str, int]:
    return dict(check(log.entries, faults or [], fin, LIMITS).violated())


def test_a_clean_run_keeps_every_invariant() -> None:
    report = check(clean_log().entries, [], final(doc()), LIMITS)
    assert report.violations == []
    assert report.checked["acked-updates-kept"] == 1
    assert report.checked["history-transitions"] == 1


def test_ids_with_and_without_a_run() -> None:
    assert split_id(KEY) == (KEY, None)
    assert split_id(KEY + "~0a1b2c3d") == (KEY, "0a1b2c3d")


def test_a_second_handout_needs_an_end_of_the_first_run() -> None:
    log = clean_log()
    log.entries.pop()  # no completion
    log.handout()
    fin = final(doc(), counters={"started": 2, "completed": 1, "failed": 0})
    assert violated(log, fin).get("no-duplicate-handout") == 1
    ended = clean_log()
    ended.handout()
    assert "no-duplicate-handout" not in violated(ended, fin)
    unknown = clean_log()
    unknown.entries[-1].status = 0  # a tick that may have completed it
    unknown.handout()
    assert "no-duplicate-handout" not in violated(unknown, fin)


def test_a_run_handed_out_twice_by_id() -> None:
    log = Log()
    log.handout(KEY + "~aaaaaaaa")
    log.add("maintain", body={"expired": [KEY]})
    log.handout(KEY + "~aaaaaaaa")
    fin = final(
        doc(state="init", history=("init",), update_count=0, start=20.5),
        counters={"started": 2, "failed": 1},
    )
    assert violated(log, fin).get("no-duplicate-handout") == 1


def test_an_acknowledged_update_must_be_in_its_run() -> None:
    assert violated(clean_log(), final(doc(update_count=1))) == {"acked-updates-kept": 1}


def test_a_write_for_a_replaced_run_must_not_be_accepted() -> None:
    log = Log()
    old = log.handout(KEY + "~aaaaaaaa")
    log.add("maintain", body={"expired": [KEY]})
    new = log.handout(KEY + "~bbbbbbbb")
    late = log.add("heartbeat", run=old, id=KEY + "~aaaaaaaa")
    log.add("update", run=new, id=KEY + "~bbbbbbbb", state="parsing")
    fin = final(
        doc(state="parsing", history=("init", "parsing"), update_count=1, start=20.5, last=58.0),
        counters={"started": 2, "failed": 1},
    )
    assert violated(log, fin) == {"no-stale-write": 1}
    late.status = 409
    assert violated(log, fin) == {}


def test_overlapping_handouts_do_not_make_each_other_stale() -> None:
    log = Log()
    slow = log.add("next", at=0, body={"ID": KEY, "Job": {}})  # asked first, answered last
    slow.t1 = 5.0
    log.add("maintain", at=2, body={"expired": [KEY]})
    fast = log.add("next", at=1, body={"ID": KEY, "Job": {}})
    fast.t1 = 1.5
    log.add("update", at=6, run=slow.seq, id=KEY, state="parsing")
    fin = final(
        doc(state="parsing", history=("init", "parsing"), update_count=1, start=4.0, last=58.0),
        counters={"started": 2, "failed": 1},
    )
    assert violated(log, fin) == {}


def test_a_parser_may_not_set_post_processing_states() -> None:
    log = clean_log()
    log.entries[-1] = Entry(3, 30, 31, "a", "update", {"id": KEY, "state": "complete"}, 200, "", 0)
    assert violated(log, final(doc(update_count=3))) == {"parser-states": 1}


def test_history_must_follow_the_transition_table() -> None:
    bad = doc(history=("init", "complete"))
    assert violated(clean_log(), final(bad)) == {"history-transitions": 1}
    bounded = doc(history=("init", "parsing", "postProcessing", "complete"))
    bounded.history = [(0, "init"), (57, "parsing"), (58, "postProcessing"), (59, "complete")]
    assert violated(clean_log(), final(bounded)) == {}
    assert violated(clean_log(), final(doc(state="failed"))) == {"history-transitions": 1}


def test_no_job_in_flight_older_than_timeout_and_a_maintain_interval() -> None:
    log = Log()
    run = log.handout()
    log.add("update", run=run, id=KEY, state="parsing")
    stale = doc(state="parsing", history=("init", "parsing"), update_count=1, last=49.0)
    fin = final(stale, counters={"started": 1}, read_at=60.0)  # the final maintain at 59
    assert violated(log, fin) == {"no-stale-in-flight": 1}
    stale.last_activity = 50.0
    assert violated(log, fin) == {}


def test_a_lease_must_not_outlive_a_tick_that_answered() -> None:
    log = clean_log()  # the tick at t=30..31
    leased = doc(lease_owner="tick-1", lease_until=30.5 + 300)
    assert violated(log, final(leased)) == {"no-orphan-lease": 1}
    log.entries[-1].status = 500
    assert violated(log, final(leased)) == {"no-orphan-lease": 1, "server-errors": 1}
    log.entries[-1].status = 0  # killed: its lease runs out by itself
    log.entries[-1].body = ""
    log.add("postprocess", body={"moved": {KEY: "complete"}})
    assert violated(log, final(leased), [Fault("kill", 29, 32)]) == {}


def test_counters_balance_and_match_the_log() -> None:
    assert violated(clean_log(), final(doc(), counters={"started": 1})) == {"counters": 2}
    assert violated(clean_log(), final(doc(), counters={"started": 2, "completed": 1})) == {
        "counters": 2
    }


def test_job_counts_match_the_final_jobs_and_no_maintain_finds_drift() -> None:
    kept = final(doc())
    kept.state_counts = {("ndt", "ndt7"): {"complete": 1, "init": 0}}
    assert violated(clean_log(), kept) == {}
    off = final(doc())
    off.state_counts = {("ndt", "ndt7"): {"complete": 2}}
    assert violated(clean_log(), off) == {"state-counts": 1}
    drifted = clean_log()
    drifted.add(
        "maintain", body={"counts": {"source": "ndt/ndt7", "drift": {"init": -1}, "repaired": True}}
    )
    assert violated(drifted, kept) == {"state-counts": 1}


def test_server_errors_only_as_503_in_fault_windows() -> None:
    log = clean_log()
    log.add("next", status=503, body="No job found. Try again.")
    assert violated(log, final(doc())) == {}
    log.add("heartbeat", status=503, at=100, body='{"error": "Firestore unavailable"}', id=KEY)
    assert violated(log, final(doc())) == {"server-errors": 1}
    assert violated(log, final(doc()), [Fault("firestore", 95, 99.5)]) == {}
    log.add("heartbeat", status=500, at=100, body='{"error": "internal error"}', id=KEY)
    assert violated(log, final(doc()), [Fault("firestore", 95, 101)]) == {"server-errors": 1}
    log.entries[-1].status = 0
    assert violated(log, final(doc()), [Fault("firestore", 95, 101)]) == {"server-errors": 1}
    assert violated(log, final(doc()), [Fault("kill", 100, 102)]) == {}
    log.entries[-1].t0 = log.entries[-1].t1 = 110.0
    assert violated(log, final(doc()), [Fault("kill", 100, 102)]) == {"server-errors": 1}
    log.entries[-1].status = 503
    assert violated(log, final(doc()), [Fault("kill", 100, 102)]) == {}  # a lock it left
    log.entries[-1].status, log.entries[-1].t1 = 0, 140.0  # timed out, a lock it left
    assert violated(log, final(doc()), [Fault("kill", 100, 102)]) == {}
    assert violated(log, final(doc())) == {"server-errors": 2}


@pytest.mark.parametrize(("rate", "expect_faults"), [(0.0, False), (1.0, True)])
def test_fault_schedule_draws_only_inside_its_windows(
    tmp_path: Path, rate: float, expect_faults: bool
) -> None:
    path = tmp_path / "faults.json"
    write_schedule(path, 3, [Window(100.0, 200.0, rate)])
    schedule = Schedule(path)
    assert schedule.draw(50.0) is None and schedule.draw(200.0) is None
    assert (schedule.draw(150.0) is not None) is expect_faults
