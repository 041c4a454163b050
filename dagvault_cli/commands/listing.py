"""Listing backups: `list`. A module of its own, light to import: the parser of a `list`
loads only this group (dagvault_cli.main), so the command answers in about the time Python
takes to start (no operation models, no flows)."""

from __future__ import annotations

import argparse

from dagvault.catalog import PRE_RESTORE
from dagvault.recovery import describe_window, listing_fields, recovery_points
from dagvault.storage.backup_store import backup_store
from dagvault_cli.commands._common import settings_from, when
from dagvault_cli.flags import DIR_HELP, PRE_RESTORE_DB_HELP, Subparsers, command, positive_int
from dagvault_cli.output import emit_json, human_bytes, table


def register(subparsers: Subparsers) -> None:
    p = command(
        subparsers,
        "list",
        list_,
        "List backups, newest first; files without metadata are flagged.",
        "dagvault list --limit 10 --json",
    )
    p.add_argument("--backup-dir", help=DIR_HELP)
    p.add_argument("--db", help=PRE_RESTORE_DB_HELP)
    p.add_argument("--limit", type=positive_int, help="show at most N backups")


def list_(args: argparse.Namespace) -> int:
    settings = settings_from(args, backup_dir=args.backup_dir, database_path=args.db)
    store = backup_store(settings.backup_dir)
    every, incomplete = store.listing(settings.database_path, None)
    entries = every[: args.limit]
    points = recovery_points(every)
    recovery = listing_fields(points)
    if args.json:
        emit_json([{**e.to_json(), **recovery(e)} for e in entries])
        return 0
    for name, why in sorted(incomplete.items()):
        print(f"not a backup (incomplete): {name}: {why}")
    if not entries:
        print(f"No backups in {settings.backup_dir}")
        return 0
    rows = [
        (
            when(e.timestamp),
            e.path.name,
            (e.info.backup_type if e.info else "?")
            + (" (pre-restore)" if e.kind == PRE_RESTORE else ""),
            (e.info.metadata.get("parent") or "-") if e.info else "-",
            human_bytes(e.file_size),
            e.info.total_transactions if e.info else "?",
            e.info.verification.status if e.info else f"NO METADATA ({e.problem})",
            recovery(e)["recovery_point_at"] or "-",
        )
        for e in entries
    ]
    headers = [
        "created",
        "backup",
        "type",
        "parent",
        "size",
        "transactions",
        "verification",
        "recovery point (UTC)",
    ]
    print(table(rows, headers))
    print(f"recovery window: {describe_window(points)}")
    return 0
