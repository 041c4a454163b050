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
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
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


class _Reader:
    """A delta read and checked as it goes: the header on opening, then its records, then
    its trailer (``records`` checks it after the last record)."""

    def __init__(self, delta: Path, raw: BinaryIO) -> None:
        self.delta = delta
        self.stream: BinaryIO = (
            zstandard.ZstdDecompressor().stream_reader(raw)  # type: ignore[assignment]
            if is_compressed(delta)
            else raw
        )
        if self._read(8) != _MAGIC:
            raise VerificationError(f"{delta}: not a dagvault delta file (bad magic)")
        (length,) = _U32.unpack(self._read(4))
        self.header = json.loads(self._read(length))
        self.page_size, self.page_count, self.changed = _checked_header(self.header, delta)

    def _read(self, size: int) -> bytes:
        return _read_exact(self.stream, size, self.delta)

    def records(self) -> Iterator[tuple[int, bytes]]:
        """(page number, page), ascending; the trailer is checked after the last one."""
        previous = 0
        for _ in range(self.changed):
            (number,) = _U32.unpack(self._read(4))
            if not previous < number <= self.page_count:
                raise VerificationError(
                    f"{self.delta}: delta record for page {number} is out of order or "
                    f"past the image's {self.page_count} pages"
                )
            previous = number
            yield number, self._read(self.page_size)
        if self._read(12) != _TRAILER + _U32.pack(self.changed):
            raise VerificationError(f"{self.delta}: delta file has a bad trailer")


@contextmanager
def _reading(delta: Path) -> Iterator[_Reader]:
    with open(delta, "rb") as raw:
        try:
            yield _Reader(delta, raw)
        except (zstandard.ZstdError, ValueError, KeyError) as exc:
            raise VerificationError(f"{delta}: delta file is unreadable: {exc}") from None


def apply_deltas(deltas: list[Path], image: Path) -> None:
    """Apply ``deltas`` (oldest first) to ``image`` in place, each page written once: the
    newest delta holding a page wins, and pages past the newest delta's page count are
    not written at all. This gives the image replaying them one by one gives: a delta
    holds every page past its parent's end, so a page cut off by one delta's truncation
    and needed again is in a later delta. Every delta is still read and checked whole
    (its header, its records' order, its trailer), also where all its pages are superseded.

    No fsync: the image is a throw-away temp file (verify, restore and base selection
    discard it, or a restore syncs it before publishing it), read back through the page
    cache; syncing it only made every delta of a chain wait for the image's writeback.
    """
    if not deltas:
        return
    written: set[int] = set()
    final_size: int | None = None
    with open(image, "r+b") as target:
        for delta in reversed(deltas):
            with _reading(delta) as reader:
                if final_size is None:
                    final_size = reader.page_count * reader.page_size
                for number, page in reader.records():
                    offset = (number - 1) * reader.page_size
                    if offset < final_size and number not in written:
                        written.add(number)
                        target.seek(offset)
                        target.write(page)
        assert final_size is not None
        target.truncate(final_size)
