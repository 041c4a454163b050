"""Opening SQLite databases the way every dagvault operation needs them.

Connections never create a database by accident (URI ``mode=rw``/``mode=ro``), wait
for writers up to a busy timeout, and translate SQLite's errors into DagvaultErrors.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from dagvault.errors import (
    DagvaultError,
    DatabaseLocked,
    DatabaseNotFound,
    DiskFull,
    NotASQLiteDatabase,
    StorageError,
    VerificationError,
)


def uri(path: Path, mode: str) -> str:
    return f"file:{quote(str(path.absolute()))}?mode={mode}"


def require_file(path: Path, what: str = "database") -> None:
    """Fail early, before any lock or connection, when ``path`` is not a file."""
    if not path.exists():
        raise DatabaseNotFound(
            f"{what.capitalize()} {path} does not exist",
            "Check the path (--db / DATABASE_PATH) and run the command again.",
        )
    if not path.is_file():
        raise NotASQLiteDatabase(f"{what.capitalize()} {path} is not a regular file")


def open_database(
    path: Path,
    *,
    mode: str = "rw",
    busy_timeout: float = 30.0,
    what: str = "database",
    check_same_thread: bool = True,
) -> sqlite3.Connection:
    """Open an existing SQLite file (``mode`` rw, ro or rwc) and prove it is SQLite.

    ``check_same_thread=False`` is for a connection handed to one other thread at a
    time (DuckDB pulls Arrow batches from its own threads); SQLite is built serialized.
    """
    if mode != "rwc" or path.exists():
        require_file(path, what)
    try:
        conn = sqlite3.connect(
            uri(path, mode),
            uri=True,
            timeout=busy_timeout,
            isolation_level=None,
            check_same_thread=check_same_thread,
        )
    except sqlite3.OperationalError as exc:
        raise translate(exc, f"opening {what} {path}") from exc
    try:
        conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise translate(exc, f"reading {what} {path}") from exc
    return conn


@contextlib.contextmanager
def connection(path: Path, **kwargs: object) -> Iterator[sqlite3.Connection]:
    conn = open_database(path, **kwargs)  # type: ignore[arg-type]
    try:
        yield conn
    finally:
        conn.close()


def translate(exc: sqlite3.Error, action: str) -> DagvaultError:
    """Map a sqlite3 exception raised while doing ``action`` to a DagvaultError."""
    text = str(exc)
    code = getattr(exc, "sqlite_errorname", "")
    if code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text:
        return DatabaseLocked(
            f"Database is locked while {action}: {text}",
            "Another process holds a write lock; retry when it commits "
            "(raise DAGVAULT_BUSY_TIMEOUT to wait longer).",
        )
    if code.startswith("SQLITE_NOTADB") or "not a database" in text:
        return NotASQLiteDatabase(
            f"Not a SQLite database while {action}: {text}",
            "Point dagvault at a SQLite database file.",
        )
    if code.startswith("SQLITE_FULL") or "disk is full" in text:
        return DiskFull(
            f"No space left while {action}: {text}",
            "Free up disk space or choose a larger volume, then run the command again.",
        )
    if code.startswith("SQLITE_CORRUPT") or "malformed" in text:
        return VerificationError(
            f"Database disk image is malformed while {action}: {text}",
            "Check the file with `sqlite3 FILE 'PRAGMA integrity_check'`; a damaged ledger is "
            "brought back from its newest verified backup with `dagvault restore`.",
        )
    if code.startswith(("SQLITE_CANTOPEN", "SQLITE_READONLY", "SQLITE_IOERR", "SQLITE_PERM")):
        err = StorageError(
            f"Cannot access the file while {action}: {text}",
            "Check the path, its permissions and the device.",
        )
        err.retryable = code.startswith("SQLITE_IOERR")
        return err
    return DagvaultError(
        f"SQLite error while {action}: {text}",
        "Check that the file is a SQLite database this process can read and write, then "
        "run the command again.",
    )


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def table_names(conn: sqlite3.Connection) -> list[str]:
    """Ordinary tables (virtual tables are skipped: their shadow tables hold the rows)."""
    rows = conn.execute(
        "SELECT name FROM sqlite_schema WHERE type = 'table' "
        "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
        "AND coalesce(sql, '') NOT LIKE 'CREATE VIRTUAL%' ORDER BY name"
    )
    return [name for (name,) in rows]


def row_counts(conn: sqlite3.Connection) -> dict[str, int]:
    return {
        name: conn.execute(f"SELECT count(*) FROM {quote_identifier(name)}").fetchone()[0]
        for name in table_names(conn)
    }


def pragma(conn: sqlite3.Connection, name: str) -> object:
    return conn.execute(f"PRAGMA {name}").fetchone()[0]
