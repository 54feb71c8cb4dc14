"""Integration fixtures of their own: the BigQuery emulator (bqemulator), for the warehouse,
and a fresh GCS bucket for job archives.

The Firestore and GCS emulators, the tracker and the HTTP client come from
``tests/conftest.py``, shared with the acceptance tests.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture(scope="session")
def bq_gcs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder the BigQuery emulator reads ``gs://bucket/path`` from (``{root}/bucket/path``)."""
    return tmp_path_factory.mktemp("bq-gcs")


@pytest.fixture(scope="session")
def bq_url(bq_gcs_root: Path) -> Iterator[str]:
    """URL of a BigQuery emulator (bqemulator) for the session."""
    from local.bq_emulator import BqEmulator

    (ROOT / ".pytest_cache").mkdir(exist_ok=True)
    with BqEmulator(
        gcs_root=bq_gcs_root, log_path=ROOT / ".pytest_cache" / "bq-emulator.log"
    ) as emulator:
        yield emulator.url


@pytest.fixture
def bucket(gcs_client) -> str:
    """A fresh bucket on the GCS emulator, for job archives (its name)."""
    name = f"archive-{uuid.uuid4().hex[:12]}"
    gcs_client.create_bucket(name)
    return name
