"""The write budget of a job document: 100 parser tasks on one job, through the tracker on the emulator.

Every task sends a heartbeat and a same-state update per archive, as a parser
with 100 archives in flight does. The emulator does not slow down a hot
document, so the budget is checked from the writes the store counts per
document path: the job document gets at most about one hot-path write a
second plus the state changes, and the update count is exact after the final
state change. Progress shards are deleted with the job.
"""

from __future__ import annotations

import math
import random
import threading
import time
from datetime import date

from shared.model import Job, JobFilter, State
from shared.store.documents import doc_id
from shared.store.jobs import PROGRESS_COLLECTION
from shared.tracker import Tracker
from shared.transitions import Role

JOB = Job("archive-bucket", "ndt", "ndt7", date(2019, 3, 4))
KEY = JOB.key()
TASKS = 100
SECONDS = 4.0


def drive(
    tracker: Tracker,
    run: str,
    acknowledged: list[int],
    errors: list[BaseException],
    until: float,
    task: int,
) -> None:
    """One parser task: heartbeat, then an update per finished archive, until ``until``."""
    archive = 0
    while time.monotonic() < until:
        try:
            tracker.heartbeat(KEY, run=run)
            time.sleep(random.uniform(0.05, 0.3))
            tracker.set_status(
                KEY, State.PARSING, f"task {task} archive {archive}", by=Role.PARSER, run=run
            )
            acknowledged[task] += 1
            archive += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
            return


def test_hundred_tasks_write_the_job_document_about_once_a_second(store) -> None:
    tracker = Tracker(store)  # the wall clock: the write budget is measured by it
    started = tracker.add_job(JOB)
    tracker.set_status(KEY, State.PARSING, "start", by=Role.PARSER, run=started.run)
    job_path = store._ref(KEY).path
    before = store.stats.writes_by_path[job_path]
    acknowledged, errors = [0] * TASKS, list[BaseException]()
    begin = time.monotonic()
    until = begin + SECONDS
    tasks = [
        threading.Thread(target=drive, args=(tracker, started.run, acknowledged, errors, until, i))
        for i in range(TASKS)
    ]
    for t in tasks:
        t.start()
    for t in tasks:
        t.join()
    elapsed = time.monotonic() - begin
    assert not errors, errors[:3]
    hot_writes = store.stats.writes_by_path[job_path] - before
    total = sum(acknowledged)
    assert total > 2 * elapsed, "the tasks must outpace the budget for the test to mean anything"
    assert hot_writes <= math.ceil(elapsed) + 1, (hot_writes, elapsed)
    shards = [p for p in store.stats.writes_by_path if PROGRESS_COLLECTION in p]
    assert shards, "updates beyond the budget go to progress shards"

    # Exact for a single job's view before the state change, and after it.
    assert tracker.get_status(KEY).update_count == 1 + total
    tracker.set_status(KEY, State.POST_PROCESSING, "parsed", by=Role.PARSER, run=started.run)
    after = store.get(KEY)  # the document alone, no shards read
    assert after is not None and after.status.update_count == 2 + total
    assert store.stats.writes_by_path[job_path] - before == hot_writes + 1

    # Shards go with the job.
    progress = store.client.collection("jobs").document(doc_id(KEY)).collection(PROGRESS_COLLECTION)
    assert list(progress.list_documents())
    store.delete(KEY)
    assert not list(progress.list_documents())


def test_a_list_reader_sees_the_latest_detail_within_a_second_of_the_next_write(store) -> None:
    tracker = Tracker(store)
    started = tracker.add_job(JOB)
    tracker.set_status(KEY, State.PARSING, "start", by=Role.PARSER, run=started.run)
    tracker.set_status(KEY, State.PARSING, "soon", by=Role.PARSER, run=started.run)  # a shard
    assert tracker.get_status(KEY).detail == "soon"  # exact view
    time.sleep(1.1)
    tracker.set_status(KEY, State.PARSING, "due", by=Role.PARSER, run=started.run)  # the document
    listed = next(tracker.get_state(JobFilter(State.PARSING)))
    assert listed.status.detail == "due"
    assert listed.status.update_count == 3
