"""The name rules: buckets, experiments, datatypes, BigQuery datasets; and the date formats.

One rule, one place: job keys, the config, the request schemas, the warehouse
and the snapshot import all check names here. Each ``*_problem`` function
returns why a name is refused, or None when it is accepted; the ``*_PATTERN``
strings are unanchored regular expressions for schema validators.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Protocol

#: A GCS bucket name as a job key holds it (the whole rule: :func:`bucket_problem`).
BUCKET_PATTERN = r"[a-z0-9](?:[a-z0-9._-]{1,220})[a-z0-9]"

#: An experiment or a datatype: 1-100 letters, digits, ``_``, ``.`` or ``-``, starting and
#: ending with a letter or digit (the job key rule).
NAME_PATTERN = r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,98}[A-Za-z0-9])?"

#: A source by its operator name, ``experiment/datatype``.
SOURCE_PATTERN = rf"{NAME_PATTERN}/{NAME_PATTERN}"

#: A BigQuery dataset id, or a table name restricted to ASCII word characters: 1-1024 of them.
BIGQUERY_NAME_PATTERN = r"[A-Za-z0-9_]{1,1024}"

#: The job date in a key: ``YYYYMMDD`` (``strptime`` format).
KEY_DATE_FORMAT = "%Y%m%d"

#: A calendar date as the config and the admin API write it: ``YYYY-MM-DD`` (``strptime`` format).
DATE_FORMAT = "%Y-%m-%d"

#: A job key, ``bucket/experiment/datatype/YYYYMMDD``, with its parts as named groups.
KEY_RE = re.compile(
    rf"^(?P<bucket>{BUCKET_PATTERN})/(?P<experiment>{NAME_PATTERN})"
    rf"/(?P<datatype>{NAME_PATTERN})/(?P<date>[0-9]{{8}})\Z"
)

_BUCKET_CHARS_RE = re.compile(r"[a-z0-9._-]+")
_IPV4_RE = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")
_NAME_RE = re.compile(NAME_PATTERN)
_BIGQUERY_NAME_RE = re.compile(BIGQUERY_NAME_PATTERN)
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def ymd(day: date, sep: str = "") -> str:
    """Format a date as ``YYYY{sep}MM{sep}DD`` with a four-digit year, as Go does.

    Raises TypeError for anything but a date (a datetime included).
    """
    if not isinstance(day, date) or isinstance(day, datetime):
        raise TypeError(f"job date {day!r} is not a date")
    return f"{day.year:04d}{sep}{day.month:02d}{sep}{day.day:02d}"


def parse_date(text: str) -> date:
    """Return the date ``text`` writes as ``YYYY-MM-DD``; ValueError says what is wrong."""
    if not _DATE_RE.fullmatch(text):
        raise ValueError(f"expected a date YYYY-MM-DD, got {text!r}")
    try:
        return datetime.strptime(text, DATE_FORMAT).date()
    except ValueError as exc:
        raise ValueError(f"invalid date {text!r}: {exc}") from None


def bucket_problem(name: str) -> str | None:
    """Return why ``name`` is not a valid GCS bucket name, or None if it is."""
    limit = 222 if "." in name else 63
    if not 3 <= len(name) <= limit:
        return f"must be 3-{limit} characters long, not {len(name)}" + (
            "" if "." in name else " (up to 222 if it contains dots)"
        )
    if not _BUCKET_CHARS_RE.fullmatch(name):
        return "may contain only lowercase letters, digits, '-', '_' and '.'"
    if not (name[0].isalnum() and name[-1].isalnum()):
        return "must start and end with a letter or digit"
    if any(not part for part in name.split(".")):
        return "must not contain empty dot-separated parts ('..')"
    if any(len(part) > 63 for part in name.split(".")):
        return "each dot-separated part must be at most 63 characters"
    if _IPV4_RE.fullmatch(name):
        return "must not be an IP address"
    if name.startswith("goog"):
        return "must not start with 'goog'"
    if "google" in name:
        return "must not contain 'google'"
    return None


def experiment_problem(name: str) -> str | None:
    """Return why ``name`` is not a valid experiment (the job key rule), or None if it is."""
    if not _NAME_RE.fullmatch(name):
        return (
            "must be 1-100 letters, digits, '_', '.' or '-', starting and ending with a"
            " letter or digit"
        )
    return None


def datatype_problem(name: str) -> str | None:
    """Return why ``name`` is not a valid datatype (a BigQuery table name and the job key rule)."""
    if not _BIGQUERY_NAME_RE.fullmatch(name):
        return "must be a BigQuery table name (letters, digits and '_' only)"
    if not _NAME_RE.fullmatch(name):
        return (
            "must be at most 100 characters and start and end with a letter or digit (job id rule)"
        )
    return None


def dataset_problem(name: str) -> str | None:
    """Return why ``name`` is not a valid BigQuery dataset id, or None if it is."""
    if not _BIGQUERY_NAME_RE.fullmatch(name):
        return "must be 1-1024 letters, digits or '_'"
    return None


class _OfSource(Protocol):
    """Anything that names a source: a job, a config source, a queued reprocessing."""

    @property
    def experiment(self) -> str: ...

    @property
    def datatype(self) -> str: ...


def source_name(of: _OfSource) -> str:
    """Return the operator's name of a source: ``experiment/datatype``."""
    return f"{of.experiment}/{of.datatype}"
