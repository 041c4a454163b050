from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task

from dagvault.ledger import LedgerProfile
from dagvault.retention import DEFAULT_PRE_RESTORE_KEEP
from dagvault.storage.backup_store import stored_backup
from tasks._artifacts import create_table_artifact
from tasks._runtime import artifact_key, task_options
from tasks._story import fields, leaf, step


def _name(parameters: dict[str, Any]) -> str:
    return f"restore {leaf(parameters['database_path'])} ← {leaf(parameters['backup_path'])}"


@task(task_run_name=_name, **task_options())
def restore(
    backup_path: str,
    database_path: str,
    pre_restore_backup: bool,
    verify: bool,
    verify_checksum: bool,
    profile: LedgerProfile,
    busy_timeout: float,
    max_seconds: float,
    key_file: str | None = None,
    allow_schema_change: bool = False,
    pre_restore_off_by: str = "the caller",
    allow_gate_failed: bool = False,
    pre_restore_keep: int = DEFAULT_PRE_RESTORE_KEEP,
) -> dict[str, Any]:
    """Verify (authenticate, with a key), take a pre-restore backup, restore atomically,
    check the result. A backup at a storage target (a URL) is downloaded beside the
    database first."""
    options: dict[str, Any] = {
        "pre_restore_backup": pre_restore_backup,
        "pre_restore_off_by": pre_restore_off_by,
        "verify": verify,
        "verify_checksum": verify_checksum,
        "profile": profile,
        "busy_timeout": busy_timeout,
        "max_seconds": max_seconds,
        "allow_schema_change": allow_schema_change,
        "allow_gate_failed": allow_gate_failed,
        "pre_restore_keep": pre_restore_keep,
    }
    backup = stored_backup(backup_path)
    result = backup.restore(
        Path(database_path), key_file=Path(key_file) if key_file else None, **options
    )
    step(
        "restored %s from %s: %s transactions%s",
        leaf(database_path),
        leaf(backup.location),
        f"{result.backup_info.total_transactions:,}",
        f"; pre-restore backup {leaf(result.pre_restore_backup)}"
        if result.pre_restore_backup
        else "",
    )
    create_table_artifact(
        key=artifact_key("restore", Path(database_path).stem),
        table=fields(
            {
                "backup_path": backup.location,
                "database_path": database_path,
                "checksum (SHA3-256)": result.backup_info.checksum,
                "total_transactions": result.backup_info.total_transactions,
                "pre_restore_backup": result.pre_restore_backup,
                "warnings": "; ".join(result.warnings),
                "duration_seconds": round(result.duration_seconds, 3),
            }
        ),
        description=f"Restore of {database_path}",
    )
    return result.to_json()
