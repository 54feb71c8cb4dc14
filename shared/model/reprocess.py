"""A job queued for reprocessing by an operator."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime

from shared.model.job import Job
from shared.model.names import source_name


@dataclass(frozen=True)
class ReprocessItem:
    """A job queued for reprocessing by an operator: handed out by next-job ahead of history."""

    #: The job's bucket.
    bucket: str
    #: The job's experiment.
    experiment: str
    #: The job's datatype.
    datatype: str
    #: The job's date.
    date: date
    #: Unique per enqueue: the hand-out's offer is ``reprocess/<token>``.
    token: str
    #: Orders the queue: the enqueue time, then the item's place in its request.
    rank: str
    #: Who queued it.
    who: str
    #: When it was queued.
    queued_at: datetime
    #: Firestore's update time of the item as read, for the guarded delete (None: not stored).
    update_time: datetime | None = None
    #: When next-job claimed it for a hand-out (None: not claimed); cancelling leaves it then.
    claimed_at: datetime | None = None

    @classmethod
    def new(cls, job: Job, who: str, now: datetime, seq: int = 0) -> ReprocessItem:
        """Return a fresh item for ``job``, queued at ``now`` as the ``seq``-th of its request."""
        rank = f"{now.astimezone(UTC):%Y%m%dT%H%M%S.%f}/{seq:06d}"
        return cls(
            job.bucket, job.experiment, job.datatype, job.date, secrets.token_hex(8), rank, who, now
        )

    @property
    def source(self) -> str:
        """The source's name, ``experiment/datatype``."""
        return source_name(self)

    @property
    def key(self) -> str:
        """The key of the job to reprocess."""
        return Job(self.bucket, self.experiment, self.datatype, self.date).key()
