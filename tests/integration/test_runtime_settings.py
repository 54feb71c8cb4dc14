"""Deployment settings reach the services the runtime builds."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from shared import runtime
from shared.config import ConfigError
from tests.conftest import ROOT

pytestmark = pytest.mark.emulator


@pytest.fixture
def fresh_runtime(monkeypatch: pytest.MonkeyPatch, project: str):
    """The runtime's caches emptied before and after the test, on this test's project."""
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", project)
    cached = [
        runtime.settings,
        runtime._firestore,
        runtime._storage,
        runtime.tracker,
        runtime.postprocessor,
    ]
    for fn in cached:
        fn.cache_clear()
    yield runtime
    for fn in cached:
        fn.cache_clear()


DEMO_CONFIG = ROOT / "local" / "demo-config.yml"


def use_demo_config(monkeypatch: pytest.MonkeyPatch, path: Path = DEMO_CONFIG) -> None:
    """Point the runtime at the demo config (or ``path``) and the settings it reads."""
    monkeypatch.setenv("GARDENER_CONFIG", str(path))
    monkeypatch.setenv("DEMO_START_DATE", "2026-11-01")
    monkeypatch.setenv("DEMO_BUCKET", "demo-bucket")
    monkeypatch.setenv("DEMO_TIMEOUT", "3m")


def use_demo_config_with_pipelines(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The demo config without its empty pipelines, and the bucket of the parser's rows."""
    config = DEMO_CONFIG.read_text().replace("    pipeline: []\n", "")
    (tmp_path / "gardener.yml").write_text(config)
    use_demo_config(monkeypatch, tmp_path / "gardener.yml")
    monkeypatch.setenv("INPUT_BUCKET", "parser-rows")


def test_postprocess_batch_sets_the_tick_batch(fresh_runtime, monkeypatch) -> None:
    use_demo_config(monkeypatch)
    monkeypatch.setenv("POSTPROCESS_BATCH", "7")
    monkeypatch.setenv("POSTPROCESS_TICK_SECONDS", "200")
    policy = fresh_runtime.postprocessor().policy
    assert policy.batch == 7 and policy.tick == timedelta(seconds=200)
    # Every source of the demo config has an empty pipeline: a visit makes no BigQuery call.
    assert policy.visit == timedelta(seconds=3 * fresh_runtime.settings().firestore_deadline)


def test_a_tick_too_short_for_one_visit_is_refused(fresh_runtime, monkeypatch) -> None:
    use_demo_config(monkeypatch)
    monkeypatch.setenv("POSTPROCESS_TICK_SECONDS", "30")  # 3 Firestore calls of 20 s: 60 s
    with pytest.raises(ConfigError, match="POSTPROCESS_TICK_SECONDS"):
        fresh_runtime.postprocessor()


def test_bigquery_location_and_sources_reach_the_postprocessor(
    fresh_runtime,
    monkeypatch,
    tmp_path,
) -> None:
    from google.cloud import bigquery

    use_demo_config_with_pipelines(monkeypatch, tmp_path)
    monkeypatch.setenv("BIGQUERY_PROJECT", "bq-project")
    monkeypatch.setenv("BIGQUERY_LOCATION", "europe-west4")
    clients: list[dict[str, object]] = []

    class Client:  # stands in for bigquery.Client, which would look for credentials
        def __init__(self, **kwargs: object) -> None:
            clients.append(kwargs)
            self.project = kwargs["project"]

    monkeypatch.setattr(bigquery, "Client", Client)
    processor = fresh_runtime.postprocessor()
    assert clients == [{"project": "bq-project", "location": "europe-west4"}]
    assert processor.warehouse.location == "europe-west4"
    assert ("demo-bucket", "ndt", "ndt7") in processor.sources


def test_bigquery_emulator_host_is_called_without_credentials(
    fresh_runtime, monkeypatch, tmp_path, bq_url
) -> None:
    import google.auth
    from google.auth.credentials import AnonymousCredentials

    use_demo_config_with_pipelines(monkeypatch, tmp_path)
    monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", bq_url)

    def no_default(*args: object, **kwargs: object) -> None:
        raise AssertionError("looked for credentials")

    monkeypatch.setattr(google.auth, "default", no_default)
    warehouse = fresh_runtime.postprocessor().warehouse
    client = warehouse._client
    assert isinstance(client._credentials, AnonymousCredentials)
    endpoint = client._connection.API_BASE_URL
    assert endpoint == bq_url
    # It answers: the emulator, not BigQuery (a job that does not exist is MISSING there).
    assert warehouse.result("gardener_loading_0_x_0").outcome.value == "missing"
