from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task

from dagvault.schedule import backup_schedule
from dagvault.storage import as_target
from tasks._runtime import task_options
from tasks._story import leaf


def _name(parameters: dict[str, Any]) -> str:
    return f"check-schedule {leaf(parameters['database_path'])}"


@task(task_run_name=_name, **task_options())
def check_schedule(database_path: str, backup_dir: str, interval_hours: int) -> dict[str, Any]:
    """A BackupSchedule: when the last backup was and whether one is due."""
    return backup_schedule(Path(database_path), as_target(backup_dir), interval_hours).to_json()
