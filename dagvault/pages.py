"""Page digests: how incremental backups find what changed, and prove what they rebuilt.

A database image is a sequence of pages. Each page gets a BLAKE2b-256 digest; the
image digest is the SHA3-256 of those digests concatenated (a hash list), so a
delta can state the digest of the full image it represents after hashing only
the image's pages once, and a restore can prove it rebuilt exactly that image.

The digests of a backup's image are cached beside it in ``<backup>.pages``
(header: magic, page size, page count, the backup file's size, mtime and inode, and
the SHA3-256 of all of that and the digests), checked on load. A missing or damaged
cache, or one written for another file under the backup's name, is recomputed from
the backup itself.
"""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

from dagvault.fsio import write_atomic

DIGEST_BYTES = 32
_MAGIC = b"DVPAGES2"
# magic, page size, page count, backup size, backup mtime (ns), backup inode, sha3
_HEADER = struct.Struct("<8sIIQQQ32s")
READ_BYTES = 4 * 1024 * 1024

# From this size on, a helper process hashes the second half of the image while this one
# hashes the first: 1 GB in 0.54 s instead of 1.0 s on 2 cores. Threads cannot do it:
# hashlib releases the GIL for each 4 KiB page, but taking it back after every page costs
# as much as the hash (2 threads measured no faster than 1). Below this size the ~30 ms
# helper start costs more than it saves.
HELPER_MIN_BYTES = 64 * 1024 * 1024
# Put on sys.path by helper interpreters (started with -I -S: no site-packages, no cwd).
PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)
_HELPER = (
    "import os, sys; sys.path.insert(0, sys.argv[1]); "
    "from dagvault.pages import _hash_range; "
    "fd = os.open(sys.argv[2], os.O_RDONLY); "
    "sys.stdout.buffer.write(_hash_range(fd, *map(int, sys.argv[3:6])))"
)


def _hash_range(fd: int, page_size: int, start: int, stop: int) -> bytes:
    """Digests of the pages in bytes ``[start, stop)`` of ``fd`` (``start`` on a page
    boundary; a short last page at the end of the file is hashed as it is)."""
    buffer = bytearray(READ_BYTES - READ_BYTES % page_size)
    view = memoryview(buffer)
    blake2b = hashlib.blake2b
    out: list[bytes] = []
    offset = start
    while offset < stop:
        want = min(len(buffer), stop - offset)
        n = 0
        while n < want and (got := os.preadv(fd, [view[n:want]], offset + n)):
            n += got  # a regular file reads short only at its end
        out += [
            blake2b(view[o : min(o + page_size, n)], digest_size=32).digest()
            for o in range(0, n, page_size)
        ]
        if n < want:
            break
        offset += n
    return b"".join(out)


def page_digests(image: Path, page_size: int, *, helper_min_bytes: int = HELPER_MIN_BYTES) -> bytes:
    """BLAKE2b-256 of every page of ``image`` (an uncompressed SQLite file), concatenated."""
    with open(image, "rb", buffering=0) as fh:
        fd = fh.fileno()
        return digests_of_open_file(
            image, fd, page_size, os.fstat(fd).st_size, helper_min_bytes=helper_min_bytes
        )


def digests_of_open_file(
    path: Path, fd: int, page_size: int, size: int, *, helper_min_bytes: int = HELPER_MIN_BYTES
) -> bytes:
    """Digests of bytes ``[0, size)`` of ``fd`` (open on ``path``, which a helper process
    may open too); ``fd`` is left open."""
    count = -(-size // page_size)
    split = (count // 2) * page_size
    if size < helper_min_bytes or count < 2 or (os.cpu_count() or 1) < 2:
        return _hash_range(fd, page_size, 0, size)
    halves = _with_helper(path, fd, page_size, split, size)
    if halves is None:
        return _hash_range(fd, page_size, 0, size)
    first, second = halves
    if len(second) != (count - split // page_size) * DIGEST_BYTES:
        second = _hash_range(fd, page_size, split, size)  # the helper failed: hash here
    return first + second


def _with_helper(
    image: Path, fd: int, page_size: int, split: int, size: int
) -> tuple[bytes, bytes] | None:
    """(digests of ``[0, split)`` hashed here, of ``[split, size)`` hashed by a helper
    interpreter: b"" if it failed), or None if no helper could start."""
    if not sys.executable:
        return None
    with tempfile.TemporaryFile() as out:
        command = [sys.executable, "-I", "-S", "-c", _HELPER, PACKAGE_ROOT, str(image)]
        try:
            child = subprocess.Popen(
                [*command, str(page_size), str(split), str(size)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.DEVNULL,
            )
        except OSError:
            return None
        try:
            first = _hash_range(fd, page_size, 0, split)
        except BaseException:
            child.kill()
            child.wait()
            raise
        if child.wait() != 0:
            return first, b""
        out.seek(0)
        return first, out.read()


def image_digest(digests: bytes) -> str:
    return hashlib.sha3_256(digests).hexdigest()


def cache_path(backup: Path) -> Path:
    return backup.with_name(backup.name + ".pages")


def _identity(backup: Path) -> tuple[int, int, int]:
    st = backup.stat()
    return st.st_size, st.st_mtime_ns, st.st_ino


def _sealed(page_size: int, count: int, identity: tuple[int, int, int], digests: bytes) -> bytes:
    fields = struct.pack("<IIQQQ", page_size, count, *identity)
    return hashlib.sha3_256(_MAGIC + fields + digests).digest()


def save(backup: Path, page_size: int, digests: bytes) -> None:
    """Cache ``digests`` (of ``backup``'s image) beside the backup, bound to its file."""
    count = len(digests) // DIGEST_BYTES
    identity = _identity(backup)
    seal = _sealed(page_size, count, identity, digests)
    write_atomic(
        cache_path(backup),
        _HEADER.pack(_MAGIC, page_size, count, *identity, seal) + digests,
        times_of=backup,
    )


def load(backup: Path, page_size: int) -> bytes | None:
    """The cached digests of ``backup``'s image, or None if absent or not trustworthy."""
    try:
        data = cache_path(backup).read_bytes()
        identity = _identity(backup)
    except OSError:
        return None
    if len(data) < _HEADER.size:
        return None
    magic, cached_page_size, count, size, mtime_ns, inode, seal = _HEADER.unpack_from(data)
    digests = data[_HEADER.size :]
    if (
        magic != _MAGIC
        or cached_page_size != page_size
        or (size, mtime_ns, inode) != identity
        or len(digests) != count * DIGEST_BYTES
        or _sealed(page_size, count, identity, digests) != seal
    ):
        return None
    return digests
