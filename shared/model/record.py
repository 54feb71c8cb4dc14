"""A job record: a job, its status and the tracker's bookkeeping; the operators' audit of it
and the summaries of its earlier runs.

Pure: how a record is stored is the store's business
(:mod:`shared.store.documents`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from shared import defaults
from shared.model.job import Job, State, new_run
from shared.model.status import OLD_DETAIL_LENGTH, StateInfo, Status

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


def _cut(text: str, length: int) -> str:
    """``text``, cut to ``length`` characters (the last one an ellipsis) when longer."""
    return text if len(text) <= length else text[: length - 1] + "…"


@dataclass(frozen=True)
class RunSummary:
    """An earlier run of a job, as it ended: kept on the job when it is started again.

    Bounded: its history holds the first entry and the latest of the run, at most
    :data:`~shared.defaults.RUN_HISTORY_KEEP` (the others counted in ``dropped``),
    each detail cut to :data:`~shared.model.OLD_DETAIL_LENGTH` characters, and its
    error to :data:`~shared.defaults.RUN_ERROR_LENGTH`.
    """

    #: The run's token ("" for a job stored without one).
    run: str
    #: Which attempt the run was (1 for the first since the job last completed).
    attempt: int
    #: The next-job offer that handed it out ("" if added otherwise).
    offer: str
    #: When it started (its first history entry).
    started: datetime
    #: When it ended (it entered its final state).
    ended: datetime
    #: Its final state: ``complete`` or ``failed``.
    state: State
    #: Its error when it failed, else "".
    error: str
    #: Its history, first entry and latest, oldest first.
    history: tuple[StateInfo, ...]
    #: History entries of the run left out of :attr:`history` (between the first and the kept).
    dropped: int = 0
    #: Updates the run counted.
    updates: int = 0

    def bounded(self) -> RunSummary:
        """Return the summary within its bounds: the first history entry and the latest, at
        most :data:`~shared.defaults.RUN_HISTORY_KEEP` (the others counted in ``dropped``),
        details and error cut. Applied to every run kept, a restored one too."""
        keep = max(1, defaults.RUN_HISTORY_KEEP - 1)
        tail = list(self.history[1:][-keep:])
        kept = [*self.history[:1], *tail]
        return replace(
            self,
            error=_cut(self.error, defaults.RUN_ERROR_LENGTH),
            history=tuple(replace(e, detail=_cut(e.detail, OLD_DETAIL_LENGTH)) for e in kept),
            dropped=self.dropped + len(self.history) - len(kept),
        )

    @classmethod
    def of(cls, record: JobRecord) -> RunSummary:
        """Return the bounded summary of ``record``'s run as it stands (a finished job's, to keep it)."""
        status = record.status
        whole = cls(
            run=record.run,
            attempt=record.attempts,
            offer=record.offer,
            started=status.start_time,
            ended=status.state_change_time,
            state=status.state,
            error=status.error,
            history=tuple(status.history),
            dropped=status.dropped,
            updates=status.update_count,
        )
        return whole.bounded()


def _latest(runs: list[RunSummary]) -> list[RunSummary]:
    """The latest :data:`~shared.defaults.RUNS_KEEP` of ``runs`` (none when it is 0)."""
    return runs[max(0, len(runs) - defaults.RUNS_KEEP) :]


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
    #: Earlier runs, oldest first, at most :data:`~shared.defaults.RUNS_KEEP` (kept across restarts).
    runs: list[RunSummary] = field(default_factory=list)

    def note(self, entry: AuditEntry) -> None:
        """Append an operator action to the audit, dropping the oldest beyond :data:`AUDIT_KEEP`."""
        self.audit = [*self.audit, entry][-AUDIT_KEEP:]

    def keep_run(self, ended: JobRecord) -> None:
        """Add the summary of the finished run ``ended`` to :attr:`runs` (``ended``'s earlier
        runs before it), dropping the oldest beyond :data:`~shared.defaults.RUNS_KEEP`."""
        self.runs = _latest([*ended.runs, RunSummary.of(ended)])

    def restore_runs(self, runs: list[RunSummary]) -> None:
        """Set :attr:`runs` from a snapshot: the latest :data:`~shared.defaults.RUNS_KEEP`, each bounded."""
        self.runs = [r.bounded() for r in _latest(runs)]

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
