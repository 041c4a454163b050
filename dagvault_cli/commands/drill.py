"""Proving restores work: `drill` (docs/restore.md, Restore drills)."""

from __future__ import annotations

import argparse
from typing import Any

from dagvault.drill import gate_word
from dagvault.errors import DrillFailed
from dagvault.operations.drill import DrillOptions, DrillResult
from dagvault_cli.commands._common import options_from, settings_from
from dagvault_cli.flags import KEY_HELP, REPORTS_HELP, Subparsers, command
from dagvault_cli.handoff import run_operation
from dagvault_cli.output import emit_json, progress_bar, table


def register(subparsers: Subparsers) -> None:
    p = command(
        subparsers,
        "drill",
        drill,
        "Restore drill: restore the newest backup and one random older one into scratch "
        "files (never the live database), run integrity_check and the quality gate, measure "
        "the RTO. Exit 4 when a backup does not restore cleanly.",
        "dagvault drill --backup-dir ./backups --json",
    )
    p.add_argument("--backup-dir", help="the backups to drill (BACKUP_DIR, default ./backups)")
    p.add_argument(
        "--db",
        help="the ledger database: the scratch files go beside it (DATABASE_PATH; "
        "DAGVAULT_STAGING_DIR instead when set)",
    )
    p.add_argument("--key-file", help=KEY_HELP)
    p.add_argument("--no-quality", action="store_true", help="skip the data-quality gate")
    p.add_argument("--reports-dir", help=REPORTS_HELP)


def drill(args: argparse.Namespace) -> int:
    options = options_from(DrillOptions, args, quality=not args.no_quality)
    settings = settings_from(
        args,
        backup_dir=args.backup_dir,
        database_path=args.db,
        encryption_key_file=args.key_file,
        reports_dir=args.reports_dir,
    )
    failure: DrillFailed | None = None
    with progress_bar(not args.json):
        try:
            result: DrillResult = run_operation(
                "drill", options, config_file=args.config, settings=settings
            )
            document = result.model_dump(mode="json")
        except DrillFailed as exc:
            failure, document = exc, exc.document
    if args.json:
        emit_json(document)
    else:
        _print(document)
    if failure is not None:
        raise failure
    return 0


def _print(document: dict[str, Any]) -> None:
    rows = [
        (
            c["role"],
            c["backup_path"],
            c["recovery_point"],
            "ok" if c["success"] else "FAILED",
            "-" if c["rto_seconds"] is None else f"{c['rto_seconds']} s",
            gate_word(c["quality_passed"]),
            c["problem"] or "-",
        )
        for c in document["checks"]
    ]
    if rows:  # none when there was nothing to drill: the error says why
        headers = ["point", "backup", "recovery point", "restore", "RTO", "quality", "problem"]
        print(table(rows, headers))
    if document["success"]:
        print(f"✅ Restore drill passed: RTO {document['rto_seconds']} s (newest recovery point)")
