"""The ``closedloop`` command: operations an admin runs against a deployed (or the local) stack.

``closedloop erase --email ada@example.com`` erases a person (see :mod:`closedloop.erasure`) from the
table named by ``TABLE_NAME`` and the analytics bucket named by ``BUCKET_NAME``, with the standard AWS
credentials and endpoint settings (``AWS_PROFILE``, ``AWS_REGION``, ``AWS_ENDPOINT_URL``...). It prints
the erasure's counts as JSON; the e-mail is never printed or logged.

``closedloop export-snapshot`` seeds the raw datasets under ``raw/`` from the whole table, once, for a
deployment whose table existed before the lake export (:func:`closedloop.analytics.raw_export.
export_table_snapshot`, docs/deploy.md); it prints the rows written per dataset as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import TextIO

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="closedloop", description="Closedloop operations.")
    commands = parser.add_subparsers(dest="command", required=True)
    erase = commands.add_parser(
        "erase",
        help="erase a person: lead, devices, visits, deal contacts, Parquet rows",
        description="Erase everything Closedloop keeps about one person (docs/security.md, Privacy).",
    )
    erase.add_argument("--email", required=True, help="the person's e-mail address")
    erase.add_argument("--table", help="the DynamoDB table (default: $TABLE_NAME)")
    erase.add_argument("--bucket", help="the analytics bucket (default: $BUCKET_NAME; none: table only)")
    snapshot = commands.add_parser(
        "export-snapshot",
        help="seed the raw datasets (raw/) from the whole table, once",
        description="Write every touch, visitor link, lead, deal and deal event of the table as raw "
        "insert rows (docs/deploy.md, Upgrade).",
    )
    snapshot.add_argument("--table", help="the DynamoDB table (default: $TABLE_NAME)")
    snapshot.add_argument("--bucket", help="the analytics bucket (default: $BUCKET_NAME)")
    snapshot.add_argument(
        "--at",
        type=int,
        help="the snapshot's time in ms (default: now); the same value rewrites the same objects",
    )
    return parser


def _export_snapshot(args: argparse.Namespace, environ: Mapping[str, str], out: TextIO, err: TextIO) -> int:
    from closedloop.analytics.raw_export import export_table_snapshot
    from closedloop.analytics.raw_lake import RawLake
    from closedloop.clock import now_ms
    from closedloop.errors import DependencyError
    from closedloop.store import DynamoStore

    table = args.table or environ.get("TABLE_NAME")
    bucket = args.bucket or environ.get("BUCKET_NAME")
    if not table or not bucket:
        print("closedloop export-snapshot: pass --table and --bucket (or TABLE_NAME, BUCKET_NAME)", file=err)
        return 2
    snapshot_at = args.at if args.at is not None else now_ms()
    try:
        result = export_table_snapshot(DynamoStore(table), lake=RawLake(bucket), snapshot_at=snapshot_at)
    except DependencyError as exc:
        print(f"closedloop export-snapshot: {exc}; run it again with --at {snapshot_at}", file=err)
        return 1
    report = {"snapshot_at": snapshot_at, "rows": result.rows, "objects": len(result.objects)}
    print(json.dumps({**report, "skipped": result.skipped}), file=out)
    return 0


def _erase(args: argparse.Namespace, environ: Mapping[str, str], out: TextIO, err: TextIO) -> int:
    from closedloop.clock import now_ms
    from closedloop.erasure import erase_person
    from closedloop.errors import ClosedloopError, DependencyError
    from closedloop.lake import Lake
    from closedloop.store import DynamoStore

    table = args.table or environ.get("TABLE_NAME")
    if not table:
        print("closedloop erase: no table: pass --table or set TABLE_NAME", file=err)
        return 2
    bucket = args.bucket or environ.get("BUCKET_NAME")
    try:
        report = erase_person(
            args.email,
            store=DynamoStore(table),
            lake=Lake(bucket) if bucket else None,
            now_ms=now_ms(),
        )
    except DependencyError as exc:
        print(f"closedloop erase: {exc}; nothing is lost: run the same command again", file=err)
        return 1
    except ClosedloopError as exc:
        print(f"closedloop erase: {getattr(exc, 'message', exc)}", file=err)
        return 2
    print(json.dumps({"erased": report.as_dict(), "lake": bool(bucket)}), file=out)
    return 0


def main(argv: Sequence[str] | None = None, *, environ: Mapping[str, str] | None = None) -> int:
    """Run the command line; return the exit status (0 done, 1 retry later, 2 bad usage or input)."""
    args = _parser().parse_args(argv)
    if args.command == "erase":
        return _erase(args, os.environ if environ is None else environ, sys.stdout, sys.stderr)
    if args.command == "export-snapshot":
        return _export_snapshot(args, os.environ if environ is None else environ, sys.stdout, sys.stderr)
    return 2  # pragma: no cover - argparse refuses unknown commands


if __name__ == "__main__":
    raise SystemExit(main())
