"""A 60-second soak (:mod:`local.soak`): parsers, ticks, an operator and faults at once, then invariants.

Its own Firestore emulator (it is paused with SIGSTOP), a GCS emulator and two
function servers; the seed is fixed (``SOAK_SEED`` to change it,
``SOAK_SECONDS`` for the length). The log goes to
``bench/results/soak-test-<seed>.json``; on a violation the table, the
violations and the replay command are the failure message.
"""

from __future__ import annotations

import os

import pytest

from local.soak import RESULTS_DIR, run, table, write_log

pytestmark = pytest.mark.fault

SEED = int(os.environ.get("SOAK_SEED", "20261128"))
SECONDS = float(os.environ.get("SOAK_SECONDS", "60"))


@pytest.mark.timeout(240)
def test_soak_keeps_every_invariant() -> None:
    outcome = run(SECONDS, SEED)
    write_log(outcome, RESULTS_DIR / f"soak-test-{SEED}.json")
    assert outcome.report.checked["no-duplicate-handout"] > 0, table(outcome)
    assert any(f.kind == "kill" for f in outcome.faults), table(outcome)
    assert not outcome.report.violations, (
        f"{table(outcome)}\nreplay: make soak SEED={SEED} SECONDS={SECONDS:g}"
    )
