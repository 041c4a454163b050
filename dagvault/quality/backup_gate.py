"""The quality gate of one backup: check its data, record the verdict in its ``.meta``.

A failed gate keeps the backup file but sets ``verification.status`` to "failed" (with the
failed expectations as problems): retention's newest verified backup and the choice of a
delta's base never count it, and ``dagvault list`` shows it as failed.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from dagvault import journal, lock
from dagvault.catalog import entry_for, list_backups
from dagvault.chain import materialize, resolve_chain
from dagvault.errors import DagvaultError
from dagvault.fsio import discard, temp_path
from dagvault.ledger import LedgerProfile
from dagvault.meta import BackupInfo, Verification, read_meta, write_meta
from dagvault.quality.ledger_checks import Limits, Previous, check_ledger
from dagvault.quality.report import QualityReport
from dagvault.restores import restore_baseline
from dagvault.verify import needs_rebuild


def previous_backup(path: Path, info: BackupInfo) -> Previous | None:
    """The floor for total transactions: the newest older backup of the same database with
    valid metadata that did not fail, or a restore/import of the database since (see
    dagvault.restores), whichever is newer.

    A failed backup is skipped: after a rejected drop in transactions, the next backup must
    still be compared with the last good total (or restored state), not with the loss."""
    current = entry_for(path).sort_key
    previous = None
    for entry in list_backups(path.parent):
        other = entry.info
        if entry.path == path or entry.sort_key >= current or other is None:
            continue
        if other.database_path == info.database_path and other.verification.status != "failed":
            previous = Previous(entry.path.name, other.total_transactions, other.created_at)
            break
    restore = restore_baseline(info, previous.created_at if previous else None)
    if restore is None:
        return previous
    since = (
        f", newer than the previous backup {previous.name} ({previous.total_transactions})"
        if previous
        else ""
    )
    return Previous(
        restore.source,
        restore.total_transactions,
        restore.restored_at,
        describe=f"restored from {restore.source} at {restore.restored_at} with "
        f"{restore.total_transactions}{since}",
    )


def check_backup(
    path: Path,
    profile: LedgerProfile,
    *,
    reports_dir: Path | None,
    allow_decrease: bool = False,
    limits: Limits | None = None,
) -> QualityReport:
    """Run the ledger's expectations on a backup (a delta or compressed one is rebuilt
    into a temp image first, as verify does); the caller holds the directory lock."""
    info = read_meta(path)
    image = temp_path(path.with_name(path.name + ".quality-image"))
    try:
        readable = path
        if needs_rebuild(path, info):
            materialize(resolve_chain(path, info), image)
            readable = image
        previous = previous_backup(path, info)
        report = check_ledger(
            readable,
            profile,
            snapshot_counts=info.row_counts,
            reports_dir=reports_dir,
            run_name=path.name,
            suite_prefix=Path(info.database_path).stem or "ledger",
            previous=previous,
            allow_decrease=allow_decrease,
            limits=limits,
            subject=str(path),
        )
        if previous is not None and previous.describe:  # a restore/import set the floor
            report.warnings.append(f"transactions_not_decreased baseline: {previous}")
        return report
    finally:
        discard(image)


def record_quality(path: Path, report: QualityReport) -> BackupInfo:
    """Store the verdict in the sidecar; a failure also marks the verification failed."""
    info = read_meta(path)
    verification = info.verification
    if not report.passed:
        earlier = verification.problems if verification.status == "failed" else []
        verification = Verification(
            status="failed",
            checked_at=report.checked_at,
            method="quality_gate",
            problems=[*earlier, *(f"quality: {p}" for p in report.problems())],
        )
    record = report.to_json()
    del record["subject"]  # the sidecar's own backup
    updated = info.with_quality(record, verification)
    write_meta(path, updated)
    return updated


def gate_backup(
    path: Path,
    profile: LedgerProfile,
    *,
    reports_dir: Path | None,
    allow_decrease: bool = False,
    limits: Limits | None = None,
) -> QualityReport:
    """Check one backup and record the verdict; never raises for bad data, only reports it."""
    started = time.monotonic()
    with lock.hold(path.parent, "quality gate", shared=True):
        report = check_backup(
            path, profile, reports_dir=reports_dir, allow_decrease=allow_decrease, limits=limits
        )
        try:
            record_quality(path, report)
        except DagvaultError as exc:
            report = replace(
                report, warnings=[*report.warnings, f"result not recorded: {exc.message}"]
            )
    if not report.passed:
        journal.record(
            path.parent, "backup", journal.QUALITY_GATE_FAILED, seconds=time.monotonic() - started
        )
    return report
