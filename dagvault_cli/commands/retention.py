"""Which backups go: `cleanup` (keep the newest N) and `prune` (retention rules)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dagvault.dry_run import cleanup_plan, prune_plan
from dagvault.operations.retention import (
    RETENTION_RULES,
    CleanupOptions,
    PruneOptions,
    RetentionResult,
)
from dagvault.presets import prune_policy
from dagvault.retention import RetentionPolicy
from dagvault_cli.commands._common import json_printed, options_from, settings_from
from dagvault_cli.flags import (
    DIR_HELP,
    PRE_RESTORE_DB_HELP,
    Subparsers,
    command,
    count,
    positive_int,
)
from dagvault_cli.handoff import run_operation
from dagvault_cli.output import human_bytes, table


def register(subparsers: Subparsers) -> None:
    p = command(
        subparsers,
        "cleanup",
        cleanup,
        "Remove all but the newest N backups (never the newest verified one).",
        "dagvault cleanup --keep 7 --dry-run",
    )
    p.add_argument("--keep", type=positive_int, help="backups to keep (BACKUP_RETENTION_COUNT)")
    p.add_argument("--dry-run", action="store_true", help="print the plan, delete nothing")
    p.add_argument("--backup-dir", help=DIR_HELP)
    p.add_argument("--db", help=PRE_RESTORE_DB_HELP)

    p = command(
        subparsers,
        "prune",
        prune,
        "Apply restic-style retention rules (OR-combined, chain-aware; never the newest "
        "verified full backup).",
        "dagvault prune --keep-last 3 --keep-daily 7 --keep-weekly 4 --keep-monthly 12 --dry-run",
    )
    p.add_argument(
        "--keep-last",
        type=count,
        metavar="N",
        help="keep the N newest (default BACKUP_RETENTION_COUNT when no rule is given)",
    )
    for unit, bucket in (
        ("hourly", "hour"),
        ("daily", "day"),
        ("weekly", "ISO week"),
        ("monthly", "month"),
    ):
        p.add_argument(
            f"--keep-{unit}",
            type=count,
            metavar="N",
            help=f"newest backup of each of the N latest {bucket}s that have one (UTC)",
        )
    p.add_argument(
        "--by-schedule",
        action="store_true",
        help="with no rule: keep the newest backup of each of the last BACKUP_RETENTION_COUNT "
        "periods of BACKUP_INTERVAL_HOURS (the presets' retention; the prune deployment's)",
    )
    p.add_argument("--dry-run", action="store_true", help="print the plan, delete nothing")
    p.add_argument("--backup-dir", help=DIR_HELP)
    p.add_argument("--db", help=PRE_RESTORE_DB_HELP)


def _print_freed(result: RetentionResult) -> None:
    """The closing line of cleanup and prune: what was (or would be) removed and freed."""
    if result.dry_run:
        print(
            f"Dry run: would remove {result.removed_backups} backups, "
            f"{human_bytes(result.bytes_freed)} would be freed"
        )
    else:
        print(
            f"🧹 removed {result.removed_backups} backups "
            f"({result.files_removed} files), {human_bytes(result.bytes_freed)} freed"
        )


def cleanup(args: argparse.Namespace) -> int:
    options = options_from(CleanupOptions, args)
    settings = settings_from(
        args, backup_dir=args.backup_dir, retention_count=args.keep, database_path=args.db
    )
    result: RetentionResult = (
        cleanup_plan(settings)  # a read, not a run (dagvault.dry_run)
        if options.dry_run
        else run_operation("cleanup", options, config_file=args.config, settings=settings)
    )
    if json_printed(args, result):
        return 0
    rows = [(Path(d["backup_path"]).name, d["action"], d["reason"]) for d in result.decisions]
    if rows:
        print(table(rows, ["backup", "plan", "reason"]))
    _print_freed(result)
    return 0


def prune(args: argparse.Namespace) -> int:
    options = options_from(PruneOptions, args)
    settings = settings_from(args, backup_dir=args.backup_dir, database_path=args.db)
    policy = prune_policy(  # fail fast
        RetentionPolicy(*(getattr(options, f"keep_{rule}") for rule in RETENTION_RULES)),
        by_schedule=options.by_schedule,
        interval_hours=settings.interval_hours,
        retention_count=settings.retention_count,
    )
    result: RetentionResult = (
        prune_plan(policy, settings)  # a read, not a run (dagvault.dry_run)
        if options.dry_run
        else run_operation("prune", options, config_file=args.config, settings=settings)
    )
    if json_printed(args, result):
        return 0
    rows = [
        (Path(d["backup_path"]).name, d["backup_type"], d["action"], d["reason"])
        for d in result.decisions
    ]
    print(f"Policy: {policy.describe()} (UTC calendar buckets)")
    if rows:
        print(table(rows, ["backup", "type", "action", "reasons"]))
    _print_freed(result)
    return 0
