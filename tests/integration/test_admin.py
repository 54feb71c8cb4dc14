"""Operator control on the emulators: every admin action, its audit, refusals, reprocessing
(and cancelling it), pauses."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from shared.admin import Admin, Cancellation
from shared.config import Config, Source
from shared.gcs import ArchiveLister
from shared.job_service import JobService
from shared.model import Datasets, Job, Pause, ReprocessItem, State
from shared.store import ControlStore, CursorStore, ReprocessQueue
from shared.tracker import Tracker
from tests.idtokens import (
    CERTS,
    HOST,
    IAP_AUDIENCE,
    IAP_KEYS,
    OTHER_KEY,
    iap_signed,
    signed,
    unsigned,
)
from tests.integration.test_next_job import drain

NOW_DAY = date(2026, 11, 27)  # the FakeClock's day; it stands at 12:00 UTC
YESTERDAY = NOW_DAY - timedelta(days=1)
DS = Datasets("tmp_ndt", "raw_ndt", "ndt")
ROOT_MAIN = __import__("pathlib").Path(__file__).resolve().parents[2] / "functions" / "main.py"


@pytest.fixture
def config(bucket: str) -> Config:
    """Two sources, ndt/a (daily and historical) and ndt/b, history from a week ago."""
    sources = tuple(Source(bucket, "ndt", dt, "", DS) for dt in ("a", "b"))
    return Config(
        start_date=NOW_DAY - timedelta(days=7),
        tracker_timeout=timedelta(hours=6),
        polling_interval=timedelta(minutes=1),
        sources=sources,
    )


def put_files(gcs_client, bucket: str, datatype: str, *days: date) -> list[str]:
    b = gcs_client.bucket(bucket)
    for day in days:
        b.blob(f"ndt/{datatype}/{day:%Y/%m/%d}/20190102T000000Z-archive.tgz").upload_from_string(
            b"x"
        )
    return [Job(bucket, "ndt", datatype, day).key() for day in days]


@pytest.fixture
def snapshots(gcs_client):
    name = f"snap-{uuid.uuid4().hex[:12]}"
    return gcs_client.create_bucket(name)


@pytest.fixture
def admin(tracker, firestore_client, config, gcs_client, snapshots, clock):
    from shared.snapshot import load_snapshot, write_snapshot

    def export(now):
        import dataclasses

        return dataclasses.asdict(write_snapshot(tracker.store, snapshots, now))

    return Admin(
        tracker,
        ReprocessQueue(firestore_client),
        ControlStore(firestore_client),
        config,
        export=export,
        load=lambda src: load_snapshot(src, gcs_client),
        max_reprocess=20,
    )


@pytest.fixture
def service(tracker, firestore_client, gcs_client, config, clock):
    def make() -> JobService:
        return JobService(
            tracker,
            CursorStore(firestore_client),
            ArchiveLister(gcs_client),
            config,
            clock=clock,
            queue=ReprocessQueue(firestore_client),
            controls=ControlStore(firestore_client),
        )

    return make


@pytest.fixture
def api(admin, tracker, monkeypatch):
    """A Flask test client of the ``api`` router, its admin wired to this test's stores."""
    from functions_framework import create_app

    from shared import runtime

    monkeypatch.setattr(runtime, "tracker", lambda: tracker)
    monkeypatch.setattr(runtime, "admin", lambda: admin)
    monkeypatch.setattr(runtime, "controls", lambda: admin.controls)
    return create_app("api", str(ROOT_MAIN)).test_client()


def everything(firestore_client) -> dict[str, dict[str, Any]]:
    """Every document of the test's project, by collection and id."""
    return {c.id: {d.id: d.to_dict() for d in c.stream()} for c in firestore_client.collections()}


def add(tracker: Tracker, bucket: str, datatype: str, day: date, *states: State) -> str:
    key = tracker.add_job(Job(bucket, "ndt", datatype, day, "", DS)).key
    for state in states:
        if state is State.FAILED:
            tracker.set_job_error(key, "parser died")
        else:
            tracker.set_status(key, state)
    return key


OP = {"X-Operator": "alice"}
#: Who a request with only OP is recorded as: the header is a claim no one verified.
ALICE = "alice (unverified)"
MALLORY = {
    "iss": "https://accounts.google.com",
    "aud": f"https://{HOST}",
    "email": "mallory@example.org",
    "email_verified": True,
    "iat": 1,
    "exp": 9999999999,
}


# --- looking ---------------------------------------------------------------------------------


def test_list_and_filter_jobs(api, tracker, bucket, clock):
    k1 = add(tracker, bucket, "a", NOW_DAY - timedelta(days=5), State.PARSING)
    clock.advance(seconds=1)
    k2 = add(tracker, bucket, "b", NOW_DAY - timedelta(days=3), State.FAILED)
    clock.advance(seconds=1)
    k3 = add(tracker, bucket, "a", NOW_DAY - timedelta(days=1))

    body = api.get("/admin/jobs").get_json()
    assert [j["ID"] for j in body["Jobs"]] == [k1, k2, k3] and body["Shown"] == 3
    assert [j["ID"] for j in api.get("/admin/jobs?state=failed").get_json()["Jobs"]] == [k2]
    assert [j["ID"] for j in api.get("/admin/jobs?datatype=a").get_json()["Jobs"]] == [k1, k3]
    ranged = api.get(f"/admin/jobs?from={NOW_DAY - timedelta(days=4)}&to={NOW_DAY}").get_json()
    assert [j["ID"] for j in ranged["Jobs"]] == [k2, k3]
    both = api.get(f"/admin/jobs?from={NOW_DAY - timedelta(days=6)}&datatype=a&limit=1").get_json()
    assert [j["ID"] for j in both["Jobs"]] == [k1]


@pytest.mark.parametrize(
    ("query", "status", "where"),
    [
        ("state=nope", 400, "state"),
        ("limit=0", 400, "limit"),
        ("from=2026-13-01", 400, "from"),
        ("from=2026-01-05&to=2026-01-01", 400, "to"),
        ("experiment=a%20b", 400, "experiment"),
    ],
)
def test_bad_list_filters_answer_400_naming_the_field(api, query, status, where):
    response = api.get(f"/admin/jobs?{query}")
    assert response.status_code == status and where in response.get_json()["fields"]


def test_show_one_job_with_history_and_audit(api, tracker, bucket):
    key = add(tracker, bucket, "a", YESTERDAY, State.PARSING)
    body = api.get(f"/admin/job?id={key}").get_json()
    assert body["ID"] == key and body["State"] == "parsing" and body["Audit"] == []
    assert [h["State"] for h in body["Status"]["History"]] == ["init", "parsing"]
    assert api.get("/admin/job").status_code == 422
    assert api.get("/admin/job?id=nope").status_code == 400
    assert api.get(f"/admin/job?id={key[:-1]}9").status_code in (400, 410)
    assert api.get(f"/admin/job?id={bucket}/ndt/a/20000101").status_code == 410


# --- retry and fail --------------------------------------------------------------------------


def test_retry_makes_a_failed_job_due_now_and_is_audited(
    api, tracker, bucket, clock, service, gcs_client
):
    put_files(gcs_client, bucket, "a", YESTERDAY)
    key = add(tracker, bucket, "a", YESTERDAY, State.FAILED)
    assert tracker.get_record(key).retry_at > clock()  # in its backoff
    response = api.post(f"/admin/job/retry?id={key}", headers=OP)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["RetryAt"] == body["Audit"][-1]["Time"]
    assert body["Audit"][-1] | {"Time": ""} == {
        "Time": "",
        "Who": ALICE,
        "Action": "retry",
        "Detail": "due now as attempt 2",
    }
    again = service().next_job()
    assert again is not None and again.key == key and again.offer == "retry/2"
    assert (
        again.attempts == 2 and again.audit[-1].action == "retry"
    )  # the audit survives the restart


@pytest.mark.parametrize(
    ("states", "hint"), [((State.PARSING,), "mark it failed first"), ((), "mark it failed first")]
)
def test_retry_of_a_job_that_has_not_failed_is_refused_and_writes_nothing(
    api, tracker, bucket, firestore_client, states, hint
):
    key = add(tracker, bucket, "a", YESTERDAY, *states)
    before = everything(firestore_client)
    response = api.post(f"/admin/job/retry?id={key}", headers=OP)
    assert response.status_code == 409 and hint in response.get_json()["error"]
    assert "not failed" in response.get_json()["error"]
    assert everything(firestore_client) == before


def test_fail_marks_a_job_in_flight_failed_with_the_reason(api, tracker, bucket, service, clock):
    key = add(tracker, bucket, "a", YESTERDAY, State.PARSING)
    response = api.post(f"/admin/job/fail?id={key}&reason=bad+archive", headers=OP)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["State"] == "failed" and body["Previous"] == "parsing"
    assert body["Error"] == f"parsing: failed by {ALICE}: bad archive"
    assert body["RetryAt"] is None
    assert (
        body["Audit"][-1]["Who"] == ALICE
        and body["Audit"][-1]["Detail"] == "in parsing: bad archive"
    )
    clock.advance(hours=5)
    assert tracker.retryable(clock(), 10) == []  # not retried by itself
    # The parser's late update is refused: the job is terminal.
    assert api.post(f"/v2/job/update?id={key}&state=parsing").status_code == 409


@pytest.mark.parametrize("final", [State.FAILED, State.COMPLETE])
def test_fail_of_a_terminal_job_answers_409_naming_the_states(
    api, tracker, bucket, firestore_client, final
):
    path = (
        (State.FAILED,)
        if final is State.FAILED
        else (State.PARSING, State.POST_PROCESSING, State.COMPLETE)
    )
    key = add(tracker, bucket, "a", YESTERDAY, *path)
    before = everything(firestore_client)
    response = api.post(f"/admin/job/fail?id={key}&reason=x", headers=OP)
    assert response.status_code == 409
    assert (
        f"is {final.value}" in response.get_json()["error"]
        and "failed" in response.get_json()["error"]
    )
    assert everything(firestore_client) == before


@pytest.mark.parametrize(
    ("query", "status"),
    [("", 422), ("id=x&reason=r", 400), ("id={key}", 400), ("id={key}&reason=" + "r" * 5000, 400)],
)
def test_bad_fail_requests_write_nothing(api, tracker, bucket, firestore_client, query, status):
    key = add(tracker, bucket, "a", YESTERDAY, State.PARSING)
    before = everything(firestore_client)
    assert api.post(f"/admin/job/fail?{query.format(key=key)}").status_code == status
    assert everything(firestore_client) == before


@pytest.mark.parametrize(
    ("headers", "deployed", "status", "who"),
    [
        ({"Authorization": f"Bearer {signed()}", **OP}, True, 200, "ops@example.org"),
        ({"Authorization": f"Bearer {unsigned(MALLORY)}", **OP}, True, 401, None),
        (
            {"Authorization": f"Bearer {signed(OTHER_KEY, email='mallory@example.org')}"},
            True,
            401,
            None,
        ),
        ({"Authorization": f"Bearer {signed(aud='https://other.a.run.app')}"}, True, 401, None),
        (OP, False, 200, "alice (unverified)"),
        ({}, True, 200, "anonymous"),
    ],
    ids=[
        "signed",
        "unsigned-mallory",
        "mallory-signed-by-another-key",
        "another-audience",
        "header",
        "nothing-deployed",
    ],
)
def test_only_a_verified_id_token_names_the_operator(
    api, tracker, bucket, firestore_client, monkeypatch, headers, deployed, status, who
):
    """An ID token is verified against Google's certificates (here: a key made by the test)."""
    from shared.web import identity

    monkeypatch.setattr(identity, "google_certs", lambda: CERTS)
    if deployed:
        monkeypatch.setenv("K_SERVICE", "admin")
    else:
        monkeypatch.delenv("K_SERVICE", raising=False)
    key = add(tracker, bucket, "a", NOW_DAY - timedelta(days=1), State.PARSING)
    before = everything(firestore_client)
    response = api.post(f"/admin/job/fail?id={key}&reason=r", headers={"Host": HOST, **headers})
    assert response.status_code == status
    if who is None:
        assert "the ID token is not valid" in response.get_json()["error"]
        assert everything(firestore_client) == before
    else:
        assert tracker.get_record(key).audit[-1].who == who


#: A person's gcloud token as Cloud Run passes it on: verified, its signature replaced.
CHECKED_BY_CLOUD_RUN = (
    signed(aud="32555940559.apps.googleusercontent.com").rsplit(".", 1)[0]
    + ".SIGNATURE_REMOVED_BY_GOOGLE"
)


@pytest.mark.parametrize(
    ("iap", "headers", "status", "who"),
    [
        (
            True,
            {"X-Goog-IAP-JWT-Assertion": iap_signed(email="ann@example.org")},
            200,
            "ann@example.org",
        ),
        (True, {"Authorization": f"Bearer {signed()}", **OP}, 401, "did not come through IAP"),
        (
            True,
            {"X-Goog-IAP-JWT-Assertion": iap_signed(aud="/projects/1/locations/r/services/s")},
            401,
            "is not this service",
        ),
        (False, {"X-Goog-IAP-JWT-Assertion": iap_signed()}, 401, "IAP_AUDIENCE is unset"),
        (
            False,
            {"Authorization": f"Bearer {signed(aud='32555940559.apps.googleusercontent.com')}"},
            200,
            "ops@example.org",
        ),
        (
            False,
            {
                "Authorization": f"Bearer {signed(email='sa@p.iam.gserviceaccount.com')}",
                "X-Operator": "ann@example.org",
            },
            200,
            "sa@p.iam.gserviceaccount.com for ann@example.org (claimed)",
        ),
        (
            False,
            {"Authorization": f"Bearer {CHECKED_BY_CLOUD_RUN}"},
            200,
            "ops@example.org",
        ),
        (
            False,
            {
                "Authorization": f"Bearer {signed(email='mallory@example.org')}",
                "X-Serverless-Authorization": f"Bearer {CHECKED_BY_CLOUD_RUN}",
            },
            200,
            "ops@example.org",
        ),
    ],
    ids=[
        "iap",
        "iap-header-missing",
        "iap-wrong-audience",
        "iap-not-configured",
        "gcloud-token",
        "sa-for-a-person",
        "gcloud-token-as-cloud-run-passes-it",
        "the-token-cloud-run-checked-wins",
    ],
)
def test_iap_and_a_persons_own_token_name_the_operator(
    api, tracker, bucket, firestore_client, monkeypatch, iap, headers, status, who
):
    """Behind IAP only its verified assertion names the operator; a refusal changes nothing."""
    from shared import runtime
    from shared.runtime import Settings
    from shared.web import identity

    monkeypatch.setattr(identity, "google_certs", lambda: CERTS)
    monkeypatch.setattr(identity, "iap_keys", lambda: IAP_KEYS)
    monkeypatch.setattr(
        runtime, "settings", lambda: Settings(iap_audience=IAP_AUDIENCE if iap else "")
    )
    monkeypatch.setenv("K_SERVICE", "admin")
    key = add(tracker, bucket, "a", NOW_DAY - timedelta(days=1), State.PARSING)
    before = everything(firestore_client)
    response = api.post(f"/admin/job/fail?id={key}&reason=r", headers={"Host": HOST, **headers})
    assert response.status_code == status, response.get_json()
    if status == 401:
        assert who in response.get_json()["error"]
        assert everything(firestore_client) == before
    else:
        assert tracker.get_record(key).audit[-1].who == who


# --- reprocessing ---------------------------------------------------------------------------


def test_reprocessing_goes_after_daily_and_before_historical_and_restarts_finished_jobs(
    api, tracker, bucket, service, gcs_client
):
    old = [NOW_DAY - timedelta(days=d) for d in (6, 5, 4)]
    put_files(gcs_client, bucket, "a", YESTERDAY, *old)
    put_files(gcs_client, bucket, "b", *old)
    done = add(tracker, bucket, "b", old[1], State.PARSING, State.POST_PROCESSING, State.COMPLETE)
    failed = add(tracker, bucket, "b", old[2], State.FAILED)  # in its retry backoff

    response = api.post(f"/admin/reprocess?from={old[1]}&to={old[2]}&sources=ndt/b", headers=OP)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["Queued"] == 2 and response.get_json()["Jobs"] == [done, failed]
    again = api.post(f"/admin/reprocess?from={old[1]}&to={old[2]}&sources=ndt/b", headers=OP)
    assert again.get_json() | {"Time": ""} == {
        "Queued": 0,
        "AlreadyQueued": 2,
        "Jobs": [],
        "Who": ALICE,
        "Time": "",
    }

    handed = drain(service())
    daily = Job(bucket, "ndt", "a", YESTERDAY).key()
    assert handed[:3] == [daily, done, failed]  # daily, then the queue, then history
    assert set(handed[3:]) == (
        {Job(bucket, "ndt", dt, d).key() for dt in "ab" for d in old} - {done, failed}
    )
    restarted = tracker.get_record(done)
    assert restarted.status.state is State.INIT and restarted.offer.startswith("reprocess/")
    assert restarted.audit[-1].who == ALICE and restarted.audit[-1].action == "reprocess"
    assert tracker.get_record(failed).attempts == 2
    assert api.get("/admin/controls").get_json()["ReprocessQueued"] == 0


def test_queued_reprocessing_is_handed_out_once_under_concurrent_callers(
    admin, tracker, bucket, service, gcs_client, clock
):
    days = [NOW_DAY - timedelta(days=d) for d in range(2, 8)]
    keys = set(
        put_files(gcs_client, bucket, "a", *days) + put_files(gcs_client, bucket, "b", *days)
    )
    for key in keys:  # everything ran once already
        tracker.add_job(Job.from_key(key))
        for state in (State.PARSING, State.POST_PROCESSING, State.COMPLETE):
            tracker.set_status(key, state)
    admin.reprocess(days[-1], days[0], [], "alice")

    handed: list[str] = []
    lock = threading.Lock()

    def caller() -> None:
        svc = service()
        while True:
            record = svc.next_job()
            if record is None or not record.offer.startswith("reprocess/"):
                return
            with lock:
                handed.append(record.key)

    threads = [threading.Thread(target=caller) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(handed) == sorted(keys)  # every queued job once, none twice
    assert admin.queue.count() == 0


def test_reprocessing_a_job_in_flight_offers_it_again_when_it_ends(
    admin, tracker, bucket, service, gcs_client
):
    day = NOW_DAY - timedelta(days=3)
    put_files(gcs_client, bucket, "a", day)
    key = add(tracker, bucket, "a", day, State.PARSING)
    admin.reprocess(day, day, ["ndt/a"], "alice")
    svc = service()
    assert svc.next_job() is None  # the queue item turns into a re-offer
    assert tracker.get_record(key).reoffer.startswith("reprocess/")
    assert admin.queue.count() == 0
    for state in (State.POST_PROCESSING, State.COMPLETE):
        tracker.set_status(key, state)
    again = svc.next_job()
    assert again is not None and again.key == key and again.offer.startswith("reprocess/")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("from=2026-11-20&to=2026-11-21&sources=ndt/zz", "unknown sources ndt/zz"),
        ("from=2026-11-20&to=2026-11-27", "must be yesterday"),
        ("from=2026-10-01&to=2026-11-20", "at most 20 per request"),
        ("from=2026-11-21&to=2026-11-20", "after to"),
        ("from=2026-11-20", "to"),
        ("from=2026-11-20&to=2026-11-21&sources=ndt", "experiment/datatype"),
    ],
)
def test_bad_reprocessing_requests_answer_400_and_queue_nothing(
    api, firestore_client, query, message
):
    response = api.post(f"/admin/reprocess?{query}", headers=OP)
    assert response.status_code == 400 and message in json.dumps(response.get_json())
    assert everything(firestore_client) == {}


# --- cancelling reprocessing ------------------------------------------------------------------


def reprocess_handouts(service: JobService) -> list[str]:
    """Call next-job until it hands out something other than queued reprocessing."""
    keys = []
    while (record := service.next_job()) is not None and record.offer.startswith("reprocess/"):
        keys.append(record.key)
    return keys


def test_cancelling_a_sub_range_removes_only_those_and_again_removes_nothing(
    api, bucket, service, gcs_client, caplog
):
    days = [NOW_DAY - timedelta(days=d) for d in (13, 12, 11, 10)]  # before the history starts
    put_files(gcs_client, bucket, "a", *days)
    put_files(gcs_client, bucket, "b", *days)
    queued = api.post(f"/admin/reprocess?from={days[0]}&to={days[-1]}", headers=OP).get_json()
    assert queued["Queued"] == 8

    with caplog.at_level(logging.INFO, logger="shared.admin"):
        response = api.post(
            f"/admin/reprocess/cancel?from={days[1]}&to={days[2]}&sources=ndt/b",
            headers={"X-Operator": "bob"},
        )
    assert response.status_code == 200, response.get_json()
    gone = [Job(bucket, "ndt", "b", d).key() for d in days[1:3]]
    assert response.get_json() | {"Time": ""} == {
        "Cancelled": 2,
        "HandedOut": 0,
        "Jobs": gone,
        "Who": "bob (unverified)",
        "Time": "",
    }
    assert (
        f"bob (unverified) cancelled 2 queued reprocessing jobs ({days[1]} to {days[2]}, ndt/b)"
        in caplog.text
    )
    again = api.post(
        f"/admin/reprocess/cancel?from={days[1]}&to={days[2]}&sources=ndt/b",
        headers={"X-Operator": "bob"},
    ).get_json()
    assert (again["Cancelled"], again["Jobs"]) == (0, [])
    assert api.get("/admin/controls").get_json()["ReprocessQueued"] == 6

    assert reprocess_handouts(service()) == [k for k in queued["Jobs"] if k not in gone]
    everything_left = api.post(
        f"/admin/reprocess/cancel?from={days[0]}&to={days[-1]}", headers=OP
    ).get_json()
    assert everything_left["Cancelled"] == 0  # all handed out: nothing to take back


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("from=2026-11-20&to=2026-11-21&sources=ndt/zz", "unknown sources ndt/zz"),
        ("from=2026-11-20&to=2026-11-27", "must be yesterday"),
        ("from=2026-10-01&to=2026-11-20", "at most 20 per request"),
        ("from=2026-11-21&to=2026-11-20", "after to"),
        ("to=2026-11-20", "from"),
        ("from=2026-11-20&to=2026-11-21&sources=ndt/a,", "experiment/datatype"),
    ],
)
def test_bad_cancel_requests_answer_400_and_change_nothing(api, firestore_client, query, message):
    assert api.post("/admin/reprocess?from=2026-11-20&to=2026-11-22", headers=OP).status_code == 200
    before = everything(firestore_client)
    response = api.post(f"/admin/reprocess/cancel?{query}", headers=OP)
    assert response.status_code == 400 and message in json.dumps(response.get_json())
    assert everything(firestore_client) == before
    assert api.get("/admin/reprocess/cancel?from=2026-11-20&to=2026-11-20").status_code == 405
    assert everything(firestore_client) == before


def test_cancel_racing_with_next_job_hands_out_or_cancels_each_item_once(
    admin, tracker, bucket, service, gcs_client, config
):
    days = [NOW_DAY - timedelta(days=d) for d in range(10, 40)]  # before the history starts
    keys = set(
        put_files(gcs_client, bucket, "a", *days) + put_files(gcs_client, bucket, "b", *days)
    )
    wide = Admin(tracker, admin.queue, admin.controls, config, max_reprocess=100)
    assert len(wide.reprocess(days[-1], days[0], [], "alice").queued) == len(keys) == 60

    handed: list[str] = []
    answers: list[Cancellation] = []
    progress = threading.Condition()

    def caller() -> None:
        svc = service()
        while (record := svc.next_job()) is not None and record.offer.startswith("reprocess/"):
            with progress:
                handed.append(record.key)
                progress.notify_all()
        with progress:
            progress.notify_all()

    def cancel() -> None:  # in the middle of the hand-outs
        with progress:
            progress.wait_for(lambda: len(handed) >= 10, timeout=60)
        answers.append(wide.cancel_reprocess(days[-1], days[0], [], "bob"))

    threads = [threading.Thread(target=caller) for _ in range(6)] + [
        threading.Thread(target=cancel)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    cancelled = answers[0].cancelled
    assert len(handed) == len(set(handed))  # none handed out twice
    assert not set(handed) & set(cancelled)  # none both handed out and cancelled
    assert set(handed) | set(cancelled) == keys  # every item one or the other
    assert len(answers[0].handed_out) <= len(handed)
    assert all(tracker.store.get(k) is None for k in cancelled)  # never started
    assert all(tracker.get_record(k).offer.startswith("reprocess/") for k in handed)
    assert admin.queue.count() == 0


def test_cancel_leaves_an_item_claimed_by_next_job_and_a_stale_claim_is_handed_out(
    admin, tracker, bucket, service, gcs_client, clock
):
    day = NOW_DAY - timedelta(days=12)
    put_files(gcs_client, bucket, "a", day)
    admin.reprocess(day, day, ["ndt/a"], "alice")
    [item] = admin.queue.head(["ndt/a"], 10)
    claimed = admin.queue.claim(item, clock())  # as next-job does, then it died
    assert claimed is not None and admin.queue.claim(item, clock()) is None  # the old read lost
    answer = admin.cancel_reprocess(day, day, [], "bob")
    assert (len(answer.cancelled), len(answer.handed_out)) == (0, 1)
    record = service().next_job()
    assert (
        record is not None and record.key == item.key and record.offer == f"reprocess/{item.token}"
    )
    assert admin.queue.count() == 0

    admin.reprocess(day, day, ["ndt/a"], "alice")
    [queued] = admin.queue.head(["ndt/a"], 10)
    assert len(admin.cancel_reprocess(day, day, [], "bob").cancelled) == 1
    assert admin.queue.claim(queued, clock()) is None  # next-job's claim after the cancel loses


def test_cancel_deletes_in_batches_of_at_most_the_batch_limit(firestore_client, monkeypatch, clock):
    from shared.store import reprocess

    monkeypatch.setattr(reprocess, "MAX_BATCH", 4)
    queue = ReprocessQueue(firestore_client)
    jobs = [Job("b", "ndt", "a", NOW_DAY - timedelta(days=d)) for d in range(1, 11)]
    queue.add([ReprocessItem.new(j, "alice", clock(), n) for n, j in enumerate(jobs)])
    sizes: list[int] = []
    real_batch = firestore_client.batch

    def batch():
        b = real_batch()
        commit = b.commit

        def counted(*args, **kwargs):
            results = commit(*args, **kwargs)
            sizes.append(len(results))
            return results

        b.commit = counted
        return b

    monkeypatch.setattr(firestore_client, "batch", batch)
    cancelled, handed_out = queue.cancel([j.key() for j in jobs] + ["b/ndt/a/20200101"])
    assert cancelled == [j.key() for j in jobs] and handed_out == []
    assert sizes == [4, 4, 2] and queue.count() == 0


# --- pauses ---------------------------------------------------------------------------------


def test_pausing_history_stops_the_historical_stream_until_resumed(
    api, bucket, service, gcs_client
):
    day = NOW_DAY - timedelta(days=5)
    put_files(gcs_client, bucket, "a", YESTERDAY, day)
    assert (
        api.post("/admin/pause?target=historical&reason=backfill+later", headers=OP).status_code
        == 200
    )
    assert drain(service()) == [Job(bucket, "ndt", "a", YESTERDAY).key()]  # daily goes on
    controls = api.get("/admin/controls").get_json()
    assert (
        controls["Historical"]["Who"] == ALICE
        and controls["Historical"]["Reason"] == "backfill later"
    )
    status = api.get("/status?format=json").get_json()
    assert [(p["Target"], p["Who"]) for p in status["Paused"]] == [("historical", ALICE)]
    assert "Paused:</strong> the historical cycle, by alice" in api.get("/status").get_data(
        as_text=True
    )
    assert api.post("/admin/resume?target=historical", headers=OP).status_code == 200
    assert drain(service()) == [Job(bucket, "ndt", "a", day).key()]


def test_pausing_a_source_defers_its_daily_job_and_skips_its_history(
    api, tracker, bucket, service, gcs_client
):
    day = NOW_DAY - timedelta(days=5)
    put_files(gcs_client, bucket, "a", YESTERDAY, day)
    put_files(gcs_client, bucket, "b", YESTERDAY, day)
    assert api.post("/admin/pause?target=ndt/a", headers=OP).status_code == 200
    assert drain(service()) == [Job(bucket, "ndt", "b", d).key() for d in (YESTERDAY, day)]
    assert api.get("/admin/controls").get_json()["ReprocessQueued"] == 1  # a's daily, deferred
    assert api.post("/admin/resume?target=ndt/a", headers=OP).status_code == 200
    # The deferred daily job comes from the queue; a's history waits for the next cycle.
    assert drain(service())[0] == Job(bucket, "ndt", "a", YESTERDAY).key()


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/admin/pause?target=ndt/zz", 400, "unknown pause target"),
        ("/admin/pause?target=a/b/c", 400, "historical or experiment/datatype"),
        ("/admin/pause", 400, "target"),
        ("/admin/resume?target=historical", 409, "not paused"),
    ],
)
def test_bad_pause_requests_write_nothing(api, firestore_client, path, status, message):
    response = api.post(path, headers=OP)
    assert response.status_code == status and message in json.dumps(response.get_json())
    assert everything(firestore_client) == {}


def test_pausing_again_changes_the_reason_and_keeps_who_paused_and_since(api, clock, caplog):
    first = api.post("/admin/pause?target=ndt/b&reason=quota", headers=OP).get_json()
    assert "PreviousReason" not in first
    clock.advance(minutes=5)
    with caplog.at_level(logging.INFO, logger="shared.admin"):
        response = api.post(
            "/admin/pause?target=ndt/b&reason=quota+until+Monday", headers={"X-Operator": "bob"}
        )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    changed = {"Reason": "quota until Monday", "ReasonBy": "bob (unverified)"}
    assert body["Paused"] == first["Paused"] | changed | {"ReasonAt": body["Paused"]["ReasonAt"]}
    assert body["Paused"]["ReasonAt"] != first["Paused"]["Since"]  # five minutes later
    assert body["PreviousReason"] == "quota" and body["UpdatedBy"] == "bob (unverified)"
    assert "bob (unverified) changed the reason of the pause of ndt/b" in caplog.text
    controls = api.get("/admin/controls").get_json()
    paused = {s["Source"]: s["Paused"] for s in controls["Sources"]}["ndt/b"]
    assert paused["Reason"] == "quota until Monday" and paused["Who"] == ALICE
    assert paused["ReasonBy"] == "bob (unverified)"  # stored, not only answered
    # Paused again without a reason: nothing changes, who changed the reason stays.
    again = api.post("/admin/pause?target=ndt/b", headers={"X-Operator": "carol"}).get_json()
    assert again["Paused"] == paused and "PreviousReason" not in again


def test_pauses_reason_changes_and_resumes_of_one_target_happen_one_after_another(
    firestore_client,
):
    """Pauses (or changes of the reason) and a resume at once: the resume always finds the
    pause, and what is in force at the end is what the last action left."""
    controls = ControlStore(firestore_client)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    for round_ in range(8):
        controls.pause(Pause("ndt/a", "alice", now, "quota"))
        with ThreadPoolExecutor(3) as pool:
            changes = [
                pool.submit(controls.pause, Pause("ndt/a", f"bob{i}", now, f"reason {i}"))
                for i in range(2)
            ]
            lifted = pool.submit(controls.resume, "ndt/a")
            results = [c.result() for c in changes]
        resumed = lifted.result()
        # The resume always finds a pause (it was paused before any of them ran).
        assert resumed is not None, round_
        in_force = {p.target: p for p in controls.all()}.get("ndt/a")
        for before, after in results:
            if before is None:  # paused anew after the resume: a fresh pause, no reason change
                assert after.who.startswith("bob") and after.reason_by == ""
            else:  # changed the reason of the pause in force
                assert after.who == before.who and after.reason_by.startswith("bob")
        fresh = [after for before, after in results if before is None]
        assert len(fresh) <= 1  # only one of them can create the pause anew
        assert (in_force is not None) == bool(fresh), (results, in_force)
        if in_force is not None:
            controls.resume("ndt/a")


# --- unknown sources, bulk retry and fail, finished jobs ----------------------------------------


@pytest.mark.parametrize(
    ("path", "fields"),
    [
        ("/admin/jobs?datatype=ndt8", ["datatype"]),
        ("/admin/jobs?experiment=wehe", ["experiment"]),
        ("/admin/jobs?experiment=ndt&datatype=zz", ["experiment", "datatype"]),
    ],
)
def test_a_filter_no_source_matches_answers_400_with_the_sources(
    api, tracker, bucket, path, fields
):
    add(tracker, bucket, "a", YESTERDAY, State.FAILED)
    response = api.get(path)
    assert response.status_code == 400, response.get_json()
    body = response.get_json()
    assert "the sources are ndt/a, ndt/b" in body["error"] and sorted(body["fields"]) == sorted(
        fields
    )
    for method in ("retry", "fail"):
        refused = api.post(path.replace("/admin/jobs", f"/admin/jobs/{method}") + "&reason=r")
        assert refused.status_code == 400 and "ndt/a, ndt/b" in refused.get_json()["error"]
    assert api.get("/admin/jobs?datatype=a").status_code == 200


def test_bulk_retry_dry_run_lists_the_jobs_and_writes_nothing(
    api, tracker, bucket, firestore_client
):
    k1 = add(tracker, bucket, "a", YESTERDAY - timedelta(days=1), State.FAILED)
    k2 = add(tracker, bucket, "b", YESTERDAY, State.FAILED)
    parsing = add(tracker, bucket, "a", YESTERDAY, State.PARSING)
    before = everything(firestore_client)
    response = api.post("/admin/jobs/retry?state=failed&dry_run=true", headers=OP)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["DryRun"] is True and sorted(body["Changed"]) == sorted([k1, k2])
    assert body["Matched"] == 2 and body["Unchanged"] == []
    # A job the real run would refuse is listed as such, with the real run's reason.
    body = api.post("/admin/jobs/retry?datatype=a&dry_run=true", headers=OP).get_json()
    assert body["Changed"] == [k1] and [u["ID"] for u in body["Unchanged"]] == [parsing]
    assert "not failed" in body["Unchanged"][0]["Why"]
    assert everything(firestore_client) == before


def test_bulk_retry_changes_each_job_alone_and_says_why_others_were_left(
    api, tracker, bucket, clock
):
    failed = add(tracker, bucket, "a", YESTERDAY - timedelta(days=2), State.FAILED)
    parsing = add(tracker, bucket, "a", YESTERDAY - timedelta(days=1), State.PARSING)
    other = add(tracker, bucket, "b", YESTERDAY - timedelta(days=1), State.FAILED)
    response = api.post(
        f"/admin/jobs/retry?datatype=a&from={YESTERDAY - timedelta(days=3)}&to={YESTERDAY}",
        headers=OP,
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["Changed"] == [failed] and body["DryRun"] is False
    assert [u["ID"] for u in body["Unchanged"]] == [parsing]
    assert "not failed" in body["Unchanged"][0]["Why"]
    assert tracker.get_record(failed).retry_at == clock()
    assert tracker.get_record(failed).audit[-1].action == "retry"
    assert tracker.get_record(parsing).status.state is State.PARSING
    assert tracker.get_record(other).retry_at != clock()  # another datatype: untouched


def test_bulk_fail_fails_each_job_in_flight_with_the_reason(api, tracker, bucket):
    parsing = add(tracker, bucket, "a", YESTERDAY, State.PARSING)
    done = add(tracker, bucket, "b", YESTERDAY, State.PARSING, State.POST_PROCESSING)
    done_already = add(tracker, bucket, "a", YESTERDAY - timedelta(days=1), State.FAILED)
    response = api.post(
        f"/admin/jobs/fail?from={YESTERDAY - timedelta(days=1)}&reason=bad+batch", headers=OP
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert sorted(body["Changed"]) == sorted([parsing, done])
    assert body["Unchanged"] == [
        {
            "ID": done_already,
            "Why": f"job {done_already} is failed already, so there is nothing to fail; "
            f"to run it again: gardener retry {done_already}",
        }
    ]
    for key in (parsing, done):
        record = tracker.get_record(key)
        assert record.status.state is State.FAILED and record.audit[-1].detail.endswith("bad batch")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("reason=x", "state"),  # no filter at all: refused rather than every job
        ("state=failed&limit=501", "limit"),
        ("state=failed&from=2026-01-05&to=2026-01-01", "to"),
        ("state=failed&dry_run=maybe", "dry_run"),
    ],
)
def test_bad_bulk_requests_answer_400_and_write_nothing(
    api, tracker, bucket, firestore_client, query, field
):
    add(tracker, bucket, "a", YESTERDAY, State.FAILED)
    before = everything(firestore_client)
    for method in ("retry", "fail"):
        response = api.post(f"/admin/jobs/{method}?{query}", headers=OP)
        assert response.status_code == 400 and field in response.get_json()["fields"]
    response = api.post("/admin/jobs/fail?state=parsing", headers=OP)
    assert response.status_code == 400 and "reason" in response.get_json()["error"]
    assert everything(firestore_client) == before


def test_a_bulk_write_refuses_a_filter_matching_more_than_its_limit_and_a_misspelt_dry_run(
    api, tracker, bucket, firestore_client
):
    for days in range(3):
        add(tracker, bucket, "a", YESTERDAY - timedelta(days=days), State.FAILED)
    before = everything(firestore_client)
    response = api.post("/admin/jobs/retry?state=failed&limit=2", headers=OP)
    assert response.status_code == 400
    assert "more than 2 jobs match; nothing was changed" in response.get_json()["error"]
    # The CLI flag's spelling is not the parameter's: refused, not a real run.
    response = api.post("/admin/jobs/fail?state=failed&reason=x&dry-run=true", headers=OP)
    assert response.status_code == 400 and "dry-run" in response.get_json()["fields"]
    assert everything(firestore_client) == before
    assert api.post("/admin/jobs/retry?state=failed&limit=3", headers=OP).status_code == 200


def test_pausing_again_without_a_reason_keeps_the_reason(api):
    api.post("/admin/pause?target=ndt/b&reason=quota", headers=OP)
    response = api.post("/admin/pause?target=ndt/b", headers=OP)
    assert response.status_code == 200 and response.get_json()["Paused"]["Reason"] == "quota"
    controls = api.get("/admin/controls").get_json()
    assert {s["Source"]: s["Paused"] for s in controls["Sources"]}["ndt/b"]["Reason"] == "quota"


def test_a_heartbeat_to_a_finished_job_says_to_stop_and_what_runs_it_again(api, tracker, bucket):
    done = add(
        tracker, bucket, "a", YESTERDAY, State.PARSING, State.POST_PROCESSING, State.COMPLETE
    )
    failed = add(tracker, bucket, "b", YESTERDAY, State.FAILED)
    for key, command in ((done, "gardener reprocess"), (failed, "gardener retry")):
        response = api.post(f"/v2/job/heartbeat?id={key}")
        assert response.status_code == 409
        error = response.get_json()["error"]
        assert "nothing to keep alive" in error and "ask for the next job" in error
        assert command in error


# --- snapshots, methods, paths -------------------------------------------------------------


def test_export_now_and_import_from_gcs(api, tracker, bucket, snapshots, firestore_client):
    add(tracker, bucket, "a", YESTERDAY, State.PARSING)
    body = api.post("/admin/snapshot/export", headers=OP).get_json()
    assert body["jobs"] == 1 and body["Who"] == ALICE and snapshots.get_blob(body["object"])
    imported = api.post(
        f"/admin/snapshot/import?source=gs://{snapshots.name}/{body['latest']}", headers=OP
    ).get_json()
    assert imported["Total"] == 1 and imported["Created"] == 0 and imported["AlreadyPresent"] == 1

    snapshots.blob("bad.json").upload_from_string(b'{"Statuses": {"x": 1}}')
    before = everything(firestore_client)
    refused = api.post(f"/admin/snapshot/import?source=gs://{snapshots.name}/bad.json")
    assert refused.status_code == 400 and refused.get_json()["fields"]["problems"]
    assert (
        api.post(f"/admin/snapshot/import?source=gs://{snapshots.name}/none.json").status_code
        == 400
    )
    assert api.post("/admin/snapshot/import?source=/etc/passwd").status_code == 400
    assert everything(firestore_client) == before


def test_an_import_stopped_mid_way_answers_503_with_what_was_written(
    api, tracker, bucket, snapshots, monkeypatch
):
    from shared.errors import StoreUnavailable
    from shared.store import JobStore

    first = add(tracker, bucket, "a", YESTERDAY, State.PARSING)
    second = add(tracker, bucket, "b", YESTERDAY, State.PARSING)
    body = api.post("/admin/snapshot/export", headers=OP).get_json()
    for key in (first, second):
        tracker.store.delete(key)

    def failing(self: JobStore, records: list) -> list[str]:  # type: ignore[type-arg]
        raise StoreUnavailable("Firestore unavailable: deadline exceeded")

    monkeypatch.setattr(JobStore, "create_missing", failing)
    answer = api.post(
        f"/admin/snapshot/import?source=gs://{snapshots.name}/{body['object']}", headers=OP
    )
    assert answer.status_code == 503
    fields = answer.get_json()["fields"]
    assert fields["Created"] == [] and sorted(fields["NotWritten"]) == sorted([first, second])
    assert "import the same file again to finish" in answer.get_json()["error"]


def test_wrong_methods_and_unknown_admin_paths(api):
    response = api.get("/admin/job/retry?id=x")
    assert response.status_code == 405 and response.headers["Allow"] == "POST"
    assert api.post("/admin/jobs").status_code == 405
    assert api.get("/admin/nope").status_code == 404


def test_failing_a_leased_job_releases_the_lease_so_the_tick_writes_nothing(
    admin, tracker, bucket, clock
):
    from shared.tracker import LeaseLost

    key = add(tracker, bucket, "a", YESTERDAY, State.PARSING, State.POST_PROCESSING)
    claimed = tracker.claim(
        tracker.get_record(key), [State.POST_PROCESSING], "tick-1", clock() + timedelta(minutes=5)
    )
    assert claimed is not None
    admin.fail(key, "wrong table", "alice")
    with pytest.raises(LeaseLost):
        tracker.settle(key, "tick-1", lambda rec, now: tracker.move(rec, State.COMPLETE, "", now))
    record = tracker.get_record(key)
    assert record.status.state is State.FAILED and record.lease_owner == ""
