"""Which backups cleanup keeps: a pure plan, then its execution.

``plan_cleanup`` decides; ``apply_plan`` deletes. The plan keeps the newest
``keep`` backups and, whatever ``keep`` says, the newest verified backup: the one
a restore would need.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagvault import events, lock
from dagvault.catalog import CatalogEntry, list_backups
from dagvault.errors import ConfigError, storage_error
from dagvault.meta import META_SUFFIX, meta_path


@dataclass(frozen=True)
class Decision:
    entry: CatalogEntry
    keep: bool
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "backup_path": str(self.entry.path),
            "timestamp": self.entry.timestamp,
            "file_size": self.entry.file_size,
            "verification": self.entry.info.verification.status if self.entry.info else None,
            "action": "keep" if self.keep else "remove",
            "reason": self.reason,
        }


@dataclass(frozen=True)
class CleanupPlan:
    decisions: list[Decision]

    @property
    def keep(self) -> list[CatalogEntry]:
        return [d.entry for d in self.decisions if d.keep]

    @property
    def remove(self) -> list[CatalogEntry]:
        return [d.entry for d in self.decisions if not d.keep]


def plan_cleanup(entries: list[CatalogEntry], keep: int) -> CleanupPlan:
    """Keep the newest ``keep`` entries and the newest verified one; remove the rest."""
    if keep < 1:
        raise ConfigError(
            f"--keep must be at least 1 (got {keep})",
            "A cleanup never removes every backup; pass --keep 1 or more.",
        )
    ordered = sorted(entries, key=lambda e: e.sort_key, reverse=True)
    newest_verified = next((e for e in ordered if e.verified), None)
    decisions = []
    for rank, entry in enumerate(ordered):
        if rank < keep:
            decisions.append(Decision(entry, True, f"among the newest {keep}"))
        elif entry is newest_verified:
            decisions.append(Decision(entry, True, "newest verified backup"))
        else:
            decisions.append(Decision(entry, False, f"older than the newest {keep}"))
    return CleanupPlan(decisions)


@dataclass
class CleanupResult:
    plan: CleanupPlan
    dry_run: bool
    removed_files: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    duration_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "kept": len(self.plan.keep),
            "removed_backups": len(self.plan.remove),
            "files_removed": len(self.removed_files),
            "bytes_freed": self.bytes_freed,
            "removed_files": self.removed_files,
            "decisions": [d.to_json() for d in self.plan.decisions],
            "duration_seconds": round(self.duration_seconds, 3),
        }


def _unlink(path: Path, result: CleanupResult) -> None:
    try:
        size = path.stat().st_size
        path.unlink()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise storage_error(exc, "removing", str(path)) from exc
    result.removed_files.append(str(path))
    result.bytes_freed += size


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _orphan_sidecars(directory: Path) -> list[Path]:
    return [
        orphan
        for orphan in directory.glob(f"*{META_SUFFIX}")
        if not orphan.with_name(orphan.name[: -len(META_SUFFIX)]).exists()
    ]


def cleanup_old_backups(directory: Path, keep: int, *, dry_run: bool = False) -> CleanupResult:
    """The description's ``cleanup_old_backups``: remove data and metadata of old backups."""
    started = time.monotonic()
    if not directory.is_dir():
        # Nothing to clean; locking would create a stray lock file beside the missing path.
        return CleanupResult(plan_cleanup([], keep), dry_run)
    with lock.hold(directory, "cleanup"):
        plan = plan_cleanup(list_backups(directory), keep)
        result = CleanupResult(plan, dry_run)
        if dry_run:
            # Exactly the files the real run removes: unreadable sidecars and orphans too.
            result.bytes_freed = sum(
                _size(path) for e in plan.remove for path in (meta_path(e.path), e.path)
            ) + sum(_size(orphan) for orphan in _orphan_sidecars(directory))
        else:
            for entry in plan.remove:
                # Sidecar first: a crash in between leaves a data file listed as lacking
                # metadata (never as valid), which the next cleanup removes.
                _unlink(meta_path(entry.path), result)
                _unlink(entry.path, result)
            for orphan in _orphan_sidecars(directory):
                _unlink(orphan, result)
    result.duration_seconds = time.monotonic() - started
    if not dry_run:
        events.cleaned(len(result.removed_files), result.bytes_freed)
    return result
