"""How the backups have fared: `report` (dagvault.report)."""

from __future__ import annotations

import argparse
from typing import Any

from dagvault.operations.report import ReportOptions
from dagvault.report import RECENT_DAYS, report_directory
from dagvault.report_render import (
    EMPTY,
    OPERATION_HEADERS,
    is_empty,
    operation_rows,
    period,
    summary_rows,
    title,
)
from dagvault_cli.commands._common import json_printed, options_from, settings_from
from dagvault_cli.flags import Subparsers, command
from dagvault_cli.handoff import run_operation
from dagvault_cli.output import table

HELP = (
    "Report the backups' health: success rate, duration and size trends, ledger growth, RPO "
    "over time, restore drills and a disk forecast, with warnings; charts and an HTML page "
    "in DAGVAULT_REPORTS_DIR/health."
)
EXAMPLE = "dagvault report --backup-dir ./backups --days 30"


def register(subparsers: Subparsers) -> None:
    p = command(subparsers, "report", report, HELP, EXAMPLE)
    p.add_argument("--backup-dir", help="the local backup directory (BACKUP_DIR)")
    p.add_argument(
        "--days",
        type=int,
        metavar="N",
        help="the days the report covers, up to now (DAGVAULT_REPORT_DAYS, default 30)",
    )
    p.add_argument(
        "--reports-dir",
        help="where the charts and the HTML page go, under health/ "
        "(DAGVAULT_REPORTS_DIR, default ./reports)",
    )
    p.add_argument("--no-charts", action="store_true", help="only the table: no PNG, no HTML")


def report(args: argparse.Namespace) -> int:
    options = options_from(ReportOptions, args, charts=not args.no_charts)
    settings = settings_from(
        args,
        backup_dir=args.backup_dir,
        reports_dir=args.reports_dir,
        report_days=options.days,
    )
    report_directory(settings.backup_dir)  # fail fast, before a flow run starts
    result = run_operation("report", options, config_file=args.config, settings=settings)
    if not json_printed(args, result):
        print(render(result.model_dump(mode="json")))
    return 0


def render(result: dict[str, Any]) -> str:
    """The report for a terminal: the warnings, then its tables."""
    lines = [f"{title(result)}: {period(result)}"]
    if is_empty(result):
        return "\n".join([*lines, f"{EMPTY} Take one with `dagvault backup`."])
    lines += [f"⚠️  {w}" for w in result["warnings"]]
    lines += [table(summary_rows(result), ["metric", "value"]), ""]
    lines.append(table(operation_rows(result), OPERATION_HEADERS))
    lines.append(f"(failure rates: the last {RECENT_DAYS} days against the rest of the window)")
    if result["charts"]:
        lines.append(f"charts: {result['charts'][-1]}")
    return "\n".join(lines)
