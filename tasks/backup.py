from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task

from dagvault.backup import create_backup
from dagvault.crypto import load_key
from dagvault.ledger import LedgerProfile
from dagvault.quality.backup_gate import GateOptions
from tasks._artifacts import create_table_artifact
from tasks._runtime import artifact_key, task_options
from tasks._story import checks_line, fields, leaf, step

# What a backup verified while it was written has checked, in verify's words and order.
_CHECKED_AS_WRITTEN = ("metadata", "checksum", "integrity_check", "row_counts")


def _name(parameters: dict[str, Any]) -> str:
    return f"take-backup {leaf(parameters['database_path'])} ({parameters.get('kind', 'full')})"


@task(task_run_name=_name, **task_options())
def take_backup(
    database_path: str,
    backup_dir: str,
    name: str | None,
    description: str,
    profile: LedgerProfile,
    busy_timeout: float,
    compression: bool,
    kind: str = "full",
    key_file: str | None = None,
    verify: bool = False,
    gate: GateOptions | None = None,
) -> dict[str, Any]:
    """Take a consistent full/incremental/differential backup with its SHA3-256 and .meta
    (authenticated with the key, when one is configured); ``verify``: a plain full backup
    is verified while it is written (the flow verifies the others afterwards), and with
    ``gate`` quality-gated meanwhile (its verdict in ``quality``; the flow publishes it)."""
    info = create_backup(
        Path(database_path),
        Path(backup_dir),
        name=name,
        description=description,
        profile=profile,
        busy_timeout=busy_timeout,
        compression=compression,
        kind=kind,
        key=load_key(Path(key_file) if key_file else None),
        verify=verify,
        gate=gate,
    )
    parent = info.metadata.get("parent")
    step(
        "backed up: %s, %s%s, %s transactions",
        leaf(info.backup_path),
        info.backup_type.lower(),
        f" of {parent}" if parent else "",
        f"{info.total_transactions:,}",
    )
    # (Failed by its quality gate only: sound, as verified; the gate's step says the rest.)
    if info.verification.status == "verified" or info.verification.method == "quality_gate":
        checks = checks_line(dict.fromkeys(_CHECKED_AS_WRITTEN, "ok"))
        step(
            "verified %s: %s, %s transactions",
            leaf(info.backup_path),
            checks,
            f"{info.total_transactions:,}",
        )
    create_table_artifact(
        key=artifact_key("backup", Path(database_path).stem),
        table=fields(
            {
                "backup_path": info.backup_path,
                "backup_type": info.backup_type,
                "parent": parent,
                "full_backup_reason": info.metadata.get("full_backup_reason"),
                "file_size": info.file_size,
                "checksum (SHA3-256)": info.checksum,
                "total_transactions": info.total_transactions,
                "total_nodes": info.total_nodes,
                "duration_seconds": info.duration_seconds,
                "row_counts": info.row_counts,
            }
        ),
        description=f"{info.backup_type} backup of {database_path}",
    )
    return info.to_json()
