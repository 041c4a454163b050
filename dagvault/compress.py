"""zstd for stored backups: whole-file frames, so `zstd -d FILE.zst` restores the plain file.

The checksum in ``.meta`` is always of the bytes as stored (compressed or not).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import zstandard

from dagvault.checksum import HashingReads, write_all
from dagvault.errors import VerificationError

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


def decompress_file(source: Path, dest: Path) -> str:
    """Write the plain content of the zstd file ``source`` to the new file ``dest`` (a
    scratch image: not fsynced, see ``chain.materialize``); return the SHA3-256 of
    ``source`` as read (hashed while decompressing: one read of the backup)."""
    decompressor = zstandard.ZstdDecompressor().decompressobj()
    with (
        open(source, "rb", buffering=0) as src,
        open(dest, "xb", buffering=0) as out,
        HashingReads(hashlib.sha3_256()) as reads,
    ):
        try:
            while chunk := reads.read(src):
                reads.hash(chunk)
                write_all(out, memoryview(decompressor.decompress(chunk)))
            reads.wait()
        except zstandard.ZstdError as exc:  # damage zstd itself notices (its frame checksum)
            raise VerificationError(
                f"{source}: the compressed data is damaged ({exc})",
                _UNREADABLE,
            ) from None
        if not decompressor.eof or decompressor.unused_data:
            raise VerificationError(
                f"{source}: the compressed data is truncated or has bytes after its end",
                _UNREADABLE,
            )
        return str(reads.digest.hexdigest())


def is_compressed(path: Path) -> bool:
    return path.name.endswith(SUFFIX)
