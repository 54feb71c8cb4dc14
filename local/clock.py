"""A fake clock for tests and benchmarks: it stands still until moved."""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.model import UTC


class FakeClock:
    """A clock that stands still until moved; call it for the current time."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> datetime:
        """Move the clock forward by ``timedelta(**kwargs)``; return the new time."""
        self.now += timedelta(**kwargs)
        return self.now
