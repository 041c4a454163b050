from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow

from dagvault.config import Settings
from dagvault.drill import failure
from dagvault.quality import Limits
from flows._notify import HOOKS
from flows._settings import journal_dir, key_file, ledger_profile, resolve, staging_dir
from tasks.drill import restore_drill


@flow(name="dagvault-restore-drill", **HOOKS)
def drill_flow(
    quality: bool = True,
    config_file: str | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Prove that the backups restore: the newest recovery point of BACKUP_DIR and one older
    one picked at random are restored into scratch files (never the live database), checked
    (integrity_check, the data-quality gate), timed (the RTO) and removed; the outcome goes
    to the journal, `/metrics` and `/health`. A failed drill fails the run, so the
    notifications of failed runs fire (docs/restore.md)."""
    settings = resolve(settings, config_file)
    database = Path(settings.database_path).absolute()
    # Scratch files on the database's filesystem: the RTO measured is the one a restore gets.
    beside = str(database.parent) if database.parent.is_dir() else None
    result = restore_drill(
        str(settings.backup_dir),
        journal_dir(settings),
        ledger_profile(settings),
        key_file(settings),
        settings.busy_timeout_seconds,
        settings.max_restore_time,
        staging_dir(settings) or beside,
        str(settings.reports_dir),
        Limits(settings.min_timestamp, settings.max_future_seconds),
        quality,
    )
    if not result["success"]:
        raise failure(result)
    return result
