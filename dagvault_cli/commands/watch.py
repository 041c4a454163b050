"""Continuous protection: `watch` (notice ledger changes and get incremental backups
taken for them)."""

from __future__ import annotations

import argparse
import signal
import threading

from dagvault_cli.commands._common import settings_from
from dagvault_cli.flags import Subparsers, command

HELP = (
    "Watch the ledger for commits (WAL and data_version, every DAGVAULT_WATCH_INTERVAL s) "
    "and send Prefect the events whose deployment triggers take incremental backups within "
    "RPO_TARGET_SECONDS; without PREFECT_API_URL, take those backups here. Runs until "
    "stopped (SIGTERM, Ctrl-C); `dagvault up` runs one."
)
EXAMPLE = "PREFECT_API_URL=http://127.0.0.1:4200/api dagvault watch --db ./blockchain.db"


def register(subparsers: Subparsers) -> None:
    p = command(subparsers, "watch", run, HELP, EXAMPLE)
    # Values are checked where settings are resolved, so a bad one names its flag.
    p.add_argument("--db", help="the ledger database (DATABASE_PATH, default ./blockchain.db)")
    p.add_argument(
        "--backup-dir", help="where the backups this process takes go (BACKUP_DIR, ./backups)"
    )
    p.add_argument(
        "--watch-interval-seconds",
        metavar="SECONDS",
        help="seconds between looks at the ledger (DAGVAULT_WATCH_INTERVAL, 1)",
    )
    p.add_argument(
        "--rpo-target-seconds",
        metavar="SECONDS",
        help="the age the newest recovery point of a changed ledger may reach "
        "(RPO_TARGET_SECONDS, 60); for the backups this process takes",
    )
    p.add_argument(
        "--take-backups",
        action="store_true",
        help="take the incremental backups in this process even with PREFECT_API_URL set "
        "(no deployment is served); events are still sent",
    )
    p.add_argument(
        "--quality",
        action="store_true",
        help="run the data-quality gate (GX) on the backups this process takes (off, as in "
        "the deployment triggers: the full backups and nightly-verify gate every backup)",
    )


def run(args: argparse.Namespace) -> int:
    from flows.watch import run_watch  # Prefect's import costs seconds: not for --help

    settings = settings_from(
        args,
        database_path=args.db,
        backup_dir=args.backup_dir,
        watch_interval_seconds=args.watch_interval_seconds,
        rpo_target_seconds=args.rpo_target_seconds,
    )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    run_watch(
        settings,
        take_backups=args.take_backups,
        quality=args.quality,
        config_file=args.config,
        stop=stop,
    )
    return 0
