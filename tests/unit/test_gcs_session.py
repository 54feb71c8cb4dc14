"""The GCS client's HTTP session reads its environment settings once, with the same result."""

from __future__ import annotations

import pytest
import requests

from shared.gcs import settle_environment

PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY")


@pytest.fixture
def no_proxies(monkeypatch):
    for name in (*PROXY_VARIABLES, "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("requests_bundle", "curl_bundle", "verify"),
    [
        (None, None, True),
        ("/etc/ca/requests.pem", "/etc/ca/curl.pem", "/etc/ca/requests.pem"),
        (None, "/etc/ca/curl.pem", "/etc/ca/curl.pem"),
    ],
)
def test_without_proxies_the_session_keeps_the_ca_bundle_and_stops_looking(
    no_proxies, monkeypatch, requests_bundle, curl_bundle, verify
):
    for name, value in (("REQUESTS_CA_BUNDLE", requests_bundle), ("CURL_CA_BUNDLE", curl_bundle)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    session = requests.Session()
    before = session.merge_environment_settings("http://127.0.0.1:1/b", {}, None, None, None)
    settle_environment(session)
    assert session.trust_env is False
    after = session.merge_environment_settings("http://127.0.0.1:1/b", {}, None, None, None)
    assert after == before
    assert after["verify"] == verify


def test_with_a_proxy_in_the_environment_nothing_changes(no_proxies, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    session = requests.Session()
    settle_environment(session)
    assert session.trust_env is True and session.verify is True


def test_the_environment_bundle_wins_over_the_session_as_before(no_proxies, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ca/requests.pem")
    session = requests.Session()
    session.verify = False
    before = session.merge_environment_settings("http://127.0.0.1:1/b", {}, None, None, None)
    settle_environment(session)
    after = session.merge_environment_settings("http://127.0.0.1:1/b", {}, None, None, None)
    assert session.trust_env is False and after == before
