"""SHA3-256 of files as stored, streamed in fixed-size chunks (memory flat in file size)."""

from __future__ import annotations

import hashlib
import io
import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

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


class HashingReads:
    """Hashes in a helper thread the bytes read before, while the next ones are read and
    written: a copy and its checksum in one read of the source, taking about as long as
    the hash alone. Two buffers take turns: one is hashed while the other is filled."""

    def __init__(self, digest: Any) -> None:
        self.digest = digest
        self._buffers = (bytearray(CHUNK_BYTES), bytearray(CHUNK_BYTES))
        self._turn = 0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dagvault-sha3")
        self._pending: Future[None] | None = None

    def read(self, fh: io.RawIOBase) -> memoryview:
        """The next chunk of ``fh`` (empty at its end), handed to the hash by ``hash``."""
        buffer = self._buffers[self._turn]
        self._turn ^= 1
        return memoryview(buffer)[: fh.readinto(buffer) or 0]

    def hash(self, chunk: memoryview) -> None:
        """Hash ``chunk`` once the previous one is hashed (its buffer is read into next)."""
        self.wait()
        self._pending = self._pool.submit(self.digest.update, chunk)

    def wait(self) -> None:
        if self._pending is not None:
            self._pending.result()
            self._pending = None

    def __enter__(self) -> HashingReads:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True)  # never leave the thread hashing a reused buffer


def write_all(out: io.RawIOBase, data: memoryview) -> None:
    """Write all of ``data`` (an unbuffered write may be short)."""
    while data:
        data = data[out.write(data) or 0 :]


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
