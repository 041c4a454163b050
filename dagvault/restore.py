"""Restores (the description's ``restore_from_backup``), safe under open connections.

The backup is copied into the live database through SQLite's backup API, inside
one write transaction of the live database: other processes' connections stay
valid and see the restored data once it commits, and a restore killed mid-way is
rolled back by SQLite (WAL frames never committed, or a hot journal) instead of
leaving a torn file. Nothing touches the live database before the backup has
passed verification and a verified pre-restore backup exists.

Pre-restore backups (``<db>.pre_restore_<ts>``, beside the database) stay bounded: after
taking one, the restore keeps the newest ``pre_restore_keep`` of the database's copies.
A copy whose bytes equal the newest existing copy's is dropped and that one reused: a
restore retried because the database was busy takes no second copy of an unchanged
database.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dagvault import events, journal, lock, progress
from dagvault.backup import numbered_paths, write_backup
from dagvault.catalog import PRE_RESTORE_MARK, CatalogEntry, pre_restore_copies
from dagvault.chain import materialize, resolve_chain
from dagvault.db import connection, open_database, pragma, row_counts, translate
from dagvault.errors import (
    BackupNotFound,
    ConfigError,
    DagvaultError,
    DatabaseLocked,
    RestoreError,
    VerificationError,
)
from dagvault.fsio import discard, ensure_dir, stale_temp_files, temp_path
from dagvault.ledger import LedgerProfile
from dagvault.meta import BackupInfo, meta_path, read_meta
from dagvault.pages import cache_path
from dagvault.retention import DEFAULT_PRE_RESTORE_KEEP, PreRestoreRule, rotate_pre_restore
from dagvault.snapshot import STEP_PAGES
from dagvault.verify import needs_rebuild, record, verify_file

_BUSY = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


@dataclass
class RestoreResult:
    success: bool
    backup_info: BackupInfo
    restore_timestamp: int
    pre_restore_backup: str | None
    warnings: list[str] = field(default_factory=list)
    database_path: str = ""
    duration_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "success": self.success,
            "backup_info": self.backup_info.to_json(),
            "restore_timestamp": self.restore_timestamp,
            "pre_restore_backup": self.pre_restore_backup,
            "warnings": self.warnings,
            "database_path": self.database_path,
            "duration_seconds": round(self.duration_seconds, 3),
        }


def _copy(source: sqlite3.Connection, target: sqlite3.Connection, max_seconds: float) -> None:
    """Backup-API copy of ``source`` over ``target`` in one write transaction of the target."""
    deadline = time.monotonic() + max_seconds

    def on_step(status: int, remaining: int, total: int) -> None:
        if status in _BUSY:
            # The step already waited the busy timeout; Python would retry forever.
            raise DatabaseLocked(
                "The live database stayed locked by another connection; nothing was restored",
                "Stop the process writing to the database (or wait for its transaction), "
                "then run the restore again.",
            )
        # SQLITE_DONE: the step has already committed the copy, nothing to roll back.
        if status != sqlite3.SQLITE_DONE and time.monotonic() > deadline:
            raise RestoreError(
                f"Restore took longer than max_restore_time ({max_seconds:.0f} s) and was "
                "rolled back; the live database is unchanged",
                "Raise restore.max_restore_time in the config file, or restore when the "
                "machine is less busy.",
            )
        progress.report("restore", total - remaining, total)

    source.backup(target, pages=STEP_PAGES, progress=on_step)


def _copy_file(backup: Path, target: sqlite3.Connection, max_seconds: float) -> None:
    with connection(backup, mode="ro", what="backup") as source:
        try:
            _copy(source, target, max_seconds)
        except sqlite3.Error as exc:
            raise translate(exc, f"restoring {backup}") from exc


def _post_check(target: sqlite3.Connection, info: BackupInfo, warnings: list[str]) -> None:
    """The live database now holds the backup: quick_check and the backup's row counts."""
    before = pragma(target, "data_version")
    target.execute("BEGIN")
    try:
        changed_since = pragma(target, "data_version") != before
        check = [row[0] for row in target.execute("PRAGMA quick_check")]
        counts = row_counts(target)
    finally:
        target.execute("COMMIT")
    if check != ["ok"]:
        raise RestoreError(f"The restored database fails quick_check: {'; '.join(check[:5])}")
    if counts != info.row_counts:
        if changed_since:
            warnings.append(
                "another connection wrote to the database right after the restore; "
                "row counts were not compared"
            )
        else:
            raise RestoreError(
                f"The restored database's row counts {counts} differ from the backup's "
                f"{info.row_counts}"
            )


def _checked_backup(
    backup: Path, verify: bool, verify_checksum: bool, warnings: list[str], image: Path
) -> tuple[BackupInfo, Path]:
    """The backup's metadata and the plain SQLite file to copy from: the backup itself,
    or for a delta or compressed backup its image, rebuilt (and proven) into ``image``."""
    if not verify:
        warnings.append("backup was not verified before the restore (--no-verify)")
        info = read_meta(backup)
        if not needs_rebuild(backup, info):
            return info, backup
        materialize(resolve_chain(backup, info), image)  # still proves the image digest
        return info, image
    report = verify_file(backup, checksum=verify_checksum, image_dest=image)
    record(report, "integrity_check")
    warnings.extend(report.warnings)
    if not report.ok or report.info is None:
        raise VerificationError(
            f"Backup {backup} failed verification; refusing to restore it: "
            + "; ".join(report.problems),
            "The live database was not touched. Pick another backup (`dagvault list`) "
            "and run `dagvault verify` on it.",
            problems=report.problems,
        )
    return report.info, image if needs_rebuild(backup, report.info) else backup


def _prepare_target(target: sqlite3.Connection, info: BackupInfo) -> str:
    """Return the target's journal mode after making the backup API able to write it."""
    mode = str(pragma(target, "journal_mode"))
    if mode in ("off", "memory"):
        raise RestoreError(
            f"The live database uses journal_mode={mode}: a crash during the restore "
            "could tear it, so dagvault will not restore into it",
            "Switch the database to WAL (PRAGMA journal_mode=WAL) and run the restore again.",
        )
    backup_page_size = int(info.metadata.get("page_size", 0))
    if mode == "wal" and backup_page_size and backup_page_size != pragma(target, "page_size"):
        # A WAL database cannot change page size; leave WAL for the copy and return to it.
        try:
            out_of_wal = str(pragma(target, "journal_mode=DELETE")) == "delete"
        except sqlite3.OperationalError as exc:
            # Another connection keeps it in WAL: SQLite answers SQLITE_BUSY at once.
            if exc.sqlite_errorcode & 0xFF not in _BUSY:
                raise translate(exc, "switching the database out of WAL mode") from exc
            out_of_wal = False
        if not out_of_wal:
            raise RestoreError(
                "The backup's page size differs from the live database's and the database "
                "cannot leave WAL mode while other connections have it open",
                "Stop the node (close every connection to the database), then restore again.",
            )
        return "wal"
    return ""


def restore_backup(
    backup: Path,
    db_path: Path,
    *,
    pre_restore_backup: bool = True,
    verify: bool = True,
    verify_checksum: bool = True,
    profile: LedgerProfile | None = None,
    busy_timeout: float = 30.0,
    max_seconds: float = 3600.0,
    pre_restore_keep: int = DEFAULT_PRE_RESTORE_KEEP,
) -> RestoreResult:
    """Restore ``backup`` into ``db_path`` (a live database, or a new/empty file)."""
    started = time.monotonic()
    rule = PreRestoreRule(db_path, pre_restore_keep)  # bad input fails before any lock
    if not backup.is_file():
        raise BackupNotFound(
            f"Backup {backup} does not exist", "List the available backups with `dagvault list`."
        )
    if db_path.exists() and backup.resolve() == db_path.resolve():
        raise ConfigError("The backup and the database to restore into are the same file")
    warnings: list[str] = []
    ensure_dir(db_path.absolute().parent)
    with (
        journal.operation(backup.parent, "restore"),
        lock.database_and_directory(db_path, backup.parent, "restore"),
    ):
        _remove_stale_temps(db_path)
        image = temp_path(db_path.absolute().with_name(db_path.name + ".restore-image"))
        try:
            info, source = _checked_backup(backup, verify, verify_checksum, warnings, image)
            result = _restore_into(
                source,
                backup,
                db_path,
                info,
                warnings,
                rule if pre_restore_backup else None,
                profile,
                busy_timeout,
                max_seconds,
            )
        finally:
            discard(image)
    events.restored(backup)
    result.duration_seconds = time.monotonic() - started
    return result


def _restore_into(
    source: Path,
    backup: Path,
    db_path: Path,
    info: BackupInfo,
    warnings: list[str],
    pre_restore: PreRestoreRule | None,
    profile: LedgerProfile | None,
    busy_timeout: float,
    max_seconds: float,
) -> RestoreResult:
    """Copy the plain SQLite file ``source`` (the image of ``backup``) over ``db_path``."""
    created = not db_path.exists()
    target = open_database(db_path, mode="rwc", busy_timeout=busy_timeout)
    return_to = ""
    try:
        pre_path = None
        has_content = int(pragma(target, "page_count")) > 0  # type: ignore[call-overload]
        if pre_restore is not None and has_content:
            pre_path = _take_pre_restore_backup(target, pre_restore, backup, profile)
        elif pre_restore is not None:
            warnings.append("the target database was empty; no pre-restore backup taken")
        else:
            warnings.append("no pre-restore backup taken (--no-pre-restore-backup)")
        return_to = _prepare_target(target, info)
        _copy_file(source, target, max_seconds)
        if return_to:
            pragma(target, f"journal_mode={return_to}")
        try:
            _post_check(target, info, warnings)
        except RestoreError as exc:
            if pre_path is None:
                raise
            _copy_file(pre_path, target, max_seconds)
            exc.message += f"; the database was put back from {pre_path}"
            raise
    except BaseException as exc:
        if return_to:  # the copy was rolled back: leave the journal mode as found too
            with contextlib.suppress(sqlite3.Error):
                pragma(target, f"journal_mode={return_to}")
        target.close()
        if created:
            for suffix in ("", "-journal", "-wal", "-shm"):
                discard(Path(f"{db_path}{suffix}"))
        if isinstance(exc, DagvaultError):
            events.restore_failed(exc.message)
        raise
    target.close()
    return RestoreResult(
        success=True,
        backup_info=info,
        restore_timestamp=int(datetime.now(UTC).timestamp()),
        pre_restore_backup=str(pre_path) if pre_path else None,
        warnings=warnings,
        database_path=str(db_path),
    )


def _remove_stale_temps(db_path: Path) -> None:
    """Temp files of pre-restore backups and rebuilt images whose writer died (a restore
    killed mid-way)."""
    prefix = f".{db_path.name}."
    for stale in stale_temp_files(db_path.absolute().parent):
        if stale.name.startswith(prefix):
            discard(stale)


def _take_pre_restore_backup(
    target: sqlite3.Connection,
    rule: PreRestoreRule,
    backup: Path,
    profile: LedgerProfile | None,
) -> Path:
    db_path = rule.database
    newest = next(iter(pre_restore_copies(db_path)), None)
    pre_path, info = write_backup(
        target,
        db_path,
        numbered_paths(db_path.parent, db_path.name + PRE_RESTORE_MARK + "{ts}{n}"),
        description=f"pre-restore backup taken before restoring {backup}",
        profile=profile or LedgerProfile(),
        stage="pre-restore backup",
        full_suffix="",
    )
    if newest is not None and _intact_copy_of(newest, info.checksum):
        # The database has not changed since ``newest`` (a retry of a restore that failed,
        # e.g. on a busy database): a second identical copy would only take room.
        for path in (meta_path(pre_path), cache_path(pre_path), pre_path):
            discard(path)
        pre_path = newest.path
        events.pre_restore_backup_reused(pre_path)
    else:
        report = verify_file(pre_path, quick=True)
        record(report, "quick_check")
        if not report.ok:
            raise RestoreError(
                f"The pre-restore backup {pre_path} failed verification: "
                + "; ".join(report.problems),
                "Nothing was restored. Check the disk holding the database, then retry.",
            )
        events.pre_restore_backup_created(pre_path)
    rotate_pre_restore(rule, protect=pre_path)
    return pre_path


def _intact_copy_of(entry: CatalogEntry, checksum: str) -> bool:
    """``entry`` holds exactly the bytes ``checksum`` names, checked on disk."""
    if entry.info is None or entry.info.checksum != checksum:
        return False
    return verify_file(entry.path, quick=True).ok
