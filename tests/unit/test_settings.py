"""Deployment settings read from the environment."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.runtime import Settings
from shared.tracker import RetryPolicy


def test_defaults() -> None:
    s = Settings.from_env({})
    assert s == Settings()
    assert s.retry == RetryPolicy(3, timedelta(minutes=10))
    assert s.cleanup_delay == timedelta(hours=3) and s.snapshot_bucket is None


def test_every_variable_is_read() -> None:
    s = Settings.from_env(
        {
            "GOOGLE_CLOUD_PROJECT": "p",
            "TRACKER_COLLECTION": "jobs2",
            "HEARTBEAT_COALESCE_SECONDS": "0.5",
            "RETRY_MAX_ATTEMPTS": "5",
            "RETRY_BACKOFF": "1h30m",
            "CLEANUP_DELAY": "10m",
            "SNAPSHOT_BUCKET": "snaps",
            "SNAPSHOT_PREFIX": "x/",
            "SNAPSHOT_KEEP": "7",
        }
    )
    assert s == Settings(
        "p",
        "jobs2",
        timedelta(seconds=0.5),
        RetryPolicy(5, timedelta(hours=1, minutes=30)),
        timedelta(minutes=10),
        "snaps",
        "x/",
        7,
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("HEARTBEAT_COALESCE_SECONDS", "soon"),
        ("HEARTBEAT_COALESCE_SECONDS", "-1"),
        ("RETRY_MAX_ATTEMPTS", "0"),
        ("RETRY_MAX_ATTEMPTS", "three"),
        ("RETRY_BACKOFF", "10"),
        ("CLEANUP_DELAY", "3 hours"),
        ("SNAPSHOT_KEEP", "0"),
    ],
)
def test_malformed_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name):
        Settings.from_env({name: value})


@pytest.mark.parametrize(
    ("attempts", "wait"),
    [(1, timedelta(minutes=10)), (2, timedelta(minutes=20)), (3, None), (4, None)],
)
def test_retry_policy_backoff_doubles_and_stops(attempts: int, wait: timedelta | None) -> None:
    from shared.model import ZERO_TIME

    at = RetryPolicy().retry_at(attempts, ZERO_TIME)
    assert (at - ZERO_TIME if at else None) == wait


def test_bigquery_location_defaults_to_us_and_is_checked() -> None:
    assert Settings.from_env({}).bigquery_location == "US"
    for where in ("EU", "us-central1", "europe-west4", "northamerica-northeast1"):
        assert Settings.from_env({"BIGQUERY_LOCATION": where}).bigquery_location == where
    for bad in ("u", "us central1", "US;", "us-", "eu/west"):
        with pytest.raises(ValueError, match="BIGQUERY_LOCATION"):
            Settings.from_env({"BIGQUERY_LOCATION": bad})


def test_bigquery_emulator_host_is_a_base_url() -> None:
    assert Settings.from_env({}).bigquery_emulator is None
    for url in ("http://127.0.0.1:9050", "http://localhost:9050/", "https://bq.test"):
        got = Settings.from_env({"BIGQUERY_EMULATOR_HOST": url}).bigquery_emulator
        assert got == url.rstrip("/")
    for bad in ("127.0.0.1:9050", "ftp://h", "http://h:9050/path", "http://h h", "http://h:0"):
        with pytest.raises(ValueError, match="BIGQUERY_EMULATOR_HOST"):
            Settings.from_env({"BIGQUERY_EMULATOR_HOST": bad})
    with pytest.raises(ValueError, match=r"BIGQUERY_EMULATOR_HOST.*port must be from 1 to 65535"):
        Settings.from_env({"BIGQUERY_EMULATOR_HOST": "http://127.0.0.1:99999"})


def test_bigquery_emulator_host_is_refused_on_cloud_run() -> None:
    # A deployed function would otherwise send its BigQuery work to that host, unauthenticated.
    env = {"BIGQUERY_EMULATOR_HOST": "http://10.0.0.1:9050", "K_SERVICE": "api"}
    with pytest.raises(ValueError, match=r"BIGQUERY_EMULATOR_HOST=.*K_SERVICE='api'"):
        Settings.from_env(env)
    assert Settings.from_env({"K_SERVICE": "api"}).bigquery_emulator is None
    assert Settings.from_env({**env, "K_SERVICE": ""}).bigquery_emulator == "http://10.0.0.1:9050"


def test_firestore_deadline_is_read_and_checked() -> None:
    assert Settings.from_env({}).firestore_deadline == 20.0
    assert Settings.from_env({"FIRESTORE_DEADLINE_SECONDS": "2.5"}).firestore_deadline == 2.5
    for bad in ("0", "-1", "soon", "nan", "31"):
        with pytest.raises(ValueError, match="FIRESTORE_DEADLINE_SECONDS"):
            Settings.from_env({"FIRESTORE_DEADLINE_SECONDS": bad})


def test_iap_audience_and_operator_token_audiences_are_read_and_checked() -> None:
    s = Settings.from_env({})
    assert s.iap_audience == "" and s.operator_token_audiences == (
        "32555940559.apps.googleusercontent.com",
    )
    audience = "/projects/123/locations/us-central1/services/gardener-admin"
    assert Settings.from_env({"IAP_AUDIENCE": audience}).iap_audience == audience
    two = "1-a.apps.googleusercontent.com, 2-b.apps.googleusercontent.com"
    assert Settings.from_env({"OPERATOR_TOKEN_AUDIENCES": two}).operator_token_audiences == (
        "1-a.apps.googleusercontent.com",
        "2-b.apps.googleusercontent.com",
    )
    assert Settings.from_env({"OPERATOR_TOKEN_AUDIENCES": "none"}).operator_token_audiences == ()
    for bad in ("projects/123/locations/r/services/s", "/projects/p/locations/r/services/s", "x"):
        with pytest.raises(ValueError, match="IAP_AUDIENCE"):
            Settings.from_env({"IAP_AUDIENCE": bad})
    for bad in ("https://x.a.run.app", "a.apps.googleusercontent.com;x", ","):
        with pytest.raises(ValueError, match="OPERATOR_TOKEN_AUDIENCES"):
            Settings.from_env({"OPERATOR_TOKEN_AUDIENCES": bad})
