from __future__ import annotations

from typing import Any

from prefect import flow

from dagvault.config import Settings
from flows._concurrency import one_at_a_time
from flows._notify import HOOKS
from flows._settings import resolve
from flows._story import run_name, told
from tasks.cleanup import cleanup


@flow(name="dagvault-cleanup", flow_run_name=run_name("cleanup"), **HOOKS)
def cleanup_flow(
    keep: int | None = None,
    dry_run: bool = False,
    backup_dir: str | None = None,
    config_file: str | None = None,
    database_path: str | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Keep the newest ``keep`` backups (default BACKUP_RETENTION_COUNT) and the newest
    verified one; remove the data and metadata of the rest, and the database's pre-restore
    copies beyond PRE_RESTORE_BACKUP_COUNT."""
    settings = resolve(
        settings,
        config_file,
        backup_dir=backup_dir,
        retention_count=keep,
        database_path=database_path,
    )
    with (
        told("cleanup", settings) as story,
        one_at_a_time(backup_dir=settings.backup_dir, removes=True),
    ):
        result = cleanup(
            str(settings.backup_dir),
            settings.retention_count,
            dry_run,
            str(settings.database_path),
            settings.pre_restore_keep,
        )
        story.note(
            keep=settings.retention_count,
            dry_run=dry_run,
            kept=result["kept"],
            removed_backups=result["removed_backups"],
            bytes_freed=result["bytes_freed"],
        )
    return result
