"""Process-wide wiring: settings from the environment, and the services built from them.

Nothing is created at import time; the first request builds the clients and
services, and later requests of the same instance reuse them. No job state is
kept here, only clients.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from google.cloud import firestore

from shared import defaults
from shared.config import ConfigError, default_config_path, load_config
from shared.gcs import ArchiveLister
from shared.gotime import parse_duration
from shared.job_service import JobService
from shared.maintenance import Maintenance, MaintenancePolicy
from shared.postprocess import NoWarehouse, PostProcessor, PostProcessPolicy, visit_budget
from shared.store import (
    JOBS_COLLECTION,
    ControlStore,
    CursorStore,
    DeadlineClient,
    JobStore,
    ReprocessQueue,
    TaskStore,
)
from shared.tracker import RetryPolicy, Tracker

if TYPE_CHECKING:
    import google.cloud.storage as storage  # the name form mypy resolves

    from shared.admin import Admin
    from shared.progress import Progress

_T = TypeVar("_T")

#: Most ``POSTPROCESS_TICK_SECONDS`` may be: the deployed postprocess timeout (540 s) less a minute.
MAX_TICK_SECONDS = 480.0

#: Most ``FIRESTORE_DEADLINE_SECONDS`` may be: half the shortest function timeout (60 s).
MAX_DEADLINE = 30.0


def _env(env: Mapping[str, str], name: str, parse: Callable[[str], _T], default: _T) -> _T:
    raw = env.get(name)
    if not raw:
        return default
    try:
        return parse(raw)
    except ValueError as exc:
        raise ValueError(f"{name}={raw!r}: {exc}") from None


def _seconds(text: str) -> timedelta:
    value = float(text)
    if value < 0:
        raise ValueError("must not be negative")
    return timedelta(seconds=value)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be at least 1")
    return value


#: BigQuery locations: a multi-region (``US``, ``EU``) or a region (``us-central1``).
_LOCATION_RE = re.compile(r"[A-Za-z]{2,}(?:-[a-z]+[0-9]*)*\Z")


def _location(text: str) -> str:
    if not _LOCATION_RE.match(text):
        raise ValueError("not a BigQuery location (such as US, EU or us-central1)")
    return text


#: An emulator's base URL: ``http://127.0.0.1:9050`` (a scheme, a host, an optional port).
_EMULATOR_URL_RE = re.compile(r"https?://[A-Za-z0-9.\-]+(?::(?P<port>[0-9]{1,5}))?/?\Z")


def _emulator_url(text: str) -> str:
    match = _EMULATOR_URL_RE.match(text)
    if not match:
        raise ValueError("not an emulator's base URL (such as http://127.0.0.1:9050)")
    if match["port"] is not None and not 0 < int(match["port"]) < 65536:
        raise ValueError("the port must be from 1 to 65535")
    return text.rstrip("/")


def _local_emulator(env: Mapping[str, str]) -> str | None:
    """``BIGQUERY_EMULATOR_HOST``, refused on Cloud Run/Functions (``K_SERVICE`` set).

    A deployed function given it by mistake would send its BigQuery work to
    that host without credentials; it refuses to start instead.
    """
    url = _env(env, "BIGQUERY_EMULATOR_HOST", _emulator_url, None)
    if url is not None and env.get("K_SERVICE"):
        raise ValueError(
            f"BIGQUERY_EMULATOR_HOST={url!r}: an emulator is for local runs only, and this "
            f"runs on Cloud Run/Functions (K_SERVICE={env['K_SERVICE']!r}); unset it"
        )
    return url


def _deadline(text: str) -> float:
    value = float(text)
    if not 0 < value <= MAX_DEADLINE:  # also rejects nan
        raise ValueError(f"must be more than 0 and at most {MAX_DEADLINE:g} seconds")
    return value


def _tick_seconds(text: str) -> float:
    value = float(text)
    if not 0 < value <= MAX_TICK_SECONDS:  # also rejects nan
        raise ValueError(f"must be more than 0 and at most {MAX_TICK_SECONDS:g} seconds")
    return value


def _names(text: str) -> frozenset[str]:
    names = frozenset(name.strip() for name in text.split(",") if name.strip())
    if not names:
        raise ValueError("must name at least one")
    return names


#: IAP's signed-header audiences: a Cloud Run service, a backend service, an App Engine app.
_IAP_AUDIENCE_RE = re.compile(
    r"/projects/[0-9]+/(?:locations/[a-z0-9-]+/services/[a-z0-9-]+"
    r"|global/backendServices/[0-9]+|apps/[a-z][a-z0-9-]*)\Z"
)

#: An OAuth client ID, as Google issues them.
_CLIENT_ID_RE = re.compile(r"[A-Za-z0-9-]+\.apps\.googleusercontent\.com\Z")


def _iap_audience(text: str) -> str:
    if not _IAP_AUDIENCE_RE.match(text):
        raise ValueError(
            "not an IAP audience such as /projects/NUMBER/locations/REGION/services/SERVICE"
        )
    return text


def _client_ids(text: str) -> tuple[str, ...]:
    if text.strip() == "none":
        return ()
    ids = tuple(part.strip() for part in text.split(",") if part.strip())
    bad = [part for part in ids if not _CLIENT_ID_RE.match(part)]
    if bad or not ids:
        raise ValueError(
            f"not OAuth client IDs (….apps.googleusercontent.com, comma-separated, or none): {bad}"
        )
    return ids


_DEFAULT_RETRY = RetryPolicy()


@dataclass(frozen=True)
class Settings:
    """Deployment settings, each read from one environment variable (docs/operations.md, "Configuration")."""

    project: str | None = None  # GOOGLE_CLOUD_PROJECT
    collection: str = JOBS_COLLECTION  # TRACKER_COLLECTION
    heartbeat_coalesce: timedelta = defaults.HEARTBEAT_COALESCE  # HEARTBEAT_COALESCE_SECONDS
    retry: RetryPolicy = _DEFAULT_RETRY  # RETRY_MAX_ATTEMPTS, RETRY_BACKOFF
    cleanup_delay: timedelta = defaults.CLEANUP_DELAY  # CLEANUP_DELAY
    snapshot_bucket: str | None = None  # SNAPSHOT_BUCKET; None: no snapshots
    snapshot_prefix: str = defaults.SNAPSHOT_PREFIX  # SNAPSHOT_PREFIX
    snapshot_keep: int = defaults.SNAPSHOT_KEEP  # SNAPSHOT_KEEP
    input_bucket: str | None = None  # INPUT_BUCKET: where parsers write rows for BigQuery
    bigquery_project: str | None = None  # BIGQUERY_PROJECT; default: the project
    bigquery_location: str = (
        defaults.BIGQUERY_LOCATION
    )  # BIGQUERY_LOCATION: where the datasets and jobs are
    bigquery_emulator: str | None = None  # BIGQUERY_EMULATOR_HOST: no credentials, that URL
    api_routes: frozenset[str] | None = None  # API_ROUTES: route groups of `api`; None: all
    postprocess_batch: int = PostProcessPolicy.batch  # POSTPROCESS_BATCH: jobs per page of a tick
    postprocess_tick: float = (
        defaults.POSTPROCESS_TICK_SECONDS
    )  # POSTPROCESS_TICK_SECONDS: how long a tick may work
    reprocess_max: int = (
        defaults.REPROCESS_MAX
    )  # REPROCESS_MAX: jobs one reprocessing request may queue
    firestore_deadline: float = defaults.FIRESTORE_DEADLINE  # FIRESTORE_DEADLINE_SECONDS
    iap_audience: str = ""  # IAP_AUDIENCE: set when IAP is in front; "": no IAP
    operator_token_audiences: tuple[str, ...] = (
        defaults.OPERATOR_TOKEN_AUDIENCES
    )  # OPERATOR_TOKEN_AUDIENCES: OAuth client IDs a person's own ID token may be for

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the settings; ValueError names a malformed variable."""
        env = os.environ if env is None else env
        d = cls()
        return cls(
            project=env.get("GOOGLE_CLOUD_PROJECT") or env.get("GCLOUD_PROJECT") or None,
            collection=env.get("TRACKER_COLLECTION") or JOBS_COLLECTION,
            heartbeat_coalesce=_env(
                env, "HEARTBEAT_COALESCE_SECONDS", _seconds, d.heartbeat_coalesce
            ),
            retry=RetryPolicy(
                max_attempts=_env(env, "RETRY_MAX_ATTEMPTS", _positive, d.retry.max_attempts),
                backoff=_env(env, "RETRY_BACKOFF", parse_duration, d.retry.backoff),
            ),
            cleanup_delay=_env(env, "CLEANUP_DELAY", parse_duration, d.cleanup_delay),
            snapshot_bucket=env.get("SNAPSHOT_BUCKET") or None,
            snapshot_prefix=env.get("SNAPSHOT_PREFIX") or d.snapshot_prefix,
            snapshot_keep=_env(env, "SNAPSHOT_KEEP", _positive, d.snapshot_keep),
            input_bucket=env.get("INPUT_BUCKET") or None,
            bigquery_project=env.get("BIGQUERY_PROJECT") or None,
            bigquery_location=_env(env, "BIGQUERY_LOCATION", _location, d.bigquery_location),
            bigquery_emulator=_local_emulator(env),
            api_routes=_env(env, "API_ROUTES", _names, d.api_routes),
            postprocess_batch=_env(env, "POSTPROCESS_BATCH", _positive, d.postprocess_batch),
            reprocess_max=_env(env, "REPROCESS_MAX", _positive, d.reprocess_max),
            firestore_deadline=_env(
                env, "FIRESTORE_DEADLINE_SECONDS", _deadline, d.firestore_deadline
            ),
            postprocess_tick=_env(
                env, "POSTPROCESS_TICK_SECONDS", _tick_seconds, d.postprocess_tick
            ),
            iap_audience=_env(env, "IAP_AUDIENCE", _iap_audience, d.iap_audience),
            operator_token_audiences=_env(
                env, "OPERATOR_TOKEN_AUDIENCES", _client_ids, d.operator_token_audiences
            ),
        )


@functools.cache
def settings() -> Settings:
    """Return this process's settings, read once."""
    return Settings.from_env()


@functools.cache
def _firestore() -> firestore.Client:
    s = settings()
    return DeadlineClient(project=s.project, deadline=s.firestore_deadline)


@functools.cache
def _storage() -> storage.Client:
    import google.cloud.storage as storage  # deferred: only next_job, admin and snapshots use GCS

    return storage.Client(project=settings().project)


def _job_store() -> JobStore:
    return JobStore(_firestore(), settings().collection)


@functools.cache
def tracker() -> Tracker:
    """Return this process's tracker, built on first use."""
    s = settings()
    return Tracker(_job_store(), heartbeat_coalesce=s.heartbeat_coalesce, retry=s.retry)


@functools.cache
def job_service() -> JobService:
    """Return this process's job service; its config is read from :func:`default_config_path`.

    A bad config raises :class:`shared.config.ConfigError` naming every bad field.
    """
    config = load_config(default_config_path())
    return JobService(
        tracker(),
        CursorStore(_firestore()),
        ArchiveLister(_storage()),
        config,
        queue=reprocess_queue(),
        controls=controls(),
    )


@functools.cache
def reprocess_queue() -> ReprocessQueue:
    """Return this process's queue of operator reprocessing."""
    return ReprocessQueue(_firestore())


@functools.cache
def controls() -> ControlStore:
    """Return this process's store of operator pauses."""
    return ControlStore(_firestore())


@functools.cache
def tasks() -> TaskStore:
    """Return this process's record of the scheduled tasks' last successes."""
    return TaskStore(_firestore())


@functools.cache
def admin() -> Admin:
    """Return this process's operator actions; snapshots go to ``SNAPSHOT_BUCKET``."""
    from shared.admin import Admin
    from shared.snapshot import load_snapshot

    s = settings()
    return Admin(
        tracker(),
        reprocess_queue(),
        controls(),
        load_config(default_config_path()),
        export=_snapshot_writer(s),
        load=lambda source: load_snapshot(source, _storage()),
        max_reprocess=s.reprocess_max,
    )


@functools.cache
def tracker_timeout() -> timedelta | None:
    """Return the config's ``tracker.timeout`` (silent jobs expire after it); None if the
    config cannot be loaded (the status page then shows no expiry)."""
    try:
        return load_config(default_config_path()).tracker_timeout
    except (ConfigError, OSError):
        return None


@functools.cache
def progress() -> Progress | None:
    """Return this process's reader of every source's progress (the status page's), built on
    first use; None if the config cannot be loaded (the page then shows its jobs without it)."""
    from shared.progress import Progress

    try:
        config = load_config(default_config_path())
    except (ConfigError, OSError):
        return None
    return Progress(
        tracker(),
        CursorStore(_firestore()),
        config,
        controls=controls(),
        queue=reprocess_queue(),
    )


@functools.cache
def maintenance() -> Maintenance:
    """Return this process's maintenance; expiry follows the config's ``tracker.timeout``."""
    config = load_config(default_config_path())
    s = settings()
    policy = MaintenancePolicy(expiration=config.tracker_timeout, cleanup_delay=s.cleanup_delay)
    return Maintenance(
        tracker(),
        policy,
        _snapshot_writer(s),
        sources=[(c.experiment, c.datatype) for c in config.sources],
        tasks=tasks(),
    )


def _snapshot_writer(s: Settings) -> Callable[[datetime], dict[str, Any]] | None:
    if not s.snapshot_bucket:
        return None
    from shared.snapshot import write_snapshot

    bucket = _storage().bucket(s.snapshot_bucket)
    store = _job_store()

    def write(now: datetime) -> dict[str, Any]:
        result = write_snapshot(store, bucket, now, prefix=s.snapshot_prefix, keep=s.snapshot_keep)
        return dataclasses.asdict(result)

    return write


@functools.cache
def postprocessor() -> PostProcessor:
    """Return this process's post-processor: sources and pipelines from the config, BigQuery
    (in ``BIGQUERY_LOCATION``) if any source needs it: the emulator at
    ``BIGQUERY_EMULATOR_HOST``, without credentials, if that is set.

    Raises :class:`ConfigError` when a source needs BigQuery steps and
    ``INPUT_BUCKET`` is not set.
    """
    config = load_config(default_config_path())
    s = settings()
    pipelines = {
        (src.bucket, src.experiment, src.datatype): src.pipeline
        for src in config.sources
        if src.pipeline is not None
    }
    sources = {(src.bucket, src.experiment, src.datatype) for src in config.sources}
    bigquery_steps = config.needs_bigquery
    visit = visit_budget(s.firestore_deadline, bigquery=bigquery_steps)
    if visit.total_seconds() >= s.postprocess_tick:
        raise ConfigError(
            [
                f"POSTPROCESS_TICK_SECONDS: {s.postprocess_tick:g} leaves no time for "
                f"one visit, which may take {visit.total_seconds():g} s with "
                f"FIRESTORE_DEADLINE_SECONDS={s.firestore_deadline:g}"
            ]
        )
    policy = PostProcessPolicy(
        batch=s.postprocess_batch,
        poll=config.polling_interval,
        tick=timedelta(seconds=s.postprocess_tick),
        visit=visit,
    )
    if not bigquery_steps:
        return PostProcessor(
            tracker(), NoWarehouse(), policy, pipelines, sources=sources, tasks=tasks()
        )
    if not s.input_bucket:
        raise ConfigError(
            [
                "INPUT_BUCKET: not set, but sources have BigQuery steps "
                "(set it, or give every source `pipeline: []`)"
            ]
        )
    from google.cloud import bigquery

    from shared.warehouse import Warehouse

    project = s.bigquery_project or s.project
    emulator: dict[str, Any] = {}
    if s.bigquery_emulator:  # as the Firestore and GCS clients do for theirs
        from google.auth.credentials import AnonymousCredentials

        emulator = {
            "credentials": AnonymousCredentials(),
            "client_options": {"api_endpoint": s.bigquery_emulator},
        }
    client = bigquery.Client(project=project, location=s.bigquery_location, **emulator)
    warehouse = Warehouse(client, client.project, s.input_bucket, location=s.bigquery_location)
    return PostProcessor(tracker(), warehouse, policy, pipelines, sources=sources, tasks=tasks())
