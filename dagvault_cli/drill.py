"""`dagvault drill`: a restore drill now (docs/restore.md, Restore drills)."""

from __future__ import annotations

import argparse
from typing import Any

from dagvault.config import load_settings
from dagvault.drill import gate_word
from dagvault.errors import DrillFailed
from dagvault.operations.common import parse_options
from dagvault.operations.drill import DrillOptions, DrillResult
from dagvault_cli.output import emit_json, progress_bar, table
from dagvault_cli.parsing import add_command
from flows.launcher import run_operation


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = add_command(
        subparsers,
        "drill",
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
    p.add_argument("--key-file", help="the encryption key (DAGVAULT_ENCRYPTION_KEY_FILE)")
    p.add_argument("--no-quality", action="store_true", help="skip the data-quality gate")
    p.add_argument("--reports-dir", help="where GX Data Docs go (DAGVAULT_REPORTS_DIR)")
    # handler: what the sub-command modules dispatch on; func: what main() calls today.
    p.set_defaults(handler=drill, func=drill)


def drill(args: argparse.Namespace) -> int:
    options = parse_options(DrillOptions, quality=not args.no_quality)
    settings = load_settings(
        {
            "backup_dir": args.backup_dir,
            "database_path": args.db,
            "encryption_key_file": args.key_file,
            "reports_dir": args.reports_dir,
        },
        config_file=args.config,
    )
    failure: DrillFailed | None = None
    with progress_bar(not args.json):
        try:
            result: DrillResult = run_operation(
                "drill", options, config_file=args.config, settings=settings
            )
            document = result.document()
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
