"""Process-wide wiring: settings from the environment, and the tracker built from them.

Nothing is created at import time; the first request builds the Firestore
client and the tracker, and later requests of the same instance reuse them.
No job state is kept here, only clients.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from datetime import timedelta

from google.cloud import firestore, storage

from shared.config import default_config_path, load_config
from shared.gcs import ArchiveLister
from shared.job_service import JobService
from shared.store import JOBS_COLLECTION, CursorStore, JobStore
from shared.tracker import HEARTBEAT_COALESCE, Tracker


@dataclass(frozen=True)
class Settings:
    """Deployment settings, each read from one environment variable."""

    #: Google Cloud project; on the emulator any ``demo-…`` name. ``GOOGLE_CLOUD_PROJECT``.
    project: str | None
    #: Collection of job documents. ``TRACKER_COLLECTION``.
    collection: str = JOBS_COLLECTION
    #: Heartbeats closer together than this are acknowledged without a write.
    #: ``HEARTBEAT_COALESCE_SECONDS``.
    heartbeat_coalesce: timedelta = HEARTBEAT_COALESCE

    @classmethod
    def from_env(cls) -> Settings:
        """Read the settings from the environment; ValueError names a malformed variable."""
        env = os.environ
        coalesce = env.get("HEARTBEAT_COALESCE_SECONDS")
        try:
            seconds = float(coalesce) if coalesce else HEARTBEAT_COALESCE.total_seconds()
        except ValueError:
            raise ValueError(f"HEARTBEAT_COALESCE_SECONDS={coalesce!r} is not a number") from None
        if seconds < 0:
            raise ValueError("HEARTBEAT_COALESCE_SECONDS must not be negative")
        return cls(
            project=env.get("GOOGLE_CLOUD_PROJECT") or env.get("GCLOUD_PROJECT") or None,
            collection=env.get("TRACKER_COLLECTION") or JOBS_COLLECTION,
            heartbeat_coalesce=timedelta(seconds=seconds),
        )


@functools.cache
def settings() -> Settings:
    """Return this process's settings, read once."""
    return Settings.from_env()


@functools.cache
def _firestore() -> firestore.Client:
    return firestore.Client(project=settings().project)


@functools.cache
def tracker() -> Tracker:
    """Return this process's tracker, built on first use."""
    s = settings()
    return Tracker(JobStore(_firestore(), s.collection), heartbeat_coalesce=s.heartbeat_coalesce)


@functools.cache
def job_service() -> JobService:
    """Return this process's job service; its config is read from :func:`default_config_path`.

    A bad config raises :class:`shared.config.ConfigError` naming every bad field.
    """
    config = load_config(default_config_path())
    archives = ArchiveLister(storage.Client(project=settings().project))
    return JobService(tracker(), CursorStore(_firestore()), archives, config)
