from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task

from dagvault.retention import DEFAULT_PRE_RESTORE_KEEP, PreRestoreRule
from dagvault.storage.backup_store import backup_store
from tasks._artifacts import create_table_artifact
from tasks._runtime import artifact_key, task_options
from tasks._story import cell, leaf, step


def _name(parameters: dict[str, Any]) -> str:
    return f"cleanup {leaf(parameters['backup_dir'])}"


@task(task_run_name=_name, **task_options())
def cleanup(
    backup_dir: str,
    keep: int,
    dry_run: bool,
    database_path: str | None = None,
    pre_restore_keep: int = DEFAULT_PRE_RESTORE_KEEP,
) -> dict[str, Any]:
    """Remove all but the newest ``keep`` backups (never the newest verified one) of a
    local directory or a storage target, and all but the newest ``pre_restore_keep``
    pre-restore copies of ``database_path``."""
    rule = PreRestoreRule(Path(database_path), pre_restore_keep) if database_path else None
    outcome = backup_store(backup_dir).cleanup(keep, dry_run=dry_run, pre_restore=rule)
    result = outcome.to_json()
    freed = cell(result["bytes_freed"], "bytes")
    step(
        "cleanup of %s: %s %d files (%s), kept %d backups",
        leaf(backup_dir),
        "would remove" if dry_run else "removed",
        result["files_removed"],
        freed,
        result["kept"],
    )
    create_table_artifact(
        # Per database (the directory's name would be "backups" for every node).
        key=artifact_key(
            "cleanup", Path(database_path).stem if database_path else leaf(backup_dir)
        ),
        table=[
            {
                "backup": Path(d["backup_path"]).name,
                "action": d["action"] if not dry_run else f"would {d['action']}",
                "reason": d["reason"],
            }
            for d in result["decisions"]
        ],
        description=(
            f"{'Dry run: would free' if dry_run else 'Freed'} {freed}, "
            f"{result['files_removed']} files removed, {result['kept']} backups kept"
        ),
    )
    return result
