from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task

from dagvault.storage.backup_store import stored_backup
from tasks._artifacts import create_table_artifact
from tasks._runtime import task_options
from tasks._story import cell, checks_line, leaf, step


def _name(parameters: dict[str, Any]) -> str:
    return f"verify {leaf(parameters['backup_path'])}"


@task(task_run_name=_name, **task_options())
def verify(
    backup_path: str,
    quick: bool = False,
    checksum: bool = True,
    recheck_quality: bool = False,
    key_file: str | None = None,
    staging_dir: str | None = None,
) -> dict[str, Any]:
    """Verify one backup (checksum, metadata, integrity, row counts), local or at a
    storage target (fetched into ``staging_dir`` first); report, never raise for a bad
    backup: the flow decides what a failure means."""
    report = stored_backup(backup_path).verify(
        quick=quick,
        checksum=checksum,
        recheck_quality=recheck_quality,
        key_file=Path(key_file) if key_file else None,
        staging=Path(staging_dir) if staging_dir else None,
    )
    result = report.to_json()
    if result["valid"]:
        transactions = result["total_transactions"]
        step(
            "verified %s: %s%s",
            leaf(backup_path),
            checks_line(result["checks"]),
            f", {transactions:,} transactions" if transactions is not None else "",
        )
    else:
        step("verification FAILED for %s: %s", leaf(backup_path), "; ".join(result["problems"]))
    return result


def publish_verification_artifact(reports: list[dict[str, Any]], key: str) -> None:
    create_table_artifact(
        key=key,
        table=[
            {
                "backup": Path(r["backup_path"]).name,
                "valid": r["valid"],
                "problems": "; ".join(r["problems"]),
                "transactions": cell(r["total_transactions"]),
                "duration_seconds": cell(r["duration_seconds"], "duration_seconds"),
                **(
                    {"quality": "passed" if r["quality"]["passed"] else "FAILED"}
                    if r.get("quality")
                    else {}
                ),
            }
            for r in reports
        ],
        description=f"{sum(r['valid'] for r in reports)} of {len(reports)} backups valid",
    )
