"""Page digests: how incremental backups find what changed, and prove what they rebuilt.

A database image is a sequence of pages. Each page gets a BLAKE2b-256 digest; the
image digest is the SHA3-256 of those digests concatenated (a hash list), so a
delta can state the digest of the full image it represents after hashing only
the image's pages once, and a restore can prove it rebuilt exactly that image.

The digests of a backup's image are cached beside it in ``<backup>.pages``
(header: magic, page size, page count, SHA3-256 of the digests), checked on load.
A missing or damaged cache is recomputed from the backup itself.
"""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

from dagvault.fsio import write_atomic

DIGEST_BYTES = 32
_MAGIC = b"DVPAGES1"
_HEADER = struct.Struct("<8sII32s")  # magic, page size, page count, sha3(digests)
READ_BYTES = 4 * 1024 * 1024


def page_digests(image: Path, page_size: int) -> bytes:
    """BLAKE2b-256 of every page of ``image`` (an uncompressed SQLite file), concatenated."""
    out = bytearray()
    with open(image, "rb", buffering=0) as fh:
        while chunk := fh.read(READ_BYTES - READ_BYTES % page_size):
            view = memoryview(chunk)
            for offset in range(0, len(chunk), page_size):
                out += hashlib.blake2b(view[offset : offset + page_size], digest_size=32).digest()
    return bytes(out)


def image_digest(digests: bytes) -> str:
    return hashlib.sha3_256(digests).hexdigest()


def cache_path(backup: Path) -> Path:
    return backup.with_name(backup.name + ".pages")


def save(backup: Path, page_size: int, digests: bytes) -> None:
    header = _HEADER.pack(
        _MAGIC, page_size, len(digests) // DIGEST_BYTES, hashlib.sha3_256(digests).digest()
    )
    write_atomic(cache_path(backup), header + digests)


def load(backup: Path, page_size: int) -> bytes | None:
    """The cached digests of ``backup``'s image, or None if absent or not trustworthy."""
    try:
        data = cache_path(backup).read_bytes()
    except OSError:
        return None
    if len(data) < _HEADER.size:
        return None
    magic, cached_page_size, count, checksum = _HEADER.unpack_from(data)
    digests = data[_HEADER.size :]
    if (
        magic != _MAGIC
        or cached_page_size != page_size
        or len(digests) != count * DIGEST_BYTES
        or hashlib.sha3_256(digests).digest() != checksum
    ):
        return None
    return digests
