"""Jobs and their states: the key, paths and partitions of a job, and the runs handed out.

Nothing here does I/O. Every function that depends on the current time takes
``now`` as an argument (defaulting to the wall clock only where the Go original
read the clock implicitly), so callers and tests control time.

Formats follow the Go tracker exactly: the key ``bucket/exp/type/YYYYMMDD``, the
path ``gs://bucket/exp/type/YYYY/MM/DD/`` and the partition ``type$YYYYMMDD``.
"""

from __future__ import annotations

import enum
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from shared.model.names import KEY_DATE_FORMAT, KEY_RE, source_name, ymd

#: Longest key accepted; well under Firestore's 1,500-byte document id limit.
MAX_KEY_LENGTH = 400

#: Separates the key from the run token in the ``ID`` that ``next`` hands out
#: (never in a key, and unreserved in URLs).
RUN_SEPARATOR = "~"
#: Longest run token accepted in an ``id``.
MAX_RUN_LENGTH = 32
#: A run token: 1 to :data:`MAX_RUN_LENGTH` characters 0-9 a-z.
RUN_RE = re.compile(rf"[0-9a-z]{{1,{MAX_RUN_LENGTH}}}\Z")


def midnight(day: date) -> datetime:
    """Return the start of ``day`` in UTC, as an aware datetime."""
    return datetime.combine(day, time(0), tzinfo=UTC)


def utcnow() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


class State(str, enum.Enum):
    """A job state; the value is the exact wire string of the Go tracker."""

    INIT = "init"
    PARSING = "parsing"
    PARSE_ERROR = "parseError"
    POST_PROCESSING = "postProcessing"  # Go's ParseComplete
    STABILIZING = "stabilizing"
    LOADING = "loading"
    DEDUPLICATING = "deduplicating"
    COPYING = "copying"
    JOINING = "joining"
    DELETING = "deleting"
    FINISHING = "finishing"
    FAILED = "failed"
    COMPLETE = "complete"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, name: str) -> State:
        """Return the state with wire string ``name``; ValueError names the valid ones."""
        try:
            return cls(name)
        except ValueError:
            valid = ", ".join(s.value for s in cls)
            raise ValueError(f"unknown state {name!r}; valid states: {valid}") from None


@dataclass(frozen=True)
class Datasets:
    """BigQuery datasets of a job: temporary, raw and joined (empty join: no join step)."""

    #: Where the parsers' rows are loaded and deduplicated.
    tmp: str = ""
    #: Where the deduplicated rows are copied.
    raw: str = ""
    #: Where the rows joined with annotations go ("": no join step).
    join: str = ""


def yesterday_date(now: datetime | None = None) -> date:
    """Return yesterday's UTC date: the date of the daily job."""
    now = now or utcnow()
    return now.astimezone(UTC).date() - timedelta(days=1)


@dataclass(frozen=True)
class Job:
    """One unit of work: all files of a bucket/experiment/datatype for one UTC date."""

    #: The GCS bucket of the archives.
    bucket: str
    #: The experiment, the first part of the archives' path.
    experiment: str
    #: The datatype, the second part of the path ("" for none).
    datatype: str
    #: The UTC date of the archives.
    date: date
    #: A regular expression over archive names (RE2, Go's syntax; "": all).
    filter: str = ""
    #: Where post-processing puts the rows.
    datasets: Datasets = field(default_factory=Datasets)

    def key(self) -> str:
        """Return the job id, ``bucket/experiment/datatype/YYYYMMDD``."""
        return f"{self.bucket}/{self.experiment}/{self.datatype}/{ymd(self.date)}"

    def path(self) -> str:
        """Return the GCS prefix of the job's archives, ending in ``/``."""
        day = ymd(self.date, "/")
        if self.datatype:
            return f"gs://{self.bucket}/{self.experiment}/{self.datatype}/{day}/"
        return f"gs://{self.bucket}/{self.experiment}/{day}/"

    def prefix(self) -> str:
        """Return :meth:`path` without ``gs://bucket/``; ValueError if the path is malformed."""
        parts = self.path().split("/", 3)
        if len(parts) != 4 or parts[0] != "gs:" or not parts[2] or not parts[3]:
            raise ValueError(f"bad GCS path {self.path()!r}")
        return parts[3]

    def table_partition(self) -> str:
        """Return the BigQuery partition decorator, ``datatype$YYYYMMDD``."""
        return f"{self.datatype}${ymd(self.date)}"

    def is_daily(self, now: datetime | None = None) -> bool:
        """Return whether the job's date is yesterday (UTC)."""
        return self.date == yesterday_date(now)

    yesterday_date = staticmethod(yesterday_date)

    @property
    def source(self) -> str:
        """The operator's name of the job's source: ``experiment/datatype``."""
        return source_name(self)

    def __str__(self) -> str:
        return f"{ymd(self.date)}:{self.experiment}/{self.datatype}"

    @classmethod
    def from_key(cls, key: str) -> Job:
        """Return the job (without filter or datasets) that ``key`` names.

        Raises ValueError for anything that is not a well-formed key with a real date
        within the job dates the tracker accepts (:func:`shared.limits.date_problem`).
        """
        if len(key) > MAX_KEY_LENGTH:
            raise ValueError(f"job id longer than {MAX_KEY_LENGTH} characters")
        m = KEY_RE.match(key)
        if not m:
            raise ValueError(
                f"malformed job id {key!r}; expected bucket/experiment/datatype/YYYYMMDD"
            )
        try:
            day = datetime.strptime(m["date"], KEY_DATE_FORMAT).date()
        except ValueError:
            raise ValueError(f"job id {key!r} has an invalid date {m['date']!r}") from None
        from shared.limits import date_problem  # limits builds on this module

        problem = date_problem(day)
        if problem:
            raise ValueError(f"job id {key!r}: {problem}")
        return cls(m["bucket"], m["experiment"], m["datatype"], day)


def new_run() -> str:
    """Return a fresh run token: 8 random lowercase hex characters."""
    return secrets.token_hex(4)


@dataclass(frozen=True)
class RunId:
    """A job key and, when the caller gave one, the run it was handed out for.

    Written ``{key}~{run}`` (the ``ID`` that ``next`` hands out) or a bare key,
    which names the job whatever its run.
    """

    key: str
    run: str | None = None

    def __str__(self) -> str:
        return self.key if self.run is None else f"{self.key}{RUN_SEPARATOR}{self.run}"

    @classmethod
    def of(cls, key: str, run: str) -> RunId:
        """Return the ID of run ``run`` of the job ``key`` (a bare key when ``run`` is empty)."""
        return cls(key, run or None)

    @classmethod
    def parse(cls, text: str) -> RunId:
        """Parse ``key`` or ``key~run``; ValueError says what is wrong."""
        key, sep, run = text.partition(RUN_SEPARATOR)
        Job.from_key(key)
        if not sep:
            return cls(key)
        if not RUN_RE.match(run):
            raise ValueError(
                f"malformed run {run!r} after {RUN_SEPARATOR!r} in job id; expected "
                f"1 to {MAX_RUN_LENGTH} characters 0-9 a-z (the ID next handed out)"
            )
        return cls(key, run)
