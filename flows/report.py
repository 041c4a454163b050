from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from dagvault.config import Settings
from dagvault.report import report_directory
from flows._notify import HOOKS
from flows._settings import resolve
from tasks.report import health_report_task


@flow(name="dagvault-health-report", **HOOKS)
def health_report_flow(
    days: int | None = None,
    charts: bool = True,
    backup_dir: str | None = None,
    reports_dir: str | None = None,
    config_file: str | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Report how BACKUP_DIR has fared over the last ``days`` (DAGVAULT_REPORT_DAYS):
    success rate, duration and size trends, ledger growth, RPO over time, restore drills
    and a disk forecast, with warnings past the thresholds (DAGVAULT_REPORT_*). A Markdown
    artifact holds the table; with ``charts``, PNG charts and one HTML page go to
    DAGVAULT_REPORTS_DIR/health. Warnings do not fail the run: they are in the report."""
    settings = resolve(
        settings, config_file, backup_dir=backup_dir, reports_dir=reports_dir, report_days=days
    )
    directory = report_directory(settings.backup_dir)
    report = health_report_task(
        str(directory),
        settings.report_days,
        {
            "max_failure_rate": settings.report_max_failure_rate,
            "min_disk_days": settings.report_min_disk_days,
            "interval_hours": settings.interval_hours,
        },
        str(settings.reports_dir) if charts else None,
    )
    for warning in report["warnings"]:
        get_run_logger().info("⚠️ %s", warning)
    return report
