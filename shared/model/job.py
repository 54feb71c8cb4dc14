"""The pure job model: jobs, states and their status history.

Nothing here does I/O. Every function that depends on the current time takes
``now`` as an argument (defaulting to the wall clock only where the Go original
read the clock implicitly), so callers and tests control time.

Formats follow the Go tracker exactly: the key ``bucket/exp/type/YYYYMMDD``, the
path ``gs://bucket/exp/type/YYYY/MM/DD/``, the partition ``type$YYYYMMDD`` and
the failure label ``{prev}-failed``.
"""

from __future__ import annotations

import enum
import re
import secrets
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone

UTC = timezone.utc

#: Go's zero ``time.Time``; the heartbeat time of a job that never sent one.
ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)

#: Detail that touches the detail time but keeps the detail text (Go rule).
KEEP_DETAIL = "-"

_BUCKET = r"[a-z0-9](?:[a-z0-9._-]{1,220})[a-z0-9]"
_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,98}[A-Za-z0-9])?"
_KEY_RE = re.compile(
    rf"^(?P<bucket>{_BUCKET})/(?P<experiment>{_NAME})/(?P<datatype>{_NAME})/(?P<date>[0-9]{{8}})\Z"
)
#: Longest key accepted; well under Firestore's 1,500-byte document id limit.
MAX_KEY_LENGTH = 400

#: Separates the key from the run token in the ``ID`` that ``next`` hands out
#: (never in a key, and unreserved in URLs).
RUN_SEPARATOR = "~"
#: Longest run token accepted in an ``id``.
MAX_RUN_LENGTH = 32
_RUN_RE = re.compile(rf"[0-9a-z]{{1,{MAX_RUN_LENGTH}}}\Z")

#: History entries kept besides the first: older ones are dropped and counted.
HISTORY_KEEP = 100
#: The latest entries whose details are kept whole; older kept ones are cut to
#: :data:`OLD_DETAIL_LENGTH` characters, so a job's history stays far below
#: Firestore's 1 MiB document limit whatever its details.
HISTORY_FULL_DETAILS = 10
OLD_DETAIL_LENGTH = 200


def _ymd(day: date, sep: str = "") -> str:
    """Format a date as ``YYYY{sep}MM{sep}DD`` with a four-digit year, as Go does."""
    return f"{day.year:04d}{sep}{day.month:02d}{sep}{day.day:02d}"


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

    tmp: str = ""
    raw: str = ""
    join: str = ""


def yesterday_date(now: datetime | None = None) -> date:
    """Return yesterday's UTC date: the date of the daily job."""
    now = now or utcnow()
    return now.astimezone(UTC).date() - timedelta(days=1)


@dataclass(frozen=True)
class Job:
    """One unit of work: all files of a bucket/experiment/datatype for one UTC date."""

    bucket: str
    experiment: str
    datatype: str
    date: date
    filter: str = ""
    datasets: Datasets = field(default_factory=Datasets)

    def key(self) -> str:
        """Return the job id, ``bucket/experiment/datatype/YYYYMMDD``."""
        return f"{self.bucket}/{self.experiment}/{self.datatype}/{_ymd(self.date)}"

    def path(self) -> str:
        """Return the GCS prefix of the job's archives, ending in ``/``."""
        day = _ymd(self.date, "/")
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
        return f"{self.datatype}${_ymd(self.date)}"

    def is_daily(self, now: datetime | None = None) -> bool:
        """Return whether the job's date is yesterday (UTC)."""
        return self.date == yesterday_date(now)

    yesterday_date = staticmethod(yesterday_date)

    def __str__(self) -> str:
        return f"{_ymd(self.date)}:{self.experiment}/{self.datatype}"

    @classmethod
    def from_key(cls, key: str) -> Job:
        """Return the job (without filter or datasets) that ``key`` names.

        Raises ValueError for anything that is not a well-formed key with a real date
        within the job dates the tracker accepts (:func:`shared.limits.date_problem`).
        """
        if len(key) > MAX_KEY_LENGTH:
            raise ValueError(f"job id longer than {MAX_KEY_LENGTH} characters")
        m = _KEY_RE.match(key)
        if not m:
            raise ValueError(
                f"malformed job id {key!r}; expected bucket/experiment/datatype/YYYYMMDD"
            )
        try:
            day = datetime.strptime(m["date"], "%Y%m%d").date()
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
        if not _RUN_RE.match(run):
            raise ValueError(f"malformed run {run!r} after {RUN_SEPARATOR!r} in job id; expected "
                             f"1 to {MAX_RUN_LENGTH} characters 0-9 a-z (the ID next handed out)")
        return cls(key, run)


@dataclass(frozen=True)
class StateInfo:
    """One entry of a job's history: a state, when it began, and its latest detail."""

    state: State
    start: datetime
    detail_time: datetime
    detail: str = ""

    def with_detail(self, detail: str, now: datetime) -> StateInfo:
        """Return a copy with the detail time set to ``now`` and, unless ``-``, the detail."""
        text = self.detail if detail == KEEP_DETAIL else detail
        return replace(self, detail=text, detail_time=now)


@dataclass
class Status:
    """A job's progress: heartbeat time, update count and state history (oldest first)."""

    history: list[StateInfo]
    heartbeat_time: datetime = ZERO_TIME
    update_count: int = 0
    #: Entries dropped between the first and the kept ones (see :data:`HISTORY_KEEP`).
    dropped: int = 0

    @classmethod
    def new(cls, now: datetime | None = None) -> Status:
        """Return the status of a fresh job: one ``init`` entry."""
        now = now or utcnow()
        return cls(history=[StateInfo(State.INIT, now, now)])

    @property
    def current_index(self) -> int:
        """The absolute index of the current entry, counting dropped entries."""
        return len(self.history) - 1 + self.dropped

    def index_of(self, position: int) -> int:
        """The absolute index of ``history[position]`` (the first entry is always 0)."""
        return position + self.dropped if position > 0 else 0

    @property
    def last_state_info(self) -> StateInfo:
        """The entry of the current state."""
        return self.history[-1]

    @property
    def state(self) -> State:
        """The current state."""
        return self.history[-1].state

    @property
    def prev(self) -> State:
        """The state before the current one, or ``init``."""
        return self.history[-2].state if len(self.history) > 1 else State.INIT

    @property
    def label(self) -> str:
        """The state for metrics; ``{prev}-failed`` when failed, e.g. ``loading-failed``."""
        if self.state is State.FAILED:
            return f"{self.prev.value}-{State.FAILED.value}"
        return self.state.value

    @property
    def detail(self) -> str:
        """The current entry's detail, or the previous entry's when the current is empty."""
        last = self.history[-1]
        if not last.detail and len(self.history) > 1:
            return self.history[-2].detail
        return last.detail

    @property
    def detail_time(self) -> datetime:
        """When the current entry's detail was last set."""
        return self.history[-1].detail_time

    @property
    def state_change_time(self) -> datetime:
        """When the current state was entered."""
        return self.history[-1].start

    @property
    def start_time(self) -> datetime:
        """When the job was started (its first entry)."""
        return self.history[0].start

    @property
    def elapsed(self) -> timedelta:
        """Latest detail time minus start time, rounded to the second (halves away from zero, as Go)."""
        micros = (self.detail_time - self.start_time) // timedelta(microseconds=1)
        seconds = (abs(micros) + 500_000) // 1_000_000
        return timedelta(seconds=seconds if micros >= 0 else -seconds)

    @property
    def error(self) -> str:
        """The detail of a failed job, else empty."""
        last = self.history[-1]
        return last.detail if last.state is State.FAILED else ""

    def set_detail(self, detail: str, now: datetime) -> StateInfo:
        """Set the current entry's detail (``-`` keeps the text); return the previous entry."""
        old = self.history[-1]
        self.history[-1] = old.with_detail(detail, now)
        return old

    def new_state(self, state: State, now: datetime) -> StateInfo:
        """Append an entry for ``state`` unless it is the current state; return the previous entry.

        The history is then bounded (:meth:`bound_history`).
        """
        old = self.history[-1]
        if state is not old.state:
            self.history.append(StateInfo(state, now, now))
            self.bound_history()
        return old

    def bound_history(self) -> None:
        """Keep the first entry and the latest :data:`HISTORY_KEEP`, counting the others in :attr:`dropped`.

        Details of the kept entries older than the latest :data:`HISTORY_FULL_DETAILS`
        (the first entry aside) are cut to :data:`OLD_DETAIL_LENGTH` characters.
        Applied on every new state and to an imported history, whatever its length.
        """
        excess = len(self.history) - 1 - HISTORY_KEEP
        if excess > 0:
            del self.history[1:1 + excess]
            self.dropped += excess
        for i in range(1, len(self.history) - HISTORY_FULL_DETAILS):
            entry = self.history[i]
            if len(entry.detail) > OLD_DETAIL_LENGTH:
                self.history[i] = replace(entry, detail=entry.detail[:OLD_DETAIL_LENGTH - 1] + "…")
