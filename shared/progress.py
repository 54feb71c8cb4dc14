"""How far every source has got: the one computation the status page and the metrics share.

For each source of the config (:class:`SourceProgress`): the last day its
daily stream has resolved and whether yesterday's (UTC) job is done, the last
day its historical stream has resolved with the cycle and how much of the
cycle is done, the pauses that hold it and the reprocessing queued for it.
Optionally a date × source grid of the jobs of the last days (:class:`GridDay`).

Reads, whatever the number of jobs stored: the two stream cursors, the pauses
(one query), the grid's jobs by document id (one read per cell, no query), and
per source at most one read of yesterday's job (none when the grid holds it),
one lookup in the reprocessing queue (only when that job has no document) and
one aggregation count of its queued reprocessing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from shared.config import Config, Source
from shared.job_service import HISTORICAL
from shared.model import UTC, Job, JobRecord, Pause, State, midnight, source_name
from shared.store import ControlStore, CursorStore, ReprocessQueue
from shared.streams import Position, Stream, cycle_days
from shared.tracker import Tracker
from shared.transitions import SUCCEEDED

#: A source's (experiment, datatype), as the metrics label it.
SourceLabels = tuple[str, str]

#: A day (the dataclasses below have fields named ``date``).
Day = date


@dataclass(frozen=True)
class DailyProgress:
    """Where a source's daily stream is, and whether yesterday's job is done."""

    #: The last day the daily stream has resolved for the source; None before its first walk.
    date: Day | None
    #: Yesterday (UTC), the day ``yesterday_complete`` speaks of.
    yesterday: Day
    #: The state of yesterday's job; None when it has no document.
    yesterday_state: State | None
    #: Whether yesterday's job is done (see :func:`yesterday_done`).
    yesterday_complete: bool
    #: Whether yesterday's job, without a document, is queued for reprocessing (a paused
    #: source's deferred daily job); looked up only once the daily stream has resolved it.
    yesterday_queued: bool = False


@dataclass(frozen=True)
class HistoricalProgress:
    """Where the historical stream is for a source, and how much of its cycle is done."""

    #: The last day the stream has resolved for the source; None before its first walk.
    date: Day | None
    #: The stream's cycle (0 for the first pass).
    cycle: int
    #: Share of the source's days of this cycle resolved, 0 to 100.
    percent: float
    #: The pause of the whole historical cycle, if any.
    paused: Pause | None


@dataclass(frozen=True)
class SourceProgress:
    """How far one source of the config has got."""

    source: Source
    daily: DailyProgress
    #: None for a ``daily_only`` source, which the historical stream does not walk.
    historical: HistoricalProgress | None
    #: The operator's pause of the source, if any.
    paused: Pause | None
    #: Reprocessing queued for the source; None when not counted.
    queued: int | None

    @property
    def labels(self) -> SourceLabels:
        """The source's (experiment, datatype)."""
        return (self.source.experiment, self.source.datatype)

    @property
    def yesterday_key(self) -> str:
        """The key of the source's daily job of yesterday."""
        return _key(self.source, self.daily.yesterday)


@dataclass(frozen=True)
class GridCell:
    """One day of one source in the grid: the job's key, and its state if it has a document."""

    key: str
    state: State | None


@dataclass(frozen=True)
class GridDay:
    """One day of the grid: a cell per source of the config, in config order."""

    day: date
    cells: tuple[GridCell, ...]


@dataclass(frozen=True)
class Overview:
    """Every source's progress, the grid (newest day first), every pause in force and the
    streams' cursor positions (None before a stream's first walk)."""

    sources: tuple[SourceProgress, ...]
    grid: tuple[GridDay, ...]
    pauses: tuple[Pause, ...]
    daily: Position | None
    historical: Position | None


def stream_dates(config: Config, stream: Stream, position: Position) -> dict[int, date]:
    """Return, per source index of ``stream``, the last day its cursor has resolved.

    Sources before the cursor's source index have resolved the cursor's day,
    the others the day before; ``daily_only`` sources are not in the
    historical stream.
    """
    dates: dict[int, date] = {}
    for index, source in enumerate(config.sources):
        if stream is Stream.HISTORICAL and source.daily_only:
            continue
        dates[index] = position.day if index < position.source else position.day - timedelta(1)
    return dates


def yesterday_done(
    resolved: date | None, yesterday: date, record: JobRecord | None, queued: bool
) -> bool:
    """Whether yesterday's daily job of a source is done, whatever the source's pause.

    The daily stream must have resolved yesterday (``resolved``), and the job
    be in a state that means done (:data:`~shared.transitions.SUCCEEDED`), or
    have no document and no reprocessing ``queued``: complete and removed by
    clean-up, or no files to parse. A job in flight, failed, or deferred to the
    reprocessing queue by a pause is not done.
    """
    if resolved is None or resolved < yesterday:
        return False
    if record is not None:
        return record.status.state in SUCCEEDED
    return not queued


def cycle_percent(config: Config, source: Source, resolved: date | None, now: datetime) -> float:
    """Share (0 to 100) of ``source``'s days in the historical cycle that ``resolved`` covers,
    to a tenth: 100 only once every day is resolved, 0 only while none is."""
    first, last = cycle_days(config, source, now)
    total = (last - first).days + 1
    if resolved is None or total <= 0:
        return 0.0
    done = min(max((resolved - first).days + 1, 0), total)
    if done in (0, total):
        return 100.0 * done / total
    return min(max(round(100.0 * done / total, 1), 0.1), 99.9)


class Progress:
    """Reads how far every source has got (see the module for what it reads).

    ``controls`` and ``queue`` are optional: without them nothing is paused and
    nothing is queued.
    """

    def __init__(
        self,
        tracker: Tracker,
        cursors: CursorStore,
        config: Config,
        *,
        controls: ControlStore | None = None,
        queue: ReprocessQueue | None = None,
    ) -> None:
        self.tracker = tracker
        self.cursors = cursors
        self.config = config
        self.controls = controls
        self.queue = queue

    def position(self, stream: Stream) -> Position | None:
        """Return the stream's cursor position; None before its first walk (one read)."""
        stored = self.cursors.get(stream.value)
        return None if stored is None else Position.decode(stored)

    def overview(self, days: int = 0, count_queued: bool = True) -> Overview:
        """Return every source's progress and a grid of the last ``days`` days (0: none).

        The grid ends at yesterday (UTC), the newest day a job can exist for.
        ``count_queued``: count each source's queued reprocessing (one
        aggregation each).
        """
        now = self.tracker.clock()
        yesterday = now.astimezone(UTC).date() - timedelta(days=1)
        sources = self.config.sources
        pauses = tuple(self.controls.all()) if self.controls is not None else ()
        paused = {p.target: p for p in pauses}
        positions = {stream: self.position(stream) for stream in Stream}
        daily = positions[Stream.DAILY]
        daily_dates = stream_dates(self.config, Stream.DAILY, daily) if daily else {}
        historical = positions[Stream.HISTORICAL]
        historical_dates = (
            stream_dates(self.config, Stream.HISTORICAL, historical) if historical else {}
        )

        grid_days = [yesterday - timedelta(days=n) for n in range(days)]
        # Yesterday's job matters only to a source whose daily stream has resolved it.
        resolved_yesterday = [
            _key(s, yesterday)
            for i, s in enumerate(sources)
            if daily_dates.get(i, date.min) >= yesterday
        ]
        keys = [_key(s, day) for day in grid_days for s in sources] or resolved_yesterday
        records = self.tracker.find_records(keys) if keys else {}
        missing = [key for key in resolved_yesterday if key not in records]
        queued = self.queue.queued(missing) if self.queue is not None and missing else set()

        progress = []
        for index, source in enumerate(sources):
            key = _key(source, yesterday)
            record = records.get(key)
            resolved = daily_dates.get(index)
            history: HistoricalProgress | None = None
            if not source.daily_only:
                at = historical_dates.get(index)
                history = HistoricalProgress(
                    at,
                    historical.cycle if historical else 0,
                    cycle_percent(self.config, source, at, now),
                    paused.get(HISTORICAL),
                )
            count = (
                self.queue.count_of(source.bucket, source_name(source))
                if self.queue is not None and count_queued
                else None
            )
            progress.append(
                SourceProgress(
                    source,
                    DailyProgress(
                        resolved,
                        yesterday,
                        record.status.state if record else None,
                        yesterday_done(resolved, yesterday, record, key in queued),
                        key in queued,
                    ),
                    history,
                    paused.get(source_name(source)),
                    count,
                )
            )
        grid = tuple(
            GridDay(
                day,
                tuple(
                    GridCell(
                        key := _key(s, day),
                        records[key].status.state if key in records else None,
                    )
                    for s in sources
                ),
            )
            for day in grid_days
        )
        return Overview(tuple(progress), grid, pauses, daily, historical)


def _key(source: Source, day: date) -> str:
    return Job(source.bucket, source.experiment, source.datatype, day).key()


def by_labels(progress: Sequence[SourceProgress]) -> dict[SourceLabels, list[SourceProgress]]:
    """Group sources by (experiment, datatype), in config order (the metrics' labels)."""
    grouped: dict[SourceLabels, list[SourceProgress]] = {}
    for p in progress:
        grouped.setdefault(p.labels, []).append(p)
    return grouped


def timestamp(day: date) -> float:
    """UTC midnight of ``day`` in Unix seconds."""
    return midnight(day).timestamp()
