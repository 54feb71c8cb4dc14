"""The job counts per source and state, kept in the jobs' own commits, checked against aggregation counts."""

from __future__ import annotations

from datetime import date, timedelta

from shared import defaults
from shared.admin import Admin
from shared.config import Config, Source
from shared.maintenance import Maintenance, MaintenancePolicy, reconcile_counts
from shared.model import Datasets, Job, JobFilter, JobRecord, State
from shared.postprocess import STANDARD_PIPELINE
from shared.snapshot import import_snapshot
from shared.store import ControlStore, JobStore, ReprocessQueue, to_document
from shared.tracker import Tracker

DS = Datasets("tmp_ndt", "raw_ndt", "ndt")
SOURCES = [("ndt", "ndt7"), ("ndt", "annotation2"), ("host", "")]
CHAIN = [State.PARSING, State.POST_PROCESSING, *STANDARD_PIPELINE, State.COMPLETE]


def job(day: int, source: tuple[str, str] = SOURCES[0]) -> Job:
    return Job("archive-bucket", source[0], source[1], date(2026, 11, day), datasets=DS)


def assert_exact(tracker: Tracker) -> None:
    """Every (source, state) count and every state's count over all sources equal aggregation counts."""
    groups: list[tuple[str | None, str | None]] = [*SOURCES, (None, None), ("ndt", None)]
    kept = tracker.counts_by_state(groups)
    for experiment, datatype, state in kept:
        assert kept[(experiment, datatype, state)] == tracker.count(
            JobFilter(state, experiment, datatype)
        ), (experiment, datatype, state)


def test_counts_follow_every_kind_of_write(tracker, store, firestore_client, clock):
    keys = [tracker.add_job(job(day, source)).key for day in (1, 2, 3) for source in SOURCES]
    assert tracker.counts_by_state([(None, None)])[(None, None, State.INIT)] == 9
    assert_exact(tracker)

    first, second, third, fourth, *_ = keys
    for state in CHAIN:  # state changes, through to complete
        tracker.set_status(first, state)
    tracker.set_status(second, State.PARSING)
    tracker.set_status(second, State.PARSING, "same state: no move")
    tracker.set_job_error(third, "broken")  # init -> failed
    assert_exact(tracker)

    tracker.add_job(job(1, SOURCES[0]))  # restart of a complete job: complete -> init
    tracker.add_job(job(1, SOURCES[2]), ignore_backoff=True)  # restart of a failed job
    assert_exact(tracker)

    admin = Admin(
        tracker,
        ReprocessQueue(firestore_client),
        ControlStore(firestore_client),
        Config(
            start_date=date(2026, 11, 1),
            tracker_timeout=timedelta(hours=1),
            polling_interval=timedelta(minutes=1),
            sources=(Source("archive-bucket", "ndt", "ndt7", "", DS, False, False),),
        ),
    )
    admin.fail(fourth, "operator says so", "op@example.com")  # operator fail
    admin.retry(fourth, "op@example.com")  # operator retry: same state, no move
    assert_exact(tracker)

    clock.advance(hours=2)  # expiry of everything in flight
    expired = tracker.expire_stale(clock() - timedelta(hours=1), 100)
    assert expired
    assert_exact(tracker)

    tracker.add_job(job(1, SOURCES[0]), ignore_backoff=True)  # the expired job again
    for state in CHAIN:
        tracker.set_status(first, state)
    clock.advance(hours=4)  # clean-up of the complete job
    assert tracker.remove_complete(clock() - timedelta(hours=3), 100) == 1
    assert_exact(tracker)
    assert tracker.counts_by_state([(None, None)])[(None, None, State.COMPLETE)] == 0


def test_a_guarded_delete_that_loses_moves_no_count(tracker, store):
    key = tracker.add_job(job(1)).key
    for state in CHAIN:
        tracker.set_status(key, state)
    stale = store.get(key)
    tracker.add_job(job(1))  # restarted since it was read
    assert not store.delete_if_unchanged(stale)
    assert_exact(tracker)


def test_snapshot_import_counts_what_it_creates(tracker, store, clock):
    records = []
    for day, source in [(1, SOURCES[0]), (2, SOURCES[1]), (3, SOURCES[2])]:
        record = JobRecord.new(job(day, source), clock())
        record.status.new_state(State.PARSING, clock())
        records.append(record)
    tracker.add_job(job(1, SOURCES[0]))  # already present: not created, not counted again
    result = import_snapshot(store, records)
    assert result.created == 2
    assert_exact(tracker)
    import_snapshot(store, records)
    assert_exact(tracker)


def test_status_load_reads_the_shown_rows_and_a_constant(http, tracker, store: JobStore):
    def reads_of_a_load(limit: int) -> int:
        before = store.stats.reads + store.state_counts.stats.reads
        answer = http.get(f"/status?format=json&limit={limit}")
        assert answer.status_code == 200
        return store.stats.reads + store.state_counts.stats.reads - before

    for day in range(1, 21):
        tracker.add_job(job(day))
    small = reads_of_a_load(5)
    for day in range(21, 29):
        tracker.add_job(job(day, SOURCES[1]))
    assert reads_of_a_load(5) == small == 5 + defaults.STATE_COUNT_SHARDS
    body = http.get("/status?format=json&limit=5&experiment=ndt&datatype=ndt7").get_json()
    assert body["Count"] == 20 and body["StateCounts"]["init"] == 20


def test_reconciliation_repairs_injected_drift_and_reports_it(tracker, store, clock):
    keys = [tracker.add_job(job(day)).key for day in (1, 2, 3)]
    tracker.set_status(keys[0], State.PARSING)
    store.delete(keys[1])  # leaves its count behind: init is one too many
    raw = JobRecord.new(job(4), clock())  # a job written without its count
    store.collection.document(raw.key.replace("/", "%2F")).set(to_document(raw))
    store.delete(keys[2])
    maintenance = Maintenance(
        tracker, MaintenancePolicy(timedelta(hours=6)), clock=clock, sources=[SOURCES[0]]
    )

    summary = maintenance.run()
    assert summary["counts"] == {"source": "ndt/ndt7", "drift": {"init": -1}, "repaired": True}
    assert_exact(tracker)
    assert maintenance.run()["counts"] == {"source": "ndt/ndt7", "drift": {}, "repaired": False}


def test_reconciliation_cycles_through_sources_so_uncounted_jobs_come_right(tracker, store, clock):
    for day, source in [(1, SOURCES[0]), (2, SOURCES[1]), (3, SOURCES[2]), (4, SOURCES[2])]:
        record = JobRecord.new(job(day, source), clock())  # jobs from before the counters
        store.collection.document(record.key.replace("/", "%2F")).set(to_document(record))
    checked = [reconcile_counts(tracker, SOURCES)["source"] for _ in SOURCES]
    assert sorted(checked) == sorted(f"{e}/{d}" for e, d in SOURCES)
    assert_exact(tracker)
    assert reconcile_counts(tracker, SOURCES)["source"] == checked[0]  # round again


def test_reconciliation_skips_when_the_counts_move_during_its_check(tracker, store, monkeypatch):
    key = tracker.add_job(job(1)).key
    store.delete(tracker.add_job(job(2)).key)  # drift: init one too many
    shards_before = store.state_counts.stats.writes
    aggregate = tracker.count
    moved: list[bool] = []

    def count_while_moving(*args):
        if not moved:
            moved.append(True)
            tracker.set_status(key, State.PARSING)  # a state change between the two reads
        return aggregate(*args)

    monkeypatch.setattr(tracker, "count", count_while_moving)
    summary = reconcile_counts(tracker, [SOURCES[0]])
    assert summary == {"source": "ndt/ndt7", "skipped": "the counts moved during the check"}
    assert store.state_counts.stats.writes == shards_before  # no repair, no cursor written
    monkeypatch.setattr(tracker, "count", aggregate)
    assert reconcile_counts(tracker, [SOURCES[0]])["drift"] == {"init": -1}
    assert_exact(tracker)


def test_a_repair_from_a_stale_read_is_refused(tracker, store):
    tracker.add_job(job(1))
    counts = store.state_counts
    read = counts.read()
    shard = counts.shard_ids()[0]
    assert counts.repair("ndt", "ndt7", {"init": 1}, shard, read.shards[shard][1])
    assert not counts.repair("ndt", "ndt7", {"init": 1}, shard, read.shards[shard][1])
    assert counts.read().of("ndt", "ndt7")["init"] == 2


def test_a_negative_count_shows_as_zero(tracker, store):
    counts = store.state_counts
    shard = counts.shard_ids()[3]
    assert counts.repair("ndt", "ndt7", {"parsing": -2}, shard, counts.read().shards[shard][1])
    assert tracker.counts_by_state([("ndt", "ndt7")])[("ndt", "ndt7", State.PARSING)] == 0


def test_a_scrape_reads_the_counter_shards_once_and_no_job(tracker, store, firestore_client):
    from prometheus_client.parser import text_string_to_metric_families

    from shared.progress import Progress
    from shared.store import CursorStore
    from shared.web.metrics import TrackerCollector

    for day in range(1, 6):
        tracker.add_job(job(day, SOURCES[day % 2]))
    config = Config(
        start_date=date(2026, 11, 1),
        tracker_timeout=timedelta(hours=1),
        polling_interval=timedelta(minutes=1),
        sources=tuple(Source("archive-bucket", e, d, "", DS, False, False) for e, d in SOURCES[:2]),
    )
    job_reads, count_reads = store.stats.reads, store.state_counts.stats.reads
    text = (
        TrackerCollector(Progress(tracker, CursorStore(firestore_client), config)).scrape().decode()
    )
    # no aggregation query, no scan of the jobs: per source, one limit-1 query for its oldest
    # job in flight (no cursor here, so no read of yesterday's daily job)
    assert store.stats.reads - job_reads == len(config.sources)
    assert store.state_counts.stats.reads - count_reads == defaults.STATE_COUNT_SHARDS
    jobs = {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        if family.name == "gardener_jobs"
        for s in family.samples
    }
    assert jobs[(("datatype", "ndt7"), ("experiment", "ndt"), ("state", "init"))] == 2
    assert jobs[(("datatype", "annotation2"), ("experiment", "ndt"), ("state", "init"))] == 3
