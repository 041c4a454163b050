"""The commands for running dagvault in production: fleet backups and served deployments."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from dagvault.config import CONFIG_ENV, env_var, load_settings
from dagvault.errors import ConfigError, DagvaultError, FleetBackupIncomplete
from dagvault_cli.output import emit_json, table
from flows.launcher import require_reachable_api, run_operation


def fleet_backup(args: argparse.Namespace) -> int:
    failure: DagvaultError | None = None
    try:
        result = run_operation(
            "fleet-backup",
            ledgers=args.ledgers or None,
            glob=args.glob,
            backup_dir=args.backup_dir,
            backup_type=args.backup_type,
            quality=not args.no_quality,
            task_runner=args.task_runner,
            dask_address=args.dask_address,
            config_file=args.config,
            settings=load_settings({"backup_dir": args.backup_dir}, config_file=args.config),
        )
        reports = result["reports"]
    except DagvaultError as exc:
        if not isinstance(exc, FleetBackupIncomplete):
            raise
        failure, reports = exc, exc.reports  # every node's outcome, not just the error
    if args.json:
        emit_json({"ok": failure is None, "reports": reports})
    else:
        rows = [
            (
                r["ledger"],
                r["status"],
                r.get("backup_path") or f"{r['error_type']}: {r['error']}",
            )
            for r in reports
        ]
        print(table(rows, ("ledger", "status", "backup or error")))
    if failure:
        raise failure
    return 0


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
    require_reachable_api()
    from deployments.serve import main

    main()
    return 0
