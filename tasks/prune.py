from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task

from dagvault.retention import DEFAULT_PRE_RESTORE_KEEP, PreRestoreRule, RetentionPolicy
from dagvault.storage.backup_store import backup_store
from tasks._artifacts import create_table_artifact
from tasks._runtime import artifact_key, task_options
from tasks._story import cell, leaf, step


def _name(parameters: dict[str, Any]) -> str:
    return f"prune {leaf(parameters['backup_dir'])}"


@task(task_run_name=_name, **task_options())
def prune(
    backup_dir: str,
    policy: dict[str, int | None],
    dry_run: bool,
    database_path: str | None = None,
    pre_restore_keep: int = DEFAULT_PRE_RESTORE_KEEP,
) -> dict[str, Any]:
    """Apply the retention ``policy`` (RetentionPolicy fields) to ``backup_dir`` and keep
    the newest ``pre_restore_keep`` pre-restore copies of ``database_path``; the plan,
    with every backup's reasons, becomes a table artifact."""
    rules = RetentionPolicy(**policy)
    rule = PreRestoreRule(Path(database_path), pre_restore_keep) if database_path else None
    outcome = backup_store(backup_dir).prune(rules, dry_run=dry_run, pre_restore=rule)
    result = outcome.to_json()
    freed = cell(result["bytes_freed"], "bytes")
    step(
        "prune of %s (%s): %s %d backups (%s), kept %d",
        leaf(backup_dir),
        rules.describe(),
        "would remove" if dry_run else "removed",
        result["removed_backups"],
        freed,
        result["kept"],
    )
    create_table_artifact(
        # Per database (the directory's name would be "backups" for every node).
        key=artifact_key("prune", Path(database_path).stem if database_path else leaf(backup_dir)),
        table=[
            {
                "backup": Path(d["backup_path"]).name,
                "type": d["backup_type"],
                "action": d["action"] if not dry_run else f"would {d['action']}",
                "reasons": d["reason"],
            }
            for d in result["decisions"]
        ],
        description=(
            f"Policy: {rules.describe()}. "
            f"{'Dry run: would free' if dry_run else 'Freed'} {freed}, "
            f"{result['removed_backups']} backups removed, {result['kept']} kept"
        ),
    )
    return result
