"""``gardener``: the operator's command line over the ``/admin/...`` API.

Every command calls the tracker at ``--url`` (default ``$GARDENER_URL`` or the
local stack; deployed, Terraform's ``admin_url``), prints a table or, with
``--json``, the API's JSON answer, and exits 0 when done, 1 when the tracker
refused (its message on stderr) or could not be reached, 2 for a usage error,
130 when stopped by Ctrl-C. Deployed (https) URLs get a Google ID token:
``--token``/``$GARDENER_TOKEN``; else one minted for
``--impersonate-service-account`` (the person sent beside it as a claim); else
from Application Default Credentials; else, for a person's own login, from
``gcloud auth print-identity-token``. The operator is then the token's email,
verified by the tracker. Against the local stack the operator is ``--operator``
(default ``$GARDENER_OPERATOR`` or the login name), sent as ``X-Operator`` and
recorded marked ``(unverified)``. Every failure, authentication included, is one
line on stderr that says what to do; times in tables are relative ("3 min ago")
unless ``--absolute``."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import getpass
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

import requests

from shared import defaults
from shared.gotime import parse_time
from shared.model import UTC, State
from shared.schemas import MAX_BULK
from shared.transport import (
    Transport,
    TransportError,
    error_message,
    identity_session,
    needs_identity_token,
    token_session,
)

EXIT_OK, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2

#: The exit status of a command stopped by Ctrl-C (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130

#: The local stack's base URL, used when neither ``--url`` nor ``$GARDENER_URL`` is given.
DEFAULT_URL = "http://127.0.0.1:8080"


#: The filters of bulk ``retry`` and ``fail``: argparse name, API parameter.
_FILTERS = (
    ("state", "state"),
    ("experiment", "experiment"),
    ("datatype", "datatype"),
    ("first", "from"),
    ("last", "to"),
)

#: The states ``--state`` takes, by wire name.
_STATES = tuple(state.value for state in State)


def _date(text: str) -> str:
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _default_operator() -> str:
    try:
        return os.environ.get("GARDENER_OPERATOR") or getpass.getuser()
    except (KeyError, OSError):
        return "anonymous"


def _common(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """Add the options every command takes (on a command: only when given there)."""

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument(
        "--url",
        default=default(os.environ.get("GARDENER_URL") or DEFAULT_URL),
        help=f"the tracker's base URL (default: $GARDENER_URL or {DEFAULT_URL})",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help="print the API's JSON answer instead of a table",
    )
    parser.add_argument(
        "--operator",
        default=default(None),
        help="who you are, for the audit, on the local stack (default: "
        "$GARDENER_OPERATOR or your login), recorded as unverified; deployed, "
        "your token's verified email counts",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=default(defaults.CLI_TIMEOUT),
        metavar="SECONDS",
        help=f"per-call timeout (default {defaults.CLI_TIMEOUT:g})",
    )
    parser.add_argument(
        "--token",
        default=default(os.environ.get("GARDENER_TOKEN") or ""),
        help="deployed: an ID token to call with, e.g. from `gcloud auth "
        "print-identity-token` (default: $GARDENER_TOKEN; without it, "
        "Application Default Credentials, else gcloud's own token)",
    )
    parser.add_argument(
        "--impersonate-service-account",
        dest="impersonate",
        default=default(os.environ.get("GARDENER_IMPERSONATE") or ""),
        metavar="SA_EMAIL",
        help="deployed: call as this service account, with an ID token your own "
        "Application Default Credentials mint for it (default: $GARDENER_IMPERSONATE)",
    )
    parser.add_argument(
        "--absolute",
        action="store_true",
        default=default(False),
        help="show times as RFC 3339 instead of relative to now (3 min ago)",
    )


def _filters(sub: argparse.ArgumentParser) -> None:
    """Add the job filters of ``jobs`` (and of bulk ``retry`` and ``fail``)."""
    sub.add_argument("--state", choices=_STATES, help="only jobs in this state")
    sub.add_argument("--experiment", help="only jobs of this experiment")
    sub.add_argument("--datatype", help="only jobs of this datatype")
    sub.add_argument(
        "--from",
        dest="first",
        type=_date,
        metavar="YYYY-MM-DD",
        help="only job dates from this day",
    )
    sub.add_argument(
        "--to", dest="last", type=_date, metavar="YYYY-MM-DD", help="only job dates up to this day"
    )


def parser() -> argparse.ArgumentParser:
    """Return the command line's parser."""
    top = argparse.ArgumentParser(
        prog="gardener",
        description="Operator control of the Gardener tracker: jobs, retries, "
        "failures, reprocessing, pauses and snapshots, through its /admin API.",
        epilog="Exit status: 0 done, 1 refused by the tracker or unreachable, 2 usage error.",
    )
    _common(top, suppress=False)
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name, help=help_text, description=help_text[0].upper() + help_text[1:] + "."
        )
        _common(sub, suppress=True)
        return sub

    jobs = command("jobs", "list jobs, oldest start first (by job date with --from/--to)")
    _filters(jobs)
    jobs.add_argument(
        "--limit", type=positive_int, default=100, help="at most this many (default 100)"
    )

    job = command("job", "show one job: state, history, bookkeeping and the operators' audit")
    job.add_argument("id", metavar="ID", help="job id, bucket/experiment/datatype/YYYYMMDD")

    retry = command(
        "retry",
        "make a failed job (or every failed job a filter matches) due for a retry now "
        "(it counts as an attempt)",
    )
    fail = command(
        "fail",
        "mark a job in flight (or every job a filter matches) failed "
        "(it is not retried automatically)",
    )
    for sub in (retry, fail):
        sub.add_argument(
            "id", metavar="ID", nargs="?", help="job id; or, instead, filters to act on many"
        )
        _filters(sub)
        sub.add_argument(
            "--limit",
            type=positive_int,
            default=None,
            help=f"with filters: refuse if more jobs than this match (default and most {MAX_BULK})",
        )
        sub.add_argument(
            "--dry-run",
            action="store_true",
            help="with filters: show the count and the jobs, change nothing",
        )
        sub.add_argument(
            "--yes", action="store_true", help="with filters: do not ask to confirm the count"
        )
    fail.add_argument("--reason", required=True, help="why; recorded in the history and the audit")

    for name, help_text in (
        (
            "reprocess",
            "queue jobs of job dates FROM-TO for reprocessing, ahead of the historical cycle",
        ),
        (
            "cancel-reprocess",
            "take back the queued reprocessing of job dates FROM-TO (jobs "
            "already handed out are not affected)",
        ),
    ):
        rep = command(name, help_text)
        for flag, dest, date_help in (
            ("--from", "first", "first job date"),
            ("--to", "last", "last job date (yesterday at the latest)"),
        ):
            rep.add_argument(
                flag, dest=dest, type=_date, required=True, metavar="YYYY-MM-DD", help=date_help
            )
        rep.add_argument(
            "--source",
            dest="sources",
            action="append",
            default=[],
            metavar="EXPERIMENT/DATATYPE",
            help="a source (repeat for more; default: all)",
        )

    for name, verb in (("pause", "pause"), ("resume", "resume")):
        sub = command(name, f"{verb} the historical cycle or a source's hand-outs")
        sub.add_argument(
            "target",
            metavar="historical|EXPERIMENT/DATATYPE",
            help="historical, or a source of the config",
        )
        if name == "pause":
            sub.add_argument("--reason", default="", help="why; shown with the pause")

    command("controls", "show the pauses in force and the reprocessing queue")
    command("export", "write a snapshot of every job to the tracker's snapshot bucket now")
    imp = command("import", "create the jobs of a snapshot in GCS that the tracker lacks")
    imp.add_argument(
        "source", metavar="gs://BUCKET/OBJECT", help="a snapshot object, or a latest.json pointer"
    )
    return top


def is_bulk(args: argparse.Namespace) -> bool:
    """Whether a ``retry`` or ``fail`` command line acts by filter rather than on one ID."""
    return args.id is None


def check_usage(args: argparse.Namespace) -> str:
    """Return what is wrong with a parsed command line the parser cannot see ("" if nothing)."""
    if args.command not in ("retry", "fail"):
        return ""
    filtered = [name for name, _ in _FILTERS if getattr(args, name) is not None]
    if args.id is None and not filtered:
        return f"{args.command}: give a job ID, or filters (--state, --experiment, --datatype, --from, --to)"
    if args.id is not None and (filtered or args.limit or args.dry_run or args.yes):
        return f"{args.command}: give a job ID or filters, not both"
    return ""


#: Per command: HTTP method, admin path, and the parameters it sends.
Request = tuple[str, str, dict[str, Any]]


def build_request(args: argparse.Namespace) -> Request:
    """Return the API call a parsed command line makes."""
    c = args.command
    if c == "jobs":
        params = {
            "state": args.state,
            "experiment": args.experiment,
            "datatype": args.datatype,
            "from": args.first,
            "to": args.last,
            "limit": args.limit,
        }
        return "GET", "/admin/jobs", {k: v for k, v in params.items() if v is not None}
    if c == "job":
        return "GET", "/admin/job", {"id": args.id}
    if c in ("retry", "fail") and is_bulk(args):
        params = {api: getattr(args, name) for name, api in _FILTERS}
        params["limit"] = args.limit
        if c == "fail":
            params["reason"] = args.reason
        params = {k: v for k, v in params.items() if v is not None}
        if args.dry_run:
            params["dry_run"] = "true"
        return "POST", f"/admin/jobs/{c}", params
    if c == "retry":
        return "POST", "/admin/job/retry", {"id": args.id}
    if c == "fail":
        return "POST", "/admin/job/fail", {"id": args.id, "reason": args.reason}
    if c in ("reprocess", "cancel-reprocess"):
        params = {"from": args.first, "to": args.last}
        if args.sources:
            params["sources"] = ",".join(args.sources)
        return "POST", "/admin/reprocess" + ("/cancel" if c == "cancel-reprocess" else ""), params
    if c in ("pause", "resume"):
        params = {"target": args.target}
        if getattr(args, "reason", ""):
            params["reason"] = args.reason
        return "POST", f"/admin/{c}", params
    if c == "controls":
        return "GET", "/admin/controls", {}
    if c == "export":
        return "POST", "/admin/snapshot/export", {}
    return "POST", "/admin/snapshot/import", {"source": args.source}


# --- tables ----------------------------------------------------------------------------------

#: Formats a time the API answered (RFC 3339, or None/"" for none) for a table.
When = Callable[[Any], str]


def absolute(value: Any) -> str:
    """Return an API time as it came (RFC 3339), "" for none."""
    return "" if value in (None, "") else str(value)


def relative(now: dt.datetime) -> When:
    """Return a formatter of API times relative to ``now``: "3 min ago", "in 2 h"."""

    def when(value: Any) -> str:
        if value in (None, ""):
            return ""
        try:
            then = parse_time(str(value))
        except ValueError:
            return str(value)
        return ago(now - then)

    return when


def ago(delta: dt.timedelta) -> str:
    """Return a time difference as a person says it: "just now", "3 min ago", "in 2 h"."""
    seconds = delta.total_seconds()
    future, seconds = seconds < 0, abs(seconds)
    if seconds < 1:
        return "just now"
    unit, size = next(
        (u, n) for u, n in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)) if seconds >= n
    )
    text = f"{int(seconds // size)} {unit}"
    return f"in {text}" if future else f"{text} ago"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Return rows as a plain text table with aligned columns."""
    cells = [[str(h) for h in header]] + [["" if v is None else str(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells
    )


def _short(text: str, width: int = 60) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _show_jobs(body: dict[str, Any], when: When) -> str:
    rows = [
        (j["ID"], j["State"], j["Attempts"], when(j["LastActivity"]), _short(j["Detail"]))
        for j in body["Jobs"]
    ]
    return (
        table(("ID", "STATE", "RUNS", "LAST ACTIVITY", "DETAIL"), rows) + f"\n{body['Shown']} jobs"
    )


#: The fields of one job's view that are times.
_TIMES = frozenset({"RetryAt", "LastActivity"})


def _show_job(body: dict[str, Any], when: When) -> str:
    lines = [
        f"{k}: {when(body[k]) if k in _TIMES else body[k]}"
        for k in (
            "ID",
            "State",
            "Label",
            "Detail",
            "Attempts",
            "LastError",
            "RetryAt",
            "LastActivity",
            "Offer",
            "Reoffer",
            "LeaseOwner",
        )
        if body.get(k) not in (None, "")
    ]
    if "Previous" in body:
        lines.insert(1, f"Previous: {body['Previous']}")
    history = [
        (h["State"], when(h["Start"]), when(h["DetailTime"]), _short(h["Detail"], 80))
        for h in body["Status"]["History"]
    ]
    lines += ["", "History:", table(("STATE", "START", "DETAIL TIME", "DETAIL"), history)]
    audit = [
        (when(a["Time"]), a["Who"], a["Action"], _short(a["Detail"], 80)) for a in body["Audit"]
    ]
    lines += [
        "",
        "Audit:",
        table(("TIME", "WHO", "ACTION", "DETAIL"), audit) if audit else "(none)",
    ]
    return "\n".join(lines)


def _show_pause(p: dict[str, Any] | None, when: When) -> str:
    if p is None:
        return "running"
    changed = f" (reason by {p['ReasonBy']} {when(p['ReasonAt'])})" if "ReasonBy" in p else ""
    return f"paused by {p['Who']} since {when(p['Since'])}" + (
        f": {p['Reason']}{changed}" if p["Reason"] else ""
    )


def _show_paused(body: dict[str, Any], when: When) -> str:
    text = f"{body['Paused']['Target']}: {_show_pause(body['Paused'], when)}"
    if "PreviousReason" in body:
        was = body["PreviousReason"] or "(none)"
        text += f"\n(paused already; reason changed by {body['UpdatedBy']}, was: {was})"
    return text


def _show_controls(body: dict[str, Any], when: When) -> str:
    rows = [("historical", _show_pause(body["Historical"], when))]
    rows += [(s["Source"], _show_pause(s["Paused"], when)) for s in body["Sources"]]
    lines = [
        table(("TARGET", "STATE"), rows),
        "",
        f"Reprocessing queued: {body['ReprocessQueued']}",
    ]
    if body["ReprocessNext"]:
        lines.append(
            table(
                ("NEXT", "QUEUED BY", "AT"),
                [(i["ID"], i["Who"], when(i["QueuedAt"])) for i in body["ReprocessNext"]],
            )
        )
    return "\n".join(lines)


def _show_reprocess(body: dict[str, Any], when: When) -> str:
    head = (
        f"queued {body['Queued']} jobs for reprocessing "
        f"({body['AlreadyQueued']} were queued already)"
    )
    return "\n".join([head] + [f"  {key}" for key in body["Jobs"]])


def _show_cancel_reprocess(body: dict[str, Any], when: When) -> str:
    head = f"cancelled {body['Cancelled']} queued reprocessing jobs"
    if body["HandedOut"]:
        head += f" ({body['HandedOut']} were being handed out and are left to run)"
    return "\n".join([head] + [f"  {key}" for key in body["Jobs"]])


def _show_export(body: dict[str, Any], when: When) -> str:
    return (
        f"exported {body['jobs']} jobs to gs://{body['bucket']}/{body['object']} "
        f"({body['bytes']} bytes); pointer gs://{body['bucket']}/{body['latest']}"
    )


def _show_import(body: dict[str, Any], when: When) -> str:
    text = (
        f"imported {body['Source']}: {body['Total']} jobs, {body['Created']} created, "
        f"{body['AlreadyPresent']} already present (left untouched)"
    )
    if body["Skipped"]:
        text += f"; skipped {len(body['Skipped'])} entries without a status"
    return text


def _show_bulk(body: dict[str, Any], when: When) -> str:
    done = "retried" if body["Action"] == "retry" else "failed"
    if body["DryRun"]:
        would = f"would be {done}" if body["Changed"] else ""
        lines = [f"{body['Matched']} jobs match; nothing changed (dry run)"]
        lines += [f"{len(body['Changed'])} {would}:"] if body["Changed"] else []
        lines += [f"  {key}" for key in body["Changed"]]
    else:
        lines = [f"{done} {len(body['Changed'])} jobs"] + [f"  {key}" for key in body["Changed"]]
    if body["Unchanged"]:
        left = "would be left" if body["DryRun"] else "left"
        lines.append(f"{left} {len(body['Unchanged'])} jobs unchanged:")
        lines += [f"  {u['ID']}: {u['Why']}" for u in body["Unchanged"]]
    return "\n".join(lines)


def _show_one_or_bulk(command: str) -> Callable[[dict[str, Any], When], str]:
    def show(body: dict[str, Any], when: When) -> str:
        if "Action" in body:
            return _show_bulk(body, when)
        if command == "retry":
            return f"{body['ID']} is due for a retry now\n\n" + _show_job(body, when)
        return f"{body['ID']}: {body['Previous']} -> failed\n\n" + _show_job(body, when)

    return show


SHOW: dict[str, Callable[[dict[str, Any], When], str]] = {
    "jobs": _show_jobs,
    "job": _show_job,
    "retry": _show_one_or_bulk("retry"),
    "fail": _show_one_or_bulk("fail"),
    "reprocess": _show_reprocess,
    "cancel-reprocess": _show_cancel_reprocess,
    "pause": _show_paused,
    "resume": lambda b, when: (
        f"{b['Resumed']['Target']}: resumed (was {_show_pause(b['Resumed'], when)})"
    ),
    "controls": _show_controls,
    "export": _show_export,
    "import": _show_import,
}


# --- calling ---------------------------------------------------------------------------------


class Failure(Exception):
    """A command that cannot go on: the one line to print, and the exit status."""

    def __init__(self, line: str, status: int = EXIT_REJECTED, body: str = "") -> None:
        super().__init__(line)
        self.line = line
        self.status = status
        #: The tracker's answer, printed with ``--json``.
        self.body = body


#: How to get credentials for a deployed tracker, said once.
LOGIN_HINT = (
    'pass --token "$(gcloud auth print-identity-token)" (or set GARDENER_TOKEN), or run '
    "`gcloud auth application-default login` and add --impersonate-service-account SA_EMAIL"
)

#: Where the CLI's URL comes from, said when the answer is not the tracker's.
URL_HINT = "is --url the admin function's URL (`terraform output admin_url`)?"


def transport(args: argparse.Namespace) -> Transport:
    """Return the transport for ``args.url``: ID tokens when deployed, ``X-Operator`` locally.

    Deployed, the ID token is ``--token``; else one minted for a service account
    to impersonate (the person is sent as ``X-Operator``, recorded as a claim
    beside the account); else one of the Application Default Credentials; else,
    when those cannot mint one (a person's own login), ``gcloud auth
    print-identity-token``. Raises :class:`Failure` when none of these works.
    """
    if needs_identity_token(args.url):
        import google.auth.exceptions

        if args.token:
            session = token_session(args.token)
        else:
            try:
                session = identity_session(args.url.rstrip("/"), args.impersonate)
            except google.auth.exceptions.GoogleAuthError as exc:
                if args.impersonate:
                    raise Failure(
                        f"error: no credentials to impersonate {args.impersonate} "
                        f"({_first_line(exc)}): run `gcloud auth application-default login`"
                    ) from None
                args.token = gcloud_identity_token(args.url, exc)  # a 401 is about this token
                session = token_session(args.token)
            if args.impersonate:
                session.headers["X-Operator"] = args.operator or _person()
        return Transport(args.url, timeout=args.timeout, attempts=3, session=session)
    session = requests.Session()
    session.headers["X-Operator"] = args.operator or _default_operator()
    return Transport(args.url, timeout=args.timeout, attempts=3, session=session)


def gcloud_identity_token(url: str, why: BaseException) -> str:
    """Return the ID token of the person logged in to gcloud; :class:`Failure` if there is none.

    ``why`` is the reason Application Default Credentials could not mint one
    (a person's user credentials cannot), said when gcloud cannot help either.
    """
    gcloud = shutil.which("gcloud")
    command = "`gcloud auth print-identity-token`"
    if gcloud is None:
        raise Failure(
            f"error: no credentials to call {url} ({_first_line(why)}) and no gcloud to ask: "
            f"{LOGIN_HINT}"
        )
    timeout = defaults.GCLOUD_TOKEN_TIMEOUT
    try:
        done = _run(gcloud, "auth", "print-identity-token")
    except subprocess.TimeoutExpired:
        raise Failure(
            f"error: {command} gave no token within {timeout:g} s; run it yourself and "
            'pass --token "$(gcloud auth print-identity-token)"'
        ) from None
    except OSError as exc:
        raise Failure(f"error: cannot run {command} ({exc}): {LOGIN_HINT}") from None
    token = done.stdout.strip()
    if done.returncode != 0 or not token.isascii() or not token or any(c.isspace() for c in token):
        said = _short(re.sub(r"^ERROR: \([\w.-]+\) ", "", _gcloud_error(done.stderr)), 120)
        raise Failure(
            f"error: {command} failed ({said or f'exit status {done.returncode}'}): "
            f"run `gcloud auth login` and try again, or {LOGIN_HINT}"
        )
    return token


def _gcloud_error(stderr: str) -> str:
    """The line of gcloud's ``stderr`` that says what failed: its ERROR, not a WARNING before it."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:")]
    others = [line for line in lines if not line.startswith("WARNING:")]
    return (errors or others or lines or [""])[0]


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    """Run ``command`` within :data:`~shared.defaults.GCLOUD_TOKEN_TIMEOUT`, in its own group.

    On time-out, or Ctrl-C, the whole process group is killed (gcloud is a script
    that starts Python, which would otherwise keep the pipes open, or run on) and
    the exception (``TimeoutExpired``, ``KeyboardInterrupt``) raised again.
    """
    timeout = defaults.GCLOUD_TOKEN_TIMEOUT
    with subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",  # whatever the locale prints, a line to show rather than a crash
        start_new_session=True,
    ) as process:
        try:
            out, err = process.communicate(timeout=timeout)
        except BaseException:  # the time-out, or Ctrl-C, which gcloud (a session of its own) misses
            with contextlib.suppress(OSError):
                os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def _person() -> str:
    """Who impersonates: $GARDENER_OPERATOR, else gcloud's account, else the login name."""
    if os.environ.get("GARDENER_OPERATOR"):
        return os.environ["GARDENER_OPERATOR"]
    gcloud = shutil.which("gcloud")
    if gcloud:
        try:
            done = _run(gcloud, "config", "get-value", "account")
        except (subprocess.TimeoutExpired, OSError):
            pass
        else:
            account = done.stdout.strip()
            if done.returncode == 0 and "@" in account and " " not in account:
                return account
    return _default_operator()


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return _short(re.sub(r"\s*For more information.*$", "", text), 160) or type(exc).__name__


#: The writes by filter, sent once (a timeout leaves their outcome to be looked at).
BULK_PATHS = ("/admin/jobs/retry", "/admin/jobs/fail")


def call(
    args: argparse.Namespace, tracker: Transport, method: str, path: str, params: dict[str, Any]
) -> dict[str, Any]:
    """Make one API call; return its JSON answer, or raise :class:`Failure` with one line."""
    import google.auth.exceptions

    if path in BULK_PATHS and not params.get("dry_run"):
        tracker.attempts = 1  # a write by filter is sent once: a retry would act again
    try:
        response = tracker.request(method, path, call=f"gardener {args.command}", params=params)
    except google.auth.exceptions.GoogleAuthError as exc:  # an ID token could not be minted
        raise Failure(
            f"error: could not get an ID token for {args.url} ({_first_line(exc)}): {LOGIN_HINT}"
        ) from None
    except TransportError as exc:
        if exc.unreachable:
            raise Failure(f"error: no tracker at {args.url}; set --url or GARDENER_URL") from None
        raise Failure(f"error: {_short(str(exc), 300)}") from None  # one line, if HTML
    status = response.status_code
    if status in (401, 403):
        ours = _tracker_error(response)
        who = "the tracker" if ours else "the platform (Cloud Run, or IAP) in front of the tracker"
        said = f": {_short(ours, 160)}" if ours else ""
        raise Failure(
            f"error: {who} at {args.url} refused the call (HTTP {status}{said}): "
            f"{_auth_hint(args, status)}",
            body=response.text,
        )
    if status != 200:
        ours = _tracker_error(response)
        said = ours or f"{_short(error_message(response), 160)} (not the tracker's answer)"
        raise Failure(f"error: {said} (HTTP {status})", body=response.text)
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        kind = response.headers.get("Content-Type", "no content type").split(";")[0]
        raise Failure(
            f"error: {args.url} answered HTTP 200 but not with the tracker's JSON ({kind}: "
            f"{_short(response.text, 60)!r}): {URL_HINT} A sign-in page means a proxy (IAP) "
            "wants a browser; the command line needs a token it admits",
            body=response.text,
        )
    return body


def _tracker_error(response: requests.Response) -> str:
    """The tracker's own error message (a JSON ``error``), or "" for the platform's answer."""
    try:
        body = response.json()
    except ValueError:
        return ""
    return str(body["error"]) if isinstance(body, dict) and "error" in body else ""


def _auth_hint(args: argparse.Namespace, status: int) -> str:
    if status == 403:
        return (
            "your identity may not call it; ask for roles/run.invoker on the admin function "
            "(behind IAP: roles/iap.httpsResourceAccessor), or use "
            "--impersonate-service-account with a service account that has it"
        )
    if not needs_identity_token(args.url):
        return URL_HINT
    if args.token:
        return (
            "the token is expired (they last an hour) or not for this service; get a new "
            'one: --token "$(gcloud auth print-identity-token)"'
        )
    return LOGIN_HINT


def confirm(question: str) -> bool:
    """Ask ``question`` on the terminal; return whether the answer is yes."""
    try:
        print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)  # stdout is for the answer
        answer = input()
    except (EOFError, KeyboardInterrupt):  # no terminal, or Ctrl-C: no
        print(file=sys.stderr)
        return False
    return answer.strip().lower() in ("y", "yes")


def run(args: argparse.Namespace) -> dict[str, Any] | None:
    """Run one parsed command; return the answer to print (None: nothing more to print)."""
    method, path, params = build_request(args)
    try:
        tracker = transport(args)
    except ValueError as exc:  # a --url that is not http(s)
        raise Failure(f"gardener: error: {exc}", EXIT_USAGE) from None
    if args.command in ("retry", "fail") and is_bulk(args) and not args.dry_run and not args.yes:
        preview = call(args, tracker, method, path, {**params, "dry_run": "true"})
        keys = preview["Changed"]
        refused = f" ({len(preview['Unchanged'])} more match but would be refused)"
        if not keys:
            print("no jobs to change; nothing changed" + (refused if preview["Unchanged"] else ""))
            return None
        shown = "".join(f"\n  {key}" for key in keys[:20])
        more = f"\n  … and {len(keys) - 20} more" if len(keys) > 20 else ""
        refused = refused if preview["Unchanged"] else ""
        print(f"{len(keys)} jobs would change{refused}:{shown}{more}", file=sys.stderr)
        if not confirm(f"{args.command} these {len(keys)} jobs?"):
            raise Failure("nothing changed (not confirmed; --yes skips the question)")
    return call(args, tracker, method, path, params)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return the exit status."""
    top = parser()
    args = top.parse_args(argv)  # exits 2 on a usage error
    problem = check_usage(args)
    if problem:
        top.error(problem)
    logging.basicConfig(level=logging.WARNING, format="gardener: %(message)s")
    # A failure is one line: the transport's retries are not worth one each.
    logging.getLogger("shared.transport").setLevel(logging.ERROR)
    try:
        body = run(args)
        if body is not None:
            when = absolute if args.absolute else relative(dt.datetime.now(UTC))
            text = (
                json.dumps(body, indent=2, ensure_ascii=False)
                if args.json
                else SHOW[args.command](body, when)
            )
            print(text)
            sys.stdout.flush()
    except Failure as failure:
        print(failure.line, file=sys.stderr)
        if args.json and failure.body:
            _print_quietly(failure.body)
        return failure.status
    except BrokenPipeError:  # the reader (head, less) stopped reading: not an error
        _silence_stdout()
    except KeyboardInterrupt:  # Ctrl-C, while gcloud or the tracker was being waited for
        print(
            "gardener: interrupted (a call already sent may have been acted on: look before "
            "running it again)",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    return EXIT_OK


def _print_quietly(text: str) -> None:
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real file descriptor (a test's captured stdout)
        pass


if __name__ == "__main__":
    sys.exit(main())
