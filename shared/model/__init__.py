"""The pure job model: jobs, their status and records, the name rules; no I/O.

One module per noun, every public name re-exported here
(``from shared.model import Job, State, JobRecord``):

* :mod:`~shared.model.names` — the name rules and date formats.
* :mod:`~shared.model.job` — :class:`Job`, :class:`State`, :class:`Datasets`, keys and runs.
* :mod:`~shared.model.status` — :class:`Status` and its history of :class:`StateInfo`.
* :mod:`~shared.model.record` — :class:`JobRecord` (a job, its status and the
  tracker's bookkeeping), the operators' :class:`AuditEntry` and the
  :class:`RunSummary` of an earlier run.
* :mod:`~shared.model.reprocess` — :class:`ReprocessItem`, a queued reprocessing.
* :mod:`~shared.model.pause` — :class:`Pause`, an operator's pause.
* :mod:`~shared.model.job_filter` — :class:`JobFilter`, which jobs a listing is about.
"""

from datetime import UTC

from shared.model.job import (
    MAX_KEY_LENGTH,
    MAX_RUN_LENGTH,
    RUN_RE,
    RUN_SEPARATOR,
    Datasets,
    Job,
    RunId,
    State,
    midnight,
    new_run,
    utcnow,
    yesterday_date,
)
from shared.model.job_filter import EARLIEST_DATE, LATEST_DATE, JobFilter
from shared.model.names import (
    BIGQUERY_NAME_PATTERN,
    BUCKET_PATTERN,
    DATE_FORMAT,
    KEY_DATE_FORMAT,
    KEY_RE,
    NAME_PATTERN,
    SOURCE_PATTERN,
    bucket_problem,
    dataset_problem,
    datatype_problem,
    experiment_problem,
    parse_date,
    source_name,
    ymd,
)
from shared.model.pause import Pause
from shared.model.record import AUDIT_KEEP, FREE, AuditEntry, JobRecord, RunSummary
from shared.model.reprocess import ReprocessItem
from shared.model.status import (
    HISTORY_FULL_DETAILS,
    HISTORY_KEEP,
    KEEP_DETAIL,
    OLD_DETAIL_LENGTH,
    ZERO_TIME,
    StateInfo,
    Status,
)

__all__ = [
    "AUDIT_KEEP",
    "BIGQUERY_NAME_PATTERN",
    "BUCKET_PATTERN",
    "DATE_FORMAT",
    "EARLIEST_DATE",
    "FREE",
    "HISTORY_FULL_DETAILS",
    "HISTORY_KEEP",
    "KEEP_DETAIL",
    "KEY_DATE_FORMAT",
    "KEY_RE",
    "LATEST_DATE",
    "MAX_KEY_LENGTH",
    "MAX_RUN_LENGTH",
    "NAME_PATTERN",
    "OLD_DETAIL_LENGTH",
    "RUN_RE",
    "RUN_SEPARATOR",
    "SOURCE_PATTERN",
    "UTC",
    "ZERO_TIME",
    "AuditEntry",
    "Datasets",
    "Job",
    "JobFilter",
    "JobRecord",
    "Pause",
    "ReprocessItem",
    "RunId",
    "RunSummary",
    "State",
    "StateInfo",
    "Status",
    "bucket_problem",
    "dataset_problem",
    "datatype_problem",
    "experiment_problem",
    "midnight",
    "new_run",
    "parse_date",
    "source_name",
    "utcnow",
    "yesterday_date",
    "ymd",
]
