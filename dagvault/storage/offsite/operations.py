"""verify, restore, cleanup and prune against a storage target (``offsite.objects``).

Verify and restore download the backup's chain into a private staging directory
(checking every object against its sidecar on the way, decrypting with the key), then
take exactly the local path: ``verify_file``, or ``restore_backup`` with its
verification, pre-restore backup and safe copy. Retention plans with the same pure
functions as locally (``plan_cleanup``, ``plan_retention``), so a kept delta keeps its
whole chain at the target too; each removed backup loses its sidecar first (it stops
being listed), then its data object, newest first.

Storage targets have no lock: run one writer per target at a time (one deployment that
replicates and prunes, not two that overlap).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dagvault import events
from dagvault.catalog import CatalogEntry
from dagvault.errors import VerificationError
from dagvault.meta import META_SUFFIX
from dagvault.restore import RestoreResult, restore_backup
from dagvault.retention import (
    CleanupPlan,
    CleanupResult,
    RetentionPolicy,
    check_keep,
    plan_cleanup,
    plan_retention,
    resolve_policy,
)
from dagvault.storage import Store
from dagvault.storage.offsite.objects import (
    fetched,
    find_entry,
    list_target,
    name_timestamp,
    record_verification,
)
from dagvault.verify import VerifyReport, carry_quality_verdict, verdict, verify_file

# An object without a valid sidecar whose name is older than this is the remains of a
# cut-off upload, and cleanup/prune remove it; a younger one may still be uploading.
# Default: 1 hour.
INCOMPLETE_GRACE_SECONDS = 3600


def verify_at_target(
    store: Store, name: str, key: bytes | None, *, quick: bool = False, staging: Path | None
) -> VerifyReport:
    """Fetch ``name`` (and its chain), run every local check on it, and record the
    outcome in its sidecar at the target."""
    started = time.monotonic()
    entry, by_name = find_entry(store, name)
    try:
        with fetched(store, name, key, staging, by_name) as local:
            report = verify_file(local, quick=quick, key=key)
    except VerificationError as exc:  # damaged, tampered, broken chain
        report = VerifyReport(Path(entry.path.name), info=entry.info)
        report.fail("stored object", exc.message)
        events.integrity_failed(entry.where, exc.message)
    report.location = entry.where
    report.info = entry.info
    carry_quality_verdict(report, keep_quality_verdict=True)
    assert entry.info is not None
    report.info = entry.info.with_verification(
        verdict(report, "quick_check" if quick else "integrity_check")
    )
    record_verification(store, entry, report.info)
    report.duration_seconds = time.monotonic() - started
    return report


def verify_all_at_target(
    store: Store, key: bytes | None, *, quick: bool = False, staging: Path | None
) -> list[VerifyReport]:
    return [
        verify_at_target(store, entry.path.name, key, quick=quick, staging=staging)
        for entry in list_target(store).entries
    ]


def restore_from_target(
    store: Store,
    name: str,
    db_path: Path,
    key: bytes | None,
    *,
    staging: Path | None = None,
    **options: Any,
) -> RestoreResult:
    """Download ``name`` beside ``db_path`` (or into ``staging``), then the local restore
    (``restore_backup`` with ``options``; authenticated with ``key``, when given)."""
    with fetched(store, name, key, staging or db_path.absolute().parent) as local:
        return restore_backup(local, db_path, key=key, **options)


def _stale_incomplete(incomplete: dict[str, str], now: float) -> list[str]:
    stale = []
    for name in sorted(incomplete):
        born = name_timestamp(name.removesuffix(META_SUFFIX))
        if name.endswith(META_SUFFIX) or (
            born is not None and now - born > INCOMPLETE_GRACE_SECONDS
        ):
            stale.append(name)
    return stale


def _execute(
    store: Store, make_plan: Callable[[list[CatalogEntry]], CleanupPlan], dry_run: bool
) -> CleanupResult:
    started = time.monotonic()
    catalog = list_target(store)
    plan = make_plan(catalog.entries)
    result = CleanupResult(plan, dry_run)
    doomed: list[tuple[str, int]] = []
    for entry in plan.remove:  # newest first: a delta never outlives its parent
        data = entry.where.rpartition("/")[2]
        doomed += [(data + META_SUFFIX, 0), (data, entry.file_size)]
    doomed += [(name, 0) for name in _stale_incomplete(catalog.incomplete, time.time())]
    for name, size in doomed:
        if not dry_run:
            store.delete(name)
            result.removed_files.append(store.location(name))
        result.bytes_freed += size
    result.duration_seconds = time.monotonic() - started
    if not dry_run:
        events.cleaned(len(result.removed_files), result.bytes_freed)
    return result


def cleanup_target(store: Store, keep: int, *, dry_run: bool = False) -> CleanupResult:
    """``cleanup --keep N`` at a target (the rules of ``cleanup_old_backups``)."""
    check_keep(keep)
    return _execute(store, lambda entries: plan_cleanup(entries, keep), dry_run)


def prune_target(
    store: Store,
    policy: RetentionPolicy,
    *,
    dry_run: bool = False,
    default_keep_last: int | None = None,
) -> CleanupResult:
    """``prune`` at a target (the rules of ``prune_backups``)."""
    effective = resolve_policy(policy, default_keep_last)
    return _execute(store, lambda entries: plan_retention(entries, effective), dry_run)
