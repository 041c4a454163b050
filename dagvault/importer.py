"""``import_sql`` (`dagvault import-sql`): build a database from an SQL dump, check it,
then replace the live database through the same safe path as a restore.

The dump is executed statement by statement into a new file beside the database
(memory bounded by the longest statement). A dump that fails to execute, or that
ends inside its transaction or mid-statement (truncated), is rejected before the
live database is touched. The checked result becomes a regular backup with its
sidecar, which ``restore_backup`` then verifies, protects with a pre-restore
backup and copies in atomically.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagvault import events, journal, permissions
from dagvault.backup import numbered_paths, write_backup
from dagvault.db import connection, row_counts
from dagvault.errors import BackupNotFound, InvalidDump, storage_error
from dagvault.fsio import remove_stale_temp_files
from dagvault.ledger import LedgerProfile
from dagvault.restore import restore_backup
from dagvault.retention import DEFAULT_PRE_RESTORE_KEEP


@dataclass
class ImportResult:
    success: bool
    sql_path: str
    database_path: str
    row_counts: dict[str, int]
    pre_import_backup: str | None
    import_timestamp: int
    warnings: list[str] = field(default_factory=list)
    duration_seconds: float = 0.0
    transactions_went_back: int = 0  # the import is the next backups' baseline

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


def _split(text: str) -> list[str]:
    """The statements of a buffer that ``sqlite3.complete_statement`` calls complete
    (a line may hold several; a ';' inside a string or trigger body does not end one)."""
    statements, start, semicolon = [], 0, text.find(";")
    while semicolon != -1:
        if sqlite3.complete_statement(text[start : semicolon + 1]):
            statements.append(text[start : semicolon + 1])
            start = semicolon + 1
        semicolon = text.find(";", semicolon + 1)
    return statements


def _execute_dump(sql_path: Path, target: Path) -> None:
    conn = sqlite3.connect(target, isolation_level=None)
    try:
        pending, start_line, executed = "", 1, 0
        # newline="": a '\r' inside a string literal is data, not a line ending to translate.
        with open(sql_path, encoding="utf-8", errors="surrogateescape", newline="") as dump:
            for line_number, line in enumerate(dump, start=1):
                if not pending.strip():
                    pending, start_line = "", line_number
                pending += line
                try:
                    if not sqlite3.complete_statement(pending):
                        continue
                except (UnicodeEncodeError, ValueError):  # not UTF-8, or a NUL: not SQL text
                    raise InvalidDump(
                        f"{sql_path}: line {line_number} is not UTF-8 text (or holds a NUL byte); "
                        "this is not an SQL dump",
                        "Pass the .sql file written by `dagvault export --format sql` (a backup "
                        "is restored with `dagvault restore`). The live database was not touched.",
                    ) from None
                statements = _split(pending)
                for statement in statements:
                    try:
                        conn.execute(statement)
                    except (sqlite3.Error, UnicodeEncodeError, ValueError) as exc:
                        raise InvalidDump(
                            f"{sql_path}: statement at line {start_line} failed: {exc}",
                            "The dump is malformed; re-create it with `dagvault export --format "
                            "sql`. The live database was not touched.",
                        ) from None
                executed += len(statements)
                pending = pending[sum(len(s) for s in statements) :]
        if not executed and not pending.strip():
            raise InvalidDump(
                f"{sql_path}: the file holds no SQL statement (empty dump)",
                "Copy the complete dump again. The live database was not touched.",
            )
        if pending.strip():
            raise InvalidDump(
                f"{sql_path}: the dump ends in the middle of a statement (line {start_line}); "
                "it is truncated",
                "Copy the complete dump again. The live database was not touched.",
            )
        if conn.in_transaction:
            raise InvalidDump(
                f"{sql_path}: the dump ends without COMMIT; it is truncated",
                "Copy the complete dump again. The live database was not touched.",
            )
    finally:
        conn.close()


def import_sql(
    sql_path: Path,
    db_path: Path,
    *,
    pre_import_backup: bool = True,
    pre_import_off_by: str = "the caller",
    profile: LedgerProfile | None = None,
    busy_timeout: float = 30.0,
    max_seconds: float = 3600.0,
    pre_restore_keep: int = DEFAULT_PRE_RESTORE_KEEP,
    journal_dir: Path | None = None,
    key: bytes | None = None,
) -> ImportResult:
    """Build a database from the dump ``sql_path``, check it, and restore it into
    ``db_path`` (``journal_dir``: the backup directory whose journal records it). With
    ``key`` the pre-import backup carries its authentication tag, like any backup, so it
    can be restored under that key (the staged build is tagged and authenticated too)."""
    started = time.monotonic()
    if not sql_path.is_file():
        raise BackupNotFound(f"SQL dump {sql_path} does not exist", "Check the path.")
    with journal.operation(journal_dir, "import"):
        staging = db_path.absolute().parent / f".dagvault-import.{os.getpid()}.tmp"
        remove_stale_temp_files(staging.parent, prefix=".dagvault-import.")  # killed imports
        try:
            staging.mkdir(parents=True, mode=permissions.PRIVATE_DIR_MODE)  # a whole ledger
        except OSError as exc:
            raise storage_error(exc, "creating the import staging directory", str(staging)) from exc
        try:
            built = staging / "imported.db"
            _execute_dump(sql_path, built)
            with connection(built, mode="rw", what="imported database") as conn:
                check = [row[0] for row in conn.execute("PRAGMA integrity_check")]
                if check != ["ok"]:
                    raise InvalidDump(
                        f"{sql_path}: the imported database fails integrity_check: {check[:3]}"
                    )
                backup_path, _ = write_backup(
                    conn,
                    built,
                    numbered_paths(staging, "import_{ts}{n}"),
                    description=f"database built from {sql_path}",
                    profile=profile or LedgerProfile(),
                    stage="import",
                    key=key,
                )
                counts = row_counts(conn)
            result = restore_backup(
                backup_path,
                db_path,
                pre_restore_backup=pre_import_backup,
                pre_restore_off_by=pre_import_off_by,
                profile=profile,
                busy_timeout=busy_timeout,
                max_seconds=max_seconds,
                pre_restore_keep=pre_restore_keep,
                guard=False,  # built above from the dump the operator named
                announce=False,  # the staged backup is gone once this returns: name the dump
                origin=f"SQL dump {sql_path}",
                key=key,
            )
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    events.imported(db_path, sql_path)
    return ImportResult(
        success=True,
        sql_path=str(sql_path),
        database_path=str(db_path),
        row_counts=counts,
        pre_import_backup=result.pre_restore_backup,
        import_timestamp=int(time.time()),
        warnings=result.warnings,
        transactions_went_back=result.transactions_went_back,
        duration_seconds=round(time.monotonic() - started, 3),
    )
