"""Marshmallow schemas: the parser-facing request parameters and the Go-shaped JSON.

Request schemas turn query-string or form parameters into validated, typed
values: each loads into a frozen dataclass (``p.id``, not ``p["id"]``), as the
config's schemas do. A missing parameter and a malformed one raise different
errors so the HTTP layer can answer the Go tracker's codes (422 no id, 424 no
state or error) and 400 for the rest. Output schemas dump :mod:`shared.model` objects in the
exact JSON shape of the Go tracker (``Job``, ``Status``, ``StateInfo``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any, ClassVar

from marshmallow import (
    EXCLUDE,
    RAISE,
    Schema,
    ValidationError,
    fields,
    post_dump,
    post_load,
    pre_load,
    validate,
    validates_schema,
)

from shared import defaults
from shared.gotime import format_time, parse_time
from shared.limits import (
    INT64_MAX,
    MAX_INDEXED_STRING_BYTES,
    MAX_TEXT_BYTES,
    date_problem,
    time_problem,
)
from shared.model import (
    BUCKET_PATTERN,
    NAME_PATTERN,
    RUN_RE,
    RUN_SEPARATOR,
    SOURCE_PATTERN,
    UTC,
    Job,
    JobFilter,
    RunId,
    RunSummary,
    State,
    StateInfo,
)

#: Longest detail, error or reason accepted, in UTF-8 bytes (:data:`shared.limits.MAX_TEXT_BYTES`).
MAX_DETAIL_LENGTH = MAX_TEXT_BYTES

#: The message marshmallow reports for an absent required parameter.
MISSING = "Missing data for required field."

#: An experiment or datatype filter: the model's name rule (:data:`shared.model.NAME_PATTERN`).
_NAME_RE = rf"^{NAME_PATTERN}$"


class JobId(fields.String):
    """A job key, ``bucket/experiment/datatype/YYYYMMDD``, checked by :meth:`Job.from_key`.

    A parser's ``key~run`` (what ``next`` handed out) is refused with the key to give instead.
    """

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            Job.from_key(text)
        except ValueError as exc:
            key, separator, _ = text.partition(RUN_SEPARATOR)
            if separator and _is_key(key):
                raise ValidationError(
                    f"{exc}: {text!r} names a run of the job; give the job's key, {key}"
                ) from None
            raise ValidationError(str(exc)) from None
        return text


def _is_key(text: str) -> bool:
    try:
        Job.from_key(text)
    except ValueError:
        return False
    return True


class ParserJobId(fields.Field[RunId]):
    """The ``id`` a parser echoes: the ``key~run`` that ``next`` handed out, or a bare key."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> RunId:
        if not isinstance(value, str):
            raise ValidationError("Not a valid string.")
        try:
            return RunId.parse(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else str(value)


class StateName(fields.String):
    """A state given by its wire string; unknown names are rejected with the valid list.

    ``only``: the states the field may hold (default every state); another is refused.
    """

    def __init__(self, *, only: tuple[State, ...] = tuple(State), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.only = only

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> State:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            state = State.parse(text)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        if state not in self.only:
            allowed = " or ".join(s.value for s in self.only)
            raise ValidationError(f"must be {allowed}, not {state.value}")
        return state

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else State(value).value


class GoTime(fields.Field[datetime]):
    """A time in Go's RFC 3339 JSON format."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else format_time(value)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, str):
            raise ValidationError("expected an RFC 3339 time string")
        try:
            return parse_time(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


def _within_text_bytes(text: str) -> None:
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_TEXT_BYTES:
        raise ValidationError(f"{size} bytes (UTF-8); at most {MAX_TEXT_BYTES} are accepted")


def _text(**kwargs: Any) -> fields.String:
    return fields.String(validate=_within_text_bytes, **kwargs)


def in_window(value: datetime | date) -> None:
    """Refuse a time (or job date) outside the window the tracker stores (:mod:`shared.limits`)."""
    when = value if isinstance(value, datetime) else datetime.combine(value, time(0), UTC)
    problem = time_problem(when)
    if problem:
        raise ValidationError(problem)


def job_date_in_window(value: date) -> None:
    """Refuse a job date outside the dates the tracker accepts (:func:`shared.limits.date_problem`)."""
    problem = date_problem(value)
    if problem:
        raise ValidationError(problem)


def _in_window_or_zero(value: datetime) -> None:
    """As :func:`in_window`, but Go's zero time (no heartbeat yet) is allowed."""
    problem = time_problem(value, zero_allowed=True)
    if problem:
        raise ValidationError(problem)


def _count(value: int) -> None:
    """Refuse a count Firestore cannot store (negative, or beyond int64)."""
    if value < 0:
        raise ValidationError("must not be negative")
    if value > INT64_MAX:
        raise ValidationError(f"{value} does not fit in a 64-bit integer (at most {INT64_MAX})")


class _Params(Schema):
    """Request parameters; unknown ones are ignored, empty ones count as missing.

    They load into the frozen dataclass ``_loads_into``, its fields named as the schema's.
    """

    class Meta:
        unknown = EXCLUDE

    _empty_is_missing: tuple[str, ...] = ()
    _loads_into: ClassVar[type[Any]]

    @pre_load
    def _drop_empty(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return {k: v for k, v in data.items() if not (k in self._empty_is_missing and v == "")}

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> Any:
        return self._loads_into(**data)


@dataclass(frozen=True)
class Heartbeat:
    """A parser's heartbeat: the job (and run) it is alive on."""

    id: RunId


@dataclass(frozen=True)
class Update:
    """A parser's update: the job (and run), its new state and a detail."""

    id: RunId
    state: State
    detail: str


@dataclass(frozen=True)
class ErrorReport:
    """A parser's report of a parse error."""

    id: RunId
    error: str


@dataclass(frozen=True)
class StatusRequest:
    """What the status page shows: its format, filters, a row limit, the refresh period (s, 0 off)."""

    format: str
    state: State | None
    experiment: str | None
    datatype: str | None
    limit: int
    refresh: int
    #: Days of the date × source grid, back from yesterday.
    days: int = defaults.STATUS_GRID_DAYS


class HeartbeatParams(_Params):
    """Parameters of ``/v2/job/heartbeat``."""

    _loads_into = Heartbeat
    _empty_is_missing = ("id",)
    id = ParserJobId(required=True)


class UpdateParams(_Params):
    """Parameters of ``/v2/job/update``; ``detail`` defaults to empty."""

    _loads_into = Update
    _empty_is_missing = ("id", "state")
    id = ParserJobId(required=True)
    state = StateName(required=True)
    detail = _text(load_default="")


class ErrorParams(_Params):
    """Parameters of ``/v2/job/error``."""

    _loads_into = ErrorReport
    _empty_is_missing = ("id", "error")
    id = ParserJobId(required=True)
    error = _text(required=True)


class StatusQuery(_Params):
    """Query of the status page: output format, filters, a row limit, the refresh period (s, 0
    off), the days of the date × source grid."""

    _loads_into = StatusRequest
    _empty_is_missing = ("format", "state", "experiment", "datatype", "limit", "refresh", "days")
    format = fields.String(load_default="html", validate=validate.OneOf(["html", "json"]))
    state = StateName(load_default=None)
    experiment = fields.String(load_default=None, validate=validate.Regexp(_NAME_RE))
    datatype = fields.String(load_default=None, validate=validate.Regexp(_NAME_RE))
    limit = fields.Integer(
        load_default=defaults.STATUS_LIMIT, validate=validate.Range(min=1, max=100_000)
    )
    refresh = fields.Integer(
        load_default=defaults.STATUS_REFRESH, validate=validate.Range(min=0, max=86_400)
    )
    days = fields.Integer(
        load_default=defaults.STATUS_GRID_DAYS,
        validate=validate.Range(
            min=1,
            max=defaults.STATUS_GRID_MAX_DAYS,
            error=f"days of the grid must be 1 to {defaults.STATUS_GRID_MAX_DAYS}",
        ),
    )


class DatasetsSchema(Schema):
    """Go ``Datasets``: ``{"Tmp", "Raw", "Join"}``."""

    tmp = fields.String(data_key="Tmp", load_default="")
    raw = fields.String(data_key="Raw", load_default="")
    join = fields.String(data_key="Join", load_default="")


class GoDate(GoTime):
    """A job date, as Go's UTC-midnight ``time.Time``."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else f"{value.year:04d}-{value:%m-%d}T00:00:00Z"

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        return super()._deserialize(value, attr, data, **kwargs).date()


class JobSchema(Schema):
    """Go ``Job``; ``Filter`` is omitted when empty, as Go's ``omitempty`` does."""

    bucket = fields.String(data_key="Bucket", required=True)
    experiment = fields.String(data_key="Experiment", required=True)
    datatype = fields.String(data_key="Datatype", required=True)
    date = GoDate(data_key="Date", required=True, validate=in_window)
    filter = fields.String(data_key="Filter", load_default="")
    datasets = fields.Nested(DatasetsSchema, data_key="Datasets", load_default=dict)

    @post_dump
    def _omit_empty_filter(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        if not data.get("Filter"):
            data.pop("Filter", None)
        return data


class StateInfoSchema(Schema):
    """Go ``StateInfo``."""

    state = StateName(data_key="State", required=True)
    start = GoTime(data_key="Start", required=True, validate=in_window)
    detail_time = GoTime(data_key="DetailTime", required=True, validate=in_window)
    detail = fields.String(data_key="Detail", load_default="")


class StatusSchema(Schema):
    """Go ``Status``: heartbeat time, update count and history.

    Loading checks what the store can hold: times within :data:`shared.limits.MIN_TIME`
    to :data:`~shared.limits.MAX_TIME` (the heartbeat may be Go's zero time), a count
    within int64.
    """

    heartbeat_time = GoTime(data_key="HeartbeatTime", required=True, validate=_in_window_or_zero)
    update_count = fields.Integer(data_key="UpdateCount", required=True, validate=_count)
    history = fields.List(
        fields.Nested(StateInfoSchema),
        data_key="History",
        required=True,
        validate=validate.Length(min=1),
    )


def _run_token(value: str) -> None:
    """Refuse a run token that is neither empty (a job stored without one) nor a token."""
    if value and not RUN_RE.match(value):
        raise ValidationError(f"malformed run {value!r}; expected 1 to 32 characters 0-9 a-z")


def _offer(value: str) -> None:
    """Refuse an earlier run's offer longer than the job's own offer may be (an indexed string)."""
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > MAX_INDEXED_STRING_BYTES:
        raise ValidationError(
            f"{size} bytes; an offer holds at most {MAX_INDEXED_STRING_BYTES}, as the job's own"
        )


class RunSummarySchema(Schema):
    """An earlier run of a job (:class:`~shared.model.RunSummary`): a snapshot's ``Runs`` (a
    field Go ignores) and the job page's JSON. Loads into a :class:`~shared.model.RunSummary`."""

    run = fields.String(data_key="Run", load_default="", validate=_run_token)
    attempt = fields.Integer(data_key="Attempt", load_default=1, validate=_count)
    offer = fields.String(data_key="Offer", load_default="", validate=_offer)
    started = GoTime(data_key="Started", required=True, validate=in_window)
    ended = GoTime(data_key="Ended", required=True, validate=in_window)
    #: An earlier run ended in one of these.
    state = StateName(data_key="State", required=True, only=(State.COMPLETE, State.FAILED))
    error = fields.String(data_key="Error", load_default="")
    history = fields.List(fields.Nested(StateInfoSchema), data_key="History", load_default=list)
    dropped = fields.Integer(data_key="Dropped", load_default=0, validate=_count)
    updates = fields.Integer(data_key="Updates", load_default=0, validate=_count)

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> RunSummary:
        entries = tuple(
            StateInfo(e["state"], e["start"], e["detail_time"], e["detail"])
            for e in data["history"]
        )
        return RunSummary(**{**data, "history": entries})


# --- the operator's admin API ------------------------------------------------------------

#: A source by its operator name, ``experiment/datatype``.
SOURCE_NAME = SOURCE_PATTERN

#: Most jobs ``/admin/jobs`` lists in one answer.
MAX_ADMIN_LIMIT = 10_000


#: Most jobs one bulk retry or fail acts on (and its default).
MAX_BULK = 500


@dataclass(frozen=True)
class BulkRequest:
    """A retry or fail of every job a filter matches (``reason`` for a fail); ``dry_run`` writes nothing."""

    state: State | None
    experiment: str | None
    datatype: str | None
    first: date | None
    last: date | None
    limit: int
    reason: str
    dry_run: bool


@dataclass(frozen=True)
class JobRef:
    """One job, by key."""

    id: str


@dataclass(frozen=True)
class FailRequest:
    """An operator's failing of a job, and why."""

    id: str
    reason: str


@dataclass(frozen=True)
class ReprocessRange:
    """Job dates ``first``–``last`` of ``sources`` (``experiment/datatype``; none: every source)."""

    first: date
    last: date
    sources: tuple[str, ...]


@dataclass(frozen=True)
class PauseRequest:
    """What to pause or resume (``historical`` or ``experiment/datatype``), and why."""

    target: str
    reason: str


@dataclass(frozen=True)
class NoParams:
    """A call without parameters."""


@dataclass(frozen=True)
class ImportRequest:
    """The snapshot object to import, ``gs://BUCKET/OBJECT``."""

    source: str


def _check_range(data: dict[str, Any]) -> None:
    first, last = data.get("first"), data.get("last")
    if first and last and first > last:
        raise ValidationError(f"from ({first}) is after to ({last})", "to")


class AdminJobsQuery(_Params):
    """``GET /admin/jobs``: filters (state, experiment, datatype, job dates ``from``–``to``) and a limit."""

    _loads_into: ClassVar[type[Any]] = JobFilter  # AdminBulkParams loads into its own
    _empty_is_missing: tuple[str, ...] = ("state", "experiment", "datatype", "from", "to", "limit")
    state = StateName(load_default=None)
    experiment = fields.String(load_default=None, validate=validate.Regexp(_NAME_RE))
    datatype = fields.String(load_default=None, validate=validate.Regexp(_NAME_RE))
    first = fields.Date(data_key="from", load_default=None)
    last = fields.Date(data_key="to", load_default=None)
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=MAX_ADMIN_LIMIT))

    @validates_schema
    def _range(self, data: dict[str, Any], **kwargs: Any) -> None:
        _check_range(data)


class AdminBulkParams(AdminJobsQuery):
    """``POST /admin/jobs/retry`` and ``/admin/jobs/fail``: the filters of ``/admin/jobs``, ``reason``, ``dry_run``.

    At least one filter is required, so that no call acts on every job by accident;
    an unknown parameter (``dry-run`` for ``dry_run``) is refused, as these calls write.
    """

    class Meta:
        unknown = RAISE

    _loads_into = BulkRequest
    _empty_is_missing = ("state", "experiment", "datatype", "from", "to", "limit", "reason")
    limit = fields.Integer(load_default=MAX_BULK, validate=validate.Range(min=1, max=MAX_BULK))
    reason = _text(load_default="")
    dry_run = fields.Boolean(load_default=False)

    @validates_schema
    def _range(self, data: dict[str, Any], **kwargs: Any) -> None:
        _check_range(data)
        chosen = ("state", "experiment", "datatype", "first", "last")
        if all(data.get(name) is None for name in chosen):
            raise ValidationError(
                "give at least one filter: state, experiment, datatype, from or to", "state"
            )


class AdminJobParams(_Params):
    """``GET /admin/job`` and ``POST /admin/job/retry``: the job ``id``."""

    _loads_into: ClassVar[type[Any]] = JobRef  # AdminFailParams loads into its own
    _empty_is_missing: tuple[str, ...] = ("id",)
    id = JobId(required=True)


class AdminFailParams(AdminJobParams):
    """``POST /admin/job/fail``: the job ``id`` and the ``reason`` (required)."""

    _loads_into = FailRequest
    _empty_is_missing = ("id", "reason")
    reason = _text(required=True)


class AdminReprocessParams(_Params):
    """``POST /admin/reprocess``: job dates ``from``–``to`` and ``sources`` (comma-separated; all if absent)."""

    _loads_into = ReprocessRange
    _empty_is_missing = ("from", "to", "sources")
    first = fields.Date(data_key="from", required=True, validate=job_date_in_window)
    last = fields.Date(data_key="to", required=True, validate=job_date_in_window)
    sources = fields.String(
        load_default="",
        validate=validate.Regexp(
            rf"^(|{SOURCE_NAME}(,{SOURCE_NAME})*)$",
            error="expected experiment/datatype[,experiment/datatype...]",
        ),
    )

    @validates_schema
    def _range(self, data: dict[str, Any], **kwargs: Any) -> None:
        _check_range(data)

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> ReprocessRange:
        return ReprocessRange(
            data["first"], data["last"], tuple(s for s in data["sources"].split(",") if s)
        )


class AdminCancelReprocessParams(AdminReprocessParams):
    """``POST /admin/reprocess/cancel``: as ``/admin/reprocess``, job dates ``from``–``to`` and ``sources``."""


class AdminPauseParams(_Params):
    """``POST /admin/pause`` and ``/admin/resume``: ``target`` (``historical`` or ``experiment/datatype``)."""

    _loads_into = PauseRequest
    _empty_is_missing = ("target", "reason")
    target = fields.String(
        required=True,
        validate=validate.Regexp(
            rf"^(historical|{SOURCE_NAME})$", error="expected historical or experiment/datatype"
        ),
    )
    reason = _text(load_default="")


class AdminNoParams(_Params):
    """Admin calls without parameters (``/admin/controls``, ``/admin/snapshot/export``)."""

    _loads_into = NoParams


class AdminImportParams(_Params):
    """``POST /admin/snapshot/import``: ``source``, a snapshot object ``gs://BUCKET/OBJECT``."""

    _loads_into = ImportRequest
    _empty_is_missing = ("source",)
    source = fields.String(
        required=True,
        validate=validate.Regexp(
            rf"^gs://{BUCKET_PATTERN}/[^\r\n]{{1,1024}}$", error="expected gs://BUCKET/OBJECT"
        ),
    )


# --- the job page ------------------------------------------------------------------------


@dataclass(frozen=True)
class JobPageRequest:
    """What the job page shows: one job, by key, as HTML or JSON."""

    id: str
    format: str


class JobPageQuery(_Params):
    """Query of the job page, ``/status/job``: the job ``id`` (its key) and the output format."""

    _loads_into = JobPageRequest
    _empty_is_missing = ("id", "format")
    id = JobId(required=True)
    format = fields.String(load_default="html", validate=validate.OneOf(["html", "json"]))
