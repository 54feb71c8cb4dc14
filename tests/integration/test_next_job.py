"""Next-job: order, GCS file check, exactly-once hand-out and re-offers, on both emulators."""

from __future__ import annotations

import re
import threading
from datetime import date, datetime, timedelta

import pytest

from shared.config import Config, Source
from shared.gcs import ArchiveLister
from shared.job_service import JobService
from shared.model import Datasets, Job, JobRecord, Pause, State
from shared.postprocess import STANDARD_PIPELINE
from shared.store import ControlStore, CursorStore

NOW_DAY = date(2026, 11, 27)  # the FakeClock's day; it stands at 12:00 UTC
YESTERDAY = NOW_DAY - timedelta(days=1)
DS = Datasets("tmp_ndt", "raw_ndt", "ndt")


def make_config(
    bucket: str, *specs: tuple[str, bool], start: date = NOW_DAY - timedelta(days=7)
) -> Config:
    """A config with one source per (datatype, daily_only)."""
    sources = tuple(
        Source(bucket, "ndt", dt, "", DS, daily_only, False) for dt, daily_only in specs
    )
    return Config(
        start_date=start,
        tracker_timeout=timedelta(hours=6),
        polling_interval=timedelta(minutes=1),
        sources=sources,
    )


def put_files(gcs_client, bucket: str, datatype: str, *days: date) -> set[str]:
    """Put one archive for each day; return the job keys that now have files."""
    b = gcs_client.bucket(bucket)
    for day in days:
        b.blob(f"ndt/{datatype}/{day:%Y/%m/%d}/20190102T000000Z-archive.tgz").upload_from_string(
            b"x"
        )
    return {Job(bucket, "ndt", datatype, day).key() for day in days}


@pytest.fixture
def make_service(tracker, firestore_client, gcs_client, clock):
    """Build a job service on this test's Firestore project, the GCS emulator and clock."""

    def make(config: Config, max_steps: int = 64) -> JobService:
        return JobService(
            tracker,
            CursorStore(firestore_client),
            ArchiveLister(gcs_client),
            config,
            clock=clock,
            max_steps=max_steps,
        )

    return make


def drain(service: JobService) -> list[str]:
    """Call next until it answers no job; return the keys in hand-out order."""
    keys = []
    while (record := service.next_job()) is not None:
        keys.append(record.key)
    return keys


def key(bucket: str, datatype: str, day: date) -> str:
    return Job(bucket, "ndt", datatype, day).key()


def test_daily_first_then_historical_passing_over_jobs_without_files(
    make_service, gcs_client, bucket, tracker
):
    service = make_service(make_config(bucket, ("a", True), ("b", False), ("c", False)))
    put_files(gcs_client, bucket, "a", YESTERDAY)
    put_files(gcs_client, bucket, "b", YESTERDAY, NOW_DAY - timedelta(days=6))
    put_files(gcs_client, bucket, "c", NOW_DAY - timedelta(days=5))

    handed = drain(service)
    assert handed == [
        key(bucket, "a", YESTERDAY),  # daily: every source of yesterday, config order
        key(bucket, "b", YESTERDAY),  # (c has no files yesterday: passed over)
        key(bucket, "b", NOW_DAY - timedelta(days=6)),  # historical, oldest day first
        key(bucket, "c", NOW_DAY - timedelta(days=5)),
    ]
    record = tracker.get_record(handed[0])
    assert record.job.datasets == DS and record.offer == f"daily/0/{YESTERDAY:%Y%m%d}/0"
    assert tracker.get_record(handed[2]).offer.startswith("historical/0/")


@pytest.mark.parametrize("ending", ["failed", "complete"])
def test_in_flight_job_is_offered_again_when_it_ends(
    make_service, gcs_client, bucket, tracker, clock, ending
):
    service = make_service(make_config(bucket, ("b", False), start=NOW_DAY - timedelta(days=3)))
    day = NOW_DAY - timedelta(days=3)
    put_files(gcs_client, bucket, "b", day)
    first = service.next_job()
    assert first is not None and first.key == key(bucket, "b", day)
    tracker.set_status(first.key, State.PARSING)
    # The historical stream comes round again while the job is still parsing.
    assert drain(service) == []
    assert tracker.get_record(first.key).reoffer.startswith("historical/1/")

    if ending == "failed":
        tracker.set_job_error(first.key, "parser died")
        clock.advance(minutes=9)
        assert service.next_job() is None  # still owed, but in its retry backoff
    else:
        for state in (State.POST_PROCESSING, *STANDARD_PIPELINE, State.COMPLETE):
            tracker.set_status(first.key, state)
    clock.advance(minutes=2)
    again = service.next_job()
    assert again is not None and again.key == first.key
    assert again.status.state is State.INIT and again.offer.startswith("historical/")
    assert again.offer != first.offer
    assert again.reoffer == ""


def test_32_concurrent_callers_hand_out_each_job_exactly_once(make_service, gcs_client, bucket):
    config = make_config(bucket, ("a", True), ("b", False), ("c", False))
    days = [NOW_DAY - timedelta(days=d) for d in range(1, 8)]
    expected = (
        put_files(gcs_client, bucket, "a", *days[::2])
        | put_files(gcs_client, bucket, "b", *days)
        | put_files(gcs_client, bucket, "c", *days[1::2])
    )
    # a is daily-only: of its days only yesterday is ever offered.
    expected -= {key(bucket, "a", d) for d in days[1:]}
    service = make_service(config)
    handed: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(32)

    def caller() -> None:
        barrier.wait()
        mine = drain(service)
        with lock:
            handed.extend(mine)

    threads = [threading.Thread(target=caller) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(handed) == len(set(handed)), "a job was handed out twice"
    assert set(handed) == expected


def test_restart_resumes_from_the_cursor(make_service, gcs_client, bucket):
    config = make_config(bucket, ("b", False))
    days = [NOW_DAY - timedelta(days=d) for d in range(2, 8)]
    expected = put_files(gcs_client, bucket, "b", *days)
    first = [make_service(config).next_job().key for _ in range(2)]
    rest = drain(make_service(config))  # a new instance: nothing in memory carries over
    assert len(first + rest) == len(expected) and set(first + rest) == expected


def test_bounded_steps_then_resume(make_service, gcs_client, bucket):
    config = make_config(bucket, ("b", False))
    last = NOW_DAY - timedelta(days=2)
    # Six empty candidates come first: yesterday's daily job and five historical days.
    put_files(gcs_client, bucket, "b", last)
    service = make_service(config, max_steps=3)
    assert service.next_job() is None  # three empty candidates looked at
    assert service.next_job() is None  # three more, resumed from the cursor
    found = service.next_job()
    assert found is not None and found.key == key(bucket, "b", last)


@pytest.fixture
def next_http(http, make_service, monkeypatch):
    """The HTTP test client with ``runtime.job_service`` built on ``config`` (set by the test)."""
    from shared import runtime

    def wire(config: Config) -> object:
        service = make_service(config)
        monkeypatch.setattr(runtime, "job_service", lambda: service)
        return http

    return wire


def test_next_over_http_answers_the_go_json_then_503(next_http, gcs_client, bucket, tracker):
    sources = (
        Source(bucket, "ndt", "ndt7", r".*\.tgz$", DS, False, False),
        Source(bucket, "ndt", "ndt5", "", Datasets("tmp_ndt", "raw_ndt", ""), False, False),
    )
    config = Config(
        start_date=NOW_DAY - timedelta(days=3),
        tracker_timeout=timedelta(hours=6),
        polling_interval=timedelta(minutes=1),
        sources=sources,
    )
    day = NOW_DAY - timedelta(days=3)
    put_files(gcs_client, bucket, "ndt7", day)
    put_files(gcs_client, bucket, "ndt5", day)
    http = next_http(config)

    assert http.get("/v2/job/next").status_code == 405
    first = http.post("/v2/job/next")
    assert first.status_code == 200
    run = tracker.get_record(key(bucket, "ndt7", day)).run
    assert re.fullmatch(r"[0-9a-f]{8}", run)
    assert first.get_json() == {
        "ID": f"{key(bucket, 'ndt7', day)}~{run}",
        "Job": {
            "Bucket": bucket,
            "Experiment": "ndt",
            "Datatype": "ndt7",
            "Date": f"{day:%Y-%m-%d}T00:00:00Z",
            "Filter": r".*\.tgz$",
            "Datasets": {"Tmp": "tmp_ndt", "Raw": "raw_ndt", "Join": "ndt"},
        },
    }
    second = http.post("/next_job")
    assert second.status_code == 200 and "Filter" not in second.get_json()["Job"]

    none = http.post("/v2/job/next")
    assert none.status_code == 503
    assert none.get_data(as_text=True) == "No job found. Try again."
    assert none.headers["Retry-After"] == "10"


def test_gcs_down_answers_503_and_loses_nothing(
    next_http, make_service, gcs_client, bucket, monkeypatch, tracker
):
    from google.api_core import exceptions as gexc

    day = NOW_DAY - timedelta(days=3)
    config = make_config(bucket, ("b", False), start=day)
    put_files(gcs_client, bucket, "b", day)
    http = next_http(config)

    def down(*args: object, **kwargs: object) -> None:
        raise gexc.ServiceUnavailable("GCS is down")

    monkeypatch.setattr(gcs_client, "list_blobs", down)
    response = http.post("/v2/job/next")
    assert response.status_code == 503
    assert "GCS unavailable" in response.get_json()["error"]
    assert tracker.num_jobs() == 0
    monkeypatch.undo()

    found = make_service(config).next_job()  # GCS is back: the same job is still first
    assert found is not None and found.key == key(bucket, "b", day)


def test_bad_config_answers_500_naming_the_field(http, monkeypatch, tmp_path):
    from shared import runtime

    bad = tmp_path / "gardener.yml"
    bad.write_text(
        "start_date: 2019-01-01\ntracker: {timeout: 5h}\n"
        "monitor: {polling_interval: 1m}\nsources: []\n"
    )
    monkeypatch.setenv("GARDENER_CONFIG", str(bad))
    runtime.job_service.cache_clear()
    response = http.post("/v2/job/next")
    assert response.status_code == 500
    assert "sources" in response.get_json()["error"]


# --- owed runs: re-offers and retries ----------------------------------------------------------

LONG_AGO = date(2026, 10, 1)  # before every stream's start: only owed runs reach these days


def ended(
    bucket: str,
    datatype: str,
    day: date,
    state: State,
    at: datetime,
    *,
    reoffer: str = "",
    retry_at: datetime | None = None,
) -> JobRecord:
    """A record of a job that ended in ``state`` at ``at``, owing ``reoffer`` or a retry at ``retry_at``."""
    record = JobRecord.new(Job(bucket, "ndt", datatype, day, "", DS), at, "historical/0/x/0")
    record.status.new_state(state, at)
    record.reoffer, record.retry_at = reoffer, retry_at
    return record


def test_a_paused_source_with_many_due_retries_does_not_starve_another_sources(
    make_service, firestore_client, store, gcs_client, bucket, clock
):
    """While a source is paused the owed runs are read per unpaused source: more than a
    thousand due retries of the paused one, all due first, neither starve the other's nor
    cost a read each."""
    config = make_config(bucket, ("a", False), ("b", False), start=NOW_DAY - timedelta(days=2))
    earlier = clock.now - timedelta(hours=1)
    days = [LONG_AGO - timedelta(days=i) for i in range(1050)]
    store.create_missing(
        [
            ended(bucket, "a", day, State.FAILED, earlier, retry_at=earlier + timedelta(seconds=i))
            for i, day in enumerate(days)
        ]
        + [ended(bucket, "b", LONG_AGO, State.FAILED, clock.now, retry_at=clock.now)]
    )
    put_files(gcs_client, bucket, "a", *days[:3])
    put_files(gcs_client, bucket, "b", LONG_AGO)
    ControlStore(firestore_client).pause(Pause("ndt/a", "alice", clock.now, "quota"))
    service = JobService(
        make_service(config).tracker,
        CursorStore(firestore_client),
        ArchiveLister(gcs_client),
        config,
        clock=clock,
        controls=ControlStore(firestore_client),
    )

    reads = store.stats.reads
    handed = service.next_job()
    assert handed is not None and handed.key == key(bucket, "b", LONG_AGO)
    assert handed.offer == "retry/2"
    assert store.stats.reads - reads < 20
    assert service.next_job() is None  # a's retries wait for the resume


def test_a_due_reoffer_is_not_held_up_by_failed_jobs_in_their_backoff(
    make_service, store, gcs_client, bucket, clock
):
    """Re-offers of failed jobs in their backoff never fill the page a due re-offer is read in."""
    config = make_config(bucket, ("a", False), start=NOW_DAY - timedelta(days=2))
    later = clock.now + timedelta(hours=1)
    days = [LONG_AGO + timedelta(days=i) for i in range(15)]
    store.create_missing(
        [
            ended(
                bucket,
                "a",
                day,
                State.FAILED,
                clock.now,
                reoffer=f"daily/0/{day:%Y%m%d}/0",
                retry_at=later,
            )
            for day in days[1:]
        ]
        + [ended(bucket, "a", days[0], State.COMPLETE, clock.now, reoffer="historical/1/x/0")]
    )
    put_files(gcs_client, bucket, "a", *days)
    service = make_service(config)

    handed = service.next_job()
    assert handed is not None and handed.key == key(bucket, "a", days[0])
    assert handed.offer == "historical/1/x/0"
    assert service.next_job() is None  # the failed ones are still in their backoff
    clock.advance(hours=2)
    assert len(drain(service)) == len(days) - 1  # then each is handed out as its re-offer


@pytest.mark.parametrize(
    ("state", "reoffer", "retry_at", "in_config", "files", "handed", "why"),
    [
        ("complete", "historical/1/x/0", None, True, True, "historical/1/x/0", None),
        ("failed", "historical/1/x/0", None, True, True, "historical/1/x/0", None),
        ("failed", "", "due", True, True, "retry/2", None),
        (
            "complete",
            "historical/1/x/0",
            None,
            False,
            True,
            None,
            "historical/1/x/0 dropped: source {bucket}/ndt/gone is not in the config",
        ),
        (
            "failed",
            "",
            "due",
            False,
            True,
            None,
            "retry/2 dropped: source {bucket}/ndt/gone is not in the config",
        ),
        (
            "complete",
            "historical/1/x/0",
            None,
            True,
            False,
            None,
            "historical/1/x/0 dropped: no files under gs://{bucket}/ndt/{datatype}/2026/10/01/",
        ),
        (
            "failed",
            "daily/0/x/0",
            "due",
            True,
            False,
            None,
            "daily/0/x/0 dropped: no files under gs://{bucket}/ndt/{datatype}/2026/10/01/",
        ),
    ],
    ids=[
        "reoffer-complete",
        "reoffer-failed-no-retry",
        "retry",
        "reoffer-source-gone",
        "retry-source-gone",
        "reoffer-no-files",
        "retry-no-files",
    ],
)
def test_an_owed_run_is_handed_out_only_for_a_source_of_the_config_with_files(
    make_service,
    store,
    tracker,
    gcs_client,
    bucket,
    clock,
    state,
    reoffer,
    retry_at,
    in_config,
    files,
    handed,
    why,
):
    """Like a stream candidate; what cannot run is dropped (on the audit), so it never clogs a page."""
    datatype = "a" if in_config else "gone"
    config = make_config(bucket, ("a", False), start=NOW_DAY - timedelta(days=2))
    record = ended(
        bucket,
        datatype,
        LONG_AGO,
        State(state),
        clock.now - timedelta(hours=1),
        reoffer=reoffer,
        retry_at=clock.now if retry_at else None,
    )
    store.create_missing([record])
    if files:
        put_files(gcs_client, bucket, datatype, LONG_AGO)
    service = make_service(config)

    started = service.next_job()
    after = tracker.get_record(record.key)
    if handed:
        assert started is not None and started.key == record.key and started.offer == handed
        assert after.status.state is State.INIT and after.job.datasets == DS
        return
    assert started is None
    assert after.status.state is State(state) and (after.reoffer, after.retry_at) == ("", None)
    assert [(e.who, e.action, e.detail) for e in after.audit] == [
        ("next-job", "drop", why.format(bucket=bucket, datatype=datatype))
    ]
    assert list(tracker.pending_reoffers(10)) == [] and tracker.retryable(clock.now, 10) == []
    assert service.next_job() is None


@pytest.mark.parametrize(
    "stream_day", [YESTERDAY, NOW_DAY - timedelta(days=6)], ids=["daily", "historical"]
)
def test_a_hand_out_stands_when_the_cursor_write_after_it_fails(
    make_service, gcs_client, bucket, tracker, monkeypatch, stream_day
):
    """The cursor is a hint: a job created by a request is answered, never stranded by a 503."""
    from shared.errors import StoreUnavailable

    service = make_service(make_config(bucket, ("b", False)))
    wanted = put_files(gcs_client, bucket, "b", stream_day)

    def down(*args, **kwargs):
        raise StoreUnavailable("Firestore did not answer within 20 s")

    monkeypatch.setattr(service.cursors, "advance", down)
    record = service.next_job()
    assert record is not None and record.key in wanted
    monkeypatch.undo()
    assert service.next_job() is None  # handed out once: the next caller finds it taken


def test_a_queued_hand_out_stands_when_removing_its_item_fails(
    make_service, gcs_client, bucket, tracker, firestore_client, clock, monkeypatch
):
    from shared.errors import StoreUnavailable
    from shared.model import ReprocessItem
    from shared.store import ReprocessQueue

    config = make_config(bucket, ("b", False))
    queue = ReprocessQueue(firestore_client)
    service = JobService(
        tracker,
        CursorStore(firestore_client),
        ArchiveLister(gcs_client),
        config,
        clock=clock,
        queue=queue,
    )
    day = NOW_DAY - timedelta(days=30)
    put_files(gcs_client, bucket, "b", day)
    queue.add([ReprocessItem.new(Job(bucket, "ndt", "b", day), "alice", clock())])
    real = queue.remove

    def down(item):
        raise StoreUnavailable("Firestore did not answer within 20 s")

    monkeypatch.setattr(queue, "remove", down)
    record = service.next_job()
    assert record is not None and record.key == key(bucket, "b", day)
    assert record.offer.startswith("reprocess/")
    monkeypatch.setattr(queue, "remove", real)
    clock.advance(minutes=5)
    service.next_job()  # claims the item again, finds it handed out, removes it
    assert queue.count() == 0
    assert tracker.get_record(record.key).offer == record.offer  # not handed out twice
