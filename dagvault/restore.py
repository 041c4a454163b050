"""Restores (``restore_from_backup``; docs/restore.md), safe under open connections.

The backup is copied into the live database through SQLite's backup API, inside
one write transaction of the live database: other processes' connections stay
valid and see the restored data once it commits, and a restore killed mid-way is
rolled back by SQLite (WAL frames never committed, or a hot journal) instead of
leaving a torn file. Nothing touches the live database before the backup has
passed verification and a verified pre-restore backup exists. A restore into a database
that does not exist publishes the verified image itself instead (dagvault.restore_new).

Pre-restore backups (``<db>.pre_restore_<ts>``, beside the database) stay bounded: after
taking one, the restore keeps the newest ``pre_restore_keep`` of the database's copies.
A copy whose bytes equal the newest existing copy's is dropped and that one reused: a
restore retried because the database was busy takes no second copy of an unchanged
database.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dagvault import authtag, events, journal, lock, permissions, progress, schema_guard
from dagvault.backup import numbered_paths, write_backup
from dagvault.base import file_id
from dagvault.catalog import PRE_RESTORE_MARK, CatalogEntry, pre_restore_copies
from dagvault.chain import materialize, resolve_chain
from dagvault.db import (
    connection,
    open_database,
    pragma,
    quote_identifier,
    row_counts,
    table_names,
    translate,
)
from dagvault.errors import (
    BackupNotFound,
    ConfigError,
    DagvaultError,
    DatabaseLocked,
    QualityGateFailed,
    RestoreError,
)
from dagvault.fsio import discard, ensure_dir, stale_temp_files, temp_path
from dagvault.ledger import LedgerProfile
from dagvault.meta import BackupInfo, meta_path, read_meta
from dagvault.overrides import ALLOW_GATE_FAILED, overridable
from dagvault.pages import cache_path
from dagvault.quality.report import Outcome
from dagvault.restore_new import ImageSync, absent, publish_image
from dagvault.restores import RestoreEvent, record_restore
from dagvault.retention import DEFAULT_PRE_RESTORE_KEEP, PreRestoreRule, rotate_pre_restore
from dagvault.safedir import HeldDir
from dagvault.snapshot import STEP_PAGES
from dagvault.verify import needs_rebuild, record, require_verified, verify_file

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
    transactions_before: int | None = None  # the live database's, before the copy
    transactions_went_back: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "success": self.success,
            "backup_info": self.backup_info.to_json(),
            "restore_timestamp": self.restore_timestamp,
            "pre_restore_backup": self.pre_restore_backup,
            "warnings": self.warnings,
            "database_path": self.database_path,
            "duration_seconds": round(self.duration_seconds, 3),
            "transactions_went_back": self.transactions_went_back,
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
            raise _too_long(max_seconds, "the live database is unchanged")
        progress.report("restore", total - remaining, total)

    source.backup(target, pages=STEP_PAGES, progress=on_step)


def _too_long(max_seconds: float, outcome: str) -> RestoreError:
    return RestoreError(
        f"Restore took longer than max_restore_time ({max_seconds:.0f} s) and was rolled "
        f"back; {outcome}",
        "Raise restore.max_restore_time in the config file, or restore when the machine is "
        "less busy.",
    )


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


def _check_gate_verdict(
    backup: Path, info: BackupInfo, allow_gate_failed: bool, warnings: list[str]
) -> None:
    """Refuse a backup whose data-quality gate failed: its bytes are intact, its data is
    not trusted. ``allow_gate_failed`` restores it anyway, with a warning."""
    quality = info.quality
    if quality is None or quality.get("passed") is not False:
        return
    failed = [Outcome(**e) for e in quality.get("expectations", []) if not e["success"]]
    verdict = (
        f"its data-quality gate failed at {quality.get('checked_at')} "
        f"({', '.join(o.name for o in failed) or 'see its .meta'})"
    )
    if allow_gate_failed:
        warnings.append(f"{backup.name}: {verdict}; restored anyway (allow_gate_failed)")
        events.gate_failed_restored(backup, verdict)
        return
    problems = [o.problem() for o in failed]
    raise overridable(
        QualityGateFailed(
            f"Backup {backup}: {verdict}; refusing to restore it: {'; '.join(problems)}",
            problems=problems,
        ),
        "The live database was not touched. Pick another backup (`dagvault list`); to "
        "restore this one anyway (to investigate its data, say), use {override}.",
        ALLOW_GATE_FAILED,
    )


def _checked_backup(
    backup: Path,
    verify: bool,
    verify_checksum: bool,
    warnings: list[str],
    image: Path,
    key: bytes | None,
    allow_gate_failed: bool,
    new: ImageSync | None,
) -> tuple[BackupInfo, Path]:
    """The backup's metadata and the plain SQLite file to copy from: the backup itself,
    or for a delta or compressed backup its image, rebuilt (and proven) into ``image``.
    With ``new`` (the database does not exist: the image becomes it) a plain full backup
    is copied into ``image`` too, and ``new`` syncs the image while it is checked.
    With ``key`` the backup is authenticated even under --no-verify."""
    if not verify:
        warnings.append("backup was not verified before the restore (--no-verify)")
        info = read_meta(backup)
        if key is not None:
            authtag.authenticate(backup, info, key)
        _check_gate_verdict(backup, info, allow_gate_failed, warnings)
        if needs_rebuild(backup, info):
            materialize(resolve_chain(backup, info), image)  # still proves the image digest
        elif new is not None:
            shutil.copyfile(backup, image)
        else:
            return info, backup
        return info, image
    report = require_verified(
        backup,
        "refusing to restore it",
        "The live database was not touched. Pick another backup (`dagvault list`) "
        "and run `dagvault verify` on it.",
        forged=authtag.LEGACY_HINT,
        record_as="integrity_check",  # keeps a failed gate's verdict in the sidecar
        tolerated="quality: ",  # the gate's verdict: judged below (--allow-gate-failed)
        checksum=verify_checksum,
        image_dest=image,
        copy_full=new is not None,
        image_ready=new.start if new is not None else None,
        key=key,
    )
    warnings.extend(report.warnings)
    assert report.info is not None
    _check_gate_verdict(backup, report.info, allow_gate_failed, warnings)
    rebuilt = new is not None or needs_rebuild(backup, report.info)
    return report.info, image if rebuilt else backup


def _prepare_target(target: sqlite3.Connection, info: BackupInfo) -> str:
    """Return the target's journal mode after making the backup API able to write it."""
    mode = str(pragma(target, "journal_mode"))
    if mode in ("off", "memory"):
        raise RestoreError(
            f"The live database uses journal_mode={mode}: a crash during the restore "
            "could tear it, so dagvault will not restore into it",
            "Switch the database to WAL (PRAGMA journal_mode=WAL) and run the restore again.",
        )
    backup_page_size = info.page_size or 0
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
    pre_restore_off_by: str = "the caller",
    verify: bool = True,
    verify_checksum: bool = True,
    profile: LedgerProfile | None = None,
    busy_timeout: float = 30.0,
    max_seconds: float = 3600.0,
    key: bytes | None = None,
    allow_schema_change: bool = False,
    guard: bool = True,
    announce: bool = True,
    allow_gate_failed: bool = False,
    origin: str | None = None,
    pre_restore_keep: int = DEFAULT_PRE_RESTORE_KEEP,
    journaled: bool = True,
) -> RestoreResult:
    """Restore ``backup`` into ``db_path`` (a live database, or a new/empty file) and
    record the restore in the database's history (``origin``: what was restored, for the
    history and the log; default "backup <path>"): the baseline of the next backups'
    transactions_not_decreased gate.

    With ``key`` the backup (every link of its chain) must be authenticated
    (dagvault.authtag) and the pre-restore backup is tagged; without one, a backup that
    changes the schema in a suspicious way is refused unless ``allow_schema_change``
    (dagvault.schema_guard). ``guard=False`` is for a backup the caller has just built
    itself (an SQL import): there is nothing to authenticate. ``pre_restore_off_by`` names
    what turned the pre-restore backup off (a flag, an environment variable, a config file
    key) for the warning; ``announce=False`` leaves the ✅ log line to a caller whose
    ``backup`` is only a step (an import); ``journaled=False`` keeps it out of the backup
    directory's journal (a restore drill into a scratch file journals itself as a drill)."""
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
    # The pre-restore copy is as readable as the live ledger; temp images are owner-only.
    with (
        permissions.files_like(db_path if db_path.exists() else backup),
        journal.operation(backup.parent if journaled else None, "restore"),
        lock.database_and_directory(db_path, backup.parent, "restore"),
    ):
        _remove_stale_temps(db_path)
        image = temp_path(db_path.absolute().with_name(db_path.name + ".restore-image"))
        try:
            with ImageSync() as new:
                fresh = new if absent(db_path) else None
                info, source = _checked_backup(
                    backup, verify, verify_checksum, warnings, image, key, allow_gate_failed, fresh
                )
                if key is None and guard:
                    warnings.append(authtag.UNAUTHENTICATED)
                    schema_guard.check(source, db_path, backup, allow_schema_change, warnings)
                result = None
                if fresh is not None:
                    result = _restore_new(
                        image,
                        db_path,
                        info,
                        warnings,
                        pre_restore_backup,
                        verify,
                        fresh,
                        (started, max_seconds),
                    )
                if result is None:
                    result = _restore_into(
                        source,
                        backup,
                        db_path,
                        info,
                        warnings,
                        rule if pre_restore_backup else None,
                        pre_restore_off_by,
                        profile,
                        busy_timeout,
                        max_seconds,
                        key,
                    )
        finally:
            discard(image)
        _record(db_path, result, profile or LedgerProfile(), origin or f"backup {backup}")
    if announce:
        events.restored(backup)
    result.duration_seconds = time.monotonic() - started
    return result


def _restore_new(
    image: Path,
    db_path: Path,
    info: BackupInfo,
    warnings: list[str],
    pre_restore_backup: bool,
    verified: bool,
    synced: ImageSync,
    limit: tuple[float, float],
) -> RestoreResult | None:
    """Publish the checked ``image`` as the database ``db_path``, which did not exist
    (dagvault.restore_new); None if it exists by now (then it is restored into). Past
    ``limit`` (the restore's start, max_restore_time) nothing is published, as a copy
    into a live database is rolled back."""
    try:
        if not verified:  # --no-verify: the image gets the post-check before it is published
            with connection(image, mode="ro", what="restored image") as check:
                _post_check(check, info, warnings)
            synced.start(image)
        synced.wait()
        started, max_seconds = limit
        if time.monotonic() > started + max_seconds:
            raise _too_long(max_seconds, "the database was not created")
    except DagvaultError as exc:
        events.restore_failed(exc.message)
        raise
    if not publish_image(image, db_path, synced):
        return None
    if pre_restore_backup:
        warnings.append("the target database was empty; no pre-restore backup taken")
    return RestoreResult(
        success=True,
        backup_info=info,
        restore_timestamp=int(datetime.now(UTC).timestamp()),
        pre_restore_backup=None,
        warnings=warnings,
        database_path=str(db_path),
    )


def _restore_into(
    source: Path,
    backup: Path,
    db_path: Path,
    info: BackupInfo,
    warnings: list[str],
    pre_restore: PreRestoreRule | None,
    pre_restore_off_by: str,
    profile: LedgerProfile | None,
    busy_timeout: float,
    max_seconds: float,
    key: bytes | None,
) -> RestoreResult:
    """Copy the plain SQLite file ``source`` (the image of ``backup``) over ``db_path``."""
    created = not db_path.exists()
    target = open_database(db_path, mode="rwc", busy_timeout=busy_timeout)
    return_to = ""
    try:
        pre_path = None
        before = _transactions(target, profile or LedgerProfile())
        has_content = int(pragma(target, "page_count")) > 0  # type: ignore[call-overload]
        if pre_restore is not None and has_content:
            pre_path = _take_pre_restore_backup(target, pre_restore, backup, profile, key)
        elif pre_restore is not None:
            warnings.append("the target database was empty; no pre-restore backup taken")
        else:
            warnings.append(f"no pre-restore backup taken: {pre_restore_off_by} turned it off")
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
        transactions_before=before,
    )


def _transactions(conn: sqlite3.Connection, profile: LedgerProfile) -> int | None:
    """The live database's transaction count (None: no such table, e.g. a new file)."""
    table = profile.transactions_table
    if table not in table_names(conn):
        return None
    return int(conn.execute(f"SELECT count(*) FROM {quote_identifier(table)}").fetchone()[0])


def _record(db_path: Path, result: RestoreResult, profile: LedgerProfile, origin: str) -> None:
    """Record the restore as the next backups' baseline; say how far the ledger went back.
    Called under the database lock, so no backup can start between the copy and this."""
    event = RestoreEvent(
        restored_at=datetime.now(UTC).isoformat(timespec="microseconds"),
        source=origin,
        total_transactions=profile.totals(result.backup_info.row_counts)[0],
        transactions_before=result.transactions_before,
        file_id=file_id(db_path),
    )
    result.transactions_went_back = event.went_back
    if event.went_back:
        result.warnings.append(
            f"the ledger went back {event.went_back} transactions "
            f"({event.transactions_before} before, {event.total_transactions} now); the "
            "next backups' transactions_not_decreased gate compares with this restored state"
        )
        events.went_back(origin, event.went_back, event.total_transactions)
    try:
        record_restore(db_path, event)
    except DagvaultError as exc:
        result.warnings.append(
            f"the restore was not recorded as the next backups' baseline ({exc.message}): "
            "their gate compares with the previous backup"
        )


def _remove_stale_temps(db_path: Path) -> None:
    """Temp files of pre-restore backups, rebuilt images and the restore history
    (``..<db>.dagvault-restores.json.<pid>.tmp``) whose writer died (a restore killed
    mid-way)."""
    prefix = f".{db_path.name}."
    for stale in stale_temp_files(db_path.absolute().parent):
        if stale.name.startswith((prefix, f".{prefix}")):
            discard(stale)


def _take_pre_restore_backup(
    target: sqlite3.Connection,
    rule: PreRestoreRule,
    backup: Path,
    profile: LedgerProfile | None,
    key: bytes | None,
) -> Path:
    db_path = rule.database
    newest = next(iter(pre_restore_copies(db_path)), None)
    # Written through the database's directory held open, as backups are (see safedir).
    with HeldDir.open(db_path.parent) as held, held.naming_errors():
        written, info = write_backup(
            target,
            db_path,
            numbered_paths(held.io, db_path.name + PRE_RESTORE_MARK + "{ts}{n}"),
            description=f"pre-restore backup taken before restoring {backup}",
            profile=profile or LedgerProfile(),
            stage="pre-restore backup",
            full_suffix="",
            key=key,
            held=held,
        )
        pre_path = held.shown(written)
    if newest is not None and _intact_copy_of(newest, info.checksum):
        # The database has not changed since ``newest`` (a retry of a restore that failed,
        # e.g. on a busy database): a second identical copy would only take room.
        for path in (meta_path(pre_path), cache_path(pre_path), pre_path):
            discard(path)
        pre_path = newest.path
        events.pre_restore_backup_reused(pre_path)
    else:
        # Its checksum was just computed from the file written (write_backup hashes the
        # copy as it syncs it): hashing it again would read 1 GB twice for nothing. The
        # SQLite check and the row counts prove the copy is a sound database.
        report = verify_file(pre_path, quick=True, checksum=False)
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
