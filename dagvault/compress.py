"""zstd for stored backups: whole-file frames, so `zstd -d FILE.zst` restores the plain file.

The checksum in ``.meta`` is always of the bytes as stored (compressed or not).
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

import zstandard

from dagvault.checksum import sha3_256_file
from dagvault.errors import DamagedCompressedData, VerificationError

SUFFIX = ".zst"
LEVEL = 3  # zstd's default: most of the ratio at a fraction of the CPU of higher levels
CHUNK_BYTES = 4 * 1024 * 1024
_UNREADABLE = "Restore another backup (`dagvault list`); this one cannot be decompressed."


def compress_file(source: Path, dest: Path) -> str:
    """Compress ``source`` into the new file ``dest`` (fsynced); return SHA3-256 of ``dest``."""
    digest = hashlib.sha3_256()

    class _Hashing:
        def __init__(self, fh: object) -> None:
            self.fh = fh

        def write(self, data: bytes) -> int:
            digest.update(data)
            return self.fh.write(data)  # type: ignore[attr-defined,no-any-return]

    compressor = zstandard.ZstdCompressor(level=LEVEL, threads=-1, write_content_size=True)
    with open(source, "rb") as src, open(dest, "xb") as out:
        compressor.copy_stream(src, _Hashing(out), size=os.fstat(src.fileno()).st_size)
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest()


class _HashedSource:
    """The compressed file as zstd reads it, hashed in a helper thread while zstd
    decompresses what it read before (each read is a new bytes object: nothing is reused
    under the hash)."""

    def __init__(self, raw: BinaryIO, pool: ThreadPoolExecutor) -> None:
        self.raw, self.pool = raw, pool
        self.digest = hashlib.sha3_256()
        self._pending: Future[None] | None = None

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.wait()
        self._pending = self.pool.submit(self.digest.update, data)
        return data

    def wait(self) -> None:
        if self._pending is not None:
            self._pending.result()
            self._pending = None


def decompress_file(source: Path, dest: Path) -> str:
    """Write the plain content of the zstd file ``source`` to the new file ``dest`` (a
    scratch image: not fsynced, see ``chain.materialize``), memory flat; return the
    SHA3-256 of ``source`` as read (hashed while decompressing: one read of the backup)."""
    with (
        open(source, "rb") as src,
        open(dest, "xb") as out,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="dagvault-sha3") as pool,
    ):
        hashed = _HashedSource(src, pool)
        try:
            expected = zstandard.get_frame_parameters(src.read(18)).content_size
            src.seek(0)
            with zstandard.ZstdDecompressor().stream_reader(
                hashed, read_size=CHUNK_BYTES, closefd=False
            ) as reader:
                written = 0
                while chunk := reader.read(CHUNK_BYTES):
                    written += out.write(chunk)
            after = hashed.read()  # zstd stops at the frame's end: hash the rest too
            hashed.wait()
        except zstandard.ZstdError as exc:  # damage zstd itself notices (its frame checksum)
            hashed.wait()
            raise DamagedCompressedData(
                f"{source}: the compressed data is damaged ({exc})",
                _UNREADABLE,
                read_as=sha3_256_file(source),  # the whole file's, to name what changed
            ) from None
        # zstd ends a cut-off frame without an error: the content size in its header (which
        # compress_file writes) tells; without one the checksum still does.
        if after or expected not in (written, zstandard.CONTENTSIZE_UNKNOWN):
            raise VerificationError(
                f"{source}: the compressed data is truncated or has bytes after its end",
                _UNREADABLE,
            )
        return hashed.digest.hexdigest()


def is_compressed(path: Path) -> bool:
    return path.name.endswith(SUFFIX)
