"""Reading a live database's pages in place, pinned to one committed state.

A delta needs the digest of every page of the current state, to find the few that
changed. Copying the database through the backup API first (snapshot.py) costs about
1 s/GB before hashing can start, so a delta reads the database file itself instead, in
a helper process holding a read transaction whose snapshot is exactly the file:

- rollback-journal modes: the transaction's SHARED lock keeps writers out of the file;
- WAL mode: after a passive checkpoint, a reader that finds the WAL fully backfilled
  takes WAL_READ_LOCK(0) and reads the database file only, and while anyone holds that
  lock no checkpoint may write into the file (https://sqlite.org/walformat.html). The
  helper confirms in /proc/locks that it holds that lock (byte 123 of the -shm file); if
  the node committed in between, it tries again a few times, then gives up and the
  caller takes the backup-API copy as before. Writers are never blocked in WAL mode.

Why a helper process: closing a descriptor of the database file in a process that holds
SQLite connections to it drops all of that process's POSIX locks. The helper opens its
own connection and one descriptor, and closes the connection first.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import struct
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from dagvault import pages
from dagvault.db import open_database, pragma, row_counts
from dagvault.errors import DagvaultError
from dagvault.snapshot import Snapshot

# How long to keep trying for WAL_READ_LOCK(0) while the node commits: a checkpoint that a
# commit overtakes leaves the WAL not fully backfilled. Giving up costs the copy (~1 s/GB).
PIN_SECONDS = 0.5
_WAL_READ_LOCK_0 = 123  # byte of the -shm file: 120 + 3 (WAL_WRITE, CKPT, RECOVER first)
_LENGTH = struct.Struct("<Q")
_CHILD = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from dagvault.pinned import _child_main; sys.exit(_child_main(sys.argv[2:]))"
)


class PinnedRead:
    """A helper process pinned to the current state of ``db_path``; ``snapshot`` is None
    (and ``reason`` says why) when it could not pin one."""

    def __init__(self, db_path: Path, busy_timeout: float) -> None:
        self.snapshot: Snapshot | None = None
        self.reason = ""
        self._child = subprocess.Popen(
            [
                *(sys.executable, "-I", "-S", "-c", _CHILD, pages.PACKAGE_ROOT),
                *(str(db_path), str(int(busy_timeout * 1000)), str(PIN_SECONDS)),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        status = self._read_status()
        if status.get("pinned"):
            self.snapshot = Snapshot(
                page_size=status["page_size"],
                page_count=status["page_count"],
                source_journal_mode=status["journal_mode"],
                row_counts=status["row_counts"],
                sqlite_version=status["sqlite_version"],
            )
        else:
            self.reason = str(status.get("reason") or "the helper process failed")

    def _read_status(self) -> dict[str, Any]:
        line = self._child.stdout.readline()  # type: ignore[union-attr]
        try:
            status = json.loads(line)
        except ValueError:
            return {}
        return status if isinstance(status, dict) else {}

    def digests(self) -> bytes:
        """The page digests of the pinned state."""
        stdout = self._child.stdout
        assert stdout is not None and self.snapshot is not None
        header = stdout.read(_LENGTH.size)
        (length,) = _LENGTH.unpack(header) if len(header) == _LENGTH.size else (-1,)
        digests = stdout.read(length) if length >= 0 else b""
        if len(digests) != self.snapshot.page_count * pages.DIGEST_BYTES:
            raise OSError("the page-reading helper process stopped before it finished")
        return digests

    def write_pages(self, image: Path, numbers: list[int]) -> None:
        """Write pages ``numbers`` of the pinned state into the new sparse file ``image``."""
        self._request({"image": str(image), "pages": numbers})

    def _request(self, command: dict[str, Any]) -> None:
        assert self._child.stdin is not None and self._child.stdout is not None
        self._child.stdin.write(json.dumps(command).encode() + b"\n")
        self._child.stdin.flush()
        if self._child.stdout.readline() != b"done\n":
            raise OSError("the page-reading helper process failed to write the changed pages")

    def close(self) -> None:
        """Release the pinned state (ends the helper's read transaction)."""
        child = self._child
        try:
            child.stdin.close()  # type: ignore[union-attr]
            child.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            child.kill()
            child.wait()
        finally:
            child.stdout.close()  # type: ignore[union-attr]

    def __enter__(self) -> PinnedRead:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None:
            self._child.kill()  # do not wait for it to finish hashing
        self.close()


# ---------------------------------------------------------------------------- the helper


def holds_read_lock_0(shm: Path, pid: int) -> bool:
    """Whether process ``pid`` holds a read lock on WAL_READ_LOCK(0) of ``shm``."""
    st = shm.stat()
    device = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as fh:
            lines = fh.readlines()
    except OSError:
        return False  # not Linux: never assume the lock is held
    for line in lines:
        fields = line.split()
        if len(fields) < 8 or fields[1] == "->":  # "->" marks a waiter, not a holder
            continue
        kind, access, holder, where, start, end = fields[1], *fields[3:8]
        if kind == "POSIX" and access == "READ" and holder == str(pid) and where == device:
            last = int(end) if end.isdigit() else 2**63
            if int(start) <= _WAL_READ_LOCK_0 <= last:
                return True
    return False


def _header_size_agrees(fd: int, page_count: int) -> bool:
    """The database header's page count, where valid, is the pinned one: a cheap proof that
    the file holds the state the transaction sees."""
    header = os.pread(fd, 100, 0)
    if len(header) < 100:
        return page_count == 0
    valid = header[24:28] == header[92:96]  # change counter = version-valid-for
    return not valid or int.from_bytes(header[28:32], "big") == page_count


def _pin(conn: sqlite3.Connection, db_path: Path, fd: int, seconds: float) -> dict[str, Any]:
    mode = str(pragma(conn, "journal_mode")).lower()
    deadline = time.monotonic() + seconds
    while True:
        if mode == "wal":
            # On a read-only file this fails: pinned only if the WAL is already backfilled.
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        conn.execute("BEGIN")
        conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()
        page_count = int(pragma(conn, "page_count"))  # type: ignore[call-overload]
        pinned = mode != "wal" or holds_read_lock_0(Path(f"{db_path}-shm"), os.getpid())
        if pinned and _header_size_agrees(fd, page_count):
            return {
                "pinned": True,
                "page_size": int(pragma(conn, "page_size")),  # type: ignore[call-overload]
                "page_count": page_count,
                "journal_mode": mode,
                "row_counts": row_counts(conn),
                "sqlite_version": sqlite3.sqlite_version,
            }
        conn.execute("COMMIT")
        if time.monotonic() > deadline:
            break
        time.sleep(0.0005)  # a new commit may be under way: let it finish
    return {
        "pinned": False,
        "reason": f"the database kept committing for {seconds} s, too often to pin a state",
    }


def _page(fd: int, number: int, page_size: int) -> bytes:
    """Page ``number`` as a copy through the backup API would have it: page 1 of a WAL
    database says "rollback journal" (header bytes 18-19), so that the rebuilt image opens
    anywhere, read-only media included, without -wal and -shm companions."""
    data = os.pread(fd, page_size, (number - 1) * page_size)
    if number == 1 and data[18:20] == b"\x02\x02":
        data = data[:18] + b"\x01\x01" + data[20:]
    return data


def _digests(db_path: Path, fd: int, page_size: int, page_count: int) -> bytes:
    digests = pages.digests_of_open_file(db_path, fd, page_size, page_count * page_size)
    if not page_count:
        return digests
    first = hashlib.blake2b(_page(fd, 1, page_size), digest_size=pages.DIGEST_BYTES).digest()
    return first + digests[pages.DIGEST_BYTES :]


def _write_sparse(
    fd: int, image: Path, page_size: int, page_count: int, numbers: list[int]
) -> None:
    with open(image, "xb") as out:
        out.truncate(page_count * page_size)
        for number in numbers:
            if not 1 <= number <= page_count:
                raise ValueError(f"page {number} is outside the pinned state")
            os.pwrite(out.fileno(), _page(fd, number, page_size), (number - 1) * page_size)


def _child_main(argv: list[str]) -> int:
    db_path, busy_ms, seconds = Path(argv[0]), int(argv[1]), float(argv[2])
    out = sys.stdout.buffer
    fd = os.open(db_path, os.O_RDONLY)
    conn = None
    try:
        try:
            conn = open_database(db_path, mode="rw", busy_timeout=busy_ms / 1000)
            status = _pin(conn, db_path, fd, seconds)
        except DagvaultError as exc:
            status = {"pinned": False, "reason": exc.message}
        except (sqlite3.Error, OSError) as exc:
            status = {"pinned": False, "reason": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(status).encode() + b"\n")
        out.flush()
        if not status["pinned"]:
            return 0
        page_size, page_count = status["page_size"], status["page_count"]
        digests = _digests(db_path, fd, page_size, page_count)
        out.write(_LENGTH.pack(len(digests)) + digests)
        out.flush()
        while request := sys.stdin.buffer.readline():
            command = json.loads(request)
            _write_sparse(fd, Path(command["image"]), page_size, page_count, command["pages"])
            out.write(b"done\n")
            out.flush()
        return 0
    finally:
        if conn is not None:
            conn.close()  # before the descriptor: closing that first would drop SQLite's locks
        os.close(fd)
