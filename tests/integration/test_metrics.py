"""The ``/metrics`` endpoint, scraped after real operations on both emulators."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared.config import Config, Source
from shared.gcs import ArchiveLister
from shared.job_service import JobService
from shared.model import Datasets, Job, JobFilter, State
from shared.store import CursorStore

NOW_DAY = date(2026, 11, 27)  # the FakeClock's day
DS = Datasets("tmp_ndt", "raw_ndt", "ndt")


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape by (name, sorted labels)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def midnight(day: date) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


@pytest.fixture
def service(tracker, firestore_client, gcs_client, clock, monkeypatch):
    """A job service with two sources (one daily only) and archives for three days each."""
    from shared import runtime

    bucket = f"metrics-{uuid.uuid4().hex[:12]}"
    gcs_client.create_bucket(bucket)
    config = Config(
        start_date=NOW_DAY - timedelta(days=3),
        tracker_timeout=timedelta(hours=6),
        polling_interval=timedelta(minutes=1),
        sources=(
            Source(bucket, "ndt", "ndt7", "", DS, False, False),
            Source(bucket, "ndt", "annotation2", "", DS, True, False),
        ),
    )
    for datatype in ("ndt7", "annotation2"):
        for back in (1, 2, 3):
            day = NOW_DAY - timedelta(days=back)
            gcs_client.bucket(bucket).blob(
                f"ndt/{datatype}/{day:%Y/%m/%d}/x.tgz"
            ).upload_from_string(b"x")
    svc = JobService(
        tracker, CursorStore(firestore_client), ArchiveLister(gcs_client), config, clock=clock
    )
    monkeypatch.setattr(runtime, "job_service", lambda: svc)
    return svc


def test_metrics_after_real_operations(http, service, tracker):
    handed = []
    while (record := service.next_job()) is not None:
        handed.append(record.key)
    # daily: yesterday for both sources; historical: ndt7 for the two days before
    assert len(handed) == 4
    ndt7 = [k for k in handed if "/ndt7/" in k]
    tracker.set_status(ndt7[0], State.PARSING)
    tracker.set_status(ndt7[1], State.PARSING)
    tracker.set_status(ndt7[1], State.FAILED, "gave up")
    tracker.set_status(ndt7[2], State.PARSING)
    tracker.set_status(ndt7[2], State.POST_PROCESSING)
    tracker.set_status(ndt7[2], State.COMPLETE)

    response = http.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain; version=")
    got = samples(response.get_data(as_text=True))

    def value(name: str, **labels: str) -> float:
        return got[(name, tuple(sorted(labels.items())))]

    assert (
        value("gardener_tasks_in_flight", experiment="ndt", datatype="ndt7", state="parsing") == 1
    )
    assert value("gardener_tasks_in_flight", experiment="ndt", datatype="ndt7", state="init") == 0
    assert (
        value("gardener_tasks_in_flight", experiment="ndt", datatype="annotation2", state="init")
        == 1
    )
    assert (
        "gardener_tasks_in_flight",
        (("datatype", "ndt7"), ("experiment", "ndt"), ("state", "failed")),
    ) not in got
    assert value("gardener_jobs", experiment="ndt", datatype="ndt7", state="failed") == 1
    assert value("gardener_jobs", experiment="ndt", datatype="ndt7", state="complete") == 1
    assert not any(name == "gardener_failed_jobs" for name, _ in got)  # = gardener_jobs{failed}
    # the daily stream has resolved yesterday for both sources; the historical
    # one has walked to its end (the day before yesterday) for ndt7 only
    yesterday = NOW_DAY - timedelta(days=1)
    position = "gardener_stream_position_timestamp_seconds"
    assert value(position, experiment="ndt", datatype="ndt7", stream="daily") == midnight(yesterday)
    assert value(
        "gardener_stream_position_timestamp_seconds",
        experiment="ndt",
        datatype="annotation2",
        stream="daily",
    ) == midnight(yesterday)
    assert value(
        "gardener_stream_position_timestamp_seconds",
        experiment="ndt",
        datatype="ndt7",
        stream="historical",
    ) >= midnight(NOW_DAY - timedelta(days=2))
    assert (
        "gardener_stream_position_timestamp_seconds",
        (("datatype", "annotation2"), ("experiment", "ndt"), ("stream", "historical")),
    ) not in got
    assert value("gardener_historical_cycle") >= 0


def test_metrics_before_any_hand_out_has_counts_but_no_dates(http, service, tracker):
    tracker.add_job(Job(service.config.sources[0].bucket, "ndt", "ndt7", NOW_DAY))
    got = samples(http.get("/metrics").get_data(as_text=True))
    assert (
        got[
            (
                "gardener_tasks_in_flight",
                (("datatype", "ndt7"), ("experiment", "ndt"), ("state", "init")),
            )
        ]
        == 1
    )
    assert not any(name == "gardener_stream_position_timestamp_seconds" for name, _ in got)


def test_metrics_rejects_other_methods(http, service):
    response = http.post("/metrics")
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET"


def test_the_content_type_is_the_prometheus_clients():
    import prometheus_client

    from shared.web.metrics import CONTENT_TYPE

    assert CONTENT_TYPE == prometheus_client.CONTENT_TYPE_LATEST


# --- started / completed / failed totals ------------------------------------------------


def totals(text: str, source: tuple[str, str] = ("ndt", "ndt7")) -> dict[str, float]:
    """The three totals of ``source`` in a scrape, by metric name."""
    got = samples(text)
    labels = (("datatype", source[1]), ("experiment", source[0]))
    return {
        name: got[(name, labels)]
        for name in ("gardener_started_total", "gardener_completed_total", "gardener_fail_total")
    }


def finish(tracker, key: str) -> None:
    tracker.set_status(key, State.PARSING)
    tracker.set_status(key, State.POST_PROCESSING)
    tracker.set_status(key, State.COMPLETE)


def test_totals_count_hand_outs_completions_expiry_and_operator_fails(
    http, service, tracker, clock, firestore_client
):
    from shared.admin import Admin
    from shared.store import ControlStore, ReprocessQueue

    before = totals(http.get("/metrics").get_data(as_text=True))
    assert before == {
        "gardener_started_total": 0,
        "gardener_completed_total": 0,
        "gardener_fail_total": 0,
    }
    bucket = service.config.sources[0].bucket
    keys = [
        tracker.add_job(Job(bucket, "ndt", "ndt7", NOW_DAY - timedelta(days=d))).key
        for d in range(1, 6)
    ]
    finish(tracker, keys[0])
    finish(tracker, keys[1])
    tracker.set_status(keys[2], State.PARSING, "tasks")  # a detail and a move: no total
    tracker.set_job_error(keys[2], "corrupt archive")
    admin = Admin(
        tracker, ReprocessQueue(firestore_client), ControlStore(firestore_client), service.config
    )
    admin.fail(keys[3], "bad day", "ops@example.org")
    clock.advance(hours=7)
    assert tracker.expire_stale(clock() - timedelta(hours=6), 10) == [keys[4]]
    tracker.add_job(Job(bucket, "ndt", "annotation2", NOW_DAY))
    tracker.add_job(
        Job(bucket, "ndt", "ndt7", NOW_DAY - timedelta(days=2))
    )  # restart a complete job
    admin.retry(keys[2], "ops@example.org")  # no change of state: no total
    # clean-up removes complete jobs; the totals stay
    assert tracker.remove_complete(clock() + timedelta(seconds=1), 10) == 1

    text = http.get("/metrics").get_data(as_text=True)
    assert totals(text) == {
        "gardener_started_total": 6,
        "gardener_completed_total": 2,
        "gardener_fail_total": 3,
    }
    assert totals(text, ("ndt", "annotation2")) == {
        "gardener_started_total": 1,
        "gardener_completed_total": 0,
        "gardener_fail_total": 0,
    }
    assert "# TYPE gardener_started_total counter" in text


def test_rejected_changes_count_nothing(tracker, clock, firestore_client):
    from shared.admin import Admin
    from shared.errors import Conflict, IllegalTransition, JobAlreadyExists
    from shared.store import ControlStore, ReprocessQueue

    job = Job("b", "ndt", "ndt7", NOW_DAY)
    tracker.add_job(job, "offer-1")
    kept = tracker.store.counters.totals()
    assert kept == {("ndt", "ndt7"): {"started": 1}}
    with pytest.raises(IllegalTransition):
        tracker.set_status(job.key(), State.COMPLETE)  # init -> complete is not allowed
    with pytest.raises(JobAlreadyExists):
        tracker.add_job(job, "offer-2")  # in flight: not restarted
    admin = Admin(
        tracker,
        ReprocessQueue(firestore_client),
        ControlStore(firestore_client),
        Config(
            start_date=NOW_DAY,
            tracker_timeout=timedelta(hours=6),
            polling_interval=timedelta(minutes=1),
            sources=(),
        ),
    )
    with pytest.raises(Conflict):
        admin.retry(job.key(), "ops@example.org")  # not failed
    tracker.set_job_error(job.key(), "gone")
    with pytest.raises(IllegalTransition):
        tracker.set_job_error(job.key(), "again")  # failed is terminal
    assert tracker.store.counters.totals() == {("ndt", "ndt7"): {"started": 1, "failed": 1}}


def test_concurrent_completions_of_one_source_are_all_counted(tracker):
    import threading

    workers = 16
    keys = [
        tracker.add_job(Job("b", "ndt", "ndt7", NOW_DAY - timedelta(days=d))).key
        for d in range(workers)
    ]
    for key in keys:
        tracker.set_status(key, State.PARSING)
        tracker.set_status(key, State.POST_PROCESSING)
    errors: list[BaseException] = []
    start = threading.Barrier(workers)

    def complete(key: str) -> None:
        try:
            start.wait()
            tracker.set_status(key, State.COMPLETE)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=complete, args=(k,)) for k in keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert tracker.store.counters.totals() == {
        ("ndt", "ndt7"): {"started": workers, "completed": workers}
    }
    assert tracker.count(JobFilter(state=State.COMPLETE)) == workers


def test_concurrent_restarts_of_one_job_count_one_hand_out(tracker):
    from concurrent.futures import ThreadPoolExecutor

    from shared.errors import JobAlreadyExists

    job = Job("b", "ndt", "ndt7", NOW_DAY)
    tracker.add_job(job)
    tracker.set_job_error(job.key(), "gone")

    def restart(n: int) -> bool:
        try:
            tracker.add_job(job, f"offer-{n}", ignore_backoff=True)
            return True
        except JobAlreadyExists:
            return False

    with ThreadPoolExecutor(8) as pool:
        won = list(pool.map(restart, range(8)))
    assert won.count(True) == 1
    assert tracker.store.counters.totals() == {("ndt", "ndt7"): {"started": 2, "failed": 1}}


# --- what an SRE alerts on ----------------------------------------------------------------


def scraped(http) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = http.get("/metrics")
    assert response.status_code == 200
    return samples(response.get_data(as_text=True))


def series(got, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples of one metric, by sorted labels."""
    return {labels: v for (n, labels), v in got.items() if n == name}


def source(datatype: str) -> tuple[tuple[str, str], ...]:
    return (("datatype", datatype), ("experiment", "ndt"))


def test_alerting_metrics_before_anything_ran(http, service):
    from shared.store import ReprocessQueue

    service.queue = ReprocessQueue(service.cursors.collection._client)
    got = scraped(http)
    assert series(got, "gardener_oldest_in_flight_age_seconds") == {
        source("ndt7"): 0,
        source("annotation2"): 0,
    }
    assert series(got, "gardener_yesterday_complete") == {
        source("ndt7"): 0,
        source("annotation2"): 0,
    }
    assert series(got, "gardener_paused") == {
        (("target", "historical"),): 0,
        (("target", "ndt/ndt7"),): 0,
        (("target", "ndt/annotation2"),): 0,
    }
    assert series(got, "gardener_reprocess_queue_depth") == {(): 0}
    assert series(got, "gardener_last_success_timestamp_seconds") == {}


def test_oldest_in_flight_age_follows_the_oldest_run_of_each_source(http, service, tracker, clock):
    handed = []
    while (record := service.next_job()) is not None:
        handed.append(record.key)
        clock.advance(minutes=10)
    clock.advance(hours=1)
    now = clock()
    got = series(scraped(http), "gardener_oldest_in_flight_age_seconds")
    youngest = {
        ds: min(
            (now - tracker.get_record(k).status.start_time).total_seconds()
            for k in handed
            if f"/{ds}/" in k
        )
        for ds in ("ndt7", "annotation2")
    }
    ages = {
        ds: max(
            (now - tracker.get_record(k).status.start_time).total_seconds()
            for k in handed
            if f"/{ds}/" in k
        )
        for ds in ("ndt7", "annotation2")
    }
    assert ages["ndt7"] > youngest["ndt7"]  # several runs of different ages
    assert got[source("ndt7")] == ages["ndt7"]
    assert got[source("annotation2")] == ages["annotation2"]
    # the oldest ends: the next oldest run is reported; a failed job is not in flight
    first = next(k for k in handed if "/ndt7/" in k)
    tracker.set_job_error(first, "gave up")
    rest = [k for k in handed if "/ndt7/" in k and k != first]
    got = series(scraped(http), "gardener_oldest_in_flight_age_seconds")
    assert got[source("ndt7")] == max(
        (now - tracker.get_record(k).status.start_time).total_seconds() for k in rest
    )


def test_yesterday_complete_needs_the_daily_job_complete_or_cleaned_up(
    http, service, tracker, clock
):
    while service.next_job() is not None:
        pass
    yesterday = NOW_DAY - timedelta(days=1)
    bucket = service.config.sources[0].bucket
    ndt7 = Job(bucket, "ndt", "ndt7", yesterday).key()
    annotation = Job(bucket, "ndt", "annotation2", yesterday).key()
    assert series(scraped(http), "gardener_yesterday_complete") == {
        source("ndt7"): 0,
        source("annotation2"): 0,
    }
    finish(tracker, ndt7)
    tracker.set_job_error(annotation, "corrupt archive")
    assert series(scraped(http), "gardener_yesterday_complete") == {
        source("ndt7"): 1,
        source("annotation2"): 0,
    }
    # clean-up removes the complete job: still done
    tracker.store.delete(ndt7)
    assert series(scraped(http), "gardener_yesterday_complete")[source("ndt7")] == 1
    # the next day, today's job (not handed out yet) is yesterday's: not done
    clock.advance(days=1)
    assert series(scraped(http), "gardener_yesterday_complete")[source("ndt7")] == 0


def test_paused_and_reprocess_queue_depth(http, service, tracker, firestore_client):
    from shared.admin import Admin
    from shared.store import ControlStore, ReprocessQueue

    queue = ReprocessQueue(firestore_client)
    service.queue = queue
    admin = Admin(tracker, queue, ControlStore(firestore_client), service.config)
    admin.pause("historical", "BigQuery quota", "ops@example.org")
    admin.pause("ndt/annotation2", "bad parser", "ops@example.org")
    admin.reprocess(NOW_DAY - timedelta(days=3), NOW_DAY - timedelta(days=2), [], "ops@x.org")
    got = scraped(http)
    assert series(got, "gardener_paused") == {
        (("target", "historical"),): 1,
        (("target", "ndt/ndt7"),): 0,
        (("target", "ndt/annotation2"),): 1,
    }
    assert series(got, "gardener_reprocess_queue_depth") == {(): 4}
    admin.resume("historical", "ops@example.org")
    assert series(scraped(http), "gardener_paused")[(("target", "historical"),)] == 0


def test_last_success_of_each_scheduled_task(http, service, tracker, clock, firestore_client):
    from shared.maintenance import Maintenance, MaintenancePolicy
    from shared.postprocess import NoWarehouse, PostProcessor
    from shared.store import TaskStore

    tasks = TaskStore(firestore_client)
    policy = MaintenancePolicy(expiration=timedelta(hours=6))

    def broken_snapshot(now: datetime) -> dict[str, str]:
        raise RuntimeError("bucket gone")

    with pytest.raises(RuntimeError):
        Maintenance(tracker, policy, broken_snapshot, tasks=tasks).run()
    assert series(scraped(http), "gardener_last_success_timestamp_seconds") == {}

    Maintenance(tracker, policy, None, tasks=tasks).run()  # no snapshot configured
    first = clock().timestamp()
    assert series(scraped(http), "gardener_last_success_timestamp_seconds") == {
        (("task", "maintain"),): first
    }
    clock.advance(minutes=10)
    Maintenance(tracker, policy, lambda now: {"object": "x"}, tasks=tasks).run()
    PostProcessor(tracker, NoWarehouse(), tasks=tasks).tick()
    second = clock().timestamp()
    assert series(scraped(http), "gardener_last_success_timestamp_seconds") == {
        (("task", "maintain"),): second,
        (("task", "postprocess"),): second,
        (("task", "snapshot"),): second,
    }


def test_a_task_store_refuses_an_unknown_task(firestore_client):
    from shared.store import TaskStore

    with pytest.raises(ValueError, match="unknown task 'backup'"):
        TaskStore(firestore_client).succeeded("backup", datetime.now(UTC))
    assert TaskStore(firestore_client).last_successes() == {}


def test_every_metric_the_alerts_and_the_dashboard_query_is_served(
    http, service, tracker, clock, firestore_client
):
    """deploy/alerts.yml and terraform/monitoring.tf query only series /metrics serves."""
    import re

    from shared.admin import Admin
    from shared.maintenance import Maintenance, MaintenancePolicy
    from shared.postprocess import NoWarehouse, PostProcessor
    from shared.store import ControlStore, ReprocessQueue, TaskStore
    from tests.offline import ROOT

    queue = ReprocessQueue(firestore_client)
    service.queue = queue
    tasks = TaskStore(firestore_client)
    while service.next_job() is not None:
        pass
    Maintenance(tracker, MaintenancePolicy(timedelta(hours=6)), lambda now: {}, tasks=tasks).run()
    PostProcessor(tracker, NoWarehouse(), tasks=tasks).tick()
    Admin(tracker, queue, ControlStore(firestore_client), service.config).pause(
        "historical", "quota", "ops@example.org"
    )
    served = {name for name, _ in scraped(http)}
    for path in (ROOT / "deploy" / "alerts.yml", ROOT / "terraform" / "monitoring.tf"):
        queried = set(re.findall(r"\bgardener_[a-z0-9_]+", path.read_text()))
        assert queried, path
        assert queried <= served, f"{path.name}: not served: {sorted(queried - served)}"
