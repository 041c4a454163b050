from __future__ import annotations

from typing import Any

from prefect import flow

from dagvault.config import Settings
from flows._concurrency import one_at_a_time
from flows._notify import HOOKS
from flows._settings import resolve
from flows._story import run_name, told
from flows.backup import backup_flow
from tasks._artifacts import create_table_artifact
from tasks._runtime import artifact_key
from tasks._story import fields
from tasks.cleanup import cleanup
from tasks.schedule import check_schedule


@flow(name="dagvault-scheduled-backup", flow_run_name=run_name("scheduled-backup"), **HOOKS)
def scheduled_backup_flow(
    database_path: str | None = None,
    backup_dir: str | None = None,
    interval_hours: int | None = None,
    run_if_due: bool = True,
    config_file: str | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """``schedule_backup`` (`schedule --run-if-due`): back up when the interval has passed since
    the last usable backup, then (backup.auto_cleanup) apply the retention count."""
    settings = resolve(
        settings,
        config_file,
        database_path=database_path,
        backup_dir=backup_dir,
        interval_hours=interval_hours,
    )
    with told("scheduled-backup", settings) as story:
        outcome = _run_if_due(settings, config_file, run_if_due)
        taken = outcome["backup"]["backup_path"] if outcome["backup"] else None
        story.note(backup_taken=taken or ("no (not due)" if run_if_due else "no"))
        create_table_artifact(
            key=artifact_key("schedule", settings.database_path.stem),
            table=fields({"backup taken": story.facts["backup_taken"], **outcome["schedule"]}),
            description=f"Backup schedule of {settings.database_path}",
        )
    return outcome


def _run_if_due(settings: Settings, config_file: str | None, run_if_due: bool) -> dict[str, Any]:
    schedule = check_schedule(
        str(settings.database_path), str(settings.backup_dir), settings.interval_hours
    )
    outcome: dict[str, Any] = {"schedule": schedule, "backup": None, "cleanup": None}
    if schedule["is_due"] and run_if_due:
        outcome["backup"] = backup_flow(config_file=config_file, settings=settings)
        if settings.auto_cleanup:
            with one_at_a_time(backup_dir=settings.backup_dir, removes=True):
                outcome["cleanup"] = cleanup(
                    str(settings.backup_dir),
                    settings.retention_count,
                    False,
                    str(settings.database_path),
                    settings.pre_restore_keep,
                )
        outcome["schedule"] = check_schedule(
            str(settings.database_path), str(settings.backup_dir), settings.interval_hours
        )
    return outcome
