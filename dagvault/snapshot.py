"""Consistent copies of a live database through SQLite's online backup API.

Never a file copy: a WAL database being written by another process is copied as
one committed state. The source read transaction is opened before the first
backup step and held until the last, so every step reads the same WAL snapshot
and concurrent commits neither restart the copy nor block (in WAL mode readers
and writers do not wait for each other; in rollback-journal mode writers wait
for the copy, as they would for any reader).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from dagvault import progress
from dagvault.db import pragma, row_counts, translate
from dagvault.db import uri as db_uri
from dagvault.errors import StorageError

# Pages per backup step: the granularity of the progress bar. 4096 pages = 16 MiB
# at the default page size. Throughput does not depend on it (-1, 1024, 4096 and 65536
# measured equal on the benchmark ledgers): the copy is bound by the kernel's page reads
# and writes, one syscall per page either way.
STEP_PAGES = 4096
_HEADER_VERSIONS = 18  # offset of the file format write/read versions (1 rollback, 2 WAL)


@dataclass(frozen=True)
class Snapshot:
    page_size: int
    page_count: int
    source_journal_mode: str
    row_counts: dict[str, int]
    sqlite_version: str


def snapshot_to_file(source: sqlite3.Connection, dest: Path, *, stage: str = "backup") -> Snapshot:
    """Write a consistent image of ``source`` to the new file ``dest`` (not yet fsynced).

    ``dest`` is created here, never over an existing file nor through a symbolic link, and
    SQLite must write into that very file: it opens files by name and resolves symbolic
    links in the name itself (``/proc`` paths of dagvault.safedir too), so a directory
    swapped for a link in between would send the copy elsewhere. Each connection is
    checked to hold the created file before it reads or writes (``_own_connection``).
    """
    fd = os.open(dest, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        target = _own_connection(dest, fd, "rw")
        try:
            # A fresh temp file has nothing to roll back to; it is fsynced once by the
            # checksum pass, so per-page journaling and syncs would only cost time. (A larger
            # cache_size or locking_mode=EXCLUSIVE measured no faster.)
            # The checksum cannot be computed while this copy runs: SHA3 must absorb page 1
            # first, and the destination's page 1 stays pinned in SQLite's page cache for
            # the whole copy, reaching the file only in the last step's commit.
            target.execute("PRAGMA journal_mode=OFF")
            target.execute("PRAGMA synchronous=OFF")
            source.execute("BEGIN")
            try:
                source.execute("SELECT count(*) FROM sqlite_schema").fetchone()  # pins the snapshot
                journal_mode = str(pragma(source, "journal_mode"))
                source.backup(
                    target,
                    pages=STEP_PAGES,
                    progress=lambda _status, remaining, total: progress.report(
                        stage, total - remaining, total
                    ),
                )
            finally:
                source.execute("COMMIT")
        finally:
            target.close()  # before any other statement: see _as_rollback_journal
        _as_rollback_journal(fd)
        with contextlib.closing(_own_connection(dest, fd, "ro")) as image:
            return Snapshot(
                page_size=int(pragma(image, "page_size")),  # type: ignore[call-overload]
                page_count=int(pragma(image, "page_count")),  # type: ignore[call-overload]
                source_journal_mode=journal_mode,
                row_counts=row_counts(image),
                sqlite_version=sqlite3.sqlite_version,
            )
    except sqlite3.Error as exc:
        raise translate(exc, f"copying the database to {dest}") from exc
    finally:
        os.close(fd)  # after SQLite's connections: closing it drops their POSIX locks


def integrity_problems(dest: Path) -> list[str]:
    """``PRAGMA integrity_check`` of the finished image ``dest`` (closed by
    ``snapshot_to_file``): [] when it is sound, else up to five of SQLite's messages.

    Meant to run in a thread while the checksum pass reads the same file (both leave the
    GIL to SQLite and OpenSSL: two cores). The connection is immutable, so it takes no
    POSIX lock that the checksum descriptor's close could drop; the image is a private
    temp file that nothing writes any more, which is what immutable requires."""
    fd = os.open(dest, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        with contextlib.closing(_own_connection(dest, fd, "ro&immutable=1")) as image:
            found = [str(row[0]) for row in image.execute("PRAGMA integrity_check")]
    except sqlite3.DatabaseError as exc:  # damage SQLite refuses to read at all
        return [str(exc)]
    finally:
        os.close(fd)
    return [] if found == ["ok"] else found[:5]


def _as_rollback_journal(fd: int) -> None:
    """A copy of a WAL database is itself marked WAL (header bytes 18 and 19 are 2); mark
    it a plain rollback-journal file, which opens anywhere, read-only media included, and
    without ``-wal``/``-shm`` companions (which SQLite would create by name beside it).
    This is what ``PRAGMA journal_mode=DELETE`` writes, done on the file held open."""
    if os.pread(fd, 2, _HEADER_VERSIONS) == b"\x02\x02":
        os.pwrite(fd, b"\x01\x01", _HEADER_VERSIONS)


def _own_connection(dest: Path, fd: int, mode: str) -> sqlite3.Connection:
    """A connection to ``dest`` proven to have opened the file ``fd`` holds (SQLite opens
    the file when it connects, before any statement)."""
    conn = sqlite3.connect(db_uri(dest, mode), uri=True, isolation_level=None)
    if not _also_open(fd):
        conn.close()
        raise StorageError(
            f"{dest.parent} changed while the backup copied the database into it (a "
            "directory in its path was replaced, e.g. by a symbolic link); nothing was "
            "written there",
            "Check who else can write in the backup directory (chmod 700 it), then run the "
            "command again.",
        )
    return conn


def _also_open(fd: int) -> bool:
    """Whether another descriptor of this process is open on the file ``fd`` is."""
    mine = os.fstat(fd)
    for name in os.listdir("/proc/self/fd"):
        if int(name) == fd:
            continue
        with contextlib.suppress(OSError):  # closed meanwhile (another thread), or a socket
            other = os.stat(f"/proc/self/fd/{name}")
            if (other.st_dev, other.st_ino) == (mine.st_dev, mine.st_ino):
                return True
    return False
