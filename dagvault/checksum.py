"""SHA3-256 of files as stored, streamed in fixed-size chunks (memory flat in file size)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

CHUNK_BYTES = 4 * 1024 * 1024  # large reads keep hashlib (which drops the GIL) busy


def sha3_256_file(path: Path, *, fsync: bool = False) -> str:
    """Hex SHA3-256 of ``path``'s bytes; with ``fsync`` also flushes the file to disk.

    Only for files no SQLite connection of this process has open: closing another
    descriptor of such a file would drop that connection's POSIX locks.
    """
    digest = hashlib.sha3_256()
    buffer = bytearray(CHUNK_BYTES)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buffer):
            digest.update(view[:n])
        if fsync:
            os.fsync(fh.fileno())
    return digest.hexdigest()
