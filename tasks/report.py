from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task

from dagvault.report import Thresholds, health_report
from dagvault.report_render import markdown, write_files
from tasks._artifacts import create_markdown_artifact
from tasks._runtime import artifact_key, task_options


@task(**task_options())
def health_report_task(
    backup_dir: str,
    days: int,
    thresholds: dict[str, Any],
    reports_dir: str | None,
) -> dict[str, Any]:
    """The health report of ``backup_dir`` over ``days`` days: a Markdown artifact with its
    table, and (with ``reports_dir``) the charts and the HTML page there."""
    report = health_report(
        Path(backup_dir), window_days=days, thresholds=Thresholds(**thresholds)
    ).to_json()
    if reports_dir is not None:
        write_files(report, Path(reports_dir))
    create_markdown_artifact(
        key=artifact_key("health-report", Path(backup_dir).name or "backups"),
        markdown=markdown(report),
        description=f"Backup health of {backup_dir}",
    )
    return report
