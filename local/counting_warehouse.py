"""A BigQuery stand-in for the post-processing benchmark: every step started finishes on the
second look, and every start and delete is counted."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from shared.model import Job, State
from shared.warehouse import StepOutcome, StepResult, step_of


@dataclass
class CountingWarehouse:
    """BigQuery stood in for at the client boundary: a started id answers RUNNING, then DONE;
    an id never started RETRY ("not found"). Starts are counted per id and per (key, step),
    deletes per key."""

    starts: Counter[str] = field(default_factory=Counter)
    step_starts: Counter[tuple[str, str]] = field(default_factory=Counter)
    results: Counter[str] = field(default_factory=Counter)
    deletes: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, step: State, job: Job, job_id: str) -> None:
        """Record a start of ``job_id``."""
        with self.lock:
            self.starts[job_id] += 1
            self.step_starts[(job.key(), State(step).value)] += 1

    def result(self, job_id: str) -> StepResult:
        """RUNNING on the first call for a started id, DONE from the second on."""
        with self.lock:
            if job_id not in self.starts:
                return StepResult(StepOutcome.RETRY, f"job {job_id} not found")
            self.results[job_id] += 1
            calls = self.results[job_id]
        label = step.label if (step := step_of(job_id)) else "BigQuery"
        if calls == 1:
            return StepResult(StepOutcome.RUNNING, f"{label} job {job_id} running")
        return StepResult(StepOutcome.DONE, f"{label} took 1s, 10 rows")

    def delete_partition(self, job: Job) -> StepResult:
        """Count the delete; DONE."""
        with self.lock:
            self.deletes[job.key()] += 1
        return StepResult(StepOutcome.DONE, f"Successfully deleted partition of {job.key()}")

    def check(self, keys: Sequence[str], steps: Sequence[State]) -> dict[str, int]:
        """The starts and deletes against one per job and step of ``steps``, and one per job."""
        with self.lock:
            pairs = [(k, s.value) for k in keys for s in steps]
            return {
                "starts": sum(self.starts.values()),
                "expected_starts": len(pairs),
                "ids_started_twice": sum(1 for c in self.starts.values() if c > 1),
                "job_steps_not_started_once": sum(self.step_starts[p] != 1 for p in pairs),
                "deletes": sum(self.deletes.values()),
                "jobs_not_deleted_once": sum(self.deletes[k] != 1 for k in keys),
            }
