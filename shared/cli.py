"""``gardener``: the operator's command line over the ``/admin/...`` API.

Every command calls the tracker at ``--url`` (default ``$GARDENER_URL`` or the
local stack), prints a table or, with ``--json``, the API's JSON answer, and
exits 0 when done, 1 when the tracker refused (its message on stderr) or could
not be reached, 2 for a usage error. Deployed (https) URLs get a Google ID
token from Application Default Credentials; the operator is then the token's
email, verified by the tracker. Against the local stack the operator is
``--operator`` (default ``$GARDENER_OPERATOR`` or the login name), sent as
``X-Operator`` and recorded marked ``(unverified)``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import requests

from shared.model import State
from shared.transport import Transport, TransportError, error_message, needs_identity_token

EXIT_OK, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2

#: The local stack's base URL, used when neither ``--url`` nor ``$GARDENER_URL`` is given.
DEFAULT_URL = "http://127.0.0.1:8080"

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
        default=default(60.0),
        metavar="SECONDS",
        help="per-call timeout (default 60)",
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
    jobs.add_argument("--state", choices=_STATES, help="only jobs in this state")
    jobs.add_argument("--experiment", help="only jobs of this experiment")
    jobs.add_argument("--datatype", help="only jobs of this datatype")
    jobs.add_argument(
        "--from",
        dest="first",
        type=_date,
        metavar="YYYY-MM-DD",
        help="only job dates from this day",
    )
    jobs.add_argument(
        "--to", dest="last", type=_date, metavar="YYYY-MM-DD", help="only job dates up to this day"
    )
    jobs.add_argument(
        "--limit", type=positive_int, default=100, help="at most this many (default 100)"
    )

    job = command("job", "show one job: state, history, bookkeeping and the operators' audit")
    job.add_argument("id", metavar="ID", help="job id, bucket/experiment/datatype/YYYYMMDD")

    retry = command("retry", "make a failed job due for a retry now (it counts as an attempt)")
    retry.add_argument("id", metavar="ID", help="job id")

    fail = command("fail", "mark a job in flight failed (it is not retried automatically)")
    fail.add_argument("id", metavar="ID", help="job id")
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
        rep.add_argument(
            "--from",
            dest="first",
            type=_date,
            required=True,
            metavar="YYYY-MM-DD",
            help="first job date",
        )
        rep.add_argument(
            "--to",
            dest="last",
            type=_date,
            required=True,
            metavar="YYYY-MM-DD",
            help="last job date (yesterday at the latest)",
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


def _show_jobs(body: dict[str, Any]) -> str:
    rows = [
        (j["ID"], j["State"], j["Attempts"], j["LastActivity"], _short(j["Detail"]))
        for j in body["Jobs"]
    ]
    return (
        table(("ID", "STATE", "RUNS", "LAST ACTIVITY", "DETAIL"), rows) + f"\n{body['Shown']} jobs"
    )


def _show_job(body: dict[str, Any]) -> str:
    lines = [
        f"{k}: {body[k]}"
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
        (h["State"], h["Start"], h["DetailTime"], _short(h["Detail"], 80))
        for h in body["Status"]["History"]
    ]
    lines += ["", "History:", table(("STATE", "START", "DETAIL TIME", "DETAIL"), history)]
    audit = [(a["Time"], a["Who"], a["Action"], _short(a["Detail"], 80)) for a in body["Audit"]]
    lines += [
        "",
        "Audit:",
        table(("TIME", "WHO", "ACTION", "DETAIL"), audit) if audit else "(none)",
    ]
    return "\n".join(lines)


def _show_pause(p: dict[str, Any] | None) -> str:
    if p is None:
        return "running"
    return f"paused by {p['Who']} since {p['Since']}" + (f": {p['Reason']}" if p["Reason"] else "")


def _show_controls(body: dict[str, Any]) -> str:
    rows = [("historical", _show_pause(body["Historical"]))]
    rows += [(s["Source"], _show_pause(s["Paused"])) for s in body["Sources"]]
    lines = [
        table(("TARGET", "STATE"), rows),
        "",
        f"Reprocessing queued: {body['ReprocessQueued']}",
    ]
    if body["ReprocessNext"]:
        lines.append(
            table(
                ("NEXT", "QUEUED BY", "AT"),
                [(i["ID"], i["Who"], i["QueuedAt"]) for i in body["ReprocessNext"]],
            )
        )
    return "\n".join(lines)


def _show_reprocess(body: dict[str, Any]) -> str:
    head = (
        f"queued {body['Queued']} jobs for reprocessing "
        f"({body['AlreadyQueued']} were queued already)"
    )
    return "\n".join([head] + [f"  {key}" for key in body["Jobs"]])


def _show_cancel_reprocess(body: dict[str, Any]) -> str:
    head = f"cancelled {body['Cancelled']} queued reprocessing jobs"
    if body["HandedOut"]:
        head += f" ({body['HandedOut']} were being handed out and are left to run)"
    return "\n".join([head] + [f"  {key}" for key in body["Jobs"]])


def _show_export(body: dict[str, Any]) -> str:
    return (
        f"exported {body['jobs']} jobs to gs://{body['bucket']}/{body['object']} "
        f"({body['bytes']} bytes); pointer gs://{body['bucket']}/{body['latest']}"
    )


def _show_import(body: dict[str, Any]) -> str:
    text = (
        f"imported {body['Source']}: {body['Total']} jobs, {body['Created']} created, "
        f"{body['AlreadyPresent']} already present (left untouched)"
    )
    if body["Skipped"]:
        text += f"; skipped {len(body['Skipped'])} entries without a status"
    return text


SHOW: dict[str, Callable[[dict[str, Any]], str]] = {
    "jobs": _show_jobs,
    "job": _show_job,
    "retry": lambda b: f"{b['ID']} is due for a retry now\n\n" + _show_job(b),
    "fail": lambda b: f"{b['ID']}: {b['Previous']} -> failed\n\n" + _show_job(b),
    "reprocess": _show_reprocess,
    "cancel-reprocess": _show_cancel_reprocess,
    "pause": lambda b: f"{b['Paused']['Target']}: {_show_pause(b['Paused'])}",
    "resume": lambda b: f"{b['Resumed']['Target']}: resumed (was {_show_pause(b['Resumed'])})",
    "controls": _show_controls,
    "export": _show_export,
    "import": _show_import,
}


def transport(args: argparse.Namespace) -> Transport:
    """Return the transport for ``args.url``: ID tokens when deployed, ``X-Operator`` locally."""
    if needs_identity_token(args.url):
        return Transport(args.url, timeout=args.timeout, attempts=3)
    session = requests.Session()
    session.headers["X-Operator"] = args.operator or _default_operator()
    return Transport(args.url, timeout=args.timeout, attempts=3, session=session)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return the exit status."""
    args = parser().parse_args(argv)  # exits 2 on a usage error
    logging.basicConfig(level=logging.WARNING, format="gardener: %(message)s")
    method, path, params = build_request(args)
    try:
        response = transport(args).request(
            method, path, call=f"gardener {args.command}", params=params
        )
    except ValueError as exc:  # a --url that is not http(s)
        print(f"gardener: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except TransportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_REJECTED
    if response.status_code != 200:
        print(f"error: {error_message(response)} (HTTP {response.status_code})", file=sys.stderr)
        if args.json:
            print(response.text)
        return EXIT_REJECTED
    body = response.json()
    print(json.dumps(body, indent=2, ensure_ascii=False) if args.json else SHOW[args.command](body))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
