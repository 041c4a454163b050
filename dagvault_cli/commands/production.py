"""Running dagvault in production: `fleet-backup` (many nodes' ledgers at once) and
`serve-deployments` (the scheduled deployments, served from this process)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from dagvault.backup import BACKUP_KINDS
from dagvault.config import CONFIG_ENV, env_var, load_settings
from dagvault.errors import ConfigError, FleetBackupIncomplete
from dagvault.operations.fleet import FleetOptions, FleetResult
from dagvault.presets import PRESETS
from dagvault_cli.commands._common import json_printed, options_from, settings_from
from dagvault_cli.flags import Subparsers, command
from dagvault_cli.handoff import run_operation
from dagvault_cli.output import table


def register(subparsers: Subparsers) -> None:
    p = command(
        subparsers,
        "fleet-backup",
        fleet_backup,
        "Back up many ledgers (one per node) in parallel, each into BACKUP_DIR/<label>; "
        "one node's failure does not stop the others.",
        "dagvault fleet-backup --glob '/srv/nodes/*/blockchain.db' --task-runner dask "
        "--dask-address tcp://10.0.0.5:8786",
    )
    p.add_argument("ledgers", nargs="*", help="ledger files (with or instead of --glob)")
    p.add_argument("--glob", help="a pattern matching the ledgers ('**' recurses)")
    p.add_argument("--backup-dir", help="the root of the nodes' backup directories (BACKUP_DIR)")
    p.add_argument(
        "--type", dest="backup_type", type=str.lower, choices=BACKUP_KINDS, default="full"
    )
    p.add_argument("--no-quality", action="store_true", help="skip the data-quality gates")
    p.add_argument(
        "--task-runner",
        choices=("default", "dask"),
        default="default",
        help="default: threads in this process; dask: a Dask cluster",
    )
    p.add_argument(
        "--dask-address",
        help="the Dask scheduler (tcp://HOST:8786); without it, a local Dask cluster",
    )

    p = command(
        subparsers,
        "serve-deployments",
        serve_deployments,
        "Serve the deployments of deployments/prefect.yaml from this process (no work pool) "
        "until stopped; needs PREFECT_API_URL.",
        "PREFECT_API_URL=http://127.0.0.1:4200/api dagvault serve-deployments --preset critical",
    )
    p.add_argument(
        "--preset",
        choices=tuple(PRESETS),
        help="a recommended schedule and retention (BACKUP_PRESET; docs/production.md)",
    )


def fleet_backup(args: argparse.Namespace) -> int:
    options = options_from(
        FleetOptions, args, ledgers=args.ledgers or None, quality=not args.no_quality
    )
    settings = settings_from(args, backup_dir=args.backup_dir)
    try:
        result: FleetResult = run_operation(
            "fleet-backup", options, config_file=args.config, settings=settings
        )
    except FleetBackupIncomplete as exc:
        reports = exc.reports  # every node's outcome, not just the error
        failed = sum(r["status"] == "failed" for r in reports)
        result = FleetResult(ok=False, ledgers=len(reports), failed=failed, reports=reports)
        _print_fleet(args, result)
        raise
    _print_fleet(args, result)
    return 0


def _print_fleet(args: argparse.Namespace, result: FleetResult) -> None:
    if json_printed(args, result):
        return
    rows = [
        (r["ledger"], r["status"], r.get("backup_path") or f"{r['error_type']}: {r['error']}")
        for r in result.reports
    ]
    print(table(rows, ("ledger", "status", "backup or error")))


def serve_deployments(args: argparse.Namespace) -> int:
    # The served runs read their settings from this process's environment.
    if args.preset:
        os.environ[env_var("preset") or ""] = args.preset
    if args.config:
        os.environ[CONFIG_ENV] = str(Path(args.config).absolute())
    load_settings()  # a bad configuration would fail every scheduled run: fail now
    if not os.environ.get("PREFECT_API_URL"):
        raise ConfigError(
            "Serving deployments needs a Prefect server; PREFECT_API_URL is not set",
            "Start one (`prefect server start`) and set PREFECT_API_URL, e.g. "
            "http://127.0.0.1:4200/api.",
        )
    from flows.launcher import require_reachable_api  # not an operation: no run_operation

    require_reachable_api()
    from deployments.serve import main

    main()
    return 0
