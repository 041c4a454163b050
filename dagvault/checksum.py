"""SHA3-256 of files as stored, streamed in fixed-size chunks (memory flat in file size)."""

from __future__ import annotations

import hashlib
import io
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# SHA3 itself (~600 MB/s) is the whole cost; reading is ~1% of it, and any chunk from
# 1 to 16 MiB measures the same. hashlib drops the GIL while it digests a chunk this large.
CHUNK_BYTES = 4 * 1024 * 1024


def sha3_256_open(fh: io.FileIO) -> str:
    """Hex SHA3-256 of the rest of the open file ``fh`` (the caller closes it: it may
    open it before, and close it after, a SQLite connection to the same file)."""
    return _hexdigest(fh)


def _hexdigest(fh: io.FileIO) -> str:
    digest = hashlib.sha3_256()
    buffer = bytearray(CHUNK_BYTES)
    view = memoryview(buffer)
    while n := fh.readinto(buffer):
        digest.update(view[:n])
    return digest.hexdigest()


def sha3_256_file(path: Path, *, fsync: bool = False) -> str:
    """Hex SHA3-256 of ``path``'s bytes; with ``fsync`` also flushes the file to disk.

    With ``fsync`` the flush runs in a helper thread while this one hashes: writeback is
    I/O, hashing is CPU, and pages under writeback stay readable, so the flush hides
    behind the hash instead of following it. Returns only once both are done; an fsync
    error is raised like any other.

    Only for files no SQLite connection of this process has open: closing another
    descriptor of such a file would drop that connection's POSIX locks.
    """
    with open(path, "rb", buffering=0) as fh:
        if not fsync:
            return _hexdigest(fh)
        # Leaving the executor joins the fsync before the descriptor is closed, also when
        # hashing fails (that error then wins: the caller discards the file anyway).
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="dagvault-fsync") as pool:
            flushed = pool.submit(os.fsync, fh.fileno())
            checksum = _hexdigest(fh)
            flushed.result()
        return checksum
