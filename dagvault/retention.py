"""Which backups to keep: pure plans, then their execution.

``plan_cleanup`` (``cleanup --keep N``) and ``plan_retention`` (``prune``, restic's
``forget`` rules) decide; ``cleanup_old_backups`` and ``prune_backups`` delete. Both
plans are chain-aware and share two guarantees whatever the rules say:

* chain closure: every ancestor of a kept backup (its ``metadata.parent``,
  transitively, up to the full backup) is kept too, "needed by <child>" — a delta is
  worthless without its chain;
* the newest verified full backup is kept: the restore of last resort.

Calendar buckets are computed in UTC, not local time as restic does: the plan is the
same on every host and in every container, and a DST change never makes a 23- or
25-hour "day". A backup without readable metadata cannot be trusted (we cannot know
its type, parent or verification): only ``keep_last`` (which counts every file) or a
kept child naming it as parent keeps it. ``cleanup --keep N`` counts only backups a
restore would not refuse (see ``plan_cleanup``).

A database's pre-restore copies (``<db>.pre_restore_<ts>``, beside the database) follow a
rule of their own, ``plan_pre_restore``: the newest ``PreRestoreRule.keep`` stay. They
never count towards the rules above nor stand in for a backup (a copy of a state about
to be replaced is no substitute for the newest verified backup), so adding them can
neither remove nor save a backup of the directory.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dagvault import events, journal, lock, pages
from dagvault.catalog import (
    BACKUP,
    CatalogEntry,
    list_backups,
    pre_restore_copies,
    timestamp_in_name,
)
from dagvault.errors import ConfigError, OperationInProgress, storage_error
from dagvault.meta import META_SUFFIX, meta_path
from dagvault.safedir import HeldDir

PAGES_SUFFIX = ".pages"
# Pre-restore copies kept per database (PRE_RESTORE_BACKUP_COUNT): enough to step back
# over a few restores, few enough that a restore retried on a busy node cannot fill
# the disk with full copies.
DEFAULT_PRE_RESTORE_KEEP = 3


@dataclass(frozen=True)
class Decision:
    entry: CatalogEntry
    keep: bool
    reasons: tuple[str, ...]

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)

    @property
    def backup_type(self) -> str:
        return self.entry.info.backup_type if self.entry.info else "Unknown"

    def to_json(self) -> dict[str, Any]:
        return {
            "backup_path": self.entry.where,
            "timestamp": self.entry.timestamp,
            "file_size": self.entry.file_size,
            "backup_type": self.backup_type,
            "verification": self.entry.info.verification.status if self.entry.info else None,
            "action": "keep" if self.keep else "remove",
            "reason": self.reason,
            "reasons": list(self.reasons),
            "kind": self.entry.kind,
        }


@dataclass(frozen=True)
class RetentionPolicy:
    """restic-style rules; None (or 0) switches a rule off."""

    keep_last: int | None = None
    keep_hourly: int | None = None
    keep_daily: int | None = None
    keep_weekly: int | None = None
    keep_monthly: int | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or value < 0
            ):
                raise ConfigError(
                    f"--{f.name.replace('_', '-')} must be a whole number ≥ 0 (got {value!r})",
                    "Pass a count of backups (or buckets) to keep.",
                )

    @property
    def is_empty(self) -> bool:
        """No rule keeps anything (every rule unset or 0)."""
        return not any(getattr(self, f.name) for f in fields(self))

    @property
    def is_unset(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))

    def with_default(self, keep_last: int | None) -> RetentionPolicy:
        """``keep_last`` (BACKUP_RETENTION_COUNT) applies only when no rule was given at
        all: an explicit ``--keep-last 0`` must not silently become 30."""
        return replace(self, keep_last=keep_last) if self.is_unset else self

    def describe(self) -> str:
        return ", ".join(
            f"{f.name.replace('_', '-')} {getattr(self, f.name)}"
            for f in fields(self)
            if getattr(self, f.name)
        )

    def to_json(self) -> dict[str, int | None]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class CleanupPlan:
    decisions: list[Decision]
    policy: RetentionPolicy | None = None

    @property
    def keep(self) -> list[CatalogEntry]:
        return [d.entry for d in self.decisions if d.keep]

    @property
    def remove(self) -> list[CatalogEntry]:
        return [d.entry for d in self.decisions if not d.keep]


# --------------------------------------------------------------------------- planning (pure)


def _utc(timestamp: int) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


# (rule, bucket label of a UTC time); labels are only compared for equality, in time order.
CALENDAR_RULES: tuple[tuple[str, Callable[[datetime], str]], ...] = (
    ("hourly", lambda t: t.strftime("%Y-%m-%d %H:00")),
    ("daily", lambda t: t.strftime("%Y-%m-%d")),
    ("weekly", lambda t: "{:04d}-W{:02d}".format(*t.isocalendar()[:2])),  # ISO week
    ("monthly", lambda t: t.strftime("%Y-%m")),
)


def _newest_first(entries: Iterable[CatalogEntry]) -> list[CatalogEntry]:
    return sorted(entries, key=lambda e: e.sort_key, reverse=True)


def _parent_index(entry: CatalogEntry, by_name: dict[str, int]) -> int | None:
    info = entry.info
    if info is None or info.backup_type == "Full":
        return None
    parent = info.metadata.get("parent")
    return by_name.get(parent) if isinstance(parent, str) else None


def _finish(
    ordered: list[CatalogEntry],
    reasons: dict[int, list[str]],
    removal_reason: Callable[[CatalogEntry], str],
    policy: RetentionPolicy | None = None,
) -> CleanupPlan:
    """Add chain closure and the newest verified full to ``reasons`` (index → why kept)."""
    by_name: dict[str, int] = {}
    for index, entry in enumerate(ordered):
        by_name.setdefault(entry.path.name, index)
    # Direct kept dependents of each ancestor; the set guards against parent cycles.
    needed_by: dict[int, list[int]] = {}
    kept = set(reasons)
    pending = sorted(kept, reverse=True)
    while pending:
        child = pending.pop()
        parent = _parent_index(ordered[child], by_name)
        if parent is None or parent == child:
            continue
        needed_by.setdefault(parent, []).append(child)
        if parent not in kept:
            kept.add(parent)
            pending.append(parent)
    for parent, children in needed_by.items():
        newest, *others = sorted(children)
        more = f" (and {len(others)} more)" if others else ""
        reasons.setdefault(parent, []).append(f"needed by {ordered[newest].path.name}{more}")
    # A file without metadata whose name dagvault never gives (no "_<unix-seconds>"), e.g.
    # the live database itself kept in BACKUP_DIR, was not written by dagvault: not ours
    # to delete.
    for index, entry in enumerate(ordered):
        if entry.info is None and timestamp_in_name(entry.path.name) is None:
            reasons.setdefault(index, []).append(
                "not a dagvault backup (no metadata, no timestamp in its name)"
            )
    # Always restorable from something: a full backup needs no other file.
    full = next(
        (
            i
            for i, e in enumerate(ordered)
            if e.info is not None and e.info.backup_type == "Full" and e.verified
        ),
        None,
    )
    if full is not None:
        reasons.setdefault(full, []).append("newest verified full backup")
    return CleanupPlan(
        [
            Decision(e, i in reasons, tuple(reasons[i]) if i in reasons else (removal_reason(e),))
            for i, e in enumerate(ordered)
        ],
        policy,
    )


def check_keep(keep: int) -> None:
    if keep < 1:
        raise ConfigError(
            f"--keep must be at least 1 (got {keep})",
            "A cleanup never removes every backup; pass --keep 1 or more.",
        )


def restorable(entry: CatalogEntry) -> bool:
    """Not known to be refused by a restore: readable metadata, and neither its
    verification nor its data-quality gate failed."""
    return entry.info is not None and entry.info.verification.status != "failed"


def plan_cleanup(entries: list[CatalogEntry], keep: int) -> CleanupPlan:
    """Keep the newest ``keep`` restorable entries, the newest verified one, the chains
    they need and the newest verified full backup; remove the rest. A backup a restore
    would refuse (failed, or without metadata) never counts among the ``keep``: it is kept
    only while among the newest ``keep`` of all, for investigation."""
    check_keep(keep)
    ordered = _newest_first(entries)
    reasons: dict[int, list[str]] = {}
    good = [i for i, e in enumerate(ordered) if restorable(e)]
    for i in good[:keep]:
        reasons[i] = [f"among the newest {keep}"]
    for i in range(min(keep, len(ordered))):
        if i not in reasons:
            reasons[i] = [f"among the newest {keep} files; a restore would refuse it: not counted"]
    verified = next((i for i, e in enumerate(ordered) if e.verified), None)
    if verified is not None:
        reasons.setdefault(verified, []).append("newest verified backup")
    return _finish(ordered, reasons, lambda _: f"older than the newest {keep}")


def resolve_policy(
    policy: RetentionPolicy, default_keep_last: int | None = None
) -> RetentionPolicy:
    """The policy to apply, or ConfigError if it would keep nothing by its rules."""
    effective = policy.with_default(default_keep_last)
    if effective.is_empty:
        raise ConfigError(
            "The retention policy is empty: no --keep-* rule keeps any backup"
            + (" (a rule set to 0 is off)" if not policy.is_unset else ""),
            "Pass at least one rule ≥ 1, e.g. `dagvault prune --keep-last 7 --keep-daily 14` "
            "(BACKUP_RETENTION_COUNT is the --keep-last only when no rule is given).",
        )
    return effective


def plan_retention(
    entries: list[CatalogEntry],
    policy: RetentionPolicy,
    *,
    default_keep_last: int | None = None,
) -> CleanupPlan:
    """restic ``forget`` semantics over the entries, newest first (rules combine with OR):

    * ``keep_last`` N keeps the N newest backups, with or without metadata;
    * ``keep_hourly``/``daily``/``weekly``/``monthly`` N keep the newest backup in each of
      the N most recent UTC calendar buckets (hour, day, ISO week, month) that contain a
      backup with metadata; buckets without backups are skipped, not counted;

    then chain closure and the newest verified full backup (see the module docstring). A
    backup kept for several reasons lists them all. ``default_keep_last`` replaces an
    unset policy; an empty one is refused (ConfigError).
    """
    policy = resolve_policy(policy, default_keep_last)
    ordered = _newest_first(entries)
    reasons: dict[int, list[str]] = {}
    for index in range(min(policy.keep_last or 0, len(ordered))):
        reasons[index] = [f"keep-last {policy.keep_last}"]
    for rule, label in CALENDAR_RULES:
        remaining = getattr(policy, f"keep_{rule}") or 0
        last_bucket: str | None = None
        for index, entry in enumerate(ordered):
            if remaining == 0:
                break
            if entry.info is None:
                continue  # untrustworthy: it must not take a bucket from a real backup
            bucket = label(_utc(entry.timestamp))
            if bucket != last_bucket:  # newest first: the first seen is the bucket's newest
                reasons.setdefault(index, []).append(f"{rule} {bucket}")
                last_bucket = bucket
                remaining -= 1

    def removal(entry: CatalogEntry) -> str:
        if entry.info is None:
            return "no readable metadata; only keep-last keeps such a file"
        return "matches no keep rule"

    return _finish(ordered, reasons, removal, policy)


@dataclass(frozen=True)
class PreRestoreRule:
    """Keep the newest ``keep`` pre-restore copies of ``database``."""

    database: Path
    keep: int = DEFAULT_PRE_RESTORE_KEEP

    def __post_init__(self) -> None:
        if isinstance(self.keep, bool) or not isinstance(self.keep, int) or self.keep < 1:
            raise ConfigError(
                f"The pre-restore backups to keep must be at least 1 (got {self.keep!r})",
                "Set PRE_RESTORE_BACKUP_COUNT (restore.pre_restore_keep) to 1 or more; "
                "to take none, set CREATE_PRE_RESTORE_BACKUP=false.",
            )


def plan_pre_restore(
    copies: list[CatalogEntry], keep: int, *, protect: Path | None = None
) -> list[Decision]:
    """Keep the newest ``keep`` pre-restore copies and ``protect`` (the copy the running
    restore just took, whatever its timestamp says); remove the rest."""
    decisions = []
    for index, entry in enumerate(_newest_first(copies)):
        if index < keep:
            decisions.append(Decision(entry, True, (f"pre-restore, among the newest {keep}",)))
        elif protect is not None and entry.path == protect:
            decisions.append(Decision(entry, True, ("pre-restore, of the restore just run",)))
        else:
            decisions.append(
                Decision(entry, False, (f"pre-restore, older than the newest {keep}",))
            )
    return decisions


# --------------------------------------------------------------------------- execution


@dataclass
class CleanupResult:
    plan: CleanupPlan
    dry_run: bool
    removed_files: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    duration_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "dry_run": self.dry_run,
            "kept": len(self.plan.keep),
            "removed_backups": len(self.plan.remove),
            "files_removed": len(self.removed_files),
            "bytes_freed": self.bytes_freed,
            "removed_files": self.removed_files,
            "decisions": [d.to_json() for d in self.plan.decisions],
            "duration_seconds": round(self.duration_seconds, 3),
        }
        if self.plan.policy is not None:
            summary["policy"] = self.plan.policy.to_json()
        return summary


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
    """``.meta`` and ``.pages`` files whose data file is gone (hidden files are temps)."""
    return sorted(
        orphan
        for suffix in (META_SUFFIX, PAGES_SUFFIX)
        for orphan in directory.glob(f"*{suffix}")
        if not orphan.name.startswith(".")
        and not orphan.with_name(orphan.name[: -len(suffix)]).exists()
    )


def _files_of(entries: list[CatalogEntry]) -> list[Path]:
    """Per backup the sidecar first (a crash in between leaves a data file listed as
    lacking metadata, never as valid, which the next run removes), then the page cache,
    then the data."""
    return [
        path
        for entry in entries
        for path in (meta_path(entry.path), pages.cache_path(entry.path), entry.path)
    ]


def _doomed_files(plan: CleanupPlan, directory: Path) -> list[Path]:
    """What a run removes, in order: newest backup first, so a crash never leaves a delta
    whose parent is already gone, then orphaned sidecars."""
    return _files_of(plan.remove) + _orphan_sidecars(directory)


def _pre_restore_decisions(
    rule: PreRestoreRule, operation: str, locks: contextlib.ExitStack
) -> list[Decision]:
    """The pre-restore copies' plan, under the database's lock (a restore taking or
    rotating copies holds it). A busy database keeps them all for the next run: a cleanup
    must not fail, nor wait, because the node's database is being backed up."""
    copies = pre_restore_copies(rule.database)
    if not copies:
        return []
    try:
        locks.enter_context(lock.hold(rule.database, operation))
    except OperationInProgress:
        busy = "pre-restore, left for the next run (a restore or backup holds the database)"
        return [Decision(entry, True, (busy,)) for entry in copies]
    return plan_pre_restore(copies, rule.keep)


def rotate_pre_restore(rule: PreRestoreRule, protect: Path) -> CleanupResult:
    """After a restore took ``protect``: remove the copies beyond the newest ``rule.keep``
    (the caller holds the database's lock)."""
    plan = CleanupPlan(
        plan_pre_restore(pre_restore_copies(rule.database), rule.keep, protect=protect)
    )
    result = CleanupResult(plan, dry_run=False)
    for path in _files_of(plan.remove):
        _unlink(path, result)
    if result.removed_files:
        events.cleaned(len(result.removed_files), result.bytes_freed)
    return result


def _execute(
    directory: Path,
    operation: str,
    make_plan: Callable[[list[CatalogEntry]], CleanupPlan],
    dry_run: bool,
    pre_restore: PreRestoreRule | None,
) -> CleanupResult:
    started = time.monotonic()
    if not directory.is_dir():
        # Nothing to remove (the plan still validates its rules); locking would create a
        # stray lock file beside the missing path.
        return CleanupResult(make_plan([]), dry_run)
    with contextlib.ExitStack() as locks:
        # Resolved once: what is listed, locked and removed is in the directory opened
        # here, whatever its name points to meanwhile (see safedir).
        held = locks.enter_context(HeldDir.open(directory))
        locks.enter_context(held.naming_errors())
        directory = held.io
        # A dry run changes nothing: no operation on the directory.
        outcome = None if dry_run else locks.enter_context(journal.operation(directory, operation))
        # A dry run only reads: shared, as a backup's, so a plan can be had while one runs.
        locks.enter_context(lock.hold(directory, operation, shared=dry_run))
        # Pre-restore copies found here (a database inside its backup directory) are
        # never backups of the directory: only their own rule may remove them.
        plan = make_plan(
            [
                replace(e, path=held.shown(e.path))
                for e in list_backups(directory)
                if e.kind == BACKUP
            ]
        )
        if pre_restore is not None:
            extra = _pre_restore_decisions(pre_restore, operation, locks)
            plan = CleanupPlan(plan.decisions + extra, plan.policy)
        result = CleanupResult(plan, dry_run)
        doomed = [held.reach(path) for path in _doomed_files(plan, directory)]
        if dry_run:
            result.bytes_freed = sum(_size(path) for path in doomed)
        else:
            for path in doomed:
                _unlink(path, result)
        result.removed_files = [held.show(path) for path in result.removed_files]
        if outcome is not None:  # the health report's disk forecast nets this against growth
            outcome.details = {"bytes_freed": result.bytes_freed}
    result.duration_seconds = time.monotonic() - started
    if not dry_run:
        events.cleaned(len(result.removed_files), result.bytes_freed)
    return result


def cleanup_old_backups(
    directory: Path,
    keep: int,
    *,
    dry_run: bool = False,
    pre_restore: PreRestoreRule | None = None,
) -> CleanupResult:
    """``cleanup_old_backups`` (`dagvault cleanup`): remove the backups ``plan_cleanup`` drops
    (data, ``.meta`` and ``.pages``), orphaned sidecars and, with ``pre_restore``, the
    database's pre-restore copies beyond the newest ``pre_restore.keep``."""
    check_keep(keep)  # before taking the lock: bad input must not look like a busy run
    return _execute(
        directory, "cleanup", lambda entries: plan_cleanup(entries, keep), dry_run, pre_restore
    )


def prune_backups(
    directory: Path,
    policy: RetentionPolicy,
    *,
    dry_run: bool = False,
    default_keep_last: int | None = None,
    pre_restore: PreRestoreRule | None = None,
) -> CleanupResult:
    """Remove the backups ``plan_retention`` drops, under the directory's exclusive lock
    (and, with ``pre_restore``, the pre-restore copies as ``cleanup_old_backups`` does)."""
    effective = resolve_policy(policy, default_keep_last)  # refused before taking the lock
    return _execute(
        directory, "prune", lambda e: plan_retention(e, effective), dry_run, pre_restore
    )
