from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task

from dagvault.crypto import writing_key
from dagvault.meta import read_meta
from dagvault.storage import open_store
from dagvault.storage.offsite.objects import upload_backup
from dagvault.storage.offsite.replicate import replicate
from dagvault.storage.throttle import throttle_for
from tasks._artifacts import create_table_artifact
from tasks._runtime import artifact_key, task_options
from tasks._story import cell, fields, leaf, step


def _key(encrypt: bool, key_file: str | None) -> bytes | None:
    # Only the key file's path is a task parameter: Prefect stores parameters.
    return writing_key(encrypt, Path(key_file) if key_file else None)


def _replicate_name(parameters: dict[str, Any]) -> str:
    return f"replicate-to {leaf(parameters['target'])}"


def _upload_name(parameters: dict[str, Any]) -> str:
    return f"upload {leaf(parameters['backup_path'])} → {leaf(parameters['target'])}"


@task(task_run_name=_replicate_name, **task_options())
def replicate_to(
    backup_dir: str,
    target: str,
    encrypt: bool,
    key_file: str | None,
    bandwidth_limit: int | None = None,
) -> dict[str, Any]:
    """Copy the backups ``target`` lacks (uploads at most ``bandwidth_limit`` bytes/s) and
    report the lag (also kept in the backup directory's .dagvault-replication.json for
    metrics)."""
    report = replicate(
        Path(backup_dir),
        open_store(target),
        _key(encrypt, key_file),
        throttle=throttle_for(bandwidth_limit),
    ).to_json()
    lag = report["lag_seconds"]
    step(
        "replicated to %s: %d copied (%s), %d skipped, lag %s",
        target,
        len(report["copied"]),
        cell(report["bytes_copied"], "bytes"),
        len(report["skipped"]),
        "none (no backup there)" if lag is None else f"{lag:,} s",
    )
    create_table_artifact(
        key=artifact_key("replication", leaf(target) or "target"),
        table=fields(
            {
                "target": target,
                "copied": ", ".join(report["copied"]),
                "skipped": "; ".join(f"{k}: {v}" for k, v in report["skipped"].items()),
                "missing": report["missing"],
                "lag_seconds": lag,
                "bytes_copied": report["bytes_copied"],
            }
        ),
        description=f"Replication of {backup_dir} to {target}",
    )
    return report


@task(task_run_name=_upload_name, **task_options())
def upload_to(
    backup_path: str,
    target: str,
    encrypt: bool,
    key_file: str | None,
    bandwidth_limit: int | None = None,
) -> str:
    """Upload one local backup to ``target`` (data at most ``bandwidth_limit`` bytes/s,
    read-back check, .meta last); return its URL there."""
    backup = Path(backup_path)
    remote = upload_backup(
        backup,
        read_meta(backup),
        open_store(target),
        _key(encrypt, key_file),
        throttle=throttle_for(bandwidth_limit),
    )
    return remote.backup_path
