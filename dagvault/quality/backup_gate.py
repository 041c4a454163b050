"""The quality gate of one backup: check its data, record the verdict in its ``.meta``.

A failed gate keeps the backup file but sets ``verification.status`` to "failed" (with the
failed expectations as problems): retention's newest verified backup and the choice of a
delta's base never count it, and ``dagvault list`` shows it as failed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from dagvault import journal, lock
from dagvault.catalog import CatalogEntry, entry_for, list_backups
from dagvault.chain import materialize, resolve_chain
from dagvault.errors import DagvaultError
from dagvault.fsio import discard, temp_path
from dagvault.ledger import LedgerProfile
from dagvault.meta import BackupInfo, Verification, read_meta, write_meta
from dagvault.quality.ledger_checks import Limits, Previous, check_ledger
from dagvault.quality.report import QualityReport
from dagvault.restores import restore_baseline
from dagvault.verify import needs_rebuild


@dataclass(frozen=True)
class GateOptions:
    """What the gate of a backup needs besides the backup."""

    profile: LedgerProfile
    reports_dir: Path | None
    allow_decrease: bool = False
    limits: Limits | None = None


def previous_backup(path: Path, info: BackupInfo) -> Previous | None:
    """The floor for total transactions: the newest older backup of the same database with
    valid metadata that did not fail, or a restore/import of the database since (see
    dagvault.restores), whichever is newer.

    A failed backup is skipped: after a rejected drop in transactions, the next backup must
    still be compared with the last good total (or restored state), not with the loss."""
    current = entry_for(path).sort_key
    return _previous(path.parent, info, lambda e: e.path != path and e.sort_key < current)


def _previous(
    directory: Path, info: BackupInfo, older: Callable[[CatalogEntry], bool]
) -> Previous | None:
    previous = None
    for entry in list_backups(directory):
        other = entry.info
        if not older(entry) or other is None:
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


def check_new_image(
    image: Path, info: BackupInfo, sort_key: tuple[int, str, str], options: GateOptions
) -> QualityReport:
    """The gate of a full backup while it is written: ``image`` is its data file before it
    is published, ``info`` its sidecar so far (its checksum still being computed), and
    ``sort_key`` the catalog's order of it: the previous backup is the newest one before it,
    as for a published backup."""
    previous = _previous(image.parent, info, lambda entry: entry.sort_key < sort_key)
    return _check(image, Path(info.backup_path), info, options, previous)


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
    options = GateOptions(profile, reports_dir, allow_decrease, limits)
    image = temp_path(path.with_name(path.name + ".quality-image"))
    try:
        readable = path
        if needs_rebuild(path, info):
            materialize(resolve_chain(path, info), image)
            readable = image
        return _check(readable, path, info, options, previous_backup(path, info))
    finally:
        discard(image)


def _check(
    readable: Path,
    backup: Path,
    info: BackupInfo,
    options: GateOptions,
    previous: Previous | None,
) -> QualityReport:
    report = check_ledger(
        readable,
        options.profile,
        snapshot_counts=info.row_counts,
        reports_dir=options.reports_dir,
        run_name=backup.name,
        suite_prefix=Path(info.database_path).stem or "ledger",
        previous=previous,
        allow_decrease=options.allow_decrease,
        limits=options.limits,
        subject=str(backup),
    )
    if previous is not None and previous.describe:  # a restore/import set the floor
        report.warnings.append(f"transactions_not_decreased baseline: {previous}")
    return report


def with_verdict(info: BackupInfo, report: QualityReport) -> BackupInfo:
    """``info`` with the gate's verdict; a failure also marks the verification failed."""
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
    return info.with_quality(record, verification)


def journal_failure(directory: Path, report: QualityReport, seconds: float) -> None:
    """A failed gate in the operations journal (dag_storage_operations_total)."""
    if not report.passed:
        journal.record(directory, "backup", journal.QUALITY_GATE_FAILED, seconds=seconds)


def record_quality(path: Path, report: QualityReport) -> BackupInfo:
    """Store the verdict in the sidecar; a failure also marks the verification failed."""
    updated = with_verdict(read_meta(path), report)
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
    journal_failure(path.parent, report, time.monotonic() - started)
    return report
