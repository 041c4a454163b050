from __future__ import annotations

from typing import Any

from prefect import flow

from dagvault.errors import VerificationError
from dagvault.quality import gate_failure
from flows._settings import ledger_profile, resolve
from tasks.backup import take_backup
from tasks.quality import backup_quality_gate
from tasks.verify import verify


@flow(name="dagvault-backup")
def backup_flow(
    database_path: str | None = None,
    backup_dir: str | None = None,
    name: str | None = None,
    description: str = "",
    verify_after: bool = True,
    backup_type: str = "full",
    compress: bool | None = None,
    config_file: str | None = None,
    quality: bool = True,
    allow_decrease: bool = False,
    reports_dir: str | None = None,
) -> dict[str, Any]:
    """Back up the ledger (full, incremental or differential; compressed with zstd when
    BACKUP_COMPRESSION_ENABLED or ``compress``), verify what was written (for a
    delta: its whole chain and the rebuilt image), then run the data-quality gate
    (GX expectations on the backup; Data Docs under DAGVAULT_REPORTS_DIR).

    A backup that fails verification or the gate fails the run (it stays on disk, marked
    failed, and is never counted as the newest verified backup). Fewer transactions than
    the previous backup fail the gate unless ``allow_decrease``.
    """
    settings = resolve(
        config_file,
        database_path=database_path,
        backup_dir=backup_dir,
        compression_enabled=compress,
        reports_dir=reports_dir,
    )
    info = take_backup(
        str(settings.database_path),
        str(settings.backup_dir),
        name,
        description,
        ledger_profile(settings),
        settings.busy_timeout_seconds,
        settings.compression_enabled,
        backup_type,
    )
    if verify_after:
        report = verify(info["backup_path"])
        info["verification"] = {"status": "verified" if report["valid"] else "failed"}
        if not report["valid"]:
            raise VerificationError(
                f"Backup {info['backup_path']} failed verification right after it was "
                f"written: {'; '.join(report['problems'])}",
                "Check the disk holding the backup directory, then take a new backup.",
                problems=report["problems"],
            )
    if quality:
        gate = backup_quality_gate(
            info["backup_path"],
            ledger_profile(settings),
            str(settings.reports_dir),
            allow_decrease,
            settings.min_timestamp,
            settings.max_future_seconds,
        )
        info["quality"] = gate
        if not gate["passed"]:
            info["verification"] = {"status": "failed"}
            raise gate_failure(gate, "the backup")
    return info
