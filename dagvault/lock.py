"""One dagvault operation at a time per database and per backup directory.

flock(2) on a hidden lock file beside the protected path: the kernel drops it when
the holder dies, so a crashed run never leaves a stale lock. The lock file itself
is never removed (removing it would let two processes lock two different inodes).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from dagvault import safedir
from dagvault.errors import OperationInProgress, storage_error


def lock_path_for(protected: Path) -> Path:
    protected = protected.absolute()
    if protected.is_dir():
        return protected / ".dagvault.lock"
    return protected.with_name(f".{protected.name}.dagvault.lock")


@contextlib.contextmanager
def hold(protected: Path, operation: str, *, shared: bool = False) -> Iterator[None]:
    """Hold the lock of ``protected`` (a database file or a backup directory).

    Backup directories are locked shared by operations that add or read backups and
    exclusively by cleanup, which removes them.
    """
    path = lock_path_for(protected)
    try:
        # Never through a symbolic link planted under the lock's name, nor (inside the
        # API's directories) through one swapped in for the directory: see safedir.
        with safedir.entry(path) as where:
            fd = os.open(where, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise storage_error(exc, "creating lock file", str(path)) from exc
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            raise OperationInProgress(
                f"Another dagvault operation holds {protected} ({holder}); "
                f"refusing to start {operation}",
                "Wait for it to finish, then run the command again. The lock is released "
                f"automatically when that process exits (lock file: {path}).",
            ) from None
        if not shared:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}, {operation} since {time.ctime()}".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing drops the flock


@contextlib.contextmanager
def database_and_directory(database: Path, directory: Path, operation: str) -> Iterator[None]:
    """The locks of a backup or restore: the database exclusively, then its backup directory
    shared. Always in this order, so two operations can never wait for each other."""
    with hold(database, operation), hold(directory, operation, shared=True):
        yield
