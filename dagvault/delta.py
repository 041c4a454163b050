"""Delta files: the pages of a database image that changed since a parent backup.

Format version 1 (integers little-endian), stored as is or as one zstd frame (.zst):

    magic        8 bytes   b"DVDELTA1"
    header_len   u32
    header       JSON: format_version, page_size, page_count (of the image after
                 applying), changed_pages, parent_checksum, image_digest
    records      changed_pages * (u32 page number, 1-based; page_size bytes),
                 ascending page numbers
    trailer      8 bytes b"DVDEND01" + u32 changed_pages

Applying a delta writes each record's page at (number - 1) * page_size of the
parent's image and truncates the image to page_count pages. The trailer catches
a truncated file even before its checksum is compared.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

import zstandard

from dagvault.compress import is_compressed
from dagvault.errors import VerificationError

FORMAT_VERSION = 1
_MAGIC = b"DVDELTA1"
_TRAILER = b"DVDEND01"
_U32 = struct.Struct("<I")
_PAGE_SIZES = frozenset(512 << n for n in range(8))  # SQLite's: 512 ... 65536


def write_delta(
    out: BinaryIO, image: Path, page_size: int, pages: Iterable[int], header: dict[str, Any]
) -> None:
    """Write a delta of ``pages`` of ``image`` to ``out`` (a file or a compressing writer)."""
    pages = sorted(pages)
    body = json.dumps(
        {
            **header,
            "format_version": FORMAT_VERSION,
            "page_size": page_size,
            "changed_pages": len(pages),
        },
        sort_keys=True,
    ).encode()
    out.write(_MAGIC + _U32.pack(len(body)) + body)
    fd = os.open(image, os.O_RDONLY)
    try:
        for number in pages:
            page = os.pread(fd, page_size, (number - 1) * page_size)
            out.write(_U32.pack(number) + page)
    finally:
        os.close(fd)
    out.write(_TRAILER + _U32.pack(len(pages)))


def _read_exact(stream: BinaryIO, size: int, path: Path) -> bytes:
    data = stream.read(size)
    while len(data) < size:
        more = stream.read(size - len(data))
        if not more:
            raise VerificationError(f"{path}: delta file is truncated")
        data += more
    return data


def _checked_header(header: Any, delta: Path) -> tuple[int, int, int]:
    """(page_size, page_count, changed_pages) of a well-formed header.

    The header may be unverified (a restore with RESTORE_VERIFY_CHECKSUM=false, or a
    delta whose checksum is compared only after the rebuild): a damaged one must end in
    a VerificationError, never in a seek to a negative offset or a terabyte-sized image.
    """
    if not isinstance(header, dict):
        raise VerificationError(f"{delta}: delta header is not a JSON object")
    version = header.get("format_version", 0)
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise VerificationError(
            f"{delta}: delta format {version} is newer than this dagvault understands; "
            "upgrade dagvault"
        )
    values = [header.get(key) for key in ("page_size", "page_count", "changed_pages")]
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        page_size, page_count, changed = values
        if page_size in _PAGE_SIZES and 0 < page_count < 2**32 and 0 <= changed <= page_count:
            return page_size, page_count, changed
    raise VerificationError(
        f"{delta}: delta header is invalid (page_size, page_count, changed_pages: {values})"
    )


def apply_delta(delta: Path, image: Path) -> dict[str, Any]:
    """Apply ``delta`` to ``image`` in place; return the delta's header."""
    with open(delta, "rb") as raw:
        stream: BinaryIO = (
            zstandard.ZstdDecompressor().stream_reader(raw)  # type: ignore[assignment]
            if is_compressed(delta)
            else raw
        )
        try:
            if _read_exact(stream, 8, delta) != _MAGIC:
                raise VerificationError(f"{delta}: not a dagvault delta file (bad magic)")
            (length,) = _U32.unpack(_read_exact(stream, 4, delta))
            header = json.loads(_read_exact(stream, length, delta))
            page_size, page_count, changed = _checked_header(header, delta)
            with open(image, "r+b") as target:
                previous = 0
                for _ in range(changed):
                    (number,) = _U32.unpack(_read_exact(stream, 4, delta))
                    if not previous < number <= page_count:
                        raise VerificationError(
                            f"{delta}: delta record for page {number} is out of order or "
                            f"past the image's {page_count} pages"
                        )
                    previous = number
                    target.seek((number - 1) * page_size)
                    target.write(_read_exact(stream, page_size, delta))
                target.truncate(page_count * page_size)
                # No fsync: the image is always a throw-away temp file (verify, restore and
                # base selection discard it), read back through the page cache; syncing
                # it only made every delta of a chain wait for the image's first writeback.
            trailer = _read_exact(stream, 12, delta)
            if trailer != _TRAILER + _U32.pack(changed):
                raise VerificationError(f"{delta}: delta file has a bad trailer")
        except (zstandard.ZstdError, ValueError, KeyError) as exc:
            raise VerificationError(f"{delta}: delta file is unreadable: {exc}") from None
    return header
