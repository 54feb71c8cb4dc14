"""The job page on the emulator: a job failed, retried and failed again shows both runs with
their errors; unknown, malformed and missing ids; the JSON and every answer as documented;
the status function serves it beside the status page; a snapshot keeps the runs."""

from __future__ import annotations

import json
import re
import uuid
from datetime import date, timedelta

import pytest
from google.cloud import firestore

from shared.admin import Admin
from shared.config import Config, Source
from shared.defaults import RUNS_KEEP
from shared.errors import JobAlreadyExists
from shared.gotime import format_time
from shared.model import Datasets, Job, State
from shared.snapshot import import_snapshot, load_snapshot, write_snapshot
from shared.store import ControlStore, JobStore, ReprocessQueue
from tests.conftest import ROOT
from tests.documented import check_answer

pytestmark = pytest.mark.emulator

DS = Datasets("tmp_ndt", "raw_ndt", "ndt")
JOB = Job("archive-bucket", "ndt", "ndt7", date(2026, 11, 20), "", DS)
KEY = JOB.key()
MISSING_KEY = "archive-bucket/ndt/ndt7/20200101"
EVIL = "<script>alert('x')</script>"
#: One source, the job's own, for the operator actions these tests take.
CONFIG = Config(
    start_date=date(2026, 11, 1),
    tracker_timeout=timedelta(hours=6),
    polling_interval=timedelta(minutes=1),
    sources=(Source(JOB.bucket, JOB.experiment, JOB.datatype, "", DS),),
)


@pytest.fixture
def twice_failed(tracker, clock, firestore_client) -> str:
    """A job that failed, was retried by an operator, handed out again and failed again."""
    admin = Admin(tracker, ReprocessQueue(firestore_client), ControlStore(firestore_client), CONFIG)
    tracker.add_job(JOB, "daily/0/20261120/0")
    tracker.set_status(KEY, State.PARSING, "archive 1 of 3")
    clock.advance(minutes=5)
    tracker.set_job_error(KEY, f"corrupt archive {EVIL}")
    clock.advance(minutes=1)
    admin.retry(KEY, "ops@example.com")
    tracker.add_job(JOB, "retry/2")
    tracker.set_status(KEY, State.PARSING, "archive 1 of 3, again")
    clock.advance(minutes=5)
    tracker.set_job_error(KEY, "parser out of memory")
    return KEY


def test_a_job_failed_retried_and_failed_again_shows_both_attempts(http, twice_failed, tracker):
    response = http.get("/status/job", query_string={"id": twice_failed})

    assert response.status_code == 200 and response.mimetype == "text/html"
    check_answer(response, "/status/job", "GET")
    page = response.get_data(as_text=True)
    assert "<script>" not in page
    assert "parsing: corrupt archive &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page
    assert "parsing: parser out of memory" in page
    assert "Attempt 2, this run:" in page
    assert re.findall(r"<summary>Attempt (\d)", page) == ["1"]
    assert "<strong>retry</strong> by ops@example.com: due now as attempt 2" in page
    record = tracker.get_record(twice_failed)
    assert record.retry_at is not None  # the second failure waits for its backoff, doubled
    assert f"<dt>Retry</dt><dd>at {format_time(record.retry_at)} (in 20m 0s)</dd>" in page
    assert f"gardener retry {twice_failed}" in page
    assert "gardener reprocess --from 2026-11-20 --to 2026-11-20 --source ndt/ndt7" in page
    assert f"gardener fail {twice_failed}" not in page  # a failed job cannot be failed again

    body = check_answer(
        http.get("/status/job", query_string={"id": twice_failed, "format": "json"}),
        "/status/job",
        "GET",
    )
    assert body["Attempts"] == 2 and body["Run"] == record.run
    [first] = body["Runs"]
    assert (first["Attempt"], first["State"], first["Offer"]) == (1, "failed", "daily/0/20261120/0")
    assert first["Error"] == f"parsing: corrupt archive {EVIL}"
    assert [e["State"] for e in first["History"]] == ["init", "parsing", "failed"]
    assert body["Error"] == "parsing: parser out of memory"
    assert body["RetryAt"] == format_time(record.retry_at)
    assert [c["Action"] for c in body["Commands"]] == ["show", "retry", "reprocess"]


def test_a_job_in_flight_offers_fail_and_shows_its_expiry(http, tracker):
    tracker.add_job(JOB)
    tracker.set_status(KEY, State.PARSING, "archive 2 of 9")
    body = check_answer(
        http.get("/status/job", query_string={"id": KEY, "format": "json"}), "/status/job", "GET"
    )
    assert [c["Command"] for c in body["Commands"]] == [
        f"gardener job {KEY}",
        f"gardener fail {KEY} --reason 'why it is stopped'",
    ]
    assert body["Runs"] == [] and body["RetryAt"] is None


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        pytest.param({"id": MISSING_KEY}, 404, f"no job {MISSING_KEY}", id="unknown"),
        pytest.param({"id": "not-a-key"}, 400, "malformed job id", id="malformed"),
        pytest.param({"id": KEY + "~0a1b2c3d"}, 400, "malformed job id", id="with a run"),
        pytest.param({"id": KEY, "format": "xml"}, 400, "format", id="bad format"),
        pytest.param({}, 422, "missing parameter &#39;id&#39;", id="missing"),
    ],
)
def test_a_request_naming_no_job_answers_a_page_saying_why(http, query, status, message):
    response = http.get("/status/job", query_string=query)

    assert response.status_code == status and response.mimetype == "text/html"
    check_answer(response, "/status/job", "GET")
    page = response.get_data(as_text=True)
    assert f"<title>Gardener job: {status}</title>" in page
    assert message in page and 'name="id"' in page


@pytest.mark.parametrize(
    ("query", "status"),
    [
        pytest.param({"id": MISSING_KEY, "format": "json"}, 404, id="unknown"),
        pytest.param({"id": "not-a-key", "format": "json"}, 400, id="malformed"),
        pytest.param({"format": "json"}, 422, id="missing"),
    ],
)
def test_with_format_json_the_errors_are_json(http, query, status):
    response = http.get("/status/job", query_string=query)
    body = check_answer(response, "/status/job", "GET")
    assert response.status_code == status and body["status"] == status


def test_other_methods_are_refused_and_head_answers(http, tracker):
    tracker.add_job(JOB)
    refused = http.post("/status/job", query_string={"id": KEY})
    assert refused.status_code == 405 and refused.headers["Allow"] == "GET, HEAD"
    assert http.head("/status/job", query_string={"id": KEY}).status_code == 200


def test_every_status_row_links_to_its_job_page(http, tracker):
    tracker.add_job(JOB)
    page = http.get("/status", query_string={"refresh": "0"}).get_data(as_text=True)
    [link] = re.findall(r'<a class="page" href="(/status/job\?id=[^"]+)"', page)
    followed = http.get(link.replace("&amp;", "&"))
    assert followed.status_code == 200
    assert f'<code class="copy" title="select to copy">{KEY}</code>' in followed.get_data(
        as_text=True
    )


def test_the_status_function_serves_the_job_page_beside_the_status_page(tracker, monkeypatch):
    """Deployed alone, the status function answers /status/job and every other path as before."""
    from functions_framework import create_app

    from shared import runtime

    monkeypatch.setattr(runtime, "tracker", lambda: tracker)
    monkeypatch.setattr(runtime, "controls", lambda: ControlStore(tracker.store.client))
    client = create_app("status", str(ROOT / "functions" / "main.py")).test_client()
    tracker.add_job(JOB)

    job = client.get("/status/job", query_string={"id": KEY, "format": "json"})
    assert job.status_code == 200 and job.get_json()["ID"] == KEY
    assert client.get("/status/job/", query_string={"id": MISSING_KEY}).status_code == 404
    everything = client.get("/", query_string={"format": "json"})
    assert everything.status_code == 200 and everything.get_json()["Count"] == 1


def test_a_snapshot_round_trip_keeps_the_earlier_runs(
    twice_failed, store, clock, gcs_client, emulator_host
):
    bucket = gcs_client.create_bucket(f"snap-{uuid.uuid4().hex[:12]}")
    result = write_snapshot(store, bucket, clock())
    fresh = JobStore(firestore.Client(project=f"demo-{uuid.uuid4().hex[:12]}"))
    exported = json.loads(bucket.blob(result.object).download_as_bytes())
    status = exported["Statuses"][twice_failed]
    # Go's fields as Go writes them, then Runs, a field Go's decoder ignores
    assert list(status) == ["HeartbeatTime", "UpdateCount", "History", "Runs"]
    assert [e["State"] for e in status["History"]] == ["init", "parsing", "failed"]

    with load_snapshot(f"gs://{bucket.name}/{result.object}", gcs_client) as snapshot:
        assert import_snapshot(fresh, snapshot).created == 1

    original, restored = store.get(twice_failed), fresh.get(twice_failed)
    assert original is not None and restored is not None
    assert len(original.runs) == 1 and restored.runs == original.runs
    assert restored.runs[0].error == f"parsing: corrupt archive {EVIL}"


def _expire(tracker, clock, admin) -> str:
    clock.advance(hours=7)
    assert tracker.expire_stale(clock() - timedelta(hours=6), 10) == [KEY]
    return "expired in parsing: no heartbeat or update since"


def _operator_fail(tracker, clock, admin) -> str:
    admin.fail(KEY, "bad 'archive' $HOME", "ops@example.com")
    return "parsing: failed by ops@example.com: bad 'archive' $HOME"


def _post_processing_fail(tracker, clock, admin) -> str:
    tracker.set_status(KEY, State.POST_PROCESSING, "")
    tracker.set_job_error(KEY, "load failed: quota")
    return "postProcessing: load failed: quota"


def _complete(tracker, clock, admin) -> str:
    tracker.set_status(KEY, State.POST_PROCESSING, "")
    tracker.set_status(KEY, State.COMPLETE, "")
    return ""


@pytest.mark.parametrize(
    ("end", "offer"),
    [
        pytest.param(_expire, "retry/2", id="expired, then handed out again"),
        pytest.param(_operator_fail, "reprocess/0", id="failed by an operator, then reprocessed"),
        pytest.param(_post_processing_fail, "retry/2", id="failed in post-processing, retried"),
        pytest.param(_complete, "daily/1/20261120/0", id="complete, then offered again"),
    ],
)
def test_every_way_a_run_ends_and_restarts_keeps_it_once_with_its_error(
    end, offer, tracker, clock, firestore_client
):
    """The run that ended is kept once, with its error, whichever way it ended and restarted;
    a second hand-out racing the first starts nothing and keeps nothing."""
    admin = Admin(tracker, ReprocessQueue(firestore_client), ControlStore(firestore_client), CONFIG)
    first = tracker.add_job(JOB, "daily/0/20261120/0")
    tracker.set_status(KEY, State.PARSING, "archive 1 of 3")
    error = end(tracker, clock, admin)
    clock.advance(days=1)

    tracker.add_job(JOB, offer, ignore_backoff=True)
    with pytest.raises(JobAlreadyExists):
        tracker.add_job(JOB, offer + "-again", ignore_backoff=True)

    [kept] = tracker.get_record(KEY).runs
    assert (kept.run, kept.offer, kept.attempt) == (first.run, "daily/0/20261120/0", 1)
    assert kept.error.startswith(error) and (kept.error != "") is bool(error)
    assert kept.state is (State.FAILED if error else State.COMPLETE)
    assert [e.state for e in kept.history][:2] == [State.INIT, State.PARSING]


def test_a_page_load_reads_the_job_and_its_runs_shards_whatever_its_earlier_runs(
    http, tracker, clock
):
    """One read of the job document (its earlier runs inside it) and one query of the current
    run's progress shards (a read per shard written, at least one): never one per run kept."""

    def reads_of_page() -> int:
        before: int = tracker.store.stats.reads
        assert http.get("/status/job", query_string={"id": KEY}).status_code == 200
        after: int = tracker.store.stats.reads
        return after - before

    tracker.add_job(JOB)
    fresh = reads_of_page()
    for attempt in range(RUNS_KEEP + 2):
        tracker.set_status(KEY, State.PARSING, f"attempt {attempt}")
        tracker.set_job_error(KEY, f"error {attempt}")
        clock.advance(days=1)
        tracker.add_job(JOB, f"retry/{attempt}", ignore_backoff=True)

    assert fresh == 2
    assert len(tracker.get_record(KEY).runs) == RUNS_KEEP
    assert reads_of_page() == fresh
