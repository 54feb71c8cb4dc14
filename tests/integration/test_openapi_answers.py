"""Real answers match the OpenAPI document: the status is one the operation lists, and a
JSON body has the documented shape (``tests/documented.py``), for the parser endpoints,
the status JSON, the scheduled ticks, the metrics and the admin API."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest

from shared.admin import Admin
from shared.config import Config, Source
from shared.gcs import ArchiveLister
from shared.job_service import JobService
from shared.maintenance import Maintenance, MaintenancePolicy
from shared.model import Datasets, Job, State
from shared.store import ControlStore, CursorStore, ReprocessQueue
from tests.documented import check_answer

NOW_DAY = date(2026, 11, 27)  # the FakeClock's day
BUCKET = "archive-bucket"
DS = Datasets("tmp_ndt", "raw_ndt", "ndt")


def job(day: int, datatype: str = "a") -> Job:
    return Job(BUCKET, "ndt", datatype, NOW_DAY - timedelta(days=day))


@pytest.fixture
def snapshots(gcs_client):
    return gcs_client.create_bucket(f"snap-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def config() -> Config:
    """Two sources, ndt/a and ndt/b, history from a week ago."""
    return Config(
        start_date=NOW_DAY - timedelta(days=7),
        tracker_timeout=timedelta(hours=6),
        polling_interval=timedelta(minutes=1),
        sources=tuple(Source(BUCKET, "ndt", dt, "", DS) for dt in ("a", "b")),
    )


@pytest.fixture
def admin_http(http, tracker, config, firestore_client, gcs_client, snapshots, monkeypatch):
    """The ``http`` client with an admin of the config's sources and a snapshot bucket."""
    import dataclasses

    from shared import runtime
    from shared.snapshot import load_snapshot, write_snapshot

    admin = Admin(
        tracker,
        ReprocessQueue(firestore_client),
        ControlStore(firestore_client),
        config,
        export=lambda now: dataclasses.asdict(write_snapshot(tracker.store, snapshots, now)),
        load=lambda src: load_snapshot(src, gcs_client),
        max_reprocess=20,
    )
    monkeypatch.setattr(runtime, "admin", lambda: admin)
    monkeypatch.setattr(runtime, "controls", lambda: admin.controls)
    return http


def test_parser_answers_match_the_document(http, tracker):
    live = tracker.add_job(job(1)).key
    done = tracker.add_job(job(2)).key
    for state in (State.PARSING, State.POST_PROCESSING, State.COMPLETE):
        tracker.set_status(done, state)
    calls = [
        ("/v2/job/update", {"id": live, "state": "parsing", "detail": "go"}, 200),
        ("/v2/job/heartbeat", {"id": live}, 200),
        ("/v2/job/error", {"id": live, "error": "corrupt"}, 200),
        ("/v2/job/update", {"id": done, "state": "parsing"}, 409),
        ("/v2/job/heartbeat", {"id": done}, 409),
        ("/v2/job/update", {"id": job(9).key(), "state": "parsing"}, 410),
        ("/v2/job/update", {"state": "parsing"}, 422),
        ("/v2/job/error", {"id": live}, 424),
        ("/v2/job/update", {"id": live, "state": "nonsense"}, 400),
    ]
    for path, params, status in calls:
        response = http.post(path, query_string=params)
        assert response.status_code == status, (path, params, response.get_data(as_text=True))
        check_answer(response, path, "POST")


def test_status_json_with_every_kind_of_job_matches_the_document(admin_http, tracker, clock):
    tracker.add_job(job(1))
    failed = tracker.add_job(job(2)).key
    tracker.set_status(failed, State.FAILED, "gave up")
    admin_http.post("/admin/pause", query_string={"target": "historical", "reason": "x"})
    for params in ({"format": "json"}, {"format": "json", "state": "failed"}):
        response = admin_http.get("/status", query_string=params)
        body = check_answer(response, "/status", "GET")
        assert body["Jobs"] and body["Paused"]
    html = admin_http.get("/status")
    assert check_answer(html, "/status", "GET") is None and html.mimetype == "text/html"
    check_answer(admin_http.get("/status?limit=0"), "/status", "GET")  # 400


def test_status_json_with_sources_and_grid_matches_the_document(
    admin_http, tracker, config, firestore_client, gcs_client, clock, monkeypatch
):
    from shared import runtime
    from shared.progress import Progress

    queue, controls = ReprocessQueue(firestore_client), ControlStore(firestore_client)
    service = JobService(
        tracker,
        CursorStore(firestore_client),
        ArchiveLister(gcs_client),
        config,
        clock=clock,
        queue=queue,
        controls=controls,
    )
    if gcs_client.lookup_bucket(BUCKET) is None:
        gcs_client.create_bucket(BUCKET)
    for datatype in ("a", "b"):
        for back in (1, 2, 3):
            day = NOW_DAY - timedelta(days=back)
            gcs_client.bucket(BUCKET).blob(
                f"ndt/{datatype}/{day:%Y/%m/%d}/x.tgz"
            ).upload_from_string(b"x")
    admin_http.post("/admin/pause", query_string={"target": "ndt/b", "reason": "bad parser"})
    admin_http.post("/admin/pause", query_string={"target": "historical"})
    while service.next_job() is not None:
        pass
    progress = Progress(tracker, service.cursors, config, controls=controls, queue=queue)
    monkeypatch.setattr(runtime, "progress", lambda: progress)
    body = check_answer(admin_http.get("/status?format=json&days=3"), "/status", "GET")
    a, b = body["Sources"]
    assert a["Daily"]["YesterdayState"] == "init" and a["Historical"]["Paused"]
    assert b["Paused"]["Reason"] == "bad parser" and b["Queued"] == 1  # yesterday, deferred
    assert [len(day["Jobs"]) for day in body["Grid"]] == [2, 2, 2]
    html = admin_http.get("/status?days=3")
    assert check_answer(html, "/status", "GET") is None and 'class="grid"' in html.text


def test_metrics_and_the_document_itself_match_the_document(
    http, tracker, config, firestore_client, gcs_client, clock, monkeypatch
):
    from shared import runtime

    service = JobService(
        tracker, CursorStore(firestore_client), ArchiveLister(gcs_client), config, clock=clock
    )
    monkeypatch.setattr(runtime, "job_service", lambda: service)
    tracker.add_job(job(1))
    response = http.get("/metrics")
    assert response.status_code == 200
    check_answer(response, "/metrics", "GET")
    check_answer(http.get("/openapi.json"), "/openapi.json", "GET")


def test_maintenance_summary_with_a_snapshot_matches_the_document(
    http, tracker, clock, snapshots, monkeypatch
):
    import dataclasses

    from shared import runtime
    from shared.snapshot import write_snapshot

    tracker.add_job(job(1))
    clock.advance(hours=8)
    maintenance = Maintenance(
        tracker,
        MaintenancePolicy(expiration=timedelta(hours=6), cleanup_delay=timedelta(hours=1)),
        lambda now: dataclasses.asdict(write_snapshot(tracker.store, snapshots, now)),
    )
    monkeypatch.setattr(runtime, "maintenance", lambda: maintenance)
    body = check_answer(http.post("/maintain"), "/maintain", "POST")
    assert body["expired"] and body["snapshot"]["object"]


def test_admin_answers_match_the_document(admin_http, tracker):
    live = tracker.add_job(job(1)).key
    tracker.set_status(live, State.PARSING)
    failed = tracker.add_job(job(2)).key
    tracker.set_status(failed, State.FAILED, "gave up")
    day = str(NOW_DAY - timedelta(days=3))
    calls = [
        ("GET", "/admin/jobs", {}, 200),
        ("GET", "/admin/job", {"id": live}, 200),
        ("GET", "/admin/job", {"id": job(9).key()}, 410),
        ("GET", "/admin/job", {}, 422),
        ("POST", "/admin/job/retry", {"id": failed}, 200),
        ("POST", "/admin/job/retry", {"id": live}, 409),
        ("POST", "/admin/job/fail", {"id": live, "reason": "stuck"}, 200),
        ("POST", "/admin/reprocess", {"from": day, "to": day, "sources": "ndt/a"}, 200),
        ("POST", "/admin/reprocess", {"from": day, "to": day, "sources": "ndt/zz"}, 400),
        ("GET", "/admin/controls", {}, 200),
        ("POST", "/admin/reprocess/cancel", {"from": day, "to": day, "sources": "ndt/a"}, 200),
        ("POST", "/admin/pause", {"target": "ndt/b", "reason": "quota"}, 200),
        ("POST", "/admin/pause", {"target": "ndt/b", "reason": "again"}, 200),
        ("GET", "/admin/controls", {}, 200),
        ("POST", "/admin/resume", {"target": "ndt/b"}, 200),
        ("POST", "/admin/snapshot/export", {}, 200),
        ("POST", "/admin/snapshot/import", {"source": "gs://no-such/x.json"}, 400),
    ]
    for method, path, params, status in calls:
        response = admin_http.open(path, method=method, query_string=params)
        assert response.status_code == status, (path, params, response.get_data(as_text=True))
        check_answer(response, path, method)
    refused = admin_http.get("/admin/jobs", headers={"Authorization": "Basic x"})
    assert refused.status_code == 401
    check_answer(refused, "/admin/jobs", "GET")


def test_an_undocumented_field_or_status_is_caught(http, tracker):
    """The check itself: a body with a field the document does not list, or a status it
    does not list, fails."""
    live = tracker.add_job(job(1)).key
    response = http.post("/v2/job/heartbeat", query_string={"id": live})
    response.set_data(response.get_data(as_text=True).replace('"ID"', '"Extra": 1, "ID"'))
    with pytest.raises(Exception, match="Extra"):
        check_answer(response, "/v2/job/heartbeat", "POST")
    document = http.get("/openapi.json")
    document.status_code = 409
    with pytest.raises(AssertionError, match="409 not in"):
        check_answer(document, "/openapi.json", "GET")
