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
            if header.get("format_version", 0) > FORMAT_VERSION:
                raise VerificationError(
                    f"{delta}: delta format {header['format_version']} is newer than this "
                    "dagvault understands; upgrade dagvault"
                )
            page_size = int(header["page_size"])
            with open(image, "r+b") as target:
                for _ in range(int(header["changed_pages"])):
                    (number,) = _U32.unpack(_read_exact(stream, 4, delta))
                    target.seek((number - 1) * page_size)
                    target.write(_read_exact(stream, page_size, delta))
                target.truncate(int(header["page_count"]) * page_size)
                target.flush()
                os.fsync(target.fileno())
            trailer = _read_exact(stream, 12, delta)
            if trailer != _TRAILER + _U32.pack(int(header["changed_pages"])):
                raise VerificationError(f"{delta}: delta file has a bad trailer")
        except (zstandard.ZstdError, ValueError, KeyError) as exc:
            raise VerificationError(f"{delta}: delta file is unreadable: {exc}") from None
    return header
