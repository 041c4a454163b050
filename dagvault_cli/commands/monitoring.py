"""Is the node's backup in order: `schedule` (when the next backup is due; with
--run-if-due, take it) and `health` (the liveness check of GET /health)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dagvault import db
from dagvault.health import DEGRADED_EXIT, check_health
from dagvault.operations.schedule import ScheduleOptions, ScheduleResult
from dagvault.storage.backup_store import backup_store
from dagvault_cli.commands._common import json_printed, options_from, settings_from, when
from dagvault_cli.flags import DB_HELP, DIR_HELP, Subparsers, command, positive_int
from dagvault_cli.handoff import run_operation
from dagvault_cli.output import emit_json, progress_bar, rpo_text


def register(subparsers: Subparsers) -> None:
    p = command(
        subparsers,
        "schedule",
        schedule,
        "Show when the next backup is due; with --run-if-due, take it when due.",
        "dagvault schedule --interval-hours 24 --run-if-due",
    )
    p.add_argument("--db", help=DB_HELP)
    p.add_argument("--backup-dir", help=DIR_HELP)
    p.add_argument("--interval-hours", type=positive_int, help="BACKUP_INTERVAL_HOURS")
    p.add_argument("--run-if-due", action="store_true", help="take the backup if it is due")

    p = command(
        subparsers,
        "health",
        health,
        "Check the node's backup health (GET /health): exit 0 when ok, 8 when degraded.",
        "dagvault health --json",
    )
    p.add_argument("--db", help=DB_HELP)
    p.add_argument("--backup-dir", help=DIR_HELP)


def health(args: argparse.Namespace) -> int:
    """No flow run: a few stat calls, answered at once."""
    settings = settings_from(args, database_path=args.db, backup_dir=args.backup_dir)
    backups = backup_store(settings.backup_dir).local_path
    report = check_health(
        Path(settings.database_path), backups, rpo_target=settings.rpo_target_seconds
    )
    if args.json:
        emit_json(report.to_json())
    else:
        print(f"status   : {report.status}")
        presence = "present" if report.database_present else "missing"
        print(f"database : {settings.database_path} ({presence})")
        print(f"RPO      : {rpo_text(report.to_json())}")
        for warning in report.warnings:
            print(f"warning  : {warning}")
    return 0 if report.status == "ok" else DEGRADED_EXIT


def schedule(args: argparse.Namespace) -> int:
    options = options_from(ScheduleOptions, args)
    settings = settings_from(
        args, database_path=args.db, backup_dir=args.backup_dir, interval_hours=args.interval_hours
    )
    if args.run_if_due:
        db.require_file(settings.database_path)
    with progress_bar(not args.json):
        outcome: ScheduleResult = run_operation(
            "schedule", options, config_file=args.config, settings=settings
        )
    if json_printed(args, outcome):
        return 0
    plan = outcome.schedule
    if outcome.backup:
        print(f"📦 Backup created: {outcome.backup.backup_path}")
    print(f"last backup : {when(plan.last_backup)}")
    print(f"next backup : {when(plan.next_backup)} (every {plan.interval_hours} h)")
    print(f"due now     : {'yes' if plan.is_due else 'no'}")
    return 0
