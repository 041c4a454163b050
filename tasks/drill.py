"""The restore drill's task: drill, record the outcome, publish it as an artifact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task

from dagvault import drill
from dagvault.ledger import LedgerProfile
from dagvault.quality import Limits
from tasks._artifacts import create_table_artifact
from tasks._runtime import artifact_key, task_options


@task(**{**task_options(), "retries": 0})  # a drill that fails must fail, not hide in a retry
def restore_drill(
    backup_dir: str,
    journal_dir: str | None,
    profile: LedgerProfile,
    key_file: str | None,
    busy_timeout: float,
    max_seconds: float,
    scratch_root: str | None,
    reports_dir: str,
    limits: Limits,
    quality: bool,
) -> dict[str, Any]:
    """Restore the newest and one older recovery point into scratch files, check them,
    measure the RTO; record it in the journal and the drill status (local BACKUP_DIR)."""
    result = drill.drill_backups(
        backup_dir,
        key_file=Path(key_file) if key_file else None,
        profile=profile,
        busy_timeout=busy_timeout,
        max_seconds=max_seconds,
        scratch_root=Path(scratch_root) if scratch_root else None,
        reports_dir=Path(reports_dir),
        limits=limits,
        quality=quality,
    )
    drill.record(Path(journal_dir) if journal_dir else None, result)
    create_table_artifact(
        key=artifact_key("restore-drill", Path(backup_dir).name),
        table=[
            {
                "point": c.role,
                "backup": c.backup_path,
                "recovery_point": c.recovery_point,
                "success": c.success,
                "rto_seconds": "-" if c.rto_seconds is None else c.rto_seconds,
                "quality_gate": drill.gate_word(c.quality_passed),
                "problem": c.problem or "-",
            }
            for c in result.checks
        ],
        description=f"Restore drill of {backup_dir}: "
        + (
            f"passed, RTO {result.rto_seconds} s"
            if result.success
            else "FAILED: " + "; ".join(result.problems)
        ),
    )
    return result.to_json()
