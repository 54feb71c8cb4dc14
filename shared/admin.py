"""Operator control: list and inspect jobs, retry, fail, reprocess (and cancel it), pause, snapshots.

Every action on a job is one Firestore transaction that checks the job first
and writes nothing when it refuses, and it is recorded on the job's ``audit``
(who, when, what; the newest :data:`shared.store.AUDIT_KEEP` are kept, across
restarts). Reprocessing is queued, one document per job, and recorded on the
job when next-job hands it out; pauses are documents of their own, holding
who paused and why.

Policies:

* **retry** — only a ``failed`` job; it becomes due at once (``retry_at`` =
  now), and next-job hands it out as the next retry: the run counts as one
  more attempt. Past the attempt limit the operator's retry still runs it
  once; if that run fails, it is not retried automatically.
* **fail** — any non-terminal state (the transition table allows ``failed``
  from each); ``complete`` and ``failed`` answer 409 naming the states. The
  job is not retried automatically (``gardener retry`` runs it again), its
  post-processing lease is cleared and an owed re-offer dropped.
* **reprocess** — job dates up to yesterday, for sources of the config, at
  most ``max_reprocess`` jobs per request; a job already queued stays queued once.
  **Cancel** takes the same range back: the items still queued are removed;
  one next-job has claimed is handed out, never both.
* **pause** — ``historical`` stops the historical stream; a source
  (``experiment/datatype``) stops all of its hand-outs: owed runs, daily (a
  daily job coming due is queued for reprocessing), reprocessing, historical.
"""

from __future__ import annotations

import getpass
import logging
import os
import re
from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import requests

from shared import status_page, transitions
from shared.config import Config
from shared.errors import TrackerError
from shared.gotime import format_time
from shared.job_service import HISTORICAL
from shared.model import (
    FREE,
    UTC,
    AuditEntry,
    Job,
    JobFilter,
    JobRecord,
    Pause,
    ReprocessItem,
    State,
    source_name,
)
from shared.status_page import pause_json
from shared.store import ControlStore, ReprocessQueue
from shared.tracker import Tracker

log = logging.getLogger(__name__)

#: Jobs one reprocessing request may queue (days × sources), unless configured otherwise.
MAX_REPROCESS = 1000

#: Who an action is recorded as when the request names no one.
ANONYMOUS = "anonymous"

_OPERATOR_RE = re.compile(r"[\w.@+:/ -]{1,200}")


class AdminRejected(TrackerError):
    """The operator's request was refused; :attr:`status` is the HTTP answer (400, 409, or 503)."""

    def __init__(self, status: int, message: str, fields: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.fields = fields or {}


#: Google's certificates that sign ID tokens, by key id (PEM).
GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"

#: Issuers of Google ID tokens.
GOOGLE_ISSUERS = frozenset({"accounts.google.com", "https://accounts.google.com"})

#: How long fetched certificates are used before they are fetched again (Google rotates them daily).
CERTS_TTL = timedelta(hours=1)

#: Marks a name no one has verified: the ``X-Operator`` header, or the local user.
UNVERIFIED = " (unverified)"

#: Returns the certificates, by key id, that may have signed an ID token.
Certs = Callable[[], Mapping[str, str]]

_certs_cache: tuple[datetime, Mapping[str, str]] | None = None


def google_certs() -> Mapping[str, str]:
    """Return Google's ID-token signing certificates, fetched at most once per :data:`CERTS_TTL`."""
    global _certs_cache
    now = datetime.now(UTC)
    if _certs_cache is None or now - _certs_cache[0] > CERTS_TTL:
        response = requests.get(GOOGLE_CERTS_URL, timeout=10)
        response.raise_for_status()
        _certs_cache = (now, response.json())
    return _certs_cache[1]


def verified_email(token: str, host: str, certs: Certs | None = None) -> str:
    """Return the e-mail of a Google ID token that is valid for a request to ``host``.

    Checked: the signature against ``certs`` (default :func:`google_certs`),
    expiry, the issuer (Google), an audience that is an https URL on
    ``host`` (a token minted for another service is refused) and a verified
    e-mail. Raises :class:`AdminRejected` (401) saying what is wrong.
    """
    from google.auth import jwt

    try:
        known = (certs or google_certs)()
    except requests.RequestException as exc:
        raise AdminRejected(503, f"cannot fetch Google's certificates to verify the ID token: {exc}"
                            ) from None
    try:
        claims = jwt.decode(token, certs=known, clock_skew_in_seconds=10)
    except (ValueError, KeyError) as exc:
        raise AdminRejected(401, f"the ID token is not valid: {exc}") from None
    problem = ""
    audience = claims.get("aud")
    if claims.get("iss") not in GOOGLE_ISSUERS:
        problem = f"issued by {claims.get('iss')!r}, not Google"
    elif not isinstance(audience, str) or urlsplit(audience)[:2] != ("https", host.lower()):
        problem = f"its audience {audience!r} is not this service (https://{host})"
    elif not isinstance(claims.get("email"), str) or claims.get("email_verified") is False:
        problem = "it carries no verified email"
    elif not _OPERATOR_RE.fullmatch(claims["email"]):
        problem = "its email is not a valid operator name"
    if problem:
        raise AdminRejected(401, f"the ID token is not valid: {problem}")
    return str(claims["email"])


def operator(authorization: str, x_operator: str, host: str = "",
             certs: Certs | None = None) -> str:
    """Return who makes a request, as recorded on the audit.

    A bearer token must be a Google ID token (:func:`verified_email`, which
    refuses any other with 401); its e-mail is the operator. The platform's
    check of the token is not relied on: Cloud Run admits a request on a
    token in ``X-Serverless-Authorization`` and passes ``Authorization`` on
    unchecked. Without a token the name is only a claim and is marked
    :data:`UNVERIFIED`: the ``X-Operator`` header, else (not deployed, no
    ``K_SERVICE``) the local user, else ``anonymous``.
    """
    scheme, _, token = authorization.strip().partition(" ")
    if authorization.strip():
        if scheme.lower() != "bearer" or not token.strip():
            raise AdminRejected(401, "Authorization must be \"Bearer <Google ID token>\"")
        return verified_email(token.strip(), host, certs)
    name = x_operator.strip()
    if not _OPERATOR_RE.fullmatch(name):
        name = _local_user() if not os.environ.get("K_SERVICE") else ""
    return name + UNVERIFIED if name else ANONYMOUS


def _local_user() -> str:
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        return ""
    return name if _OPERATOR_RE.fullmatch(name) else ""


def audit_json(entry: AuditEntry) -> dict[str, str]:
    """Return one audit entry as JSON."""
    return {"Time": format_time(entry.time), "Who": entry.who, "Action": entry.action,
            "Detail": entry.detail}


def job_view(record: JobRecord) -> dict[str, Any]:
    """Return a job as the admin API shows it: the status page's JSON, bookkeeping and audit."""
    return {
        **status_page.job_json(record),
        "Offer": record.offer,
        "Reoffer": record.reoffer,
        "LeaseOwner": record.lease_owner,
        "LeaseUntil": format_time(record.lease_until) if record.lease_until != FREE else None,
        "Audit": [audit_json(a) for a in record.audit],
    }


def item_json(item: ReprocessItem) -> dict[str, str]:
    """Return a queued reprocessing as JSON."""
    return {"ID": item.key, "Source": item.source, "Who": item.who,
            "QueuedAt": format_time(item.queued_at)}


def _source_names(jobs: list[Job]) -> str:
    return ", ".join(sorted({f"{j.experiment}/{j.datatype}" for j in jobs}))


class Admin:
    """The operator's actions over the tracker, the reprocessing queue and the pauses."""

    def __init__(
        self,
        tracker: Tracker,
        queue: ReprocessQueue,
        controls: ControlStore,
        config: Config,
        export: Callable[[datetime], dict[str, Any]] | None = None,
        load: Callable[[str], Any] | None = None,
        max_reprocess: int = MAX_REPROCESS,
    ) -> None:
        self.tracker = tracker
        self.queue = queue
        self.controls = controls
        self.config = config
        self.export = export
        self.load = load
        self.max_reprocess = max_reprocess

    @property
    def clock(self) -> Callable[[], datetime]:
        """The tracker's clock."""
        return self.tracker.clock

    # --- looking ---------------------------------------------------------------------

    def list_jobs(self, f: JobFilter) -> list[JobRecord]:
        """Return the matching jobs: by job date with a date range, else oldest start first."""
        return list(self.tracker.get_state(f))

    def job(self, key: str) -> JobRecord:
        """Return one job with its history, bookkeeping and audit; JobNotFound if none."""
        return self.tracker.get_record(key)

    # --- acting on one job -------------------------------------------------------------

    def retry(self, key: str, who: str) -> JobRecord:
        """Make a failed job due for a retry now; 409 for any other state."""
        limit = self.tracker.retry.max_attempts

        def change(rec: JobRecord, now: datetime) -> None:
            state = rec.status.state
            if state is not State.FAILED:
                hint = "reprocess it" if state is State.COMPLETE else "mark it failed first"
                raise AdminRejected(409, f"job {key} is {state.value}, not failed: only a failed "
                                         f"job can be retried ({hint})")
            nth = rec.attempts + 1
            beyond = f", beyond the limit of {limit}" if nth > limit else ""
            rec.retry_at = now
            rec.note(AuditEntry(now, who, "retry", f"due now as attempt {nth}{beyond}"))

        return self.tracker.administer(key, change)[1]

    def fail(self, key: str, reason: str, who: str) -> tuple[State, JobRecord]:
        """Mark a job in flight failed with ``reason``; return the state before and the job."""

        def change(rec: JobRecord, now: datetime) -> None:
            old = rec.status.state
            transitions.check(key, old, State.FAILED)
            Tracker.fail(rec, f"{old.value}: failed by {who}: {reason}", now)
            dropped = f"; dropped the owed re-offer {rec.reoffer}" if rec.reoffer else ""
            rec.retry_at, rec.reoffer = None, ""
            rec.lease_owner, rec.lease_until = "", FREE
            rec.note(AuditEntry(now, who, "fail", f"in {old.value}: {reason}{dropped}"))

        return self.tracker.administer(key, change)

    # --- reprocessing ---------------------------------------------------------------------

    def _reprocess_jobs(self, first: date, last: date, sources: list[str],
                        now: datetime) -> list[Job]:
        """Return the jobs of ``sources`` (all if empty) for job dates ``first``–``last``, by date.

        Refused (400) for unknown sources, a range reaching today or later, or
        more than ``max_reprocess`` jobs.
        """
        known = sorted({source_name(s) for s in self.config.sources})
        unknown = sorted(set(sources) - set(known))
        if unknown:
            raise AdminRejected(400, f"unknown sources {', '.join(unknown)}; the config has "
                                     f"{', '.join(known)}", {"sources": unknown})
        yesterday = now.astimezone(UTC).date() - timedelta(days=1)
        if first > last:
            raise AdminRejected(400, f"from ({first}) is after to ({last})")
        if last > yesterday:
            raise AdminRejected(400, f"to ({last}) must be yesterday ({yesterday}) or earlier")
        chosen = [s for s in self.config.sources if not sources or source_name(s) in sources]
        days = (last - first).days + 1
        count = days * len(chosen)
        if count > self.max_reprocess:
            raise AdminRejected(400, f"{days} days × {len(chosen)} sources = {count} jobs; at most "
                                     f"{self.max_reprocess} per request")
        return [Job(s.bucket, s.experiment, s.datatype, first + timedelta(d))
                for d in range(days) for s in chosen]

    def reprocess(self, first: date, last: date, sources: list[str], who: str) -> dict[str, Any]:
        """Queue the jobs of ``sources`` (all if empty) for job dates ``first``–``last``.

        Refused (400, nothing written) for unknown sources, a range reaching
        today or later, or more than ``max_reprocess`` jobs.
        """
        now = self.clock()
        jobs = self._reprocess_jobs(first, last, sources, now)
        count = len(jobs)
        queued = self.queue.add([ReprocessItem.new(job, who, now, seq)
                                 for seq, job in enumerate(jobs)])
        log.info("%s queued %d jobs for reprocessing (%s to %s, %s); %d were queued already",
                 who, len(queued), first, last, _source_names(jobs), count - len(queued))
        return {"Queued": len(queued), "AlreadyQueued": count - len(queued), "Jobs": queued,
                "Who": who, "Time": format_time(now)}

    def cancel_reprocess(self, first: date, last: date, sources: list[str],
                         who: str) -> dict[str, Any]:
        """Take back the queued reprocessing of ``sources`` (all if empty) for ``first``–``last``.

        Validated as :meth:`reprocess` (400, nothing written). Removes every
        item still queued; an item next-job has claimed is being handed out
        and is left to it (``HandedOut``). Cancelling again removes nothing.
        """
        now = self.clock()
        jobs = self._reprocess_jobs(first, last, sources, now)
        cancelled, handed_out = self.queue.cancel([job.key() for job in jobs])
        log.info("%s cancelled %d queued reprocessing jobs (%s to %s, %s); %d were being handed out",
                 who, len(cancelled), first, last, _source_names(jobs), len(handed_out))
        return {"Cancelled": len(cancelled), "HandedOut": len(handed_out), "Jobs": cancelled,
                "Who": who, "Time": format_time(now)}

    # --- pauses ------------------------------------------------------------------------

    def _check_target(self, target: str) -> None:
        known = sorted({source_name(s) for s in self.config.sources})
        if target != HISTORICAL and target not in known:
            raise AdminRejected(400, f"unknown pause target {target!r}; use {HISTORICAL} or a "
                                     f"source: {', '.join(known)}")

    def pause(self, target: str, reason: str, who: str) -> Pause:
        """Pause ``historical`` or a source; 409 if it is paused already."""
        self._check_target(target)
        pause = Pause(target, who, self.clock(), reason)
        before = self.controls.pause(pause)
        if before is not None:
            raise AdminRejected(409, f"{target} is paused already, by {before.who} since "
                                     f"{format_time(before.since)}")
        log.info("%s paused %s: %s", who, target, reason)
        return pause

    def resume(self, target: str, who: str) -> Pause:
        """Lift the pause of ``target``; return it. 409 if it was not paused."""
        self._check_target(target)
        lifted = self.controls.resume(target)
        if lifted is None:
            raise AdminRejected(409, f"{target} is not paused")
        log.info("%s resumed %s (paused by %s since %s)", who, target, lifted.who,
                 format_time(lifted.since))
        return lifted

    def controls_view(self) -> dict[str, Any]:
        """Return the pauses in force and the reprocessing queue (its size and head)."""
        pauses = {p.target: p for p in self.controls.all()}
        sources = sorted({source_name(s) for s in self.config.sources})
        return {
            "Historical": pause_json(pauses.get(HISTORICAL)),
            "Sources": [{"Source": s, "Paused": pause_json(pauses.get(s))} for s in sources],
            "ReprocessQueued": self.queue.count(),
            "ReprocessNext": [item_json(i) for i in self.queue.stream(10)],
        }

    # --- snapshots ---------------------------------------------------------------------

    def export_snapshot(self, who: str) -> dict[str, Any]:
        """Write a snapshot now to the configured bucket; 409 if none is configured."""
        if self.export is None:
            raise AdminRejected(409, "no snapshot bucket is configured (set SNAPSHOT_BUCKET)")
        result = self.export(self.clock())
        log.info("%s exported a snapshot: %s", who, result.get("object"))
        return {**result, "Who": who}

    def import_snapshot(self, source: str, who: str) -> dict[str, Any]:
        """Create the jobs of snapshot ``source`` (``gs://…``) that Firestore lacks.

        A malformed file is refused (400, every problem listed, nothing written); a
        Firestore failure mid-way answers 503 with the keys created and not written.
        """
        from google.api_core import exceptions as gexc

        from shared.snapshot import ImportInterrupted, SnapshotError, import_snapshot

        if self.load is None:
            raise AdminRejected(409, "snapshot import is not available here")
        try:
            snapshot = self.load(source)
        except SnapshotError as exc:
            raise AdminRejected(400, str(exc), {"problems": exc.problems}) from None
        except (FileNotFoundError, gexc.NotFound):
            raise AdminRejected(400, f"no such snapshot object {source}") from None
        try:
            result = import_snapshot(self.tracker.store, snapshot)
        except ImportInterrupted as exc:
            raise AdminRejected(503, str(exc), {
                "Created": exc.created, "AlreadyPresent": exc.already_present,
                "NotWritten": exc.not_written}) from exc
        finally:
            close = getattr(snapshot, "close", None)  # a spooled snapshot's temporary files
            if close is not None:
                close()
        log.info("%s imported %s: %d created, %d already present", who, source, result.created,
                 result.already_present)
        return {"Source": source, "Total": result.total, "Created": result.created,
                "AlreadyPresent": result.already_present, "Skipped": result.skipped, "Who": who}
