from __future__ import annotations

from typing import Any

from prefect import flow

from dagvault.config import Settings, setting_source
from dagvault.errors import ConfigError
from dagvault.recovery import Choice, point_at
from dagvault.storage.backup_store import backup_store
from flows._concurrency import directory_of, one_at_a_time
from flows._notify import HOOKS
from flows._settings import key_file, ledger_profile, resolve
from flows._story import run_name, told
from tasks._story import leaf
from tasks.restore import restore


def _name(parameters: dict[str, Any], database: str) -> str:
    if parameters.get("backup_path") is None and parameters.get("at") is not None:
        return f"restore {database} ← at {parameters['at']}"
    return f"restore {database} ← {leaf(parameters['backup_path'])}"


@flow(name="dagvault-restore", flow_run_name=run_name("restore", _name), **HOOKS)
def restore_flow(
    backup_path: str | None = None,
    database_path: str | None = None,
    create_pre_restore_backup: bool | None = None,
    verify_first: bool = True,
    config_file: str | None = None,
    encryption_key_file: str | None = None,
    allow_schema_change: bool = False,
    allow_gate_failed: bool = False,
    settings: Settings | None = None,
    at: str | None = None,
) -> dict[str, Any]:
    """Restore a backup (``backup_path``), or the ledger as it was at a point in time
    (``at``: the newest recovery point of BACKUP_DIR at or before it, through its chain),
    into the live database (or a new file): verify first, take a pre-restore backup, copy
    atomically, check the result (a RestoreResult; docs/restore.md). A backup at a storage
    target (``s3://bucket/prefix/NAME``) is downloaded beside the database and checked on
    the way, then restored the same way.

    With a key configured the backup must be authenticated; without one, a backup that
    adds or changes triggers or views, or drops tables or triggers, is refused unless
    ``allow_schema_change`` (audit-logged; docs/security.md). A backup whose data-quality
    gate failed is refused unless ``allow_gate_failed``. The restore becomes the baseline
    of the next backups' transactions_not_decreased gate."""
    settings = resolve(
        settings,
        config_file,
        database_path=database_path,
        create_pre_restore_backup=create_pre_restore_backup,
        encryption_key_file=encryption_key_file,
    )
    choice: Choice | None = None
    if at is not None:
        choice = point_at(backup_store(settings.backup_dir).backups(), at)
        backup_path = choice.point.backup.where
    if backup_path is None:
        raise ConfigError("Name a backup to restore, or a point in time (at)")
    with (
        told("restore", settings) as story,
        one_at_a_time(database=settings.database_path, backup_dir=directory_of(backup_path)),
    ):
        story.note(backup=backup_path)
        result = restore(
            backup_path,
            str(settings.database_path),
            settings.create_pre_restore_backup,
            verify_first,
            settings.restore_verify_checksum,
            ledger_profile(settings),
            settings.busy_timeout_seconds,
            settings.max_restore_time,
            key_file(settings),
            allow_schema_change,
            # A given parameter is the run's own request; else the environment or the file.
            "--no-pre-restore-backup (API: create_pre_restore_backup=false)"
            if create_pre_restore_backup is not None
            else setting_source("create_pre_restore_backup", config_file=config_file),
            allow_gate_failed,
            settings.pre_restore_keep,
        )
        if choice is not None:
            result["recovery_point"] = choice.point.iso
            if choice.warning:
                result["warnings"].append(choice.warning)
        story.note(
            total_transactions=result["backup_info"]["total_transactions"],
            pre_restore_backup=result["pre_restore_backup"],
            warnings=result["warnings"],
            **({"recovery_point": result["recovery_point"]} if choice is not None else {}),
        )
    return result
