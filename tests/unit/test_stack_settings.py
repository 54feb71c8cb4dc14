"""The local stack's switches, port check and demo config, without starting anything."""

from __future__ import annotations

import argparse
import socket
from datetime import UTC, datetime, timedelta

import pytest

from local.stack import (
    DEMO_CONFIG,
    SettingError,
    demo_env,
    intervals,
    port_in_use,
    port_number,
    snapshots_on,
)
from shared.config import load_config
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
