"""Putting a backup back: `restore`."""

from __future__ import annotations

import argparse

from dagvault.errors import ConfigError
from dagvault.operations import RestoreOptions, RestoreResult
from dagvault.recovery import point_at
from dagvault.storage.backup_store import backup_store
from dagvault_cli.commands._common import (
    json_printed,
    options_from,
    require_backup,
    settings_from,
)
from dagvault_cli.flags import DB_HELP, DIR_HELP, KEY_HELP, Subparsers, command
from dagvault_cli.handoff import run_operation
from dagvault_cli.output import progress_bar


def register(subparsers: Subparsers) -> None:
    p = command(
        subparsers,
        "restore",
        restore,
        "Restore a backup, or the ledger as it was at a point in time (--at), into the "
        "database: verify, pre-restore backup, atomic copy, check.",
        "dagvault restore ./backups/blockchain_1704067200.db --db ./blockchain.db\n"
        "  dagvault restore --at 2026-12-06T05:50:04Z --db ./blockchain.db",
    )
    p.add_argument("backup", nargs="?", help="the backup file to restore, or TARGET_URL/NAME")
    p.add_argument(
        "--at",
        metavar="TIME",
        help="instead of a backup: the newest recovery point of --backup-dir at or before "
        "TIME (ISO 8601, no zone = UTC; or unix seconds), restored through its chain",
    )
    p.add_argument("--backup-dir", help=DIR_HELP + "; where --at looks")
    p.add_argument("--key-file", help=KEY_HELP)
    p.add_argument("--db", help=DB_HELP + "; may be a new file")
    p.add_argument(
        "--no-pre-restore-backup",
        action="store_true",
        help="do not keep a copy of the current database (CREATE_PRE_RESTORE_BACKUP)",
    )
    p.add_argument("--no-verify", action="store_true", help="skip verifying the backup first")
    p.add_argument(
        "--allow-schema-change",
        action="store_true",
        help="without a key: restore even though the backup adds or changes triggers or "
        "views, or drops tables or triggers (written to the audit log beside the database)",
    )
    p.add_argument(
        "--allow-gate-failed",
        action="store_true",
        help="restore a backup whose data-quality gate failed (to investigate its data)",
    )


def restore(args: argparse.Namespace) -> int:
    if (args.backup is None) == (args.at is None):
        raise ConfigError(
            "Name the backup to restore, or a point in time with --at, not both",
            "dagvault restore BACKUP | --at TIME (`dagvault list` shows the recovery points)",
        )
    options = options_from(
        RestoreOptions,
        args,
        backup_path=args.backup,
        # Not given: the flow resolves it and can name the env var or file key in a warning.
        create_pre_restore_backup=False if args.no_pre_restore_backup else None,
    )
    settings = settings_from(
        args,
        database_path=args.db,
        backup_dir=args.backup_dir,
        encryption_key_file=args.key_file,
    )
    if args.at is not None:
        # Fail fast, before a flow run starts: a time outside the window names the window.
        point_at(backup_store(settings.backup_dir).backups(), args.at)
    else:
        require_backup(args.backup, settings)
    with progress_bar(not args.json):
        result: RestoreResult = run_operation(
            "restore",
            options,
            verify_first=not args.no_verify,
            config_file=args.config,
            settings=settings,
        )
    if json_printed(args, result):
        return 0
    source = args.backup or result.backup_info["backup_path"]
    print(f"✅ Database {result.database_path} restored from {source}")
    if result.recovery_point:
        print(f"   recovery point {result.recovery_point} (--at {args.at})")
    print(
        f"   {result.backup_info['total_transactions']} transactions, {result.duration_seconds} s"
    )
    if result.pre_restore_backup:
        print(f"   pre-restore backup: {result.pre_restore_backup}")
    for warning in result.warnings:
        print(f"   warning: {warning}")
    return 0
