"""Which jobs a listing or a count is about."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from shared.model.job import State

#: The job dates an open-ended date range runs from and to.
EARLIEST_DATE, LATEST_DATE = date(1970, 1, 1), date(9999, 12, 31)


@dataclass(frozen=True)
class JobFilter:
    """Jobs with an equal state, experiment and datatype, of job dates ``first`` to ``last``.

    Every field left None matches anything. With a date range (either end
    given) jobs come by job date, else oldest start first.
    """

    #: Only jobs in this state.
    state: State | None = None
    #: Only jobs of this experiment.
    experiment: str | None = None
    #: Only jobs of this datatype.
    datatype: str | None = None
    #: Only job dates from this day (inclusive).
    first: date | None = None
    #: Only job dates up to this day (inclusive).
    last: date | None = None
    #: At most this many jobs (a count ignores it).
    limit: int | None = None

    @property
    def dated(self) -> bool:
        """Whether the filter has a date range."""
        return self.first is not None or self.last is not None

    @property
    def dates(self) -> tuple[date, date]:
        """The date range, its open ends filled with :data:`EARLIEST_DATE` and :data:`LATEST_DATE`."""
        return self.first or EARLIEST_DATE, self.last or LATEST_DATE
