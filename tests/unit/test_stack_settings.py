"""The local stack's switches, port check and demo config, without starting anything."""

from __future__ import annotations

import argparse
import json
import socket
from datetime import UTC, date, datetime, timedelta

import pytest

from local.stack import (
    DEMO_BIGQUERY_CONFIG,
    DEMO_BUCKET,
    DEMO_CONFIG,
    SettingError,
    bigquery_on,
    bigquery_steps,
    bigquery_warnings,
    demo_archives,
    demo_env,
    demo_rows,
    function_settings,
    intervals,
    port_in_use,
    port_number,
    snapshots_on,
)
from shared.config import load_config
from shared.model import Job, State
from shared.streams import Stream, candidate, initial_position


def test_tickers_default_to_10_s_or_5_s_with_a_fleet():
    assert intervals({}, fleet=False) == {"/maintain": 10.0, "/postprocess": 10.0}
    assert intervals({}, fleet=True) == {"/maintain": 5.0, "/postprocess": 5.0}
    assert intervals({"MAINTAIN_INTERVAL": "0.5"}, fleet=True)["/maintain"] == 0.5


@pytest.mark.parametrize("off", ["0", "off", "OFF", " off "])
def test_each_ticker_has_an_off_switch(off):
    assert intervals({"MAINTAIN_INTERVAL": off}, fleet=False) == {
        "/maintain": None,
        "/postprocess": 10.0,
    }
    assert intervals({"POSTPROCESS_INTERVAL": off}, fleet=True)["/postprocess"] is None


@pytest.mark.parametrize("bad", ["abc", "-1", "nan", "inf", ""])
def test_a_bad_interval_names_its_variable(bad):
    with pytest.raises(SettingError, match="POSTPROCESS_INTERVAL must be a number of seconds"):
        intervals({"POSTPROCESS_INTERVAL": bad}, fleet=False)


def test_snapshots_switch():
    assert snapshots_on({}) is True
    assert snapshots_on({"SNAPSHOTS": "on"}) is True
    assert snapshots_on({"SNAPSHOTS": "off"}) is False
    assert snapshots_on({"SNAPSHOTS": "0"}) is False
    with pytest.raises(SettingError, match="SNAPSHOTS must be on or off"):
        snapshots_on({"SNAPSHOTS": "maybe"})


def test_port_in_use():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert port_in_use(port)
    assert not port_in_use(port)


@pytest.mark.parametrize("hour", [0, 5, 10, 23])
def test_demo_config_offers_yesterdays_daily_job_at_any_hour(hour):
    now = datetime(2026, 11, 28, hour, 1, tzinfo=UTC)
    config = load_config(str(DEMO_CONFIG), demo_env(now.date()))
    found = candidate(Stream.DAILY, config, initial_position(Stream.DAILY, config, now), now)
    assert found is not None
    assert found.job.date == now.date() - timedelta(days=1)


@pytest.mark.parametrize("bad", ["abc", "0", "70000", ""])
def test_a_bad_port_is_refused(bad):
    assert port_number("8080") == 8080
    with pytest.raises(argparse.ArgumentTypeError, match="PORT must be a TCP port"):
        port_number(bad)


def test_bigquery_switch():
    assert bigquery_on({}) is True
    assert bigquery_on({"BIGQUERY": "off"}) is False
    assert bigquery_on({"BIGQUERY": " 1 "}) is True
    with pytest.raises(SettingError, match="BIGQUERY must be on or off"):
        bigquery_on({"BIGQUERY": "emulator"})


TODAY = date(2026, 11, 28)


def test_the_demo_config_needs_no_bigquery_and_the_bigquery_one_names_what_the_emulator_cannot():
    plain = load_config(str(DEMO_CONFIG), demo_env(TODAY))
    assert (
        not plain.needs_bigquery and bigquery_steps(plain) == [] and bigquery_warnings(plain) == []
    )
    full = load_config(str(DEMO_BIGQUERY_CONFIG), demo_env(TODAY))
    assert full.needs_bigquery
    assert [(s.experiment, s.datatype) for s in full.sources] == [
        (s.experiment, s.datatype) for s in plain.sources
    ]
    assert bigquery_steps(full) == [
        State.LOADING,
        State.DEDUPLICATING,
        State.COPYING,
        State.DELETING,
        State.JOINING,
    ]
    warnings = bigquery_warnings(full)
    assert [w.split(":")[0] for w in warnings] == [
        "The BigQuery emulator cannot run copying",
        "The BigQuery emulator cannot run deleting",
        "The BigQuery emulator cannot run joining",
    ]
    assert all("a job fails there" in w for w in warnings)


@pytest.mark.parametrize("path", [DEMO_CONFIG, DEMO_BIGQUERY_CONFIG], ids=lambda p: p.name)
def test_the_demo_configs_pace_the_historical_stream(path):
    assert load_config(str(path), demo_env(TODAY)).min_cycle_interval == timedelta(minutes=5)


def test_demo_rows_go_where_each_demo_jobs_load_reads(tmp_path):
    from shared.warehouse import Warehouse

    names = demo_archives(TODAY)
    assert demo_rows(tmp_path, "parser-output", names) == len(names)
    warehouse = Warehouse(None, "demo-gardener", "parser-output")  # type: ignore[arg-type]
    for name in names:
        experiment, datatype, year, month, day, _ = name.split("/")
        job = Job(DEMO_BUCKET, experiment, datatype, date(int(year), int(month), int(day)))
        folder = warehouse.load_uri(job).removeprefix("gs://").removesuffix("*")
        files = list((tmp_path / folder).glob("*.json"))
        assert files, folder
        lines = [json.loads(line) for f in files for line in f.read_text().splitlines()]
        assert {row["date"] for row in lines} == {job.date.isoformat()}


def test_the_functions_settings_are_checked_before_anything_starts():
    function_settings({"BIGQUERY_EMULATOR_HOST": "http://127.0.0.1:9050"})
    # The Firestore and GCS variables take host:port; this one a URL, named in the error.
    with pytest.raises(SettingError, match=r"BIGQUERY_EMULATOR_HOST='127.0.0.1:9050'.*http://"):
        function_settings({"BIGQUERY_EMULATOR_HOST": "127.0.0.1:9050"})
    with pytest.raises(SettingError, match="FIRESTORE_DEADLINE_SECONDS"):
        function_settings({"FIRESTORE_DEADLINE_SECONDS": "soon"})
