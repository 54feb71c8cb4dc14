"""A job record: a job, its status and the tracker's bookkeeping; and the operators' audit of it.

Pure: how a record is stored is the store's business
(:mod:`shared.store.documents`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from shared.model.job import Job, new_run
from shared.model.status import Status

#: The lease time of a job no post-processing tick holds (a time always in the past).
FREE = datetime(1970, 1, 1, tzinfo=UTC)

#: Operator actions kept on a job, newest last; older ones are dropped.
AUDIT_KEEP = 20


@dataclass(frozen=True)
class AuditEntry:
    """One operator action on a job: who did what, when."""

    #: When the action was taken.
    time: datetime
    #: Who took it (an e-mail, or a name marked unverified).
    who: str
    #: What was done: ``retry``, ``fail``, ``reprocess``, ``drop``.
    action: str
    #: Why, or what came of it.
    detail: str = ""


@dataclass
class JobRecord:
    """A job, its status and the store's bookkeeping, as read from one document."""

    #: The job: its key fields, filter and datasets.
    job: Job
    #: Its state history, heartbeat and update count.
    status: Status
    #: When the job last changed (a state change or a counted update).
    last_update: datetime
    #: Firestore's update time of the document as read, for compare-and-set (None: not stored).
    update_time: datetime | None = None
    #: The next-job offer that handed this run of the job out ("" if added otherwise).
    offer: str = ""
    #: An offer that came while the job was in flight; it is made again when the job ends.
    reoffer: str = ""
    #: Runs of this job since it last completed: 1 for the first, +1 per retry of a failure.
    attempts: int = 1
    #: The error of the previous run, when this run is a retry.
    last_error: str = ""
    #: When a failed job may be handed out again; None if it is not to be retried.
    retry_at: datetime | None = None
    #: The post-processing tick that holds the job ("" when none).
    lease_owner: str = ""
    #: Until when the tick holds it (:data:`FREE` when none does).
    lease_until: datetime = FREE
    #: The BigQuery job of the current post-processing step.
    step_job: str = ""
    #: The attempt of the current post-processing step.
    step_attempt: int = 0
    #: Operator actions on this job, oldest first, at most :data:`AUDIT_KEEP` (kept across restarts).
    audit: list[AuditEntry] = field(default_factory=list)
    #: This run's token, new at every create and restart ("" for a job stored without one).
    run: str = ""
    #: Updates of this run counted in its progress shards and already in ``update_count``.
    progress_folded: int = 0
    #: When the job document last took a sum of this run's shards (None: never).
    progress_summed_at: datetime | None = None

    def note(self, entry: AuditEntry) -> None:
        """Append an operator action to the audit, dropping the oldest beyond :data:`AUDIT_KEEP`."""
        self.audit = [*self.audit, entry][-AUDIT_KEEP:]

    @property
    def key(self) -> str:
        """The job key."""
        return self.job.key()

    @property
    def last_activity(self) -> datetime:
        """The later of the last heartbeat and the last update."""
        return max(self.last_update, self.status.heartbeat_time)

    @classmethod
    def new(cls, job: Job, now: datetime, offer: str = "") -> JobRecord:
        """Return the record of a freshly added job."""
        return cls(job=job, status=Status.new(now), last_update=now, offer=offer, run=new_run())
