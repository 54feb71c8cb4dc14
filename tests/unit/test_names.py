"""The model's name rules and date formats, and that every user of them agrees."""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

import pytest
import yaml

from shared.config import ConfigError, parse_config
from shared.model import (
    Job,
    JobFilter,
    ReprocessItem,
    bucket_problem,
    dataset_problem,
    datatype_problem,
    experiment_problem,
    parse_date,
    source_name,
    utcnow,
    ymd,
)
from shared.schemas import AdminJobsQuery, AdminPauseParams, StatusQuery

CONFIG: dict[str, Any] = {
    "start_date": "2019-03-01",
    "tracker": {"timeout": "5h"},
    "monitor": {"polling_interval": "1m"},
    "sources": [
        {
            "bucket": "archive-measurement-lab",
            "experiment": "ndt",
            "datatype": "ndt7",
            "target_datasets": {"tmp": "tmp_ndt", "raw": "raw_ndt"},
        }
    ],
}


def config_with(field: str, value: str) -> str:
    data = copy.deepcopy(CONFIG)
    data["sources"][0][field] = value
    return str(yaml.safe_dump(data))


@pytest.mark.parametrize("name", ["_x", "x_", "-x", ".x", "", "a" * 101, "a/b", "a b"])
def test_a_name_the_model_refuses_is_refused_by_the_config_and_the_schemas(name: str) -> None:
    assert experiment_problem(name) is not None
    with pytest.raises(ConfigError, match="invalid experiment"):
        parse_config(config_with("experiment", name))
    if name:  # an empty filter counts as not given
        assert "experiment" in StatusQuery().validate({"experiment": name})
        assert "datatype" in AdminJobsQuery().validate({"datatype": name})
        assert "target" in AdminPauseParams().validate({"target": f"{name}/ndt7"})


@pytest.mark.parametrize("name", ["ndt", "x", "ndt7.v2", "a-b_c", "a" * 100])
def test_a_name_the_model_accepts_is_accepted_by_the_schemas(name: str) -> None:
    assert experiment_problem(name) is None
    assert StatusQuery().validate({"experiment": name}) == {}
    assert AdminJobsQuery().validate({"datatype": name}) == {}
    assert AdminPauseParams().validate({"target": f"{name}/ndt7"}) == {}


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("ab", "3-63 characters"),
        ("Archive", "lowercase"),
        ("-abc", "start and end"),
        ("a..b", "empty dot-separated"),
        ("192.168.1.1", "IP address"),
        ("goog-x", "'goog'"),
        ("my-google-bucket", "'google'"),
        ("a" * 64, "3-63"),
    ],
)
def test_bucket_rule(name: str, fragment: str) -> None:
    problem = bucket_problem(name)
    assert problem is not None and fragment in problem
    assert bucket_problem("archive-measurement-lab") is None


def test_datatype_and_dataset_rules() -> None:
    assert datatype_problem("ndt7") is None
    assert "BigQuery" in (datatype_problem("ndt.7") or "")
    assert "job id rule" in (datatype_problem("_ndt") or "")
    assert dataset_problem("tmp_ndt") is None
    assert dataset_problem("tmp-ndt") is not None


def test_dates_are_written_with_four_digit_years_and_read_strictly() -> None:
    assert ymd(date(99, 1, 2)) == "00990102"
    assert ymd(date(2019, 1, 2), "/") == "2019/01/02"
    with pytest.raises(TypeError):
        ymd("2019-01-02")  # type: ignore[arg-type]
    assert parse_date("2019-03-01") == date(2019, 3, 1)
    for text, fragment in (
        ("2019/03/01", "expected a date"),
        ("20190301", "expected a date"),
        ("2019-02-30", "invalid date"),
    ):
        with pytest.raises(ValueError, match=fragment):
            parse_date(text)


def test_a_source_has_one_name_wherever_it_comes_from() -> None:
    job = Job("archive-measurement-lab", "ndt", "ndt7", date(2019, 1, 2))
    item = ReprocessItem.new(job, "someone", utcnow())
    source = parse_config(yaml.safe_dump(CONFIG)).sources[0]
    assert job.source == item.source == source_name(source) == "ndt/ndt7"


def test_a_job_filter_has_a_date_range_when_either_end_is_given() -> None:
    assert not JobFilter().dated
    assert JobFilter(first=date(2019, 1, 1)).dated
    assert JobFilter(last=date(2019, 1, 1)).dates == (date(1970, 1, 1), date(2019, 1, 1))
