"""The status page's per-source progress and date × source grid on the emulators: what they
show after real hand-outs, pauses and reprocessing, and what a load reads."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest

from shared import defaults
from shared.admin import Admin
from shared.config import Config, Source
from shared.gcs import ArchiveLister
from shared.job_service import JobService
from shared.model import Datasets, Job, State
from shared.progress import Progress
from shared.store import ControlStore, CursorStore, ReprocessQueue
from shared.tracker import Tracker

NOW_DAY = date(2026, 11, 27)  # the FakeClock's day
YESTERDAY = NOW_DAY - timedelta(days=1)
DS = Datasets("tmp_ndt", "raw_ndt", "ndt")


class Stack:
    """A job service, the operator's actions and the progress reader on one project."""

    def __init__(self, tracker, firestore_client, gcs_client, clock) -> None:
        self.bucket = f"progress-{uuid.uuid4().hex[:12]}"
        gcs_client.create_bucket(self.bucket)
        self.config = Config(
            start_date=NOW_DAY - timedelta(days=6),
            tracker_timeout=timedelta(hours=6),
            polling_interval=timedelta(minutes=1),
            sources=(
                Source(self.bucket, "ndt", "ndt7", "", DS),
                Source(self.bucket, "ndt", "annotation2", "", DS, daily_only=True),
                Source(self.bucket, "host", "nodeinfo1", "", DS),
            ),
            daily_delay=timedelta(0),
        )
        for source in self.config.sources:
            for back in range(1, 7):
                day = NOW_DAY - timedelta(days=back)
                gcs_client.bucket(self.bucket).blob(
                    f"{source.experiment}/{source.datatype}/{day:%Y/%m/%d}/x.tgz"
                ).upload_from_string(b"x")
        self.tracker: Tracker = tracker
        self.cursors = CursorStore(firestore_client)
        self.queue = ReprocessQueue(firestore_client)
        self.controls = ControlStore(firestore_client)
        self.service = JobService(
            tracker,
            self.cursors,
            ArchiveLister(gcs_client),
            self.config,
            clock=clock,
            queue=self.queue,
            controls=self.controls,
        )
        self.admin = Admin(tracker, self.queue, self.controls, self.config)
        self.progress = Progress(
            tracker, self.cursors, self.config, controls=self.controls, queue=self.queue
        )

    def key(self, datatype: str, day: date = YESTERDAY) -> str:
        experiment = "host" if datatype == "nodeinfo1" else "ndt"
        return Job(self.bucket, experiment, datatype, day).key()

    def hand_out(self, n: int | None = None) -> list[str]:
        handed: list[str] = []
        while (n is None or len(handed) < n) and (record := self.service.next_job()) is not None:
            handed.append(record.key)
        return handed

    def reads(self) -> int:
        """Document reads made so far through every store the page uses."""
        store = self.tracker.store
        return (
            store.stats.reads
            + store.state_counts.stats.reads
            + self.cursors.stats.reads
            + self.queue.stats.reads
            + self.controls.stats.reads
        )


@pytest.fixture
def stack(http, tracker, firestore_client, gcs_client, clock, monkeypatch) -> Stack:
    from shared import runtime

    built = Stack(tracker, firestore_client, gcs_client, clock)
    monkeypatch.setattr(runtime, "progress", lambda: built.progress)
    monkeypatch.setattr(runtime, "controls", lambda: built.controls)
    monkeypatch.setattr(runtime, "job_service", lambda: built.service)
    return built


def finish(tracker, key: str) -> None:
    for state in (State.PARSING, State.POST_PROCESSING, State.COMPLETE):
        tracker.set_status(key, state)


def test_progress_after_hand_outs_shows_streams_cycle_and_yesterday(http, stack):
    handed = stack.hand_out()
    # daily: yesterday for the three sources; historical: 5 days × 2 sources
    assert len(handed) == 3 + 10
    finish(stack.tracker, stack.key("ndt7"))
    stack.tracker.set_job_error(stack.key("nodeinfo1"), "corrupt")
    body = http.get("/status?format=json&days=3").get_json()
    ndt7, annotation, nodeinfo = body["Sources"]
    assert ndt7["Daily"] == {
        "Date": "2026-11-26T00:00:00Z",
        "Yesterday": "2026-11-26T00:00:00Z",
        "YesterdayState": "complete",
        "YesterdayComplete": True,
    }
    assert nodeinfo["Daily"]["YesterdayState"] == "failed"
    assert nodeinfo["Daily"]["YesterdayComplete"] is False
    assert annotation["Daily"]["YesterdayState"] == "init" and annotation["Historical"] is None
    # the historical stream walked its first cycle (Nov 21 to 26, 36 h before now; Nov 26 was
    # in flight), then the second up to Nov 25, marking each job in flight to be offered again
    assert ndt7["Historical"] == {
        "Date": "2026-11-25T00:00:00Z",
        "Cycle": 1,
        "CyclePercent": 83.3,
        "Paused": None,
    }
    assert ndt7["Paused"] is None and ndt7["Queued"] == 0
    assert [day["Date"][:10] for day in body["Grid"]] == ["2026-11-26", "2026-11-25", "2026-11-24"]
    assert body["Grid"][0]["Jobs"] == [
        {"ID": stack.key("ndt7"), "State": "complete"},
        {"ID": stack.key("annotation2"), "State": "init"},
        {"ID": stack.key("nodeinfo1"), "State": "failed"},
    ]
    # annotation2 is daily only: no job the day before
    assert body["Grid"][1]["Jobs"][1] == {
        "ID": stack.key("annotation2", YESTERDAY - timedelta(days=1)),
        "State": None,
    }
    page = http.get("/status?days=3").get_data(as_text=True)
    assert page.count('<a class="cell ') == 3 + 2 + 2
    assert f'href="/status/job?id={stack.key("ndt7").replace("/", "%2F")}"' in page


def test_a_paused_sources_deferred_daily_job_is_not_complete(http, stack, clock):
    stack.admin.pause("ndt/ndt7", "bad parser", "ops@example.org")
    stack.hand_out()
    # the daily stream passed over yesterday's ndt7 job and queued it for reprocessing
    assert stack.tracker.find_record(stack.key("ndt7")) is None
    overview = stack.progress.overview()
    ndt7 = overview.sources[0]
    assert ndt7.daily.date == YESTERDAY and ndt7.daily.yesterday_state is None
    assert ndt7.daily.yesterday_complete is False and ndt7.daily.yesterday_queued
    assert ndt7.queued == 1 and ndt7.paused is not None
    assert ">queued</a>" in http.get("/status").get_data(as_text=True)
    scrape = http.get("/metrics").get_data(as_text=True)
    assert 'gardener_yesterday_complete{datatype="ndt7",experiment="ndt"} 0.0' in scrape
    # resumed: the queued job is handed out, then done
    stack.admin.resume("ndt/ndt7", "ops@example.org")
    assert stack.key("ndt7") in stack.hand_out()
    assert stack.progress.overview().sources[0].daily.yesterday_complete is False  # in flight
    finish(stack.tracker, stack.key("ndt7"))
    assert stack.progress.overview().sources[0].daily.yesterday_complete is True
    # cleaned up after it completed: still done
    stack.tracker.store.delete(stack.key("ndt7"))
    assert stack.progress.overview().sources[0].daily.yesterday_complete is True


def test_a_status_load_reads_the_rows_the_grid_and_a_constant_per_source(http, stack):
    stack.hand_out()
    stack.admin.pause("historical", "", "ops@example.org")
    sources = len(stack.config.sources)

    def reads_of_a_load(days: int, limit: int = 5) -> int:
        before = stack.reads()
        answer = http.get(f"/status?format=json&limit={limit}&days={days}")
        assert answer.status_code == 200
        assert len(answer.get_json()["Jobs"]) == limit
        return int(stack.reads() - before)

    small = reads_of_a_load(days=3)
    # rows + grid cells + counter shards + 2 cursors + 1 pause + a queue count per source
    expected = 5 + 3 * sources + defaults.STATE_COUNT_SHARDS + 2 + 1 + sources
    assert small == expected
    assert reads_of_a_load(days=3, limit=6) == expected + 1
    assert reads_of_a_load(days=10) == expected + 7 * sources
    # more jobs stored change nothing: no query grows with them
    for day in range(1, 30):
        stack.tracker.add_job(Job(stack.bucket, "ndt", "ndt7", date(2020, 1, day)))
    assert reads_of_a_load(days=3) == small


@pytest.mark.parametrize(
    ("days", "status"), [("0", 400), ("91", 400), ("x", 400), ("1", 200), ("90", 200)]
)
def test_days_out_of_range_is_refused_with_the_range(http, stack, days, status):
    answer = http.get(f"/status?format=json&days={days}")
    assert answer.status_code == status
    if status == 400:
        assert "days" in answer.get_json()["fields"]
    else:
        assert len(answer.get_json()["Grid"]) == int(days)


def test_a_90_day_grid_of_many_sources_reads_every_cell_across_lookup_batches(
    tracker, firestore_client
):
    """90 days × 7 sources is 630 cells, more than one lookup of MAX_BATCH (500) documents:
    every cell is read once, and the jobs on either side of the batch boundary are found."""
    from shared.store.common import MAX_BATCH

    sources = tuple(Source("b", "ndt", f"type{n}", "", DS) for n in range(7))
    config = Config(
        start_date=date(2020, 1, 1),
        tracker_timeout=timedelta(hours=6),
        polling_interval=timedelta(minutes=1),
        sources=sources,
    )
    days = defaults.STATUS_GRID_MAX_DAYS
    assert days * len(sources) > MAX_BATCH
    # the first cell, the last cells of the first batch, the first of the second, the last
    cells = [0, MAX_BATCH - 1, MAX_BATCH, days * len(sources) - 1]
    for cell in cells:
        back, index = divmod(cell, len(sources))
        source = sources[index]
        tracker.add_job(Job("b", "ndt", source.datatype, YESTERDAY - timedelta(days=back)))
    cursors = CursorStore(firestore_client)
    before = tracker.store.stats.reads
    overview = Progress(tracker, cursors, config).overview(days)
    assert tracker.store.stats.reads - before == days * len(sources)
    assert len(overview.grid) == days and overview.grid[-1].day == YESTERDAY - timedelta(89)
    found = [
        n
        for n, cell in enumerate(c for row in overview.grid for c in row.cells)
        if cell.state is not None
    ]
    assert found == cells
    assert all(
        cell.state is State.INIT for row in overview.grid for cell in row.cells if cell.state
    )
