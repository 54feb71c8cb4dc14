"""Post-processing in BigQuery: the only module of the library that talks to BigQuery.

Each post-processing state of a job (see ``gardener-reference.md``, "Post-processing")
is one BigQuery job or call, started here and inspected later, so that no
function waits for BigQuery:

- ``loading`` (load job): the NDJSON files
  ``gs://{input}/{bucket}/{exp}/{type}/YYYY/MM/DD/*`` appended to ``{tmp}.{type}``;
- ``deduplicating`` (query job): a DML ``DELETE`` on ``{tmp}.{type}`` for the
  date that keeps, per ``id``, only the rows with the latest ``parser.Time``;
- ``copying`` (copy job): ``{tmp}.{type}$YYYYMMDD`` to ``{raw}.{type}$YYYYMMDD``,
  truncating the destination partition;
- ``deleting`` (no job): ``{tmp}.{type}$YYYYMMDD`` deleted synchronously;
- ``joining`` (query job): ``{raw}.{type}`` LEFT JOIN ``{raw}.annotation2``
  (annotation dates D-1..D) into ``{join}.{type}$YYYYMMDD``, truncating it.

:meth:`Warehouse.start` starts a step's job under a caller-chosen id
(:func:`job_id`); starting it again with the same id does nothing, so a
caller that lost track of a start may simply start again. :meth:`Warehouse.result`
maps the job to a :class:`StepResult`: RUNNING, DONE (with statistics, as the
Go detail), RETRY (a retryable job error: start a new attempt later) or FAILED.

The load uses the existing schema of ``{tmp}.{type}`` (no autodetect, and the
table is never created here): autodetection would infer column types from each
day's sample and could drift from the raw table's schema, making the copy
fail. A missing table is a FAILED load, as in the Go gardener.

Every project, dataset and table name is checked against BigQuery's naming
rules before it enters SQL or a job (ValueError otherwise); dates are
formatted here from ``Job.date``. Errors of the API calls themselves that mean
"try again later" become :class:`WarehouseUnavailable`, an
:class:`~shared.errors.Unavailable`; a start that BigQuery refuses raises
:class:`StepRejected`.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import requests
from google.api_core import exceptions as gexc

from shared import defaults
from shared.errors import Unavailable
from shared.gcs import TRANSIENT as GCS_TRANSIENT
from shared.model import Job, State, bucket_problem, dataset_problem, experiment_problem, ymd

if TYPE_CHECKING:  # imported where used: a process that runs no step never imports it
    from google.cloud import bigquery


class StepOutcome(str, enum.Enum):
    """Where a post-processing step stands."""

    RUNNING = "running"  # the BigQuery job is pending or running: ask again later
    DONE = "done"  # it succeeded: move to the next state
    RETRY = "retry"  # it failed in a way worth retrying: start a new attempt later
    FAILED = "failed"  # it failed for good: fail the tracker job
    #: BigQuery knows no job of that id: start it again under the same id (never a new one,
    #: which could run the step twice; an id that does exist is refused with Conflict).
    MISSING = "missing"


@dataclass(frozen=True)
class StepResult:
    """A step's outcome and a one-line detail for the tracker (statistics or the error)."""

    outcome: StepOutcome
    detail: str


@dataclass(frozen=True)
class Step:
    """One post-processing step: its state, its label in details, and its kind of work."""

    state: State
    label: str
    kind: str  # "load", "query", "copy" or "delete"


#: The steps this module runs, keyed by tracker state (``STEPS["loading"]`` works too).
STEPS: Mapping[State, Step] = MappingProxyType(
    {
        State.LOADING: Step(State.LOADING, "Load", "load"),
        State.DEDUPLICATING: Step(State.DEDUPLICATING, "Dedup", "query"),
        State.COPYING: Step(State.COPYING, "Copy", "copy"),
        State.DELETING: Step(State.DELETING, "Delete", "delete"),
        State.JOINING: Step(State.JOINING, "Join", "query"),
    }
)

#: Table the join takes annotations from, in the raw dataset.
ANNOTATION_TABLE = "annotation2"
#: Column the tables are partitioned on.
DATE_COLUMN = "date"

# -- Names ----------------------------------------------------------------------

#: Project ids: 6-30 of [a-z0-9-], starting with a letter, optionally domain-scoped.
_PROJECT_RE = re.compile(r"(?:[a-z0-9][a-z0-9.-]{0,61}[a-z0-9]:)?[a-z][a-z0-9-]{4,28}[a-z0-9]\Z")
#: Table ids: the ASCII subset of BigQuery's rule (letters, digits, ``_``, ``-``).
_TABLE_RE = re.compile(r"[A-Za-z0-9_-]{1,1024}\Z")
#: Job ids: letters, digits, ``_`` and ``-``, at most 1024.
_JOB_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,1024}\Z")
_JOB_ID_STEP_RE = re.compile(r"gardener_(?P<step>[A-Za-z]+)_")


def _check(kind: str, value: str, pattern: re.Pattern[str]) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise ValueError(f"invalid BigQuery {kind} {value!r}")
    return value


def _check_name(kind: str, value: str, problem: Callable[[str], str | None]) -> str:
    """Return ``value`` if the model's rule ``problem`` accepts it, else raise ValueError."""
    if not isinstance(value, str) or problem(value) is not None:
        raise ValueError(f"invalid BigQuery {kind} {value!r}")
    return value


def check_project(value: str) -> str:
    """Return ``value`` if it is a valid project id, else raise ValueError."""
    return _check("project id", value, _PROJECT_RE)


def check_dataset(value: str) -> str:
    """Return ``value`` if it is a valid dataset id, else raise ValueError."""
    return _check_name("dataset id", value, dataset_problem)


def check_table(value: str) -> str:
    """Return ``value`` if it is a valid table id (ASCII subset), else raise ValueError."""
    return _check("table id", value, _TABLE_RE)


# -- Job ids --------------------------------------------------------------------

_MAX_RUN = 64


def job_id(key: str, step: State, run: str, attempt: int) -> str:
    """Return the BigQuery job id of ``attempt`` at ``step`` of run ``run`` of job ``key``.

    ``gardener_{state}_{sha1(key)[:16]}_{run}_{attempt}``: the same arguments
    always give the same id, and different keys, steps, runs or attempts give
    different ones. ``run`` is opaque (the job's start time, say); characters
    a job id cannot hold become ``-``, and a run that had any (or is long) is
    followed by a short hash of itself so distinct runs stay distinct.
    """
    step = State(step)
    if step not in STEPS:
        raise ValueError(f"{step.value} is not a post-processing step")
    if not isinstance(attempt, int) or attempt < 0:
        raise ValueError(f"attempt must be a non-negative integer, not {attempt!r}")
    readable = re.sub(r"[^A-Za-z0-9_-]", "-", run)
    if readable != run or len(run) > _MAX_RUN or not run:
        readable = f"{readable[: _MAX_RUN - 9]}-{hashlib.sha1(run.encode()).hexdigest()[:8]}"
    digest = hashlib.sha1(key.encode()).hexdigest()[:16]
    return f"gardener_{step.value}_{digest}_{readable}_{attempt}"


def step_of(job_id: str) -> Step | None:
    """Return the step a :func:`job_id` names, or None for other ids."""
    m = _JOB_ID_STEP_RE.match(job_id)
    if m is None:
        return None
    try:
        return STEPS.get(State(m["step"]))
    except ValueError:
        return None


# -- Errors ---------------------------------------------------------------------

#: Error reasons (in ``errorResult`` or an API error) worth another attempt.
RETRYABLE_REASONS = frozenset(
    {
        "rateLimitExceeded",
        "backendError",
        "internalError",
        "badGateway",
        "jobBackendError",
        "jobInternalError",
        "jobRateLimitExceeded",
    }
)

#: Transport errors and API errors that mean "try again later": those of GCS (the same
#: Google API client stack), and a timeout of the client's own.
TRANSIENT: tuple[type[BaseException], ...] = (*GCS_TRANSIENT, TimeoutError)


def _streaming_buffer(text: str) -> bool:
    return "streaming buffer" in text.lower()


def _api_reasons(exc: BaseException) -> list[str]:
    errors = getattr(exc, "errors", None) or []
    return [e.get("reason", "") for e in errors if isinstance(e, Mapping)]


def is_retryable(error: BaseException | Mapping[str, Any]) -> bool:
    """Return whether ``error`` is worth retrying later.

    ``error`` is an ``errorResult``-style dict (``reason``, ``message``) or an
    exception of an API call. Retryable: a "streaming buffer" message, the
    reasons in :data:`RETRYABLE_REASONS`, HTTP 429 and 5xx, and transport errors.
    """
    if isinstance(error, Mapping):
        return error.get("reason") in RETRYABLE_REASONS or _streaming_buffer(
            str(error.get("message", ""))
        )
    if isinstance(error, requests.exceptions.SSLError):
        return False
    if isinstance(error, TRANSIENT):
        return True
    if isinstance(error, gexc.GoogleAPICallError):
        code = error.code if isinstance(error.code, int) else 0
        if code == 429 or code >= 500:
            return True
        if any(r in RETRYABLE_REASONS for r in _api_reasons(error)):
            return True
        return _streaming_buffer(str(error))
    return False


def _is_transient(exc: BaseException) -> bool:
    """A retryable API-call error that says the service, not the step, should be retried."""
    return is_retryable(exc) and not _streaming_buffer(str(exc))


class WarehouseUnavailable(Unavailable):
    """BigQuery did not answer, or asked to be retried later, during an API call."""

    def __init__(self, what: str, cause: BaseException) -> None:
        super().__init__(f"BigQuery unavailable {what}: {cause}")
        self.what = what


class StepRejected(Exception):
    """BigQuery refused to start a step's job; ``result`` says whether to retry (RETRY or FAILED)."""

    def __init__(self, result: StepResult) -> None:
        super().__init__(result.detail)
        self.result = result


def _short(text: str, limit: int = 600) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _error_text(errors: Sequence[Mapping[str, Any]]) -> str:
    """The distinct messages of ``errors`` (reason in brackets), at most three."""
    seen: list[str] = []
    for e in errors:
        text = f"{e.get('message', '')} [{e.get('reason', 'unknown')}]"
        if text not in seen:
            seen.append(text)
    more = f" (+{len(seen) - 3} more)" if len(seen) > 3 else ""
    return _short("; ".join(seen[:3]) + more)


# -- Details ------------------------------------------------------------------


def _go_duration(value: timedelta) -> str:
    """A duration rounded to 0.1 s in Go's ``time.Duration.String`` style (``1m2.3s``, ``400ms``)."""
    tenths = max(0, round(value.total_seconds() * 10))
    if tenths == 0:
        return "0s"
    if tenths < 10:
        return f"{tenths * 100}ms"
    hours, rest = divmod(tenths, 36000)
    minutes, rest = divmod(rest, 600)
    seconds = f"{rest // 10}.{rest % 10}".removesuffix(".0") + "s"
    if hours:
        return f"{hours}h{minutes}m{seconds}"
    if minutes:
        return f"{minutes}m{seconds}"
    return seconds


def _int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _done_detail(label: str, job: Any) -> str:
    """Go-style success detail: duration and whatever statistics the job has."""
    from google.cloud import bigquery

    started, ended = job.started, job.ended
    took = f"{label} took {_go_duration(ended - started)}" if started and ended else f"{label} done"
    parts = [took]
    # Copy statistics and totalSlotMs have no public accessor (to_api_repr drops statistics).
    stats: Mapping[str, Any] = getattr(job, "_properties", {}).get("statistics") or {}
    if isinstance(job, bigquery.LoadJob):
        rows, out_bytes = _int(job.output_rows), _int(job.output_bytes)
        files, in_bytes = _int(job.input_files), _int(job.input_file_bytes)
        if rows is not None:
            parts.append(
                f"{rows} rows" + (f" with {out_bytes} bytes" if out_bytes is not None else "")
            )
        if files is not None:
            parts.append(
                f"from {files} files" + (f" with {in_bytes} bytes" if in_bytes is not None else "")
            )
    elif isinstance(job, bigquery.QueryJob):
        slot_ms = _int(job.slot_millis)
        dml = _int(job.num_dml_affected_rows)
        processed, billed = _int(job.total_bytes_processed), _int(job.total_bytes_billed)
        if slot_ms is not None:
            parts.append(f"{slot_ms / 60000:.2f} Slot Minutes")
        if dml is not None:
            parts.append(f"{dml} Rows affected")
        if processed is not None:
            parts.append(f"{processed // 1_000_000} MB Processed")
        if billed is not None:
            parts.append(f"{billed // 1_000_000} MB Billed")
    elif isinstance(job, bigquery.CopyJob):
        copy = stats.get("copy") or {}
        rows, copied = _int(copy.get("copiedRows")), _int(copy.get("copiedLogicalBytes"))
        if rows is not None:
            parts.append(f"{rows} rows")
        if copied is not None:
            parts.append(f"{copied // 1_000_000} MB copied")
    if not isinstance(job, bigquery.QueryJob) and _int(stats.get("totalSlotMs")) is not None:
        parts.append(f"{int(stats['totalSlotMs']) / 60000:.2f} Slot Minutes")
    return ", ".join(parts)


# -- Plans --------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What a step asks of BigQuery, built without calling it.

    ``kind`` is ``load`` (``source`` is the URI pattern), ``query`` (``sql``;
    the join's destination is in ``config``), ``copy`` (``source`` table) or
    ``delete`` (no job; ``config`` is None). Table ids are ``project.dataset.table``,
    with a ``$YYYYMMDD`` partition decorator where the step works on one partition.
    """

    step: State
    kind: str
    config: bigquery.LoadJobConfig | bigquery.QueryJobConfig | bigquery.CopyJobConfig | None
    destination: str = ""
    source: str = ""
    sql: str = ""


def skip_detail(step: State, job: Job) -> str | None:
    """Return the detail of a step that has nothing to do for ``job`` (a join without a join dataset), else None."""
    if State(step) is State.JOINING and not job.datasets.join:
        return f"{job.datatype} does not require join"
    return None


class Warehouse:
    """Starts and inspects the BigQuery work of each post-processing step.

    ``project`` owns the datasets and runs the jobs; ``input_bucket`` holds
    the parsers' NDJSON output; ``location`` is where jobs run (None: BigQuery's
    default). ``timeout`` bounds each HTTP request and ``deadline`` all the
    attempts of one API call, retried on transient errors (seconds).
    """

    def __init__(
        self,
        client: bigquery.Client,
        project: str,
        input_bucket: str,
        location: str | None = None,
        *,
        timeout: float = defaults.BIGQUERY_TIMEOUT,
        deadline: float = defaults.BIGQUERY_CALL_DEADLINE,
    ) -> None:
        self._client = client
        self.project = check_project(project)
        self.input_bucket = _check_name("bucket name", input_bucket, bucket_problem)
        self.location = location
        self.timeout = timeout
        from google.cloud.bigquery.retry import DEFAULT_RETRY

        self._retry = DEFAULT_RETRY.with_timeout(deadline)

    # -- building ---------------------------------------------------------

    def _table(self, dataset: str, table: str, day: date | None = None) -> str:
        name = f"{check_project(self.project)}.{check_dataset(dataset)}.{check_table(table)}"
        return f"{name}${ymd(day)}" if day is not None else name

    def load_uri(self, job: Job) -> str:
        """Return the URI pattern of the job's NDJSON files."""
        _check_name("bucket name", job.bucket, bucket_problem)
        _check_name("experiment", job.experiment, experiment_problem)
        check_table(job.datatype)
        return (
            f"gs://{self.input_bucket}/{job.bucket}/{job.experiment}/{job.datatype}/"
            f"{ymd(job.date, '/')}/*"
        )

    def dedup_sql(self, job: Job) -> str:
        """Return the DML that keeps, per ``id`` on the job's date, the rows with the latest ``parser.Time``."""
        tmp = self._table(job.datasets.tmp, job.datatype)
        day = ymd(job.date, "-")
        return f"""\
# Delete all duplicate rows of one date: per id, keep the rows with the latest parser.Time.
DELETE
FROM `{tmp}` AS target
WHERE {DATE_COLUMN} = DATE "{day}"
# Rows that do not match a row to keep.
AND NOT EXISTS (
  WITH keep AS (
    SELECT * EXCEPT(row_number) FROM (
      SELECT
        id,
        parser.Time,
        ROW_NUMBER() OVER (
          PARTITION BY id, {DATE_COLUMN}
          ORDER BY parser.Time DESC
        ) row_number
      FROM (
        SELECT * FROM `{tmp}`
        WHERE {DATE_COLUMN} = DATE "{day}"
      )
    )
    WHERE row_number = 1
  )
  SELECT * FROM keep
  WHERE target.id = keep.id AND target.parser.Time = keep.Time
)
"""

    def join_sql(self, job: Job) -> str:
        """Return the query joining the job's raw rows with annotations of dates D−1..D."""
        raw = self._table(job.datasets.raw, job.datatype)
        ann = self._table(job.datasets.raw, ANNOTATION_TABLE)
        day = ymd(job.date, "-")
        before = ymd(job.date - timedelta(days=1), "-")
        return f"""\
# Join the {job.datatype} rows of one date with their annotations.
WITH raw_rows AS (
  SELECT * FROM `{raw}`
  WHERE {DATE_COLUMN} = DATE "{day}"
),
ann AS (
  SELECT * FROM `{ann}`
  WHERE {DATE_COLUMN} BETWEEN DATE "{before}" AND DATE "{day}"
)
SELECT raw_rows.id, raw_rows.{DATE_COLUMN}, raw_rows.parser,
       ann.* EXCEPT(id, {DATE_COLUMN}, parser),
       raw_rows.* EXCEPT(id, {DATE_COLUMN}, parser)
FROM raw_rows LEFT JOIN ann USING (id)
"""

    def build(self, step: State, job: Job) -> Plan:
        """Return the BigQuery work of ``step`` for ``job``; ValueError for a bad name or step."""
        from google.cloud import bigquery

        step = State(step)
        if step not in STEPS:
            raise ValueError(f"{step.value} is not a post-processing step")
        plan = functools.partial(Plan, step, STEPS[step].kind)
        if step is State.LOADING:
            load = bigquery.LoadJobConfig(
                source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON,
                write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
                create_disposition=bigquery.CreateDisposition.CREATE_NEVER,
            )
            tmp = self._table(job.datasets.tmp, job.datatype)
            return plan(load, destination=tmp, source=self.load_uri(job))
        if step is State.DEDUPLICATING:
            dedup = bigquery.QueryJobConfig(
                priority=bigquery.QueryPriority.BATCH, use_legacy_sql=False
            )
            tmp = self._table(job.datasets.tmp, job.datatype)
            return plan(dedup, destination=tmp, sql=self.dedup_sql(job))
        if step is State.COPYING:
            copy = bigquery.CopyJobConfig(
                write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE
            )
            raw = self._table(job.datasets.raw, job.datatype, job.date)
            tmp = self._table(job.datasets.tmp, job.datatype, job.date)
            return plan(copy, destination=raw, source=tmp)
        if step is State.DELETING:
            return plan(None, destination=self._table(job.datasets.tmp, job.datatype, job.date))
        if not job.datasets.join:  # joining
            raise ValueError(f"{job}: {skip_detail(step, job)}")
        destination = self._table(job.datasets.join, job.datatype, job.date)
        join = bigquery.QueryJobConfig(
            destination=destination,
            write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
            create_disposition=bigquery.CreateDisposition.CREATE_IF_NEEDED,
            time_partitioning=bigquery.TimePartitioning(
                type_=bigquery.TimePartitioningType.DAY, field=DATE_COLUMN
            ),
            schema_update_options=[
                bigquery.SchemaUpdateOption.ALLOW_FIELD_ADDITION,
                bigquery.SchemaUpdateOption.ALLOW_FIELD_RELAXATION,
            ],
            priority=bigquery.QueryPriority.BATCH,
            use_legacy_sql=False,
        )
        return plan(join, destination=destination, sql=self.join_sql(job))

    # -- running ----------------------------------------------------------

    def _exists(self, job_id: str) -> bool:
        try:
            self._get_job(job_id)
        except gexc.NotFound:
            return False
        return True

    def _get_job(self, job_id: str) -> Any:
        """BigQuery's job ``job_id`` (``NotFound`` if it has none), within the call deadline."""
        return self._client.get_job(
            job_id,
            project=self.project,
            location=self.location,
            retry=self._retry,
            timeout=self.timeout,
        )

    def start(self, step: State, job: Job, job_id: str) -> None:
        """Start ``step``'s BigQuery job for ``job`` under ``job_id``; do nothing if that job exists.

        Raises ValueError for a bad name, for ``deleting`` (use
        :meth:`delete_partition`) and for a join without a join dataset;
        :class:`WarehouseUnavailable` if BigQuery did not answer (starting
        again later is safe); :class:`StepRejected` if BigQuery refused the job.
        """
        from google.cloud import bigquery

        step = State(step)
        plan = self.build(step, job)
        if plan.kind == "delete":
            raise ValueError("deleting is not a BigQuery job; call delete_partition()")
        _check("job id", job_id, _JOB_ID_RE)
        label = STEPS[step].label
        common: dict[str, Any] = {
            "job_id": job_id,
            "project": self.project,
            "location": self.location,
            "retry": self._retry,
            "timeout": self.timeout,
        }
        try:
            # BigQuery answers a second insert of an id with 409 Conflict; asking
            # first also covers servers (the emulator) that would run it twice.
            if self._exists(job_id):
                return
            config = plan.config
            if isinstance(config, bigquery.LoadJobConfig):
                self._client.load_table_from_uri(
                    plan.source, plan.destination, job_config=config, **common
                )
            elif isinstance(config, bigquery.CopyJobConfig):
                self._client.copy_table(plan.source, plan.destination, job_config=config, **common)
            else:
                self._client.query(plan.sql, job_config=config, job_retry=None, **common)
        except gexc.Conflict:
            return  # started already, by us or by an earlier attempt of this call
        except Exception as exc:
            if _is_transient(exc):
                raise WarehouseUnavailable(f"starting {label} job {job_id}", exc) from exc
            if not isinstance(exc, gexc.GoogleAPICallError):
                raise
            raise StepRejected(self._error_result(label, job_id, exc)) from exc

    def _error_result(self, label: str, job_id: str, exc: gexc.GoogleAPICallError) -> StepResult:
        errors = [e for e in (exc.errors or []) if isinstance(e, Mapping)]
        text = _error_text(errors) if errors else _short(exc.message or str(exc))
        if is_retryable(exc):
            return StepResult(StepOutcome.RETRY, f"{label} job {job_id} will be retried: {text}")
        return StepResult(StepOutcome.FAILED, f"{label} job {job_id} failed: {text}")

    def result(self, job_id: str) -> StepResult:
        """Return where the job ``job_id`` stands (see :class:`StepOutcome`).

        A job that does not exist is MISSING (start it again under the same
        id). Raises :class:`WarehouseUnavailable` if BigQuery did not answer.
        """
        step = step_of(job_id)
        label = step.label if step else "BigQuery"
        try:
            bq_job = self._get_job(job_id)
        except gexc.NotFound:
            return StepResult(StepOutcome.MISSING, f"{label} job {job_id} not found")
        except Exception as exc:
            if _is_transient(exc):
                raise WarehouseUnavailable(f"reading job {job_id}", exc) from exc
            if not isinstance(exc, gexc.GoogleAPICallError):
                raise
            return self._error_result(label, job_id, exc)
        if bq_job.state != "DONE":
            return StepResult(
                StepOutcome.RUNNING,
                f"{label} job {job_id} {str(bq_job.state or 'pending').lower()}",
            )
        error = bq_job.error_result
        if not error:
            return StepResult(StepOutcome.DONE, _done_detail(label, bq_job))
        errors = [error, *(e for e in (bq_job.errors or []) if e != error)]
        text = _error_text(errors)
        if any(is_retryable(e) for e in errors):
            return StepResult(StepOutcome.RETRY, f"{label} job {job_id} will be retried: {text}")
        return StepResult(StepOutcome.FAILED, f"{label} job {job_id} failed: {text}")

    def delete_partition(self, job: Job) -> StepResult:
        """Delete the job's tmp partition now: DONE (also if it was already gone), RETRY or FAILED.

        Raises :class:`WarehouseUnavailable` if BigQuery did not answer.
        """
        plan = self.build(State.DELETING, job)
        try:
            self._client.delete_table(
                plan.destination, not_found_ok=True, retry=self._retry, timeout=self.timeout
            )
        except Exception as exc:
            if _is_transient(exc):
                raise WarehouseUnavailable(f"deleting {plan.destination}", exc) from exc
            if not isinstance(exc, gexc.GoogleAPICallError):
                raise
            text = _short(exc.message or str(exc))
            outcome = StepOutcome.RETRY if is_retryable(exc) else StepOutcome.FAILED
            verb = "will be retried" if outcome is StepOutcome.RETRY else "failed"
            return StepResult(outcome, f"Delete of {plan.destination} {verb}: {text}")
        return StepResult(StepOutcome.DONE, f"Successfully deleted partition {plan.destination}")
