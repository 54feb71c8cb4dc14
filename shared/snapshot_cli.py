"""Snapshot commands straight on Firestore and GCS: ``gardener-snapshot import|export ...``.

The offline counterpart of ``gardener import|export`` (which ask a deployed
tracker over ``/admin``): for a first load, a restore, or a tracker that is not
running. Also ``python -m shared.snapshot_cli``.

``import PATH|gs://BUCKET/OBJECT`` validates a Go-format state file
(a ``gs://…/latest.json`` pointer is followed) and creates the jobs Firestore
does not have yet; jobs already there are left untouched.
``export gs://BUCKET[/PREFIX]`` writes a snapshot of every job under
PREFIX (default ``snapshots/``), points ``latest.json`` at it and keeps the
newest ``--keep`` snapshots.

Clients connect as usual: ``FIRESTORE_EMULATOR_HOST`` / ``STORAGE_EMULATOR_HOST``
for the emulators, application default credentials otherwise. The collection is
``TRACKER_COLLECTION`` (default ``jobs``). Exit status: 0 done, 2 file refused
(every problem is listed; nothing was written) or bad arguments, 1 any other error.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from shared.cli import positive_int
from shared.gotime import format_time
from shared.model import utcnow

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_REFUSED = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gardener-snapshot",
        description="Gardener tracker snapshots, straight on Firestore and GCS.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    imp = commands.add_parser(
        "import",
        help="create missing jobs from a Go-format state file",
        description="Validate a Go-format state file (saver struct v2) and create the jobs "
        "Firestore does not have yet. Jobs already in Firestore are left untouched; "
        "Jobs entries without a status are skipped and listed. A malformed file is "
        "refused (exit 2) with every problem listed, and nothing is written.",
    )
    imp.add_argument(
        "source",
        metavar="PATH|gs://BUCKET/OBJECT",
        help="local file, GCS object, or a snapshot pointer (latest.json) in GCS",
    )

    exp = commands.add_parser(
        "export",
        help="write a snapshot of every job to GCS",
        description="Write every job to a new object gs://BUCKET/PREFIX/<time>.json in the Go "
        "tracker's state-file format, point PREFIX/latest.json at it, and delete all "
        "but the newest --keep snapshots.",
    )
    exp.add_argument(
        "target",
        metavar="gs://BUCKET[/PREFIX]",
        help="bucket, and prefix of the snapshot objects (default snapshots/)",
    )
    exp.add_argument(
        "--keep",
        type=positive_int,
        default=None,
        metavar="N",
        help="snapshots to keep, at least 1 (default 48)",
    )

    for sub in (imp, exp):
        sub.add_argument(
            "--project",
            metavar="P",
            default=None,
            help="Google Cloud project (default: from the environment)",
        )
        sub.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser


def _store(project: str | None) -> Any:
    from google.cloud import firestore

    from shared.store import JOBS_COLLECTION, JobStore

    collection = os.environ.get("TRACKER_COLLECTION") or JOBS_COLLECTION
    return JobStore(firestore.Client(project=project), collection)


def _storage(project: str | None) -> Any:
    import google.cloud.storage as storage  # the name form mypy resolves

    return storage.Client(project=project)


def _import(args: argparse.Namespace) -> dict[str, Any]:
    from shared.snapshot import import_snapshot, load_snapshot

    client = _storage(args.project) if args.source.startswith("gs://") else None
    # Validated whole, streaming, before anything is written; then read again to write.
    with load_snapshot(args.source, client) as snapshot:
        result = import_snapshot(_store(args.project), snapshot)
    out = {
        "source": args.source,
        "save_time": format_time(snapshot.save_time) if snapshot.save_time else None,
        **dataclasses.asdict(result),
    }
    skipped = result.skipped
    out["message"] = (
        f"imported {args.source} (saved {out['save_time']}): {result.total} jobs, "
        f"{result.created} created, {result.already_present} already present (left untouched)"
        + (
            f"; skipped {len(skipped)} Jobs entries without a status: {', '.join(skipped)}"
            if skipped
            else ""
        )
    )
    return out


def _export(args: argparse.Namespace) -> dict[str, Any]:
    from shared.defaults import SNAPSHOT_KEEP, SNAPSHOT_PREFIX
    from shared.snapshot import write_snapshot

    if not args.target.startswith("gs://"):
        raise ValueError(f"{args.target!r} is not gs://BUCKET[/PREFIX]")
    bucket_name, _, prefix = args.target.removeprefix("gs://").partition("/")
    if not bucket_name:
        raise ValueError(f"{args.target!r} names no bucket")
    prefix = prefix.strip("/")
    prefix = prefix + "/" if prefix else SNAPSHOT_PREFIX
    bucket = _storage(args.project).bucket(bucket_name)
    keep = args.keep or SNAPSHOT_KEEP
    result = write_snapshot(_store(args.project), bucket, utcnow(), prefix=prefix, keep=keep)
    out = dataclasses.asdict(result)
    out["message"] = (
        f"exported {result.jobs} jobs to gs://{result.bucket}/{result.object} ({result.bytes} bytes); "
        f"pointer gs://{result.bucket}/{result.latest}"
        f"{'' if result.latest_updated else ' left on a later snapshot'}; "
        f"deleted {len(result.deleted)} old snapshots"
    )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return the exit status."""
    args = _parser().parse_args(argv)
    from shared.snapshot import ImportInterrupted, SnapshotError

    try:
        out = _import(args) if args.command == "import" else _export(args)
    except SnapshotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if args.json:
            print(json.dumps({"error": "snapshot refused", "problems": exc.problems}))
        return EXIT_REFUSED
    except ImportInterrupted as exc:
        lists = {
            "created": exc.created,
            "already_present": exc.already_present,
            "not_written": exc.not_written,
        }
        print(f"error: {exc}", file=sys.stderr)
        for name, keys in lists.items():
            print(f"{name.replace('_', ' ')} ({len(keys)}):", *keys, sep="\n  ", file=sys.stderr)
        if args.json:
            print(json.dumps({"error": str(exc), **lists}))
        return EXIT_ERROR
    except Exception as exc:  # noqa: BLE001 - an operator command reports every failure
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        if args.json:
            print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return EXIT_ERROR
    message = out.pop("message")
    print(json.dumps(out) if args.json else message)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
