"""The job service's configuration: the Go gardener's YAML format, strictly validated.

Where the config comes from
---------------------------
A deployment reads one YAML file: the path in the ``GARDENER_CONFIG``
environment variable if it is set, else ``config/gardener.yml`` shipped with the
function source (the directory that holds the ``shared`` package; see
:func:`default_config_path`). ``{{NAME}}`` placeholders (``{{ NAME }}`` too) in
any string value are filled from the function's environment variables, e.g.
``bucket: archive-{{NDT_SOURCE_PROJECT}}``; a placeholder whose variable is not
set is an error. Substitution happens after YAML parsing, so a value may hold
any character; a value that is *only* a placeholder must be quoted
(``bucket: "{{BUCKET}}"``), or YAML reads the braces as a mapping.

Format (the Go service's, plus the optional ``daily_delay`` and ``min_cycle_interval``)::

    start_date: 2015-11-19          # first date of the historical stream
    tracker:
      timeout: 5h                   # Go durations: 5h, 1m, 10h30m, 1.5h, 500ms
    monitor:
      polling_interval: 1m
    daily_delay: 10h30m             # optional: the daily job for D is available
                                    # at D + 24h + daily_delay (UTC)
    min_cycle_interval: 0s          # optional: a historical cycle starts at least
                                    # this long after the previous one started
    sources:                        # at least one; jobs of a date go out in this order
    - bucket: archive-measurement-lab
      experiment: ndt
      datatype: ndt7
      filter: ""                    # optional regex over archive names
      target_datasets: {tmp: tmp_ndt, raw: raw_ndt, join: ndt}  # join optional
      daily_only: true              # optional, default false
      full_history: false           # optional, default false; not with daily_only

Unknown or repeated keys are errors. Every problem is collected and reported
in one :class:`ConfigError`, each line prefixed by the dotted path of the bad
value, e.g. ``sources[3].target_datasets.tmp: ...``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import re2  # type: ignore[import-untyped]
import yaml
from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    post_load,
    pre_load,
    validates,
    validates_schema,
)
from marshmallow.exceptions import SCHEMA

from shared import defaults, transitions
from shared.gotime import parse_duration
from shared.model import (
    Datasets,
    Job,
    State,
    bucket_problem,
    dataset_problem,
    datatype_problem,
    experiment_problem,
    parse_date,
)
from shared.schemas import job_date_in_window
from shared.streams import MAX_SOURCES

#: Environment variable holding the config file's path.
CONFIG_ENV = "GARDENER_CONFIG"

#: The path prefix of problems that concern the whole file.
ROOT = "config"

_Path = tuple[str | int, ...]
_T = TypeVar("_T")


@dataclass(frozen=True)
class Source:
    """One bucket/experiment/datatype the job service hands out jobs for."""

    bucket: str
    experiment: str
    datatype: str
    filter: str = ""
    datasets: Datasets = field(default_factory=Datasets)
    daily_only: bool = False
    full_history: bool = False
    #: Post-processing steps, in order; None for the standard chain, () for none.
    pipeline: tuple[State, ...] | None = None

    def job(self, day: date) -> Job:
        """Return this source's job of ``day``, with its filter and datasets."""
        return Job(self.bucket, self.experiment, self.datatype, day, self.filter, self.datasets)


@dataclass(frozen=True)
class Config:
    """The job service's configuration; sources in config order."""

    start_date: date
    tracker_timeout: timedelta
    polling_interval: timedelta
    sources: tuple[Source, ...]
    daily_delay: timedelta = defaults.DAILY_DELAY
    #: The least time between the starts of two historical cycles (0: no pacing).
    min_cycle_interval: timedelta = defaults.MIN_CYCLE_INTERVAL

    @property
    def needs_bigquery(self) -> bool:
        """Whether a source has BigQuery steps (any pipeline but the empty one)."""
        return any(source.pipeline != () for source in self.sources)


class ConfigError(ValueError):
    """A bad config: the message lists every problem, one ``path: message`` per line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


# --- validators --------------------------------------------------------------


def _refuse(kind: str, problem: Callable[[str], str | None]) -> Callable[[str], None]:
    """A validator that refuses a name the model's rule ``problem`` finds fault with."""

    def check(name: str) -> None:
        why = problem(name)
        if why:
            raise ValidationError(f"invalid {kind} {name!r}: {why}")

    return check


_check_bucket = _refuse("bucket name", bucket_problem)
_check_experiment = _refuse("experiment", experiment_problem)
_check_datatype = _refuse("datatype", datatype_problem)
_check_dataset = _refuse("BigQuery dataset id", dataset_problem)


def _check_optional_dataset(name: str) -> None:
    if name:
        _check_dataset(name)


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # the error is reported with the config's other problems


def _go_refuses(pattern: str) -> str | None:
    """Say what Go's regexp refuses in a pattern RE2 accepts, or None.

    RE2 accepts ``\\C`` (any byte), which Go's regexp does not support, and
    ``(?<name>…)``, which Go accepts only from Go 1.22. The scan skips escaped
    characters, ``\\Q…\\E`` literals and character classes, where neither means anything.
    """
    i, n, in_class = 0, len(pattern), False
    while i < n:
        if pattern.startswith("\\Q", i):
            end = pattern.find("\\E", i + 2)
            i = n if end < 0 else end + 2
        elif pattern[i] == "\\":
            if pattern.startswith("\\C", i):
                return "\\C (any byte) is not supported by Go's regexp"
            i += 2
        elif in_class:
            if pattern.startswith("[:", i) and (end := pattern.find(":]", i + 2)) >= 0:
                i = end + 2
            else:
                in_class = pattern[i] != "]"
                i += 1
        elif pattern[i] == "[":
            in_class = True
            i += 1
            i += pattern.startswith("^", i)
            i += pattern.startswith("]", i)  # a ] first in a class is a literal
        elif pattern.startswith("(?<", i) and not pattern.startswith(("(?<=", "(?<!"), i):
            return "a named group (?<name>...) needs Go 1.22 or later; write (?P<name>...)"
        else:
            i += 1
    return None


def _check_filter(pattern: str) -> None:
    """Refuse a filter the parsers cannot compile: they use Go's regexp, RE2 syntax."""
    try:
        re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        reason = (
            exc.args[0].decode(errors="replace")
            if exc.args and isinstance(exc.args[0], bytes)
            else str(exc)
        )
        raise ValidationError(
            f"invalid regular expression {pattern!r}: RE2, the parsers' regexp syntax, refuses it:"
            f" {reason}"
        ) from None
    refused = _go_refuses(pattern)
    if refused:
        raise ValidationError(
            f"invalid regular expression {pattern!r}: the parsers compile it with Go's regexp,"
            f" which refuses it: {refused}"
        )


def _positive(value: timedelta) -> None:
    if value <= timedelta(0):
        raise ValidationError("must be greater than 0")


def _non_negative(value: timedelta) -> None:
    if value < timedelta(0):
        raise ValidationError("must not be negative")


# --- fields ------------------------------------------------------------------

#: Messages of a required field that is absent or empty.
_REQUIRED: dict[str, Any] = {"required": "missing", "null": "missing (the value is empty)"}


class _Text(fields.String):
    """A string; anything else (a number, a list) is an error."""

    default_error_messages: dict[str, Any] = {"invalid": "expected a string"}  # noqa: RUF012


class _Flag(fields.Field[bool]):
    """A boolean: YAML true/false, or the strings ``true``/``false`` (from a placeholder)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise ValidationError(f"expected true or false, got {value!r}")


def _parsed(parse: Callable[[str], _T], value: Any, expected: str) -> _T:
    """Return ``parse(value)`` for a string; anything else, or a ValueError, is a ValidationError."""
    if not isinstance(value, str):
        raise ValidationError(f"expected {expected}, got {value!r}")
    try:
        return parse(value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


class _Duration(fields.Field[timedelta]):
    """A Go duration string (``5h``, ``10h30m``); a bare number other than 0 is an error."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> timedelta:
        if isinstance(value, bool):
            raise ValidationError(f'expected a Go duration such as "5h", got {value!r}')
        if isinstance(value, (int, float)):
            if value == 0:
                return timedelta(0)
            raise ValidationError(
                f'expected a Go duration with a unit, such as "{value}s" or "{value}m";'
                f" got the bare number {value!r}"
            )
        return _parsed(parse_duration, value, 'a Go duration such as "5h"')


class _Date(fields.Field[date]):
    """A calendar date: a YAML date or a ``YYYY-MM-DD`` string."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> date:
        if isinstance(value, datetime):
            raise ValidationError("expected a date YYYY-MM-DD, not a date and time")
        if isinstance(value, date):
            return value
        return _parsed(parse_date, value, "a date YYYY-MM-DD")


# --- schemas -----------------------------------------------------------------


class _Strict(Schema):
    """A mapping with a fixed set of keys; unknown keys are errors naming the allowed ones."""

    class Meta:
        unknown = RAISE

    #: Keys that may be given as null, meaning "not given" (as Go's YAML decoder does).
    _nullable: tuple[str, ...] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        keys = ", ".join(sorted(f.data_key or name for name, f in self.load_fields.items()))
        self.error_messages = {
            **self.error_messages,
            "type": "expected a mapping",
            "unknown": f"unknown key (expected one of: {keys})",
        }

    @pre_load
    def _drop_nulls(self, data: Any, **kwargs: Any) -> Any:
        if isinstance(data, Mapping) and self._nullable:
            return {k: v for k, v in data.items() if not (k in self._nullable and v is None)}
        return data


class TargetDatasetsSchema(_Strict):
    """``target_datasets``: BigQuery datasets ``tmp`` and ``raw``, optional ``join``.

    The config's YAML shape; the Go JSON shape (``Tmp``, ``Raw``, ``Join``) is
    :class:`shared.schemas.DatasetsSchema`.
    """

    _nullable = ("join",)
    tmp = _Text(required=True, error_messages=_REQUIRED, validate=_check_dataset)
    raw = _Text(required=True, error_messages=_REQUIRED, validate=_check_dataset)
    join = _Text(load_default="", validate=_check_optional_dataset)

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> Datasets:
        return Datasets(**data)


class SourceSchema(_Strict):
    """One entry of ``sources``."""

    _nullable = ("filter", "daily_only", "full_history")
    bucket = _Text(required=True, error_messages=_REQUIRED, validate=_check_bucket)
    experiment = _Text(required=True, error_messages=_REQUIRED, validate=_check_experiment)
    datatype = _Text(required=True, error_messages=_REQUIRED, validate=_check_datatype)
    filter = _Text(load_default="", validate=_check_filter)
    datasets = fields.Nested(
        TargetDatasetsSchema, data_key="target_datasets", required=True, error_messages=_REQUIRED
    )
    daily_only = _Flag(load_default=False)
    full_history = _Flag(load_default=False)
    pipeline = fields.List(_Text(), load_default=None, allow_none=True)

    @validates("pipeline")
    def _check_pipeline(self, value: list[str] | None, **kwargs: Any) -> None:
        if value is None:
            return
        try:
            steps = [State.parse(name) for name in value]
            transitions.check_path([State.POST_PROCESSING, *steps, State.COMPLETE])
        except ValueError as exc:
            raise ValidationError(f"not a pipeline the transition table allows: {exc}") from None

    @validates_schema(skip_on_field_errors=False)
    def _check_source(self, data: dict[str, Any], **kwargs: Any) -> None:
        problems = []
        if data.get("daily_only") and data.get("full_history"):
            problems.append("daily_only and full_history cannot both be true")
        if all(k in data for k in ("bucket", "experiment", "datatype")):
            job = Job(data["bucket"], data["experiment"], data["datatype"], date(2000, 1, 1))
            try:
                Job.from_key(job.key())
            except ValueError as exc:
                problems.append(f"the job ids of this source would be invalid: {exc}")
        if problems:
            raise ValidationError(problems)

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> Source:
        if data.get("pipeline") is not None:
            data["pipeline"] = tuple(State.parse(name) for name in data["pipeline"])
        return Source(**data)


class TrackerSchema(_Strict):
    """``tracker``: the ``timeout`` of a job that makes no progress."""

    timeout = _Duration(required=True, error_messages=_REQUIRED, validate=_positive)


class MonitorSchema(_Strict):
    """``monitor``: the post-processing ``polling_interval``."""

    polling_interval = _Duration(required=True, error_messages=_REQUIRED, validate=_positive)


_NO_SOURCES = "at least one source is required"


def _check_source_count(sources: list[Any]) -> None:
    if not sources:
        raise ValidationError(_NO_SOURCES)
    if len(sources) > MAX_SOURCES:
        raise ValidationError(
            f"at most {MAX_SOURCES} sources (stream positions number them below {MAX_SOURCES});"
            f" got {len(sources)}"
        )


class ConfigSchema(_Strict):
    """The whole config file; loads into a :class:`Config`."""

    start_date = _Date(required=True, error_messages=_REQUIRED, validate=job_date_in_window)
    tracker = fields.Nested(TrackerSchema, required=True, error_messages=_REQUIRED)
    monitor = fields.Nested(MonitorSchema, required=True, error_messages=_REQUIRED)
    sources = fields.List(
        fields.Nested(SourceSchema),
        required=True,
        validate=_check_source_count,
        error_messages={
            "required": _NO_SOURCES,
            "null": _NO_SOURCES,
            "invalid": "expected a list of sources",
        },
    )
    daily_delay = _Duration(load_default=defaults.DAILY_DELAY, validate=_non_negative)
    min_cycle_interval = _Duration(load_default=defaults.MIN_CYCLE_INTERVAL, validate=_non_negative)

    @validates_schema
    def _check_unique(self, data: dict[str, Any], **kwargs: Any) -> None:
        seen: dict[tuple[str, str, str], int] = {}
        duplicates: dict[int, list[str]] = {}
        for i, source in enumerate(data.get("sources", ())):
            ident = (source.bucket, source.experiment, source.datatype)
            if ident in seen:
                message = (
                    f"same bucket, experiment and datatype as sources[{seen[ident]}];"
                    " their job ids would collide"
                )
                duplicates[i] = [message]
            seen.setdefault(ident, i)
        if duplicates:
            raise ValidationError(duplicates, field_name="sources")

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> Config:
        return Config(
            start_date=data["start_date"],
            tracker_timeout=data["tracker"]["timeout"],
            polling_interval=data["monitor"]["polling_interval"],
            sources=tuple(data["sources"]),
            daily_delay=data["daily_delay"],
            min_cycle_interval=data["min_cycle_interval"],
        )


# --- YAML and placeholders ---------------------------------------------------


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that rejects repeated keys and keeps dates as strings.

    Dates are validated by :class:`_Date`, so an impossible date is reported
    with its path instead of as a YAML error.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            if isinstance(key_node, yaml.MappingNode):
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    "found a mapping used as a key; a value that is only a {{NAME}}"
                    ' placeholder must be quoted, e.g. "{{NAME}}"',
                    key_node.start_mark,
                )
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.get(key)
            except TypeError:
                continue  # unhashable: SafeLoader reports it below
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r} (first at line {first + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def _timestamp_as_text(loader: _Loader, node: yaml.ScalarNode) -> str:
    return loader.construct_scalar(node)


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_text)

_PLACEHOLDER_RE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _substitute(
    node: Any, env: Mapping[str, str], path: _Path, problems: dict[_Path, list[str]]
) -> Any:
    """Return ``node`` with ``{{NAME}}`` in every string value replaced from ``env``."""
    if isinstance(node, str):

        def fill(m: re.Match[str]) -> str:
            name = m[1]
            if not _ENV_NAME_RE.fullmatch(name):
                problem = f"malformed placeholder {m[0]!r}: expected {{{{NAME}}}}"
            elif name not in env:
                problem = f"environment variable {name} is not set"
            else:
                return env[name]
            if problem not in problems.setdefault(path, []):
                problems[path].append(problem)
            return m[0]

        return _PLACEHOLDER_RE.sub(fill, node)
    if isinstance(node, dict):
        return {k: _substitute(v, env, (*path, k), problems) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, env, (*path, i), problems) for i, v in enumerate(node)]
    return node


# --- errors ------------------------------------------------------------------


def format_path(path: _Path, prefix: str = "") -> str:
    """Write a path of keys and list indexes after ``prefix``: ``sources[3].target_datasets``."""
    text = prefix
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _sort_key(item: tuple[_Path, str]) -> tuple[Any, ...]:
    path, message = item
    parts = tuple((0, p, "") if isinstance(p, int) else (1, 0, str(p)) for p in path)
    return (parts, message)


def error_leaves(messages: Any, path: _Path = ()) -> Iterator[tuple[_Path, str]]:
    """Yield ``(path, message)`` for every leaf of marshmallow's nested error messages.

    A schema-level message (``_schema``) belongs to the path of its schema.
    """
    if isinstance(messages, dict):
        for key, sub in messages.items():
            yield from error_leaves(sub, path if key == SCHEMA else (*path, key))
    elif isinstance(messages, list):
        for sub in messages:
            yield from error_leaves(sub, path)
    else:
        yield path, str(messages)


def _raise(problems: list[tuple[_Path, str]]) -> NoReturn:
    unique = sorted(set(problems), key=_sort_key)
    raise ConfigError([f"{format_path(path) or ROOT}: {message}" for path, message in unique])


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is None:
        return f"invalid YAML: {problem}"
    return f"invalid YAML at line {mark.line + 1}, column {mark.column + 1}: {problem}"


# --- public entry points -----------------------------------------------------


def parse_config(text: str, env: Mapping[str, str] | None = None) -> Config:
    """Parse and validate a YAML config; ``{{NAME}}`` placeholders come from ``env``.

    ``env`` defaults to ``os.environ``. Raises :class:`ConfigError` listing every problem.
    """
    env = os.environ if env is None else env
    try:
        data = yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: safe
    except yaml.YAMLError as exc:
        _raise([((), _yaml_problem(exc))])
    if data is None:
        _raise([((), "the config is empty")])
    if not isinstance(data, dict):
        _raise([((), "expected a mapping with start_date, tracker, monitor and sources")])
    env_problems: dict[_Path, list[str]] = {}
    data = _substitute(data, env, (), env_problems)
    problems = [(path, m) for path, messages in env_problems.items() for m in messages]
    try:
        config: Config = ConfigSchema().load(data)
    except ValidationError as exc:
        schema_problems = list(error_leaves(exc.messages))
        # A value with an unfilled placeholder is reported once, for its placeholder.
        problems += [p for p in schema_problems if p[0] not in env_problems]
    if problems:
        _raise(problems)
    return config


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read and validate the YAML config at ``path`` (see :func:`parse_config`)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{ROOT}: config file {os.fspath(path)} not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{ROOT}: cannot read config file {os.fspath(path)}: {exc}"]) from None
    return parse_config(text, env)


def default_config_path() -> Path:
    """Return ``$GARDENER_CONFIG`` if set, else ``config/gardener.yml`` beside ``shared/``."""
    configured = os.environ.get(CONFIG_ENV)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parent.parent / "config" / "gardener.yml"
